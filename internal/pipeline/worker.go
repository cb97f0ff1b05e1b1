// Package pipeline is the per-packet decision of the xvs load balancer: one
// function that every backend (AF_XDP, raw socket, pcap replay, in-memory
// tests) calls for each frame. It decodes the frame, finds the virtual
// service, consults the connection and persistence-template tables, asks the
// service's persistence engine for its key, schedules a real server on a miss,
// and rewrites the frame in place for direct routing (MAC) or NAT (address and
// port, with replies translated back), as Linux IPVS does.
//
// A Worker is owned by one goroutine (one per RX queue) and processes frames
// in batches: BeginBatch loads the current configuration snapshot and EndBatch
// sweeps the tables and publishes counters. Process allocates nothing, takes
// no lock, reads no clock (the caller passes now, once per batch) and never
// logs; what it decided is returned in a Decision and counted.
//
// Frames must be writable: Process rewrites them in place. A Decision refers to
// the frame (Decision.PEData may alias it) and is valid until the frame is
// reused or the next Process call on the worker, whichever comes first.
//
// The code follows the decision: batch.go (a frame's slot and state, the
// passes, finish), inbound.go (client to virtual service: connection,
// template, scheduling, rewrite), reply.go (from real servers: NAT replies
// and their own requests), shared.go (the cross-worker template index),
// frag.go and icmp.go (fragments, path-MTU errors), conn.go (connection
// states), sync.go (the sync daemons' part: a master's records, a backup's
// entries), decision.go and counters.go (what is returned and counted).
package pipeline

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

const (
	protoTCP = 6
	protoUDP = 17

	// DefaultTemplates is the default template capacity per worker: one
	// million live Call-IDs (about 100 bytes each with the default arena).
	DefaultTemplates = 1 << 20
	// DefaultConns is the default connection capacity per worker.
	DefaultConns = 1 << 18
	// DefaultSweepPeriod is how long EndBatch takes to sweep each table
	// once: the slots it visits per batch follow the time since the last
	// batch (a table's capacity per period), not the number of batches, so
	// many small batches — moderate load, where every batch follows a
	// wake-up — do not sweep more than a few large ones. An expired entry
	// is reclaimed at most this late (lookups never see it: they check
	// expiry themselves); IPVS's own timers are per entry.
	DefaultSweepPeriod = 2 * time.Second
	// minSweepSlots is the least a batch sweeps, so that a worker whose
	// clock does not move between batches still makes progress.
	minSweepSlots = 4
	// maxSweepSlots bounds a batch's sweep after a long pause (an idle
	// queue's 50 ms wake-ups): a few microseconds of extra work at most.
	maxSweepSlots = 1024
)

// Options configure a Worker.
type Options struct {
	// ID is the worker's index, 0 <= ID < the configuration's Workers; it
	// selects the worker's counter and scheduler-state slots.
	ID int
	// Config is where the worker loads the current snapshot from, once per
	// batch.
	Config *atomic.Pointer[ipvs.Snapshot]
	// Templates and Conns size the worker's tables (0 = defaults).
	Templates, Conns int
	// TemplateArenaBytes sizes the template key arena (0 = table default).
	TemplateArenaBytes int
	// MinProtectedIdle is the table's protection of live dialogs (0 = default).
	MinProtectedIdle time.Duration
	// Seed seeds the template and connection hashes. All workers of one
	// process must use the same seed when they share a Shared index.
	Seed uint64
	// Shared is the cross-worker template index; nil for a single worker.
	Shared *table.Shared
	// SweepPeriod is how long sweeping each table once takes (0 =
	// DefaultSweepPeriod).
	SweepPeriod time.Duration
	// Hops is the next-hop table: where every forwarded frame leaves (the
	// port) and its MAC addresses, from the kernel's routes and neighbours
	// (see egress.go). Nil (offline replay, tests): a real server's frame
	// leaves where it came in, to the MAC its Dest carries (Dest.NextHop),
	// and a client-bound frame keeps its MACs.
	Hops *nexthop.Table
	// ClientGateway is, without a next-hop table, the MAC frames towards
	// clients (NAT replies, real servers' own requests) are sent to, from
	// the MAC they were sent to (offline replay's gateway); zero keeps
	// their MACs. Ignored with Hops.
	ClientGateway [6]byte
	// SharedConns is the cross-worker index of NAT connections by reply
	// tuple (nil for a single worker): a reply that arrives on another
	// worker than its connection's is still translated.
	SharedConns *table.SharedConns
	// NeighHoldSlots is how many frames the worker can hold while their
	// next hops resolve (0 = DefaultNeighHoldSlots; only with Hops).
	NeighHoldSlots int
	// Debug, if set, records the engine's debug events (IPVS debug_level
	// 9) while it is enabled; see DebugLog.
	Debug *DebugLog
	// FragDatagrams sizes the fragment table (0 = DefaultFragDatagrams;
	// negative disables fragment tracking: non-first fragments for the
	// balancer are then dropped as fragment_untracked). FragHoldSlots is
	// the number of early fragments it can hold (0 = DefaultFragHoldSlots)
	// and FragTimeout how long a datagram's entry lives (0 =
	// DefaultFragTimeout). See frag.go.
	FragDatagrams int
	FragHoldSlots int
	FragTimeout   time.Duration
}

