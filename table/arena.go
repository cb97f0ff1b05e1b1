package table

import "encoding/binary"

// The arena stores the tails of long template keys (the bytes beyond the
// entry's inline part) in
// size-class slots carved from a fixed byte budget, like a slab allocator:
// the budget is cut into arenaPage pages; a page serves one size class at a
// time and returns to the free pool as soon as its last slot is freed, so a
// shift in the Call-ID length distribution re-balances the classes.
const (
	// arenaGrain is the size-class step: classes are 16, 32, …, 240 bytes,
	// so rounding wastes 7.5 bytes per tail on average.
	arenaGrain = 16
	// arenaMaxKey is the largest stored tail: two IPv6 addresses (32 bytes)
	// and the largest pe data (MaxPEData = 255 bytes) less the inline part,
	// rounded up to a grain.
	arenaMaxKey  = (2*16 + MaxPEData - inlineKey + arenaGrain - 1) / arenaGrain * arenaGrain
	arenaClasses = arenaMaxKey / arenaGrain
	// arenaPage is the unit a class takes from or gives back to the pool.
	// 4 KiB holds 17 of the largest slots (16 bytes lost at the page end) and
	// 256 of the smallest, so a slot number fits in a uint16.
	arenaPage = 4096
	// maxArenaBytes keeps byte offsets in a uint32.
	maxArenaBytes = 1<<32 - arenaPage
)

type arenaPageMeta struct {
	prev, next uint32 // partial-page or free-page list, page number + 1
	class      uint8
	free       uint16 // free slots in this page
	head       uint16 // first freed slot + 1 (0 = none); the chain lives in the slots
	carved     uint16 // slots handed out at least once; the rest are untouched
}

type arena struct {
	mem       []byte
	pages     []arenaPageMeta
	partial   [arenaClasses]uint32 // pages of a class with a free slot
	freePages uint32
	used      int // bytes in allocated slots
}

func newArena(budget int) arena {
	np := budget / arenaPage
	a := arena{mem: make([]byte, np*arenaPage), pages: make([]arenaPageMeta, np)}
	for p := np - 1; p >= 0; p-- {
		a.pages[p].next = a.freePages
		a.freePages = uint32(p) + 1
	}
	return a
}

func arenaClass(n int) int { return (n+arenaGrain-1)/arenaGrain - 1 }

func classSize(c int) int { return (c + 1) * arenaGrain }

// alloc returns the offset of a slot of at least n bytes (1 ≤ n ≤ arenaMaxKey).
func (a *arena) alloc(n int) (uint32, bool) {
	c := arenaClass(n)
	size := classSize(c)
	p := a.partial[c]
	if p == 0 {
		if a.freePages == 0 {
			return 0, false
		}
		p = a.freePages
		pm := &a.pages[p-1]
		a.freePages = pm.next
		*pm = arenaPageMeta{class: uint8(c), free: uint16(arenaPage / size)}
		a.linkPartial(p, c)
	}
	pm := &a.pages[p-1]
	base := uint32(p-1) * arenaPage
	var slot uint16
	if pm.head != 0 {
		slot = pm.head - 1
		off := base + uint32(slot)*uint32(size)
		pm.head = binary.LittleEndian.Uint16(a.mem[off:])
	} else {
		slot = pm.carved
		pm.carved++
	}
	pm.free--
	if pm.free == 0 {
		a.unlinkPartial(p, c)
	}
	a.used += size
	return base + uint32(slot)*uint32(size), true
}

// free returns the slot at off that was allocated for n bytes.
func (a *arena) free(off uint32, n int) {
	c := arenaClass(n)
	size := classSize(c)
	p := off/arenaPage + 1
	pm := &a.pages[p-1]
	slot := uint16((off % arenaPage) / uint32(size))
	binary.LittleEndian.PutUint16(a.mem[off:], pm.head)
	pm.head = slot + 1
	pm.free++
	a.used -= size
	switch pm.free {
	case 1:
		a.linkPartial(p, c)
	case uint16(arenaPage / size):
		a.unlinkPartial(p, c)
		pm.next = a.freePages
		a.freePages = p
	}
}

func (a *arena) linkPartial(p uint32, c int) {
	pm := &a.pages[p-1]
	pm.prev, pm.next = 0, a.partial[c]
	if pm.next != 0 {
		a.pages[pm.next-1].prev = p
	}
	a.partial[c] = p
}

func (a *arena) unlinkPartial(p uint32, c int) {
	pm := &a.pages[p-1]
	if pm.prev != 0 {
		a.pages[pm.prev-1].next = pm.next
	} else {
		a.partial[c] = pm.next
	}
	if pm.next != 0 {
		a.pages[pm.next-1].prev = pm.prev
	}
	pm.prev, pm.next = 0, 0
}

func (a *arena) bytes() int { return len(a.mem) + len(a.pages)*16 }
