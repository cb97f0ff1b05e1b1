package afxdp

import (
	"errors"
	"testing"
)

func TestFramesOwnership(t *testing.T) {
	f := newFrames(8)
	var fill []uint32
	for range 8 {
		i, ok := f.pop(OwnerFill)
		if !ok {
			t.Fatal("free stack empty too early")
		}
		fill = append(fill, i)
	}
	if _, ok := f.pop(OwnerFill); ok {
		t.Fatal("popped a ninth frame from eight")
	}
	// The kernel hands frame 3 to us (RX), the worker sends it, the kernel
	// completes it, we free it.
	if !f.move(uint64(fill[3]), OwnerFill, OwnerWorker) || !f.move(uint64(fill[3]), OwnerWorker, OwnerTx) {
		t.Fatal("legal moves refused")
	}
	f.push(uint64(fill[3]), OwnerTx)
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	if c := f.counts(); c[OwnerFree] != 1 || c[OwnerFill] != 7 {
		t.Fatalf("counts %v", c)
	}
	// asavie/xdp issue #24: the same address comes back twice (or a frame
	// we still hold is handed out again). The second hand-over is refused
	// and reported.
	if !f.move(uint64(fill[5]), OwnerFill, OwnerWorker) {
		t.Fatal("legal move refused")
	}
	if f.move(uint64(fill[5]), OwnerFill, OwnerWorker) {
		t.Fatal("duplicate RX descriptor accepted")
	}
	if f.move(100, OwnerFill, OwnerWorker) {
		t.Fatal("out-of-range address accepted")
	}
	if err := f.check(); !errors.Is(err, ErrOwnership) {
		t.Fatalf("check after duplicates: %v", err)
	}
}

func TestFramesCheckFindsFreeStackDuplicates(t *testing.T) {
	f := newFrames(4)
	f.free = append(f.free, f.free[0])
	if err := f.check(); !errors.Is(err, ErrOwnership) {
		t.Fatalf("duplicate on the free stack not found: %v", err)
	}
}

// BenchmarkFreeFrame compares taking a free frame from our stack with
// asavie/xdp's GetDescs, which scans a bool per frame from the start on
// every call: with 4096 frames mostly in use, its cost grows with the UMEM.
func BenchmarkFreeFrame(b *testing.B) {
	const n = 4096
	b.Run("stack", func(b *testing.B) {
		f := newFrames(n)
		for range n - 64 {
			f.pop(OwnerFill)
		}
		for b.Loop() {
			i, _ := f.pop(OwnerWorker)
			f.push(uint64(i), OwnerWorker)
		}
	})
	b.Run("asavie-linear-scan", func(b *testing.B) {
		// asavie/xdp v0.3.3 GetDescs(1), reproduced: freeDescs[i] is true
		// for the 64 free frames at the end of the UMEM.
		free := make([]bool, n)
		for i := n - 64; i < n; i++ {
			free[i] = true
		}
		for b.Loop() {
			for i := range free {
				if free[i] {
					sinkInt = i
					break
				}
			}
		}
	})
}

var sinkInt int