// ErrOptions reports an invalid Options value.
var ErrOptions = errors.New("invalid pipeline options")

// Worker runs the per-packet decision for one RX queue. Only its owner
// goroutine may call its methods, except Counters, which any goroutine may
// call.
type Worker struct {
	id      int
	cfg     *atomic.Pointer[ipvs.Snapshot]
	tmpl    *table.Templates
	conns   *table.Conns
	shared  *table.Shared
	seed    uint64
	period  int64          // SweepPeriod, ns
	swept   int64          // the clock at the last sweep
	hops    *nexthop.Cache // nil without a next-hop table
	gateway [6]byte        // Options.ClientGateway
	sconns  *table.SharedConns
	debug   *DebugLog

	v     view // derived from the current snapshot
	now   int64
	refr  []uint64 // shared-refresh filter (shared.go)
	slots [MaxBatch]slot

	// Scratch the decision passes by pointer (so that it does not escape
	// to the heap); no state crosses a frame in them.
	in      sched.Input
	ck      table.ConnKey
	icmpErr packet.ICMPError

	local     Counters // this batch's counts, owner-only
	published counterCells

	// Fragment tracking (frag.go).
	frag   fragTable
	reslot slot // the slot a reassembled datagram is decided in

	// Tunnels (tunnel.go).
	tun tunnelState
	// emitted is what Emitted returns: held fragments, outer fragments
	// and frames that waited for a neighbour, produced beyond the batch's
	// frames; emittedOut says where each leaves (egress.go).
	emitted     [][]byte
	emittedOut  []Out
	neigh       neighHold  // frames waiting for a neighbour (egress.go)
	heldEmitted []int32    // neighbour slots emitted this batch, freed at the next BeginBatch
	crefr       []uint64   // shared connection refresh filter (conn.go)
	skipCsum    bool       // benchmarks only: no partial-checksum check
	sync        syncWorker // connection synchronisation (sync.go)
}

// view is what a worker derives from one snapshot: lookups the snapshot does
// not offer directly, rebuilt when the snapshot pointer changes.
type view struct {
	snap *ipvs.Snapshot
	// vips holds every virtual address, for frames without ports
	// (non-first fragments) and frames that do not decode.
	vips map[netip.Addr]struct{}
	// natServers maps a NAT real server's address:port to the persistent
	// services whose engine creates templates from its own requests (IPVS
	// conn_out).
	natServers map[netip.AddrPort][]*ipvs.Service
	// natAddrs holds every NAT real server's address, for fragments (no
	// ports) that may be replies.
	natAddrs map[netip.Addr]struct{}
	// engines resolves each service's persistence engine once.
	engines map[*ipvs.Service]engine
	lastSvc *ipvs.Service
	lastEng engine
	// A one-entry cache of the last service lookup: traffic comes in runs
	// to one virtual service, and the snapshot's map hashes a 40-byte key.
	lookKey ipvs.ServiceKey
	lookSvc *ipvs.Service
	lookOK  bool
	// pmtuDisc is the pmtu_disc sysctl (tunnel.go); tunnels the
	// tunnelling destinations' prepared encapsulations, by slot.
	pmtuDisc bool
	tunnels  []tunnelHdr
	// The sync switches, compiled (sync.go).
	syncPol       syncpolicy.Policy
	syncCount     bool          // syncPol.CountsTemplates
	syncRefresh   time.Duration // sync_refresh_period: the walk's period
	syncThreshold int           // sync_threshold's threshold
}

