package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/perf"
)

// The naive-proxy baseline of the benchmark is this binary started again
// with perf.ProxyEnv set, so that its CPU time is measured like xvs's.
func init() { perf.MaybeRunProxy() }

func benchCommand(bin string) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "end-to-end benchmark in the lab: xvs (AF_XDP, raw) vs a naive Go proxy, Kamailio and the kernel; JSON, markdown and SVG reports",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "xvs", Value: filepath.Join(bin, "xvs"), Usage: "the xvs binary"},
			&cli.BoolFlag{Name: "full", Usage: "documentation run: 3 rounds of 2 s, offered-load sweep, 2-queue scaling (default: quick, under 2 minutes)"},
			&cli.IntFlag{Name: "rounds", Usage: "rounds (0 = the mode's default)"},
			&cli.DurationFlag{Name: "run-time", Usage: "length of each run (0 = the mode's default)"},
			&cli.IntFlag{Name: "calls", Usage: "distinct Call-IDs (0 = 10000)"},
			&cli.Float64Flag{Name: "latency-fraction", Value: 0.5, Usage: "latency is measured at this fraction of each candidate's maximum rate"},
			&cli.StringSliceFlag{Name: "only", Usage: "measure only candidates whose name contains this (repeatable; the ceiling always runs)"},
			&cli.IntFlag{Name: "senders", Usage: "generator goroutines (0 = one per CPU)"},
			&cli.BoolFlag{Name: "no-kamailio", Usage: "skip Kamailio even when installed"},
			&cli.StringFlag{Name: "drop", Value: "tc", Usage: "drop point on the switch port facing the balancer: tc (TCX ingress) or xdp (native XDP)"},
			&cli.Float64Flag{Name: "drop-rate", Usage: "pace the drop-point runs at this many datagrams/s (0 = as fast as the generator can): CPU per datagram compared at equal arrivals"},
			&cli.BoolFlag{Name: "offloads", Usage: "leave the lab's veth checksum and segmentation offloads at their defaults (the generator's datagrams reach the balancer with the UDP checksum left to offload)"},
			&cli.BoolFlag{Name: "perf-split", Usage: "record each candidate with perf(1) during one more drop-point run and split its CPU time (tx, rx, waiting, scheduling, user…)"},
			&cli.IntFlag{Name: "kamailio-children", Usage: "Kamailio's UDP workers per listening socket (0 = one per CPU)"},
			&cli.BoolFlag{Name: "kamailio-lan-socket", Usage: "Kamailio also listens on the balancer's own address and sends from it"},
			&cli.StringFlag{Name: "kamailio-memory", Usage: "Kamailio's memory manager (-x/-X): tlsf (default), fm, or qm (Kamailio's own default, which Debian's memory-debugging build makes 3× as costly per datagram)"},
			&cli.IntFlag{Name: "kamailio-shm", Usage: "Kamailio's shared memory, MB (0 = its default)"},
			&cli.IntFlag{Name: "kamailio-pkg", Usage: "Kamailio's per-process memory, MB (0 = its default)"},
			&cli.IntFlag{Name: "kamailio-debug", Usage: "Kamailio's log level"},
			&cli.StringSliceFlag{Name: "kamailio-global", Usage: "a global parameter line added to kamailio.cfg, e.g. mem_join=1 (repeatable)"},
			&cli.StringSliceFlag{Name: "variant", Usage: "'NAME=[BINARY] [ARG...]': also measure xvs afxdp-native dr with another xvs binary (none: --xvs) and extra xvs run arguments (env:K=V sets an environment variable), in the same alternating rounds (repeatable)"},
			&cli.StringFlag{Name: "out", Value: "docs/bench/e2e-latest", Usage: "report path without extension (.json, .md, .svg are written)"},
		},
		Action: func(c *cli.Context) error {
			if err := lab.Available(); err != nil {
				return cli.Exit(err.Error(), 3)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			drop, err := lab.ParseDropMode(c.String("drop"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			var variants []perf.Variant
			for _, s := range c.StringSlice("variant") {
				v, err := perf.ParseVariant(s)
				if err != nil {
					return cli.Exit(err.Error(), 2)
				}
				variants = append(variants, v)
			}
			kam := perf.KamailioOptions{Children: c.Int("kamailio-children"), LANSocket: c.Bool("kamailio-lan-socket"), Memory: c.String("kamailio-memory"),
				ShmMB: c.Int("kamailio-shm"), PkgMB: c.Int("kamailio-pkg"), Debug: c.Int("kamailio-debug"),
				Globals: c.StringSlice("kamailio-global")}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			rep, err := perf.Run(ctx, perf.Options{XVS: c.String("xvs"), Self: self, Full: c.Bool("full"), Rounds: c.Int("rounds"),
				RunTime: c.Duration("run-time"), Calls: c.Int("calls"), LatencyFraction: c.Float64("latency-fraction"),
				Only: c.StringSlice("only"), Senders: c.Int("senders"), NoKamailio: c.Bool("no-kamailio"), Log: os.Stderr,
				Drop: drop, DropRate: c.Float64("drop-rate"), PerfSplit: c.Bool("perf-split"), KeepOffloads: c.Bool("offloads"), Kamailio: kam, Variants: variants})
			if err != nil {
				if errors.Is(err, lab.ErrNotRoot) {
					return cli.Exit(err.Error(), 3)
				}
				return err
			}
			if err := rep.Write(c.String("out")); err != nil {
				return err
			}
			md, _ := os.ReadFile(c.String("out") + ".md")
			fmt.Printf("%s\nwritten: %s.{json,md,svg} in %v\n", md, c.String("out"), time.Since(start).Round(time.Second))
			return nil
		},
	}
}

// benchProxyCommand runs the naive proxy directly (for a look by hand);
// the harness itself uses perf.ProxyEnv.
func benchProxyCommand() *cli.Command {
	return &cli.Command{
		Name:   "bench-proxy",
		Hidden: true,
		Usage:  "the benchmark's naive Go UDP proxy: LISTEN REAL1,REAL2,…",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("usage: xvslab bench-proxy LISTEN REAL1,REAL2,…", 2)
			}
			os.Setenv(perf.ProxyEnv, c.Args().Get(0)+" "+c.Args().Get(1))
			perf.MaybeRunProxy()
			return nil
		},
	}
}
