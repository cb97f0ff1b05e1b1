package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
)

// tunnelRules: an IPv4 and an IPv6 SIP service, each with real servers of
// every tunnel type, some of the other address family.
const tunnelRules = `
-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10 -i --tun-type ipip
-a -u 10.4.3.192:5060 -r [fd00:1::11]:5060 -i --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.4.3.192:5060 -r 192.168.1.12 -i --tun-type gre --tun-csum
-A -u [fd00:4:3::192]:5060 -s rr -p 60 --pe sip -o
-a -u [fd00:4:3::192]:5060 -r [fd00:1::20]:5060 -i --tun-type ipip
-a -u [fd00:4:3::192]:5060 -r 192.168.1.21 -i --tun-type gue --tun-port 6080
-a -u [fd00:4:3::192]:5060 -r [fd00:1::22]:5060 -i --tun-type gre
`

// withRoom returns frame behind roomBytes of room, as a backend receives it.
func withRoom(frame []byte) (room, f []byte) {
	const roomBytes = 128
	buf := make([]byte, roomBytes+len(frame))
	copy(buf[roomBytes:], frame)
	return buf[:roomBytes], buf[roomBytes:]
}

// sendRoom runs one frame with room through worker w and returns the
// decision and the frame as it leaves.
func (l *lab) sendRoom(w int, frame []byte) (Decision, []byte) {
	var d Decision
	wk := l.workers[w]
	wk.BeginBatch(l.now)
	room, f := withRoom(frame)
	out := wk.ProcessRoom(room, f, packet.LinkEthernet, &d)
	wk.EndBatch()
	return d, out
}

// TestTunnelForwarding: every tunnel type and family pair forwards each
// call to one real server, the datagram unchanged behind the outer headers
// (from the director's egress address to the server, the server's MAC), and
// the calls spread over the servers.
func TestTunnelForwarding(t *testing.T) {
	l := newLab(t, 1, tunnelRules)
	for _, vip := range []string{"10.4.3.192:5060", "[fd00:4:3::192]:5060"} {
		client := "198.51.100.7:5060"
		if vip[0] == '[' {
			client = "[2001:db8:c::7]:5060"
		}
		seen := map[string]bool{}
		for i := range 9 {
			id := fmt.Sprintf("tun-%d@%s", i, vip)
			var real string
			for _, m := range [][]byte{craft.SIPInvite(id), craft.SIPAck(id), craft.SIPBye(id)} {
				in := sip(client, vip, m)
				d, out := l.sendRoom(0, append([]byte(nil), in...))
				if d.Verdict() != Forward || d.Dest == nil || d.Dest.Fwd != ipvs.Tunnel {
					t.Fatalf("%s: %v", id, d.Reason)
				}
				if real != "" && d.Real.String() != real {
					t.Fatalf("%s went to %s and %v", id, real, d.Real)
				}
				real = d.Real.String()
				seen[real] = true
				var p packet.Parsed
				p.Decode(out, packet.LinkEthernet)
				src := labSource4
				if d.Dest.Addr.Addr().Is6() {
					src = labSource6
				}
				a := d.Dest.Addr.Addr().As16()
				mac := [6]byte{0x02, 0xaa, a[12], a[13], a[14], a[15]}
				if p.Src != src || p.Dst != d.Dest.Addr.Addr() || [6]byte(out[:6]) != mac || [6]byte(out[6:12]) != lbMAC {
					t.Fatalf("%s: outer %v→%v MACs % x", id, p.Src, p.Dst, out[:12])
				}
				if !bytes.Equal(out[len(out)-(len(in)-14):], in[14:]) {
					t.Fatalf("%s: inner datagram changed", id)
				}
			}
		}
		if len(seen) != 3 {
			t.Errorf("%s: calls on %v", vip, seen)
		}
	}
	c := l.workers[0].Counters()
	if c.Tunnel.Encapsulated != 54 || c.Reasons[ReasonUnsupportedForwarding] != 0 {
		t.Errorf("counters %+v", c.Tunnel)
	}
}

// TestTunnelNoHeadroom: a frame without room cannot be encapsulated; it is
// dropped and counted, unchanged.
func TestTunnelNoHeadroom(t *testing.T) {
	l := newLab(t, 1, tunnelRules)
	in := sip("198.51.100.7:5060", "10.4.3.192:5060", craft.SIPInvite("x"))
	f := append([]byte(nil), in...)
	d, out := l.send(0, f)
	if d.Reason != ReasonNoHeadroom || !bytes.Equal(out, in) {
		t.Fatalf("%v", d.Reason)
	}
}

// bigSIP is a SIP datagram of n octets of payload.
func bigSIP(src, dst string, n int, df bool) []byte {
	p := craft.SIPInvite("big@x")
	p = append(p, bytes.Repeat([]byte("a"), n-len(p))...)
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Payload: p, DF: df}.Build()
}

