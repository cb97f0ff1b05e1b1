package pipeline

// Tunnels: a packet for a tunnelling (-i) real server leaves encapsulated,
// as the kernel's ip_vs_tunnel_xmit sends it: the original datagram,
// unchanged, behind an outer IP header from the director's address on the
// egress (Dest.Source) to the real server, with a GUE or GRE header between
// them for those tunnel types (package packet builds the headers). The frame
// grows at its front into the room the backend left (dataplane.Batch.Room):
// no copy of the payload.
//
// A datagram that does not fit the tunnel (the egress MTU less the
// encapsulation) gets what ensure_mtu_is_adequate gives it: an IPv6 one
// (its first fragment) and, with pmtu_disc, an IPv4 one with DF are
// answered with ICMP packet too big / fragmentation needed carrying the
// tunnel's MTU, built in the frame and sent back to the client
// (tunnel_icmp_too_big); an IPv4 one without DF (or any, without pmtu_disc)
// is encapsulated and the outer datagram fragmented, the first fragment in
// the frame and the others emitted (Worker.Emitted; TunnelCounters). What
// can be neither (a non-first IPv6 fragment, an ICMP message, a tunnel MTU
// below the outer family's minimum) is dropped (tunnel_too_big).

import (
	"encoding/binary"
	"math"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
)

const (
	// tunnelFragBufs bounds the outer fragments one batch can emit beyond
	// its frames: one per frame of a full batch (an encapsulated datagram
	// of a link-MTU frame needs two fragments), with a few to spare for
	// the held copies a batch emits. A datagram whose fragments find no
	// buffer is dropped (TunnelCounters.NoBuffer).
	tunnelFragBufs = MaxBatch + 16
	// tunnelFragBytes is one buffer: a fragment of at most the egress MTU
	// with its link header (a 9000-octet jumbo link included).
	tunnelFragBytes = 9216 + 64
)

// tunnelState is a worker's tunnel scratch: identifiers and fragment
// buffers.
type tunnelState struct {
	id4  uint16 // next outer IPv4 identification
	id6  uint32 // next IPv6 fragment identification
	bufs []byte // tunnelFragBufs × tunnelFragBytes
	used int    // buffers emitted in this batch
	dsts [4][]byte
}

func newTunnelState(seed uint64, id int) tunnelState {
	x := seed ^ uint64(id+1)*0x9e3779b97f4a7c15
	x ^= x >> 31
	return tunnelState{id4: uint16(x), id6: uint32(x >> 16), bufs: make([]byte, tunnelFragBufs*tunnelFragBytes)}
}

// buf returns a free fragment buffer, or false.
func (t *tunnelState) buf() ([]byte, bool) {
	if t.used >= tunnelFragBufs {
		return nil, false
	}
	b := t.bufs[t.used*tunnelFragBytes : (t.used+1)*tunnelFragBytes]
	t.used++
	return b, true
}

// TunnelCounters count what happens to tunnelled datagrams beyond each
// frame's Reason.
type TunnelCounters struct {
	Encapsulated uint64 // datagrams sent encapsulated (fragmented or not)
	Fragmented   uint64 // encapsulated datagrams fragmented to fit the egress MTU
	Fragments    uint64 // outer fragments emitted beyond the first (Worker.Emitted)
	NoBuffer     uint64 // datagrams dropped for want of fragment buffers (counted as tunnel_too_big)
}

