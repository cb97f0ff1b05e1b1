package table

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// callIDCorpus holds n realistic Call-IDs back to back.
type callIDCorpus struct {
	data []byte
	off  []uint32
}

func newCorpus(n int, seed uint64) callIDCorpus {
	r := rand.New(rand.NewPCG(seed, seed))
	c := callIDCorpus{off: make([]uint32, 0, n+1)}
	for i := range n {
		c.off = append(c.off, uint32(len(c.data)))
		c.data = append(c.data, callID(r, i)...)
	}
	c.off = append(c.off, uint32(len(c.data)))
	return c
}

func (c *callIDCorpus) id(i int) []byte { return c.data[c.off[i]:c.off[i+1]] }

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestTemplateMemoryPerEntry proves the memory budget: the heap grows by
// MemoryBytes at construction and not at all while filling, and the bytes
// per template stay within 2× the raw key and value bytes.
func TestTemplateMemoryPerEntry(t *testing.T) {
	const n = 100_000
	c := newCorpus(n, 3)
	before := heapAlloc()
	tt := newT(t, Config{Capacity: n})
	built := heapAlloc()
	now := int64(sec)
	for i := range n {
		k := sipKey(c.id(i))
		if _, res := tt.Insert(&k, DestID(i), time.Minute, now); res != Inserted {
			t.Fatalf("insert %d: %v (stats %+v)", i, res, tt.Stats())
		}
	}
	filled := heapAlloc()
	mem := tt.MemoryBytes()
	if d := int64(built - before); d < int64(mem)*99/100 || d > int64(mem)*101/100+64<<10 {
		t.Errorf("construction allocated %d bytes, MemoryBytes says %d", d, mem)
	}
	if d := int64(filled) - int64(built); d > 64<<10 {
		t.Errorf("filling grew the heap by %d bytes", d)
	}
	// Raw bytes of an IPv4 SIP template: family, protocol, vaddr, vport,
	// masked caddr, pe id, Call-ID (key) + DestID and 8-byte expiry (value).
	raw := float64(1+1+4+2+4+1+4+8) + float64(len(c.data))/n
	per := float64(mem) / n
	t.Logf("Call-ID mean %.1f B; %.1f B/template (fixed %d entry + %d links + %.1f index, tail arena %.1f of which %.1f used); raw %.1f B; ratio %.2f",
		float64(len(c.data))/n, per, sizeofTmpl, 9, float64(tt.index.bytes())/n, float64(tt.arena.bytes())/n, float64(tt.arena.used)/n, raw, per/raw)
	if per/raw > 2 {
		t.Errorf("memory ratio %.2f > 2", per/raw)
	}
	if sizeofTmpl != 96 {
		t.Errorf("template entry is %d bytes, documented as 96", sizeofTmpl)
	}
}

// TestTemplateFlood: a table at capacity holds live dialogs, each refreshed
// every 2 s, while 10× capacity unique Call-IDs stream in. Every dialog must
// keep its template and the heap must not grow.
func TestTemplateFlood(t *testing.T) {
	const (
		capacity = 20_000
		dialogs  = 5_000
		flood    = 10 * capacity
	)
	c := newCorpus(dialogs, 5)
	tt := newT(t, Config{Capacity: capacity})
	now := int64(1000 * sec)
	keys := make([]TemplateKey, dialogs)
	for i := range keys {
		keys[i] = sipKey(c.id(i))
		tt.Insert(&keys[i], DestID(i), time.Minute, now) // INVITE
	}
	for i := range keys { // ACK: second datagram of the dialog
		ref, _, _ := tt.Lookup(&keys[i], now)
		tt.Touch(ref, now)
	}
	buf := make([]byte, 0, 64)
	flk := sipKey(nil)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	const perTick = 1000 // flood keys per 100 ms: 10 000 new Call-IDs/s
	for i := range flood {
		buf = strconv.AppendUint(append(buf[:0], "flood-"...), uint64(i), 10)
		buf = append(buf, "@attacker.example"...)
		flk.PEData = buf
		if _, _, ok := tt.Lookup(&flk, now); !ok {
			tt.Insert(&flk, 99999, time.Minute, now)
		}
		if i%perTick == perTick-1 {
			now += int64(100 * time.Millisecond)
			tt.Sweep(now, 256)
			// Each dialog sends a datagram every 2 s.
			for d := (i / perTick) % 20; d < dialogs; d += 20 {
				ref, dest, ok := tt.Lookup(&keys[d], now)
				if !ok || dest != DestID(d) {
					t.Fatalf("dialog %d lost its template after %d flood keys (stats %+v)", d, i, tt.Stats())
				}
				tt.Touch(ref, now)
			}
		}
	}
	runtime.ReadMemStats(&ms1)
	if ms1.Mallocs-ms0.Mallocs > 100 || ms1.HeapAlloc > ms0.HeapAlloc+1<<20 {
		t.Errorf("flood allocated: %d mallocs, heap %d → %d", ms1.Mallocs-ms0.Mallocs, ms0.HeapAlloc, ms1.HeapAlloc)
	}
	st := tt.Stats()
	if st.EvictedProtected != 0 || st.EvictedProbation < flood-capacity {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%+v", st)
}

// TestTemplateMemoryIPv6: IPv6 keys spill a tail (32 address bytes leave 22
// inline bytes for the Call-ID), so the arena is sized at 32 bytes per
// template; the ratio must still stay within 2× raw.
func TestTemplateMemoryIPv6(t *testing.T) {
	const n = 50_000
	c := newCorpus(n, 4)
	tt := newT(t, Config{Capacity: n, ArenaBytes: n*32 + arenaClasses*arenaPage})
	client := netip.MustParseAddr("2001:db8:1::")
	for i := range n {
		k := TemplateKey{Protocol: 17, Client: client, Virtual: vip6, PE: 1, PEData: c.id(i)}
		if _, res := tt.Insert(&k, DestID(i), time.Minute, sec); res != Inserted {
			t.Fatalf("insert %d: %v (stats %+v)", i, res, tt.Stats())
		}
	}
	for i := range n {
		k := TemplateKey{Protocol: 17, Client: client, Virtual: vip6, PE: 1, PEData: c.id(i)}
		if _, d, ok := tt.Lookup(&k, sec); !ok || d != DestID(i) {
			t.Fatalf("lookup %d = %v %v", i, d, ok)
		}
	}
	raw := float64(1+1+16+2+16+1+4+8) + float64(len(c.data))/n
	per := float64(tt.MemoryBytes()) / n
	t.Logf("IPv6: %.1f B/template (tail arena %.1f of which %.1f used); raw %.1f B; ratio %.2f",
		per, float64(tt.arena.bytes())/n, float64(tt.arena.used)/n, raw, per/raw)
	if per/raw > 2 {
		t.Errorf("memory ratio %.2f > 2", per/raw)
	}
}
