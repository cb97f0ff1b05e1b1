package afxdp

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// Queue is one RX queue's AF_XDP socket with its own UMEM and four rings,
// used by one worker goroutine (the rings are single-producer
// single-consumer). Stats may be called from any goroutine.
type Queue struct {
	id        int
	fd        int
	wakeFD    int // eventfd: Close wakes a worker blocked in ppoll
	umem      []byte
	frameSize uint64
	shift     uint // log2(frameSize)
	zeroCopy  bool
	// kickAlways makes the queue behave as if the kernel always asked for
	// a wakeup (a socket without XDP_USE_NEED_WAKEUP, as asavie/xdp binds
	// it): for the syscall benchmark only.
	kickAlways bool

	fill, comp, rx, tx ring
	frames             *frames

	closed atomic.Bool
	// busy is 1 while the worker is inside Receive or Transmit or holds a
	// batch; Close waits for 0 before unmapping the UMEM.
	busy atomic.Int32

	mu sync.Mutex // Close vs Stats

	rxFrames, txFrames, rxBytes, txBytes atomic.Uint64
	txDropped, recycled                  atomic.Uint64
	syscalls                             atomic.Uint64
}

var _ dataplane.Queue = (*Queue)(nil)

// socketConfig sizes a queue's socket.
type socketConfig struct {
	ifindex   int
	queue     int
	frames    int // UMEM frames
	frameSize int
	ringSize  int // descriptors per ring
	bindFlags uint16
}

func sockErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: %w (%w)", what, ErrPermission, err)
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%s: %w (%w)", what, ErrNotSupported, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// newQueue creates, sizes and binds an AF_XDP socket and pre-populates its
// fill ring.
func newQueue(c socketConfig) (_ *Queue, err error) {
	q := &Queue{id: c.queue, fd: -1, wakeFD: -1, frameSize: uint64(c.frameSize), shift: uint(bits.TrailingZeros(uint(c.frameSize)))}
	defer func() {
		if err != nil {
			q.release()
		}
	}()
	if q.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, sockErr("creating AF_XDP socket", err)
	}
	if q.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	size := c.frames * c.frameSize
	// Huge pages cut TLB misses over the UMEM; fall back to normal pages
	// when none are reserved.
	q.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE|unix.MAP_HUGETLB)
	if err != nil {
		q.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("allocating UMEM (%d bytes): %w", size, err)
		}
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&q.umem[0]))), Len: uint64(size), Size: uint32(c.frameSize)}
	if err := setsockopt(q.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, sockErr("registering UMEM", err)
	}
	for _, o := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(q.fd, unix.SOL_XDP, o, c.ringSize); err != nil {
			return nil, sockErr("sizing rings", err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(q.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, sockErr("reading ring offsets", err)
	}
	rs := uint32(c.ringSize)
	mapRing := func(pgoff int64, o unix.XDPRingOffset, descSize uintptr, producer bool) (ring, error) {
		mem, err := unix.Mmap(q.fd, pgoff, int(o.Desc+uint64(rs)*uint64(descSize)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return ring{}, fmt.Errorf("mapping ring: %w", err)
		}
		return newRing(mem, o, rs, producer), nil
	}
	if q.fill, err = mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8, true); err != nil {
		return nil, err
	}
	if q.comp, err = mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8, false); err != nil {
		return nil, err
	}
	if q.rx, err = mapRing(unix.XDP_PGOFF_RX_RING, off.Rx, unsafe.Sizeof(unix.XDPDesc{}), false); err != nil {
		return nil, err
	}
	if q.tx, err = mapRing(unix.XDP_PGOFF_TX_RING, off.Tx, unsafe.Sizeof(unix.XDPDesc{}), true); err != nil {
		return nil, err
	}
	sa := unix.SockaddrXDP{Flags: c.bindFlags | unix.XDP_USE_NEED_WAKEUP, Ifindex: uint32(c.ifindex), QueueID: uint32(c.queue)}
	if err := unix.Bind(q.fd, &sa); err != nil {
		return nil, sockErr(fmt.Sprintf("binding AF_XDP socket to queue %d", c.queue), err)
	}
	// Copy-mode transmission sends at most 32 frames per sendto unless
	// the budget is raised (XDP_MAX_TX_SKB_BUDGET, Linux 6.17); a batch
	// is up to dataplane.MaxBatch frames. Older kernels keep 32 and we
	// kick again.
	_ = unix.SetsockoptInt(q.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, dataplane.MaxBatch)
	var opts uint32 // struct xdp_options { __u32 flags; }
	if getsockopt(q.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)) == nil {
		q.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	q.frames = newFrames(c.frames)
	q.refill()
	return q, nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	l := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// refill moves free frames to the fill ring.
func (q *Queue) refill() {
	n := min(q.fill.free(uint32(len(q.frames.free))), uint32(len(q.frames.free)))
	if n == 0 {
		return
	}
	for range n {
		i, _ := q.frames.pop(OwnerFill)
		*q.fill.addr(q.fill.local) = uint64(i) << q.shift
		q.fill.local++
	}
	q.fill.submit()
	if q.fill.needWakeup() {
		// A zero-copy driver ran out of fill buffers and stopped; poke it.
		q.syscalls.Add(1)
		unix.Recvfrom(q.fd, nil, unix.MSG_DONTWAIT)
	}
}

// reap takes transmitted frames off the completion ring and puts them
// straight on the fill ring (or the free stack when the fill ring is full).
func (q *Queue) reap() {
	n := q.comp.avail(q.comp.size)
	if n == 0 {
		return
	}
	room := q.fill.free(n)
	for range n {
		addr := *q.comp.addr(q.comp.local)
		q.comp.local++
		i := addr >> q.shift
		if room > 0 && q.frames.move(i, OwnerTx, OwnerFill) {
			*q.fill.addr(q.fill.local) = i << q.shift
			q.fill.local++
			room--
			continue
		}
		q.frames.push(i, OwnerTx)
	}
	q.comp.release()
	q.fill.submit()
}

// kick asks the kernel to transmit what is on the TX ring, if it wants to
// be asked. Copy mode transmits in the syscall, a limited number of frames
// per call, so kick repeats while the kernel reports EAGAIN and frames are
// left, up to maxKicks calls.
func (q *Queue) kick() {
	const maxKicks = 4
	for range maxKicks {
		if !q.kickAlways && !q.tx.needWakeup() {
			return
		}
		q.syscalls.Add(1)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			if cons, _ := q.tx.outstanding(); cons != q.tx.local {
				continue
			}
		}
		return
	}
}

