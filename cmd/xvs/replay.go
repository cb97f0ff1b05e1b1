package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/keepalived"
	"github.com/xvs-lb/xvs/internal/replay"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "run a capture through the real pipeline offline, with the capture's timestamps as the clock",
		ArgsUsage: "IN.pcap|IN.pcapng",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "rules", Usage: "rules file in ipvsadm -S format"},
			&cli.StringFlag{Name: "keepalived-conf", Usage: "keepalived.conf whose virtual servers to replay against (beside --rules)"},
			&cli.StringFlag{Name: "keepalived-id", Usage: "keepalived's -i for --keepalived-conf (default: the host name)"},
			&cli.StringFlag{Name: "out", Usage: "write the forwarded frames, rewritten, to this pcap file"},
			&cli.StringFlag{Name: "log", Usage: "write the per-frame decision log (TSV) to this file, or - for stdout"},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "pipeline workers; frames are spread over them as RSS would"},
			&cli.StringSliceFlag{Name: "tunnel-source", Usage: "the director's address tunnelled (-i) packets leave from, one per family (default 192.0.2.254, 2001:db8::fe)"},
			&cli.IntFlag{Name: "mtu", Value: replay.DefaultMTU, Usage: "the egress MTU tunnels check (too large: ICMP too big or fragmentation, as IPVS)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no summary on stderr"},
		},
		Action: runReplay,
	}
}

func runReplay(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("xvs replay: exactly one capture file expected (see xvs replay --help)", 2)
	}
	workers := c.Int("workers")
	if workers < 1 || workers > ipvs.MaxWorkers {
		return cli.Exit(fmt.Sprintf("xvs replay: --workers must be 1..%d", ipvs.MaxWorkers), 2)
	}
	cfg, err := ipvs.New(ipvs.Options{Workers: workers, PEExists: pe.Exists})
	if err != nil {
		return err
	}
	if c.String("rules") == "" && c.String("keepalived-conf") == "" {
		return cli.Exit("xvs replay: --rules or --keepalived-conf is required", 2)
	}
	if path := c.String("rules"); path != "" {
		if err := rules.Load(cfg, path); err != nil {
			return err
		}
	}
	if path := c.String("keepalived-conf"); path != "" {
		l, err := keepalived.Load(path, keepalived.Options{ConfigID: c.String("keepalived-id")})
		if err == nil {
			err = l.Build(cfg)
		}
		if err != nil {
			return cli.Exit("xvs replay: keepalived configuration refused:\n"+err.Error(), 1)
		}
		for _, w := range l.Warnings {
			fmt.Fprintln(os.Stderr, w)
		}
	}
	in, err := capture.Open(c.Args().First())
	if errors.Is(err, capture.ErrTruncated) || errors.Is(err, capture.ErrCorrupt) {
		return cli.Exit(fmt.Sprintf("xvs replay: %v", err), exitIncomplete)
	}
	if err != nil {
		return err
	}
	defer in.Close()

	opts := replay.Options{Config: cfg, Workers: workers, MTU: c.Int("mtu")}
	for _, s := range c.StringSlice("tunnel-source") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return cli.Exit(fmt.Sprintf("xvs replay: --tunnel-source %q: not an address", s), 2)
		}
		opts.TunnelSources = append(opts.TunnelSources, a)
	}
	if opts.MTU < 68 || opts.MTU > 65535 {
		return cli.Exit("xvs replay: --mtu must be 68..65535", 2)
	}
	var closers []func() error
	if path := c.String("out"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		opts.Out = bw
		closers = append(closers, bw.Flush, f.Close)
	}
	switch path := c.String("log"); path {
	case "":
	case "-":
		opts.Log = os.Stdout
	default:
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		opts.Log = f
		closers = append(closers, f.Close)
	}
	res, runErr := replay.Run(in, opts)
	for _, cl := range closers {
		runErr = errors.Join(runErr, cl())
	}
	if res != nil && !c.Bool("quiet") {
		res.Summary(os.Stderr)
	}
	switch {
	case runErr == nil:
		return nil
	case errors.Is(runErr, capture.ErrTruncated), errors.Is(runErr, capture.ErrCorrupt):
		return cli.Exit(fmt.Sprintf("xvs replay: %v\nxvs replay: the capture is incomplete: the log, the output and the summary cover the %d frames before it", runErr, res.Frames), exitIncomplete)
	}
	return runErr
}

// Exit statuses of xvs replay (docs/replay.md): 0 every frame of the capture
// was replayed; 1 the replay could not run or write its results; 2 bad usage;
// exitIncomplete the capture is cut short or corrupt: the frames before the
// damage were replayed, logged and summarised.
const exitIncomplete = 3