// TestTunnelTooBig: a datagram that does not fit the tunnel is answered as
// the kernel answers it: DF (IPv4) or IPv6 → ICMP with the tunnel's MTU
// back to the client; IPv4 without DF, or with pmtu_disc off → the outer
// datagram is fragmented (first fragment in the frame, the rest emitted).
func TestTunnelTooBig(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -i --tun-type gre --tun-csum\n"+
		"-A -u [fd00:4:3::192]:5060 -s rr -p 60 --pe sip -o\n-a -u [fd00:4:3::192]:5060 -r [fd00:1::20]:5060 -i\n")
	w := l.workers[0]

	// IPv4 with DF: ICMP fragmentation needed, MTU 1500-20-8.
	in := bigSIP("198.51.100.7:5060", "10.4.3.192:5060", 1460, true)
	d, out := l.sendRoom(0, in)
	var p packet.Parsed
	p.Decode(out, packet.LinkEthernet)
	var ie packet.ICMPError
	if d.Reason != ReasonTunnelICMPTooBig || !ie.DecodeICMPError(out, &p) || ie.MTU != 1500-28 ||
		p.Dst != netip.MustParseAddr("198.51.100.7") || p.Src != netip.MustParseAddr("10.4.3.192") {
		t.Fatalf("DF: %v, ICMP %+v", d.Reason, ie)
	}

	// IPv4 without DF: two outer fragments.
	in = bigSIP("198.51.100.7:5060", "10.4.3.192:5060", 1460, false)
	d, out = l.sendRoom(0, in)
	em := w.Emitted()
	if d.Reason != ReasonTemplateHit || len(em) != 1 || len(out)-14 > 1500 {
		t.Fatalf("no DF: %v, %d emitted, %d octets", d.Reason, len(em), len(out)-14)
	}
	p.Decode(out, packet.LinkEthernet)
	var q packet.Parsed
	q.Decode(em[0], packet.LinkEthernet)
	if !p.MoreFrags || p.Dst != netip.MustParseAddr("192.168.1.10") || q.FragOff == 0 || q.FragID != p.FragID ||
		(len(out)-14-20)+(len(em[0])-14-20) != len(in)-14+8 {
		t.Fatalf("outer fragments: %+v %+v", p, q)
	}
	if c := w.Counters(); c.Tunnel.Fragmented != 1 || c.Tunnel.Fragments != 1 {
		t.Errorf("tunnel counters %+v", c.Tunnel)
	}

	// pmtu_disc off: DF or not, fragmented, no DF outside.
	l.cfg.SetSysctl(ipvs.PMTUDisc, []int64{0})
	l.publish()
	in = bigSIP("198.51.100.7:5060", "10.4.3.192:5060", 1460, true)
	d, out = l.sendRoom(0, in)
	p.Decode(out, packet.LinkEthernet)
	if d.Reason != ReasonTemplateHit || len(w.Emitted()) != 1 || p.DF {
		t.Fatalf("pmtu_disc 0: %v, %d emitted, DF %v", d.Reason, len(w.Emitted()), p.DF)
	}

	// IPv6: packet too big, MTU 1500-40.
	in = bigSIP("[2001:db8:c::7]:5060", "[fd00:4:3::192]:5060", 1440, false)
	d, out = l.sendRoom(0, in)
	p.Decode(out, packet.LinkEthernet)
	if d.Reason != ReasonTunnelICMPTooBig || !ie.DecodeICMPError(out, &p) || ie.MTU != 1460 || len(out)-14 != 1280 {
		t.Fatalf("IPv6: %v %+v", d.Reason, ie)
	}
	// A datagram that fits goes through.
	in = bigSIP("[2001:db8:c::7]:5060", "[fd00:4:3::192]:5060", 1400, false)
	if d, _ = l.sendRoom(0, in); d.Verdict() != Forward || d.Reason == ReasonTunnelICMPTooBig {
		t.Fatalf("IPv6 that fits: %v", d.Reason)
	}
}

// TestTunnelFragmentsFollow: the fragments of a SIP datagram all go to one
// tunnel server, each encapsulated, in order and out of order (held copies
// are encapsulated when their datagram is decided).
func TestTunnelFragmentsFollow(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		l := newLab(t, 1, tunnelRules)
		s := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("198.51.100.7:5060"),
			Dst: netip.MustParseAddrPort("10.4.3.192:5060"), Payload: craft.SIPInvite("frag@x"), ID: 77}
		frags := craft.Fragment(s, 256)
		if reverse {
			for i, j := 0, len(frags)-1; i < j; i, j = i+1, j-1 {
				frags[i], frags[j] = frags[j], frags[i]
			}
		}
		var outs [][]byte
		dst := ""
		for _, f := range frags {
			d, out := l.sendRoom(0, f)
			if d.Verdict() == Forward {
				outs = append(outs, out)
			}
			for _, e := range l.workers[0].Emitted() {
				outs = append(outs, append([]byte(nil), e...))
			}
		}
		if len(outs) != len(frags) {
			t.Fatalf("reverse=%v: %d of %d fragments forwarded", reverse, len(outs), len(frags))
		}
		for _, o := range outs {
			var p packet.Parsed
			p.Decode(o, packet.LinkEthernet)
			if dst == "" {
				dst = p.Dst.String()
			}
			if p.Dst.String() != dst || p.Src != labSource4 && p.Src != labSource6 {
				t.Fatalf("reverse=%v: fragments to %s and %v", reverse, dst, p.Dst)
			}
		}
	}
}

