package pipeline

// Egress: where a forwarded frame leaves, and the frames that wait for their
// next hop. Every stage that forwards (inbound, replies and real servers' own
// requests, fragments following their datagram, ICMP errors) asks egressTo
// for the next hop of the frame's new IP destination before it rewrites the
// frame, and ends with send, which writes the Ethernet addresses and the
// port or holds a copy until the neighbour is resolved. With a next-hop
// table (the daemon) the kernel's routes and neighbours decide the port and
// both MACs; without one (offline replay, tests) a real server's frame goes
// back out where it came in, to the MAC its Dest carries, and a frame to a
// client to Options.ClientGateway (or keeps its MACs).

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
)

// Out is where a forwarded frame leaves (Decision.Out, EmittedOut).
type Out struct {
	// Port is the served interface, when Routed; otherwise the frame leaves
	// by the interface it came in on.
	Port   nexthop.Port
	Routed bool
	// Local: the frame goes to this host's own stack (a Local real server,
	// IPVS's LOCALNODE), not to an interface.
	Local bool
	// LocalPort, for a Local frame, is the real server's port when it
	// differs from the virtual port the frame keeps: the kernel's NAT
	// translates it (the frame is sent with localnat.Mark(LocalPort)).
	// 0: delivered as it is.
	LocalPort uint16
}

// localPort is Out.LocalPort for a frame to dest: its port, when it has one
// that differs from its service's.
func localPort(dest *ipvs.Dest) uint16 {
	port, vport := dest.Addr.Port(), dest.Service.Key.Port
	if port == 0 || vport == 0 || port == vport {
		return 0
	}
	return port
}

// l2Mode says how send writes a frame's Ethernet addresses.
type l2Mode uint8

const (
	l2None  l2Mode = iota // leave them (not Ethernet; a client-bound frame without a table)
	l2Table               // from the next-hop table: source = the port's MAC, destination = the next hop's
	l2Swap                // without a table: leave from the MAC it was sent to, towards Egress.Dst
)

// egress is a frame's next hop: the table's answer and how to apply it.
type egress struct {
	nexthop.Egress
	st  nexthop.Status
	how l2Mode
	dst netip.Addr // the address looked up (a held frame is looked up again)
}

// egressTo finds the next hop for a frame decoded into p that will be sent
// to dst. static is the MAC a real server's Dest carries, used only without
// a next-hop table (hasStatic: the frame goes to a real server).
func (w *Worker) egressTo(p *packet.Parsed, dst netip.Addr, static [6]byte, hasStatic bool) egress {
	switch {
	case p.Link != packet.LinkEthernet:
		return egress{st: nexthop.Resolved, how: l2None}
	case w.hops != nil:
		e, st := w.hops.Lookup(dst, w.now)
		return egress{Egress: e, st: st, how: l2Table, dst: dst}
	case !hasStatic && w.gateway != [6]byte{}:
		return egress{Egress: nexthop.Egress{Dst: w.gateway}, st: nexthop.Resolved, how: l2Swap}
	case !hasStatic:
		return egress{st: nexthop.Resolved, how: l2None}
	case static == [6]byte{}:
		return egress{st: nexthop.Failed}
	}
	return egress{Egress: nexthop.Egress{Dst: static}, st: nexthop.Resolved, how: l2Swap}
}

// refusal is the reason a frame cannot leave by e at all, checked before any
// rewrite so that a refused frame leaves unchanged; 0 when it can (now, or
// once its neighbour answers).
func (e *egress) refusal() Reason {
	switch e.st {
	case nexthop.Unserved, nexthop.NoRoute:
		return ReasonNoEgress
	case nexthop.Failed:
		return ReasonNoNextHop
	}
	return 0
}

// send finishes a rewritten frame: its Ethernet addresses and port for a
// resolved next hop (the frame's reason stays reason), or a held copy for an
// incomplete one (ReasonNeighbourHeld, or ReasonNeighbourOverflow without
// room).
func (w *Worker) send(frame []byte, e *egress, reason Reason, d *Decision) Reason {
	if e.st == nexthop.Incomplete {
		return w.holdForNeighbour(frame, e)
	}
	w.setL2(frame, e, &d.Out)
	return reason
}

func (w *Worker) setL2(frame []byte, e *egress, o *Out) {
	switch e.how {
	case l2Table:
		packet.SetDstMAC(frame, e.Dst)
		packet.SetSrcMAC(frame, e.Src)
		o.Port, o.Routed = e.Port, true
	case l2Swap:
		packet.ForwardMAC(frame, e.Dst)
	}
}

// completeChecksum finishes a checksum the sender left to its TX offload
// (see packet.Parsed.CompletePartialChecksum), before the frame is
// rewritten, and counts it.
func (w *Worker) completeChecksum(frame []byte, p *packet.Parsed) {
	if !w.skipCsum && p.CompletePartialChecksum(frame) {
		w.local.ChecksumCompleted++
	}
}

