package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/afxdp"
	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/bgp"
	"github.com/xvs-lb/xvs/internal/daemon"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/metrics"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "serve the virtual services of a rules file or a keepalived.conf on a network interface",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "network interface to serve on; for each leg of a director with several, repeat it or list them (`IF`: --iface eth0 --iface eth1, --iface eth0,eth1): frames leave by the interface the kernel routes them to", Required: true},
			&cli.StringSliceFlag{Name: "tunnel-source", Usage: "address tunnelled (-i) packets leave from, one per family (default: the kernel's source for the route to each real server)"},
			&cli.StringFlag{Name: "rules", Usage: "rules file in ipvsadm -S format, loaded at start"},
			&cli.StringFlag{Name: "keepalived-conf", Usage: "keepalived.conf whose virtual servers xvs serves (beside --rules; SIGHUP or xvsadm --reload re-reads it)"},
			&cli.StringFlag{Name: "keepalived-id", Usage: "keepalived's -i for --keepalived-conf: which '@id' lines apply (default: the host name)"},
			&cli.StringSliceFlag{Name: "sysctl", Usage: "set an IPVS sysctl xvs honours, `NAME=VALUE` as under net.ipv4.vs. (repeatable; after the rules file; xvsadm --sysctl lists them)"},
			&cli.StringFlag{Name: "mode", Value: "auto", Usage: "data plane: auto (AF_XDP, then raw socket), afxdp, raw"},
			&cli.StringFlag{Name: "xdp-mode", Value: "auto", Usage: "AF_XDP attach mode: auto (native, then generic), native, generic"},
			&cli.StringFlag{Name: "zerocopy", Value: "auto", Usage: "AF_XDP zero-copy: auto, on, off"},
			&cli.IntFlag{Name: "queues", Usage: "RX queues to serve, one worker each (0 = all)"},
			&cli.DurationFlag{Name: "busy-poll", Usage: "AF_XDP busy polling: a busy worker polls its queue from its own system calls for up to this long before it sleeps (SO_PREFER_BUSY_POLL; e.g. 50us; 0 = off, interrupt-driven). See docs/performance.md for the NIC settings that go with it"},
			&cli.IntFlag{Name: "busy-poll-budget", Usage: "frames per busy poll (SO_BUSY_POLL_BUDGET; 0 = 64)"},
			&cli.IntFlag{Name: "ring-size", Usage: "AF_XDP descriptors per ring (fill, RX, TX, completion; a power of two, 64 to 32768; 0 = 4096): how many datagrams a queue holds while its worker waits for a CPU; the UMEM has twice as many 2 KiB frames per interface"},
			&cli.IntFlag{Name: "worker-nice", Usage: "nice value of the workers' threads, -20 to 19 (0 = the process's): a negative value lets a worker with frames take its CPU from other processes, as IPVS in softirq does; for CPUs the workers share (needs CAP_SYS_NICE). See docs/running.md"},
			&cli.StringFlag{Name: "cpus", Usage: "pin worker i's thread to the i-th CPU of this list, e.g. 2,3 or 2-5 (cycling when there are more workers; default: not pinned)"},
			&cli.StringFlag{Name: "control", Value: defaultControl, Usage: "control socket for xvsadm (root-only, mode 0600); \"\" disables it"},
			&cli.StringFlag{Name: "metrics", Value: metrics.DefaultAddr, Usage: "Prometheus metrics address (loopback by default); \"\" disables it"},
			&cli.BoolFlag{Name: "metrics-public", Usage: "allow a non-loopback metrics address"},
			&cli.BoolFlag{Name: "pprof", Usage: "serve /debug/pprof on the metrics listener"},
			&cli.IntFlag{Name: "templates", Usage: "persistence templates per worker (0 = 1048576)"},
			&cli.IntFlag{Name: "conns", Usage: "connections per worker (0 = 262144)"},
			&cli.StringFlag{Name: "snapshot", Usage: "save templates to this file periodically and on shutdown, and restore them at start (its directory must exist and be writable)"},
			&cli.DurationFlag{Name: "snapshot-interval", Value: daemon.DefaultSnapshotInterval, Usage: "how often --snapshot is saved while running (a crash loses at most this much); 0 saves only at shutdown"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn, error, or a number N for slog level -N (4 = debug; 9 also logs the SIP engine's events, IPVS's debug_level 9)"},
			&cli.IntFlag{Name: "health-max-probes", Usage: "health probes in flight at most (0 = 64); checks are configured per service with xvsadm --health-check"},
			&cli.BoolFlag{Name: "no-health", Usage: "run no health checks (configured checks are kept but not probed; servers stay up)"},
			&cli.StringSliceFlag{Name: "start-daemon", Usage: "start a connection sync daemon, `master` or backup (repeatable: both run at once), as xvsadm --start-daemon does with the options below", Category: "sync daemon"},
			&cli.StringFlag{Name: "mcast-interface", Usage: "multicast interface of the sync daemons (default: the first --iface)", Category: "sync daemon"},
			&cli.StringFlag{Name: "syncid", Usage: "syncid of the sync daemons (0..255; a backup with 0 accepts every syncid)", Category: "sync daemon"},
			&cli.StringFlag{Name: "sync-maxlen", Usage: "largest sync message, bytes of UDP payload (default: 1472 for a master, the interface's MTU for a backup)", Category: "sync daemon"},
			&cli.StringFlag{Name: "mcast-group", Usage: "IPv4 or IPv6 multicast group (default 224.0.0.81; IPv6 has none)", Category: "sync daemon"},
			&cli.StringFlag{Name: "mcast-port", Usage: "UDP port (default 8848)", Category: "sync daemon"},
			&cli.StringFlag{Name: "mcast-ttl", Usage: "multicast TTL / hop limit (default 1)", Category: "sync daemon"},
		}, bgpFlags()...),
		Action: runDaemon,
	}
}

