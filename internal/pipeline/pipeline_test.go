package pipeline

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

const sipRules = `
-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m
`

const vip = "10.4.3.192:5060"

// The product's core promise: one client ip:port (a SIP proxy talking
// 5060↔5060) carries many calls; each call sticks to one real server while
// the calls spread over all of them.
func TestCallIDPersistenceOneSourcePort(t *testing.T) {
	l := newLab(t, 1, sipRules)
	perServer := map[string]int{}
	for i := range 60 {
		reals := l.call(0, "10.4.3.7:5060", vip, fmt.Sprintf("call-%d@proxy", i))
		if !onlyOne(reals) {
			t.Fatalf("call %d scattered over %v", i, reals)
		}
		perServer[reals[0]]++
	}
	if len(perServer) != 3 || perServer["192.168.1.10:5060"] != 20 {
		t.Fatalf("rr over 60 calls: %v, want 20 each", perServer)
	}
	c := l.workers[0].Counters()
	if c.Reasons[ReasonScheduled] != 60 || c.Reasons[ReasonTemplateHit] != 120 || c.PE[pe.StatusOK] != 180 {
		t.Fatalf("counters: scheduled %d template hits %d pe ok %d", c.Reasons[ReasonScheduled], c.Reasons[ReasonTemplateHit], c.PE[pe.StatusOK])
	}
	var sum uint64
	for _, n := range c.Reasons {
		sum += n
	}
	if sum != c.Frames || c.Frames != 180 {
		t.Fatalf("reasons sum to %d, frames %d", sum, c.Frames)
	}
	// IPVS counts a connection per packet under -o, and a live template per call.
	svc := l.ptr.Load().Lookup(ipvs.UDP, netip.MustParseAddr("10.4.3.192"), 5060)
	st := svc.Stats.Read()
	if st.Conns != 180 || st.InPkts != 180 {
		t.Fatalf("service stats %+v", st)
	}
	var persist int64
	for _, d := range svc.Dests {
		persist += d.Stats.Read().PersistConns
	}
	if persist != 60 {
		t.Fatalf("PersistConn total %d, want 60", persist)
	}
}

// Golden fixture: packet in → packet out + verdict, for NAT and for direct
// routing, IPv4 and IPv6. The expected frame is built independently by craft,
// so byte equality checks the addresses, ports, MACs and all checksums.
func TestGoldenRewrites(t *testing.T) {
	rsMAC := [6]byte{0x02, 0xaa, 0, 0, 0, 0x10}
	cases := []struct {
		desc   string
		rules  string
		src    string
		dst    string
		real   string
		zeroCk bool
	}{
		{"NAT IPv4", "-A -u 10.0.0.1:5060 -p 60 --pe sip -o\n-a -u 10.0.0.1:5060 -r 192.168.0.2:15060 -m\n", "198.51.100.7:5062", "10.0.0.1:5060", "192.168.0.2:15060", false},
		{"NAT IPv4, UDP checksum 0 stays 0", "-A -u 10.0.0.1:5060 -p 60 --pe sip -o\n-a -u 10.0.0.1:5060 -r 192.168.0.2:15060 -m\n", "198.51.100.7:5062", "10.0.0.1:5060", "192.168.0.2:15060", true},
		{"NAT IPv6", "-A -u [2001:db8::1]:5060 -p 60 --pe sip -o\n-a -u [2001:db8::1]:5060 -r [2001:db8:1::2]:5070 -m\n", "[2001:db8:99::7]:5062", "[2001:db8::1]:5060", "[2001:db8:1::2]:5070", false},
		{"direct routing IPv4 (MAC only)", "-A -u 10.0.0.1:5060 -p 60 --pe sip -o\n-a -u 10.0.0.1:5060 -r 192.168.0.2 -g\n", "198.51.100.7:5062", "10.0.0.1:5060", "192.168.0.2:5060", false},
		{"direct routing IPv6 (MAC only)", "-A -u [2001:db8::1]:5060 -p 60 --pe sip -o\n-a -u [2001:db8::1]:5060 -r 2001:db8:1::2 -g\n", "[2001:db8:99::7]:5062", "[2001:db8::1]:5060", "[2001:db8:1::2]:5060", false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			l := newLab(t, 1, c.rules)
			svc := l.ptr.Load().Services()[0]
			if err := l.cfg.SetNextHop(svc.Key, svc.Dests[0].Addr, rsMAC); err != nil {
				t.Fatal(err)
			}
			l.publish()
			in := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(c.src), Dst: netip.MustParseAddrPort(c.dst),
				Payload: craft.SIPInvite("golden@x"), ZeroUDPChecksum: c.zeroCk}
			d, out := l.send(0, in.Build())
			if d.Reason != ReasonScheduled || d.Real.String() != c.real {
				t.Fatalf("decision %v → %v, want scheduled → %s", d.Reason, d.Real, c.real)
			}
			want := in
			want.SrcMAC, want.DstMAC = lbMAC, rsMAC
			if svc.Dests[0].Fwd == ipvs.Masq {
				want.Dst = netip.MustParseAddrPort(c.real)
			}
			if diff := diffFrames(out, expectFrame(want)); diff != "" {
				t.Fatalf("rewritten frame: %s", diff)
			}
			if string(d.PEData) != "golden@x" {
				t.Fatalf("pe data %q", d.PEData)
			}
		})
	}
}

