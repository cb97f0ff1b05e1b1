package table

import (
	"net/netip"
	"testing"
	"time"
)

func TestConnsBothDirections(t *testing.T) {
	tt := newT(t, Config{Capacity: 8})
	var removed []RemoveReason
	var states []uint8
	c, err := NewConns(ConnConfig{Capacity: 4, Templates: tt, OnRemove: func(_ DestID, st, fl uint8, r RemoveReason) {
		removed = append(removed, r)
		states = append(states, st<<4|fl)
	}})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(10 * sec)
	tk := sipKey([]byte("call-1"))
	tref, _ := tt.Insert(&tk, 5, time.Minute, now)
	tt.Hold(tref)
	client := netip.MustParseAddrPort("10.4.3.7:5062")
	real := netip.MustParseAddrPort("192.168.1.10:5060")
	k := ConnKey{Protocol: 17, Client: client, Virtual: vip}
	ref, res := c.Insert(&k, real, 5, 0, 300*time.Second, tref, now)
	if res != Inserted {
		t.Fatal(res)
	}
	if st, fl, ok := c.State(ref); !ok || st != 0 || fl != 0 {
		t.Fatalf("state after insert = %d %d %v", st, fl, ok)
	}
	if !c.SetState(ref, 3, 2, 300*time.Second, now) {
		t.Fatal("set state")
	}
	if st, fl, ok := c.State(ref); !ok || st != 3 || fl != 2 {
		t.Fatalf("state = %d %d %v", st, fl, ok)
	}
	if r, ok := c.Lookup(&k, now); !ok || r != ref {
		t.Fatal("forward lookup")
	}
	r, ok := c.LookupReply(17, real, client, now)
	if !ok || r != ref {
		t.Fatal("reply lookup")
	}
	in, _ := c.Get(r)
	if in.Key != k || in.Real != real || in.Dest != 5 || in.Template != tref {
		t.Fatalf("info %+v", in)
	}
	if _, ok := c.LookupReply(17, real, netip.MustParseAddrPort("10.4.3.7:5063"), now); ok {
		t.Fatal("reply from another client port matched")
	}
	if _, ok := c.LookupReply(6, real, client, now); ok {
		t.Fatal("reply with another protocol matched")
	}
	// IPv6 connection with the same ports does not collide.
	k6 := ConnKey{Protocol: 17, Client: netip.MustParseAddrPort("[2001:db8::7]:5062"), Virtual: vip6}
	if _, res := c.Insert(&k6, netip.MustParseAddrPort("[2001:db8:1::10]:5060"), 6, 0, time.Second, Ref{}, now); res != Inserted {
		t.Fatal(res)
	}
	if len(c.AppendInfo(nil, now)) != 2 {
		t.Fatal("listing")
	}
	// Expiry releases the template hold.
	if c.Sweep(now+301*sec, 4) != 2 {
		t.Fatal("sweep")
	}
	if _, ok := c.LookupReply(17, real, client, now+301*sec); ok {
		t.Fatal("expired conn found from reply side")
	}
	if tt.Release(tref) {
		t.Fatal("conn removal did not release its template")
	}
	if len(removed) != 2 || c.Stats().Live != 0 {
		t.Fatalf("removed %v, stats %+v", removed, c.Stats())
	}
	// The hook reports each connection's last state and flags: the IPv4 one
	// was moved to state 3, flags 2; the IPv6 one kept state 0.
	if !(states[0] == 0x32 && states[1] == 0 || states[0] == 0 && states[1] == 0x32) {
		t.Fatalf("removed states %x", states)
	}
	if _, _, ok := c.State(ref); ok {
		t.Fatal("state of a removed connection")
	}
}

func TestConnsNoAllocsAndEviction(t *testing.T) {
	const n = 256
	c, _ := NewConns(ConnConfig{Capacity: n, MinProtectedIdle: -1})
	real := netip.MustParseAddrPort("192.168.1.10:5060")
	keys := make([]ConnKey, 4*n)
	for i := range keys {
		keys[i] = ConnKey{Protocol: 6, Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i)), Virtual: vip}
	}
	now := int64(sec)
	for i := range n {
		c.Insert(&keys[i], real, 1, 1, time.Minute, Ref{}, now)
	}
	i := 0
	// In this order: the sweep expires everything, which would turn the
	// evictions into expiries.
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"hit", func() { r, _ := c.Lookup(&keys[i%n], now); c.Touch(r, now); i++ }},
		{"hashed", func() {
			h := keys[i%n].Hash(c.Seed())
			c.Prefetch(h)
			r, _ := c.LookupHashed(&keys[i%n], h, now)
			c.State(r)
			i++
		}},
		{"reply", func() { c.LookupReply(6, real, keys[i%n].Client, now); i++ }},
		{"evict", func() { c.Insert(&keys[n+i%(3*n)], real, 1, 1, time.Minute, Ref{}, now); i++ }},
		{"sweep", func() { now += 2 * int64(time.Minute); c.Sweep(now, 32) }},
	} {
		if a := testing.AllocsPerRun(500, tc.f); a != 0 {
			t.Errorf("%s: %v allocs", tc.name, a)
		}
	}
	if c.Stats().EvictedProbation == 0 {
		t.Error("eviction not exercised")
	}
	if sizeofConn != 104 {
		t.Errorf("conn entry is %d bytes, documented as 104", sizeofConn)
	}
}
