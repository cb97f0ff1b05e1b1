package pipeline

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/table"
)

// A director with two legs, as in the kernel's IPVS selftest: port 0
// (ifindex 1) on the client network 10.4.3.0/24 with the default route via
// 10.4.3.1, port 1 (ifindex 2) on the server network 192.168.1.0/24, and an
// unserved interface (ifindex 3) towards 172.31.0.0/16.
var (
	legMAC0  = [6]byte{2, 0, 0, 0, 0xa, 0}
	legMAC1  = [6]byte{2, 0, 0, 0, 0xa, 1}
	rsMAC10  = [6]byte{2, 0xaa, 0, 0, 0, 10}
	cliMAC7  = [6]byte{2, 0xcc, 0, 0, 0, 7}
	gwMAC    = [6]byte{2, 0x99, 0, 0, 0, 1}
	rsAddr10 = netip.MustParseAddr("192.168.1.10")
)

func twoLegTable(t testing.TB) *nexthop.Table {
	t.Helper()
	tb, err := nexthop.New(nexthop.Options{Hops: 64})
	must(t, err)
	must(t, tb.SetPorts([]nexthop.PortInfo{{Name: "eth0", Ifindex: 1, MAC: legMAC0}, {Name: "eth1", Ifindex: 2, MAC: legMAC1}}))
	tb.SetRoutes([]nexthop.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Paths: []nexthop.Path{{Ifindex: 1, Gateway: netip.MustParseAddr("10.4.3.1")}}},
		{Dst: netip.MustParsePrefix("10.4.3.0/24"), Paths: []nexthop.Path{{Ifindex: 1}}},
		{Dst: netip.MustParsePrefix("192.168.1.0/24"), Paths: []nexthop.Path{{Ifindex: 2}}},
		{Dst: netip.MustParsePrefix("172.31.0.0/16"), Paths: []nexthop.Path{{Ifindex: 3}}},
	})
	tb.SetLocal([]netip.Addr{netip.MustParseAddr("10.4.3.2"), netip.MustParseAddr("192.168.1.2")})
	tb.Flush(false)
	return tb
}

// useHops gives the lab's workers the next-hop table (as NewWorker does with
// Options.Hops).
func useHops(l *lab, tb *nexthop.Table) {
	for _, w := range l.workers {
		w.hops = tb.NewCache()
		w.neigh = newNeighHold(DefaultNeighHoldSlots)
		w.heldEmitted = make([]int32, 0, DefaultNeighHoldSlots)
	}
}

func setNeigh(t testing.TB, tb *nexthop.Table, ifindex int, a string, mac [6]byte, st nexthop.NeighState) {
	t.Helper()
	became, err := tb.SetNeighbour(ifindex, netip.MustParseAddr(a), mac, st)
	must(t, err)
	tb.Flush(became)
}

// TestCrossLegEgress: with a next-hop table, each frame leaves by the
// interface the routes name, from that interface's MAC to the next hop's:
// inbound frames to the server leg, NAT replies to the client leg (an
// on-link client, or the gateway); a destination routed through an unserved
// interface is dropped unchanged as no_egress.
func TestCrossLegEgress(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	setNeigh(t, tb, 2, "192.168.1.10", rsMAC10, nexthop.NeighReachable)
	setNeigh(t, tb, 1, "10.4.3.7", cliMAC7, nexthop.NeighReachable)
	setNeigh(t, tb, 1, "10.4.3.1", gwMAC, nexthop.NeighReachable)

	in := craft.Spec{SrcMAC: clientMAC, DstMAC: legMAC0, Src: netip.MustParseAddrPort("10.4.3.7:5062"), Dst: netip.MustParseAddrPort(vip), Payload: craft.SIPInvite("a")}
	d, out := l.send(0, in.Build())
	want := in
	want.SrcMAC, want.DstMAC, want.Dst = legMAC1, rsMAC10, netip.MustParseAddrPort("192.168.1.10:5060")
	if d.Reason != ReasonScheduledNoPersistence || d.Out != (Out{Port: 1, Routed: true}) || diffFrames(out, want.Build()) != "" {
		t.Fatalf("inbound: %v %+v %s", d.Reason, d.Out, diffFrames(out, want.Build()))
	}
	reply := func(dst string) craft.Spec {
		return craft.Spec{SrcMAC: rsMAC10, DstMAC: legMAC1, Src: d.Real, Dst: netip.MustParseAddrPort(dst), Payload: craft.SIP200OK("a")}
	}
	r := reply("10.4.3.7:5062")
	d, out = l.send(0, r.Build())
	want = r
	want.Src, want.SrcMAC, want.DstMAC = netip.MustParseAddrPort(vip), legMAC0, cliMAC7
	if d.Reason != ReasonNATReply || d.Out != (Out{Port: 0, Routed: true}) || diffFrames(out, want.Build()) != "" {
		t.Fatalf("reply to an on-link client: %v %+v %s", d.Reason, d.Out, diffFrames(out, want.Build()))
	}
	// A client behind the gateway.
	l.send(0, sip("198.51.100.9:5062", vip, craft.SIPInvite("b")))
	if d, out := l.send(0, reply("198.51.100.9:5062").Build()); d.Reason != ReasonNATReply || [6]byte(out[0:6]) != gwMAC || [6]byte(out[6:12]) != legMAC0 {
		t.Fatalf("via the gateway: %v to %x from %x", d.Reason, out[0:6], out[6:12])
	}
	// A client routed through an unserved interface: dropped unchanged.
	l.send(0, sip("172.31.0.9:5062", vip, craft.SIPInvite("c")))
	far := reply("172.31.0.9:5062").Build()
	orig := bytes.Clone(far)
	if d, out := l.send(0, far); d.Reason != ReasonNoEgress || diffFrames(out, orig) != "" {
		t.Fatalf("unserved: %v", d.Reason)
	}
}