// No Call-ID: fall back to the client-address template (counted); with
// --pe-strict drop it, as current kernels do.
func TestPEFallbackAndStrict(t *testing.T) {
	l := newLab(t, 1, sipRules)
	noID := sip("10.4.3.7:5060", vip, craft.SIPNoCallID())
	d1, _ := l.send(0, noID)
	if d1.Reason != ReasonScheduled || !d1.Fallback || d1.PE != pe.StatusNotFound {
		t.Fatalf("first: %v fallback=%v pe=%v", d1.Reason, d1.Fallback, d1.PE)
	}
	d2, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPNoCallID()))
	if d2.Reason != ReasonTemplateHit || mustDest(t, d2) != mustDest(t, d1) {
		t.Fatalf("second: %v to %v, want template hit on %v", d2.Reason, d2.Dest.Addr, d1.Dest.Addr)
	}
	// -M 0.0.0.0: every client shares the fallback template, like IPVS's
	// client-address persistence with that mask.
	d3, _ := l.send(0, sip("10.9.9.9:5060", vip, []byte("\r\n\r\n")))
	if d3.Reason != ReasonTemplateHit || !d3.Fallback {
		t.Fatalf("keep-alive from another client: %v", d3.Reason)
	}
	if c := l.workers[0].Counters(); c.PEFallback != 3 {
		t.Fatalf("PEFallback = %d, want 3", c.PEFallback)
	}

	strict := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip --pe-strict -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n")
	in := sip("10.4.3.7:5060", vip, craft.SIPNoCallID())
	orig := append([]byte(nil), in...)
	d, out := strict.send(0, in)
	if d.Reason != ReasonPEStrict || d.Verdict() != Drop || diffFrames(out, orig) != "" {
		t.Fatalf("strict: %v, frame changed: %v", d.Reason, diffFrames(out, orig) != "")
	}
	if d, _ := strict.send(0, sip("10.4.3.7:5060", vip, craft.SIPInvite("ok@x"))); d.Reason != ReasonScheduled {
		t.Fatalf("strict with a Call-ID: %v", d.Reason)
	}
}

