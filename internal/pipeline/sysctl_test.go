package pipeline

import (
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
)

func tcpSeg(src, dst string, flags uint8) []byte {
	return craft.Spec{Proto: 6, TCPFlags: flags, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst)}.Build()
}

// sloppy_tcp: without it only a SYN creates a TCP connection
// (tcp_conn_schedule); any other segment with no connection, and every
// RST, is not the balancer's and is handed back. With it any segment but an
// RST is scheduled.
func TestSloppyTCP(t *testing.T) {
	const rulesText = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n"
	for _, sloppy := range []bool{false, true} {
		l := newLab(t, 1, rulesText)
		if sloppy {
			must(t, l.cfg.SetSysctl(ipvs.SloppyTCP, []int64{1}))
			l.publish()
		}
		ack := tcpSeg("198.51.100.1:40000", "10.0.0.1:80", tcpACK)
		d, _ := l.send(0, ack)
		switch {
		case !sloppy && (d.Reason != ReasonTCPNoSYN || d.Verdict() != Pass):
			t.Fatalf("sloppy_tcp=0: ACK with no connection: %v (%v)", d.Reason, d.Verdict())
		case sloppy && d.Reason != ReasonScheduledNoPersistence:
			t.Fatalf("sloppy_tcp=1: ACK with no connection: %v", d.Reason)
		}
		if d, _ := l.send(0, tcpSeg("198.51.100.2:40000", "10.0.0.1:80", tcpRST|tcpACK)); d.Reason != ReasonTCPNoSYN {
			t.Fatalf("sloppy_tcp=%v: RST with no connection: %v", sloppy, d.Reason)
		}
		if d, _ := l.send(0, tcpSeg("198.51.100.3:40000", "10.0.0.1:80", tcpSYN)); d.Reason != ReasonScheduledNoPersistence {
			t.Fatalf("sloppy_tcp=%v: SYN: %v", sloppy, d.Reason)
		}
		if d, _ := l.send(0, tcpSeg("198.51.100.3:40000", "10.0.0.1:80", tcpACK)); d.Reason != ReasonConnHit {
			t.Fatalf("sloppy_tcp=%v: ACK of a connection: %v", sloppy, d.Reason)
		}
	}
}

// conn_reuse_mode: a SYN that reuses the client port of a connection in
// TIME_WAIT or CLOSE is scheduled afresh (bit 1, the default); in FIN_WAIT
// only with bit 2 and a direct-routed server (the balancer sees no replies);
// never when a persistence template controls the connection; with 0, the
// SYN follows the old connection. With expire_nodest_conn, a SYN to a
// connection whose server has weight 0 is rescheduled (ip_vs_in_hook).
func TestConnReuseMode(t *testing.T) {
	const client, vip = "198.51.100.1:40000", "10.0.0.1:80"
	nat := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -m\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n"
	// timeWait opens a connection, closes it from both sides through the
	// NAT balancer (TIME_WAIT) and returns its real server.
	timeWait := func(l *lab) netip.AddrPort {
		d, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		l.send(0, tcpSeg(client, vip, tcpACK))
		l.send(0, tcpSeg(client, vip, tcpFIN|tcpACK))
		if r, _ := l.send(0, tcpSeg(d.Real.String(), client, tcpFIN|tcpACK)); r.Reason != ReasonNATReply {
			t.Fatalf("server FIN: %v", r.Reason)
		}
		return d.Real
	}
	for _, c := range []struct {
		mode    int64
		resched bool
	}{{0, false}, {1, true}, {2, true}, {3, true}} {
		l := newLab(t, 1, nat)
		must(t, l.cfg.SetSysctl(ipvs.ConnReuseMode, []int64{c.mode}))
		l.publish()
		first := timeWait(l)
		d, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		if got := d.Reason == ReasonScheduledNoPersistence && d.Real != first; got != c.resched || (!c.resched && (d.Reason != ReasonConnHit || d.Real != first)) {
			t.Fatalf("conn_reuse_mode=%d: SYN reusing a TIME_WAIT connection of %v: %v to %v, want rescheduled %v", c.mode, first, d.Reason, d.Real, c.resched)
		}
	}

	// FIN_WAIT of a direct-routed connection: only bit 2.
	dr := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.1 -g\n-a -t 10.0.0.1:80 -r 192.168.0.2 -g\n"
	for _, c := range []struct {
		mode    int64
		resched bool
	}{{1, false}, {3, true}} {
		l := newLab(t, 1, dr)
		must(t, l.cfg.SetSysctl(ipvs.ConnReuseMode, []int64{c.mode}))
		l.publish()
		d, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		l.send(0, tcpSeg(client, vip, tcpACK))
		l.send(0, tcpSeg(client, vip, tcpFIN|tcpACK))
		d2, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		if got := d2.Reason == ReasonScheduledNoPersistence && d2.Real != d.Real; got != c.resched {
			t.Fatalf("conn_reuse_mode=%d: SYN reusing a direct-routed FIN_WAIT connection: %v to %v, want rescheduled %v", c.mode, d2.Reason, d2.Real, c.resched)
		}
	}

	// A connection controlled by a persistence template is never reused
	// for rescheduling: the SYN follows it.
	l := newLab(t, 1, "-A -t 10.0.0.1:80 -s rr -p 60\n-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -m\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n")
	first := timeWait(l)
	if d, _ := l.send(0, tcpSeg(client, vip, tcpSYN)); d.Reason != ReasonConnHit || d.Real != first {
		t.Fatalf("persistent TIME_WAIT connection: %v to %v, want conn_hit to %v", d.Reason, d.Real, first)
	}

	// expire_nodest_conn: a SYN on an established connection whose server
	// now has weight 0 is rescheduled; without it, it follows the connection.
	for _, expire := range []bool{false, true} {
		l := newLab(t, 1, nat)
		must(t, l.cfg.SetSysctl(ipvs.ExpireNodestConn, []int64{b2i(expire)}))
		l.publish()
		d, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		l.send(0, tcpSeg(client, vip, tcpACK))
		l.apply("-e -t 10.0.0.1:80 -r " + d.Real.String() + " -m -w 0\n")
		d2, _ := l.send(0, tcpSeg(client, vip, tcpSYN))
		if got := d2.Reason == ReasonScheduledNoPersistence && d2.Real != d.Real; got != expire {
			t.Fatalf("expire_nodest_conn=%v: SYN on a connection to a quiesced server: %v to %v", expire, d2.Reason, d2.Real)
		}
	}
}
