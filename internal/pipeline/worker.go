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
package pipeline

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
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
	// DefaultSweepBudget is how many table slots EndBatch visits per batch:
	// with 64-frame batches a 1M-entry table is swept every ~16k batches, a
	// fraction of a second at line rate, while a batch's extra work stays
	// under a microsecond.
	DefaultSweepBudget = 64
	// sharedRefreshFraction: a worker republishes a template's expiry to the
	// shared index when a quarter of the persistence timeout has passed since
	// it last did, so the shared line is written ~4 times per timeout, not per
	// packet, and never lapses while any worker uses the template.
	sharedRefreshFraction = 4
	// refreshFilterSize is the number of slots of the worker's direct-mapped
	// "published recently" filter for shared-index refreshes.
	refreshFilterSize = 1 << 14
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
	// SweepBudget is how many slots of each table EndBatch visits.
	SweepBudget int
	// NextHops resolves the MAC of frames leaving towards clients (NAT
	// replies, real servers' own requests); the frame's destination MAC then
	// becomes its source MAC. Nil (offline replay) leaves those frames' MACs
	// as they are.
	NextHops *NextHops
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
	id       int
	cfg      *atomic.Pointer[ipvs.Snapshot]
	tmpl     *table.Templates
	conns    *table.Conns
	shared   *table.Shared
	seed     uint64
	budget   int
	nextHops *NextHops
	debug    *DebugLog

	v     view // derived from the current snapshot
	now   int64
	cur   *slot // the frame being completed
	in    sched.Input
	ck    table.ConnKey
	refr  []uint64 // shared-refresh filter
	slots [MaxBatch]slot

	local     Counters // this batch's counts, owner-only
	published counterCells

	// Fragment tracking (frag.go).
	frag         fragTable
	reslot       slot   // the slot a reassembled datagram is decided in
	redeciding   bool   // deciding a reassembled datagram: its key comes from reasmPayload
	redecideSlot int32  // the held copy of its first fragment
	reasmPayload []byte // its UDP payload
	replyVIP     netip.AddrPort
	preparing    bool             // in prepare: fragments' decisions wait for complete
	icmpErr      packet.ICMPError // the ICMP error being decided (icmp.go)
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
}

type engine struct {
	e  pe.Engine
	id pe.ID
}

// MaxBatch is the most frames ProcessBatch prepares before it completes them:
// enough to overlap the table's cache misses of a whole AF_XDP batch, small
// enough that the batch's state (about 16 KiB) stays in L1/L2.
const MaxBatch = 64

