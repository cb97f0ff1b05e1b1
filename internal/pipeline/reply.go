package pipeline

// From real servers: a packet with ports that is not to a virtual service.
// A NAT real server's reply matches its connection and leaves from the
// virtual address; a NAT real server's own request (IPVS conn_out, for a
// persistence engine that asks for it) creates or re-homes its call's
// template; anything else is not the balancer's and goes to the kernel.

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// fromRealServer decides a packet that is not to a virtual service: a NAT
// reply, a NAT real server's own request, or not ours.
func (w *Worker) fromRealServer(frame []byte, s *slot, d *Decision) Reason {
	p := &s.p
	if ref, ok := w.conns.LookupReply(p.Proto, d.Src, d.Dst, w.now); ok {
		info, _ := w.conns.Get(ref)
		dest := w.v.snap.Dest(ipvs.DestID(info.Dest))
		if dest != nil && dest.Fwd == ipvs.Masq {
			w.connUsed(ref, &info, dest, p.TCPFlags, false)
			if !info.Template.IsZero() {
				w.tmpl.SetAssured(info.Template)
			}
			return w.reply(frame, s, dest, info.Key.Virtual, ReasonNATReply, d)
		}
	}
	if w.sconns != nil {
		if r, ok := w.sharedReply(frame, s, d); ok {
			return r
		}
	}
	for _, svc := range w.v.natServers[d.Src] {
		if r, ok := w.serverOut(frame, s, svc, d); ok {
			return r
		}
	}
	return ReasonNotService
}

// serverOut is IPVS's conn_out for a persistence engine: a request (or, under
// one-packet scheduling, any datagram) from a NAT real server that matches no
// connection creates or re-homes the template for its key to this real
// server, so the peer's later packets reach it, and leaves with the virtual
// address as its source. Without a key the packet is not translated (IPVS:
// it passes un-NATed): ok is false.
func (w *Worker) serverOut(frame []byte, s *slot, svc *ipvs.Service, d *Decision) (_ Reason, ok bool) {
	p := &s.p
	if ipvs.Protocol(p.Proto) != svc.Protocol || p.Proto != protoUDP {
		return 0, false
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
		return 0, false
	}
	s.pkt = pe.Packet{Proto: p.Proto, Payload: p.Payload(frame)}
	data, st := eng.e.Fill(&s.pkt, s.scratch[:])
	d.PE = st
	d.HasPE = true
	if st != pe.StatusOK {
		return 0, false
	}
	d.PEData = data
	d.Service = svc
	s.key = table.TemplateKey{
		Protocol: p.Proto,
		Client:   svc.MaskClient(p.Dst),
		Virtual:  svc.Addr,
		PE:       uint8(eng.id),
		PEData:   data,
	}
	timeout := time.Duration(svc.Timeout) * time.Second
	s.h, s.keyed = s.key.Hash(w.seed), true
	id := table.DestID(dest.ID)
	ref, cur, found := w.tmpl.LookupHashed(&s.key, s.h, w.now)
	if found && cur != id {
		w.tmpl.Invalidate(ref) // re-home the Call-ID to the sender
		found = false
	}
	if found {
		w.tmpl.Touch(ref, w.now)
		w.refreshShared(s.h, id, timeout)
	} else {
		ref = w.newTemplate(s, dest, timeout)
		w.setShared(s.h, id, timeout)
	}
	if w.sync.out != nil && !ref.IsZero() {
		w.syncTemplate(ref, dest, timeout, !found)
	}
	c := dest.Stats.Worker(w.id)
	c.Conn()
	svc.Stats.Worker(w.id).Conn()
	if !(svc.OnePacket && p.Proto == protoUDP) {
		// A connection from the peer to the virtual service, so the peer's
		// answers (and this server's further packets) find it.
		w.ck = table.ConnKey{Protocol: p.Proto, Client: d.Dst, Virtual: svc.Addr}
		state, ctimeout := w.newConnState(p)
		if !ref.IsZero() {
			w.tmpl.Hold(ref)
		}
		if cref, res := w.conns.Insert(&w.ck, d.Src, id, state, ctimeout, ref, w.now); res == table.Inserted {
			w.publishConn(p.Proto, d.Src, d.Dst, svc.Addr, dest, ctimeout)
			c.AddInactive(1)
			if w.sync.out != nil {
				w.syncConn(cref, &w.ck, d.Src, dest, state, table.Ref{})
			}
		} else if !ref.IsZero() {
			w.tmpl.Release(ref)
		}
	}
	return w.reply(frame, s, dest, svc.Addr, ReasonServerInitiated, d), true
}

// reply rewrites a frame from a NAT real server so that it leaves from the
// virtual address vip (recorded in s.vip for the fragment table), and
// counts it as outgoing.
func (w *Worker) reply(frame []byte, s *slot, dest *ipvs.Dest, vip netip.AddrPort, reason Reason, d *Decision) Reason {
	p := &s.p
	eg := w.egressTo(p, p.Dst, [6]byte{}, false)
	if r := eg.refusal(); r != 0 {
		return r // before any rewrite: the frame is unchanged
	}
	w.completeChecksum(frame, p)
	if !p.SetSrc(frame, vip.Addr(), vip.Port()) {
		return ReasonMalformed
	}
	s.vip = vip
	n := p.End - p.L3Off
	dest.Stats.Worker(w.id).Out(n)
	dest.Service.Stats.Worker(w.id).Out(n)
	d.Dest = dest
	d.Real = d.Src
	if eg.st == nexthop.Local {
		d.Out.Local = true // a client on this host
		w.local.Local++
		return reason
	}
	return w.send(frame, &eg, reason, d)
}

// sharedReply translates a NAT reply whose connection another worker holds
// (table.SharedConns): reply tuples hash to other RX queues, and on a
// director with several legs to another interface's queues.
func (w *Worker) sharedReply(frame []byte, s *slot, d *Decision) (Reason, bool) {
	p := &s.p
	h := table.ReplyHash(w.seed, p.Proto, d.Src, d.Dst)
	c, ok := w.sconns.Get(h, w.now)
	if !ok {
		return 0, false
	}
	dest := w.v.snap.Dest(ipvs.DestID(c.Dest))
	if dest == nil || dest.Fwd != ipvs.Masq || dest.Addr.Addr() != d.Src.Addr() {
		return 0, false
	}
	w.local.SharedConnHits++
	st := stateUDP
	if p.Proto == protoTCP {
		st = tcpEstablished
	}
	w.refreshConn(h, w.timeout(st))
	return w.reply(frame, s, dest, c.Virtual, ReasonNATReply, d), true
}