// TestTunnelICMPForwarded: a path-MTU error about a tunnelled flow reaches
// its real server encapsulated.
func TestTunnelICMPForwarded(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -i --tun-type gre\n")
	d, _ := l.sendRoom(0, sip("198.51.100.7:5060", "10.4.3.192:5060", craft.SIPInvite("icmp@x")))
	if d.Verdict() != Forward {
		t.Fatal(d.Reason)
	}
	// The server's reply (from the VIP, direct) met a small MTU on the way.
	reply := craft.Spec{Src: netip.MustParseAddrPort("10.4.3.192:5060"), Dst: netip.MustParseAddrPort("198.51.100.7:5060"), Payload: craft.SIP200OK("icmp@x")}.Datagram()
	icmp := append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0x00}, reply[:28]...)
	c := craft.Checksum(icmp)
	binary.BigEndian.PutUint16(icmp[2:], c)
	frame := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("203.0.113.1:0"), Dst: netip.MustParseAddrPort("10.4.3.192:0"), Proto: packet.ProtoICMP, Payload: icmp}.Build()
	d, out := l.sendRoom(0, frame)
	var p packet.Parsed
	p.Decode(out, packet.LinkEthernet)
	if d.Reason != ReasonICMPForwarded || p.Proto != packet.ProtoGRE || p.Dst != netip.MustParseAddr("192.168.1.10") {
		t.Fatalf("%v: outer proto %d to %v", d.Reason, p.Proto, p.Dst)
	}
}

// TestTunnelNoAllocations: tunnel forwarding allocates nothing, fragmented
// or not.
func TestTunnelNoAllocations(t *testing.T) {
	l := newLab(t, 1, tunnelRules)
	hit := sip("198.51.100.7:5060", "10.4.3.192:5060", craft.SIPInvite("hot@x"))
	l.sendRoom(0, hit)
	big := bigSIP("198.51.100.8:5060", "10.4.3.192:5060", 1460, false)
	w := l.workers[0]
	var d Decision
	buf := make([]byte, 4096)
	for name, in := range map[string][]byte{"encapsulate": hit, "fragment": big} {
		f := func() {
			w.BeginBatch(l.now)
			copy(buf[128:], in)
			w.ProcessRoom(buf[:128], buf[128:128+len(in)], packet.LinkEthernet, &d)
			w.EndBatch()
		}
		if a := testing.AllocsPerRun(300, f); a != 0 {
			t.Errorf("%s: %v allocations per packet", name, a)
		}
	}
}

// TestTunnelGUESourcePort: GUE's outer source port follows the inner flow,
// as the kernel's udp_flow_src_port does: every datagram of one flow
// (addresses, protocol, ports) leaves with one port, in the kernel's range,
// and different flows spread over the range. Inner IPv4 takes flowHash4,
// inner IPv6 flowHash.
func TestTunnelGUESourcePort(t *testing.T) {
	l := newLab(t, 1, tunnelRules)
	lo, hi := packet.FlowPort(0), packet.FlowPort(^uint32(0))
	for _, c := range []struct{ vip, client string }{
		{"10.4.3.192:5060", "198.51.100.7"},
		{"[fd00:4:3::192]:5060", "[2001:db8:c::7]"},
	} {
		ports := map[uint16]bool{}
		flows := 0
		for i := range 40 {
			client := fmt.Sprintf("%s:%d", c.client, 5000+i)
			id := fmt.Sprintf("gue-%d@%s", i, c.vip)
			sport := uint16(0)
			for _, m := range [][]byte{craft.SIPInvite(id), craft.SIPAck(id), craft.SIPBye(id)} {
				d, out := l.sendRoom(0, sip(client, c.vip, m))
				if d.Verdict() != Forward || d.Dest == nil {
					t.Fatalf("%s: %v", id, d.Reason)
				}
				if d.Dest.Tunnel.Type != ipvs.GUE {
					break
				}
				var p packet.Parsed
				p.Decode(out, packet.LinkEthernet)
				if p.Proto != packet.ProtoUDP || p.DstPort != 6080 || p.SrcPort < lo || p.SrcPort > hi {
					t.Fatalf("%s: outer %v port %d→%d (range %d..%d)", id, p.Proto, p.SrcPort, p.DstPort, lo, hi)
				}
				if sport != 0 && p.SrcPort != sport {
					t.Fatalf("%s: one flow left from ports %d and %d", id, sport, p.SrcPort)
				}
				sport = p.SrcPort
			}
			if sport != 0 {
				flows++
				ports[sport] = true
			}
		}
		if flows < 5 || len(ports) < flows*3/4 {
			t.Errorf("%s: %d GUE flows on %d source ports", c.vip, flows, len(ports))
		}
	}
}
