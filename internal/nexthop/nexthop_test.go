package nexthop

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	macA  = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB  = [6]byte{2, 0, 0, 0, 0, 0xb}
	macGW = [6]byte{2, 0, 0, 0, 0, 0x1}
	macRS = [6]byte{2, 0, 0, 0, 0, 0x11}
	macCL = [6]byte{2, 0, 0, 0, 0, 0x22}
)

func a(s string) netip.Addr   { return netip.MustParseAddr(s) }
func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// twoLegs is the director of the kernel's IPVS selftest: eth0 (ifindex 10)
// on the client network 10.0.0.0/24, eth1 (11) on the server network
// 172.16.0.0/24, a default route via 10.0.0.254, and eth2 (12) unserved.
func twoLegs(t *testing.T) *Table {
	t.Helper()
	tb, err := New(Options{Hops: 16})
	if err != nil {
		t.Fatal(err)
	}
	must(t, tb.SetPorts([]PortInfo{{Name: "eth0", Ifindex: 10, MAC: macA}, {Name: "eth1", Ifindex: 11, MAC: macB}}))
	tb.SetRoutes([]Route{
		{Dst: p("0.0.0.0/0"), Paths: []Path{{Ifindex: 10, Gateway: a("10.0.0.254")}}},
		{Dst: p("10.0.0.0/24"), Paths: []Path{{Ifindex: 10}}},
		{Dst: p("172.16.0.0/24"), Paths: []Path{{Ifindex: 11}}},
		{Dst: p("192.168.9.0/24"), Paths: []Path{{Ifindex: 12}}},
		{Dst: p("198.51.100.0/24"), Type: Unreachable},
		{Dst: p("::/0"), Paths: []Path{{Ifindex: 10, Gateway: a("fe80::1")}}},
		{Dst: p("fd00:1::/64"), Paths: []Path{{Ifindex: 11}}},
		{Dst: p("fd00:1::/48"), Paths: []Path{{Ifindex: 10}}},
	})
	tb.SetLocal([]netip.Addr{a("10.0.0.1"), a("172.16.0.1"), a("207.175.44.110")})
	tb.Flush(false)
	return tb
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRouting(t *testing.T) {
	tb := twoLegs(t)
	for _, c := range []struct {
		dst     string
		st      Status
		ifindex int
		hop     string
	}{
		{"172.16.0.2", Resolved, 11, "172.16.0.2"},  // the server leg, on-link
		{"10.0.0.2", Resolved, 10, "10.0.0.2"},      // the client leg, on-link
		{"203.0.113.7", Resolved, 10, "10.0.0.254"}, // default route: the gateway
		{"192.168.9.9", Unserved, 12, ""},
		{"198.51.100.1", NoRoute, 0, ""},
		{"207.175.44.110", Local, 0, ""}, // the VIP on lo
		{"127.0.0.1", Local, 0, ""},
		{"127.9.9.9", Local, 0, ""},
		{"::1", Local, 0, ""},
		{"fd00:1::5", Resolved, 11, "fd00:1::5"}, // /64 beats /48
		{"fd00:1:0:1::5", Resolved, 10, "fd00:1:0:1::5"},
		{"2001:db8::1", Resolved, 10, "fe80::1"},
	} {
		st, _, hop, ifi := tb.view.Load().route(a(c.dst))
		if st != c.st || ifi != c.ifindex || (c.hop != "" && hop != a(c.hop)) {
			t.Errorf("%s: %v via %d next hop %v, want %v via %d next hop %s", c.dst, st, ifi, hop, c.st, c.ifindex, c.hop)
		}
	}
	if !tb.IsLocal(a("10.0.0.1")) || tb.IsLocal(a("10.0.0.2")) {
		t.Error("IsLocal")
	}
	tb.SetBroadcast([]netip.Addr{a("10.0.0.255")})
	tb.Flush(false)
	for s, want := range map[string]Kind{
		"172.16.0.2": KindUnicast, "203.0.113.1": KindUnicast, "10.0.0.1": KindLocal, "127.0.0.1": KindLocal,
		"207.175.44.110": KindLocal, "10.0.0.255": KindBroadcast, "255.255.255.255": KindBroadcast,
		"224.0.0.5": KindMulticast, "ff02::1": KindMulticast, "0.0.0.0": KindUnusable, "::": KindUnusable,
		"fe80::9": KindUnusable, "fd00:1::5": KindUnicast,
	} {
		if got := tb.Classify(a(s)); got != want {
			t.Errorf("Classify(%s) = %d, want %d", s, got, want)
		}
	}
}

// TestNoRoutes: an empty table routes nothing.
func TestNoRoutes(t *testing.T) {
	tb, err := New(Options{})
	must(t, err)
	c := tb.NewCache()
	if _, st := c.Lookup(a("10.0.0.1"), 0); st != NoRoute {
		t.Errorf("empty table: %v", st)
	}
}

func TestMultipathKeepsADestinationOnOnePath(t *testing.T) {
	tb, _ := New(Options{})
	must(t, tb.SetPorts([]PortInfo{{Ifindex: 1}, {Ifindex: 2}}))
	tb.SetRoutes([]Route{{Dst: p("0.0.0.0/0"), Paths: []Path{{Ifindex: 1, Gateway: a("10.1.0.1")}, {Ifindex: 2, Gateway: a("10.2.0.1")}}}})
	tb.Flush(false)
	used := map[int]int{}
	for i := range 200 {
		dst := netip.AddrFrom4([4]byte{203, 0, byte(i), 1})
		_, _, _, first := tb.view.Load().route(dst)
		for range 3 {
			if _, _, _, ifi := tb.view.Load().route(dst); ifi != first {
				t.Fatalf("%v moved between paths", dst)
			}
		}
		used[first]++
	}
	if len(used) != 2 || used[1] < 60 || used[2] < 60 {
		t.Errorf("paths used %v: want both, about evenly", used)
	}
}

func TestLookupResolvesAndAsks(t *testing.T) {
	tb := twoLegs(t)
	c := tb.NewCache()
	rs := a("172.16.0.2")
	var now int64 = 5e9

	// Unknown next hop: Incomplete, one request, asked again only after
	// RetryInterval.
	if _, st := c.Lookup(rs, now); st != Incomplete {
		t.Fatalf("first lookup: %v", st)
	}
	c.Lookup(rs, now+1)
	got := drain(tb)
	if len(got) != 1 || got[0] != (req{11, rs}) {
		t.Fatalf("requests %v, want one for 172.16.0.2 on 11", got)
	}
	c.Lookup(rs, now+RetryInterval)
	if got := drain(tb); len(got) != 1 {
		t.Fatalf("after the retry interval: %v", got)
	}

	// The control plane learns it is being resolved: a slot, Incomplete;
	// asking goes by the slot now.
	_, err := tb.SetNeighbour(11, rs, [6]byte{}, NeighIncomplete)
	must(t, err)
	tb.Flush(false)
	now += 3 * RetryInterval
	if _, st := c.Lookup(rs, now); st != Incomplete {
		t.Fatalf("incomplete: %v", st)
	}
	c2 := tb.NewCache() // another worker: the slot's request time is shared
	c2.Lookup(rs, now+1)
	if got := drain(tb); len(got) != 1 || got[0] != (req{11, rs}) {
		t.Fatalf("slot requests %v", got)
	}

	// Resolved: the egress names the server leg and both MACs.
	woke := false
	tb.SetWaker(func() { woke = true })
	became, err := tb.SetNeighbour(11, rs, macRS, NeighReachable)
	must(t, err)
	tb.Flush(became)
	if !woke {
		t.Error("workers not woken when a neighbour became usable")
	}
	e, st := c.Lookup(rs, now)
	if st != Resolved || e != (Egress{Port: 1, Src: macB, Dst: macRS}) {
		t.Fatalf("resolved: %+v %v", e, st)
	}

	// A client behind the default gateway uses the gateway's slot.
	tb.SetNeighbour(10, a("10.0.0.254"), macGW, NeighReachable)
	tb.Flush(false)
	if e, st := c.Lookup(a("203.0.113.9"), now); st != Resolved || e != (Egress{Port: 0, Src: macA, Dst: macGW}) {
		t.Fatalf("via gateway: %+v %v", e, st)
	}

	// Stale: still used, and the kernel asked to confirm it, once per
	// RetryInterval (the workers' use is invisible to it).
	drain(tb)
	tb.SetNeighbour(11, rs, macRS, NeighStale)
	for i := range 3 {
		if e, st := c.Lookup(rs, now+10*RetryInterval+int64(i)); st != Resolved || e.Dst != macRS {
			t.Fatalf("stale: %+v %v", e, st)
		}
	}
	if got := drain(tb); len(got) != 1 || got[0] != (req{11, rs}) {
		t.Fatalf("stale neighbour's confirmation requests %v, want one", got)
	}

	// Failure: Failed, asked again (the kernel re-probes).
	drain(tb)
	tb.SetNeighbour(11, rs, macRS, NeighFailed)
	if _, st := c.Lookup(rs, now+15*RetryInterval); st != Failed {
		t.Fatalf("failed: %v", st)
	}
	if got := drain(tb); len(got) != 1 {
		t.Fatalf("no new request for a failed neighbour: %v", got)
	}

	// The kernel deletes the neighbour; its slot is reused for another:
	// the cached entry must not hand out the other one's MAC.
	tb.DeleteNeighbour(11, rs)
	tb.SetNeighbour(10, a("10.0.0.2"), macCL, NeighReachable)
	// (not flushed yet: the cache still has the old view)
	if e, st := c.Lookup(rs, now+16*RetryInterval); st == Resolved {
		t.Fatalf("reused slot: %+v", e)
	}
	tb.Flush(false)
	if e, st := c.Lookup(a("10.0.0.2"), now); st != Resolved || e.Dst != macCL {
		t.Fatalf("client: %+v %v", e, st)
	}
}

func TestUnservedAndLocalAreCached(t *testing.T) {
	tb := twoLegs(t)
	c := tb.NewCache()
	for _, s := range []struct {
		dst string
		st  Status
	}{{"192.168.9.1", Unserved}, {"198.51.100.1", NoRoute}, {"207.175.44.110", Local}} {
		for range 2 {
			if _, st := c.Lookup(a(s.dst), 0); st != s.st {
				t.Errorf("%s: %v, want %v", s.dst, st, s.st)
			}
		}
	}
	if len(drain(tb)) != 0 {
		t.Error("requests for destinations that need no neighbour")
	}
	// A route change reaches the cache.
	tb.SetRoutes([]Route{{Dst: p("192.168.9.0/24"), Paths: []Path{{Ifindex: 11}}}})
	tb.Flush(false)
	if _, st := c.Lookup(a("192.168.9.1"), 0); st != Incomplete {
		t.Errorf("after a route change: %v", st)
	}
}

func TestTableFull(t *testing.T) {
	tb, _ := New(Options{Hops: 2})
	must(t, tb.SetPorts([]PortInfo{{Ifindex: 1}}))
	for i := range 2 {
		if _, err := tb.SetNeighbour(1, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), macRS, NeighReachable); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.SetNeighbour(1, a("10.0.0.9"), macRS, NeighReachable); err != ErrFull {
		t.Errorf("third neighbour: %v", err)
	}
	// Unserved interfaces are ignored, not errors.
	if ok, err := tb.SetNeighbour(7, a("10.0.0.9"), macRS, NeighReachable); ok || err != nil {
		t.Errorf("unserved: %v %v", ok, err)
	}
}

func TestLookupNoAllocs(t *testing.T) {
	tb := twoLegs(t)
	tb.SetNeighbour(11, a("172.16.0.2"), macRS, NeighReachable)
	tb.SetNeighbour(10, a("10.0.0.254"), macGW, NeighReachable)
	tb.Flush(false)
	c := tb.NewCache()
	dsts := []netip.Addr{a("172.16.0.2"), a("203.0.113.1"), a("172.16.0.9"), a("2001:db8::5")}
	var now int64
	if n := testing.AllocsPerRun(1000, func() {
		now += 1e6
		for _, d := range dsts {
			c.Lookup(d, now)
		}
		clear(c.ents) // the miss path too
		drain(tb)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

type req struct {
	ifindex int
	addr    netip.Addr
}

func drain(tb *Table) (out []req) {
	tb.Requests(func(i int, a netip.Addr) { out = append(out, req{i, a}) })
	return out
}

// TestConcurrentLookups runs workers' lookups while the control plane
// changes routes and neighbours (for the race detector), and checks that a
// resolved egress always carries a MAC the control plane set for it.
func TestConcurrentLookups(t *testing.T) {
	tb := twoLegs(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tb.NewCache()
			var now int64
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				now += 1e5
				d := netip.AddrFrom4([4]byte{172, 16, 0, byte(2 + (i+w)%8)})
				if e, st := c.Lookup(d, now); st == Resolved && e.Dst != [6]byte{2, 0, 0, 0, 1, d.As4()[3]} {
					bad.Add(1)
				}
			}
		}()
	}
	consumed := 0
	for round := range 300 {
		for i := range 8 {
			d := netip.AddrFrom4([4]byte{172, 16, 0, byte(2 + i)})
			if (round+i)%3 == 0 {
				tb.DeleteNeighbour(11, d)
			} else {
				became, _ := tb.SetNeighbour(11, d, [6]byte{2, 0, 0, 0, 1, byte(2 + i)}, NeighReachable)
				tb.Flush(became)
			}
		}
		tb.Flush(false)
		tb.Requests(func(int, netip.Addr) { consumed++ })
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d lookups returned another neighbour's MAC", bad.Load())
	}
}

func TestRequestRing(t *testing.T) {
	var r requestRing
	r.init(4)
	for i := range 4 {
		if !r.push(Request{Port: Port(i)}) {
			t.Fatal("push into a ring with room failed")
		}
	}
	if r.push(Request{}) || r.dropped.Load() != 1 {
		t.Error("push into a full ring")
	}
	for i := range 4 {
		if q, ok := r.pop(); !ok || q.Port != Port(i) {
			t.Fatalf("pop %d: %v %v", i, q, ok)
		}
	}
	if _, ok := r.pop(); ok {
		t.Error("pop from an empty ring")
	}
	// Many producers, one consumer: every request arrives once.
	r.init(64)
	var wg sync.WaitGroup
	const producers, each = 4, 5000
	seen := make([]int, producers*each)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < producers*each; {
			if q, ok := r.pop(); ok {
				seen[q.slot]++
				n++
			}
		}
	}()
	for pr := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for !r.push(Request{slot: uint32(pr*each + i)}) {
				}
			}
		}()
	}
	wg.Wait()
	<-done
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("request %d seen %d times", i, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tb, _ := New(Options{})
	tb.SetPorts([]PortInfo{{Ifindex: 10, MAC: macA}, {Ifindex: 11, MAC: macB}})
	tb.SetRoutes([]Route{
		{Dst: p("0.0.0.0/0"), Paths: []Path{{Ifindex: 10, Gateway: a("10.0.0.254")}}},
		{Dst: p("10.0.0.0/24"), Paths: []Path{{Ifindex: 10}}},
		{Dst: p("172.16.0.0/24"), Paths: []Path{{Ifindex: 11}}},
	})
	tb.SetNeighbour(11, a("172.16.0.2"), macRS, NeighReachable)
	tb.SetNeighbour(10, a("10.0.0.254"), macGW, NeighReachable)
	tb.Flush(false)
	c := tb.NewCache()
	rs := a("172.16.0.2")
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Lookup(rs, 0)
		}
	})
	b.Run("miss-via-gateway", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			c.Lookup(netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)}), 0)
		}
	})
}