// -M: the template key holds the client address AND the mask.
func TestNetmaskGranularity(t *testing.T) {
	l := newLab(t, 1, `
-A -u 10.0.0.1:5060 -s rr -p 60 -M 255.255.255.0 -o
-a -u 10.0.0.1:5060 -r 192.168.0.1 -m
-a -u 10.0.0.1:5060 -r 192.168.0.2 -m
-A -u 10.0.0.2:5060 -s rr -p 60 --pe sip -o
-a -u 10.0.0.2:5060 -r 192.168.0.1 -m
-a -u 10.0.0.2:5060 -r 192.168.0.2 -m
`)
	a, _ := l.send(0, sip("172.16.5.1:5060", "10.0.0.1:5060", craft.SIPInvite("x")))
	b, _ := l.send(0, sip("172.16.5.200:6000", "10.0.0.1:5060", craft.SIPInvite("y")))
	c, _ := l.send(0, sip("172.16.6.1:5060", "10.0.0.1:5060", craft.SIPInvite("z")))
	if b.Reason != ReasonTemplateHit || mustDest(t, a) != mustDest(t, b) {
		t.Fatalf("same /24: %v %v / %v", b.Reason, mustDest(t, a), mustDest(t, b))
	}
	if c.Reason != ReasonScheduled || mustDest(t, c) == mustDest(t, a) {
		t.Fatalf("other /24 must get its own template (rr → other server): %v %v", c.Reason, mustDest(t, c))
	}
	// Default /32 with the SIP engine: the same Call-ID from two clients
	// makes two templates (IPVS's key includes the client address).
	x, _ := l.send(0, sip("172.16.5.1:5060", "10.0.0.2:5060", craft.SIPInvite("same")))
	y, _ := l.send(0, sip("172.16.5.2:5060", "10.0.0.2:5060", craft.SIPInvite("same")))
	if x.Reason != ReasonScheduled || y.Reason != ReasonScheduled || mustDest(t, x) == mustDest(t, y) {
		t.Fatalf("/32: %v %v → %v %v", x.Reason, y.Reason, mustDest(t, x), mustDest(t, y))
	}
}

// Quiescing (weight 0): live templates keep their server, new Call-IDs avoid
// it; with expire_quiescent_template the templates are rescheduled.
func TestQuiesce(t *testing.T) {
	for _, expire := range []bool{false, true} {
		l := newLab(t, 1, sipRules)
		first := l.call(0, "10.4.3.7:5060", vip, "live")[0]
		svc := l.ptr.Load().Services()[0]
		dc := ipvs.DestConfig{Addr: netip.MustParseAddrPort(first), Fwd: ipvs.Masq, Weight: 0}
		if err := l.cfg.EditDest(svc.Key, dc); err != nil {
			t.Fatal(err)
		}
		must(t, l.cfg.SetSysctl(ipvs.ExpireQuiescentTemplate, []int64{b2i(expire)}))
		setNextHops(l) // -e replaces the real server wholesale, next hop included
		d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("live")))
		switch {
		case !expire && (d.Reason != ReasonTemplateHit || d.Real.String() != first):
			t.Fatalf("quiesced: live call went %v to %v, want template hit on %s", d.Reason, d.Real, first)
		case expire && (d.Reason != ReasonScheduled || d.Real.String() == first):
			t.Fatalf("expire_quiescent_template: %v to %v, want rescheduled away from %s", d.Reason, d.Real, first)
		}
		for i := range 20 {
			if r := l.call(0, "10.4.3.7:5060", vip, fmt.Sprintf("new-%d", i))[0]; r == first {
				t.Fatalf("new call %d sent to quiesced %s", i, first)
			}
		}
	}
}

// Removing a real server invalidates its templates (the call is
// rescheduled); re-adding it (IPVS trash) makes it schedulable again.
func TestDestRemovalAndReadd(t *testing.T) {
	l := newLab(t, 1, sipRules)
	first := l.call(0, "10.4.3.7:5060", vip, "c1")[0]
	svc := l.ptr.Load().Services()[0]
	if err := l.cfg.DelDest(svc.Key, netip.MustParseAddrPort(first)); err != nil {
		t.Fatal(err)
	}
	setNextHops(l)
	d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("c1")))
	if d.Reason != ReasonScheduled || d.Real.String() == first {
		t.Fatalf("after removal: %v to %v", d.Reason, d.Real)
	}
	for i := range 12 {
		if r := l.call(0, "10.4.3.7:5060", vip, fmt.Sprintf("n%d", i))[0]; r == first {
			t.Fatalf("call scheduled to removed %s", first)
		}
	}
	l.apply(fmt.Sprintf("-a -u %s -r %s -m\n", vip, first))
	seen := false
	for i := range 12 {
		if l.call(0, "10.4.3.7:5060", vip, fmt.Sprintf("r%d", i))[0] == first {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("re-added %s never scheduled", first)
	}
	// All servers gone: no destination.
	l.apply("-C\n-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o\n")
	if d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPInvite("c9"))); d.Reason != ReasonNoDest {
		t.Fatalf("no servers: %v", d.Reason)
	}
}