// Frames waiting for a neighbour.
//
// The kernel holds packets for a neighbour it is resolving (unres_qlen) and
// sends them when the answer comes; a worker does the same, with copies:
// the frame itself is the backend's again at Transmit. The copy is the frame
// as it would have left, rewritten but for its MAC addresses; once the next
// hop resolves, the worker writes them and emits the copy (EmittedOut
// names the port).
const (
	// DefaultNeighHoldSlots is how many frames a worker can hold while
	// their next hops resolve (1 MiB of NeighSlotBytes copies): a burst of
	// new calls to a real server whose neighbour entry expired, or of
	// replies to clients never seen before, over the few milliseconds an
	// ARP or neighbour-discovery exchange takes on a LAN.
	DefaultNeighHoldSlots = 256
	// NeighSlotBytes is the size of one held copy: the largest AF_XDP
	// frame; a larger frame cannot wait and is dropped as
	// neighbour_overflow.
	NeighSlotBytes = 4096
	// NeighHoldPerHop bounds the copies held for one next hop, so that an
	// unresolvable one (a dead real server) cannot take the whole buffer:
	// the kernel's own bound per neighbour is unres_qlen_bytes (212 992
	// bytes), about 100 full frames; 64 covers a burst at tens of
	// thousands of new calls a second while it resolves.
	NeighHoldPerHop = 64
	// NeighHoldTimeout is how long a copy waits: the kernel gives up on a
	// neighbour after mcast_solicit (3) probes retrans_time (1 s) apart and
	// drops what it held.
	NeighHoldTimeout = 3 * time.Second
)

// NeighCounters count what happens to the frames held for a neighbour
// (ReasonNeighbourHeld) after they were held.
type NeighCounters struct {
	Sent    uint64 // emitted once their next hop resolved
	Failed  uint64 // dropped: the next hop failed, or the route went away
	Timeout uint64 // dropped: not resolved within NeighHoldTimeout
}

type neighHeld struct {
	n     uint16 // frame length
	hop   uint64 // the next hop's identity (Egress.Hop)
	dst   netip.Addr
	since int64
}

type neighHold struct {
	buf   []byte // NeighSlotBytes per slot
	slots []neighHeld
	order []int32 // slots in use, oldest first
	free  []int32
}

func newNeighHold(slots int) neighHold {
	h := neighHold{buf: make([]byte, slots*NeighSlotBytes), slots: make([]neighHeld, slots),
		order: make([]int32, 0, slots), free: make([]int32, 0, slots)}
	for i := slots - 1; i >= 0; i-- {
		h.free = append(h.free, int32(i))
	}
	return h
}

// holdForNeighbour copies a frame whose next hop is being resolved.
func (w *Worker) holdForNeighbour(frame []byte, e *egress) Reason {
	h := &w.neigh
	if len(h.free) == 0 || len(frame) > NeighSlotBytes {
		return ReasonNeighbourOverflow
	}
	per := 0
	for _, i := range h.order {
		if h.slots[i].hop == e.Hop {
			per++
		}
	}
	if per >= NeighHoldPerHop {
		return ReasonNeighbourOverflow
	}
	i := h.free[len(h.free)-1]
	h.free = h.free[:len(h.free)-1]
	copy(h.buf[int(i)*NeighSlotBytes:], frame)
	h.slots[i] = neighHeld{n: uint16(len(frame)), hop: e.Hop, dst: e.dst, since: w.now}
	h.order = append(h.order, i)
	return ReasonNeighbourHeld
}

// Holding reports whether frames wait for a neighbour: the worker's loop
// then polls more often (and the table wakes it when one resolves).
func (w *Worker) Holding() bool { return len(w.neigh.order) > 0 }

// releaseHeld emits the held copies whose next hop has resolved and drops
// those that can no longer leave; it runs at the start of every batch while
// frames wait.
func (w *Worker) releaseHeld() {
	h := &w.neigh
	keep := h.order[:0]
	for _, i := range h.order {
		sl := &h.slots[i]
		b := h.buf[int(i)*NeighSlotBytes : int(i)*NeighSlotBytes+int(sl.n)]
		e, st := w.hops.Lookup(sl.dst, w.now)
		switch {
		case st == nexthop.Resolved:
			var o Out // only Ethernet frames wait (others need no neighbour)
			w.setL2(b, &egress{Egress: e, st: st, how: l2Table}, &o)
			w.emit(b, o)
			w.local.Neigh.Sent++
			w.heldEmitted = append(w.heldEmitted, i)
			continue
		case st == nexthop.Incomplete && w.now-sl.since < int64(NeighHoldTimeout):
			keep = append(keep, i)
			continue
		case st == nexthop.Incomplete:
			w.local.Neigh.Timeout++
		default:
			w.local.Neigh.Failed++
		}
		h.free = append(h.free, i)
	}
	h.order = keep
}

// emit adds a frame the worker owns to this batch's emitted frames.
func (w *Worker) emit(frame []byte, o Out) {
	w.emitted = append(w.emitted, frame)
	w.emittedOut = append(w.emittedOut, o)
}
