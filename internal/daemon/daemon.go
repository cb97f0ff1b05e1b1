// Package daemon is the xvs load balancer at run time: it opens a data-plane
// backend on one or more interfaces (AF_XDP, falling back to the raw
// socket), runs one pipeline worker per queue (Runner: the loop that joins
// package dataplane's I/O seam to the engine; a queue holds RX queue i of
// every interface), owns the virtual-server configuration and publishes it
// to the workers and, as a Filter (FilterOf), to the backend atomically,
// follows the kernel's routes and neighbours for the workers' next hops
// (package neigh into a nexthop.Table), and offers the control plane its
// view (apply a command, list templates and connections, status).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/localnat"
	"github.com/xvs-lb/xvs/internal/neigh"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// Options configure a daemon.
type Options struct {
	// Ifaces are the interfaces to serve (xvs run --iface, repeatable):
	// the legs of the director, in port order. Iface is the same for a
	// single interface (Ifaces wins when set).
	Ifaces []string
	Iface  string
	// TunnelSources are the addresses tunnelled (-i) packets leave from,
	// at most one per family (xvs run --tunnel-source); a family without
	// one takes the kernel's source for the route to each real server (the
	// director's address on the egress interface, as IPVS does).
	TunnelSources []netip.Addr
	// Rules is a rules file (ipvsadm -S format) loaded at start; "" for none.
	Rules string
	// Keepalived is a keepalived.conf whose virtual servers are served
	// beside Rules' (a service both declare refuses the start) and
	// re-read by Reload; "" for none. KeepalivedID is keepalived's -i,
	// selecting its "@id" lines ("" = the host name).
	Keepalived   string
	KeepalivedID string
	// Sysctls are IPVS sysctl settings (NAME=VALUE, as xvsadm --sysctl
	// takes them), applied after the rules file: the command line wins.
	Sysctls []string
	// Mode is the backend: "auto" (AF_XDP, then the raw socket), "afxdp"
	// or "raw".
	Mode     string
	XDPMode  dataplane.XDPMode  // AF_XDP attach mode
	ZeroCopy dataplane.ZeroCopy // AF_XDP zero-copy
	Queues   int                // 0 = every RX queue
	// BusyPoll and BusyPollBudget turn on AF_XDP busy polling
	// (dataplane.Options; 0 = off).
	BusyPoll       time.Duration
	BusyPollBudget int
	// RingSize is the AF_XDP descriptors per ring (dataplane.Options; 0 =
	// the backend's default).
	RingSize int
	// WorkerNice, when not 0, is the nice value of every worker's thread
	// (Runner.Nice, MinNice..MaxNice).
	WorkerNice int
	// CPUs pins worker i's thread to CPUs[i % len(CPUs)] (empty: the
	// workers' threads run wherever the scheduler puts them).
	CPUs []int
	// Templates and Conns size each worker's tables (0 = pipeline defaults).
	Templates, Conns int
	// SnapshotFile, if set, is where templates are saved — every
	// SnapshotInterval (0 = DefaultSnapshotInterval, negative = only at
	// shutdown) and at shutdown — and restored from at start. Its
	// directory must exist and be writable (checked at start), and only
	// one daemon may use it (FILE.lock).
	SnapshotFile     string
	SnapshotInterval time.Duration
	// LockDir holds the per-interface lock that keeps a second daemon off
	// the interface ("" = DefaultLockDir).
	LockDir string
	Logger  *slog.Logger
	// MaxProbes bounds the health probes in flight (0 = the health
	// package's default); NoHealth disables health checking altogether
	// (configured checks are then never run and servers stay up).
	MaxProbes int
	NoHealth  bool
	// SyncDaemons are sync daemons to start once the workers run (xvs run
	// --start-daemon, with ipvsadm's options); an empty McastIface is
	// Iface.
	SyncDaemons []ipvsadm.Daemon
}