// TestFirstPacketHeldUntilResolved: the first datagram of a call to a real
// server whose MAC is not known yet is not dropped: a copy waits, the
// control plane is asked to resolve it, and the copy leaves (once, rewritten,
// by the server leg) as soon as the neighbour answers; so does a NAT reply
// to a client never seen before. Today's code dropped both as no_next_hop.
func TestFirstPacketHeldUntilResolved(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	w := l.workers[0]

	inv := craft.Spec{SrcMAC: clientMAC, DstMAC: legMAC0, Src: netip.MustParseAddrPort("10.4.3.7:5062"), Dst: netip.MustParseAddrPort(vip), Payload: craft.SIPInvite("first")}
	d, _ := l.send(0, inv.Build())
	if d.Reason != ReasonNeighbourHeld || d.Dest == nil {
		t.Fatalf("first datagram: %v", d.Reason)
	}
	var asked []netip.Addr
	tb.Requests(func(_ int, a netip.Addr) { asked = append(asked, a) })
	if len(asked) != 1 || asked[0] != rsAddr10 {
		t.Fatalf("resolution requests %v", asked)
	}
	// A retransmission meanwhile waits too (the same connection).
	ack := inv
	ack.Payload = craft.SIPAck("first")
	if d, _ := l.send(0, ack.Build()); d.Reason != ReasonNeighbourHeld {
		t.Fatalf("second datagram: %v", d.Reason)
	}
	l.advance(time.Millisecond)
	l.send(0, []byte{}) // a batch: nothing resolved yet, nothing emitted
	if len(w.Emitted()) != 0 || !w.Holding() {
		t.Fatalf("emitted %d before resolution", len(w.Emitted()))
	}
	setNeigh(t, tb, 2, "192.168.1.10", rsMAC10, nexthop.NeighReachable)
	w.BeginBatch(l.now)
	em, outs := w.Emitted(), w.EmittedOut()
	if len(em) != 2 || len(outs) != 2 {
		t.Fatalf("emitted %d frames (%d outs), want the two held", len(em), len(outs))
	}
	for i, s := range []craft.Spec{inv, ack} {
		want := s
		want.SrcMAC, want.DstMAC, want.Dst = legMAC1, rsMAC10, netip.MustParseAddrPort("192.168.1.10:5060")
		if outs[i] != (Out{Port: 1, Routed: true}) || diffFrames(em[i], want.Build()) != "" {
			t.Fatalf("emitted %d: %+v %s", i, outs[i], diffFrames(em[i], want.Build()))
		}
	}
	w.EndBatch()
	w.BeginBatch(l.now) // emitted once only
	if len(w.Emitted()) != 0 || w.Holding() {
		t.Fatal("emitted twice")
	}
	w.EndBatch()

	// The first NAT reply to a client never seen: held, then sent by the
	// client leg.
	rep := craft.Spec{SrcMAC: rsMAC10, DstMAC: legMAC1, Src: netip.MustParseAddrPort("192.168.1.10:5060"), Dst: netip.MustParseAddrPort("10.4.3.7:5062"), Payload: craft.SIP200OK("first")}
	if d, _ := l.send(0, rep.Build()); d.Reason != ReasonNeighbourHeld {
		t.Fatalf("first reply: %v", d.Reason)
	}
	asked = nil
	tb.Requests(func(_ int, a netip.Addr) { asked = append(asked, a) })
	if len(asked) != 1 || asked[0] != netip.MustParseAddr("10.4.3.7") {
		t.Fatalf("reply's resolution requests %v", asked)
	}
	setNeigh(t, tb, 1, "10.4.3.7", cliMAC7, nexthop.NeighReachable)
	w.BeginBatch(l.now)
	want := rep
	want.Src, want.SrcMAC, want.DstMAC = netip.MustParseAddrPort(vip), legMAC0, cliMAC7
	if em := w.Emitted(); len(em) != 1 || w.EmittedOut()[0] != (Out{Port: 0, Routed: true}) || diffFrames(em[0], want.Build()) != "" {
		t.Fatalf("reply emitted: %d", len(em))
	}
	w.EndBatch()
	c := w.Counters()
	if c.Reasons[ReasonNeighbourHeld] != 3 || c.Neigh.Sent != 3 || c.Reasons[ReasonNoNextHop] != 0 {
		t.Fatalf("counters: held %d sent %d", c.Reasons[ReasonNeighbourHeld], c.Neigh.Sent)
	}
}

