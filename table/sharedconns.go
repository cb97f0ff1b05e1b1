package table

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"sync/atomic"
)

// SharedConns is a fixed-capacity index of NAT connections by their reply
// tuple (protocol, real server address and port, client address and port),
// shared by all workers, so that a reply that arrives on another worker
// than its connection's — another RX queue, or another interface of a
// director with several legs, whose NICs hash the reply's tuple to their
// own queues — is still translated back to its virtual address. The worker
// that creates a NAT connection publishes it here (Publish); a worker whose
// own table misses a reply asks here (Get).
//
// An entry holds what the translation needs: the virtual address and port
// the reply leaves from, and the real server's DestID. The connection
// itself — its state, timeout and counters — stays in its worker's Conns:
// a reply translated through the index refreshes the entry (Refresh), not
// the owner's connection, and TCP state changes seen only in replies are not
// tracked (the owner sees the client's side). Entries expire on their own
// (the owner republishes the expiry while it uses the connection).
//
// Keys are 64-bit hashes (ReplyHash with one process-wide seed). Two reply
// tuples with the same hash would share an entry: with 64 bits that takes
// billions of live connections to become likely, and the Dest check still
// applies.
//
// Reads are lock-free: each slot is guarded by a sequence counter (a
// seqlock: odd while a writer changes the slot), and a reader retries when
// the counter moved during its read. Writers (Publish, Expire) take the
// stripe lock of the key's home slot for one probe-window scan, as
// Shared's inserters do; Refresh raises the expiry with a compare-and-swap.
type SharedConns struct {
	slots   []connSlot
	locks   []sharedLock
	evicted atomic.Uint64
}

// connSlot is one cache line: the sequence counter, the key, the expiry,
// the destination and port word, and the 16-byte virtual address.
type connSlot struct {
	seq  atomic.Uint64
	key  atomic.Uint64
	exp  atomic.Int64
	dest atomic.Uint64 // DestID<<32 | v4 flag<<16 | virtual port
	va0  atomic.Uint64
	va1  atomic.Uint64
	_    [16]byte
}

// SharedConn is what SharedConns holds for a connection.
type SharedConn struct {
	Virtual netip.AddrPort // where the reply leaves from
	Dest    DestID
}

// connReadTries bounds a reader's retries of a slot a writer keeps
// changing: it then reports a miss (the reply is not translated this once).
const connReadTries = 8

// NewSharedConns allocates an index for capacity live NAT connections (128
// bytes each: two 64-byte slots, so that an 8-slot probe window almost never
// lacks room).
func NewSharedConns(capacity int) (*SharedConns, error) {
	if capacity < 1 || capacity > MaxSharedCapacity {
		return nil, fmt.Errorf("shared connection index: %d not in 1…%d: %w", capacity, MaxSharedCapacity, ErrCapacity)
	}
	n := max(capacity*sharedLoadDen, sharedProbe)
	return &SharedConns{slots: make([]connSlot, n), locks: make([]sharedLock, (n+sharedStripe-1)/sharedStripe)}, nil
}

// MemoryBytes is the index's fixed memory.
func (s *SharedConns) MemoryBytes() int { return len(s.slots)*64 + len(s.locks)*64 }

// Evictions counts live entries Publish replaced because their probe window
// was full.
func (s *SharedConns) Evictions() uint64 { return s.evicted.Load() }

// ReplyHash is the key of the connection a reply from real to client
// belongs to.
func ReplyHash(seed uint64, proto uint8, real, client netip.AddrPort) uint64 {
	return sharedKey(dirHash(seed, proto, real, client, dirShared))
}

// dirShared seeds the shared index's hash apart from the tables' own.
const dirShared = 0x736872

func (s *SharedConns) home(h uint64) int { return int(uint64(uint32(h)) * uint64(len(s.slots)) >> 32) }

func (s *SharedConns) at(home, i int) *connSlot {
	j := home + i
	if j >= len(s.slots) {
		j -= len(s.slots)
	}
	return &s.slots[j]
}