// Receive implements dataplane.Queue: it recycles completions, refills the
// fill ring, and returns up to len(b.Frames) received frames, waiting up to
// timeout (in ppoll, together with Close's eventfd) only when the RX ring is
// empty. The frames are views into the UMEM, valid until Transmit.
func (q *Queue) Receive(b *dataplane.Batch, timeout time.Duration) error {
	b.N = 0
	q.busy.Store(1)
	if q.closed.Load() {
		q.busy.Store(0)
		return dataplane.ErrClosed
	}
	q.reap()
	q.refill()
	n := q.rx.avail(uint32(len(b.Frames)))
	if n == 0 {
		if cons, _ := q.tx.outstanding(); cons != q.tx.local {
			q.kick()
		}
		if timeout > 0 {
			q.wait(timeout)
			if q.closed.Load() {
				q.busy.Store(0)
				return dataplane.ErrClosed
			}
			q.reap()
			q.refill()
			n = q.rx.avail(uint32(len(b.Frames)))
		}
	}
	var bytes uint64
	got := 0
	for range n {
		d := *q.rx.desc(q.rx.local)
		q.rx.local++
		i := d.Addr >> q.shift
		end := (i + 1) << q.shift
		if d.Addr+uint64(d.Len) > end || !q.frames.move(i, OwnerFill, OwnerWorker) {
			continue // counted as a violation; the frame is not ours to use
		}
		// The chunk's bytes before the data (XDP_PACKET_HEADROOM and the
		// UMEM headroom) are the frame's room.
		b.Room[got] = q.umem[i<<q.shift : d.Addr : end]
		b.Frames[got] = q.umem[d.Addr : d.Addr+uint64(d.Len) : end]
		b.Handles[got] = d.Addr
		b.Send[got] = false
		bytes += uint64(d.Len)
		got++
	}
	if n > 0 {
		q.rx.release()
	}
	b.N = got
	b.Link = packet.LinkEthernet
	if got == 0 {
		q.busy.Store(0)
		return nil
	}
	q.rxFrames.Add(uint64(got))
	q.rxBytes.Add(bytes)
	return nil
}

func (q *Queue) wait(timeout time.Duration) {
	fds := [2]unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}, {Fd: int32(q.wakeFD), Events: unix.POLLIN}}
	ts := unix.NsecToTimespec(int64(timeout))
	q.syscalls.Add(1)
	unix.Ppoll(fds[:], &ts, nil)
}

