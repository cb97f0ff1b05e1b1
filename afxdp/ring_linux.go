package afxdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one single-producer single-consumer AF_XDP ring shared with the
// kernel. The side we play keeps its own index in a local variable and
// publishes it with an atomic store after writing (producer) or reading
// (consumer) the descriptors; the other side's index is read with an atomic
// load. Go's sync/atomic operations are sequentially consistent, which gives
// the release/acquire ordering the kernel's ring protocol requires
// (asavie/xdp uses plain loads and stores with its fences commented out, so
// the compiler may reorder the descriptor writes after the index store or
// keep the kernel's index in a register).
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	descs    unsafe.Pointer
	mask     uint32
	size     uint32
	// local is our index (producer for fill/TX, consumer for RX and
	// completion); cached is the last value read of the kernel's index
	// (plus size for producer rings, so that cached-local is free space).
	local, cached uint32
	mem           []byte
}

func newRing(mem []byte, off unix.XDPRingOffset, size uint32, producer bool) ring {
	base := unsafe.Pointer(&mem[0])
	r := ring{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, off.Flags)),
		descs:    unsafe.Add(base, off.Desc),
		mask:     size - 1,
		size:     size,
		mem:      mem,
	}
	if producer {
		r.local = atomic.LoadUint32(r.producer)
		r.cached = atomic.LoadUint32(r.consumer) + size
	} else {
		r.local = atomic.LoadUint32(r.consumer)
		r.cached = atomic.LoadUint32(r.producer)
	}
	return r
}

// free returns how many descriptors a producer may write, reading the
// kernel's consumer index only when the cached value says fewer than n.
func (r *ring) free(n uint32) uint32 {
	f := r.cached - r.local
	if f >= n {
		return f
	}
	r.cached = atomic.LoadUint32(r.consumer) + r.size
	return r.cached - r.local
}

// submit publishes the descriptors written so far.
func (r *ring) submit() { atomic.StoreUint32(r.producer, r.local) }

// avail returns how many descriptors (at most n) a consumer may read.
func (r *ring) avail(n uint32) uint32 {
	a := r.cached - r.local
	if a == 0 {
		r.cached = atomic.LoadUint32(r.producer)
		a = r.cached - r.local
	}
	return min(a, n)
}

// release gives the descriptors read so far back to the kernel.
func (r *ring) release() { atomic.StoreUint32(r.consumer, r.local) }

// needWakeup reports whether the kernel asks for a syscall to make progress
// on this ring (XDP_RING_NEED_WAKEUP; only set on sockets bound with
// XDP_USE_NEED_WAKEUP).
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// addr returns the address slot i of a fill or completion ring.
func (r *ring) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Add(r.descs, uintptr(i&r.mask)*8))
}

// desc returns descriptor slot i of an RX or TX ring.
func (r *ring) desc(i uint32) *unix.XDPDesc {
	return (*unix.XDPDesc)(unsafe.Add(r.descs, uintptr(i&r.mask)*unsafe.Sizeof(unix.XDPDesc{})))
}

// outstanding returns the kernel's view: descriptors between consumer and
// producer (for CheckFrames; not for the fast path).
func (r *ring) outstanding() (cons, prod uint32) {
	return atomic.LoadUint32(r.consumer), atomic.LoadUint32(r.producer)
}