type engine struct {
	e  pe.Engine
	id pe.ID
}

// NewWorker allocates a worker and its tables. The tables' memory is fixed
// here and never grows.
func NewWorker(o Options) (*Worker, error) {
	if o.Config == nil || o.ID < 0 || o.ID >= ipvs.MaxWorkers {
		return nil, fmt.Errorf("worker %d: %w", o.ID, ErrOptions)
	}
	if o.Templates == 0 {
		o.Templates = DefaultTemplates
	}
	if o.Conns == 0 {
		o.Conns = DefaultConns
	}
	if o.SweepPeriod <= 0 {
		o.SweepPeriod = DefaultSweepPeriod
	}
	w := &Worker{
		id:      o.ID,
		cfg:     o.Config,
		shared:  o.Shared,
		sconns:  o.SharedConns,
		gateway: o.ClientGateway,
		seed:    o.Seed,
		period:  int64(o.SweepPeriod),
		debug:   o.Debug,
	}
	if o.Hops != nil {
		w.hops = o.Hops.NewCache()
		if o.NeighHoldSlots <= 0 {
			o.NeighHoldSlots = DefaultNeighHoldSlots
		}
		w.neigh = newNeighHold(o.NeighHoldSlots)
		w.heldEmitted = make([]int32, 0, o.NeighHoldSlots)
	}
	if w.sconns != nil {
		w.crefr = make([]uint64, refreshFilterSize)
	}
	var err error
	w.tmpl, err = table.NewTemplates(table.Config{
		Capacity:         o.Templates,
		ArenaBytes:       o.TemplateArenaBytes,
		MinProtectedIdle: o.MinProtectedIdle,
		Seed:             o.Seed,
		OnRemove:         w.templateRemoved,
	})
	if err != nil {
		return nil, fmt.Errorf("worker %d templates: %w", o.ID, err)
	}
	w.conns, err = table.NewConns(table.ConnConfig{
		Capacity:         o.Conns,
		MinProtectedIdle: o.MinProtectedIdle,
		Seed:             o.Seed ^ 0x9e3779b97f4a7c15,
		Templates:        w.tmpl,
		OnRemove:         w.connRemoved,
	})
	if err != nil {
		return nil, fmt.Errorf("worker %d connections: %w", o.ID, err)
	}
	if w.shared != nil {
		w.refr = make([]uint64, refreshFilterSize)
	}
	if o.FragDatagrams >= 0 {
		if o.FragDatagrams == 0 {
			o.FragDatagrams = DefaultFragDatagrams
		}
		if o.FragHoldSlots <= 0 {
			o.FragHoldSlots = DefaultFragHoldSlots
		}
		if o.FragTimeout <= 0 {
			o.FragTimeout = DefaultFragTimeout
		}
		w.frag = newFragTable(o.FragDatagrams, o.FragHoldSlots, o.FragTimeout)
	}
	w.tun = newTunnelState(o.Seed, o.ID)
	n := len(w.frag.slots) + tunnelFragBufs + len(w.neigh.slots)
	w.emitted = make([][]byte, 0, n)
	w.emittedOut = make([]Out, 0, n)
	return w, nil
}

// ID returns the worker's index.
func (w *Worker) ID() int { return w.id }

// Templates returns the worker's template table, for owner-goroutine
// listings and snapshots.
func (w *Worker) Templates() *table.Templates { return w.tmpl }

// Conns returns the worker's connection table, for owner-goroutine listings.
func (w *Worker) Conns() *table.Conns { return w.conns }

// Snapshot returns the configuration snapshot of the current batch.
func (w *Worker) Snapshot() *ipvs.Snapshot { return w.v.snap }

