package table

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	vip    = netip.MustParseAddrPort("10.4.3.192:5060")
	vip6   = netip.MustParseAddrPort("[2001:db8::192]:5060")
	anyNet = netip.MustParseAddr("0.0.0.0")
)

const sec = int64(time.Second)

// callID returns a realistic Call-ID for n: the formats of common user
// agents and proxies, 20–60 bytes long.
func callID(r *rand.Rand, n int) []byte {
	switch n % 4 {
	case 0: // RFC 3261 example style: hex@host
		return fmt.Appendf(nil, "%x@pc%d.example.com", r.Uint64(), n%100)
	case 1: // UUID (Asterisk, FreeSWITCH)
		return fmt.Appendf(nil, "%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
	case 2: // Kamailio/SER style with address
		return fmt.Appendf(nil, "%d-%d@192.168.%d.%d", r.Uint32(), n, n%256, r.IntN(256))
	default: // Cisco/Microsoft style: UUID at the UA's address
		return fmt.Appendf(nil, "%08x-%04x-%04x-%04x-%012x@10.%d.%d.%d", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff, r.IntN(256), r.IntN(256), r.IntN(256))
	}
}

func sipKey(id []byte) TemplateKey {
	return TemplateKey{Protocol: 17, Client: anyNet, Virtual: vip, PE: 1, PEData: id}
}

func newT(tb testing.TB, cfg Config) *Templates {
	tb.Helper()
	t, err := NewTemplates(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func TestTemplateBasics(t *testing.T) {
	var removed []RemoveReason
	tt := newT(t, Config{Capacity: 16, OnRemove: func(d DestID, r RemoveReason) { removed = append(removed, r) }})
	k := sipKey([]byte("a84b4c76e66710@pc33.example.com"))
	now := int64(1000 * sec)
	if _, _, ok := tt.Lookup(&k, now); ok {
		t.Fatal("hit in empty table")
	}
	ref, res := tt.Insert(&k, 7, 60*time.Second, now)
	if res != Inserted {
		t.Fatalf("insert = %v", res)
	}
	if r2, res := tt.Insert(&k, 8, 60*time.Second, now); res != InsertExists || r2 != ref {
		t.Fatalf("second insert = %v %v", r2, res)
	}
	// Keys differing in any one field miss.
	for name, k2 := range map[string]TemplateKey{
		"case":   sipKey([]byte("A84b4c76e66710@pc33.example.com")),
		"prefix": sipKey([]byte("a84b4c76e66710@pc33.example.co")),
		"proto":  {Protocol: 6, Client: anyNet, Virtual: vip, PE: 1, PEData: k.PEData},
		"pe":     {Protocol: 17, Client: anyNet, Virtual: vip, PE: 2, PEData: k.PEData},
		"vport":  {Protocol: 17, Client: anyNet, Virtual: netip.AddrPortFrom(vip.Addr(), 5061), PE: 1, PEData: k.PEData},
		"client": {Protocol: 17, Client: netip.MustParseAddr("10.4.3.0"), Virtual: vip, PE: 1, PEData: k.PEData},
		"family": {Protocol: 17, Client: netip.IPv6Unspecified(), Virtual: vip6, PE: 1, PEData: k.PEData},
	} {
		if _, _, ok := tt.Lookup(&k2, now); ok {
			t.Errorf("%s: unexpected hit", name)
		}
	}
	r, d, ok := tt.Lookup(&k, now+59*sec)
	if !ok || d != 7 || r != ref {
		t.Fatalf("lookup = %v %v %v", r, d, ok)
	}
	tt.Touch(r, now+59*sec) // restarts the 60 s timeout
	if _, _, ok := tt.Lookup(&k, now+118*sec); !ok {
		t.Fatal("touched template expired early")
	}
	if _, _, ok := tt.Lookup(&k, now+119*sec); ok {
		t.Fatal("template did not expire")
	}
	if len(removed) != 1 || removed[0] != RemoveExpired {
		t.Fatalf("removed = %v", removed)
	}
	if tt.Touch(ref, now) || tt.Hold(ref) || tt.Invalidate(ref) {
		t.Fatal("stale ref accepted")
	}
	st := tt.Stats()
	if st.Live != 0 || st.Inserts != 1 || st.Expired != 1 || st.Exists != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if bad := (TemplateKey{Protocol: 17, Client: anyNet, Virtual: vip6}); true {
		if _, res := tt.Insert(&bad, 1, time.Second, now); res != InsertInvalid {
			t.Fatalf("mixed families: %v", res)
		}
	}
}

func TestTemplateHoldAndStaleRef(t *testing.T) {
	tt := newT(t, Config{Capacity: 4})
	k := sipKey([]byte("held@x"))
	now := int64(sec)
	ref, _ := tt.Insert(&k, 1, 10*time.Second, now)
	tt.Hold(ref)
	// Past its expiry a held template is re-armed for HoldRearm.
	if tt.Sweep(now+20*sec, 4) != 0 {
		t.Fatal("held template swept")
	}
	if _, _, ok := tt.Lookup(&k, now+20*sec+int64(HoldRearm)-1); !ok {
		t.Fatal("held template not re-armed")
	}
	if old, ok := tt.SwapMark(ref, 7); !ok || old != 0 {
		t.Fatalf("first SwapMark = %d %v, want 0 true", old, ok)
	}
	if old, ok := tt.SwapMark(ref, 9); !ok || old != 7 {
		t.Fatalf("second SwapMark = %d %v, want 7 true", old, ok)
	}
	tt.Release(ref)
	if _, _, ok := tt.Lookup(&k, now+21*sec+int64(HoldRearm)); ok {
		t.Fatal("released template did not expire")
	}
	// The slot is reused; the old Ref must not reach the new occupant.
	k2 := sipKey([]byte("other"))
	ref2, _ := tt.Insert(&k2, 2, 10*time.Second, now+100*sec)
	if ref2.slot == ref.slot && ref2.gen == ref.gen {
		t.Fatal("generation not bumped")
	}
	if tt.Release(ref) || tt.Invalidate(ref) {
		t.Fatal("stale ref reached new occupant")
	}
	if old, ok := tt.SwapMark(ref, 1); ok || old != 0 {
		t.Fatal("SwapMark accepted a stale ref")
	}
	if old, _ := tt.SwapMark(ref2, 1); old != 0 {
		t.Fatalf("new occupant's mark = %d, want 0", old)
	}
	if !tt.Invalidate(ref2) {
		t.Fatal("invalidate")
	}
	if _, _, ok := tt.Lookup(&k2, now+100*sec); ok {
		t.Fatal("invalidated template found")
	}
}

func TestTemplateIPv6AndInfo(t *testing.T) {
	tt := newT(t, Config{Capacity: 8})
	c := netip.MustParseAddr("2001:db8:1::")
	k := TemplateKey{Protocol: 17, Client: c, Virtual: vip6, PE: 1, PEData: []byte("v6-call")}
	k4 := TemplateKey{Protocol: 6, Client: netip.MustParseAddr("10.4.3.0"), Virtual: vip}
	now := int64(50 * sec)
	tt.Insert(&k, 3, 60*time.Second, now)
	r4, _ := tt.Insert(&k4, 4, 300*time.Second, now)
	tt.SetAssured(r4)
	infos := tt.AppendInfo(nil, now+8*sec)
	if len(infos) != 2 {
		t.Fatalf("%d infos", len(infos))
	}
	for _, in := range infos {
		switch in.Dest {
		case 3:
			if in.Client != c || in.Virtual != vip6 || string(in.PEData) != "v6-call" || in.Remaining != 52*time.Second || in.State != TemplateNone {
				t.Errorf("v6 info %+v", in)
			}
		case 4:
			if in.Client != k4.Client || in.Protocol != 6 || len(in.PEData) != 0 || in.State != TemplateAssured || in.Timeout != 300*time.Second {
				t.Errorf("v4 info %+v", in)
			}
		}
	}
	// Snapshot and restore into a fresh table.
	t2 := newT(t, Config{Capacity: 8})
	for i := range infos {
		if _, res := t2.Restore(&infos[i], 1000*sec); res != Inserted {
			t.Fatal(res)
		}
	}
	if _, d, ok := t2.Lookup(&k, 1000*sec+51*sec); !ok || d != 3 {
		t.Fatal("restored template lost")
	}
	if _, _, ok := t2.Lookup(&k, 1000*sec+53*sec); ok {
		t.Fatal("restored template kept its full timeout instead of the remaining one")
	}
}

func TestTemplateNoAllocs(t *testing.T) {
	const n = 1024
	tt := newT(t, Config{Capacity: n, MinProtectedIdle: -1})
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]TemplateKey, 4*n)
	for i := range keys {
		keys[i] = sipKey(callID(r, i))
	}
	now := int64(sec)
	for i := range n {
		tt.Insert(&keys[i], DestID(i), time.Minute, now)
	}
	miss := sipKey([]byte("never-inserted@example.com"))
	i := 0
	// In this order: the sweep expires everything, which would turn the
	// evictions into expiries.
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"hit", func() { ref, _, _ := tt.Lookup(&keys[i%n], now); tt.Touch(ref, now); i++ }},
		{"miss", func() { tt.Lookup(&miss, now) }},
		{"mark", func() { ref, _, _ := tt.Lookup(&keys[i%n], now); tt.SwapMark(ref, uint32(i)); i++ }},
		{"prefetch", func() { h := keys[i%n].Hash(tt.Seed()); tt.Prefetch(h); tt.PrefetchEntry(h); i++ }},
		{"evict", func() { tt.Insert(&keys[n+i%(3*n)], 1, time.Minute, now); i++ }},
		{"sweep", func() { now += 2 * int64(time.Minute); tt.Sweep(now, 64) }},
	} {
		if a := testing.AllocsPerRun(1000, c.f); a != 0 {
			t.Errorf("%s: %v allocs", c.name, a)
		}
	}
	if tt.Stats().EvictedProbation == 0 {
		t.Error("eviction path not exercised")
	}
}

