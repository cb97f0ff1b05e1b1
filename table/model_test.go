package table

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The model: a plain map of what the table must hold, kept exact by the
// removal hook (each insert gets a unique DestID, so the hook names the key).

type modelEntry struct {
	key       int
	dest      DestID
	expires   int64
	timeout   int64
	protected bool // used at least once after insertion
}

type modelRun struct {
	t       testing.TB
	tab     *Templates
	keys    []TemplateKey
	byKey   map[int]*modelEntry
	byDest  map[DestID]*modelEntry
	now     int64
	next    DestID
	minIdle int64
	cap     int
	// hashes, if set, replaces each key's hash (InsertHashed, LookupHashed):
	// a small set of values makes keys share home slots and index tags.
	hashes []uint64
}

// hash is key k's hash as the table is given it.
func (m *modelRun) hash(k int) uint64 {
	if m.hashes != nil {
		return m.hashes[k]
	}
	return m.keys[k].Hash(m.tab.Seed())
}

func (m *modelRun) lookup(k int) (Ref, DestID, bool) {
	return m.tab.LookupHashed(&m.keys[k], m.hash(k), m.now)
}

func newModelRun(tb testing.TB, capacity int, minIdle time.Duration) *modelRun {
	m := &modelRun{t: tb, byKey: map[int]*modelEntry{}, byDest: map[DestID]*modelEntry{}, now: 1e12, minIdle: int64(minIdle), cap: capacity}
	m.tab = newT(tb, Config{Capacity: capacity, MinProtectedIdle: minIdle, OnRemove: m.removed})
	for i := range 48 {
		id := fmt.Appendf(nil, "k%d-", i)
		for len(id) < (i*7)%70 {
			id = append(id, byte('a'+i%26))
		}
		m.keys = append(m.keys, sipKey(id))
	}
	return m
}

func (m *modelRun) removed(d DestID, r RemoveReason) {
	e := m.byDest[d]
	if e == nil {
		m.t.Fatalf("removal hook for unknown dest %d (%v)", d, r)
	}
	switch r {
	case RemoveExpired:
		if m.now < e.expires {
			m.t.Fatalf("key %d expired early: now %d < %d", e.key, m.now, e.expires)
		}
	case RemoveEvictedProbation:
		if e.protected {
			m.t.Fatalf("key %d evicted from probation although used again", e.key)
		}
	case RemoveEvictedProtected:
		if !e.protected {
			m.t.Fatalf("key %d evicted as protected but never used again", e.key)
		}
		for _, o := range m.byKey {
			if !o.protected {
				m.t.Fatalf("protected key %d evicted while probationary key %d is present", e.key, o.key)
			}
		}
		if idle := m.now - (e.expires - e.timeout); idle < m.minIdle {
			m.t.Fatalf("protected key %d evicted after %d ns idle < %d", e.key, idle, m.minIdle)
		}
	}
	delete(m.byKey, e.key)
	delete(m.byDest, d)
}

// step applies one operation decoded from op and arg.
func (m *modelRun) step(op, arg byte) {
	k := int(arg) % len(m.keys)
	key := &m.keys[k]
	switch op % 6 {
	case 0, 1: // insert
		timeout := int64(1+arg%10) * sec
		m.next++
		ref, res := m.tab.InsertHashed(key, m.hash(k), m.next, time.Duration(timeout), m.now)
		e := m.byKey[k]
		switch res {
		case Inserted:
			if e != nil {
				m.t.Fatalf("key %d inserted twice", k)
			}
			e = &modelEntry{key: k, dest: m.next, expires: m.now + timeout, timeout: timeout}
			m.byKey[k], m.byDest[m.next] = e, e
		case InsertExists:
			if e == nil {
				m.t.Fatalf("key %d exists in table only", k)
			}
			if d, _ := m.tab.Dest(ref); d != e.dest {
				m.t.Fatalf("key %d: ref dest %d, want %d", k, d, e.dest)
			}
		case InsertOverflow:
			if len(m.byKey) < m.cap {
				m.t.Fatalf("overflow with %d of %d entries", len(m.byKey), m.cap)
			}
			for _, o := range m.byKey {
				if !o.protected {
					m.t.Fatalf("overflow while probationary key %d is present", o.key)
				}
			}
		default:
			m.t.Fatalf("insert: %v", res)
		}
	case 2, 3: // lookup, and with op 3 use the template
		ref, d, ok := m.lookup(k)
		e := m.byKey[k]
		if ok != (e != nil) || ok && d != e.dest {
			m.t.Fatalf("lookup key %d = %d,%v; model %+v", k, d, ok, e)
		}
		if ok && op%6 == 3 {
			m.tab.Touch(ref, m.now)
			e.expires, e.protected = m.now+e.timeout, true
		}
	case 4: // time passes
		m.now += int64(arg) * int64(10*time.Millisecond)
	case 5:
		if arg&1 == 0 {
			m.tab.Sweep(m.now, int(arg%8))
		} else if ref, _, ok := m.lookup(k); ok {
			e := m.byKey[k]
			m.tab.Invalidate(ref)
			if m.byKey[k] != nil || e == nil {
				m.t.Fatalf("invalidate key %d: hook not called", k)
			}
		}
	}
	if st := m.tab.Stats(); int(st.Live) != len(m.byKey) {
		m.t.Fatalf("live %d, model %d", st.Live, len(m.byKey))
	}
}

func (m *modelRun) checkAll() {
	for k, e := range m.byKey {
		_, d, ok := m.lookup(k)
		if m.now < e.expires && (!ok || d != e.dest) {
			m.t.Fatalf("key %d lost", k)
		}
	}
}

func TestTemplatesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var sum TemplateStats
	for run := range 200 {
		m := newModelRun(t, 1+run%24, time.Duration(run%4)*200*time.Millisecond)
		for range 2000 {
			m.step(byte(r.IntN(256)), byte(r.IntN(256)))
		}
		m.checkAll()
		st := m.tab.Stats()
		sum.EvictedProbation += st.EvictedProbation
		sum.EvictedProtected += st.EvictedProtected
		sum.Overflow += st.Overflow
		sum.Expired += st.Expired
		sum.Invalidated += st.Invalidated
	}
	// The sequences must reach every policy branch, or the test proves little.
	if sum.EvictedProbation == 0 || sum.EvictedProtected == 0 || sum.Overflow == 0 || sum.Expired == 0 || sum.Invalidated == 0 {
		t.Fatalf("policy branches not all reached: %+v", sum)
	}
	t.Logf("%+v", sum)
}

func FuzzTemplatesModel(f *testing.F) {
	f.Add(uint8(4), uint8(1), []byte{0, 1, 0, 2, 0, 3, 3, 1, 0, 4, 0, 5, 4, 40, 2, 1})
	f.Fuzz(func(t *testing.T, capacity, idle uint8, ops []byte) {
		m := newModelRun(t, 1+int(capacity%32), time.Duration(idle%4)*time.Second)
		for i := 0; i+1 < len(ops); i += 2 {
			m.step(ops[i], ops[i+1])
		}
		m.checkAll()
	})
}
