package daemon

// The connection sync daemons (ipvsadm --start-daemon, --stop-daemon,
// -L --daemon): a master (syncd.Sender) drains the workers' rings, a backup
// (syncd.Receiver) resolves each received entry to a destination of the
// running configuration and hands it to a worker through a ring of its own;
// the workers do the rest (internal/pipeline/sync.go). Master and backup may
// run at once, as in the kernel.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/syncd"
	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/table"
)

// syncDeliverWait bounds how long the receiver waits for room in a
// worker's ring before it drops an entry (counted: ring_full). A backup
// that just started receives a master's walk in bursts; an idle worker
// empties its ring every poll timeout (50 ms), so the receiver waits a
// little rather than lose entries, and a wedged worker costs it at most
// this much per entry.
const syncDeliverWait = 20 * time.Millisecond

// ErrClosing reports a sync daemon started while the daemon shuts down.
var ErrClosing = errors.New("xvs is shutting down")

// syncTimeout bounds the workers' answer when a daemon is started or
// stopped (they take or drop their rings between two batches).
const syncTimeout = 5 * time.Second

// syncDaemons are the running sync daemons.
type syncDaemons struct {
	mu     sync.Mutex
	master *syncMaster
	backup *syncBackup
}

type syncMaster struct {
	cfg    ipvsadm.Daemon // as resolved, for -L --daemon
	snd    *syncd.Sender
	rings  []*syncring.Ring
	cancel context.CancelFunc
	done   chan struct{}
}

type syncBackup struct {
	d      *Daemon
	cfg    ipvsadm.Daemon
	rcv    *syncd.Receiver
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex // the rings' producer side: one goroutine per sync port
	rings []*syncring.Ring

	noService, noDest, ringFull atomic.Uint64
}

// daemonView is a resolved syncd.Config as ipvsadm shows it.
func daemonView(state ipvsadm.DaemonState, c syncd.Config) ipvsadm.Daemon {
	return ipvsadm.Daemon{State: state, McastIface: c.Interface, SyncID: c.SyncID, SyncMaxLen: uint16(c.MaxLen),
		McastGroup: c.Group, McastPort: c.Port, McastTTL: c.TTL}
}

