package pipeline

import (
	"sync/atomic"

	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// Counters are a worker's own counts: every frame has exactly one Reason, so
// the Reasons sum to Frames. Decode counts the decoder's reason for frames
// dropped as malformed or as untracked fragments.
type Counters struct {
	Frames     uint64
	Reasons    [NumReasons]uint64
	Decode     [packet.NumReasons]uint64
	PE         [pe.NumStatus]uint64 // persistence-engine outcomes on inbound packets
	PEFallback uint64               // packets the engine could not key that used normal persistence
	SharedFull uint64               // new keys the shared index had no room for (cross-worker persistence not guaranteed for them)
}

// counterCells publishes Counters for other goroutines: the owner copies its
// batch-local counts here once per batch with atomic stores; readers load.
type counterCells struct {
	frames     atomic.Uint64
	reasons    [NumReasons]atomic.Uint64
	decode     [packet.NumReasons]atomic.Uint64
	pe         [pe.NumStatus]atomic.Uint64
	peFallback atomic.Uint64
	sharedFull atomic.Uint64
}

// publish copies the owner's running totals into the cells. Only the owner
// writes them, so plain stores of its own totals are enough.
func (w *Worker) publish() {
	c, l := &w.published, &w.local
	c.frames.Store(l.Frames)
	for i := range l.Reasons {
		c.reasons[i].Store(l.Reasons[i])
	}
	for i := range l.Decode {
		c.decode[i].Store(l.Decode[i])
	}
	for i := range l.PE {
		c.pe[i].Store(l.PE[i])
	}
	c.peFallback.Store(l.PEFallback)
	c.sharedFull.Store(l.SharedFull)
}

// Counters returns the worker's counts as of its last completed batch. Any
// goroutine may call it.
func (w *Worker) Counters() Counters {
	c := &w.published
	var out Counters
	out.Frames = c.frames.Load()
	for i := range out.Reasons {
		out.Reasons[i] = c.reasons[i].Load()
	}
	for i := range out.Decode {
		out.Decode[i] = c.decode[i].Load()
	}
	for i := range out.PE {
		out.PE[i] = c.pe[i].Load()
	}
	out.PEFallback = c.peFallback.Load()
	out.SharedFull = c.sharedFull.Load()
	return out
}

// Add adds b's counts to c (to total several workers).
func (c *Counters) Add(b *Counters) {
	c.Frames += b.Frames
	for i := range c.Reasons {
		c.Reasons[i] += b.Reasons[i]
	}
	for i := range c.Decode {
		c.Decode[i] += b.Decode[i]
	}
	for i := range c.PE {
		c.PE[i] += b.PE[i]
	}
	c.PEFallback += b.PEFallback
	c.SharedFull += b.SharedFull
}
