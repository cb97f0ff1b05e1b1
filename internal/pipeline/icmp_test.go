package pipeline

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

var router4, router6 = netip.MustParseAddrPort("10.4.3.254:0"), netip.MustParseAddrPort("[2001:db8::fe]:0")

// pmtuError builds the ICMPv4 "fragmentation needed" / ICMPv6 "packet too
// big" a router sends to from about quoted (a full datagram, cut to quote
// bytes), as a frame from the client side.
func pmtuError(router, to netip.AddrPort, quoted []byte, quote int, mtu uint32) craft.Spec {
	quoted = quoted[:min(quote, len(quoted))]
	var msg []byte
	proto := uint8(packet.ProtoICMP)
	if router.Addr().Is4() {
		msg = []byte{packet.ICMPv4DestUnreachable, packet.ICMPv4FragNeeded, 0, 0, 0, 0}
		msg = binary.BigEndian.AppendUint16(msg, uint16(mtu))
	} else {
		proto = packet.ProtoICMPv6
		msg = []byte{packet.ICMPv6PacketTooBig, 0, 0, 0}
		msg = binary.BigEndian.AppendUint32(msg, mtu)
	}
	msg = append(msg, quoted...)
	var c uint16
	if router.Addr().Is4() {
		c = craft.Checksum(msg)
	} else {
		ph := append(router.Addr().AsSlice(), to.Addr().AsSlice()...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(msg)))
		ph = append(ph, 0, 0, 0, proto)
		c = craft.Checksum(ph, msg)
	}
	binary.BigEndian.PutUint16(msg[2:], c)
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: proto, Src: router, Dst: to, Payload: msg}
}

// A path-MTU error about a call's reply reaches the real server that owns
// the call, rewritten for it (NAT: outer destination, quoted source and every
// checksum; direct routing: MACs only), byte for byte as craft builds it.
func TestICMPPathMTUToOwner(t *testing.T) {
	for _, c := range fragCases {
		t.Run(c.name, func(t *testing.T) {
			l := newLab(t, 1, c.rules)
			var owner netip.AddrPort
			for _, id := range []string{"a@x", "b@x", "pmtu@x"} { // rr: not the first server
				d, _ := l.send(0, sip(c.client, c.vip, craft.SIPInvite(id)))
				owner = d.Real
			}
			reply := craft.Spec{Src: netip.MustParseAddrPort(c.vip), Dst: netip.MustParseAddrPort(c.client), Payload: craft.SIP200OK("pmtu@x")}
			router := router4
			if reply.Src.Addr().Is6() {
				router = router6
			}
			in := pmtuError(router, reply.Src, reply.Datagram(), 1200, 1400)
			d, out := l.send(0, in.Build())
			if d.Reason != ReasonICMPForwarded || d.Real != owner {
				t.Fatalf("%v to %v, want icmp_forwarded to %v", d.Reason, d.Real, owner)
			}
			wantReply := reply
			want := pmtuError(router, reply.Src, wantReply.Datagram(), 1200, 1400)
			if c.nat {
				wantReply.Src = owner
				want = pmtuError(router, netip.AddrPortFrom(owner.Addr(), 0), wantReply.Datagram(), 1200, 1400)
			}
			a := owner.Addr().As16()
			want.SrcMAC, want.DstMAC = lbMAC, [6]byte{0x02, 0xaa, a[12], a[13], a[14], a[15]}
			if diff := diffFrames(out, want.Build()); diff != "" {
				t.Fatalf("rewritten ICMP: %s", diff)
			}
			var p packet.Parsed
			var e packet.ICMPError
			p.Decode(out, packet.LinkEthernet)
			if !e.DecodeICMPError(out, &p) || !e.VerifyICMPChecksum(out, &p) {
				t.Fatal("rewritten ICMP does not verify")
			}
		})
	}
}