// StartSync starts a sync daemon (xvsadm --start-daemon): an error
// wrapping syncd.ErrRunning when one of that role runs, syncd.ErrInterface
// or syncd.ErrGroup for bad options; nothing changes on error.
func (d *Daemon) StartSync(ctx context.Context, want ipvsadm.Daemon) error {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	if d.closing.Load() {
		return fmt.Errorf("sync daemon: %w", ErrClosing)
	}
	if want.McastIface == "" {
		want.McastIface = d.ifaces[0] // the first leg (xvs run --iface)
	}
	sw := syncpolicy.FromValues(d.snap.Load().Sysctls)
	cfg := syncd.Config{Interface: want.McastIface, SyncID: want.SyncID, MaxLen: int(want.SyncMaxLen),
		Group: want.McastGroup, Port: want.McastPort, TTL: want.McastTTL}
	rings := make([]*syncring.Ring, len(d.runners))
	for i := range rings {
		rings[i] = syncring.New(0)
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	switch want.State {
	case ipvsadm.Master:
		if d.sync.master != nil {
			return syncd.ErrRunning
		}
		snd, err := syncd.NewSender(syncd.SenderConfig{Config: cfg, Switches: sw, Rings: rings, Clock: Monotonic, Times: true})
		if err != nil {
			return err
		}
		if err := d.eachWorker(ctx, func(i int, w *pipeline.Worker) { w.SetSyncMaster(rings[i]) }); err != nil {
			d.eachWorker(context.Background(), func(_ int, w *pipeline.Worker) { w.SetSyncMaster(nil) })
			snd.Close()
			return fmt.Errorf("sync daemon: %w", err)
		}
		run, stop := context.WithCancel(context.Background())
		m := &syncMaster{cfg: daemonView(ipvsadm.Master, snd.Config()), snd: snd, rings: rings, cancel: stop, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			snd.Run(run)
		}()
		d.sync.master = m
		d.log.Info("sync daemon started", "state", "master", "mcast", m.cfg.McastIface, "syncid", m.cfg.SyncID,
			"group", m.cfg.McastGroup.String(), "port", m.cfg.McastPort, "maxlen", m.cfg.SyncMaxLen, "switches", sw.String())
	case ipvsadm.Backup:
		if d.sync.backup != nil {
			return syncd.ErrRunning
		}
		b := &syncBackup{d: d, rings: rings, done: make(chan struct{})}
		rcv, err := syncd.NewReceiver(syncd.ReceiverConfig{Config: cfg, Switches: sw, Deliver: b.deliver, Clock: Monotonic})
		if err != nil {
			return err
		}
		if err := d.eachWorker(ctx, func(i int, w *pipeline.Worker) { w.SetSyncBackup(rings[i]) }); err != nil {
			d.eachWorker(context.Background(), func(_ int, w *pipeline.Worker) { w.SetSyncBackup(nil) })
			rcv.Close()
			return fmt.Errorf("sync daemon: %w", err)
		}
		b.rcv, b.cfg = rcv, daemonView(ipvsadm.Backup, rcv.Config())
		run, stop := context.WithCancel(context.Background())
		b.cancel = stop
		go func() {
			defer close(b.done)
			rcv.Run(run)
		}()
		d.sync.backup = b
		d.log.Info("sync daemon started", "state", "backup", "mcast", b.cfg.McastIface, "syncid", b.cfg.SyncID,
			"group", b.cfg.McastGroup.String(), "port", b.cfg.McastPort, "maxlen", b.cfg.SyncMaxLen)
	default:
		return fmt.Errorf("sync daemon state %d: %w", want.State, ipvs.ErrInvalid)
	}
	return nil
}

// StopSync stops a sync daemon (xvsadm --stop-daemon): an error wrapping
// syncd.ErrNotRunning when none of that role runs. A master sends what its
// workers queued before it stops.
func (d *Daemon) StopSync(ctx context.Context, state ipvsadm.DaemonState) error {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	return d.stopSyncLocked(ctx, state)
}

func (d *Daemon) stopSyncLocked(ctx context.Context, state ipvsadm.DaemonState) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	switch state {
	case ipvsadm.Master:
		m := d.sync.master
		if m == nil {
			return syncd.ErrNotRunning
		}
		// The workers stop queueing first, then the sender drains their
		// rings one last time and sends it all (Run's final poll).
		err := d.eachWorker(ctx, func(_ int, w *pipeline.Worker) { w.SetSyncMaster(nil) })
		m.cancel()
		<-m.done
		m.snd.Close()
		d.sync.master = nil
		d.log.Info("sync daemon stopped", "state", "master")
		return err
	case ipvsadm.Backup:
		b := d.sync.backup
		if b == nil {
			return syncd.ErrNotRunning
		}
		b.rcv.Close()
		b.cancel()
		<-b.done
		err := d.eachWorker(ctx, func(_ int, w *pipeline.Worker) { w.SetSyncBackup(nil) })
		d.sync.backup = nil
		d.log.Info("sync daemon stopped", "state", "backup")
		return err
	}
	return fmt.Errorf("sync daemon state %d: %w", state, ipvs.ErrInvalid)
}

// stopSync stops both daemons (at shutdown, while the workers still run).
func (d *Daemon) stopSync() {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	for _, s := range []ipvsadm.DaemonState{ipvsadm.Master, ipvsadm.Backup} {
		if err := d.stopSyncLocked(context.Background(), s); err != nil && !errors.Is(err, syncd.ErrNotRunning) {
			d.log.Warn("sync daemon stop", "err", err)
		}
	}
}

// eachWorker runs fn on every worker's goroutine.
func (d *Daemon) eachWorker(ctx context.Context, fn func(i int, w *pipeline.Worker)) error {
	for i, r := range d.runners {
		if err := r.Do(ctx, func(w *pipeline.Worker) { fn(i, w) }); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
	}
	return nil
}

// SyncDaemons lists the running sync daemons as -L --daemon shows them,
// master first, with the parameters they run with.
func (d *Daemon) SyncDaemons() []ipvsadm.Daemon {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	var out []ipvsadm.Daemon
	if m := d.sync.master; m != nil {
		out = append(out, m.cfg)
	}
	if b := d.sync.backup; b != nil {
		out = append(out, b.cfg)
	}
	return out
}

