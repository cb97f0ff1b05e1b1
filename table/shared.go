package table

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
)

// Shared is a fixed-capacity index from a template key hash to a DestID with
// an expiry, shared by all workers, so that a Call-ID arriving on two RX
// queues reaches one real server. A worker consults it on a local template
// miss, and publishes what it scheduled with InsertIfAbsent.
//
// Keys are 64-bit hashes (TemplateKey.Hash with one process-wide seed).
// Two keys with the same hash share an entry, which only means that two
// calls share a real server: benign.
//
// Get, Replace and Refresh are lock-free (atomic loads and CAS). Inserts of
// keys whose home slots fall in the same stripe of sharedStripe slots are
// serialised by a spin lock held for one probe-window scan (tens of
// nanoseconds, never across a call out), so that two workers inserting the
// same new key always agree on one winner; readers never wait for it.
//
// Memory ordering. A slot is three atomic words: key (the hash, 0 = empty),
// val (DestID<<32 | the high 32 bits of the hash, the "check") and exp
// (expiry, monotonic ns). Go's atomics are sequentially consistent. A slot
// changes owner only when its entry has expired: the inserter CASes key to
// the new hash, raises exp, then CASes val. A reader loads key, then val,
// and accepts val only if key equals its hash and val's check equals the
// hash's high half. If the slot changed owner between the two loads, val
// belongs to a key whose 64-bit hash differs from the reader's but whose
// high 32 bits match: the reader then shares that key's real server — the
// same benign outcome as a hash collision, never an unrelated value. exp is
// advisory: a stale read can only shorten or lengthen a lifetime by one
// owner change.
type Shared struct {
	slots   []sharedSlot
	locks   []sharedLock
	evicted atomic.Uint64 // live entries replaced by InsertIfAbsent (miss path only)
}

type sharedSlot struct {
	key atomic.Uint64
	val atomic.Uint64
	exp atomic.Int64
}

type sharedLock struct {
	atomic.Uint32
	_ [60]byte // one lock per cache line: stripes are taken by different cores
}

const (
	// sharedProbe is the probe window: a key lives in one of the sharedProbe
	// slots from its home, so an operation reads at most two cache lines of
	// slots beyond the first (24-byte slots).
	sharedProbe = 8
	// sharedStripe is the number of home slots per insert lock.
	sharedStripe = 64
	// sharedSpin is how many failed lock attempts an inserter makes before
	// yielding the processor.
	sharedSpin = 64
	// sharedLoadDen is the slot count per capacity entry: at most half full,
	// so an 8-slot window almost never lacks room (≈0.4 % of inserts at full
	// load find none and report false).
	sharedLoadDen = 2
	// MaxSharedCapacity bounds NewShared (24-byte slots, 2 per entry).
	MaxSharedCapacity = 1 << 28
)

// NewShared allocates an index for capacity live keys (48 bytes each).
func NewShared(capacity int) (*Shared, error) {
	if capacity < 1 || capacity > MaxSharedCapacity {
		return nil, fmt.Errorf("shared index: %d not in 1…%d: %w", capacity, MaxSharedCapacity, ErrCapacity)
	}
	n := max(capacity*sharedLoadDen, sharedProbe)
	return &Shared{
		slots: make([]sharedSlot, n),
		locks: make([]sharedLock, (n+sharedStripe-1)/sharedStripe),
	}, nil
}

// MemoryBytes is the index's fixed memory.
func (s *Shared) MemoryBytes() int { return len(s.slots)*24 + len(s.locks)*64 }

