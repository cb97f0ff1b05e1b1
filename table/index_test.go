package table

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The index keeps an 8-bit tag of the hash beside each entry reference, so
// that a probe skips foreign slots without reading their entries. These tests
// give keys chosen hashes (InsertHashed, LookupHashed) so that they share
// home slots and tags, which real hashes almost never do in a small table.

// collidingHash is a hash with the given tag (its top 8 bits) and home hash
// (its low 32 bits, which choose the home slot).
func collidingHash(tag uint8, home uint32) uint64 { return uint64(tag)<<56 | uint64(home) }

// checkIndex verifies the index against the live entries: one slot per live
// entry, each slot's tag that of the hash the entry was inserted with, and
// every entry reachable from its home slot without crossing an empty slot.
func checkIndex(t testing.TB, tab *Templates, hashOf func(i uint32) uint64) {
	t.Helper()
	x := &tab.index
	slots := 0
	for _, s := range x.slots {
		if s != 0 {
			slots++
		}
	}
	if uint64(slots) != tab.stats.Live {
		t.Fatalf("index holds %d slots for %d live entries", slots, tab.stats.Live)
	}
	for i := range tab.ents {
		e := &tab.ents[i]
		if e.flags&flagLive == 0 {
			continue
		}
		h := hashOf(uint32(i))
		if e.hash != hashHome(h) {
			t.Fatalf("entry %d: home hash %#x, inserted with %#x", i, e.hash, hashHome(h))
		}
		pos := x.home(e.hash)
		for x.slots[pos]&indexRefMask != uint32(i)+1 {
			if x.slots[pos] == 0 {
				t.Fatalf("entry %d unreachable from its home slot %d", i, x.home(e.hash))
			}
			pos = x.next(pos)
		}
		if tag := x.slots[pos] &^ indexRefMask; tag != hashTag(h) {
			t.Fatalf("entry %d: slot tag %#x, want %#x", i, tag, hashTag(h))
		}
	}
}

func TestTemplateTagCollisions(t *testing.T) {
	const n = 24
	tab := newT(t, Config{Capacity: 32})
	keys := make([]TemplateKey, n)
	hashes := make([]uint64, n)
	// Three home hashes, one of them the table's last slot so that probes
	// wrap, and two tags: keys i and i+6 have equal hashes (tag and home),
	// keys i and i+2 equal tags but different homes.
	homes := []uint32{0, 0xFFFFFFFF, 0x80000000}
	for i := range keys {
		keys[i] = sipKey(fmt.Appendf(nil, "call-%d@host", i))
		hashes[i] = collidingHash(uint8(i%2), homes[i%3])
	}
	// Each key's DestID is its number plus one, so an entry names its key.
	all := hashes
	hashOf := func(i uint32) uint64 { return all[tab.ents[i].dest-1] }
	refs := make([]Ref, n)
	for i := range keys {
		ref, res := tab.InsertHashed(&keys[i], hashes[i], DestID(i+1), time.Minute, 0)
		if res != Inserted {
			t.Fatalf("insert %d: %v", i, res)
		}
		refs[i] = ref
	}
	checkIndex(t, tab, hashOf)
	for i := range keys {
		if ref, d, ok := tab.LookupHashed(&keys[i], hashes[i], 1); !ok || d != DestID(i+1) || ref != refs[i] {
			t.Fatalf("key %d: %v %d %v", i, ref, d, ok)
		}
		if _, res := tab.InsertHashed(&keys[i], hashes[i], 99, time.Minute, 1); res != InsertExists {
			t.Fatalf("re-insert %d: %v", i, res)
		}
	}
	// A key that shares a hash with live keys but is not in the table.
	other := sipKey([]byte("call-absent@host"))
	if _, _, ok := tab.LookupHashed(&other, hashes[0], 1); ok {
		t.Fatal("absent key with a colliding hash found")
	}

	// Deleting some keys of each colliding group shifts the others back; all
	// of them must still be found, with their own tags.
	for i := 0; i < n; i += 3 {
		if !tab.Invalidate(refs[i]) {
			t.Fatalf("invalidate %d", i)
		}
	}
	checkIndex(t, tab, hashOf)
	for i := range keys {
		_, d, ok := tab.LookupHashed(&keys[i], hashes[i], 2)
		if want := i%3 != 0; ok != want || ok && d != DestID(i+1) {
			t.Fatalf("after deletes, key %d: %d %v", i, d, ok)
		}
	}

	// Re-insert them and flood the table beyond its capacity with more
	// colliding keys: the evictions keep the index consistent, and every key
	// is found exactly while its entry is live.
	for i := 0; i < n; i += 3 {
		if _, res := tab.InsertHashed(&keys[i], hashes[i], DestID(i+1), time.Minute, 3); res != Inserted {
			t.Fatalf("insert %d again: %v", i, res)
		}
	}
	for j := range 16 {
		keys = append(keys, sipKey(fmt.Appendf(nil, "flood-%d@host", j)))
		all = append(all, collidingHash(uint8(j%2), homes[j%3]))
		if _, res := tab.InsertHashed(&keys[n+j], all[n+j], DestID(n+j+1), time.Minute, 4); res != Inserted {
			t.Fatalf("flood insert %d: %v", j, res)
		}
	}
	checkIndex(t, tab, hashOf)
	st := tab.Stats()
	if st.EvictedProbation == 0 || st.Live != 32 {
		t.Fatalf("no evictions at capacity: %+v", st)
	}
	live := map[DestID]bool{}
	for i := range tab.ents {
		if e := &tab.ents[i]; e.flags&flagLive != 0 {
			live[e.dest] = true
		}
	}
	found := 0
	for i := range keys {
		_, d, ok := tab.LookupHashed(&keys[i], all[i], 5)
		if ok != live[DestID(i+1)] || ok && d != DestID(i+1) {
			t.Fatalf("key %d: found %v (dest %d), live %v", i, ok, d, live[DestID(i+1)])
		}
		if ok {
			found++
		}
	}
	if found != 32 {
		t.Fatalf("%d keys found, want 32", found)
	}
}