// Without the Call-ID in the quote the owner of a SIP call is unknown: the
// error is dropped and counted, not sent to a guess. With mh and the Call-ID
// quoted, a balancer that never saw the call agrees with the one that did.
// Connections (no -o) find their owner directly; other ICMP goes to the
// kernel.
func TestICMPOwnerLookups(t *testing.T) {
	c := fragCases[0]
	l := newLab(t, 1, c.rules)
	l.send(0, sip(c.client, c.vip, craft.SIPInvite("short@x")))
	reply := craft.Spec{Src: netip.MustParseAddrPort(vip), Dst: netip.MustParseAddrPort(c.client), Payload: craft.SIP200OK("short@x")}
	in := pmtuError(router4, reply.Src, reply.Datagram(), 28, 1400).Build()
	orig := append([]byte(nil), in...)
	if d, out := l.send(0, in); d.Reason != ReasonICMPUnmatched || diffFrames(out, orig) != "" {
		t.Fatalf("8-byte quote: %v", d.Reason)
	}

	mh := "-A -u 10.4.3.192:5060 -s mh -p 60 --pe sip -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m\n-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m\n"
	a, b := newLab(t, 1, mh), newLab(t, 1, mh)
	for i := range 20 {
		id := string(rune('a'+i)) + "-mh@x"
		d, _ := a.send(0, sip(c.client, vip, craft.SIPInvite(id)))
		reply.Payload = craft.SIP200OK(id)
		got, _ := b.send(0, pmtuError(router4, reply.Src, reply.Datagram(), 548, 1400).Build())
		if got.Reason != ReasonICMPForwarded || got.Real != d.Real {
			t.Fatalf("%s: balancer B sends the error to %v (%v), A scheduled %v", id, got.Real, got.Reason, d.Real)
		}
	}

	tcp := newLab(t, 1, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n-a -t 10.0.0.1:80 -r 192.168.0.3:8080 -m\n")
	syn := craft.Spec{Proto: 6, TCPFlags: craft.SYN, Src: netip.MustParseAddrPort("198.51.100.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}
	tcp.send(0, syn.Build())
	d0, _ := tcp.send(0, craft.Spec{Proto: 6, TCPFlags: craft.SYN, Src: netip.MustParseAddrPort("198.51.100.2:40000"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}.Build())
	seg := craft.Spec{Proto: 6, Src: netip.MustParseAddrPort("10.0.0.1:80"), Dst: netip.MustParseAddrPort("198.51.100.2:40000"), Payload: make([]byte, 1400)}
	d, out := tcp.send(0, pmtuError(router4, seg.Src, seg.Datagram(), 548, 1300).Build())
	if d.Reason != ReasonICMPForwarded || d.Real != d0.Real {
		t.Fatalf("TCP connection: %v to %v, want %v", d.Reason, d.Real, d0.Real)
	}
	var p packet.Parsed
	var e packet.ICMPError
	p.Decode(out, packet.LinkEthernet)
	if !e.DecodeICMPError(out, &p) || netip.AddrPortFrom(e.Src, e.SrcPort) != d0.Real || p.Dst != d0.Real.Addr() || !e.VerifyICMPChecksum(out, &p) {
		t.Fatalf("TCP: quoted source %v:%d, outer to %v", e.Src, e.SrcPort, p.Dst)
	}

	echo := craft.Spec{Proto: 1, Src: router4, Dst: netip.MustParseAddrPort("10.4.3.192:0"), Payload: []byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0}}.Build()
	if d, _ := l.send(0, echo); d.Reason != ReasonNotService {
		t.Fatalf("echo request: %v", d.Reason)
	}
	other := pmtuError(router4, netip.MustParseAddrPort("10.4.3.7:0"), craft.Spec{Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort("10.9.9.9:5060"), Payload: []byte("x")}.Datagram(), 100, 1400).Build()
	if d, _ := l.send(0, other); d.Reason != ReasonNotService {
		t.Fatalf("error about someone else's flow: %v", d.Reason)
	}
}