func sharedKey(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

func sharedVal(h uint64, d DestID) uint64 { return uint64(d)<<32 | h>>32 }

func (s *Shared) home(h uint64) int { return int(uint64(uint32(h)) * uint64(len(s.slots)) >> 32) }

func (s *Shared) at(home, i int) *sharedSlot {
	j := home + i
	if j >= len(s.slots) {
		j -= len(s.slots)
	}
	return &s.slots[j]
}

// find returns the slot holding a live entry for h, and its value.
func (s *Shared) find(h uint64, now int64) (*sharedSlot, uint64) {
	home := s.home(h)
	for i := range sharedProbe {
		sl := s.at(home, i)
		k := sl.key.Load()
		if k == 0 {
			return nil, 0
		}
		if k != h {
			continue
		}
		v := sl.val.Load()
		if uint32(v) != uint32(h>>32) || sl.exp.Load()&^usedMark <= now {
			continue
		}
		return sl, v
	}
	return nil, 0
}

// Get returns the destination published for hash h, if it has not expired.
func (s *Shared) Get(h uint64, now int64) (DestID, bool) {
	h = sharedKey(h)
	if sl, v := s.find(h, now); sl != nil {
		mark(&sl.exp)
		return DestID(v >> 32), true
	}
	return 0, false
}

// An entry's expiry word carries, in its lowest bit, a "used" mark: set when
// a worker republishes the entry (Refresh) or finds it from another worker
// (Get). One-off keys — a burst of new Call-IDs, each sent once — never get
// it, so when a probe window is full InsertIfAbsent replaces an unmarked
// entry first and keeps live dialogs' entries. One nanosecond of expiry is
// the price.
const usedMark = 1

func mark(a *atomic.Int64) {
	for {
		o := a.Load()
		if o&usedMark != 0 || a.CompareAndSwap(o, o|usedMark) {
			return
		}
	}
}

// InsertIfAbsent publishes dest for h until expires unless a live entry
// exists. It returns the destination every worker will use — dest if this
// call inserted it, else the existing one — and inserted. When the key's
// probe window holds no free or expired slot, the live entry that expires
// first is replaced (Evictions counts it). ok is false only if a concurrent
// change leaves no candidate at all; the caller then keeps its own choice
// (persistence across workers is not guaranteed for that key, and the caller
// should count it).
func (s *Shared) InsertIfAbsent(h uint64, dest DestID, expires, now int64) (winner DestID, inserted, ok bool) {
	h = sharedKey(h)
	home := s.home(h)
	lk := &s.locks[home/sharedStripe]
	for spins := 0; !lk.CompareAndSwap(0, 1); spins++ {
		if spins >= sharedSpin {
			runtime.Gosched()
			spins = 0
		}
	}
	defer lk.Store(0)
	for {
		// Under the stripe lock nobody else inserts h, so one scan decides.
		var free, victim *sharedSlot
		var freeKey, victimKey uint64
		victimExp := int64(math.MaxInt64)
		victimUsed := true
		for i := range sharedProbe {
			sl := s.at(home, i)
			k := sl.key.Load()
			raw := sl.exp.Load()
			exp := raw &^ usedMark
			if k == h {
				v := sl.val.Load()
				if uint32(v) == uint32(h>>32) && exp > now {
					return DestID(v >> 32), false, true
				}
			}
			if free == nil && (k == 0 || exp <= now) {
				free, freeKey = sl, k
			}
			// The eviction candidate: an unused entry before a used one,
			// then the one that expires first.
			if used := raw&usedMark != 0; k != 0 && (victim == nil || (!used && victimUsed) || (used == victimUsed && exp < victimExp)) {
				victim, victimKey, victimExp, victimUsed = sl, k, exp, used
			}
			if k == 0 {
				break
			}
		}
		evict := false
		if free == nil {
			// The probe window is full of live entries: replace the one
			// least likely to be a live dialog (see usedMark), so that
			// under a burst of new Call-IDs new calls keep their
			// cross-worker persistence. A worker that already holds a local
			// template for the evicted key keeps using it.
			if victim == nil {
				return dest, false, false
			}
			free, freeKey, evict = victim, victimKey, true
		}
		// Another stripe's inserter may claim the same slot: CAS decides.
		if !free.key.CompareAndSwap(freeKey, h) {
			continue
		}
		free.exp.Store(expires &^ usedMark)
		free.val.Store(sharedVal(h, dest))
		if evict {
			s.evicted.Add(1)
		}
		return dest, true, true
	}
}

// Evictions counts live entries InsertIfAbsent replaced because their probe
// window was full (a burst of new keys larger than the index).
func (s *Shared) Evictions() uint64 { return s.evicted.Load() }

// Replace swaps the destination for h from old to dest (the caller found
// old invalid, e.g. its real server was removed, and rescheduled). If
// another worker replaced it first, that worker's destination is returned
// and the caller should use it (re-validating it); so concurrent replacers
// converge on the first replacement. Without a live entry Replace behaves
// as InsertIfAbsent.
func (s *Shared) Replace(h uint64, old, dest DestID, expires, now int64) (DestID, bool) {
	h = sharedKey(h)
	for {
		sl, v := s.find(h, now)
		if sl == nil {
			w, _, ok := s.InsertIfAbsent(h, dest, expires, now)
			return w, ok
		}
		if DestID(v>>32) != old {
			return DestID(v >> 32), true
		}
		if sl.val.CompareAndSwap(v, sharedVal(h, dest)) {
			raise(&sl.exp, expires|usedMark)
			mark(&sl.exp)
			return dest, true
		}
	}
}

// Refresh extends h's expiry to expires (never shortens it) and reports
// whether a live entry was found. Intended use: a worker refreshes the
// shared entry when it refreshes its local template and the shared expiry
// it last wrote is older than a quarter of the persistence timeout, so the
// shared line is written about four times per timeout, not per packet.
func (s *Shared) Refresh(h uint64, expires, now int64) bool {
	h = sharedKey(h)
	sl, _ := s.find(h, now)
	if sl == nil {
		return false
	}
	raise(&sl.exp, expires|usedMark)
	mark(&sl.exp)
	return true
}

func raise(a *atomic.Int64, v int64) {
	for {
		o := a.Load()
		if o >= v || a.CompareAndSwap(o, v) {
			return
		}
	}
}