// SyncStatus describes the sync daemons for the metrics.
func (d *Daemon) SyncStatus() control.SyncStatus {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	var st control.SyncStatus
	if m := d.sync.master; m != nil {
		st.Master = &control.MasterStatus{Config: m.cfg, Stats: m.snd.Stats()}
	}
	if b := d.sync.backup; b != nil {
		st.Backup = &control.BackupStatus{Config: b.cfg, Stats: b.rcv.Stats(),
			Rejected: map[string]uint64{"no_service": b.noService.Load(), "no_dest": b.noDest.Load(), "ring_full": b.ringFull.Load()}}
		now := Monotonic()
		for _, p := range b.rcv.Peers() {
			st.Backup.Peers = append(st.Backup.Peers, control.SyncPeer{Addr: p.Addr, SyncID: p.SyncID, Datagrams: p.Datagrams,
				Age: time.Duration(max(now-p.Last, 0))})
		}
	}
	return st
}

var _ control.SyncController = (*Daemon)(nil)

// syncSwitches hands changed sync switches to a running master (commit).
func (d *Daemon) syncSwitches(s *ipvs.Snapshot) {
	d.sync.mu.Lock()
	defer d.sync.mu.Unlock()
	if m := d.sync.master; m != nil {
		m.snd.SetSwitches(syncpolicy.FromValues(s.Sysctls))
	}
}

// syncDest resolves a received entry's destination in the running
// configuration as ip_vs_find_dest does: the virtual service by protocol,
// address and port, then the real server by address and port, or by
// address with port 0. xvs has no fwmark services.
func syncDest(snap *ipvs.Snapshot, c *syncproto.Conn) (*ipvs.Dest, bool) {
	if snap == nil || c.FWMark != 0 {
		return nil, false
	}
	svc := snap.Lookup(ipvs.Protocol(c.Protocol), c.VAddr, c.VPort)
	if svc == nil {
		return nil, false
	}
	for _, port := range []uint16{c.DPort, 0} {
		a := netip.AddrPortFrom(c.DAddr, port)
		for _, d := range svc.Dests {
			if d.Addr == a {
				return d, true
			}
		}
	}
	return nil, true
}

// deliver hands an accepted entry to a worker (the receiver's Deliver): a
// template to one worker, chosen by its key (it publishes it in the
// cross-worker index), a connection to every worker, since the receiver
// cannot tell which queue the NIC will steer its next packet to. It
// reports false when the entry has no destination here or no room.
func (b *syncBackup) deliver(e *syncd.Entry) bool {
	c := &e.Conn
	dest, svc := syncDest(b.d.snap.Load(), c)
	if dest == nil {
		if svc {
			b.noDest.Add(1)
		} else {
			b.noService.Add(1)
		}
		return false
	}
	var rec syncring.Record
	rec.SetAddrs(c.CAddr, c.VAddr, c.DAddr)
	rec.Protocol, rec.Flags, rec.State = c.Protocol, c.Flags, c.State
	rec.CPort, rec.VPort, rec.DPort, rec.FWMark, rec.Timeout = c.CPort, c.VPort, c.DPort, c.FWMark, c.Timeout
	rec.Dest = uint32(dest.ID)
	rec.PE = e.PE
	rec.SetPEData(c.PEData)
	if c.Times != (syncproto.Times{}) {
		// The master's Unix times on this host's monotonic clock.
		off := Monotonic() - time.Now().UnixNano()
		if c.Times.Queued != 0 {
			rec.Queued = c.Times.Queued + off
		}
		if c.Times.Used != 0 {
			rec.Used = c.Times.Used + off
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.Template() {
		k := table.TemplateKey{Protocol: c.Protocol, Client: c.CAddr, Virtual: netip.AddrPortFrom(c.VAddr, c.VPort),
			PE: uint8(e.PE), PEData: c.PEData}
		return b.push(b.rings[k.Hash(0)%uint64(len(b.rings))], &rec)
	}
	ok := true
	for _, r := range b.rings {
		ok = b.push(r, &rec) && ok
	}
	return ok
}

// push queues rec in r, waiting up to syncDeliverWait for room.
func (b *syncBackup) push(r *syncring.Ring, rec *syncring.Record) bool {
	for deadline := time.Now().Add(syncDeliverWait); r.Len() >= r.Cap() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if !r.Push(rec) {
		b.ringFull.Add(1)
		return false
	}
	return true
}