// AppendInfoFrom walks the table in steps that together list every live
// template once; Reused survives a snapshot, so that a restored live dialog
// is kept over one-off templates when the restoring table is smaller.
func TestTemplateInfoStepsAndReused(t *testing.T) {
	const n = 64
	tt := newT(t, Config{Capacity: n, MinProtectedIdle: -1})
	r := rand.New(rand.NewPCG(3, 4))
	now := int64(sec)
	keys := make([]TemplateKey, n)
	for i := range keys {
		keys[i] = sipKey(callID(r, i))
		ref, _ := tt.Insert(&keys[i], DestID(i+1), time.Minute, now)
		if i%4 == 0 {
			tt.Touch(ref, now) // a dialog's second datagram
		}
	}
	var all []TemplateInfo
	for from := 0; from < n; {
		all, from = tt.AppendInfoFrom(all, from, 10, now)
	}
	if len(all) != n {
		t.Fatalf("stepped walk listed %d templates, want %d", len(all), n)
	}
	if got, next := tt.AppendInfoFrom(nil, n+5, 10, now); len(got) != 0 || next != n {
		t.Fatalf("walk past the end: %d infos, next %d", len(got), next)
	}
	reused := 0
	for _, in := range all {
		if in.Reused != (int(in.Dest-1)%4 == 0) {
			t.Fatalf("template %d: Reused %v", in.Dest, in.Reused)
		}
		if in.Reused {
			reused++
		}
	}
	if reused != n/4 {
		t.Fatalf("%d reused templates, want %d", reused, n/4)
	}
	// Restore all of them into a table of half the size: the normal policy
	// keeps every reused one (16) and evicts one-off templates first.
	t2 := newT(t, Config{Capacity: n / 2, MinProtectedIdle: -1})
	for i := range all {
		t2.Restore(&all[i], now)
	}
	if st := t2.Stats(); st.Live != n/2 || st.EvictedProbation != n/2 || st.EvictedProtected != 0 {
		t.Fatalf("restore into a half-size table: %+v", st)
	}
	for i := range keys {
		if _, _, ok := t2.Lookup(&keys[i], now); i%4 == 0 && !ok {
			t.Fatalf("reused template %d evicted by one-off ones", i)
		}
	}
}
