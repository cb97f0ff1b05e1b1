package table

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// The Conns model: a map of the connections the table must hold, kept exact
// by the removal hook (each insert gets a unique DestID). Keys share client
// addresses, ports and real servers, so forward and reply hashes of
// different connections land near one another in the one index.

type connModelEntry struct {
	key       int
	real      netip.AddrPort
	dest      DestID
	state     uint8
	flags     uint8
	expires   int64
	timeout   int64
	protected bool
}

type connModelRun struct {
	t       testing.TB
	c       *Conns
	keys    []ConnKey
	reals   []netip.AddrPort
	byKey   map[int]*connModelEntry
	byDest  map[DestID]*connModelEntry
	now     int64
	next    DestID
	minIdle int64
	cap     int
}

func newConnModelRun(tb testing.TB, capacity int, minIdle time.Duration) *connModelRun {
	m := &connModelRun{t: tb, byKey: map[int]*connModelEntry{}, byDest: map[DestID]*connModelEntry{}, now: 1e12, minIdle: int64(minIdle), cap: capacity}
	var err error
	m.c, err = NewConns(ConnConfig{Capacity: capacity, MinProtectedIdle: minIdle, Seed: 9, OnRemove: m.removed})
	if err != nil {
		tb.Fatal(err)
	}
	// Keys 2j and 2j+1 share the client address and port and differ in the
	// virtual port (and, for j odd, in family), so replies from one real to
	// one client may match either of two live connections.
	for i := range 40 {
		proto := uint8(17)
		if i%10 < 2 {
			proto = 6
		}
		var k ConnKey
		if i%4 == 3 {
			k = ConnKey{Protocol: proto, Client: netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i / 2)}), 5060), Virtual: netip.AddrPortFrom(vip6.Addr(), uint16(5060+i%2))}
		} else {
			k = ConnKey{Protocol: proto, Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i / 2)}), 5060), Virtual: netip.AddrPortFrom(vip.Addr(), uint16(5060+i%2))}
		}
		m.keys = append(m.keys, k)
	}
	m.reals = []netip.AddrPort{
		netip.MustParseAddrPort("192.168.1.10:5060"),
		netip.MustParseAddrPort("192.168.1.11:5060"),
		netip.MustParseAddrPort("[2001:db8:1::10]:5060"), // an IPv4 service may have an IPv6 real (and back)
	}
	return m
}

