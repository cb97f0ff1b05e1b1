package table

import (
	"net/netip"
	"testing"
	"time"
)

func TestTemplateSync(t *testing.T) {
	var removed []DestID
	tt, err := NewTemplates(Config{Capacity: 2, MinProtectedIdle: time.Hour,
		OnRemove: func(d DestID, _ RemoveReason) { removed = append(removed, d) }})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(time.Hour)
	k := TemplateKey{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
		PE: 1, PEData: []byte("call-1@example.com")}
	h := k.Hash(tt.Seed())
	ref, _, res := tt.Sync(&k, h, 7, time.Minute, time.Minute, now)
	if res != SyncInserted {
		t.Fatalf("first sync: %v", res)
	}
	info := tt.AppendInfo(nil, now)
	if len(info) != 1 || !info[0].Synced || info[0].Dest != 7 || info[0].Remaining != time.Minute || info[0].Timeout != time.Minute {
		t.Fatalf("synced template: %+v", info)
	}
	if st := tt.Stats(); st.Synced != 1 || st.Live != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A refresh restarts the timeout with the received one, never
	// shortening the expiry.
	now += int64(30 * time.Second)
	if r, old, res := tt.Sync(&k, h, 7, 2*time.Minute, 2*time.Minute, now); res != SyncRefreshed || old != 7 || r != ref {
		t.Fatalf("refresh: %v %v %v", r, old, res)
	}
	if info := tt.AppendInfo(nil, now); info[0].Remaining != 2*time.Minute || !info[0].Reused {
		t.Errorf("after a refresh: %+v", info[0])
	}
	// The master moved the call.
	if r, old, res := tt.Sync(&k, h, 8, 2*time.Minute, time.Second, now); res != SyncMoved || old != 7 || r != ref {
		t.Fatalf("move: %v %v %v", r, old, res)
	}
	if d, _ := tt.Dest(ref); d != 8 {
		t.Errorf("moved to %d", d)
	}
	// A template of the backup's own is not marked as synced.
	k2 := k
	k2.PEData = []byte("call-2")
	h2 := k2.Hash(tt.Seed())
	tt.InsertHashed(&k2, h2, 9, time.Minute, now)
	if _, _, res := tt.Sync(&k2, h2, 9, time.Minute, time.Minute, now); res != SyncRefreshed {
		t.Errorf("local: %v", res)
	}
	for _, in := range tt.AppendInfo(nil, now) {
		if in.Synced != (string(in.PEData) == "call-1@example.com") {
			t.Errorf("Synced %v for %s", in.Synced, in.PEData)
		}
	}
	// Full of live, used entries: a third one overflows.
	k3 := k
	k3.PEData = []byte("call-3")
	if _, _, res := tt.Sync(&k3, k3.Hash(tt.Seed()), 1, time.Minute, time.Minute, now); res != SyncOverflow {
		t.Errorf("full: %v", res)
	}
	bad := k
	bad.Client = netip.MustParseAddr("::")
	if _, _, res := tt.Sync(&bad, 1, 1, time.Minute, time.Minute, now); res != SyncInvalid {
		t.Errorf("mixed families: %v", res)
	}
	if len(removed) != 0 {
		t.Errorf("removed %v", removed)
	}

	// A remaining time shorter than the timeout is the master's expiry; a
	// refresh never shortens a template's life.
	k4 := k
	k4.PEData = []byte("call-4")
	tt.Invalidate(ref2(t, tt, &k2))
	r4, _, _ := tt.Sync(&k4, k4.Hash(tt.Seed()), 1, time.Minute, 5*time.Second, now)
	if v, _ := tt.SyncView(r4, make([]byte, MaxPEData)); v.Expires != now+int64(5*time.Second) || v.Timeout != time.Minute {
		t.Errorf("remaining: %+v", v)
	}
	tt.Sync(&k4, k4.Hash(tt.Seed()), 1, time.Minute, time.Second, now)
	if v, _ := tt.SyncView(r4, make([]byte, MaxPEData)); v.Expires != now+int64(5*time.Second) {
		t.Errorf("a refresh shortened the expiry: %+v", v)
	}
	if v, _ := tt.SyncView(r4, make([]byte, MaxPEData)); string(v.Key.PEData) != "call-4" || v.Key.Virtual != k4.Virtual || v.Key.Client != k4.Client {
		t.Errorf("view: %+v", v)
	}
	if m, ok := tt.Mark(ref); !ok || m != 0 {
		t.Errorf("mark %d %v", m, ok)
	}
	tt.SwapMark(ref, 42)
	if m, _ := tt.Mark(ref); m != 42 {
		t.Errorf("mark %d", m)
	}
	if st := tt.Stats(); st.Synced != 2 || st.Live != 2 { // call-1, call-4 (call-2 is gone, local)
		t.Errorf("stats %+v", st)
	}
	tt.Invalidate(r4)
	if st := tt.Stats(); st.Synced != 1 {
		t.Errorf("after a removal: %+v", st)
	}
}