// slot is one frame's state between the passes of a batch.
type slot struct {
	p    packet.Parsed
	svc  *ipvs.Service
	done bool // decided in prepare (pass, drop)
	frag bool // a non-first fragment, decided in complete (in frame order)
	wait bool // a first fragment without a key: held in complete for reassembly
	icmp bool // an ICMP message, decided in complete
	// deferred: a fragment decided in prepare; its decision enters the
	// fragment table in complete, in frame order.
	deferred bool
	pending  Reason
	keyed    bool // key and h hold the template key and its hash
	key      table.TemplateKey
	h        uint64
	pkt      pe.Packet
	scratch  [pe.MaxDataLen]byte // the engine's key buffer (pe.Engine.Fill)
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
	if o.SweepBudget == 0 {
		o.SweepBudget = DefaultSweepBudget
	}
	w := &Worker{
		id:       o.ID,
		cfg:      o.Config,
		shared:   o.Shared,
		seed:     o.Seed,
		budget:   o.SweepBudget,
		nextHops: o.NextHops,
		debug:    o.Debug,
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
	w.redecideSlot = -1
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
	if len(w.frag.emitted) > 0 {
		w.releaseEmitted()
	}
	if s := w.cfg.Load(); s != w.v.snap {
		w.v = newView(s)
	}
}

// EndBatch sweeps a bounded part of the tables and publishes the batch's
// counters.
func (w *Worker) EndBatch() {
	w.tmpl.Sweep(w.now, w.budget)
	w.conns.Sweep(w.now, w.budget)
	w.fragSweep()
	w.publish()
}

// ProcessBatch decides every frame of a batch (as Process does, with the same
// results) and stores the decisions in out (len(out) >= len(frames)); it calls
// BeginBatch and EndBatch itself. It works in three passes over up to
// MaxBatch frames: decode every frame and hash its template key, prefetching
// the table's index line; prefetch the table entries those lines point to;
// then complete each frame. The table's cache misses for the whole batch so
// overlap instead of following one another (see BenchmarkPipelineWarm).
func (w *Worker) ProcessBatch(frames [][]byte, link packet.LinkType, now int64, out []Decision) {
	w.BeginBatch(now)
	for start := 0; start < len(frames); start += MaxBatch {
		batch := frames[start:min(start+MaxBatch, len(frames))]
		for i, f := range batch {
			s := &w.slots[i]
			w.prepare(f, link, s, &out[start+i])
			if s.keyed {
				w.tmpl.Prefetch(s.h)
			}
		}
		for i := range batch {
			if s := &w.slots[i]; s.keyed {
				w.tmpl.PrefetchEntry(s.h)
			}
		}
		for i, f := range batch {
			w.complete(f, &w.slots[i], &out[start+i])
		}
	}
	w.EndBatch()
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

// Process decides what happens to one frame and rewrites it in place when it
// is forwarded. It must be called between BeginBatch and EndBatch.
func (w *Worker) Process(frame []byte, link packet.LinkType, d *Decision) {
	s := &w.slots[0]
	w.prepare(frame, link, s, d)
	w.complete(frame, s, d)
}

// prepare is a frame's first pass: decode, service lookup and, for a
// one-packet persistent service, the template key and its hash.
func (w *Worker) prepare(frame []byte, link packet.LinkType, s *slot, d *Decision) {
	*d = Decision{}
	s.svc, s.done, s.keyed, s.frag, s.wait, s.icmp, s.deferred = nil, true, false, false, false, false, false
	w.cur = s
	w.preparing = true
	w.local.Frames++
	p := &s.p
	r := p.Decode(frame, link)
	d.Decode = r
	d.Proto = p.Proto
	if p.Version != 0 {
		d.Src = netip.AddrPortFrom(p.Src, p.SrcPort)
		d.Dst = netip.AddrPortFrom(p.Dst, p.DstPort)
	}
	switch r {
	case packet.ReasonOK:
	case packet.ReasonUnknownEtherType, packet.ReasonBadLinkType, packet.ReasonUnknownAddressFamily:
		w.finish(d, ReasonNotIP)
		return
	case packet.ReasonNonFirstFragment:
		// Decided in complete, in frame order: it may follow a first
		// fragment earlier in the same batch.
		s.done, s.frag = false, true
		return
	case packet.ReasonUnsupportedProto:
		if p.Proto == packet.ProtoICMP || p.Proto == packet.ProtoICMPv6 {
			// Path-MTU errors about balanced flows are ours (icmp.go);
			// decided in complete, in frame order.
			s.done, s.icmp = false, true
			return
		}
		w.finish(d, ReasonNotService) // SCTP…: the kernel's business
		return
	default:
		// Malformed. Frames that decoded as far as an IP destination that is
		// not ours go on to the kernel; anything else is dropped and counted.
		if p.Version != 0 && p.Dst.IsValid() && !w.isVIP(p.Dst) {
			w.finish(d, ReasonNotService)
		} else {
			w.finish(d, ReasonMalformed)
		}
		return
	}
	s.done = false
	snap := w.v.snap
	if snap == nil {
		return
	}
	svc := w.v.lookup(ipvs.ServiceKey{Protocol: ipvs.Protocol(p.Proto), Addr: p.Dst, Port: p.DstPort})
	s.svc = svc
	if svc != nil && svc.Persistent && svc.OnePacket && p.Proto == protoUDP {
		// Every datagram goes to the template table: key it now.
		if !w.templateKey(frame, svc, s, d) {
			s.done = !s.wait
		}
	}
}

// complete is a frame's last pass: connection and template lookups,
// scheduling, rewrite.
func (w *Worker) complete(frame []byte, s *slot, d *Decision) {
	w.preparing = false
	if s.done {
		if s.deferred {
			w.cur = s
			w.finish(d, s.pending)
		}
		return
	}
	w.cur = s
	if s.svc == nil {
		if s.frag {
			w.follow(frame, s, d)
			return
		}
		if s.icmp {
			w.icmp(frame, s, d)
			return
		}
		if w.v.snap == nil {
			w.finish(d, ReasonNotService)
			return
		}
		w.fromRealServer(frame, d)
		return
	}
	d.Service = s.svc
	if s.wait {
		w.holdFirst(frame, s, d)
		return
	}
	w.inbound(frame, s.svc, d)
}

// holdFirst holds a first fragment whose engine found no key until its
// datagram can be reassembled (see frag.go).
func (w *Worker) holdFirst(frame []byte, s *slot, d *Decision) {
	p := &s.p
	k := fragKey{src: p.Src, dst: p.Dst, id: p.FragID, proto: p.Proto}
	w.finish(d, w.hold(frame, p, &k, k.hash(w.seed)))
}

func (w *Worker) isVIP(a netip.Addr) bool {
	_, ok := w.v.vips[a]
	return ok
}

// inbound handles a packet from a client to a virtual service.
func (w *Worker) inbound(frame []byte, svc *ipvs.Service, d *Decision) {
	p := &w.cur.p
	snap := w.v.snap
	ops := svc.OnePacket && p.Proto == protoUDP

	// 1. An existing connection (never under one-packet scheduling).
	if !ops {
		w.ck = table.ConnKey{Protocol: p.Proto, Client: d.Src, Virtual: d.Dst}
		if ref, ok := w.conns.Lookup(&w.ck, w.now); ok {
			info, _ := w.conns.Get(ref)
			dest := snap.Dest(ipvs.DestID(info.Dest))
			switch {
			case p.Proto == protoTCP && p.TCPFlags&tcpSYN != 0 && reuseConn(snap, &info, dest):
				// A new connection on a reused client port: the old one is
				// expired and the SYN scheduled afresh (ip_vs_in_hook).
				w.conns.Remove(ref)
			case dest == nil:
				// Its real server was deleted: IPVS drops the packet; with
				// expire_nodest_conn it expires the connection and
				// schedules the packet afresh (ip_vs_in_hook).
				if !snap.ExpireNodestConn {
					w.finish(d, ReasonDestGone)
					return
				}
				w.conns.Remove(ref)
			default:
				w.connUsed(ref, &info, dest, true)
				w.forward(frame, svc, dest, info.Real, ReasonConnHit, d)
				return
			}
		}
	}
	// A TCP segment creates a connection only when it is a SYN, or with
	// sloppy_tcp any segment, but never an RST (tcp_conn_schedule); the
	// others are not the balancer's and are handed back.
	if p.Proto == protoTCP && (p.TCPFlags&tcpRST != 0 || p.TCPFlags&tcpSYN == 0 && snap.Sysctls.Get(ipvs.SloppyTCP) == 0) {
		w.finish(d, ReasonTCPNoSYN)
		return
	}

	// 2. Schedule: persistence template, then the scheduler.
	var dest *ipvs.Dest
	var reason Reason
	tref := table.Ref{}
	if svc.Persistent {
		var ok bool
		dest, tref, reason, ok = w.persist(frame, svc, d)
		if !ok {
			if w.cur.wait {
				w.holdFirst(frame, w.cur, d) // no key in a first fragment
			}
			return // dropped (strict PE or no destination) or held
		}
	} else {
		w.in = sched.Input{Src: d.Src, Dst: d.Dst}
		dest = svc.Schedule(w.id, &w.in)
		if dest == nil {
			w.finish(d, ReasonNoDest)
			return
		}
		reason = ReasonScheduledOnly
	}
	real := w.realAddr(svc, dest, d.Dst)

	// 3. A connection entry, unless one-packet scheduling.
	c := dest.Stats.Worker(w.id)
	c.Conn()
	svc.Stats.Worker(w.id).Conn()
	if !ops {
		state, timeout := w.newConnState(p.Proto)
		if !tref.IsZero() {
			w.tmpl.Hold(tref)
		}
		_, res := w.conns.Insert(&w.ck, real, table.DestID(dest.ID), state, timeout, tref, w.now)
		switch res {
		case table.Inserted:
			if state == tcpEstablished {
				c.AddActive(1)
			} else {
				c.AddInactive(1)
			}
		default:
			// Overflow: forwarded without a connection entry (counted by the
			// table); the next packet is scheduled again and, persistent,
			// follows the template.
			if !tref.IsZero() {
				w.tmpl.Release(tref)
			}
		}
	}
	w.forward(frame, svc, dest, real, reason, d)
}

// templateKey builds a packet's persistence-template key (ip_vs_sched_persist
// with ip_vs_conn_fill_param_persist): protocol, client address AND the
// netmask, virtual address and service port, and the engine's key. It
// reports false when the packet was dropped (strict engine without a key).
func (w *Worker) templateKey(frame []byte, svc *ipvs.Service, s *slot, d *Decision) bool {
	p := &s.p
	s.key = table.TemplateKey{
		Protocol: p.Proto,
		Client:   svc.MaskClient(p.Src),
		Virtual:  netip.AddrPortFrom(p.Dst, svc.Key.Port),
	}
	if eng := w.v.engine(svc); eng.e != nil {
		s.pkt = pe.Packet{Proto: p.Proto, Payload: p.Payload(frame)}
		if w.redeciding {
			s.pkt.Payload = w.reasmPayload
		}
		data, st := eng.e.Fill(&s.pkt, s.scratch[:])
		if st != pe.StatusOK && p.MoreFrags && !w.redeciding && w.frag.ents != nil &&
			st != pe.StatusTooLong && st != pe.StatusWrongProtocol {
			// A first fragment without a key: the key may lie in (or run
			// into) a later fragment. Reassemble before deciding.
			d.HasPE, d.PE = true, st
			s.wait = true
			return false
		}
		d.PE = st
		d.HasPE = true
		w.local.PE[st]++
		if st == pe.StatusOK {
			s.key.PE = uint8(eng.id)
			s.key.PEData = data
			d.PEData = data
			if w.debug.Enabled() {
				w.debugEvent(DebugCallID, &s.key)
			}
		} else if svc.PEStrict {
			w.finish(d, ReasonPEStrict)
			return false
		} else {
			d.Fallback = true
			w.local.PEFallback++
		}
	}
	s.h = s.key.Hash(w.seed)
	s.keyed = true
	return true
}

func (w *Worker) debugEvent(kind DebugKind, k *table.TemplateKey) {
	var v [18]byte
	a := k.Virtual.Addr().As16()
	copy(v[:16], a[:])
	v[16], v[17] = byte(k.Virtual.Port()>>8), byte(k.Virtual.Port())
	w.debug.record(w.id, w.now, kind, k.Protocol, v, k.Virtual.Addr().Is4(), k.PEData)
}

// schedInput is the scheduler's view of the current packet, with the
// engine's hash of its key for the data-hashing schedulers (mh, sh).
func (w *Worker) schedInput(svc *ipvs.Service, d *Decision) *sched.Input {
	w.in = sched.Input{Src: d.Src, Dst: d.Dst}
	if k := &w.cur.key; w.cur.keyed && k.PE != 0 {
		if eng := w.v.engine(svc); eng.e != nil {
			w.in.PEHash = eng.e.Hash(k.PEData, 0)
			w.in.HasPE = true
		}
	}
	return &w.in
}

// persist finds or creates the persistence template for a packet
// (ip_vs_sched_persist) and returns the destination it names.
func (w *Worker) persist(frame []byte, svc *ipvs.Service, d *Decision) (*ipvs.Dest, table.Ref, Reason, bool) {
	s := w.cur
	snap := w.v.snap
	if !s.keyed && !w.templateKey(frame, svc, s, d) {
		return nil, table.Ref{}, 0, false
	}
	timeout := time.Duration(svc.Timeout) * time.Second
	h := s.h

	// This worker's template.
	ref, id, ok := w.tmpl.LookupHashed(&s.key, h, w.now)
	if s.key.PE != 0 && w.debug.Enabled() {
		if ok {
			w.debugEvent(DebugTemplateHit, &s.key)
		} else {
			w.debugEvent(DebugTemplateMiss, &s.key)
		}
	}
	if ok {
		if dest := snap.TemplateDest(ipvs.DestID(id)); dest != nil {
			w.tmpl.Touch(ref, w.now)
			w.refreshShared(h, table.DestID(dest.ID), timeout)
			return dest, ref, ReasonTemplateHit, true
		}
		w.tmpl.Invalidate(ref) // ip_vs_check_template failed: schedule afresh
	}
	reason := ReasonScheduled
	var dest *ipvs.Dest
	// Another worker's template.
	if w.shared != nil {
		if id, ok := w.shared.Get(h, w.now); ok {
			if dest = snap.TemplateDest(ipvs.DestID(id)); dest != nil {
				reason = ReasonSharedHit
			} else {
				// Invalid everywhere: reschedule and replace, converging
				// with any other worker doing the same.
				if nd := svc.Schedule(w.id, w.schedInput(svc, d)); nd != nil {
					won, _ := w.shared.Replace(h, id, table.DestID(nd.ID), w.now+int64(timeout), w.now)
					dest = snap.TemplateDest(ipvs.DestID(won))
					if dest == nil {
						dest = nd
					}
				}
				if dest == nil {
					w.finish(d, ReasonNoDest)
					return nil, table.Ref{}, 0, false
				}
			}
		}
	}
	if dest == nil {
		dest = svc.Schedule(w.id, w.schedInput(svc, d))
		if dest == nil {
			w.finish(d, ReasonNoDest)
			return nil, table.Ref{}, 0, false
		}
		if w.shared != nil {
			won, _, ok := w.shared.InsertIfAbsent(h, table.DestID(dest.ID), w.now+int64(timeout), w.now)
			if !ok {
				w.local.SharedFull++
			} else if won != table.DestID(dest.ID) {
				if wd := snap.TemplateDest(ipvs.DestID(won)); wd != nil {
					dest = wd
					reason = ReasonSharedHit
				}
			}
		}
	}
	ref, res := w.tmpl.InsertHashed(&s.key, h, table.DestID(dest.ID), timeout, w.now)
	switch res {
	case table.Inserted:
		dest.Stats.Worker(w.id).AddPersist(1)
		w.markShared(h, timeout)
	case table.InsertExists:
		// Cannot happen after a miss on the same worker; keep going.
	default:
		ref = table.Ref{}
		if reason == ReasonScheduled {
			reason = ReasonOverflow
		}
	}
	return dest, ref, reason, true
}

// refreshShared republishes a template's expiry to the shared index at most
// sharedRefreshFraction times per timeout (see markShared).
func (w *Worker) refreshShared(h uint64, id table.DestID, timeout time.Duration) {
	if w.shared == nil {
		return
	}
	q := int64(timeout) / sharedRefreshFraction
	if q <= 0 {
		q = 1
	}
	tag := h ^ uint64(w.now/q)
	slot := &w.refr[h&(refreshFilterSize-1)]
	if *slot == tag {
		return
	}
	*slot = tag
	if !w.shared.Refresh(h, w.now+int64(timeout), w.now) {
		// The shared entry lapsed (or was never published): publish ours.
		w.shared.InsertIfAbsent(h, id, w.now+int64(timeout), w.now)
	}
}

func (w *Worker) markShared(h uint64, timeout time.Duration) {
	if w.shared == nil {
		return
	}
	q := int64(timeout) / sharedRefreshFraction
	if q <= 0 {
		q = 1
	}
	w.refr[h&(refreshFilterSize-1)] = h ^ uint64(w.now/q)
}

// realAddr is where the packet goes: the real server's port, or for a
// port-0 service whose real server has no port, the packet's own.
func (w *Worker) realAddr(svc *ipvs.Service, dest *ipvs.Dest, dst netip.AddrPort) netip.AddrPort {
	if dest.Addr.Port() == 0 {
		return netip.AddrPortFrom(dest.Addr.Addr(), dst.Port())
	}
	return dest.Addr
}

// forward rewrites an inbound frame for its destination and counts it.
func (w *Worker) forward(frame []byte, svc *ipvs.Service, dest *ipvs.Dest, real netip.AddrPort, reason Reason, d *Decision) {
	p := &w.cur.p
	if dest.Fwd != ipvs.Masq && dest.Fwd != ipvs.Route {
		w.finish(d, ReasonUnsupported)
		return
	}
	if p.Link == packet.LinkEthernet {
		if dest.NextHop == ([6]byte{}) {
			// Sending it on would hand it back to our own MAC. (Checked
			// before any rewrite: the frame leaves unchanged.)
			w.finish(d, ReasonNoNextHop)
			return
		}
	}
	switch dest.Fwd {
	case ipvs.Masq:
		if !p.SetDst(frame, real.Addr(), real.Port()) {
			w.finish(d, ReasonMalformed)
			return
		}
	case ipvs.Route:
	}
	if p.Link == packet.LinkEthernet {
		var ours [6]byte
		copy(ours[:], frame[0:6])
		packet.SetSrcMAC(frame, ours)
		packet.SetDstMAC(frame, dest.NextHop)
	}
	n := p.End - p.L3Off
	dest.Stats.Worker(w.id).In(n)
	svc.Stats.Worker(w.id).In(n)
	d.Dest = dest
	d.Real = real
	w.finish(d, reason)
}

// fromRealServer handles a packet that is not to a virtual service: a NAT
// reply, a NAT real server's own request (IPVS conn_out), or not ours.
func (w *Worker) fromRealServer(frame []byte, d *Decision) {
	p := &w.cur.p
	snap := w.v.snap
	if ref, ok := w.conns.LookupReply(p.Proto, d.Src, d.Dst, w.now); ok {
		info, _ := w.conns.Get(ref)
		dest := snap.Dest(ipvs.DestID(info.Dest))
		if dest != nil && dest.Fwd == ipvs.Masq {
			w.connUsed(ref, &info, dest, false)
			if !info.Template.IsZero() {
				w.tmpl.SetAssured(info.Template)
			}
			w.reply(frame, dest, info.Key.Virtual, ReasonReplyNAT, d)
			return
		}
	}
	svcs := w.v.natServers[d.Src]
	for _, svc := range svcs {
		if w.serverOut(frame, svc, d) {
			return
		}
	}
	w.finish(d, ReasonNotService)
}

// serverOut is IPVS's conn_out for a persistence engine: a request (or, under
// one-packet scheduling, any datagram) from a NAT real server that matches no
// connection creates or re-homes the template for its key to this real
// server, so the peer's later packets reach it, and leaves with the virtual
// address as its source. Without a key the packet is not translated (IPVS:
// it passes un-NATed).
func (w *Worker) serverOut(frame []byte, svc *ipvs.Service, d *Decision) bool {
	p := &w.cur.p
	if ipvs.Protocol(p.Proto) != svc.Protocol || p.Proto != protoUDP {
		return false
	}
	var dest *ipvs.Dest
	for _, dd := range svc.Dests {
		if dd.Addr == d.Src && dd.Fwd == ipvs.Masq {
			dest = dd
			break
		}
	}
	eng := w.v.engine(svc)
	if dest == nil || eng.e == nil {
		return false
	}
	sl := w.cur
	sl.pkt = pe.Packet{Proto: p.Proto, Payload: p.Payload(frame)}
	data, st := eng.e.Fill(&sl.pkt, sl.scratch[:])
	d.PE = st
	d.HasPE = true
	if st != pe.StatusOK {
		return false
	}
	d.PEData = data
	d.Service = svc
	sl.key = table.TemplateKey{
		Protocol: p.Proto,
		Client:   svc.MaskClient(p.Dst),
		Virtual:  svc.Addr,
		PE:       uint8(eng.id),
		PEData:   data,
	}
	timeout := time.Duration(svc.Timeout) * time.Second
	h := sl.key.Hash(w.seed)
	sl.h, sl.keyed = h, true
	id := table.DestID(dest.ID)
	ref, cur, ok := w.tmpl.LookupHashed(&sl.key, h, w.now)
	if ok && cur != id {
		w.tmpl.Invalidate(ref) // re-home the Call-ID to the sender
		ok = false
	}
	if ok {
		w.tmpl.Touch(ref, w.now)
		w.refreshShared(h, id, timeout)
	} else {
		var res table.InsertResult
		ref, res = w.tmpl.InsertHashed(&sl.key, h, id, timeout, w.now)
		if res == table.Inserted {
			dest.Stats.Worker(w.id).AddPersist(1)
			w.markShared(h, timeout)
		} else {
			ref = table.Ref{}
		}
		if w.shared != nil {
			if old, live := w.shared.Get(h, w.now); live && old != id {
				w.shared.Replace(h, old, id, w.now+int64(timeout), w.now)
			} else if !live {
				w.shared.InsertIfAbsent(h, id, w.now+int64(timeout), w.now)
			}
		}
	}
	c := dest.Stats.Worker(w.id)
	c.Conn()
	svc.Stats.Worker(w.id).Conn()
	if !(svc.OnePacket && p.Proto == protoUDP) {
		// A connection from the peer to the virtual service, so the peer's
		// answers (and this server's further packets) find it.
		w.ck = table.ConnKey{Protocol: p.Proto, Client: d.Dst, Virtual: svc.Addr}
		state, ctimeout := w.newConnState(p.Proto)
		if !ref.IsZero() {
			w.tmpl.Hold(ref)
		}
		if _, res := w.conns.Insert(&w.ck, d.Src, id, state, ctimeout, ref, w.now); res == table.Inserted {
			c.AddInactive(1)
		} else if !ref.IsZero() {
			w.tmpl.Release(ref)
		}
	}
	w.reply(frame, dest, svc.Addr, ReasonServerOut, d)
	return true
}

// reply rewrites a frame from a NAT real server so that it leaves from the
// virtual address, and counts it as outgoing.
func (w *Worker) reply(frame []byte, dest *ipvs.Dest, vip netip.AddrPort, reason Reason, d *Decision) {
	p := &w.cur.p
	var mac [6]byte
	l2 := p.Link == packet.LinkEthernet && w.nextHops.Configured()
	if l2 {
		var ok bool
		if mac, ok = w.nextHops.Lookup(p.Dst); !ok {
			w.finish(d, ReasonNoNextHop) // before any rewrite: the frame is unchanged
			return
		}
	}
	if !p.SetSrc(frame, vip.Addr(), vip.Port()) {
		w.finish(d, ReasonMalformed)
		return
	}
	w.replyVIP = vip
	if l2 {
		var ours [6]byte
		copy(ours[:], frame[0:6])
		packet.SetSrcMAC(frame, ours)
		packet.SetDstMAC(frame, mac)
	}
	n := p.End - p.L3Off
	dest.Stats.Worker(w.id).Out(n)
	dest.Service.Stats.Worker(w.id).Out(n)
	d.Dest = dest
	d.Real = d.Src
	w.finish(d, reason)
}

// finish records the decision's reason.
func (w *Worker) finish(d *Decision, r Reason) {
	d.Reason = r
	if w.cur.p.Fragmented {
		if w.preparing {
			// Enter it in the fragment table in complete, after the
			// frames before it.
			w.cur.deferred, w.cur.pending = true, r
			return
		}
		if w.fragFinish(d, r) {
			w.local.Frag.Reassembled[r]++ // a reassembled datagram, not a frame
			return
		}
	}
	w.local.Reasons[r]++
	if r == ReasonMalformed || r == ReasonFragment {
		w.local.Decode[d.Decode]++
	}
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