// The template lives -p seconds after its last use.
func TestTemplateTimeout(t *testing.T) {
	l := newLab(t, 1, sipRules)
	l.call(0, "10.4.3.7:5060", vip, "t1")
	l.advance(50 * time.Second)
	if d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("t1"))); d.Reason != ReasonTemplateHit {
		t.Fatalf("after 50 s: %v", d.Reason)
	}
	l.advance(50 * time.Second) // 50 s since the last use: still alive
	if d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("t1"))); d.Reason != ReasonTemplateHit {
		t.Fatalf("refreshed template expired: %v", d.Reason)
	}
	l.advance(61 * time.Second)
	if d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("t1"))); d.Reason != ReasonScheduled {
		t.Fatalf("after 61 s idle: %v, want a new template", d.Reason)
	}
}

// Without -o, UDP gets IPVS connection entries: every datagram from one
// client ip:port follows the first one's server, whatever its Call-ID
// (the behaviour the SIP engine needs -o to avoid), and NAT replies are
// translated back to the virtual address.
func TestConnectionsWithoutOPS(t *testing.T) {
	l := newLab(t, 1, `
-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m
`)
	d1, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("a")))
	d2, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("b")))
	if d1.Reason != ReasonScheduled || d2.Reason != ReasonConnHit || d1.Real != d2.Real {
		t.Fatalf("%v→%v then %v→%v", d1.Reason, d1.Real, d2.Reason, d2.Real)
	}
	// The reply from the real server leaves from the VIP.
	reply := craft.Spec{SrcMAC: [6]byte{2, 0xaa, 0, 0, 0, 1}, DstMAC: lbMAC, Src: d1.Real, Dst: netip.MustParseAddrPort("10.4.3.7:5062"), Payload: craft.SIP200OK("a")}
	d3, out := l.send(0, reply.Build())
	if d3.Reason != ReasonNATReply {
		t.Fatalf("reply: %v", d3.Reason)
	}
	want := reply
	want.Src = netip.MustParseAddrPort(vip)
	if diff := diffFrames(out, want.Build()); diff != "" {
		t.Fatalf("reply frame: %s", diff)
	}
	dest := l.ptr.Load().Services()[0].Dests
	var inact int64
	for _, d := range dest {
		inact += d.Stats.Read().InactConns
	}
	if inact != 1 {
		t.Fatalf("InActConn = %d, want 1 (IPVS counts UDP connections as inactive)", inact)
	}
	// The connection expires after the UDP timeout (300 s).
	l.advance(301 * time.Second)
	if d, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("c"))); d.Reason == ReasonConnHit {
		t.Fatalf("connection outlived the udp timeout")
	}
}