// TestTemplatesModelCollidingHashes runs the table model (model_test.go)
// with hashes from a set of six values — two tags, three home slots, one of
// them the last slot — so that most keys share a home, a tag or both, and
// checks the index's structure after every run.
func TestTemplatesModelCollidingHashes(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 15))
	for run := range 200 {
		m := newCollidingModelRun(t, 1+run%24, time.Duration(run%4)*200*time.Millisecond)
		for range 2000 {
			m.step(byte(r.IntN(256)), byte(r.IntN(256)))
		}
		m.checkAll()
		m.checkIndex()
	}
}

func newCollidingModelRun(tb testing.TB, capacity int, minIdle time.Duration) *modelRun {
	m := newModelRun(tb, capacity, minIdle)
	homes := []uint32{0, 0xFFFFFFFF, 0x80000000}
	m.hashes = make([]uint64, len(m.keys))
	for i := range m.hashes {
		m.hashes[i] = collidingHash(uint8(i%2), homes[i%3])
	}
	return m
}

// checkIndex checks the index structure of a model run's table.
func (m *modelRun) checkIndex() {
	keyOf := map[DestID]int{}
	for k, e := range m.byKey {
		keyOf[e.dest] = k
	}
	checkIndex(m.t, m.tab, func(i uint32) uint64 {
		k, ok := keyOf[m.tab.ents[i].dest]
		if !ok {
			m.t.Fatalf("live entry %d (dest %d) not in the model", i, m.tab.ents[i].dest)
		}
		return m.hash(k)
	})
}

func FuzzTemplatesModelCollidingHashes(f *testing.F) {
	f.Add(uint8(4), uint8(1), []byte{0, 0, 0, 6, 0, 12, 0, 3, 5, 1, 2, 6, 0, 18, 5, 7, 2, 12, 4, 40, 5, 0, 2, 0})
	f.Fuzz(func(t *testing.T, capacity, idle uint8, ops []byte) {
		m := newCollidingModelRun(t, 1+int(capacity%32), time.Duration(idle%4)*time.Second)
		for i := 0; i+1 < len(ops); i += 2 {
			m.step(ops[i], ops[i+1])
			m.checkIndex()
		}
		m.checkAll()
	})
}