// Transmit implements dataplane.Queue: frames marked Send go on the TX ring
// as the same UMEM frames with their current length (zero copy); the others
// go back on the fill ring. One sendto per batch at most, and only when the
// kernel sets need_wakeup on the TX ring.
func (q *Queue) Transmit(b *dataplane.Batch) error {
	if b.N == 0 {
		q.busy.Store(0)
		return nil
	}
	room := q.tx.free(uint32(b.N))
	fillRoom := q.fill.free(uint32(b.N))
	var sent, dropped, recycled, bytes uint64
	for k := range b.N {
		i := b.Handles[k] >> q.shift
		f := b.Frames[k]
		b.Frames[k], b.Room[k] = nil, nil
		end := (i + 1) << q.shift
		l := uint64(len(f))
		// The frame leaves from wherever it starts now (a worker may have
		// grown it into its room): an address in the same chunk, which an
		// aligned UMEM accepts anywhere in the chunk (xp_aligned_validate_desc).
		addr := q.offset(f)
		if b.Send[k] && room > 0 && l > 0 && addr>>q.shift == i && addr+l <= end && q.frames.move(i, OwnerWorker, OwnerTx) {
			*q.tx.desc(q.tx.local) = unix.XDPDesc{Addr: addr, Len: uint32(l)}
			q.tx.local++
			room--
			sent++
			bytes += l
			continue
		}
		if b.Send[k] {
			dropped++
		} else {
			recycled++
		}
		if fillRoom > 0 && q.frames.move(i, OwnerWorker, OwnerFill) {
			*q.fill.addr(q.fill.local) = i << q.shift
			q.fill.local++
			fillRoom--
			continue
		}
		q.frames.push(i, OwnerWorker)
	}
	b.N = 0
	if recycled+dropped > 0 {
		q.fill.submit()
	}
	if sent > 0 {
		q.tx.submit()
		q.kick()
	}
	q.reap()
	q.txFrames.Add(sent)
	q.txBytes.Add(bytes)
	q.txDropped.Add(dropped)
	q.recycled.Add(recycled)
	q.busy.Store(0)
	return nil
}

// offset returns where f starts in the UMEM, or an offset beyond it when f
// is not in the UMEM.
func (q *Queue) offset(f []byte) uint64 {
	if len(f) == 0 || len(q.umem) == 0 {
		return ^uint64(0)
	}
	off := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(f))) - uintptr(unsafe.Pointer(unsafe.SliceData(q.umem))))
	if off >= uint64(len(q.umem)) {
		return ^uint64(0)
	}
	return off
}

var _ dataplane.CopyTransmitter = (*Queue)(nil)

// TransmitCopies implements dataplane.CopyTransmitter: each frame (a copy
// the worker owns, such as a held fragment) is copied into a UMEM frame
// taken from the free stack (free → tx in the ownership tracker; it comes
// back through the completion ring like any transmitted frame) and put on
// the TX ring, in order, with the same need_wakeup kick as Transmit. A
// frame that finds no free UMEM frame or no room on the TX ring, is empty,
// or is larger than a UMEM frame is counted in TxDropped. The slices are
// only read during the call. It returns how many frames it queued.
func (q *Queue) TransmitCopies(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	// busy keeps Close from unmapping the UMEM under the copies; a caller
	// may also hold a batch (busy already 1), which stays held.
	prev := q.busy.Swap(1)
	defer q.busy.Store(prev)
	if q.closed.Load() {
		return 0, dataplane.ErrClosed
	}
	q.reap() // completions first: they refill the free stack
	room := q.tx.free(uint32(len(frames)))
	var sent, bytes uint64
	for _, f := range frames {
		if room == 0 {
			break // a full TX ring: the rest are dropped
		}
		l := uint64(len(f))
		if l == 0 || l > q.frameSize {
			continue
		}
		i, ok := q.frames.pop(OwnerTx)
		if !ok {
			break // no free frame: the rest are dropped too
		}
		addr := uint64(i) << q.shift
		copy(q.umem[addr:addr+l], f)
		*q.tx.desc(q.tx.local) = unix.XDPDesc{Addr: addr, Len: uint32(l)}
		q.tx.local++
		room--
		sent++
		bytes += l
	}
	if sent > 0 {
		q.tx.submit()
		q.kick()
	}
	q.txFrames.Add(sent)
	q.txBytes.Add(bytes)
	q.txDropped.Add(uint64(len(frames)) - sent)
	return int(sent), nil
}

// Stats implements dataplane.Queue; the ring statistics come from the
// kernel (XDP_STATISTICS).
func (q *Queue) Stats() dataplane.QueueStats {
	s := dataplane.QueueStats{
		RxFrames: q.rxFrames.Load(), TxFrames: q.txFrames.Load(),
		RxBytes: q.rxBytes.Load(), TxBytes: q.txBytes.Load(),
		TxDropped: q.txDropped.Load(), Recycled: q.recycled.Load(),
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fd >= 0 {
		var ks unix.XDPStatistics
		if getsockopt(q.fd, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks)) == nil {
			s.RxDropped = ks.Rx_dropped + ks.Rx_invalid_descs
			s.RxRingFull = ks.Rx_ring_full
			s.FillRingEmpty = ks.Rx_fill_ring_empty_descs
			s.TxRingEmpty = ks.Tx_ring_empty_descs
			s.TxDropped += ks.Tx_invalid_descs
		}
	}
	return s
}