// TestNeighbourHoldBounds: one next hop holds at most NeighHoldPerHop
// copies; copies of an unanswered next hop time out, those of a failed one
// are dropped; all counted.
func TestNeighbourHoldBounds(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	w := l.workers[0]
	for i := range NeighHoldPerHop + 5 {
		f := sip("10.4.3.7:5062", vip, craft.SIPInvite("bound"))
		d, _ := l.send(0, f)
		want := ReasonNeighbourHeld
		if i >= NeighHoldPerHop {
			want = ReasonNeighbourOverflow
		}
		if d.Reason != want {
			t.Fatalf("frame %d: %v, want %v", i, d.Reason, want)
		}
	}
	l.advance(NeighHoldTimeout)
	l.send(0, []byte{})
	if c := w.Counters(); c.Neigh.Timeout != NeighHoldPerHop || w.Holding() {
		t.Fatalf("timed out %d, holding %v", c.Neigh.Timeout, w.Holding())
	}
	// A failed neighbour: new frames are dropped as no_next_hop (and the
	// kernel asked again), held ones are dropped.
	setNeigh(t, tb, 2, "192.168.1.10", [6]byte{}, nexthop.NeighIncomplete)
	if d, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("bound"))); d.Reason != ReasonNeighbourHeld {
		t.Fatalf("incomplete: %v", d.Reason)
	}
	setNeigh(t, tb, 2, "192.168.1.10", [6]byte{}, nexthop.NeighFailed)
	if d, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("bound"))); d.Reason != ReasonNoNextHop {
		t.Fatalf("failed: %v", d.Reason)
	}
	if c := w.Counters(); c.Neigh.Failed != 1 || w.Holding() {
		t.Fatalf("failed %d, holding %v", c.Neigh.Failed, w.Holding())
	}
}

// TestPartialChecksumForwarded: frames whose checksum the client left to
// its TX offload leave with a complete one, for direct routing (which
// rewrites no L4 field) and NAT, IPv4 and IPv6, UDP and TCP; frames with
// complete checksums are forwarded exactly as before.
func TestPartialChecksumForwarded(t *testing.T) {
	for _, c := range []struct{ name, rules, src, dst string }{
		{"DR", "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2 -g\n-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 192.168.0.2 -g\n", "198.51.100.7:40000", "10.0.0.1"},
		{"NAT", "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m\n-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 192.168.0.2:5070 -m\n", "198.51.100.7:40000", "10.0.0.1"},
		{"NAT IPv6", "-A -t [2001:db8::1]:80 -s rr\n-a -t [2001:db8::1]:80 -r [2001:db8:1::2]:8080 -m\n-A -u [2001:db8::1]:5060 -s rr\n-a -u [2001:db8::1]:5060 -r [2001:db8:1::2]:5070 -m\n", "[2001:db8:9::7]:40000", "2001:db8::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLab(t, 1, c.rules)
			for _, proto := range []uint8{craft.TCP, craft.UDP} {
				port := uint16(80)
				if proto == craft.UDP {
					port = 5060
				}
				in := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: proto, TCPFlags: craft.SYN, Src: netip.MustParseAddrPort(c.src),
					Dst: netip.AddrPortFrom(netip.MustParseAddr(c.dst), port), Payload: []byte("offloaded"), PartialChecksum: true}
				before := l.workers[0].Counters().ChecksumCompleted
				d, out := l.send(0, in.Build())
				var p packet.Parsed
				if d.Verdict() != Forward || p.Decode(out, packet.LinkEthernet) != packet.ReasonOK || !p.VerifyChecksums(out) {
					t.Fatalf("proto %d: %v, checksum valid %v", proto, d.Reason, p.VerifyChecksums(out))
				}
				if l.workers[0].Counters().ChecksumCompleted != before+1 {
					t.Errorf("proto %d: not counted", proto)
				}
			}
		})
	}
}

