package pipeline

// ICMP errors about balanced flows: path-MTU discovery.
//
// A real server's reply that is too big for a link on its way to the client
// (NAT: the reply the balancer translated; direct routing: the reply the real
// server sent from the virtual address) makes a router send an ICMPv4
// "fragmentation needed" (type 3 code 4) or ICMPv6 "packet too big" (type 2)
// to the reply's source: the virtual address. The real server that sent the
// reply must get it, or its path MTU never shrinks and its large messages
// (SIP INVITEs, 200 OKs with SDP) are black-holed. IPVS does this in
// ip_vs_in_icmp. The quoted datagram is VIP:vport → client:cport; the owner
// is found, in order, by:
//
//  1. the connection entry of client:cport → VIP:vport (services without -o);
//  2. the persistence template: for a service with an engine, keyed by the
//     engine's key found in the quoted payload (a router quotes at least 8
//     bytes after the IP header, Linux up to 576 bytes in all for IPv4 and
//     1280 for IPv6, so the Call-ID of a SIP message is often there), this
//     worker's table then the shared index; for a service without an engine,
//     the client-address template;
//  3. for an mh service, the scheduler's choice for that key, which is a
//     pure function of the configuration (the same on every worker and
//     balancer);
//  4. the fragment table, for a quoted datagram that was a fragment whose
//     decision is still there;
//  5. otherwise the message is dropped and counted (icmp_unmatched): with
//     no usable key the owner cannot be known, and guessing would teach an
//     unrelated server a wrong MTU.
//
// NAT rewrites the outer destination to the real server and the quoted source
// to the real server's address and port, with every checksum (package packet,
// RewriteToReal); direct routing only changes the MACs. Other ICMP messages,
// and errors about traffic that is not a balanced flow, go to the kernel.

import (
	"net/netip"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// icmp decides an ICMP or ICMPv6 message (in frame order, as it reads the
// tables).
func (w *Worker) icmp(frame []byte, s *slot, d *Decision) Reason {
	p := &s.p
	e := &w.icmpErr
	if w.v.snap == nil || !e.DecodeICMPError(frame, p) || !e.HasPorts ||
		!((p.Version == 4 && e.Type == packet.ICMPv4DestUnreachable && e.Code == packet.ICMPv4FragNeeded) ||
			(p.Version == 6 && e.Type == packet.ICMPv6PacketTooBig)) {
		return ReasonNotService
	}
	vip := netip.AddrPortFrom(e.Src, e.SrcPort)
	client := netip.AddrPortFrom(e.Dst, e.DstPort)
	svc := w.v.lookup(ipvs.ServiceKey{Protocol: ipvs.Protocol(e.Proto), Addr: e.Src, Port: e.SrcPort})
	if svc == nil {
		return ReasonNotService
	}
	d.Service = svc
	dest, real := w.icmpOwner(frame, s, e, svc, vip, client, d)
	if dest == nil {
		return ReasonICMPUnmatched
	}
	n := p.End - p.L3Off
	switch dest.Fwd {
	case ipvs.Masq, ipvs.Route, ipvs.Tunnel:
	default:
		return ReasonUnsupportedForwarding
	}
	eg := w.egressTo(p, dest.Addr.Addr(), dest.NextHop, true)
	if r := eg.refusal(); r != 0 {
		return r
	}
	local := eg.st == nexthop.Local
	out := frame
	switch {
	case local:
	case dest.Fwd == ipvs.Tunnel:
		// ip_vs_icmp_xmit: a tunnel's ICMP goes through its transmitter,
		// encapsulated like the flow's packets.
		var left []byte
		var r Reason
		out, left, r = w.encap(s.room, frame, p, dest, true, &eg, d)
		s.out, s.left = out, left
		if r != 0 {
			return r
		}
	case dest.Fwd == ipvs.Masq:
		if !e.RewriteToReal(frame, p, real.Addr(), real.Addr(), real.Port()) {
			return ReasonMalformed
		}
	}
	dest.Stats.Worker(w.id).In(n)
	svc.Stats.Worker(w.id).In(n)
	d.Dest, d.Real = dest, real
	if local {
		d.Out.Local = true // the host's own stack takes it to its socket
		w.local.Local++
		return ReasonICMPForwarded
	}
	return w.send(out, &eg, ReasonICMPForwarded, d)
}

// icmpOwner finds the real server that sent the reply e quotes (see the
// file comment for the order); s's key fields are its scratch.
func (w *Worker) icmpOwner(frame []byte, s *slot, e *packet.ICMPError, svc *ipvs.Service, vip, client netip.AddrPort, d *Decision) (*ipvs.Dest, netip.AddrPort) {
	snap := w.v.snap
	// 1. A connection.
	w.ck = table.ConnKey{Protocol: e.Proto, Client: client, Virtual: vip}
	if ref, ok := w.conns.Lookup(&w.ck, w.now); ok {
		info, _ := w.conns.Get(ref)
		if dest := snap.Dest(ipvs.DestID(info.Dest)); dest != nil {
			return dest, info.Real
		}
	}
	// 2. The template, by the key in the quote.
	s.keyed = false
	haveKey := false
	if svc.Persistent {
		s.key = table.TemplateKey{Protocol: e.Proto, Client: svc.MaskClient(e.Dst), Virtual: netip.AddrPortFrom(e.Src, svc.Key.Port)}
		haveKey = true
		if eng := w.v.engine(svc); eng.e != nil {
			s.pkt = pe.Packet{Proto: e.Proto, Payload: e.InnerPayload(frame)}
			data, st := eng.e.Fill(&s.pkt, s.scratch[:])
			d.HasPE, d.PE = true, st
			if haveKey = st == pe.StatusOK; haveKey {
				s.key.PE, s.key.PEData, d.PEData = uint8(eng.id), data, data
			}
		}
		if haveKey {
			s.h = s.key.Hash(w.seed)
			s.keyed = true
			if _, id, ok := w.tmpl.LookupHashed(&s.key, s.h, w.now); ok {
				if dest := snap.TemplateDest(ipvs.DestID(id)); dest != nil {
					return dest, w.realAddr(dest, vip)
				}
			}
			if w.shared != nil {
				if id, ok := w.shared.Get(s.h, w.now); ok {
					if dest := snap.TemplateDest(ipvs.DestID(id)); dest != nil {
						return dest, w.realAddr(dest, vip)
					}
				}
			}
		}
	}
	// 3. Maglev's choice for the key: a function of the configuration.
	if svc.Scheduler == "mh" && (haveKey || !svc.Persistent) {
		w.in = sched.Input{Src: client, Dst: vip}
		if s.keyed && s.key.PE != 0 {
			w.in.PEHash = w.v.engine(svc).e.Hash(s.key.PEData, 0)
			w.in.HasPE = true
		}
		if dest := svc.Schedule(w.id, &w.in); dest != nil {
			return dest, w.realAddr(dest, vip)
		}
	}
	// 4. A fragment's decision.
	if e.Fragmented && w.frag.ents != nil {
		k := fragKey{src: e.Src, dst: e.Dst, id: e.FragID, proto: e.Proto}
		if fe := w.fragLookup(&k, k.hash(w.seed)); fe != nil && fe.state == fragDecided && fe.reason.Verdict() == Forward {
			if dest := snap.Dest(fe.dest); dest != nil {
				return dest, fe.real
			}
		}
	}
	return nil, netip.AddrPort{}
}