// Daemon is a running balancer.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	backend dataplane.Backend

	mu   sync.Mutex // serialises configuration changes
	cfg  *ipvs.Config
	snap atomic.Pointer[ipvs.Snapshot]

	ifaces     []string
	ifaceLocks []*lockFile
	snapshot   *snapshotFile // nil without Options.SnapshotFile
	stopSave   chan struct{} // stops snapshotLoop
	saveWG     sync.WaitGroup

	runners     []*Runner
	workers     []*pipeline.Worker
	templateCap int // each worker's template capacity
	shared      *table.Shared
	sconns      *table.SharedConns
	hops        *nexthop.Table
	localNAT    *localnat.Table // the kernel NAT of Local real servers on another port
	localityLog retryLog        // checkLocality's refusals; under mu
	tunnelLog   retryLog        // checkTunnels' refusals; under mu
	watcher     *neigh.Watcher
	reach       reachability
	debug       pipeline.DebugLog

	prober     *health.Prober
	tap        probeTap
	stopProber context.CancelFunc

	ka *kaSource // the keepalived.conf served, if any

	sync syncDaemons // the connection sync daemons (sync.go)

	stop    chan struct{}
	prepare chan struct{} // a commit asks the reachability loop to resolve new real servers
	wg      sync.WaitGroup
	runErr  chan error
	closing atomic.Bool
	// forwarding is set once every worker runs and cleared when one fails
	// or Close begins: the BGP announcer withdraws the VIPs without it.
	forwarding atomic.Bool
}

// ErrMode reports an unknown backend mode.
var ErrMode = errors.New("unknown data-plane mode")

// Start locks the interface (one daemon per interface) and the snapshot
// file, opens the backend, loads the rules, restores the template snapshot
// and starts the workers.
func Start(o Options) (_ *Daemon, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ifaces := o.Ifaces
	if len(ifaces) == 0 && o.Iface != "" {
		ifaces = []string{o.Iface}
	}
	if len(ifaces) == 0 {
		return nil, errors.New("no interface given (--iface)")
	}
	if len(ifaces) > dataplane.MaxIfaces {
		return nil, fmt.Errorf("%d interfaces: at most %d", len(ifaces), dataplane.MaxIfaces)
	}
	for i, a := range ifaces {
		if slices.Contains(ifaces[:i], a) {
			return nil, fmt.Errorf("interface %s given twice", a)
		}
	}
	d := &Daemon{opts: o, log: o.Logger, ifaces: ifaces, stop: make(chan struct{}), stopSave: make(chan struct{}),
		runErr: make(chan error, 64), prepare: make(chan struct{}, 1)}
	var undo []func() // what start acquired, released in reverse order if it fails
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err = d.start(func(release func()) { undo = append(undo, release) }); err != nil {
		return nil, err
	}
	return d, nil
}