// Syscalls returns how many system calls the queue has made on its data
// path (ppoll, sendto, recvfrom wakeups).
func (q *Queue) Syscalls() uint64 { return q.syscalls.Load() }

// ID returns the RX queue index the socket is bound to.
func (q *Queue) ID() int { return q.id }

// ZeroCopy reports whether the socket runs in zero-copy mode.
func (q *Queue) ZeroCopy() bool { return q.zeroCopy }

// CheckFrames verifies the frame-ownership invariant (DESIGN §2): every
// UMEM frame has exactly one owner, no frame was handed back twice or by the
// wrong party, the addresses on the fill and RX rings are distinct frames we
// gave the kernel for reception, and those on the TX and completion rings
// distinct frames we gave it for transmission. With quiescent set (no
// traffic, worker idle, copy mode) it also requires that no frame is in
// flight inside the kernel, i.e. nothing is lost. Call it on the worker's
// goroutine or while no worker runs.
func (q *Queue) CheckFrames(quiescent bool) error {
	if q.closed.Load() {
		return dataplane.ErrClosed
	}
	f := q.frames
	if err := f.check(); err != nil {
		return err
	}
	seen := map[uint64]bool{}
	scan := func(name string, r *ring, isDesc bool, want Owner) (int, error) {
		cons, prod := r.outstanding()
		for j := cons; j != prod; j++ {
			var addr uint64
			if isDesc {
				addr = r.desc(j).Addr
			} else {
				addr = *r.addr(j)
			}
			i := addr >> q.shift
			if i >= uint64(len(f.owner)) || f.owner[i] != want {
				return 0, fmt.Errorf("%w: %s ring holds frame %d owned by %v", ErrOwnership, name, i, f.owner[min(i, uint64(len(f.owner)-1))])
			}
			if seen[i] {
				return 0, fmt.Errorf("%w: frame %d twice on the rings", ErrOwnership, i)
			}
			seen[i] = true
		}
		return int(prod - cons), nil
	}
	nf, err := scan("fill", &q.fill, false, OwnerFill)
	if err != nil {
		return err
	}
	nr, err := scan("rx", &q.rx, true, OwnerFill)
	if err != nil {
		return err
	}
	nt, err := scan("tx", &q.tx, true, OwnerTx)
	if err != nil {
		return err
	}
	nc, err := scan("completion", &q.comp, false, OwnerTx)
	if err != nil {
		return err
	}
	c := f.counts()
	total := 0
	for _, n := range c {
		total += n
	}
	if total != len(f.owner) {
		return fmt.Errorf("%w: %d frames accounted for, UMEM has %d", ErrOwnership, total, len(f.owner))
	}
	if c[OwnerFill] < nf+nr || c[OwnerTx] < nt+nc {
		return fmt.Errorf("%w: rings hold more frames than were given to the kernel (fill %d+%d of %d, tx %d+%d of %d)", ErrOwnership, nf, nr, c[OwnerFill], nt, nc, c[OwnerTx])
	}
	if quiescent && (c[OwnerWorker] != 0 || c[OwnerFill] != nf+nr || c[OwnerTx] != nt+nc) {
		return fmt.Errorf("%w: frames missing: owners %v, fill ring %d, rx ring %d, tx ring %d, completion ring %d", ErrOwnership, c, nf, nr, nt, nc)
	}
	return nil
}

// close makes Receive return ErrClosed, wakes a worker waiting in ppoll,
// and waits (up to closeWait) for the worker to give its batch back. It
// reports whether the UMEM may be unmapped.
func (q *Queue) close() bool {
	q.closed.Store(true)
	if q.wakeFD >= 0 {
		var one = [8]byte{1}
		unix.Write(q.wakeFD, one[:])
	}
	deadline := time.Now().Add(closeWait)
	for q.busy.Load() != 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

// closeWait bounds how long Close waits for a worker to return its batch: a
// worker processes a batch in microseconds, so a second means it is stuck;
// its UMEM then stays mapped (leaked) rather than unmapped under it.
const closeWait = time.Second

// release frees the socket, rings and (if unmapUMEM) the UMEM.
func (q *Queue) release() { q.releaseUMEM(true) }

func (q *Queue) releaseUMEM(unmapUMEM bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range []*ring{&q.fill, &q.comp, &q.rx, &q.tx} {
		if r.mem != nil {
			unix.Munmap(r.mem)
			*r = ring{}
		}
	}
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
	if q.wakeFD >= 0 {
		unix.Close(q.wakeFD)
		q.wakeFD = -1
	}
	if q.umem != nil && unmapUMEM {
		unix.Munmap(q.umem)
		q.umem = nil
	}
}
