package pipeline

// Fragment tracking: every fragment of a datagram goes where the datagram's
// decision sends it, whatever order the fragments arrive in.
//
// Only the first fragment (offset 0) carries the UDP/TCP header, so only it
// can be scheduled. The worker keeps a fixed-capacity fragment table keyed
// by (source, destination, protocol, IP identification) — the address family
// is part of the addresses — and:
//
//   - when a first fragment is decided (forwarded, dropped or passed), enters
//     the decision: the real server, the NAT rewrite (inbound: new
//     destination address; reply: the virtual address as new source), the
//     ports and the engine's key, for logs;
//   - a later fragment whose decision is there follows it: it is rewritten in
//     place (NAT: the address only — the L4 checksum lives in the first
//     fragment and covers the whole datagram, see package packet) and
//     forwarded as a fragment, zero copy, with ReasonFragmentFollowed; or it
//     gets its datagram's drop or pass reason;
//   - a later fragment for the balancer (to a virtual address, or from a NAT
//     real server) whose decision is not there yet arrived early: it must
//     wait, but the frame is the backend's again at Transmit (package
//     dataplane's ownership rule), so the worker COPIES it into its hold
//     buffer (ReasonFragmentHeld; the frame itself is recycled). When the
//     decision arrives the held copies are rewritten and emitted: Emitted
//     lists them until the next BeginBatch, and the backend transmits them
//     (dataplane.CopyTransmitter). Each held copy has an id (Decision.Hold of
//     the frame it was made of), and Released tells what became of it —
//     sent, discarded, timed out or evicted — for a backend that reports
//     per frame (the replay's decision log);
//   - a first fragment of a persistent service whose engine finds no key in
//     it (the Call-ID lies in a later fragment, or straddles the boundary) is
//     held too; once the fragments held for it cover the datagram, the
//     worker reassembles the L4 payload into a scratch buffer, decides the
//     datagram on the whole payload (as IPVS does after the kernel's
//     reassembly), and emits every held fragment, as fragments;
//   - held copies of a datagram that is never decided time out and are
//     counted (FragCounters.Timeout); duplicates of a held fragment, and
//     overlapping fragments (RFC 5722), are dropped (ReasonFragmentDuplicate),
//     so nothing is emitted twice. A duplicate that arrives after the
//     decision is forwarded like the original (as a router would: the
//     receiver's reassembly discards it).
//
// Non-first fragments of other protocols (ICMP…) with no decision go to the
// kernel, which reassembles them. A datagram decided "pass" cannot have its
// held copies passed (they are no longer frames): they are counted as
// discarded.
//
// Memory is fixed at NewWorker: FragDatagrams entries (about 330 bytes each
// with room for a 255-byte key) and FragHoldSlots copies of FragSlotBytes.
// With the defaults, 4096 datagrams and 256 held frames: about 2.4 MiB per
// worker. Unfragmented packets pay one flag test (Parsed.Fragmented in
// finish); the table is touched only by fragments.

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// Limits of fragment tracking.
const (
	// DefaultFragDatagrams is the fragment table's capacity per worker:
	// datagrams decided or waiting within the fragment timeout. A SIP farm
	// fragments only its large INVITEs and re-INVITEs (a few per call);
	// 4096 covers over a thousand fragmented datagrams a second per worker
	// for the whole timeout, and a full bucket reclaims its oldest entry
	// (decided ones first), so the table never refuses a new datagram.
	DefaultFragDatagrams = 4096
	// fragWays is the bucket size: a lookup compares at most 8 keys, on
	// consecutive entries.
	fragWays = 8
	// DefaultFragTimeout is how long an entry lives: the decision of a
	// datagram for its later fragments, and the copies of a datagram that
	// waits. The fragments of one datagram leave the sender back to back,
	// so on any real path they arrive within milliseconds of each other;
	// 3 s is ten times IPv4's and twenty times IPv6's… reassembly needs in
	// practice, but far below the RFC maxima (IPv4 up to 15 s per RFC 791's
	// suggestion, Linux ipfrag_time 30 s; IPv6 60 s, RFC 8200 §4.5) because
	// a waiting datagram holds scarce buffer space and, with a 16-bit IPv4
	// identification, a long-lived decision could be followed by an
	// unrelated datagram reusing the id. SIP retransmits an unanswered
	// request (Timer A, 500 ms doubling) as a new IP datagram, so a
	// datagram that lost a fragment is replaced, not waited for.
	DefaultFragTimeout = 3 * time.Second
	// DefaultFragHoldSlots is the number of fragment copies a worker can
	// hold while their datagrams wait (1 MiB with FragSlotBytes).
	DefaultFragHoldSlots = 256
	// FragSlotBytes is the size of one held copy: the largest AF_XDP frame
	// (afxdp's large frame size); larger frames (jumbo fragments) cannot
	// wait and are dropped as fragment_overflow.
	FragSlotBytes = 4096
	// fragSlotRoom is the room kept in front of each held copy, beyond
	// FragSlotBytes, so that a copy for a tunnel grows in place as a live
	// frame does (dataplane.Headroom).
	fragSlotRoom   = 128
	fragSlotStride = fragSlotRoom + FragSlotBytes
	// MaxFragDatagramBytes bounds the L4 datagram (UDP header and payload)
	// a waiting datagram may hold and the reassembly buffer. SIP over UDP
	// stays well below it (RFC 3261 §18.1.1 moves requests within 200 bytes
	// of the path MTU to TCP; the large INVITEs that fragment anyway carry a
	// few kilobytes of SDP); a bigger datagram's early fragments are dropped
	// as fragment_overflow.
	MaxFragDatagramBytes = 16 << 10
	// MaxFragsPerDatagram bounds the copies one waiting datagram may hold,
	// so that tiny fragments cannot take the whole buffer: 16 KiB in pieces
	// of 512 bytes or more (IPv4's minimum MTU of 576 leaves 552).
	MaxFragsPerDatagram = 32
	// fragSweepBuckets is how many buckets EndBatch visits for expired
	// waiting datagrams, only while some are waiting.
	fragSweepBuckets = 4
)

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