// encap encapsulates the datagram p decoded from frame (with room before
// it) for the tunnelling real server dest, whose egress eg the caller found
// (neither refused nor Local), fragmenting or answering with an ICMP error
// when it does not fit. It returns the frame as it leaves and the room
// left, and 0 when the frame goes to the real server (the caller counts it
// and finishes it with send), or the frame's reason otherwise:
// tunnel_icmp_too_big (the frame is now the ICMP error, addressed to the
// client and finished), tunnel_too_big, no_next_hop (no source address
// for the tunnel yet), no_headroom. The outer fragments beyond the first
// are emitted towards eg, or held with the first while eg resolves.
func (w *Worker) encap(room, frame []byte, p *packet.Parsed, dest *ipvs.Dest, icmp bool, eg *egress, d *Decision) (out, left []byte, r Reason) {
	t := w.v.tunnel(dest)
	if t == nil {
		return frame, room, ReasonNoNextHop // no source address yet
	}
	h := &t.h
	n := p.End - p.L3Off
	fragment := false
	if n > t.maxInner {
		mtu := t.maxInner
		switch {
		case mtu < packet.MinTunnelMTU(dest.Addr.Addr()):
			return frame, room, ReasonTunnelTooBig
		case p.Version == 4 && (!p.DF || !w.v.pmtuDisc):
			fragment = true
		case icmp || p.FragOff != 0:
			return frame, room, ReasonTunnelTooBig // no ICMP error about an ICMP error, only for a first fragment
		default:
			return w.tooBig(room, frame, p, mtu, d)
		}
	}
	var id, sport uint16
	if !h.Outer6() {
		id = w.tun.id4
		w.tun.id4++
	}
	if dest.Tunnel.Type == ipvs.GUE {
		if p.Version == 4 && !p.Fragmented && p.L4Off == p.L3Off+20 && p.L4Off+4 <= len(frame) {
			sport = packet.FlowPort(w.flowHash4(frame[p.L4Off-8:p.L4Off+4], p.Proto)) // the common case, inline
		} else {
			sport = packet.FlowPort(w.flowHash(p))
		}
	}
	out, left, ok := p.EncapsulateHeader(room, frame, h, id, sport, false)
	if !ok {
		return frame, room, ReasonNoHeadroom
	}
	w.local.Tunnel.Encapsulated++
	if fragment {
		start := len(w.emitted)
		var r Reason
		if out, left, r = w.fragmentOuter(left, out, p.L3Off, dest.MTU, dest.Addr.Addr().Is6()); r != 0 {
			return out, left, r
		}
		w.sendFragments(start, eg)
	}
	return out, left, 0
}

// sendFragments finishes the outer fragments fragmentOuter emitted from
// start on: their Ethernet addresses and port from eg, or, while eg
// resolves, held copies (the emitted frames are taken back).
func (w *Worker) sendFragments(start int, eg *egress) {
	if eg.st == nexthop.Incomplete {
		for _, f := range w.emitted[start:] {
			w.holdForNeighbour(f, eg)
		}
		w.dropEmitted(start)
		return
	}
	for _, f := range w.emitted[start:] {
		var o Out
		w.setL2(f, eg, &o)
		w.emittedOut = append(w.emittedOut, o)
	}
}

// fragmentOuter cuts an encapsulated frame (outer header at l3) into
// fragments of at most mtu, the first in the frame, the others emitted.
func (w *Worker) fragmentOuter(room, frame []byte, l3, mtu int, outer6 bool) (out, left []byte, r Reason) {
	t := &w.tun
	start := len(w.emitted)
	if !outer6 {
		head := frame
		for {
			b, ok := t.buf()
			if !ok {
				w.dropEmitted(start)
				w.local.Tunnel.NoBuffer++
				return frame, room, ReasonTunnelTooBig
			}
			h, tail, ok := packet.FragmentIPv4(head, l3, mtu, b)
			if !ok {
				t.used--
				break
			}
			if len(w.emitted) > start {
				w.emitted[len(w.emitted)-1] = h
			} else {
				frame = h
			}
			w.emitted = append(w.emitted, tail)
			head = tail
		}
	} else {
		k := 0
		for k < len(t.dsts) {
			b, ok := t.buf()
			if !ok {
				break
			}
			t.dsts[k] = b
			k++
		}
		h, l, m, ok := packet.FragmentIPv6(room, frame, l3, mtu, t.id6, t.dsts[:k])
		t.used -= k - m
		if !ok {
			w.local.Tunnel.NoBuffer++
			return frame, room, ReasonTunnelTooBig
		}
		t.id6++
		frame, room = h, l
		w.emitted = append(w.emitted, t.dsts[:m]...)
		clear(t.dsts[:])
	}
	w.local.Tunnel.Fragmented++
	w.local.Tunnel.Fragments += uint64(len(w.emitted) - start)
	return frame, room, 0
}

// dropEmitted takes back the fragments emitted since start.
func (w *Worker) dropEmitted(start int) {
	w.tun.used -= len(w.emitted) - start
	clear(w.emitted[start:])
	w.emitted = w.emitted[:start]
	w.emittedOut = w.emittedOut[:min(start, len(w.emittedOut))]
}