func (s *SharedConns) lock(h uint64) *sharedLock {
	lk := &s.locks[s.home(h)/sharedStripe]
	for spins := 0; !lk.CompareAndSwap(0, 1); spins++ {
		if spins >= sharedSpin {
			runtime.Gosched()
			spins = 0
		}
	}
	return lk
}

// Publish enters (or replaces) the connection of reply hash h until expires.
// When the key's probe window is full of live entries, the one that expires
// first is replaced (counted in Evictions). It reports false only when no
// slot could be taken.
func (s *SharedConns) Publish(h uint64, c SharedConn, expires, now int64) bool {
	lk := s.lock(h)
	defer lk.Store(0)
	home := s.home(h)
	var free, victim *connSlot
	victimExp := int64(math.MaxInt64)
	for i := range sharedProbe {
		sl := s.at(home, i)
		k, exp := sl.key.Load(), sl.exp.Load()
		if k == h {
			free = sl
			break
		}
		if free == nil && (k == 0 || exp <= now) {
			free = sl
		}
		if k != 0 && exp < victimExp {
			victim, victimExp = sl, exp
		}
	}
	if free == nil {
		if victim == nil {
			return false
		}
		free = victim
		if victimExp > now {
			s.evicted.Add(1)
		}
	}
	s.write(free, h, c, expires)
	return true
}

// write fills a slot under the seqlock. The caller holds the stripe lock of
// h; another stripe's writer may want the same slot (probe windows
// overlap), so the sequence counter is taken by compare-and-swap.
func (s *SharedConns) write(sl *connSlot, h uint64, c SharedConn, expires int64) {
	for {
		q := sl.seq.Load()
		if q&1 == 0 && sl.seq.CompareAndSwap(q, q+1) {
			break
		}
		runtime.Gosched()
	}
	va := c.Virtual.Addr().As16()
	w := uint64(c.Dest)<<32 | uint64(c.Virtual.Port())
	if c.Virtual.Addr().Is4() {
		w |= 1 << 16
	}
	sl.key.Store(h)
	sl.exp.Store(expires)
	sl.dest.Store(w)
	sl.va0.Store(binary.LittleEndian.Uint64(va[:8]))
	sl.va1.Store(binary.LittleEndian.Uint64(va[8:]))
	sl.seq.Add(1)
}

// Get returns the live connection of reply hash h. It takes no lock and
// does not allocate.
func (s *SharedConns) Get(h uint64, now int64) (SharedConn, bool) {
	home := s.home(h)
	for i := range sharedProbe {
		sl := s.at(home, i)
		for try := 0; try < connReadTries; try++ {
			q := sl.seq.Load()
			if q&1 != 0 {
				continue // a writer is in the slot
			}
			k := sl.key.Load()
			if k == 0 {
				return SharedConn{}, false
			}
			if k != h {
				break
			}
			exp, w, a0, a1 := sl.exp.Load(), sl.dest.Load(), sl.va0.Load(), sl.va1.Load()
			if sl.seq.Load() != q {
				continue
			}
			if exp <= now {
				break
			}
			var va [16]byte
			binary.LittleEndian.PutUint64(va[:8], a0)
			binary.LittleEndian.PutUint64(va[8:], a1)
			a := netip.AddrFrom16(va)
			if w&(1<<16) != 0 {
				a = a.Unmap()
			}
			return SharedConn{Virtual: netip.AddrPortFrom(a, uint16(w)), Dest: DestID(w >> 32)}, true
		}
	}
	return SharedConn{}, false
}

// Refresh extends the expiry of h's live entry to expires (never shortens
// it) and reports whether there was one.
func (s *SharedConns) Refresh(h uint64, expires, now int64) bool {
	home := s.home(h)
	for i := range sharedProbe {
		sl := s.at(home, i)
		k := sl.key.Load()
		if k == 0 {
			return false
		}
		if k != h {
			continue
		}
		for {
			e := sl.exp.Load()
			if e <= now {
				return false
			}
			if e >= expires || sl.exp.CompareAndSwap(e, expires) {
				return true
			}
		}
	}
	return false
}