// start is Start's work. It hands every resource it acquires to onFail
// (its release), which Start calls in reverse order if start fails.
func (d *Daemon) start(onFail func(release func())) error {
	o := d.opts
	var err error
	lockDir := o.LockDir
	if lockDir == "" {
		lockDir = DefaultLockDir
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return fmt.Errorf("interface %s: lock: %w", d.ifaces[0], err)
	}
	for _, iface := range d.ifaces {
		lk, err := acquireLock(ifaceLockPath(lockDir, iface), "interface "+iface)
		if err != nil {
			return err
		}
		d.ifaceLocks = append(d.ifaceLocks, lk)
		onFail(lk.release)
	}
	if o.SnapshotFile != "" {
		if d.snapshot, err = openSnapshotFile(o.SnapshotFile); err != nil {
			return err
		}
		onFail(d.snapshot.lock.release)
	}
	if d.hops, err = nexthop.New(nexthop.Options{}); err != nil {
		return err
	}
	if d.watcher, err = neigh.Start(d.hops, d.ifaces, d.log); err != nil {
		return err
	}
	onFail(d.watcher.Close)
	b, err := openBackend(o, d.ifaces, d.log)
	if err != nil {
		return err // b may be a typed nil: it must not be closed
	}
	d.backend = b
	closeBackend := sync.OnceFunc(func() { b.Close() })
	onFail(closeBackend)
	if bp, ok := b.(interface{ BusyPollErr() error }); ok && o.BusyPoll > 0 {
		if err := bp.BusyPollErr(); err != nil {
			d.log.Warn("busy polling refused by the kernel; the queues wait for interrupts", "err", err)
		}
	}
	queues := d.backend.Queues()
	if len(queues) == 0 || len(queues) > ipvs.MaxWorkers {
		return fmt.Errorf("%s: %d queues (want 1..%d)", strings.Join(d.ifaces, ","), len(queues), ipvs.MaxWorkers)
	}
	d.hops.SetWaker(func() {
		for _, q := range queues {
			if w, ok := q.(dataplane.Waker); ok {
				w.Wake()
			}
		}
	})
	// The interface's lock makes this daemon the table's one owner: a
	// table of its name is a dead daemon's.
	d.localNAT = localnat.New(localNATPrefix + d.ifaces[0])
	if err := d.localNAT.RemoveStale(); err != nil {
		d.log.Warn("a previous daemon's kernel NAT rules for Local real servers could not be removed", "err", err)
	}
	onFail(func() { d.localNAT.Close() })
	cfg, err := ipvs.New(ipvs.Options{Workers: len(queues), PEExists: pe.Exists, AddrKind: d.addrKind, LocalNAT: d.localNAT.Check})
	if err == nil && o.Rules != "" {
		err = rules.Load(cfg, o.Rules)
	}
	for _, set := range o.Sysctls {
		if err == nil {
			if err = rules.SetSysctl(cfg, set); err != nil {
				err = fmt.Errorf("--sysctl %s: %w", set, err)
			}
		}
	}
	if err == nil {
		err = d.commit(cfg)
	}
	if err == nil && o.Keepalived != "" {
		err = d.loadKeepalived(o)
	}
	if err != nil {
		return err
	}
	d.templateCap = o.Templates
	if d.templateCap == 0 {
		d.templateCap = pipeline.DefaultTemplates
	}
	if len(queues) > 1 {
		// Room for every worker's templates: with RSS most calls live on
		// one worker each, so the distinct keys add up.
		if d.shared, err = table.NewShared(min(d.templateCap*len(queues), table.MaxSharedCapacity)); err != nil {
			return err
		}
		// And for every worker's connections: a reply may reach any
		// worker (another RX queue, another leg).
		if d.sconns, err = table.NewSharedConns(min(d.ConnTableSize()*len(queues), table.MaxSharedCapacity)); err != nil {
			return err
		}
	}
	seed := maphash.Comparable(maphash.MakeSeed(), 0)
	for i, q := range queues {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: &d.snap, Templates: d.templateCap, Conns: o.Conns,
			Seed: seed, Shared: d.shared, SharedConns: d.sconns, Hops: d.hops, Debug: &d.debug})
		if err != nil {
			return err
		}
		r := &Runner{Queue: &tapQueue{Queue: q, tap: &d.tap}, Worker: w, Local: &localSender{}}
		if len(o.CPUs) > 0 {
			r.Pin, r.CPU = true, o.CPUs[i%len(o.CPUs)]
		}
		r.Nice = o.WorkerNice
		r.Prepare()
		d.workers = append(d.workers, w)
		d.runners = append(d.runners, r)
	}
	if d.snapshot != nil {
		d.snapshot.checkSpace(d.log, d.templateCap*len(queues))
		if err := d.restoreTemplates(); err != nil {
			return err
		}
	}
	for _, r := range d.runners {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := r.Run(); err != nil {
				d.forwarding.Store(false)
				d.runErr <- err
			}
		}()
	}
	onFail(func() {
		d.stopSync()
		closeBackend() // the workers return
		d.wg.Wait()
	})
	for _, sd := range o.SyncDaemons {
		if err := d.StartSync(context.Background(), sd); err != nil {
			return fmt.Errorf("--start-daemon %s: %w", sd.State, err)
		}
	}
	d.wg.Add(1)
	go d.reachLoop()
	if !o.NoHealth {
		d.startProber()
	}
	if d.log.Enabled(context.Background(), DebugLevel) {
		d.debug.SetEnabled(true)
		d.wg.Add(1)
		go d.debugLoop()
	}
	if d.snapshot != nil {
		interval := o.SnapshotInterval
		if interval == 0 {
			interval = DefaultSnapshotInterval
		}
		if interval > 0 {
			d.saveWG.Add(1)
			go d.snapshotLoop(interval)
		}
	}
	d.forwarding.Store(true)
	snap := d.snap.Load()
	d.log.Info("data plane started", "mode", d.backend.Mode().String(), "iface", strings.Join(d.ifaces, ","), "workers", len(queues), "services", len(snap.Services()))
	if im, ok := d.backend.(interface{ InterfaceModes() []dataplane.Mode }); ok && len(d.ifaces) > 1 {
		for i, m := range im.InterfaceModes() {
			d.log.Info("interface", "iface", d.ifaces[i], "port", i, "mode", m.String())
		}
	}
	return nil
}