// defaultControl is where xvsadm looks for the daemon.
const defaultControl = "/run/xvs/xvs.sock"

func runDaemon(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	slog.SetDefault(log)
	interval := c.Duration("snapshot-interval")
	switch {
	case interval < 0:
		return cli.Exit("--snapshot-interval must not be negative (0 saves only at shutdown)", 2)
	case interval == 0:
		interval = -1 // daemon.Options: negative = only at shutdown
	}
	xdpMode, err := dataplane.ParseXDPMode(c.String("xdp-mode"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	zeroCopy, err := dataplane.ParseZeroCopy(c.String("zerocopy"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	busyPoll, budget := c.Duration("busy-poll"), c.Int("busy-poll-budget")
	switch {
	case busyPoll < 0:
		return cli.Exit("--busy-poll must not be negative (0 turns it off)", 2)
	case budget < 0 || budget > 65535:
		return cli.Exit("--busy-poll-budget: want 1 to 65535 (0 = 64)", 2)
	case budget > 0 && busyPoll == 0:
		return cli.Exit("--busy-poll-budget needs --busy-poll", 2)
	}
	ringSize := c.Int("ring-size")
	if ringSize != 0 && (ringSize < afxdp.MinRingSize || ringSize > afxdp.MaxRingSize || ringSize&(ringSize-1) != 0) {
		return cli.Exit(fmt.Sprintf("--ring-size %d: want a power of two from %d to %d (0 = %d)", ringSize, afxdp.MinRingSize, afxdp.MaxRingSize, afxdp.DefaultRingSize), 2)
	}
	nice := c.Int("worker-nice")
	if nice < daemon.MinNice || nice > daemon.MaxNice {
		return cli.Exit(fmt.Sprintf("--worker-nice %d: want %d to %d", nice, daemon.MinNice, daemon.MaxNice), 2)
	}
	cpus, err := parseCPUList(c.String("cpus"))
	if err != nil {
		return cli.Exit("--cpus: "+err.Error(), 2)
	}
	var tunSrc []netip.Addr
	seen := map[bool]bool{}
	for _, s := range c.StringSlice("tunnel-source") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
			return cli.Exit(fmt.Sprintf("--tunnel-source %q: not a unicast address", s), 2)
		}
		a = a.Unmap()
		if seen[a.Is4()] {
			return cli.Exit("--tunnel-source: one address per family", 2)
		}
		seen[a.Is4()] = true
		tunSrc = append(tunSrc, a)
	}
	bgpCfg, err := bgpConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	syncDaemons, err := syncDaemons(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	d, err := daemon.Start(daemon.Options{
		TunnelSources: tunSrc,
		Ifaces:        c.StringSlice("iface"), Rules: c.String("rules"), Sysctls: c.StringSlice("sysctl"), Mode: c.String("mode"),
		Keepalived: c.String("keepalived-conf"), KeepalivedID: c.String("keepalived-id"),
		XDPMode: xdpMode, ZeroCopy: zeroCopy, Queues: c.Int("queues"),
		BusyPoll: busyPoll, BusyPollBudget: budget, CPUs: cpus, RingSize: ringSize, WorkerNice: nice,
		Templates: c.Int("templates"), Conns: c.Int("conns"), SnapshotFile: c.String("snapshot"),
		SnapshotInterval: interval, Logger: log,
		MaxProbes: c.Int("health-max-probes"), NoHealth: c.Bool("no-health"), SyncDaemons: syncDaemons,
	})
	if err != nil {
		return err
	}
	var ann *bgp.Announcer
	if bgpCfg.Enabled() {
		if ann, err = bgp.Start(bgpCfg, d, log); err != nil {
			d.Close()
			return err
		}
	}
	stopServices, err := startServices(c, d, ann, log)
	if err != nil {
		closeBGP(ann)
		d.Close()
		return err
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var runErr error
wait:
	for {
		select {
		case <-hup:
			// keepalived's reload signal: re-read --keepalived-conf. The
			// daemon logs the outcome; a refused file changes nothing.
			if _, err := d.Reload(context.Background()); errors.Is(err, daemon.ErrNothingToReload) {
				log.Warn("SIGHUP ignored", "err", err)
			}
		case s := <-sig:
			log.Info("stopping", "signal", s.String())
			break wait
		case runErr = <-d.Err():
			log.Error("worker failed", "err", runErr)
			break wait
		}
	}
	if ann != nil && runErr == nil {
		// Withdraw, then keep forwarding for the drain period; a second
		// signal cuts it short. After a worker failure there is nothing
		// left to drain through: closing the speaker (below) ends the
		// sessions, and the routers drop the paths at once.
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case s := <-sig:
				log.Warn("second signal: not waiting for the drain period", "signal", s.String())
				cancel()
			case <-ctx.Done():
			}
		}()
		ann.Stop(ctx)
		cancel()
	}
	stopServices()
	closeBGP(ann)
	return errors.Join(runErr, d.Close())
}

func closeBGP(ann *bgp.Announcer) {
	if ann != nil {
		ann.Close()
	}
}

// bgpFlags are xvs run's --bgp-NAME flags, one per bgp.Settings entry, and
// --bgp-config.
func bgpFlags() []cli.Flag {
	fs := []cli.Flag{&cli.StringFlag{Name: "bgp-config", Category: "BGP", Usage: "read BGP settings from FILE: lines of NAME VALUE with the names of the --bgp-NAME flags (flags given too override or add)"}}
	for _, s := range bgp.Settings {
		name, usage := "bgp-"+s.Name, s.Arg+": "+s.Usage
		if s.Repeatable {
			fs = append(fs, &cli.StringSliceFlag{Name: name, Category: "BGP", Usage: usage})
		} else {
			fs = append(fs, &cli.StringFlag{Name: name, Category: "BGP", Usage: usage})
		}
	}
	return fs
}

// bgpConfig builds the BGP configuration: the --bgp-config file, then the
// flags. BGP stays off unless something configures it.
func bgpConfig(c *cli.Context) (bgp.Config, error) {
	cfg := bgp.NewConfig()
	if f := c.String("bgp-config"); f != "" {
		if err := cfg.LoadFile(f); err != nil {
			return cfg, err
		}
	}
	for _, s := range bgp.Settings {
		name := "bgp-" + s.Name
		if !c.IsSet(name) {
			continue
		}
		vals := []string{c.String(name)}
		if s.Repeatable {
			vals = c.StringSlice(name)
		}
		for _, v := range vals {
			if err := cfg.Set(s.Name, v); err != nil {
				return cfg, fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	if cfg.Enabled() {
		if err := cfg.Validate(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// syncDaemons reads --start-daemon and its options through ipvsadm's own
// parser, so that they take the values and give the messages xvsadm
// --start-daemon does.
func syncDaemons(c *cli.Context) ([]ipvsadm.Daemon, error) {
	var out []ipvsadm.Daemon
	for _, state := range c.StringSlice("start-daemon") {
		argv := []string{"--start-daemon", state}
		iface := c.String("mcast-interface")
		if ifs := c.StringSlice("iface"); iface == "" && len(ifs) > 0 {
			iface = ifs[0] // the first leg
		}
		argv = append(argv, "--mcast-interface", iface)
		for _, o := range []string{"syncid", "sync-maxlen", "mcast-group", "mcast-port", "mcast-ttl"} {
			if c.IsSet(o) {
				argv = append(argv, "--"+o, c.String(o))
			}
		}
		cmd, err := ipvsadm.Parse(argv)
		if err != nil {
			return nil, fmt.Errorf("--start-daemon %s: %w", state, err)
		}
		for _, d := range out {
			if d.State == cmd.Daemon.State {
				return nil, fmt.Errorf("--start-daemon %s given twice", state)
			}
		}
		out = append(out, cmd.Daemon)
	}
	return out, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		n, err := strconv.Atoi(level)
		if err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn, error or a number (9: the SIP engine's events, IPVS's debug_level 9)", level)
		}
		l = slog.Level(-n)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// parseCPUList parses a CPU list as the kernel writes one (taskset -c,
// /sys/devices/system/cpu/online): comma-separated CPUs and ranges, "2,3"
// or "0-3,8". "" is no list.
func parseCPUList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= maxCPU {
			return nil, fmt.Errorf("%q: want CPUs like 2,3 or 0-3", part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// maxCPU bounds a CPU number: the size of the affinity mask
// sched_setaffinity takes through golang.org/x/sys/unix (CPUSet).
const maxCPU = 1024
