package dataplane

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/packet"
)

// MemQueue is an in-memory Queue for tests: frames pushed with Inject (or
// InjectOn an interface) are received in batches, transmitted frames are
// collected for Sent (and the interface each left by for SentPorts),
// recycled ones are counted. It is safe for one worker plus any number of
// injectors and readers.
type MemQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in       [][]byte // injected frames, each behind Headroom bytes of room
	inPort   []uint8
	sent     [][]byte
	sentPort []uint8
	woken    bool
	closed   bool
	link     packet.LinkType
	rx, tx   atomic.Uint64
	recycled atomic.Uint64
}

var _ Queue = (*MemQueue)(nil)

// NewMemQueue returns an empty in-memory queue for frames of link type lt.
func NewMemQueue(lt packet.LinkType) *MemQueue {
	q := &MemQueue{link: lt}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Inject queues frames for reception on interface 0 (copies them, each
// behind Headroom bytes of room).
func (q *MemQueue) Inject(frames ...[]byte) { q.InjectOn(0, frames...) }

// InjectOn queues frames for reception on interface port (copies them, each
// behind Headroom bytes of room).
func (q *MemQueue) InjectOn(port uint8, frames ...[]byte) {
	q.mu.Lock()
	for _, f := range frames {
		b := make([]byte, Headroom, Headroom+len(f))
		q.in = append(q.in, append(b, f...))
		q.inPort = append(q.inPort, port)
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

var _ Waker = (*MemQueue)(nil)

// Wake implements Waker: a waiting Receive returns.
func (q *MemQueue) Wake() {
	q.mu.Lock()
	q.woken = true
	q.mu.Unlock()
}

// Receive implements Queue.
func (q *MemQueue) Receive(b *Batch, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.in) == 0 && !q.closed {
		if time.Now().After(deadline) || q.woken {
			q.woken = false
			b.N = 0
			return nil
		}
		// sync.Cond has no timed wait: poll in short steps.
		q.mu.Unlock()
		time.Sleep(time.Millisecond)
		q.mu.Lock()
	}
	if q.closed {
		return ErrClosed
	}
	n := min(len(q.in), len(b.Frames))
	for i := range n {
		// Each injected frame's buffer starts with its room.
		b.Room[i] = q.in[i][:Headroom]
		b.Frames[i] = q.in[i][Headroom:]
		b.Port[i] = q.inPort[i]
		b.Send[i] = false
	}
	q.in = q.in[n:]
	q.inPort = q.inPort[n:]
	b.N = n
	b.Link = q.link
	q.rx.Add(uint64(n))
	return nil
}

// Transmit implements Queue.
func (q *MemQueue) Transmit(b *Batch) error {
	q.mu.Lock()
	for i := range b.N {
		if b.Send[i] {
			q.sent = append(q.sent, b.Frames[i])
			q.sentPort = append(q.sentPort, b.Port[i])
			q.tx.Add(1)
		} else {
			q.recycled.Add(1)
		}
		b.Frames[i], b.Room[i] = nil, nil
	}
	b.N = 0
	q.mu.Unlock()
	return nil
}

// Sent returns the frames transmitted so far and forgets them.
func (q *MemQueue) Sent() [][]byte {
	s, _ := q.SentPorts()
	return s
}

// SentPorts returns the frames transmitted so far and the interface each
// left by, and forgets them.
func (q *MemQueue) SentPorts() ([][]byte, []uint8) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, p := q.sent, q.sentPort
	q.sent, q.sentPort = nil, nil
	return s, p
}

// Pending reports how many injected frames are not received yet.
func (q *MemQueue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.in)
}

// Close makes Receive return ErrClosed.
func (q *MemQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Stats implements Queue.
func (q *MemQueue) Stats() QueueStats {
	return QueueStats{RxFrames: q.rx.Load(), TxFrames: q.tx.Load(), Recycled: q.recycled.Load()}
}