// releaseLocks drops the interface and snapshot locks.
func (d *Daemon) releaseLocks() {
	if d.snapshot != nil {
		d.snapshot.lock.release()
	}
	for _, lk := range d.ifaceLocks {
		lk.release()
	}
}

// openBackend walks the mode ladder: AF_XDP (whose own ladder is native
// zero-copy → native copy → generic), then the raw socket.
func openBackend(o Options, ifaces []string, log *slog.Logger) (dataplane.Backend, error) {
	bo := dataplane.Options{Ifaces: ifaces, Queues: o.Queues, XDPMode: o.XDPMode, ZeroCopy: o.ZeroCopy,
		BusyPoll: o.BusyPoll, BusyPollBudget: o.BusyPollBudget, RingSize: o.RingSize}
	switch o.Mode {
	default:
		b, err := dataplane.Open(o.Mode, bo)
		if errors.Is(err, dataplane.ErrNoBackend) {
			return nil, fmt.Errorf("%q: %w (auto, afxdp, raw)", o.Mode, ErrMode)
		}
		return b, err
	case "", "auto":
		b, err := dataplane.Open("afxdp", bo)
		if err == nil {
			return b, nil
		}
		log.Warn("AF_XDP unavailable, falling back to the raw socket", "err", err)
		rb, rerr := dataplane.Open("raw", bo)
		if rerr != nil {
			return nil, fmt.Errorf("no data plane: afxdp: %w; raw: %w", err, rerr)
		}
		return rb, nil
	}
}

// commit validates next completely and makes it the running
// configuration. It compiles the snapshot (schedulers included) and checks
// that the backend's filter can hold it; only then does it update the
// filter, hand the snapshot to the workers and keep next, and ask the
// kernel to resolve the next hops of new real servers (the workers hold
// the first frames of one that is not resolved when they arrive). On any
// error the running configuration, its snapshot and the filter stay
// exactly as they were, so every later command works as before. Callers
// hold d.mu (or are Start).
func (d *Daemon) commit(next *ipvs.Config) error {
	s, err := next.Compile()
	if err != nil {
		return err
	}
	if tunnelled(s) && d.tunnelEgress(next, s) {
		if s, err = next.Compile(); err != nil {
			return err
		}
	}
	f := FilterOf(s)
	if err := d.backend.Check(f); err != nil {
		return fmt.Errorf("the data plane cannot carry this configuration: %w", err)
	}
	if err := d.backend.Update(f); err != nil {
		if cur := d.snap.Load(); cur != nil {
			d.backend.Update(FilterOf(cur)) // a backend that changed part of its filter
		}
		return fmt.Errorf("updating the data-plane filter: %w", err)
	}
	// Before the workers mark packets for a new rule; a removed rule's
	// packets go to the virtual port meanwhile.
	if err := d.localNAT.Apply(localnat.Rules(s)); err != nil {
		if cur := d.snap.Load(); cur != nil {
			d.backend.Update(FilterOf(cur))
		}
		return fmt.Errorf("the kernel NAT of Local real servers on another port: %w", err)
	}
	next.Commit()
	d.cfg = next
	d.snap.Store(s)
	select {
	case d.prepare <- struct{}{}: // the reachability loop resolves new real servers
	default:
	}
	d.syncSwitches(s)
	return nil
}