// IPVS conn_out: a NAT real server's own request creates the template for
// its Call-ID and leaves from the VIP; the peer's answer reaches that server.
func TestServerInitiatedRequest(t *testing.T) {
	l := newLab(t, 1, sipRules)
	rs := "192.168.1.11:5060"
	peer := "10.4.3.7:5060"
	bye := craft.Spec{SrcMAC: [6]byte{2, 0xaa, 0, 0, 0, 11}, DstMAC: lbMAC, Src: netip.MustParseAddrPort(rs), Dst: netip.MustParseAddrPort(peer), Payload: craft.SIPBye("rs-call")}
	d, out := l.send(0, bye.Build())
	if d.Reason != ReasonServerInitiated || string(d.PEData) != "rs-call" {
		t.Fatalf("server request: %v %q", d.Reason, d.PEData)
	}
	want := bye
	want.Src = netip.MustParseAddrPort(vip)
	if diff := diffFrames(out, want.Build()); diff != "" {
		t.Fatalf("SNAT frame: %s", diff)
	}
	for range 3 {
		ans, _ := l.send(0, sip(peer, vip, craft.SIP200OK("rs-call")))
		if ans.Reason != ReasonTemplateHit || ans.Real.String() != rs {
			t.Fatalf("peer's answer: %v to %v, want template hit on %s", ans.Reason, ans.Real, rs)
		}
	}
	// Under -o the server's responses take the same path and keep the
	// template pointing at the sender.
	other := craft.Spec{Src: netip.MustParseAddrPort("192.168.1.12:5060"), Dst: netip.MustParseAddrPort(peer), Payload: craft.SIP200OK("rs-call")}
	if d, _ := l.send(0, other.Build()); d.Reason != ReasonServerInitiated {
		t.Fatalf("re-home: %v", d.Reason)
	}
	if ans, _ := l.send(0, sip(peer, vip, craft.SIPAck("rs-call"))); ans.Real.String() != "192.168.1.12:5060" {
		t.Fatalf("after re-home the peer went to %v", ans.Real)
	}
	// A server datagram without a Call-ID is not translated (IPVS passes it un-NATed).
	if d, _ := l.send(0, craft.Spec{Src: netip.MustParseAddrPort(rs), Dst: netip.MustParseAddrPort(peer), Payload: craft.SIPNoCallID()}.Build()); d.Reason != ReasonNotService {
		t.Fatalf("no Call-ID from the server: %v", d.Reason)
	}
}

// A real server whose MAC is not resolved yet: the frame is dropped
// unchanged rather than sent back to the balancer's own MAC.
func TestNoNextHop(t *testing.T) {
	l := newLab(t, 1, sipRules)
	svc := l.ptr.Load().Services()[0]
	for _, d := range svc.Dests {
		if err := l.cfg.SetNextHop(svc.Key, d.Addr, [6]byte{}); err != nil {
			t.Fatal(err)
		}
	}
	l.publish()
	in := sip("10.4.3.7:5060", vip, craft.SIPInvite("nh"))
	orig := append([]byte(nil), in...)
	d, out := l.send(0, in)
	if d.Reason != ReasonNoNextHop || diffFrames(out, orig) != "" {
		t.Fatalf("%v, frame changed: %v", d.Reason, diffFrames(out, orig))
	}
}

// Frames the balancer must not touch, or must drop with a reason.
func TestPassAndDrop(t *testing.T) {
	l := newLab(t, 1, sipRules)
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	cases := []struct {
		desc  string
		frame []byte
		want  Reason
	}{
		{"ARP", arp, ReasonNotIP},
		{"UDP to another host", sip("10.4.3.7:5060", "10.4.3.1:5060", craft.SIPInvite("x")), ReasonNotService},
		{"UDP to the VIP, other port", sip("10.4.3.7:5060", "10.4.3.192:5061", craft.SIPInvite("x")), ReasonNotService},
		{"TCP to the UDP service", craft.Spec{Proto: 6, Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort(vip)}.Build(), ReasonNotService},
		{"truncated IPv4 to the VIP", sip("10.4.3.7:5060", vip, craft.SIPInvite("x"))[:40], ReasonMalformed},
	}
	frags := craft.Fragment(craft.Spec{Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort(vip), Payload: craft.SIPInvite("frag"), ID: 7}, 512)
	cases = append(cases,
		struct {
			desc  string
			frame []byte
			want  Reason
		}{"first fragment carries the Call-ID", frags[0], ReasonScheduled},
		struct {
			desc  string
			frame []byte
			want  Reason
		}{"non-first fragment to the VIP follows the first (frag_test.go has the rest)", frags[1], ReasonFragmentFollowed},
	)
	for _, c := range cases {
		orig := append([]byte(nil), c.frame...)
		d, out := l.send(0, c.frame)
		if d.Reason != c.want {
			t.Errorf("%s: %v (%v), want %v", c.desc, d.Reason, d.Decode, c.want)
		}
		if d.Verdict() != Forward && diffFrames(out, orig) != "" {
			t.Errorf("%s: %v frame was modified", c.desc, d.Verdict())
		}
	}
}

