package pipeline

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/table"
)

// Connection states, IPVS's names. UDP connections have one state; TCP
// connections move between them on the flags of the packets the balancer
// sees, enough to give each connection IPVS's timeout for its state and to
// keep the ActiveConn (ESTABLISHED) / InActConn gauges.
const (
	stateUDP uint8 = iota
	tcpNone
	tcpEstablished
	tcpSynSent
	tcpSynRecv
	tcpFinWait
	tcpTimeWait
	tcpClose
	tcpCloseWait
	tcpLastAck
	numStates
)

var stateNames = [numStates]string{
	"UDP", "NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
}

// StateName is the name ipvsadm -Lc prints for a connection state.
func StateName(s uint8) string {
	if s < numStates {
		return stateNames[s]
	}
	return "NONE"
}

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// Kernel timeouts for the TCP states --set does not change (ip_vs_proto_tcp.c).
const (
	timeoutSynSent  = 120 * time.Second
	timeoutSynRecv  = 60 * time.Second
	timeoutTimeWait = 120 * time.Second
	timeoutClose    = 10 * time.Second
	timeoutCloseW   = 60 * time.Second
	timeoutLastAck  = 30 * time.Second
	timeoutNone     = 2 * time.Second
)

func (w *Worker) timeout(state uint8) time.Duration {
	t := w.v.snap.Timeouts
	switch state {
	case stateUDP:
		return time.Duration(t.UDP) * time.Second
	case tcpEstablished:
		return time.Duration(t.TCP) * time.Second
	case tcpFinWait:
		return time.Duration(t.TCPFin) * time.Second
	case tcpSynSent:
		return timeoutSynSent
	case tcpSynRecv:
		return timeoutSynRecv
	case tcpTimeWait:
		return timeoutTimeWait
	case tcpClose:
		return timeoutClose
	case tcpCloseWait:
		return timeoutCloseW
	case tcpLastAck:
		return timeoutLastAck
	}
	return timeoutNone
}

// newConnState is the state and timeout of a new connection for packet p.
func (w *Worker) newConnState(p *packet.Parsed) (uint8, time.Duration) {
	if p.Proto != protoTCP {
		return stateUDP, w.timeout(stateUDP)
	}
	s := tcpTransition(tcpNone, p.TCPFlags, true)
	return s, w.timeout(s)
}

// tcpTransition is a compact form of IPVS's TCP state table for the packets a
// balancer sees: inbound (client → real server) always, outbound only for NAT.
func tcpTransition(s, flags uint8, inbound bool) uint8 {
	switch {
	case flags&tcpRST != 0:
		return tcpClose
	case flags&tcpSYN != 0:
		if flags&tcpACK != 0 {
			if inbound {
				return s // SYN+ACK from the client side: keep
			}
			return tcpSynRecv
		}
		return tcpSynRecv
	case flags&tcpFIN != 0:
		switch s {
		case tcpFinWait, tcpCloseWait, tcpTimeWait, tcpLastAck:
			return tcpTimeWait
		}
		if inbound {
			return tcpFinWait
		}
		return tcpCloseWait
	case flags&tcpACK != 0:
		switch s {
		case tcpNone, tcpSynRecv, tcpSynSent:
			return tcpEstablished
		}
	}
	return s
}

// connUsed refreshes a connection for a packet in either direction (with
// TCP flags flags), moving it between the active and inactive gauges on a
// TCP state change, and returns its state after the packet.
func (w *Worker) connUsed(ref table.Ref, info *table.ConnInfo, dest *ipvs.Dest, flags uint8, inbound bool) uint8 {
	if w.sconns != nil && dest.Fwd == ipvs.Masq {
		w.refreshConn(table.ReplyHash(w.seed, info.Key.Protocol, info.Real, info.Key.Client), info.Timeout)
	}
	if info.Key.Protocol != protoTCP {
		w.conns.Touch(ref, w.now)
		return info.State
	}
	ns := tcpTransition(info.State, flags, inbound)
	if ns == info.State {
		w.conns.Touch(ref, w.now)
		return ns
	}
	w.conns.SetState(ref, ns, info.Flags, w.timeout(ns), w.now)
	if (info.State == tcpEstablished) != (ns == tcpEstablished) {
		c := dest.Stats.Worker(w.id)
		if ns == tcpEstablished {
			c.AddActive(1)
			c.AddInactive(-1)
		} else {
			c.AddActive(-1)
			c.AddInactive(1)
		}
	}
	return ns
}

// connRemoved keeps the ActiveConn/InActConn gauges as connections leave.
func (w *Worker) connRemoved(id table.DestID, state, _ uint8, _ table.RemoveReason) {
	if st := w.v.snap.DestStats(ipvs.DestID(id)); st != nil {
		if state == tcpEstablished {
			st.Worker(w.id).AddActive(-1)
		} else {
			st.Worker(w.id).AddInactive(-1)
		}
	}
}

// reuseConn is ip_vs_in_hook's test for a TCP SYN that matches a connection
// (is_new_conn): the connection is expired and the SYN scheduled afresh when
// expire_nodest_conn is set and the connection's server has weight 0 (or
// failed its health check, which xvs's schedulers treat as weight 0), or
// when conn_reuse_mode expects a new connection there (is_new_conn_expected):
// no persistence template controls it, and it is in TIME_WAIT or CLOSE, or
// with bit 2 in FIN_WAIT towards a server whose replies the balancer does
// not see (direct routing, tunnel: the kernel's IP_VS_CONN_F_NOOUTPUT).
func reuseConn(snap *ipvs.Snapshot, c *table.ConnInfo, dest *ipvs.Dest) bool {
	if snap.ExpireNodestConn && dest != nil && (dest.Weight == 0 || dest.Down) {
		return true
	}
	mode := snap.Sysctls.Get(ipvs.ConnReuseMode)
	if mode == 0 || !c.Template.IsZero() {
		return false
	}
	switch c.State {
	case tcpTimeWait, tcpClose:
		return true
	case tcpFinWait:
		return mode&2 != 0 && dest != nil && dest.Fwd != ipvs.Masq
	}
	return false
}

// publishConn enters a new NAT connection in the shared connection index,
// so that its replies are translated on whichever worker they arrive.
func (w *Worker) publishConn(proto uint8, real, client, vip netip.AddrPort, dest *ipvs.Dest, timeout time.Duration) {
	if w.sconns == nil {
		return
	}
	h := table.ReplyHash(w.seed, proto, real, client)
	if !w.sconns.Publish(h, table.SharedConn{Virtual: vip, Dest: table.DestID(dest.ID)}, w.now+int64(timeout), w.now) {
		w.local.SharedConnFull++
	}
	w.crefr[h&(refreshFilterSize-1)] = h ^ uint64(w.now/refreshPeriod(timeout))
}

// refreshConn republishes a shared connection's expiry, at most
// sharedRefreshFraction times per timeout (as refreshShared does for
// templates).
func (w *Worker) refreshConn(h uint64, timeout time.Duration) {
	tag := h ^ uint64(w.now/refreshPeriod(timeout))
	slot := &w.crefr[h&(refreshFilterSize-1)]
	if *slot == tag {
		return
	}
	*slot = tag
	w.sconns.Refresh(h, w.now+int64(timeout), w.now)
}