// tunnelEgress sets in next the outer source and path MTU of every
// tunnelling real server (Dest.Source, Dest.MTU) whose route gives others,
// and returns whether one changed. Where the encapsulated frame leaves —
// the interface and the MAC addresses — is the next-hop table's answer, as
// for every frame; the source and MTU are what a tunnel needs beyond it:
// the configured source of the server's family (xvs run --tunnel-source),
// else the kernel's source for the route (ip_vs_tunnel_xmit's), and the
// route's MTU. A tunnel without a source drops its frames as no_next_hop,
// logged once per change.
func (d *Daemon) tunnelEgress(next *ipvs.Config, s *ipvs.Snapshot) bool {
	changed := false
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			if dst.Fwd != ipvs.Tunnel {
				continue
			}
			a := dst.Addr.Addr()
			src, err := neigh.SourceFor(a)
			if err != nil {
				src = neigh.Source{}
			}
			for _, t := range d.opts.TunnelSources {
				if t.Is4() == a.Is4() {
					src.Addr = t
				}
			}
			if src.Addr == dst.Source && src.MTU == dst.MTU {
				continue
			}
			if next.SetEgress(svc.Key, dst.Addr, dst.NextHop, src.Addr, src.MTU) != nil {
				continue
			}
			changed = true
			if src.Addr.IsValid() {
				d.log.Info("tunnel egress", "service", svc.Key.String(), "server", dst.Addr.String(), "tunnel_source", src.Addr.String(), "mtu", src.MTU)
			} else {
				d.log.Warn("no source address for a tunnel: its packets are dropped as no_next_hop (give xvs run --tunnel-source)", "service", svc.Key.String(), "server", dst.Addr.String())
			}
		}
	}
	return changed
}

// tunnelled reports whether s has a tunnelling real server.
func tunnelled(s *ipvs.Snapshot) bool {
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			if dst.Fwd == ipvs.Tunnel {
				return true
			}
		}
	}
	return false
}

// checkTunnels follows route changes for the tunnels' sources and MTUs.
func (d *Daemon) checkTunnels() {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snap.Load()
	if s == nil || !tunnelled(s) {
		return
	}
	next := d.cfg.Clone()
	if !d.tunnelEgress(next, s) {
		return
	}
	d.tunnelLog.report(d.log, "tunnel egress change not published", d.commit(next))
}

// DebugLevel is the log level at which the persistence engine's events are
// logged, IPVS's debug_level 9: xvs run --log-level 9.
const DebugLevel = slog.Level(-9)

// localNATPrefix names the daemon's nftables table (family inet), after its
// first interface: "xvs-eth0" (see the localnat package).
const localNATPrefix = "xvs-"

// debugDrain is how often the engine's debug events are logged.
const debugDrain = 100 * time.Millisecond

// debugLoop logs the workers' recorded engine events, as IPVS does at
// debug_level 9, off the data path.
func (d *Daemon) debugLoop() {
	defer d.wg.Done()
	t := time.NewTicker(debugDrain)
	defer t.Stop()
	ctx := context.Background()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.debug.Drain(func(e *pipeline.DebugEvent) {
			id := string(pe.AppendEscaped(nil, e.Key()))
			switch e.Kind {
			case pipeline.DebugCallID:
				d.log.Log(ctx, DebugLevel, "SIP callid", "callid", id, "bytes", e.Len, "worker", e.Worker)
			case pipeline.DebugTemplateHit, pipeline.DebugTemplateMiss:
				res := "hit"
				if e.Kind == pipeline.DebugTemplateMiss {
					res = "not hit"
				}
				d.log.Log(ctx, DebugLevel, "SIP template match", "proto", protoName(e.Proto), "callid", id, "virtual", e.VirtualAddr().String(), "result", res, "worker", e.Worker)
			}
		})
	}
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	}
	return fmt.Sprint(p)
}

// Apply carries out one configuration command and publishes the result; a
// failed command changes nothing.
func (d *Daemon) Apply(ctx context.Context, cmd ipvsadm.Command) error {
	return d.ApplyAll(ctx, []ipvsadm.Command{cmd})
}

