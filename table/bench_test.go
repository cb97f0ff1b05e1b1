package table

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

const benchLive = 1_000_000

var (
	benchOnce   sync.Once
	benchCorpus callIDCorpus
	benchTab    *Templates
	benchMap    map[string]uint32
	sinkDest    DestID
	sinkU32     uint32
)

// benchSetup builds 1 000 000 live templates with realistic Call-IDs and the
// same-run baseline, a map[string]uint32 keyed by the same Call-IDs. Keys are
// inserted in a scattered order (insertOrder) unrelated to the lookup order
// (order), so that neither the entries nor the arena tails nor the map's key
// strings are visited sequentially.
func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		benchCorpus = newCorpus(benchLive, 11)
		t, err := NewTemplates(Config{Capacity: benchLive, Seed: 42})
		if err != nil {
			b.Fatal(err)
		}
		benchMap = make(map[string]uint32, benchLive)
		for j := range benchLive {
			i := insertOrder(j)
			k := sipKey(benchCorpus.id(i))
			if _, res := t.Insert(&k, DestID(i), time.Hour, 0); res != Inserted {
				b.Fatalf("setup insert %d: %v", i, res)
			}
			benchMap[string(benchCorpus.id(i))] = uint32(i)
		}
		benchTab = t
	})
}

func opsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// order visits the keys in a scattered order (a stride coprime to the count).
func order(i int) int { return i * 7919 % benchLive }

// insertOrder is another scattered order, for filling the table.
func insertOrder(j int) int { return j * 104729 % benchLive }

// benchBatch is the pipeline's batch size (frames per receive).
const benchBatch = 64

// BenchmarkTemplateLookupHit: a lookup hit and Touch per operation among
// 1 000 000 live templates, keys in random order; each op also reads its
// Call-ID from a 37 MB corpus, as the map baseline does ("keys-only" is that
// floor: corpus read and hash, no lookup). "batched" hashes 64 keys, then
// looks them up; "batched-prefetch" also prefetches each key's index line
// between the two passes, as the pipeline does with a receive batch.
func BenchmarkTemplateLookupHit(b *testing.B) {
	benchSetup(b)
	seed := benchTab.Seed()
	b.Run("keys-only", func(b *testing.B) {
		b.ReportAllocs()
		var h uint64
		for i := range b.N {
			k := sipKey(benchCorpus.id(order(i)))
			h += k.Hash(seed)
		}
		sinkU32 = uint32(h)
		opsPerSec(b)
	})
	b.Run("xvs", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			k := sipKey(benchCorpus.id(order(i)))
			ref, d, _ := benchTab.Lookup(&k, 1)
			benchTab.Touch(ref, 1)
			sinkDest = d
		}
		opsPerSec(b)
	})
	batched := func(pf, pfe bool) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			var keys [benchBatch]TemplateKey
			var hs [benchBatch]uint64
			for i := 0; i < b.N; i += benchBatch {
				n := min(benchBatch, b.N-i)
				for j := range n {
					keys[j] = sipKey(benchCorpus.id(order(i + j)))
					hs[j] = keys[j].Hash(seed)
					if pf {
						benchTab.Prefetch(hs[j])
					}
				}
				for j := range n {
					if pfe {
						benchTab.PrefetchEntry(hs[j])
					}
				}
				for j := range n {
					ref, d, _ := benchTab.LookupHashed(&keys[j], hs[j], 1)
					benchTab.Touch(ref, 1)
					sinkDest = d
				}
			}
			opsPerSec(b)
		}
	}
	b.Run("xvs-batched", batched(false, false))
	b.Run("xvs-batched-prefetch", batched(true, false))
	b.Run("xvs-batched-prefetch2", batched(true, true))
	b.Run("map-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			sinkU32 = benchMap[string(benchCorpus.id(order(i)))]
		}
		opsPerSec(b)
	})
}