// TestLocalRealServer: a real server that is an address of this host
// (IPVS's Local forwarding) gets the frame unchanged, for the host's own
// stack, when the host owns the virtual address too; otherwise it is
// dropped (the kernel would route it out again). One on another port than
// its service's gets the frame unchanged too, with the port for the
// kernel's NAT (Out.LocalPort: the daemon marks the packet with it).
func TestLocalRealServer(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.2:5060 -s rr\n-a -u 10.4.3.2:5060 -r 127.0.0.1 -m\n-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.2 -g\n"+
		"-A -u 10.4.3.2:5070 -s rr\n-a -u 10.4.3.2:5070 -r 127.0.0.1:5080 -m\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	in := sip("10.4.3.7:5062", "10.4.3.2:5060", craft.SIPInvite("local"))
	orig := bytes.Clone(in)
	d, out := l.send(0, in)
	if d.Reason != ReasonScheduledNoPersistence || d.Out != (Out{Local: true}) || diffFrames(out, orig) != "" {
		t.Fatalf("local: %v %+v %s", d.Reason, d.Out, diffFrames(out, orig))
	}
	if d, _ := l.send(0, sip("10.4.3.7:5062", "10.4.3.192:5060", craft.SIPInvite("x"))); d.Reason != ReasonLocalUnowned {
		t.Fatalf("virtual address not ours: %v", d.Reason)
	}
	in = sip("10.4.3.7:5062", "10.4.3.2:5070", craft.SIPInvite("local-port"))
	orig = bytes.Clone(in)
	d, out = l.send(0, in)
	if d.Reason != ReasonScheduledNoPersistence || d.Out != (Out{Local: true, LocalPort: 5080}) || diffFrames(out, orig) != "" {
		t.Fatalf("local on another port: %v %+v %s", d.Reason, d.Out, diffFrames(out, orig))
	}
	if l.workers[0].Counters().Local != 2 {
		t.Error("local deliveries not counted")
	}
	// A fragmented datagram, its last fragment first: every fragment, held
	// and released or forwarded, carries the port.
	frags := craft.Fragment(craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("10.4.3.8:5062"),
		Dst: netip.MustParseAddrPort("10.4.3.2:5070"), Payload: sized(craft.SIPInvite("local-frag"), 1900), ID: 9}, 512)
	var outs []Out
	for i := len(frags) - 1; i >= 0; i-- {
		d, _ := l.send(0, bytes.Clone(frags[i]))
		if d.Verdict() == Forward {
			outs = append(outs, d.Out)
		}
		outs = append(outs, l.workers[0].EmittedOut()...)
	}
	if len(outs) != len(frags) {
		t.Fatalf("%d of %d fragments left", len(outs), len(frags))
	}
	for i, o := range outs {
		if o != (Out{Local: true, LocalPort: 5080}) {
			t.Errorf("fragment %d: %+v", i, o)
		}
	}
}

