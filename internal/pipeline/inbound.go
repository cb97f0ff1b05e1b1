package pipeline

// Inbound: a packet from a client to a virtual service. It follows its
// connection, or its persistence template (this worker's, then another
// worker's through the shared index), or is scheduled; then it is rewritten
// for its real server (direct routing: the MACs; NAT: the destination
// address and port too) and counted.

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// inbound decides a packet to the virtual service s.svc.
func (w *Worker) inbound(frame []byte, s *slot, d *Decision) Reason {
	p := &s.p
	svc := s.svc
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
					return ReasonDestGone
				}
				w.conns.Remove(ref)
			default:
				state := w.connUsed(ref, &info, dest, p.TCPFlags, true)
				if w.sync.out != nil {
					w.syncConn(ref, &info.Key, info.Real, dest, state, info.Template)
				}
				return w.forward(frame, s, dest, info.Real, ReasonConnHit, d)
			}
		}
	}
	// A TCP segment creates a connection only when it is a SYN, or with
	// sloppy_tcp any segment, but never an RST (tcp_conn_schedule); the
	// others are not the balancer's and are handed back.
	if p.Proto == protoTCP && (p.TCPFlags&tcpRST != 0 || p.TCPFlags&tcpSYN == 0 && snap.Sysctls.Get(ipvs.SloppyTCP) == 0) {
		return ReasonTCPNoSYN
	}

	// 2. Schedule: persistence template, then the scheduler.
	var dest *ipvs.Dest
	var reason Reason
	tref := table.Ref{}
	if svc.Persistent {
		if dest, tref, reason = w.persist(frame, s, d); dest == nil {
			return reason // dropped (strict PE or no destination) or held
		}
	} else {
		w.in = sched.Input{Src: d.Src, Dst: d.Dst}
		if dest = svc.Schedule(w.id, &w.in); dest == nil {
			return ReasonNoDest
		}
		reason = ReasonScheduledNoPersistence
	}
	real := w.realAddr(dest, d.Dst)

	// 3. A connection entry, unless one-packet scheduling.
	c := dest.Stats.Worker(w.id)
	c.Conn()
	svc.Stats.Worker(w.id).Conn()
	if !ops {
		state, timeout := w.newConnState(p)
		if !tref.IsZero() {
			w.tmpl.Hold(tref)
		}
		cref, res := w.conns.Insert(&w.ck, real, table.DestID(dest.ID), state, timeout, tref, w.now)
		switch res {
		case table.Inserted:
			if dest.Fwd == ipvs.Masq {
				w.publishConn(p.Proto, real, d.Src, d.Dst, dest, timeout)
			}
			if state == tcpEstablished {
				c.AddActive(1)
			} else {
				c.AddInactive(1)
			}
			if w.sync.out != nil {
				w.syncConn(cref, &w.ck, real, dest, state, table.Ref{}) // persist synced the template
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
	return w.forward(frame, s, dest, real, reason, d)
}

// templateKey builds a packet's persistence-template key (ip_vs_sched_persist
// with ip_vs_conn_fill_param_persist) in s: protocol, client address AND the
// netmask, virtual address and service port, and the engine's key. It
// reports false when no template can be keyed, with the frame's reason: a
// strict engine found no key (ReasonPEStrict), or a first fragment must wait
// for the rest of its datagram (ReasonFragmentHeld, see slot.keyless).
func (w *Worker) templateKey(frame []byte, s *slot, d *Decision) (Reason, bool) {
	p := &s.p
	svc := s.svc
	s.key = table.TemplateKey{
		Protocol: p.Proto,
		Client:   svc.MaskClient(p.Src),
		Virtual:  netip.AddrPortFrom(p.Dst, svc.Key.Port),
	}
	if eng := w.v.engine(svc); eng.e != nil {
		s.pkt = pe.Packet{Proto: p.Proto, Payload: p.Payload(frame)}
		if s.reasm != nil {
			s.pkt.Payload = s.reasm
		}
		data, st := eng.e.Fill(&s.pkt, s.scratch[:])
		if st != pe.StatusOK && p.MoreFrags && s.reasm == nil && w.frag.ents != nil &&
			st != pe.StatusTooLong && st != pe.StatusWrongProtocol {
			// A first fragment without a key: the key may lie in (or run
			// into) a later fragment. Reassemble before deciding.
			d.HasPE, d.PE = true, st
			return ReasonFragmentHeld, false
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
			return ReasonPEStrict, false
		} else {
			d.Fallback = true
			w.local.PEFallback++
		}
	}
	s.h = s.key.Hash(w.seed)
	s.keyed = true
	return 0, true
}

// schedInput is the scheduler's view of the current packet, with the
// engine's hash of its key for the data-hashing schedulers (mh, sh).
func (w *Worker) schedInput(s *slot, d *Decision) *sched.Input {
	w.in = sched.Input{Src: d.Src, Dst: d.Dst}
	if k := &s.key; s.keyed && k.PE != 0 {
		if eng := w.v.engine(s.svc); eng.e != nil {
			w.in.PEHash = eng.e.Hash(k.PEData, 0)
			w.in.HasPE = true
		}
	}
	return &w.in
}

// persist finds or creates the persistence template for a packet
// (ip_vs_sched_persist) and returns the destination it names and the
// template (zero when the table kept none), with the reason. A nil
// destination means the packet goes nowhere: the reason is its final one
// (no destination, a strict engine without a key, or a first fragment held
// for reassembly).
func (w *Worker) persist(frame []byte, s *slot, d *Decision) (*ipvs.Dest, table.Ref, Reason) {
	if !s.keyed {
		if r, ok := w.templateKey(frame, s, d); !ok {
			if r == ReasonFragmentHeld {
				r = w.holdFirst(frame, s, d) // no key in a first fragment
			}
			return nil, table.Ref{}, r
		}
	}
	timeout := time.Duration(s.svc.Timeout) * time.Second

	// This worker's template.
	ref, id, ok := w.tmpl.LookupHashed(&s.key, s.h, w.now)
	if s.key.PE != 0 && w.debug.Enabled() {
		if ok {
			w.debugEvent(DebugTemplateHit, &s.key)
		} else {
			w.debugEvent(DebugTemplateMiss, &s.key)
		}
	}
	if ok {
		if dest := w.v.snap.TemplateDest(ipvs.DestID(id)); dest != nil {
			w.tmpl.Touch(ref, w.now)
			w.refreshShared(s.h, table.DestID(dest.ID), timeout)
			if w.sync.out != nil {
				w.syncTemplate(ref, dest, timeout, false)
			}
			return dest, ref, ReasonTemplateHit
		}
		w.tmpl.Invalidate(ref) // ip_vs_check_template failed: schedule afresh
	}

	// Another worker's template, or a new one, published for the others.
	var dest *ipvs.Dest
	var reason Reason
	found := false
	if w.shared != nil {
		dest, reason, found = w.sharedDest(s, d, timeout)
	}
	if !found {
		if dest = s.svc.Schedule(w.id, w.schedInput(s, d)); dest != nil {
			reason = ReasonScheduled
			if w.shared != nil {
				if won, other := w.claimShared(s.h, dest, timeout); other {
					dest, reason = won, ReasonSharedHit
				}
			}
		}
	}
	if dest == nil {
		return nil, table.Ref{}, ReasonNoDest
	}
	ref = w.newTemplate(s, dest, timeout)
	switch {
	case ref.IsZero():
		if reason == ReasonScheduled {
			reason = ReasonTemplateOverflow
		}
	case w.sync.out == nil:
	case reason == ReasonSharedHit:
		w.adoptTemplate(ref, timeout) // the worker that created it synced it
	default:
		w.syncTemplate(ref, dest, timeout, true)
	}
	return dest, ref, reason
}

// realAddr is where the packet goes: the real server's port, or for a
// port-0 service whose real server has no port, the packet's own.
func (w *Worker) realAddr(dest *ipvs.Dest, dst netip.AddrPort) netip.AddrPort {
	if dest.Addr.Port() == 0 {
		return netip.AddrPortFrom(dest.Addr.Addr(), dst.Port())
	}
	return dest.Addr
}

// forward rewrites an inbound frame for its destination and counts it.
func (w *Worker) forward(frame []byte, s *slot, dest *ipvs.Dest, real netip.AddrPort, reason Reason, d *Decision) Reason {
	p := &s.p
	n := p.End - p.L3Off
	switch dest.Fwd {
	case ipvs.Masq, ipvs.Route, ipvs.Tunnel:
	default:
		return ReasonUnsupportedForwarding
	}
	eg := w.egressTo(p, dest.Addr.Addr(), dest.NextHop, true)
	if r := eg.refusal(); r != 0 {
		return r // before any rewrite: the frame is unchanged
	}
	local := eg.st == nexthop.Local
	if local {
		// A real server on this host (IPVS's Local forwarding, whatever
		// its configured method): the frame goes to the host's own stack
		// as it came, to the virtual address, which the host must own, or
		// the kernel would route it straight out again.
		if v := w.egressTo(p, p.Dst, [6]byte{}, false); v.st != nexthop.Local {
			return ReasonLocalUnowned
		}
	}
	w.completeChecksum(frame, p)
	out := frame
	switch {
	case local:
	case dest.Fwd == ipvs.Tunnel:
		var left []byte
		var r Reason
		out, left, r = w.encap(s.room, frame, p, dest, false, &eg, d)
		s.out, s.left = out, left
		if r != 0 {
			return r
		}
	case dest.Fwd == ipvs.Masq:
		if !p.SetDst(frame, real.Addr(), real.Port()) {
			return ReasonMalformed
		}
	}
	dest.Stats.Worker(w.id).In(n)
	s.svc.Stats.Worker(w.id).In(n)
	d.Dest = dest
	d.Real = real
	if local {
		d.Out.Local = true
		d.Out.LocalPort = localPort(dest)
		w.local.Local++
		return reason
	}
	return w.send(out, &eg, reason, d)
}