// ApplyAll carries out commands all or nothing: they are applied to a
// candidate copy of the running configuration, which commit validates
// completely (compile, the data plane's limits) before it replaces the
// running one, so the data plane never sees a half-applied change and a
// refused one leaves everything as it was. The error of a failing command
// is its own for a single command, a *control.CommandError naming it in a
// batch.
func (d *Daemon) ApplyAll(ctx context.Context, cmds []ipvsadm.Command) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applyAllLocked(cmds)
}

// applyAllLocked is ApplyAll with d.mu held.
func (d *Daemon) applyAllLocked(cmds []ipvsadm.Command) error {
	next := d.cfg.Clone()
	for i, c := range cmds {
		if err := rules.Apply(next, c); err != nil {
			if len(cmds) == 1 {
				return err
			}
			return &control.CommandError{Index: i, Err: err}
		}
	}
	return d.commit(next)
}

// Snapshot is the configuration the data plane runs now.
func (d *Daemon) Snapshot() *ipvs.Snapshot { return d.snap.Load() }

// Mode is the backend's mode.
func (d *Daemon) Mode() dataplane.Mode { return d.backend.Mode() }

// Ifaces are the served interfaces, in port order.
func (d *Daemon) Ifaces() []string { return d.ifaces }

// Workers returns each worker's counters.
func (d *Daemon) Workers() []pipeline.Counters {
	out := make([]pipeline.Counters, len(d.workers))
	for i, w := range d.workers {
		out[i] = w.Counters()
	}
	return out
}

// Queues returns each queue's I/O counters.
func (d *Daemon) Queues() []dataplane.QueueStats {
	qs := d.backend.Queues()
	out := make([]dataplane.QueueStats, len(qs))
	for i, q := range qs {
		out[i] = q.Stats()
	}
	return out
}