// TestSharedConnReply: a NAT connection made on one worker, its reply
// processed by another (another RX queue, or the other leg's queue), is
// translated through the shared connection index — concurrently, under the
// race detector. Without the index the reply passed untranslated.
func TestSharedConnReply(t *testing.T) {
	rulesText := "-A -t 10.4.3.192:8080 -s rr\n-a -t 10.4.3.192:8080 -r 192.168.1.10:8080 -m\n-a -t 10.4.3.192:8080 -r 192.168.1.11:8080 -m\n"
	l := newLab(t, 2, rulesText)
	sc, err := table.NewSharedConns(1 << 12)
	must(t, err)
	for _, w := range l.workers {
		w.sconns = sc
		w.crefr = make([]uint64, refreshFilterSize)
	}
	const conns = 400
	type syn struct {
		client netip.AddrPort
		real   netip.AddrPort
	}
	made := make(chan syn, conns)
	var wg sync.WaitGroup
	wg.Add(2)
	errs := make(chan string, 2*conns)
	go func() { // worker 0: the clients' SYNs
		defer wg.Done()
		for i := range conns {
			c := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(10000+i))
			f := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: craft.TCP, TCPFlags: craft.SYN, Src: c, Dst: netip.MustParseAddrPort("10.4.3.192:8080")}.Build()
			var d Decision
			l.workers[0].BeginBatch(l.now)
			l.workers[0].Process(f, packet.LinkEthernet, &d)
			l.workers[0].EndBatch()
			if d.Reason != ReasonScheduledNoPersistence {
				errs <- "SYN: " + d.Reason.String()
				continue
			}
			made <- syn{c, d.Real}
		}
		close(made)
	}()
	go func() { // worker 1: the servers' SYN-ACKs
		defer wg.Done()
		for s := range made {
			in := craft.Spec{SrcMAC: rsMAC10, DstMAC: lbMAC, Proto: craft.TCP, TCPFlags: craft.SYN | craft.ACK, Src: s.real, Dst: s.client}
			f := in.Build()
			var d Decision
			l.workers[1].BeginBatch(l.now)
			l.workers[1].Process(f, packet.LinkEthernet, &d)
			l.workers[1].EndBatch()
			want := in
			want.Src = netip.MustParseAddrPort("10.4.3.192:8080")
			if d.Reason != ReasonNATReply || d.Dest == nil || d.Dest.Addr != s.real {
				errs <- "SYN-ACK: " + d.Reason.String()
				continue
			}
			var p packet.Parsed
			p.Decode(f, packet.LinkEthernet)
			if p.Src != want.Src.Addr() || p.SrcPort != 8080 || !p.VerifyChecksums(f) {
				errs <- "SYN-ACK not translated"
			}
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if c := l.workers[1].Counters(); c.SharedConnHits != conns {
		t.Fatalf("shared connection hits %d, want %d", c.SharedConnHits, conns)
	}
}

// TestEgressNoAllocations: the lookups, the hold and the release allocate
// nothing.
func TestEgressNoAllocations(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	setNeigh(t, tb, 1, "10.4.3.7", cliMAC7, nexthop.NeighReachable)
	w := l.workers[0]
	in := sip("10.4.3.7:5062", vip, craft.SIPInvite("alloc"))
	buf := make([]byte, 2048)
	var d Decision
	resolved := false
	if a := testing.AllocsPerRun(200, func() {
		l.advance(time.Millisecond)
		w.BeginBatch(l.now) // releases what resolved
		f := buf[:copy(buf, in)]
		w.Process(f, packet.LinkEthernet, &d)
		w.EndBatch()
		if resolved = !resolved; resolved {
			tb.SetNeighbour(2, rsAddr10, rsMAC10, nexthop.NeighReachable)
		} else {
			tb.SetNeighbour(2, rsAddr10, [6]byte{}, nexthop.NeighIncomplete)
		}
		tb.Requests(func(int, netip.Addr) {})
	}); a != 0 {
		t.Errorf("%v allocations per frame", a)
	}
}

// TestTunnelCrossLeg: a tunnel's encapsulated frames take the next-hop
// table's egress like every other frame: the first datagram to a server
// whose MAC is unknown waits and leaves encapsulated by the server leg once
// it resolves (its partial checksum completed first, so the inner datagram
// is whole); the next leaves at once; a too-large datagram's ICMP error
// goes back to the client through the client leg's gateway, and the outer
// fragments of one without DF all leave by the server leg.
func TestTunnelCrossLeg(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -i --tun-type ipip\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	w := l.workers[0]
	leg1 := Out{Port: 1, Routed: true}
	encapsulated := func(what string, out []byte, inner craft.Spec) {
		t.Helper()
		var p packet.Parsed
		r := p.Decode(out, packet.LinkEthernet) // IPIP: the outer header decodes; its payload is no L4 it knows
		if p.Dst != rsAddr10 || p.Proto != 4 ||
			[6]byte(out[0:6]) != rsMAC10 || [6]byte(out[6:12]) != legMAC1 {
			t.Fatalf("%s: %v %v→%v proto %d MACs % x", what, r, p.Src, p.Dst, p.Proto, out[:12])
		}
		inner.PartialChecksum = false
		want := inner.Build()[14:]
		if !bytes.Equal(out[len(out)-len(want):], want) {
			t.Fatalf("%s: inner datagram is not the original with its checksum completed", what)
		}
	}

	inv := craft.Spec{SrcMAC: gwMAC, DstMAC: legMAC0, Src: netip.MustParseAddrPort("198.51.100.7:5060"), Dst: netip.MustParseAddrPort(vip),
		Payload: craft.SIPInvite("tun-leg"), PartialChecksum: true}
	if d, _ := l.sendRoom(0, inv.Build()); d.Reason != ReasonNeighbourHeld {
		t.Fatalf("first datagram: %v", d.Reason)
	}
	setNeigh(t, tb, 2, "192.168.1.10", rsMAC10, nexthop.NeighReachable)
	w.BeginBatch(l.now)
	em, outs := w.Emitted(), w.EmittedOut()
	if len(em) != 1 || outs[0] != leg1 {
		t.Fatalf("released: %d frames %v", len(em), outs)
	}
	encapsulated("released", em[0], inv)
	w.EndBatch()
	if c := w.Counters(); c.Neigh.Sent != 1 || c.ChecksumCompleted != 1 || c.Tunnel.Encapsulated != 1 {
		t.Fatalf("counters: %+v completed %d encapsulated %d", c.Neigh, c.ChecksumCompleted, c.Tunnel.Encapsulated)
	}

	ack := inv
	ack.Payload = craft.SIPAck("tun-leg")
	d, out := l.sendRoom(0, ack.Build())
	if d.Reason != ReasonTemplateHit || d.Out != leg1 {
		t.Fatalf("second datagram: %v %+v", d.Reason, d.Out)
	}
	encapsulated("second datagram", out, ack)

	setNeigh(t, tb, 1, "10.4.3.1", gwMAC, nexthop.NeighReachable)
	d, out = l.sendRoom(0, bigSIP("198.51.100.7:5060", vip, 1460, true))
	if d.Reason != ReasonTunnelICMPTooBig || d.Out != (Out{Port: 0, Routed: true}) || [6]byte(out[0:6]) != gwMAC || [6]byte(out[6:12]) != legMAC0 {
		t.Fatalf("ICMP too big: %v %+v MACs % x", d.Reason, d.Out, out[:12])
	}
	d, out = l.sendRoom(0, bigSIP("198.51.100.7:5060", vip, 1460, false))
	if d.Verdict() != Forward || d.Out != leg1 || [6]byte(out[0:6]) != rsMAC10 || len(w.Emitted()) != 1 || w.EmittedOut()[0] != leg1 ||
		[6]byte(w.Emitted()[0][0:6]) != rsMAC10 || [6]byte(w.Emitted()[0][6:12]) != legMAC1 {
		t.Fatalf("outer fragments: %v %+v, emitted %d %v", d.Reason, d.Out, len(w.Emitted()), w.EmittedOut())
	}
}

// TestTunnelFragmentsHeld: a tunnelled datagram too large for the tunnel,
// fragmented outside, to a server whose MAC is not known yet: every outer
// fragment waits, none is emitted, and all leave by the server leg once it
// resolves.
func TestTunnelFragmentsHeld(t *testing.T) {
	l := newLab(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -i --tun-type gre\n")
	tb := twoLegTable(t)
	useHops(l, tb)
	w := l.workers[0]
	d, _ := l.sendRoom(0, bigSIP("198.51.100.7:5060", vip, 1460, false))
	if d.Reason != ReasonNeighbourHeld || len(w.Emitted()) != 0 || len(w.EmittedOut()) != 0 || w.Counters().Tunnel.Fragmented != 1 {
		t.Fatalf("held: %v, %d emitted, %d egresses, %+v", d.Reason, len(w.Emitted()), len(w.EmittedOut()), w.Counters().Tunnel)
	}
	setNeigh(t, tb, 2, "192.168.1.10", rsMAC10, nexthop.NeighReachable)
	w.BeginBatch(l.now)
	defer w.EndBatch()
	em, outs := w.Emitted(), w.EmittedOut()
	if len(em) != 2 || len(outs) != 2 {
		t.Fatalf("released %d frames, %d egresses", len(em), len(outs))
	}
	for i, f := range em {
		var p packet.Parsed
		p.Decode(f, packet.LinkEthernet)
		if outs[i] != (Out{Port: 1, Routed: true}) || [6]byte(f[0:6]) != rsMAC10 || [6]byte(f[6:12]) != legMAC1 || p.Dst != rsAddr10 || !p.Fragmented {
			t.Fatalf("fragment %d: %+v MACs % x to %v fragmented %v", i, outs[i], f[:12], p.Dst, p.Fragmented)
		}
	}
}