func (m *connModelRun) removed(d DestID, state, flags uint8, r RemoveReason) {
	e := m.byDest[d]
	if e == nil {
		m.t.Fatalf("removal hook for unknown dest %d (%v)", d, r)
	}
	if state != e.state || flags != e.flags {
		m.t.Fatalf("key %d removed with state %d flags %d, model %d %d", e.key, state, flags, e.state, e.flags)
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

// live returns the model entry for key k if the table must still hold it.
func (m *connModelRun) live(k int) *connModelEntry {
	if e := m.byKey[k]; e != nil && m.now < e.expires {
		return e
	}
	return nil
}

func (m *connModelRun) step(op, arg byte) {
	k := int(arg) % len(m.keys)
	key := &m.keys[k]
	switch op % 8 {
	case 0, 1: // insert
		timeout := int64(1+arg%10) * sec
		real := m.reals[int(op/8)%len(m.reals)]
		m.next++
		ref, res := m.c.Insert(key, real, m.next, arg%4, time.Duration(timeout), Ref{}, m.now)
		e := m.byKey[k]
		switch res {
		case Inserted:
			if m.live(k) != nil {
				m.t.Fatalf("key %d inserted twice", k)
			}
			e = &connModelEntry{key: k, real: real, dest: m.next, state: arg % 4, expires: m.now + timeout, timeout: timeout}
			m.byKey[k], m.byDest[m.next] = e, e
		case InsertExists:
			if m.live(k) == nil {
				m.t.Fatalf("key %d exists in table only", k)
			}
			if in, _ := m.c.Get(ref); in.Dest != e.dest || in.Key != *key {
				m.t.Fatalf("key %d: ref info %+v, want dest %d", k, in, e.dest)
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
	case 2: // forward lookup, hashed and prefetched as the pipeline does
		h := key.Hash(m.c.Seed())
		m.c.Prefetch(h)
		ref, ok := m.c.LookupHashed(key, h, m.now)
		e := m.live(k)
		if ok != (e != nil) {
			m.t.Fatalf("lookup key %d = %v; model %+v", k, ok, e)
		}
		if ok {
			if in, _ := m.c.Get(ref); in.Dest != e.dest || in.Real != e.real || in.Key != *key {
				m.t.Fatalf("lookup key %d: info %+v, model %+v", k, in, e)
			}
		}
	case 3: // forward lookup and use
		if ref, ok := m.c.Lookup(key, m.now); ok {
			e := m.byKey[k]
			m.c.Touch(ref, m.now)
			e.expires, e.protected = m.now+e.timeout, true
		}
	case 4: // reply lookup from every real: only the connection's own matches
		for _, real := range m.reals {
			ref, ok := m.c.LookupReply(key.Protocol, real, key.Client, m.now)
			e := m.live(k)
			want := e != nil && e.real == real
			// Another live connection may share (proto, real, client addr:port):
			// same client and real, a different virtual address. The reply then
			// belongs to one of them; the model accepts any that matches.
			if !want {
				for j, o := range m.byKey {
					if m.now < o.expires && o.real == real && m.keys[j].Client == key.Client && m.keys[j].Protocol == key.Protocol {
						want = true
					}
				}
			}
			if ok != want {
				m.t.Fatalf("reply lookup key %d from %v = %v, want %v", k, real, ok, want)
			}
			if ok {
				in, _ := m.c.Get(ref)
				if in.Real != real || in.Key.Client != key.Client || in.Key.Protocol != key.Protocol {
					m.t.Fatalf("reply lookup key %d from %v found %+v", k, real, in)
				}
			}
		}
	case 5: // state change
		if ref, ok := m.c.Lookup(key, m.now); ok {
			e := m.byKey[k]
			st, fl, _ := m.c.State(ref)
			if st != e.state || fl != e.flags {
				m.t.Fatalf("key %d state %d/%d, model %d/%d", k, st, fl, e.state, e.flags)
			}
			timeout := int64(1+arg%7) * sec
			m.c.SetState(ref, op>>4, arg>>4, time.Duration(timeout), m.now)
			e.state, e.flags, e.timeout, e.expires, e.protected = op>>4, arg>>4, timeout, m.now+timeout, true
		}
	case 6: // time passes
		m.now += int64(arg) * int64(10*time.Millisecond)
	case 7:
		if arg&1 == 0 {
			m.c.Sweep(m.now, int(arg%8))
		} else if ref, ok := m.c.Lookup(key, m.now); ok {
			m.c.Remove(ref)
			if m.byKey[k] != nil {
				m.t.Fatalf("remove key %d: hook not called", k)
			}
			if m.c.Remove(ref) || m.c.Touch(ref, m.now) {
				m.t.Fatalf("remove key %d: stale ref accepted", k)
			}
		}
	}
	if st := m.c.Stats(); int(st.Live) != len(m.byKey) {
		m.t.Fatalf("live %d, model %d", st.Live, len(m.byKey))
	}
}

func (m *connModelRun) checkAll() {
	for k := range m.keys {
		_, ok := m.c.Lookup(&m.keys[k], m.now)
		if ok != (m.live(k) != nil) {
			m.t.Fatalf("final lookup key %d = %v, model %+v", k, ok, m.byKey[k])
		}
	}
}

// TestConnsModel runs random operation sequences against the model,
// including tables far smaller than the key set (full-table pressure).
func TestConnsModel(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	var sum ConnStats
	for run := range 200 {
		m := newConnModelRun(t, 1+run%24, time.Duration(run%4)*200*time.Millisecond)
		for range 2000 {
			m.step(byte(r.IntN(256)), byte(r.IntN(256)))
		}
		m.checkAll()
		st := m.c.Stats()
		sum.EvictedProbation += st.EvictedProbation
		sum.EvictedProtected += st.EvictedProtected
		sum.Overflow += st.Overflow
		sum.Expired += st.Expired
		sum.Removed += st.Removed
		sum.ReplyHits += st.ReplyHits
	}
	if sum.EvictedProbation == 0 || sum.EvictedProtected == 0 || sum.Overflow == 0 || sum.Expired == 0 || sum.Removed == 0 || sum.ReplyHits == 0 {
		t.Fatalf("policy branches not all reached: %+v", sum)
	}
	t.Logf("%+v", sum)
}

func FuzzConnsModel(f *testing.F) {
	f.Add(uint8(4), uint8(1), []byte{0, 1, 0, 2, 2, 1, 3, 1, 4, 1, 5, 1, 6, 40, 7, 1, 0, 9})
	f.Fuzz(func(t *testing.T, capacity, idle uint8, ops []byte) {
		m := newConnModelRun(t, 1+int(capacity%32), time.Duration(idle%4)*time.Second)
		for i := 0; i+1 < len(ops); i += 2 {
			m.step(ops[i], ops[i+1])
		}
		m.checkAll()
	})
}