// TemplateStats returns each worker's template-table counters, read on the
// workers' goroutines.
func (d *Daemon) TemplateStats(ctx context.Context) ([]table.TemplateStats, error) {
	out := make([]table.TemplateStats, len(d.runners))
	for i, r := range d.runners {
		if err := r.Do(ctx, func(w *pipeline.Worker) { out[i] = w.Templates().Stats() }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Status describes the data plane for xvsadm listings and metrics.
func (d *Daemon) Status() control.Status {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	ts, _ := d.TemplateStats(ctx) // nil if a worker is stuck: the rest still reports
	var fs []dataplane.FilterStats
	if fr, ok := d.backend.(dataplane.FilterReporter); ok {
		fs, _ = fr.FilterCounts() // nil once closed: the rest still reports
	}
	return control.Status{Mode: d.Mode(), Ifaces: d.Ifaces(), Workers: d.Workers(), Queues: d.Queues(),
		Templates: ts, ConnTable: d.ConnTableSize(), Filters: fs}
}

// statusTimeout bounds how long Status waits for the workers' table
// counters: a scrape must not hang on a wedged worker.
const statusTimeout = time.Second

var _ control.Target = (*Daemon)(nil)

// ConnTableSize is the connection capacity of one worker, for the -L banner.
func (d *Daemon) ConnTableSize() int {
	if d.opts.Conns != 0 {
		return d.opts.Conns
	}
	return pipeline.DefaultConns
}

// EachTemplate hands fn every worker's live templates, in batches of at most
// control.ListBatch read on the worker's goroutine (control.Target).
func (d *Daemon) EachTemplate(ctx context.Context, fn func([]table.TemplateInfo) error) error {
	var buf []table.TemplateInfo
	return d.each(ctx, func(w *pipeline.Worker, from, slots int) (int, int) {
		var end int
		buf, end = w.Templates().AppendInfoFrom(buf, from, slots, Monotonic())
		return end, len(buf)
	}, func() error {
		err := fn(buf)
		buf = buf[:0]
		return err
	})
}

// EachConn hands fn every worker's live connections, in batches of at most
// control.ListBatch read on the worker's goroutine (control.Target).
func (d *Daemon) EachConn(ctx context.Context, fn func([]table.ConnInfo) error) error {
	var buf []table.ConnInfo
	return d.each(ctx, func(w *pipeline.Worker, from, slots int) (int, int) {
		var end int
		buf, end = w.Conns().AppendInfoFrom(buf, from, slots, Monotonic())
		return end, len(buf)
	}, func() error {
		err := fn(buf)
		buf = buf[:0]
		return err
	})
}

// listSlots bounds the table slots one stop of a worker visits for a
// listing: about 1.5 ms for empty slots (6 ns each), so that a sparse
// million-entry table is listed in a few stops, not one per batch.
const listSlots = 1 << 18

// each walks every worker's table in pieces. On the worker's goroutine,
// read appends the live entries of at most slots slots from slot from and
// returns the slot to continue from and the entries gathered; a stop ends
// at control.ListBatch entries (read asks for no more slots than entries
// still fit), at listSlots slots, or at the table's end. Then emit runs on
// the caller's goroutine, so a slow reader of the listing never holds a
// worker.
func (d *Daemon) each(ctx context.Context, read func(w *pipeline.Worker, from, slots int) (next, have int), emit func() error) error {
	for _, r := range d.runners {
		for from, done := 0, false; !done; {
			err := r.Do(ctx, func(w *pipeline.Worker) {
				have, visited := 0, 0
				for have < control.ListBatch && visited < listSlots {
					n := control.ListBatch - have
					next, got := read(w, from, n)
					visited += next - from
					have = got
					if next-from < n {
						done = true // the table's end
						from = next
						return
					}
					from = next
				}
			})
			if err != nil {
				return err
			}
			if err := emit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Templates lists every worker's live templates, merged.
func (d *Daemon) Templates(ctx context.Context) ([]table.TemplateInfo, error) {
	var out []table.TemplateInfo
	err := d.EachTemplate(ctx, func(ts []table.TemplateInfo) error {
		out = append(out, ts...)
		return nil
	})
	return out, err
}

// Conns lists every worker's live connections, merged.
func (d *Daemon) Conns(ctx context.Context) ([]table.ConnInfo, error) {
	var out []table.ConnInfo
	err := d.EachConn(ctx, func(cs []table.ConnInfo) error {
		out = append(out, cs...)
		return nil
	})
	return out, err
}

// Forwarding reports whether the data plane is attached and every worker
// runs: from the end of Start until a worker fails or Close begins.
func (d *Daemon) Forwarding() bool { return d.forwarding.Load() }

// Reachable reports whether frames to the real server at addr can leave:
// its next hop is resolved (or it is one of this host's addresses, Local
// forwarding). The BGP announcer asks it: a VIP whose servers are all
// unreachable is withdrawn.
func (d *Daemon) Reachable(addr netip.Addr) bool {
	_, st, _ := d.hops.Resolve(addr)
	return st == nexthop.Resolved || st == nexthop.Local
}

// Err returns a channel that receives a worker's fatal error.
func (d *Daemon) Err() <-chan error { return d.runErr }

// Close stops the daemon gracefully: it saves the templates (when a snapshot
// file is configured) while the workers still run, then closes the backend
// (the XDP program is detached), waits for the workers and releases the
// interface and snapshot locks.
func (d *Daemon) Close() error {
	if !d.closing.CompareAndSwap(false, true) {
		return nil
	}
	d.forwarding.Store(false)
	close(d.stopSave)
	d.saveWG.Wait()
	if d.snapshot != nil {
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		n, err := d.saveTemplates(ctx)
		cancel()
		if err != nil {
			d.log.Error("template snapshot not saved at shutdown: the live calls' templates are lost", "err", err,
				"last_success", d.SnapshotStatus().LastSuccess)
		} else {
			d.log.Info("templates saved", "file", d.snapshot.path, "templates", n)
		}
	}
	if d.stopProber != nil {
		d.stopProber()
	}
	d.stopSync() // the master sends what the workers queued
	close(d.stop)
	d.watcher.Close() // before the backend: it wakes the queues
	err := d.backend.Close()
	d.wg.Wait()
	for _, r := range d.runners {
		r.Local.Close()
	}
	if err := d.localNAT.Close(); err != nil {
		d.log.Warn("the kernel NAT rules of Local real servers were not removed (the next start replaces them)", "table", d.localNAT.Name(), "err", err)
	}
	d.releaseLocks()
	d.log.Info("data plane stopped", "mode", d.backend.Mode().String())
	return err
}
