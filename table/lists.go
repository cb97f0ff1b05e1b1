package table

// Segments of the replacement policy. Every entry slot is on exactly one list.
const (
	segFree uint8 = iota
	segProbation
	segProtected
	numSegs
)

// link holds list neighbours as entry number plus one (0 = none).
type link struct{ prev, next uint32 }

// lists keeps the free list and the two LRU segments (probation,
// protected) as intrusive doubly linked lists over entry numbers, in arrays
// beside the entries (8+1 bytes per entry), so that unlinking an entry from
// the middle (expiry, invalidation) is O(1).
type lists struct {
	links []link
	seg   []uint8
	head  [numSegs]uint32
	tail  [numSegs]uint32
	n     [numSegs]int
}

func newLists(n int) lists {
	l := lists{links: make([]link, n), seg: make([]uint8, n)}
	for i := n - 1; i >= 0; i-- {
		l.pushFront(uint32(i), segFree)
	}
	return l
}

func (l *lists) pushFront(i uint32, s uint8) {
	h := l.head[s]
	l.links[i] = link{prev: 0, next: h}
	if h != 0 {
		l.links[h-1].prev = i + 1
	} else {
		l.tail[s] = i + 1
	}
	l.head[s] = i + 1
	l.seg[i] = s
	l.n[s]++
}

func (l *lists) unlink(i uint32) {
	s := l.seg[i]
	lk := l.links[i]
	if lk.prev != 0 {
		l.links[lk.prev-1].next = lk.next
	} else {
		l.head[s] = lk.next
	}
	if lk.next != 0 {
		l.links[lk.next-1].prev = lk.prev
	} else {
		l.tail[s] = lk.prev
	}
	l.n[s]--
}

// move puts entry i at the front (most recently used end) of segment s.
func (l *lists) move(i uint32, s uint8) {
	l.unlink(i)
	l.pushFront(i, s)
}

// back returns the least recently used entry of segment s.
func (l *lists) back(s uint8) (uint32, bool) {
	t := l.tail[s]
	return t - 1, t != 0
}

func (l *lists) bytes() int { return len(l.links)*8 + len(l.seg) }

// victims is what the replacement policy needs to know about a table's
// entries. It is implemented by *Templates and *Conns; calls through it happen
// only when a full table must make room, never on a lookup hit.
type victims interface {
	// expired reports whether live entry i has expired at now and may be
	// reclaimed; an expired entry that is still held is re-armed instead.
	expired(i uint32, now int64) bool
	// used reports and clears entry i's "used since it was last
	// considered" mark; held entries always count as used.
	used(i uint32) bool
	// idle is how long entry i has not been used, in nanoseconds.
	idle(i uint32, now int64) int64
	drop(i uint32, reason RemoveReason)
}

// makeRoom frees one entry slot under the segmented-LRU policy, or reports
// false when every remaining entry is protected and recently used:
//
//  1. an expired entry at the LRU end of either segment is reclaimed;
//  2. the probation segment is scanned from its LRU end: an entry used since
//     it entered probation is promoted to the protected segment (lazy
//     promotion: a hit only sets a mark, the list move happens here), the
//     first unused one is evicted;
//  3. only when probation is empty, the protected segment gets a second
//     chance scan: used entries move to the front, the first unused one is
//     evicted if it has been idle for at least minIdle, else nothing is.
//
// Each promotion or second chance is paid for by one earlier use, so the work
// is amortised O(1) per operation.
func (l *lists) makeRoom(v victims, now, minIdle int64) bool {
	for _, s := range [...]uint8{segProbation, segProtected} {
		if i, ok := l.back(s); ok && v.expired(i, now) {
			v.drop(i, RemoveExpired)
			return true
		}
	}
	for {
		i, ok := l.back(segProbation)
		if !ok {
			break
		}
		if v.used(i) {
			l.move(i, segProtected)
			continue
		}
		v.drop(i, RemoveEvictedProbation)
		return true
	}
	for range l.n[segProtected] {
		i, _ := l.back(segProtected)
		if v.used(i) {
			l.move(i, segProtected)
			continue
		}
		if v.idle(i, now) >= minIdle {
			v.drop(i, RemoveEvictedProtected)
			return true
		}
		return false
	}
	return false
}