func TestConnSync(t *testing.T) {
	type rm struct {
		d     DestID
		state uint8
	}
	var removed []rm
	c, err := NewConns(ConnConfig{Capacity: 4, OnRemove: func(d DestID, state, _ uint8, _ RemoveReason) { removed = append(removed, rm{d, state}) }})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(time.Hour)
	k := ConnKey{Protocol: 6, Client: netip.MustParseAddrPort("10.0.0.7:40000"), Virtual: netip.MustParseAddrPort("10.0.0.1:80")}
	real1, real2 := netip.MustParseAddrPort("192.168.0.1:80"), netip.MustParseAddrPort("192.168.0.2:80")
	ref, _, res := c.Sync(&k, real1, 3, 2, 15*time.Minute, now)
	if res != SyncInserted {
		t.Fatal(res)
	}
	in, _ := c.Get(ref)
	if !in.Synced || in.State != 2 || in.Real != real1 || in.Dest != 3 {
		t.Fatalf("%+v", in)
	}
	if r, prev, res := c.Sync(&k, real1, 3, 5, time.Minute, now); res != SyncRefreshed || prev != 2 || r != ref {
		t.Fatalf("refresh: %v %v %v", r, prev, res)
	}
	if in, _ := c.Get(ref); in.State != 5 || in.Timeout != time.Minute {
		t.Errorf("refreshed: %+v", in)
	}
	r2, _, res := c.Sync(&k, real2, 4, 2, time.Minute, now)
	if res != SyncMoved || r2 == ref {
		t.Fatalf("moved: %v", res)
	}
	if len(removed) != 1 || removed[0] != (rm{3, 5}) {
		t.Errorf("removed %v", removed)
	}
	// The same real server under another destination (another service's
	// entry, or a record naming another id): replaced, so that the old
	// destination's gauges lose it through OnRemove and the new one's gain
	// it; a refresh would leave it counted on the wrong one.
	r3, _, res := c.Sync(&k, real2, 5, 2, time.Minute, now)
	if res != SyncMoved || r3 == r2 {
		t.Fatalf("same real server, another destination: %v", res)
	}
	if in, _ := c.Get(r3); in.Dest != 5 || len(removed) != 2 || removed[1] != (rm{4, 2}) {
		t.Errorf("entry %+v, removed %v", in, removed)
	}
	r2 = r3
	if _, ok := c.LookupReply(6, real2, k.Client, now); !ok {
		t.Error("the reply direction of a synced connection is not indexed")
	}
	// Sync state.
	s, ok := c.CountIn(r2)
	if !ok || s.InPkts != 1 {
		t.Fatalf("%+v", s)
	}
	c.SetSync(r2, ConnSync{Mark: 9, InPkts: 50, OldState: 2})
	if s, _ := c.CountIn(r2); s != (ConnSync{Mark: 9, InPkts: 51, OldState: 2}) {
		t.Errorf("%+v", s)
	}
	if _, ok := c.CountIn(ref); ok {
		t.Error("a stale Ref counted")
	}
	bad := k
	bad.Client = netip.MustParseAddrPort("[::1]:1")
	if _, _, res := c.Sync(&bad, real1, 1, 1, time.Minute, now); res != SyncInvalid {
		t.Error(res)
	}
}

func TestSyncNoAllocs(t *testing.T) {
	tt, _ := NewTemplates(Config{Capacity: 64})
	c, _ := NewConns(ConnConfig{Capacity: 64})
	now := int64(time.Hour)
	k := TemplateKey{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
		PE: 1, PEData: []byte("call-1@example.com")}
	h := k.Hash(tt.Seed())
	ref, _, _ := tt.Sync(&k, h, 1, time.Minute, time.Minute, now)
	pe := make([]byte, MaxPEData)
	seen := 0
	walk := func(Ref) bool { seen++; return true }
	ck := ConnKey{Protocol: 17, Client: netip.MustParseAddrPort("10.0.0.7:5060"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060")}
	real := netip.MustParseAddrPort("192.168.0.1:5060")
	if n := testing.AllocsPerRun(100, func() {
		tt.Sync(&k, h, 1, time.Minute, time.Minute, now)
		tt.SyncView(ref, pe)
		tt.Walk(0, 64, now, walk)
		r, _, _ := c.Sync(&ck, real, 1, 0, time.Minute, now)
		c.CountIn(r)
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func ref2(t *testing.T, tt *Templates, k *TemplateKey) Ref {
	t.Helper()
	r, _, ok := tt.Lookup(k, int64(time.Hour))
	if !ok {
		t.Fatalf("no template %s", k.PEData)
	}
	return r
}

func TestTemplateWalk(t *testing.T) {
	tt, _ := NewTemplates(Config{Capacity: 8})
	now := int64(time.Hour)
	for i := range 5 {
		k := TemplateKey{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
			PE: 1, PEData: []byte{byte('a' + i)}}
		tt.Insert(&k, DestID(i), time.Duration(i+1)*time.Second, now)
	}
	var seen []DestID
	walk := func(r Ref) bool {
		d, _ := tt.Dest(r)
		seen = append(seen, d)
		return true
	}
	// 4 slots, then 4 more: every slot visited once, wrapping.
	next := tt.Walk(0, 4, now, walk)
	next = tt.Walk(next, 4, now, walk)
	if next != 0 || len(seen) != 5 {
		t.Fatalf("next %d, seen %v", next, seen)
	}
	seen = nil
	tt.Walk(next, 8, now+int64(2500*time.Millisecond), walk) // two have expired
	if len(seen) != 3 {
		t.Errorf("seen %v", seen)
	}
	// Stopped at a template: the walk resumes there.
	seen = nil
	stop := func(r Ref) bool { seen = append(seen, 0); return len(seen) < 2 }
	at := tt.Walk(0, 8, now, stop)
	if again := tt.Walk(at, 1, now, walk); len(seen) != 3 || again != at+1 {
		t.Errorf("stopped at %d, seen %v", at, seen)
	}
}