func BenchmarkTemplateMissInsert(b *testing.B) {
	const n = 1 << 16
	c := newCorpus(n, 13)
	b.Run("xvs", func(b *testing.B) {
		b.ReportAllocs()
		t := newT(b, Config{Capacity: n})
		now := int64(0)
		b.ResetTimer()
		for i := range b.N {
			if i%n == 0 && i > 0 {
				b.StopTimer()
				now += int64(2 * time.Hour) // everything expires: start empty again
				t.Sweep(now, n)
				b.StartTimer()
			}
			k := sipKey(c.id(i % n))
			if _, _, ok := t.Lookup(&k, now); !ok {
				t.Insert(&k, 1, time.Hour, now)
			}
		}
		opsPerSec(b)
	})
	b.Run("map-baseline", func(b *testing.B) {
		b.ReportAllocs()
		m := make(map[string]uint32, n)
		for i := range b.N {
			if i%n == 0 {
				clear(m)
			}
			id := c.id(i % n)
			if _, ok := m[string(id)]; !ok {
				m[string(id)] = 1
			}
		}
		opsPerSec(b)
	})
}

// BenchmarkTemplateFlood: the table is at capacity and every key is new, so
// every operation is a miss, an eviction of the LRU probationary template and
// an insert.
func BenchmarkTemplateFlood(b *testing.B) {
	const n = 1 << 16
	buf := make([]byte, 0, 64)
	key := func(i int) []byte {
		buf = strconv.AppendUint(append(buf[:0], "flood-"...), uint64(i), 10)
		return append(buf, "@attacker.example.com"...)
	}
	b.Run("xvs", func(b *testing.B) {
		b.ReportAllocs()
		t := newT(b, Config{Capacity: n})
		for i := range n {
			k := sipKey(key(i))
			t.Insert(&k, 1, time.Hour, 0)
		}
		b.ResetTimer()
		for i := range b.N {
			k := sipKey(key(n + i))
			if _, _, ok := t.Lookup(&k, 1); !ok {
				t.Insert(&k, 1, time.Hour, 1)
			}
		}
		opsPerSec(b)
	})
	b.Run("map-baseline", func(b *testing.B) {
		// A map bounded by deleting the oldest key (FIFO) for each insert.
		b.ReportAllocs()
		m := make(map[string]uint32, n)
		for i := range n {
			m[string(key(i))] = 1
		}
		b.ResetTimer()
		for i := range b.N {
			if _, ok := m[string(key(n+i))]; !ok {
				delete(m, string(key(i)))
				m[string(key(n+i))] = 1
			}
		}
		opsPerSec(b)
	})
}

func BenchmarkSharedGet(b *testing.B) {
	const n = benchLive
	s, _ := NewShared(n)
	m := make(map[uint64]uint32, n)
	for i := range n {
		h := mix(uint64(i)+1, wyp0)
		s.InsertIfAbsent(h, DestID(i), int64(time.Hour), 0)
		m[h] = uint32(i)
	}
	b.Run("xvs", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			sinkDest, _ = s.Get(mix(uint64(order(i))+1, wyp0), 1)
		}
		opsPerSec(b)
	})
	b.Run("map-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			sinkU32 = m[mix(uint64(order(i))+1, wyp0)]
		}
		opsPerSec(b)
	})
}

func BenchmarkTemplateKeyHash(b *testing.B) {
	k := sipKey([]byte("a84b4c76e66710@pc33.example.com"))
	b.ReportAllocs()
	var h uint64
	for range b.N {
		h += k.Hash(42)
	}
	sinkU32 = uint32(h)
	opsPerSec(b)
}

// BenchmarkTemplateAppendInfoFrom measures one step of a snapshot's walk
// (4096 slots of a full table of a million realistic SIP templates): the
// time a save holds the owning worker per step.
func BenchmarkTemplateAppendInfoFrom(b *testing.B) {
	const n = 1 << 20
	tt := newT(b, Config{Capacity: n})
	r := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		k := sipKey(callID(r, i))
		tt.Insert(&k, DestID(i), time.Minute, sec)
	}
	var infos []TemplateInfo
	from := 0
	b.ResetTimer()
	for range b.N {
		infos, from = tt.AppendInfoFrom(infos[:0], from, 4096, sec)
		if from == n {
			from = 0
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4096, "ns/slot")
}

// BenchmarkTemplateAppendInfoFromEmpty is the same step over empty slots
// (an idle worker's sparse table).
func BenchmarkTemplateAppendInfoFromEmpty(b *testing.B) {
	const n = 1 << 20
	tt := newT(b, Config{Capacity: n})
	from := 0
	b.ResetTimer()
	for range b.N {
		_, from = tt.AppendInfoFrom(nil, from, 4096, sec)
		if from == n {
			from = 0
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4096, "ns/slot")
}