// TCP services: connection entries with state-dependent timeouts and the
// ActiveConn/InActConn gauges.
func TestTCPConnectionStates(t *testing.T) {
	l := newLab(t, 1, "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n")
	seg := func(flags uint8) []byte {
		return craft.Spec{Proto: 6, TCPFlags: flags, Src: netip.MustParseAddrPort("198.51.100.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}.Build()
	}
	gauges := func() (int64, int64) {
		s := l.ptr.Load().Services()[0].Dests[0].Stats.Read()
		return s.ActiveConns, s.InactConns
	}
	if d, _ := l.send(0, seg(tcpSYN)); d.Reason != ReasonScheduledNoPersistence || d.Real.String() != "192.168.0.2:8080" {
		t.Fatalf("SYN: %v %v", d.Reason, d.Real)
	}
	if a, i := gauges(); a != 0 || i != 1 {
		t.Fatalf("after SYN active %d inactive %d", a, i)
	}
	if d, _ := l.send(0, seg(tcpACK)); d.Reason != ReasonConnHit {
		t.Fatalf("ACK: %v", d.Reason)
	}
	if a, i := gauges(); a != 1 || i != 0 {
		t.Fatalf("established: active %d inactive %d", a, i)
	}
	l.advance(800 * time.Second) // under the 900 s established timeout
	if d, _ := l.send(0, seg(tcpACK|0x08)); d.Reason != ReasonConnHit {
		t.Fatalf("established after 800 s: %v", d.Reason)
	}
	if d, _ := l.send(0, seg(tcpFIN|tcpACK)); d.Reason != ReasonConnHit {
		t.Fatalf("FIN: %v", d.Reason)
	}
	if a, i := gauges(); a != 0 || i != 1 {
		t.Fatalf("after FIN active %d inactive %d", a, i)
	}
	l.advance(121 * time.Second) // past the 120 s tcpfin timeout
	if d, _ := l.send(0, seg(tcpACK)); d.Reason == ReasonConnHit {
		t.Fatalf("FIN_WAIT connection outlived tcpfin")
	}
}

// Persistence across workers: a Call-ID first seen on one RX queue and
// later on another reaches the same real server, for every scheduler. (The
// weights are capacities for ovf, which under -o counts live calls and
// refuses new ones once every server holds its weight in live templates.)
func TestCrossWorkerPersistenceEveryScheduler(t *testing.T) {
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq", "fo", "ovf", "twos"} {
		t.Run(s, func(t *testing.T) {
			l := newLab(t, 3, fmt.Sprintf(`
-A -u 10.4.3.192:5060 -s %s -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 100
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 200
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m -w 300
`, s))
			shared := 0
			for i := range 90 {
				id := fmt.Sprintf("x-%d@a", i)
				var reals []string
				for k, m := range [][]byte{craft.SIPInvite(id), craft.SIP200OK(id), craft.SIPAck(id), craft.SIPBye(id)} {
					// Each message arrives on a different worker (RSS on a
					// different 5-tuple, or a different client).
					w := (i + k) % 3
					d, _ := l.send(w, sip(fmt.Sprintf("10.4.3.%d:5060", 7+k), vip, m))
					if d.Verdict() != Forward {
						t.Fatalf("%s msg %d: %v", id, k, d.Reason)
					}
					if d.Reason == ReasonSharedHit {
						shared++
					}
					reals = append(reals, d.Real.String())
				}
				if !onlyOne(reals) {
					t.Fatalf("%s split over workers: %v", id, reals)
				}
			}
			if shared == 0 {
				t.Fatal("no shared-index hits: the test did not cross workers")
			}
		})
	}
}

// With one-packet scheduling, least-connection schedulers count live
// templates, so new Call-IDs still spread (IPVS sends them all to one server).
func TestLeastConnectionSpreadsUnderOPS(t *testing.T) {
	l := newLab(t, 1, `
-A -u 10.4.3.192:5060 -s wlc -p 60 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m
`)
	per := map[string]int{}
	for i := range 30 {
		per[l.call(0, "10.4.3.7:5060", vip, fmt.Sprintf("w%d", i))[0]]++
	}
	for r, n := range per {
		if n != 10 {
			t.Fatalf("wlc under -o: %v (%s got %d), want 10 each", per, r, n)
		}
	}
}

// mh over the Call-ID: independent balancers with the same configuration
// choose the same server for a Call-ID without talking to each other.
func TestMaglevAgreesAcrossBalancers(t *testing.T) {
	rulesText := `
-A -u 10.4.3.192:5060 -s mh -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m
`
	a, b := newLab(t, 1, rulesText), newLab(t, 1, rulesText)
	per := map[string]int{}
	for i := range 300 {
		id := fmt.Sprintf("mh-%d@host", i)
		ra := a.call(0, "10.4.3.7:5060", vip, id)[0]
		rb := b.call(0, fmt.Sprintf("10.9.%d.1:5070", i%200), vip, id)[0]
		if ra != rb {
			t.Fatalf("%s: balancer A → %s, B → %s", id, ra, rb)
		}
		per[ra]++
	}
	for r, n := range per {
		if n < 70 || n > 130 {
			t.Fatalf("mh balance %v (%s: %d)", per, r, n)
		}
	}
}

// Templates of unchanged services survive a reconfiguration.
func TestReconfigurationKeepsTemplates(t *testing.T) {
	l := newLab(t, 1, sipRules)
	before := map[string]string{}
	for i := range 20 {
		id := fmt.Sprintf("k%d", i)
		before[id] = l.call(0, "10.4.3.7:5060", vip, id)[0]
	}
	l.apply("-A -u 10.4.3.193:5060 -s rr -p 60 --pe sip -o\n-a -u 10.4.3.193:5060 -r 192.168.1.20:5060 -m\n-a -u 10.4.3.192:5060 -r 192.168.1.13:5060 -m\n")
	for id, r := range before {
		d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye(id)))
		if d.Reason != ReasonTemplateHit || d.Real.String() != r {
			t.Fatalf("%s after reconfiguration: %v to %v, want template hit on %s", id, d.Reason, d.Real, r)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	l := newLab(t, 2, sipRules)
	l.apply("-A -u 10.4.3.200:5060 -s rr\n-a -u 10.4.3.200:5060 -r 192.168.1.10:5060 -m\n")
	hit := sip("10.4.3.7:5060", vip, craft.SIPInvite("hot@x"))
	l.send(0, append([]byte(nil), hit...))
	// Distinct Call-IDs for the miss path, prepared outside the measurement.
	misses := make([][]byte, 600)
	for i := range misses {
		misses[i] = sip("10.4.3.7:5060", vip, craft.SIPInvite(fmt.Sprintf("miss-%04d@x", i)))
	}
	conn := sip("10.4.3.8:6000", "10.4.3.200:5060", craft.SIPInvite("c"))
	l.send(0, append([]byte(nil), conn...))
	w := l.workers[0]
	var d Decision
	buf := make([]byte, 2048)
	n := 0
	cases := map[string]func(){
		"template hit": func() { f := buf[:copy(buf, hit)]; w.Process(f, packet.LinkEthernet, &d) },
		"new Call-ID":  func() { f := buf[:copy(buf, misses[n%len(misses)])]; n++; w.Process(f, packet.LinkEthernet, &d) },
		"conn hit":     func() { f := buf[:copy(buf, conn)]; w.Process(f, packet.LinkEthernet, &d) },
		"batch end":    func() { w.EndBatch() },
	}
	w.BeginBatch(l.now)
	for name, f := range cases {
		if a := testing.AllocsPerRun(500, f); a != 0 {
			t.Errorf("%s: %v allocations per packet", name, a)
		}
	}
}

// A removed real server's gauges still follow its templates and connections
// as they leave the tables, so that reviving it from the trash (IPVS's 120 s)
// starts from true counts.
func TestGaugesOfRemovedServer(t *testing.T) {
	l := newLab(t, 1, sipRules)
	first := l.call(0, "10.4.3.7:5060", vip, "g1")[0]
	svc := l.ptr.Load().Services()[0]
	persist := func() int64 {
		for _, d := range l.ptr.Load().Services()[0].Dests {
			if d.Addr.String() == first {
				return d.Stats.Read().PersistConns
			}
		}
		t.Fatalf("%s not configured", first)
		return 0
	}
	if persist() != 1 {
		t.Fatalf("PersistConn before removal = %d", persist())
	}
	if err := l.cfg.DelDest(svc.Key, netip.MustParseAddrPort(first)); err != nil {
		t.Fatal(err)
	}
	setNextHops(l)
	l.advance(61 * time.Second) // the template expires (-p 60) while its server is in the trash
	if d, _ := l.send(0, sip("10.4.3.7:5060", vip, craft.SIPBye("g1"))); d.Reason != ReasonScheduled {
		t.Fatalf("expired template: %v", d.Reason)
	}
	l.apply(fmt.Sprintf("-a -u %s -r %s -m\n", vip, first)) // revived from the trash, counters kept
	if got := persist(); got != 0 {
		t.Fatalf("revived server's PersistConn = %d, want 0 (its only template expired)", got)
	}
}

// expire_nodest_conn: packets of a connection whose real server was removed
// are dropped; with the switch on, the connection is expired and the packet
// scheduled afresh, as current kernels do (ip_vs_in_hook: cp = NULL).
func TestExpireNodestConn(t *testing.T) {
	for _, expire := range []bool{false, true} {
		l := newLab(t, 1, "-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 192.168.0.1 -m\n-a -u 10.0.0.1:5060 -r 192.168.0.2 -m\n")
		d, _ := l.send(0, sip("10.9.0.1:5060", "10.0.0.1:5060", craft.SIPInvite("a")))
		if d.Reason != ReasonScheduledNoPersistence {
			t.Fatalf("first: %v", d.Reason)
		}
		svc := l.ptr.Load().Services()[0]
		if err := l.cfg.DelDest(svc.Key, d.Real); err != nil {
			t.Fatal(err)
		}
		must(t, l.cfg.SetSysctl(ipvs.ExpireNodestConn, []int64{b2i(expire)}))
		setNextHops(l)
		d2, _ := l.send(0, sip("10.9.0.1:5060", "10.0.0.1:5060", craft.SIPAck("a")))
		switch {
		case !expire && d2.Reason != ReasonDestGone:
			t.Fatalf("without expire_nodest_conn, the packet of the removed server's connection: %v", d2.Reason)
		case expire && (d2.Reason != ReasonScheduledNoPersistence || d2.Real == d.Real):
			t.Fatalf("with expire_nodest_conn, the packet is scheduled afresh (ip_vs_in_hook): %v to %v", d2.Reason, d2.Real)
		}
		d3, _ := l.send(0, sip("10.9.0.1:5060", "10.0.0.1:5060", craft.SIPBye("a")))
		switch {
		case !expire && d3.Reason != ReasonDestGone:
			t.Fatalf("without expire_nodest_conn the connection stays: %v", d3.Reason)
		case expire && (d3.Reason != ReasonConnHit || d3.Real != d2.Real):
			t.Fatalf("with expire_nodest_conn, the new connection is used: %v to %v", d3.Reason, d3.Real)
		}
	}
}