// BeginBatch starts a batch at time now (monotonic nanoseconds; in replay,
// the capture time): it loads the current configuration snapshot.
func (w *Worker) BeginBatch(now int64) {
	w.now = now
	if len(w.emitted) > 0 {
		w.releaseEmitted()
	}
	w.frag.released = w.frag.released[:0]
	if len(w.neigh.order) > 0 {
		w.releaseHeld()
	}
	if s := w.cfg.Load(); s != w.v.snap {
		w.v = newView(s)
	}
	if w.sync.in != nil {
		w.applySync()
	}
}

// EndBatch sweeps a bounded part of the tables and publishes the batch's
// counters.
func (w *Worker) EndBatch() {
	el := min(max(w.now-w.swept, 0), w.period)
	w.swept = w.now
	w.tmpl.Sweep(w.now, sweepSlots(w.tmpl.Capacity(), el, w.period))
	w.conns.Sweep(w.now, sweepSlots(w.conns.Capacity(), el, w.period))
	w.fragSweep()
	if w.sync.out != nil {
		w.syncWalk()
	}
	w.publish()
}

// sweepSlots is the share of a table of capacity slots that el
// nanoseconds of a sweep period call for, within [minSweepSlots,
// maxSweepSlots].
func sweepSlots(capacity int, el, period int64) int {
	return int(min(max(int64(capacity)*el/period, minSweepSlots), maxSweepSlots))
}

func newView(s *ipvs.Snapshot) view {
	v := view{
		snap:       s,
		vips:       make(map[netip.Addr]struct{}),
		natServers: make(map[netip.AddrPort][]*ipvs.Service),
		natAddrs:   make(map[netip.Addr]struct{}),
		engines:    make(map[*ipvs.Service]engine),
	}
	if s == nil {
		return v
	}
	v.pmtuDisc = s.Sysctls.Get(ipvs.PMTUDisc) != 0
	v.tunnels = tunnelHeaders(s, v.pmtuDisc)
	sw := syncpolicy.FromValues(s.Sysctls)
	v.syncPol = sw.Compile()
	v.syncCount = v.syncPol.CountsTemplates()
	v.syncRefresh = v.syncPol.Refresh()
	v.syncThreshold = sw.Threshold
	for _, svc := range s.Services() {
		v.vips[svc.Key.Addr] = struct{}{}
		for _, d := range svc.Dests {
			if d.Fwd == ipvs.Masq {
				v.natAddrs[d.Addr.Addr()] = struct{}{}
			}
		}
		if svc.PE == "" {
			continue
		}
		e, id, ok := pe.Lookup(svc.PE)
		if !ok {
			continue // validated by the model; a vanished engine just disables the PE
		}
		v.engines[svc] = engine{e, id}
		if !e.ConnOut() || !svc.Persistent || svc.Key.Port == 0 {
			continue
		}
		for _, d := range svc.Dests {
			if d.Fwd == ipvs.Masq {
				v.natServers[d.Addr] = append(v.natServers[d.Addr], svc)
			}
		}
	}
	return v
}

func (v *view) lookup(k ipvs.ServiceKey) *ipvs.Service {
	if v.lookOK && k == v.lookKey {
		return v.lookSvc
	}
	svc := v.snap.Lookup(k.Protocol, k.Addr, k.Port)
	v.lookKey, v.lookSvc, v.lookOK = k, svc, true
	return svc
}

func (v *view) engine(svc *ipvs.Service) engine {
	if svc == v.lastSvc {
		return v.lastEng
	}
	e := v.engines[svc]
	v.lastSvc, v.lastEng = svc, e
	return e
}

func (w *Worker) isVIP(a netip.Addr) bool {
	_, ok := w.v.vips[a]
	return ok
}

// templateRemoved keeps the PersistConn gauge as templates leave the table.
// Without a loaded snapshot (no batch has run) no gauge counts the template.
func (w *Worker) templateRemoved(id table.DestID, _ table.RemoveReason) {
	if w.v.snap == nil {
		return
	}
	if st := w.v.snap.DestStats(ipvs.DestID(id)); st != nil {
		st.Worker(w.id).AddPersist(-1)
	}
}