// tunnel returns dest's prepared encapsulation (see newView), or nil when
// its egress (source address) is not resolved.
func (v *view) tunnel(dest *ipvs.Dest) *tunnelHdr {
	if s := dest.ID.Slot(); s < len(v.tunnels) && v.tunnels[s].dest == dest {
		return &v.tunnels[s]
	}
	return nil
}

// tunnelHdr is a tunnelling destination's prepared encapsulation.
type tunnelHdr struct {
	dest *ipvs.Dest
	h    packet.EncapHeader
	// maxInner is the largest datagram the tunnel carries: the path MTU
	// less the encapsulation (unlimited for an unknown MTU).
	maxInner int
}

// tunnelHeaders prepares the encapsulation of every tunnelling
// destination of s whose egress is resolved, by destination slot.
func tunnelHeaders(s *ipvs.Snapshot, pmtuDisc bool) []tunnelHdr {
	var out []tunnelHdr
	for _, svc := range s.Services() {
		for _, d := range svc.Dests {
			if d.Fwd != ipvs.Tunnel || !d.Source.IsValid() {
				continue
			}
			e := packet.Encap{Src: d.Source, Dst: d.Addr.Addr(), CopyDF: pmtuDisc}
			switch d.Tunnel.Type {
			case ipvs.GUE:
				e.Type, e.Port = packet.EncapGUE, d.Tunnel.Port
				e.Csum = d.Tunnel.Csum != ipvs.TunNoCsum
				e.RemCsum = d.Tunnel.Csum == ipvs.TunRemCsum
			case ipvs.GRE:
				e.Type, e.Csum = packet.EncapGRE, d.Tunnel.Csum == ipvs.TunCsum
			}
			slot := d.ID.Slot()
			if slot >= len(out) {
				out = append(out, make([]tunnelHdr, slot+1-len(out))...)
			}
			t := tunnelHdr{dest: d, h: e.Header(), maxInner: math.MaxInt}
			if d.MTU > 0 {
				t.maxInner = d.MTU - t.h.Len(false)
			}
			out[slot] = t
		}
	}
	return out
}

// tooBig turns the frame into the ICMP error that tells the client the
// tunnel's MTU and sends it to the client through its egress (as NAT
// replies are).
func (w *Worker) tooBig(room, frame []byte, p *packet.Parsed, mtu int, d *Decision) (out, left []byte, r Reason) {
	eg := w.egressTo(p, p.Src, [6]byte{}, false)
	if r := eg.refusal(); r != 0 {
		return frame, room, r
	}
	id := w.tun.id4
	w.tun.id4++
	out, left, ok := p.TooBig(room, frame, mtu, id)
	if !ok {
		return frame, room, ReasonNoHeadroom
	}
	if eg.st == nexthop.Local {
		d.Out.Local = true // a client on this host
		w.local.Local++
		return out, left, ReasonTunnelICMPTooBig
	}
	return out, left, w.send(out, &eg, ReasonTunnelICMPTooBig, d)
}

// flowHash4 is flowHash for an unfragmented IPv4 datagram without options
// from b, its header's addresses and the four octets after the header (the
// ports of UDP and TCP), read as two words (not through netip.Addr: GUE's share of a tunnel's per-packet cost).
// It hashes to a different value than flowHash for the same flow, which
// does not matter: the kernel's flow hash is not specified either.
func (w *Worker) flowHash4(b []byte, proto uint8) uint32 {
	h := binary.LittleEndian.Uint64(b) ^ uint64(binary.LittleEndian.Uint32(b[8:]))<<16 ^ w.seed ^ uint64(proto)<<56
	return uint32(h * 0x9e3779b97f4a7c15 >> 32)
}

// flowHash hashes a datagram's flow for the GUE source port, as the
// kernel's skb_get_hash does: addresses, protocol and (unfragmented) ports.
// Every fragment of a datagram hashes alike.
func (w *Worker) flowHash(p *packet.Parsed) uint32 {
	s, d := p.Src.As16(), p.Dst.As16()
	h := w.seed ^ binary.LittleEndian.Uint64(s[8:]) ^ binary.LittleEndian.Uint64(d[8:])<<1 ^
		binary.LittleEndian.Uint64(s[:8])>>1 ^ binary.LittleEndian.Uint64(d[:8])<<3 ^ uint64(p.Proto)<<56
	if !p.Fragmented {
		h ^= uint64(p.SrcPort)<<32 | uint64(p.DstPort)<<16
	}
	h *= 0x9e3779b97f4a7c15
	return uint32(h >> 32)
}
