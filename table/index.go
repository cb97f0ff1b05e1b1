package table

import "unsafe"

// index is an open-addressing hash index from a key hash to an entry number.
// Each slot is one uint32: the top indexTagBits bits are a tag taken from
// the hash (filters 255 of 256 foreign candidates without touching the
// entry) and the low indexRefBits bits are the entry reference plus one
// (0 is an empty slot). Probing is linear, deletion is backward-shift (no
// tombstones, so probe lengths do not decay under churn), and the home slot
// is chosen by a multiply-shift range reduction, so the slot count need not be
// a power of two and the index costs exactly slots×4 bytes.
type index struct {
	slots []uint32
}

const (
	indexTagBits = 8
	indexRefBits = 32 - indexTagBits
	indexRefMask = 1<<indexRefBits - 1
	// maxIndexRefs bounds the references one index can hold: a reference
	// plus one must fit in indexRefBits.
	maxIndexRefs = indexRefMask - 1
	// indexLoadNum/indexLoadDen is the maximum load factor, 3/4: linear
	// probing stays short (≈2.5 slots per hit, ≈8.5 per miss, within one or
	// two cache lines of 16 slots) while an entry costs 5⅓ index bytes.
	indexLoadNum = 3
	indexLoadDen = 4
)

// hashHome is the part of a hash that chooses the home slot; entries store it
// so that deletion can find the home of a neighbouring slot.
func hashHome(h uint64) uint32 { return uint32(h) }

func hashTag(h uint64) uint32 { return uint32(h>>(64-indexTagBits)) << indexRefBits }

func newIndex(refs int) index {
	n := refs*indexLoadDen/indexLoadNum + 1
	return index{slots: make([]uint32, n)}
}

func (x *index) home(h32 uint32) uint32 {
	return uint32(uint64(h32) * uint64(len(x.slots)) >> 32)
}

// prefetch starts loading the home slot of h32.
func (x *index) prefetch(h32 uint32) {
	prefetch(uintptr(unsafe.Pointer(unsafe.SliceData(x.slots))) + uintptr(x.home(h32))*4)
}

func (x *index) next(pos uint32) uint32 {
	pos++
	if pos == uint32(len(x.slots)) {
		pos = 0
	}
	return pos
}

// add stores ref (an entry reference below maxIndexRefs) for hash h. The
// caller guarantees the index is below its load bound, so an empty slot exists.
func (x *index) add(h uint64, ref uint32) {
	pos := x.home(hashHome(h))
	for x.slots[pos] != 0 {
		pos = x.next(pos)
	}
	x.slots[pos] = hashTag(h) | (ref + 1)
}

// homer gives the stored home hash of the entry a slot refers to.
type homer interface {
	refHome(ref uint32) uint32
}

// remove deletes ref, whose home hash is h32, and shifts the following
// cluster back so that every remaining entry stays reachable from its home.
func (x *index) remove(h32 uint32, ref uint32, hm homer) {
	pos := x.home(h32)
	for x.slots[pos]&indexRefMask != ref+1 {
		pos = x.next(pos)
	}
	hole := pos
	for j := x.next(pos); ; j = x.next(j) {
		s := x.slots[j]
		if s == 0 {
			break
		}
		k := x.home(hm.refHome(s&indexRefMask - 1))
		// The entry at j may move into the hole only if its home is not
		// cyclically within (hole, j].
		if hole <= j {
			if hole < k && k <= j {
				continue
			}
		} else if hole < k || k <= j {
			continue
		}
		x.slots[hole] = s
		hole = j
	}
	x.slots[hole] = 0
}

func (x *index) bytes() int { return len(x.slots) * 4 }