func (k *fragKey) hash(seed uint64) uint64 {
	s, d := k.src.As16(), k.dst.As16()
	h := seed ^ uint64(k.id)<<8 ^ uint64(k.proto)
	h = fragMix(h ^ binary.LittleEndian.Uint64(s[:8]))
	h = fragMix(h ^ binary.LittleEndian.Uint64(s[8:]))
	h = fragMix(h ^ binary.LittleEndian.Uint64(d[:8]))
	return fragMix(h ^ binary.LittleEndian.Uint64(d[8:]))
}

func fragMix(h uint64) uint64 {
	hi, lo := bits.Mul64(h, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

const (
	fragFree uint8 = iota
	fragWaiting
	fragDecided
)

type fragEntry struct {
	key      fragKey
	expires  int64
	state    uint8
	reply    bool // decided: a reply (or a real server's own request) leaving from vip
	hasFirst bool // waiting: the first fragment is held (its engine found no key)
	hasPE    bool
	pe       pe.Status
	peLen    uint8
	reason   Reason // decided: the first fragment's reason
	dest     ipvs.DestID
	real     netip.AddrPort // inbound: where the datagram goes; reply: the real server it came from
	vip      netip.AddrPort // reply: the virtual address and port it leaves from
	sport    uint16         // the datagram's ports, from the first fragment
	dport    uint16
	total    int32 // waiting: the datagram's L4 length once its last fragment is held, else -1
	held     int32 // waiting: first held copy (sorted by offset), -1 for none
	nheld    int32
	idx      int32 // the entry's own index (its key buffer in fragTable.pes)
}

// heldFrag describes one held copy in the hold buffer.
type heldFrag struct {
	hold uint64 // the copy's id (Decision.Hold)
	next int32
	n    uint16 // frame length
	off  uint16 // fragment offset in the L4 datagram
	doff uint16 // offset of the fragment's data in the frame (the L4 header for the first fragment)
	dlen uint16
	link packet.LinkType
}

type fragTable struct {
	ents    []fragEntry
	pes     []byte // pe.MaxDataLen per entry
	mask    uint64 // bucket mask
	timeout int64
	waiting int // entries in state fragWaiting
	sweep   uint64

	buf   []byte // fragSlotStride per slot: room, then the copy
	slots []heldFrag
	free  int32 // free-slot list head

	emitted  []int32 // slots emitted in this batch (Worker.emit), freed at the next BeginBatch
	released []Release
	seq      uint64 // the last hold id given

	reasm []byte // MaxFragDatagramBytes
}

func newFragTable(datagrams, slots int, timeout time.Duration) fragTable {
	nb := 1
	for nb*fragWays < datagrams {
		nb <<= 1
	}
	t := fragTable{
		ents:     make([]fragEntry, nb*fragWays),
		pes:      make([]byte, nb*fragWays*pe.MaxDataLen),
		mask:     uint64(nb - 1),
		timeout:  int64(timeout),
		buf:      make([]byte, slots*fragSlotStride),
		slots:    make([]heldFrag, slots),
		free:     -1,
		emitted:  make([]int32, 0, slots),
		released: make([]Release, 0, slots+MaxBatch),
		reasm:    make([]byte, MaxFragDatagramBytes),
	}
	for i := range t.ents {
		t.ents[i].idx = int32(i)
	}
	for i := slots - 1; i >= 0; i-- {
		t.slots[i].next = t.free
		t.free = int32(i)
	}
	return t
}

func (t *fragTable) slotBuf(i int32) []byte {
	b := int(i)*fragSlotStride + fragSlotRoom
	return t.buf[b : b+int(t.slots[i].n)]
}

// slotRoom is the room in front of held copy i (see dataplane.Batch.Room).
func (t *fragTable) slotRoom(i int32) []byte {
	b := int(i) * fragSlotStride
	return t.buf[b : b+fragSlotRoom : b+fragSlotStride]
}

func (t *fragTable) freeSlot(i int32) {
	t.slots[i].next = t.free
	t.free = i
}

// Emitted returns the frames the worker produced besides its input during
// the last batch (and at the start of this one): held copies of fragments
// whose datagram was decided, frames that waited for their next hop, each
// rewritten, and the outer fragments of tunnelled datagrams too large for
// the egress MTU after the first (tunnel.go); EmittedOut says where each
// leaves. They belong to the worker and stay valid until the next
// BeginBatch (ProcessBatch calls it); a backend copies them into its own
// memory (see
// dataplane.CopyTransmitter). Most batches emit nothing.
func (w *Worker) Emitted() [][]byte { return w.emitted }

// Fate is what became of a held copy (see Release).
type Fate uint8

const (
	// FateSent: its datagram was decided and the copy was emitted,
	// rewritten (Worker.Emitted).
	FateSent Fate = iota
	// FateDiscarded: its datagram was decided but the copy was not sent;
	// Release.Reason says why (the datagram's drop or pass reason,
	// dest_gone, no_next_hop, fragment_duplicate).
	FateDiscarded
	// FateTimeout: its datagram was not decided within the fragment
	// timeout (a fragment never came); FragCounters.Timeout.
	FateTimeout
	// FateEvicted: its waiting datagram's entry was reclaimed for a newer
	// datagram; FragCounters.Evicted.
	FateEvicted
	numFates
)

var fateNames = [numFates]string{"sent", "discarded", "timeout", "evicted"}

func (f Fate) String() string {
	if f < numFates {
		return fateNames[f]
	}
	return "unknown"
}

// Release reports the end of one held copy: the frame whose Decision had
// Reason fragment_held and this Hold. Decision is the copy's final
// decision: for FateSent, fragment_followed (for the first fragment of a
// datagram decided after reassembly, the datagram's own decision), with its
// real server; for FateDiscarded, the reason it was not sent; for
// FateTimeout and FateEvicted, fragment_held. Src and Dst are the
// datagram's, as received, with its ports when they are known.
type Release struct {
	Hold uint64
	Fate Fate
	Decision
}

// Released returns the held copies whose fate was settled during the last
// batch (emitted, discarded, timed out, evicted), for a backend that
// reports per frame. Like Emitted they belong to the worker and stay valid
// until the next BeginBatch (PEData: until the next Process call). A batch
// of up to MaxBatch frames records every release.
func (w *Worker) Released() []Release { return w.frag.released }

// release records the end of held copy i.
func (w *Worker) release(i int32, f Fate, d *Decision) {
	t := &w.frag
	if len(t.released) < cap(t.released) {
		t.released = append(t.released, Release{Hold: t.slots[i].hold, Fate: f, Decision: *d})
	}
}

// EmittedOut says where each of Emitted's frames leaves.
func (w *Worker) EmittedOut() []Out { return w.emittedOut }

// CountUnsent records n emitted frames that the queue could not transmit.
func (w *Worker) CountUnsent(n int) { w.local.Unsent += uint64(n) }

// releaseEmitted gives the slots of the last batch's emitted copies back.
func (w *Worker) releaseEmitted() {
	t := &w.frag
	for _, i := range t.emitted {
		t.freeSlot(i)
	}
	t.emitted = t.emitted[:0]
	clear(w.emitted)
	w.emitted = w.emitted[:0]
	w.emittedOut = w.emittedOut[:0]
	w.tun.used = 0
	w.neigh.free = append(w.neigh.free, w.heldEmitted...)
	w.heldEmitted = w.heldEmitted[:0]
}

// fragLookup returns the live entry for k, or nil. An expired entry met on
// the way is freed (its held copies counted as timed out).
func (w *Worker) fragLookup(k *fragKey, h uint64) *fragEntry {
	t := &w.frag
	b := int(h&t.mask) * fragWays
	for i := b; i < b+fragWays; i++ {
		e := &t.ents[i]
		if e.state == fragFree || e.key != *k {
			continue
		}
		if e.expires <= w.now {
			w.fragExpire(e)
			return nil
		}
		return e
	}
	return nil
}

// fragInsert returns a fresh entry for k (free, expired, or reclaimed from
// the bucket: the decided entry closest to expiry first, else the waiting
// one, whose copies are counted as evicted).
func (w *Worker) fragInsert(k *fragKey, h uint64) *fragEntry {
	t := &w.frag
	b := int(h&t.mask) * fragWays
	var victim *fragEntry
	for i := b; i < b+fragWays; i++ {
		e := &t.ents[i]
		if e.state == fragFree {
			victim = e
			break
		}
		if e.expires <= w.now {
			w.fragExpire(e)
			victim = e
			break
		}
		if victim == nil || (e.state == fragDecided && victim.state == fragWaiting) ||
			(e.state == victim.state && e.expires < victim.expires) {
			victim = e
		}
	}
	if victim.state != fragFree {
		w.local.Frag.Replaced++
		if victim.state == fragWaiting {
			w.local.Frag.Evicted += uint64(victim.nheld)
			w.fragRelease(victim, FateEvicted)
		}
	}
	*victim = fragEntry{key: *k, expires: w.now + t.timeout, held: -1, total: -1, idx: victim.idx}
	w.local.Frag.Entries++
	return victim
}

// fragExpire frees an entry whose time is up.
func (w *Worker) fragExpire(e *fragEntry) {
	if e.state == fragWaiting {
		w.local.Frag.Timeout += uint64(e.nheld)
		w.fragRelease(e, FateTimeout)
	}
	e.state = fragFree
}

// fragRelease frees a waiting entry's copies (the caller counts them).
func (w *Worker) fragRelease(e *fragEntry, f Fate) {
	t := &w.frag
	d := Decision{Reason: ReasonFragmentHeld, Proto: e.key.proto,
		Src: netip.AddrPortFrom(e.key.src, 0), Dst: netip.AddrPortFrom(e.key.dst, 0)}
	for i := e.held; i >= 0; {
		next := t.slots[i].next
		w.release(i, f, &d)
		t.freeSlot(i)
		i = next
	}
	e.held, e.nheld = -1, 0
	if e.state == fragWaiting {
		t.waiting--
	}
	e.state = fragFree
}

// fragSweep expires a few buckets' waiting datagrams; it runs only while
// some datagram waits, so that timed-out copies free their slots and are
// counted even when no later fragment looks them up.
func (w *Worker) fragSweep() {
	t := &w.frag
	if t.waiting == 0 {
		return
	}
	for range fragSweepBuckets {
		b := int(t.sweep&t.mask) * fragWays
		t.sweep++
		for i := b; i < b+fragWays; i++ {
			if e := &t.ents[i]; e.state == fragWaiting && e.expires <= w.now {
				w.fragExpire(e)
			}
		}
	}
}

func (w *Worker) fragPE(e *fragEntry) []byte {
	i := int(e.idx) * pe.MaxDataLen
	return w.frag.pes[i : i+pe.MaxDataLen]
}

// isNATServer reports whether a is the address of a NAT real server of any
// service: its traffic may be a reply the balancer translates.
func (w *Worker) isNATServer(a netip.Addr) bool {
	_, ok := w.v.natAddrs[a]
	return ok
}

// follow decides a non-first fragment (no ports): it follows its datagram's
// decision, waits for it, or goes to the kernel.
func (w *Worker) follow(frame []byte, s *slot, d *Decision) Reason {
	p := &s.p
	if w.v.snap == nil {
		return ReasonNotService
	}
	ours := w.isVIP(p.Dst) || w.isNATServer(p.Src)
	if w.frag.ents == nil {
		if ours && (p.Proto == protoUDP || p.Proto == protoTCP) {
			return ReasonFragmentUntracked
		}
		return ReasonNotService
	}
	k := fragKey{src: p.Src, dst: p.Dst, id: p.FragID, proto: p.Proto}
	h := k.hash(w.seed)
	if e := w.fragLookup(&k, h); e != nil && e.state == fragDecided {
		w.fragDecision(e, d)
		out, left, r := w.followRewrite(s.room, frame, p, e, d)
		s.out, s.left = out, left
		return r
	} else if e == nil && (!ours || (p.Proto != protoUDP && p.Proto != protoTCP)) {
		// Not the balancer's, or a protocol it does not balance: the
		// kernel reassembles it.
		return ReasonNotService
	}
	return w.hold(frame, p, &k, h, d)
}

// holdFirst holds a first fragment whose engine found no key until its
// datagram can be reassembled.
func (w *Worker) holdFirst(frame []byte, s *slot, d *Decision) Reason {
	p := &s.p
	k := fragKey{src: p.Src, dst: p.Dst, id: p.FragID, proto: p.Proto}
	return w.hold(frame, p, &k, k.hash(w.seed), d)
}

// fragDecision copies what a decided entry knows into a later fragment's
// decision: the datagram's ports and key.
func (w *Worker) fragDecision(e *fragEntry, d *Decision) {
	d.Src = netip.AddrPortFrom(d.Src.Addr(), e.sport)
	d.Dst = netip.AddrPortFrom(d.Dst.Addr(), e.dport)
	if e.hasPE {
		d.HasPE, d.PE = true, e.pe
		if e.pe == pe.StatusOK {
			d.PEData = w.fragPE(e)[:e.peLen]
		}
	}
}

// followRewrite rewrites a fragment (a live frame or a held copy, decoded
// into p, with room in front of it) as its datagram's first fragment was,
// counts it for its real server, and returns the frame as it leaves (grown
// into room for a tunnel) and ReasonFragmentFollowed; or returns the reason
// it is not forwarded (the first fragment's drop or pass reason, or a
// problem that arose since: its real server deleted, no next hop, too large
// for its tunnel).
func (w *Worker) followRewrite(room, frame []byte, p *packet.Parsed, e *fragEntry, d *Decision) (out, left []byte, r Reason) {
	switch {
	case e.reason == ReasonTunnelICMPTooBig:
		// The first fragment was answered with an ICMP error: the
		// datagram cannot reach its server (the kernel drops it whole).
		return frame, room, ReasonTunnelTooBig
	case e.reason.Verdict() != Forward:
		return frame, room, e.reason
	}
	dest := w.v.snap.Dest(e.dest)
	if dest == nil {
		return frame, room, ReasonDestGone
	}
	var eg egress
	if e.reply {
		eg = w.egressTo(p, p.Dst, [6]byte{}, false)
	} else {
		eg = w.egressTo(p, dest.Addr.Addr(), dest.NextHop, true)
	}
	if r := eg.refusal(); r != 0 {
		return frame, room, r
	}
	local := eg.st == nexthop.Local
	out, left = frame, room
	switch {
	case e.reply:
		if !p.SetSrc(frame, e.vip.Addr(), 0) {
			return frame, room, ReasonMalformed
		}
	case local:
	case dest.Fwd == ipvs.Tunnel:
		if out, left, r = w.encap(room, frame, p, dest, false, &eg, d); r != 0 {
			return out, left, r
		}
	case dest.Fwd == ipvs.Masq:
		if !p.SetDst(frame, e.real.Addr(), 0) {
			return frame, room, ReasonMalformed
		}
	}
	n := p.End - p.L3Off
	if e.reply {
		dest.Stats.Worker(w.id).Out(n)
		dest.Service.Stats.Worker(w.id).Out(n)
	} else {
		dest.Stats.Worker(w.id).In(n)
		dest.Service.Stats.Worker(w.id).In(n)
	}
	d.Service = dest.Service
	d.Dest = dest
	d.Real = e.real
	if local {
		d.Out.Local = true
		d.Out.LocalPort = localPort(dest)
		w.local.Local++
		return out, left, ReasonFragmentFollowed
	}
	return out, left, w.send(out, &eg, ReasonFragmentFollowed, d)
}

// hold copies an early fragment (or a first fragment without a key) into
// the hold buffer, under its datagram's waiting entry, and reassembles the
// datagram when the copies cover it. It returns the frame's reason and
// sets d.Hold when the copy is kept.
func (w *Worker) hold(frame []byte, p *packet.Parsed, k *fragKey, h uint64, d *Decision) Reason {
	t := &w.frag
	e := w.fragLookup(k, h)
	if e == nil {
		e = w.fragInsert(k, h)
		e.state = fragWaiting
		t.waiting++
	}
	if e.state != fragWaiting {
		// A first fragment without a key whose datagram was decided
		// meanwhile (a duplicate, or an id reused within the timeout):
		// it cannot follow (it carries the ports); count it as a duplicate.
		return ReasonFragmentDuplicate
	}
	first := p.FragOff == 0
	doff := p.PayloadOff
	if first {
		doff = p.L4Off
	}
	dlen := p.End - doff
	off := int(p.FragOff)
	end := off + dlen
	switch {
	case len(frame) > FragSlotBytes, end > MaxFragDatagramBytes, e.nheld >= MaxFragsPerDatagram, t.free < 0:
		return ReasonFragmentOverflow
	case dlen <= 0, p.MoreFrags && dlen%8 != 0, // RFC 8200 §4.5; IPv4 offsets are in 8-byte units too
		!p.MoreFrags && e.total >= 0 && int(e.total) != end,
		e.total >= 0 && end > int(e.total):
		return ReasonFragmentDuplicate // inconsistent with the fragments already held
	}
	// Insert sorted by offset; refuse duplicates and overlaps.
	prev := int32(-1)
	for i := e.held; i >= 0; i = t.slots[i].next {
		sl := &t.slots[i]
		if int(sl.off) >= end {
			break
		}
		if int(sl.off)+int(sl.dlen) > off {
			return ReasonFragmentDuplicate
		}
		prev = i
	}
	if !p.MoreFrags {
		for i := e.held; i >= 0; i = t.slots[i].next {
			if int(t.slots[i].off)+int(t.slots[i].dlen) > end {
				return ReasonFragmentDuplicate
			}
		}
		e.total = int32(end)
	}
	i := t.free
	sl := &t.slots[i]
	t.free = sl.next
	t.seq++
	d.Hold = t.seq
	*sl = heldFrag{hold: t.seq, n: uint16(len(frame)), off: uint16(off), doff: uint16(doff), dlen: uint16(dlen), link: p.Link}
	copy(t.buf[int(i)*fragSlotStride+fragSlotRoom:], frame)
	if prev < 0 {
		sl.next, e.held = e.held, i
	} else {
		sl.next, t.slots[prev].next = t.slots[prev].next, i
	}
	e.nheld++
	if first {
		e.hasFirst = true
	}
	if e.hasFirst && e.total >= 0 {
		covered := 0
		for j := e.held; j >= 0 && int(t.slots[j].off) == covered; j = t.slots[j].next {
			covered += int(t.slots[j].dlen)
		}
		if covered == int(e.total) {
			w.reassemble(e)
		}
	}
	return ReasonFragmentHeld
}

// reassemble decides a datagram whose first fragment had no key from its
// whole L4 payload, and emits its held fragments.
func (w *Worker) reassemble(e *fragEntry) {
	t := &w.frag
	out := t.reasm[:e.total]
	first := int32(-1)
	for i := e.held; i >= 0; i = t.slots[i].next {
		sl := &t.slots[i]
		b := t.slotBuf(i)
		copy(out[sl.off:], b[sl.doff:int(sl.doff)+int(sl.dlen)])
		if sl.off == 0 {
			first = i
		}
	}
	// Decided in a slot of its own: the held first fragment is the frame,
	// the reassembled payload (after the UDP header: only UDP is keyed) what
	// the engine reads. finish counts the datagram apart from frames.
	s := &w.reslot
	s.reasm, s.firstHeld = out[8:], first
	fr := t.slotBuf(first)
	var d Decision
	w.prepare(fr, t.slots[first].link, s, &d)
	s.room = t.slotRoom(first)
	w.complete(fr, s, &d)
	s.reasm, s.room, s.out, s.left = nil, nil, nil, nil
}

// fragFinish enters a first fragment's decision (in slot s) in the fragment
// table and emits the copies that waited for it.
func (w *Worker) fragFinish(s *slot, d *Decision, r Reason) {
	p := &s.p
	if p.FragOff != 0 || r == ReasonFragmentHeld || w.frag.ents == nil || !d.Src.IsValid() {
		return
	}
	if r.Verdict() == Pass && !w.isVIP(d.Dst.Addr()) && !w.isNATServer(d.Src.Addr()) {
		return // not the balancer's: its later fragments pass anyway
	}
	// As received: the rewrite has changed p's addresses.
	k := fragKey{src: d.Src.Addr(), dst: d.Dst.Addr(), id: p.FragID, proto: d.Proto}
	h := k.hash(w.seed)
	e := w.fragLookup(&k, h)
	if e == nil {
		e = w.fragInsert(&k, h)
	}
	if e.state == fragWaiting {
		w.frag.waiting--
	}
	e.state = fragDecided
	r0 := r
	if r == ReasonNeighbourHeld {
		// The first fragment waits for its next hop: the datagram is
		// forwarded, and its later fragments follow (or wait too).
		r = ReasonFragmentFollowed
	}
	e.reason = r
	e.dest = 0
	if d.Dest != nil {
		e.dest = d.Dest.ID
	}
	e.real = d.Real
	e.reply = r == ReasonNATReply || r == ReasonServerInitiated
	e.vip = s.vip
	e.sport, e.dport = d.Src.Port(), d.Dst.Port()
	e.hasPE, e.pe, e.peLen = d.HasPE, d.PE, 0
	if d.HasPE && d.PE == pe.StatusOK {
		e.peLen = uint8(copy(w.fragPE(e), d.PEData))
	}
	if e.held >= 0 {
		first := int32(-1)
		if s.reasm != nil {
			first = s.firstHeld
		}
		w.fragFlush(e, first, d, r0)
	}
}

// fragFlush sends (or discards) the copies held for a datagram just decided
// (d: its first fragment's decision). first is the held first fragment of a
// datagram decided after reassembly (-1 for none): decided and rewritten
// already, with reason firstR (neighbour_held: copied again for its next
// hop).
func (w *Worker) fragFlush(e *fragEntry, first int32, d *Decision, firstR Reason) {
	t := &w.frag
	var q packet.Parsed
	for i := e.held; i >= 0; {
		next := t.slots[i].next
		b := t.slotBuf(i)
		var r Reason
		dd := Decision{Proto: e.key.proto, Src: netip.AddrPortFrom(e.key.src, 0), Dst: netip.AddrPortFrom(e.key.dst, 0)}
		switch {
		case i == first && firstR == ReasonNeighbourHeld:
			r = firstR // copied for its next hop already
			dd = *d
		case i == first:
			r = e.reason // the first fragment, decided and rewritten already
			dd = *d      // and its decision is the datagram's (and its Out)
			if r.Verdict() == Forward {
				r = ReasonFragmentFollowed
			}
			if w.reslot.out != nil {
				b = w.reslot.out // grown into its room (a tunnel)
			}
		case q.Decode(b, t.slots[i].link) != packet.ReasonNonFirstFragment:
			r = ReasonFragmentDuplicate // a keyless first fragment of an id decided meanwhile
			dd.Reason = r
		default:
			w.fragDecision(e, &dd)
			b, _, r = w.followRewrite(t.slotRoom(i), b, &q, e, &dd)
			dd.Reason = r
		}
		switch r {
		case ReasonFragmentFollowed:
			w.release(i, FateSent, &dd)
			t.emitted = append(t.emitted, i)
			w.emit(b, dd.Out)
			w.local.Frag.Emitted++
		case ReasonNeighbourHeld:
			w.release(i, FateSent, &dd) // it leaves once its next hop answers (NeighCounters)
			t.freeSlot(i)
		default:
			w.release(i, FateDiscarded, &dd)
			t.freeSlot(i)
			w.local.Frag.Discarded++
		}
		i = next
	}
	e.held, e.nheld, e.total, e.hasFirst = -1, 0, -1, false
}
