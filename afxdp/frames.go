package afxdp

import (
	"errors"
	"fmt"
)

// Owner is who holds a UMEM frame. DESIGN §2: every frame has exactly one
// owner at any time.
type Owner uint8

// Frame owners. The kernel moves frames from the fill ring to the RX ring
// and from the TX ring to the completion ring without telling us, so the
// tracker records the owner as of our last hand-over: OwnerFill covers "on
// the fill ring, in the driver, or on the RX ring not yet read", OwnerTx
// covers "on the TX ring, in flight, or on the completion ring not yet
// read". CheckFrames cross-checks those with the rings' contents.
const (
	OwnerFree   Owner = iota // on the backend's free stack
	OwnerFill                // given to the kernel for reception
	OwnerWorker              // in a Batch, between Receive and Transmit
	OwnerTx                  // given to the kernel for transmission
	numOwners
)

var ownerNames = [numOwners]string{"free", "fill", "worker", "tx"}

func (o Owner) String() string {
	if o < numOwners {
		return ownerNames[o]
	}
	return fmt.Sprintf("owner(%d)", uint8(o))
}

// ErrOwnership reports a broken frame-ownership invariant: a frame the
// kernel returned that we had not given it, a frame handed back twice, or a
// frame lost.
var ErrOwnership = errors.New("UMEM frame ownership violated")

// frames tracks the owner of every UMEM frame (one byte per frame: 4 KiB
// for the default 4096 frames, touched once per hand-over; cheap enough to
// stay always on) and keeps the free frames on a stack, so that taking a
// free frame is O(1) — asavie/xdp scans a bool per frame on every GetDescs.
type frames struct {
	owner      []Owner
	free       []uint32 // stack of free frame indexes
	violations uint64   // transitions from an unexpected owner
	lastBad    string   // the first violation, for the error message
}

func newFrames(n int) *frames {
	f := &frames{owner: make([]Owner, n), free: make([]uint32, 0, n)}
	for i := n - 1; i >= 0; i-- {
		f.free = append(f.free, uint32(i))
	}
	return f
}

// move hands frame i from owner from to owner to. It reports false (and
// counts a violation) if i is out of range or not held by from; the caller
// must then not use the frame.
func (f *frames) move(i uint64, from, to Owner) bool {
	if i >= uint64(len(f.owner)) || f.owner[i] != from {
		f.violation(i, from, to)
		return false
	}
	f.owner[i] = to
	return true
}

func (f *frames) violation(i uint64, from, to Owner) {
	if f.violations == 0 {
		got := "out of range"
		if i < uint64(len(f.owner)) {
			got = f.owner[i].String()
		}
		f.lastBad = fmt.Sprintf("frame %d: %s→%s but owner is %s", i, from, to, got)
	}
	f.violations++
}

// pop takes a free frame for owner to.
func (f *frames) pop(to Owner) (uint32, bool) {
	n := len(f.free)
	if n == 0 {
		return 0, false
	}
	i := f.free[n-1]
	f.free = f.free[:n-1]
	f.owner[i] = to
	return i, true
}

// push puts frame i, held by from, on the free stack.
func (f *frames) push(i uint64, from Owner) {
	if f.move(i, from, OwnerFree) {
		f.free = append(f.free, uint32(i))
	}
}

// counts returns how many frames each owner holds.
func (f *frames) counts() (c [numOwners]int) {
	for _, o := range f.owner {
		if o < numOwners {
			c[o]++
		}
	}
	return c
}

// check verifies the tracker on its own: no violations recorded, the free
// stack holds exactly the free frames, each once.
func (f *frames) check() error {
	if f.violations > 0 {
		return fmt.Errorf("%w: %d violations, first: %s", ErrOwnership, f.violations, f.lastBad)
	}
	seen := make([]bool, len(f.owner))
	for _, i := range f.free {
		if seen[i] {
			return fmt.Errorf("%w: frame %d twice on the free stack", ErrOwnership, i)
		}
		seen[i] = true
		if f.owner[i] != OwnerFree {
			return fmt.Errorf("%w: frame %d on the free stack but owned by %s", ErrOwnership, i, f.owner[i])
		}
	}
	if c := f.counts(); c[OwnerFree] != len(f.free) {
		return fmt.Errorf("%w: %d free frames, %d on the free stack", ErrOwnership, c[OwnerFree], len(f.free))
	}
	return nil
}
