package table

// prefetch asks the CPU to bring the cache line holding addr into all cache
// levels (PREFETCHT0) without waiting for it. It never faults, so addr need
// not be valid; it is a uintptr so that nothing escapes.
//
//go:noescape
func prefetch(addr uintptr)

// prefetch2 is prefetch of two addresses in one call (an entry's two cache
// lines, or an index probe's two).
//
//go:noescape
func prefetch2(a, b uintptr)
