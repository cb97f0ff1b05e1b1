package nexthop

import "sync/atomic"

// requestRing is a bounded lock-free queue of resolution requests: many
// producers (workers), one consumer (the control goroutine). It is Dmitry
// Vyukov's bounded queue: each cell carries a sequence number that says
// whether it is free for the producer at a position or full for the
// consumer; a producer claims a position by compare-and-swap, writes the
// request, then publishes it by storing the sequence (the atomic store and
// load order the request's plain write and read).
type requestRing struct {
	cells   []reqCell
	mask    uint64
	head    atomic.Uint64 // next position to fill
	tail    atomic.Uint64 // next position to read (consumer only)
	dropped atomic.Uint64
}

type reqCell struct {
	seq atomic.Uint64
	req Request
}

func (r *requestRing) init(n int) {
	r.cells = make([]reqCell, n)
	r.mask = uint64(n - 1)
	r.head.Store(0)
	r.tail.Store(0)
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
	}
}

// push queues q; false (counted) when the ring is full.
func (r *requestRing) push(q Request) bool {
	pos := r.head.Load()
	for {
		c := &r.cells[pos&r.mask]
		switch d := int64(c.seq.Load() - pos); {
		case d == 0:
			if r.head.CompareAndSwap(pos, pos+1) {
				c.req = q
				c.seq.Store(pos + 1)
				return true
			}
			pos = r.head.Load()
		case d < 0:
			r.dropped.Add(1)
			return false
		default:
			pos = r.head.Load()
		}
	}
}

// pop takes the oldest request.
func (r *requestRing) pop() (Request, bool) {
	pos := r.tail.Load()
	c := &r.cells[pos&r.mask]
	if int64(c.seq.Load()-(pos+1)) < 0 {
		return Request{}, false
	}
	q := c.req
	c.req = Request{}
	c.seq.Store(pos + r.mask + 1)
	r.tail.Store(pos + 1)
	return q, true
}
