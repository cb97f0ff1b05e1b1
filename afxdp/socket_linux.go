package afxdp

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// Queue is one RX queue index of the backend: an AF_XDP socket on each
// interface that has that RX queue, used by one worker goroutine (the rings
// are single-producer single-consumer). The sockets share one UMEM where the
// kernel allows it (XDP_SHARED_UMEM with another device, each socket with
// its own fill and completion rings: Linux 5.10), so a frame received on one
// interface is transmitted on another from the same memory; a socket the
// kernel refuses to share with (another driver's zero-copy, an old kernel)
// gets a UMEM of its own, and frames crossing to it are copied (counted in
// QueueStats.CrossPortCopies). Stats may be called from any goroutine.
type Queue struct {
	id        int
	socks     []*xsk // by port; nil for an interface without this RX queue
	live      []*xsk // the sockets, in port order
	umems     []*umem
	frameSize uint64
	wakeFD    int // eventfd: Close and Wake interrupt a worker blocked in ppoll
	pfds      []unix.PollFd
	next      int // the socket Receive reads first (round robin)
	// kickAlways makes the queue behave as if the kernel always asked for
	// a wakeup (a socket without XDP_USE_NEED_WAKEUP, as asavie/xdp binds
	// it): for the syscall benchmark only.
	kickAlways bool
	// busyPoll is how long Receive busy-polls the queue's NAPI contexts
	// through its sockets before it sleeps (0: never; see
	// dataplane.Options.BusyPoll); spin is whether it will next time: set
	// by a batch with frames, cleared by a busy poll that found none (an
	// idle queue sleeps at once).
	busyPoll time.Duration
	spin     bool
	// busyPollErr is why the kernel refused busy polling, if it did.
	busyPollErr error
	// lastYield is when Receive last yielded to the Go scheduler, yields
	// how often it has (see schedYield); the worker's alone.
	lastYield time.Time
	yields    uint64

	closed atomic.Bool
	// busy is 1 while the worker is inside Receive or Transmit or holds a
	// batch; Close waits for 0 before unmapping the UMEM.
	busy atomic.Int32

	mu sync.Mutex // Close vs Stats

	rxFrames, txFrames, rxBytes, txBytes atomic.Uint64
	txDropped, recycled, crossCopies     atomic.Uint64
	syscalls                             atomic.Uint64
}

var _ dataplane.Queue = (*Queue)(nil)

// umem is one UMEM area and the owner of each of its frames.
type umem struct {
	mem       []byte
	frameSize uint64
	shift     uint // log2(frameSize)
	frames    *frames
	owner     *xsk // the socket that registered it
}

// xsk is one AF_XDP socket: one interface's RX queue, with its four rings.
type xsk struct {
	fd       int
	port     uint8
	ifindex  int
	u        *umem
	zeroCopy bool

	fill, comp, rx, tx ring
	// busyPoll is set when the socket busy-polls (setBusyPoll), busyPollErr
	// when the kernel refused it.
	busyPoll    time.Duration
	busyPollErr error

	// Per-Transmit scratch: room left on the TX and fill rings (-1: not
	// read yet), and whether descriptors were written.
	txRoom, fillRoom int64
	sent, filled     bool
}

// shareUMEM lets a queue's sockets share its UMEM; tests clear it to run
// the copying fallback.
var shareUMEM = true

// handlePort is the shift of a batch handle's port: a handle is the frame's
// UMEM address with the port of the socket it came from (whose UMEM it is
// in) in the top byte.
const handlePort = 56

// queueConfig sizes a queue.
type queueConfig struct {
	queue     int
	frameSize int
	ringSize  int
	ports     int // sockets the queue will have (the shared UMEM holds frames for all)
	// busyPoll and busyPollBudget turn on busy polling (0: off).
	busyPoll       time.Duration
	busyPollBudget int
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

// newQueue returns a queue without sockets; addSocket adds them and start
// fills the fill rings.
func newQueue(c queueConfig) (*Queue, error) {
	q := &Queue{id: c.queue, wakeFD: -1, frameSize: uint64(c.frameSize)}
	var err error
	if q.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	return q, nil
}

// newUMEM maps n frames of frameSize bytes.
func newUMEM(n, frameSize int) (*umem, error) {
	size := n * frameSize
	// Huge pages cut TLB misses over the UMEM; fall back to normal pages
	// when none are reserved.
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE|unix.MAP_HUGETLB)
	if err != nil {
		mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("allocating UMEM (%d bytes): %w", size, err)
		}
	}
	return &umem{mem: mem, frameSize: uint64(frameSize), shift: uint(bits.TrailingZeros(uint(frameSize))), frames: newFrames(n)}, nil
}

// addSocket creates the socket of interface ifindex (port) for this queue,
// bound with bindFlags (XDP_ZEROCOPY or XDP_COPY): the first registers the
// queue's UMEM; the others share it if the kernel lets them, else get their
// own. c.ports sizes the shared UMEM.
func (q *Queue) addSocket(c queueConfig, port uint8, ifindex int, bindFlags uint16) (err error) {
	var first *xsk
	if len(q.umems) > 0 {
		first = q.umems[0].owner
	}
	if first != nil && shareUMEM {
		s, serr := newXSK(c, port, ifindex, 0, q.umems[0])
		if serr == nil {
			q.attach(s)
			return nil
		}
		if errors.Is(serr, ErrPermission) {
			return serr
		}
		// Not shareable (another driver's zero-copy, a kernel before
		// 5.10): a UMEM of its own, and copies across.
	}
	n := framesPerRing * c.ringSize
	if first == nil {
		n *= max(c.ports, 1)
	}
	u, err := newUMEM(n, c.frameSize)
	if err != nil {
		return err
	}
	s, err := newXSK(c, port, ifindex, bindFlags, u)
	if err != nil {
		unix.Munmap(u.mem)
		return err
	}
	u.owner = s
	q.umems = append(q.umems, u)
	q.attach(s)
	return nil
}

func (q *Queue) attach(s *xsk) {
	if s.busyPoll > 0 {
		q.busyPoll = s.busyPoll
	}
	if s.busyPollErr != nil && q.busyPollErr == nil {
		q.busyPollErr = s.busyPollErr
	}
	for len(q.socks) <= int(s.port) {
		q.socks = append(q.socks, nil)
	}
	q.socks[s.port] = s
	q.live = q.live[:0]
	q.pfds = q.pfds[:0]
	for _, x := range q.socks {
		if x != nil {
			q.live = append(q.live, x)
			q.pfds = append(q.pfds, unix.PollFd{Fd: int32(x.fd), Events: unix.POLLIN})
		}
	}
	q.pfds = append(q.pfds, unix.PollFd{Fd: int32(q.wakeFD), Events: unix.POLLIN})
}

// start pre-populates every socket's fill ring.
func (q *Queue) start() {
	for _, s := range q.live {
		q.refill(s)
	}
}

// newXSK creates, sizes and binds an AF_XDP socket on u. With bindFlags 0
// it shares u, registered by u.owner, with XDP_SHARED_UMEM (its own fill
// and completion rings); else it registers u itself.
func newXSK(c queueConfig, port uint8, ifindex int, bindFlags uint16, u *umem) (_ *xsk, err error) {
	s := &xsk{fd: -1, port: port, ifindex: ifindex, u: u}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if s.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, sockErr("creating AF_XDP socket", err)
	}
	shared := bindFlags == 0
	if !shared {
		reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&u.mem[0]))), Len: uint64(len(u.mem)), Size: uint32(u.frameSize)}
		if err := setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
			return nil, sockErr("registering UMEM", err)
		}
	}
	for _, o := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, o, c.ringSize); err != nil {
			return nil, sockErr("sizing rings", err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, sockErr("reading ring offsets", err)
	}
	rs := uint32(c.ringSize)
	mapRing := func(pgoff int64, o unix.XDPRingOffset, descSize uintptr, producer bool) (ring, error) {
		mem, err := unix.Mmap(s.fd, pgoff, int(o.Desc+uint64(rs)*uint64(descSize)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return ring{}, fmt.Errorf("mapping ring: %w", err)
		}
		return newRing(mem, o, rs, producer), nil
	}
	if s.fill, err = mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8, true); err != nil {
		return nil, err
	}
	if s.comp, err = mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8, false); err != nil {
		return nil, err
	}
	if s.rx, err = mapRing(unix.XDP_PGOFF_RX_RING, off.Rx, unsafe.Sizeof(unix.XDPDesc{}), false); err != nil {
		return nil, err
	}
	if s.tx, err = mapRing(unix.XDP_PGOFF_TX_RING, off.Tx, unsafe.Sizeof(unix.XDPDesc{}), true); err != nil {
		return nil, err
	}
	sa := unix.SockaddrXDP{Flags: bindFlags | unix.XDP_USE_NEED_WAKEUP, Ifindex: uint32(ifindex), QueueID: uint32(c.queue)}
	if shared {
		// A shared socket takes its mode (copy or zero-copy, need_wakeup)
		// from the UMEM's owner and may set no flag of its own.
		sa = unix.SockaddrXDP{Flags: unix.XDP_SHARED_UMEM, Ifindex: uint32(ifindex), QueueID: uint32(c.queue), SharedUmemFD: uint32(u.owner.fd)}
	}
	if err := unix.Bind(s.fd, &sa); err != nil {
		return nil, sockErr(fmt.Sprintf("binding AF_XDP socket to queue %d of interface %d", c.queue, ifindex), err)
	}
	// Copy-mode transmission sends at most 32 frames per sendto unless
	// the budget is raised (XDP_MAX_TX_SKB_BUDGET, Linux 6.17); a batch
	// is up to dataplane.MaxBatch frames. Older kernels keep 32 and we
	// kick again.
	_ = unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, dataplane.MaxBatch)
	var opts uint32 // struct xdp_options { __u32 flags; }
	if getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)) == nil {
		s.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	if c.busyPoll > 0 {
		if err := setBusyPoll(s.fd, c.busyPoll, c.busyPollBudget); err != nil {
			s.busyPollErr = err
		} else {
			s.busyPoll = c.busyPoll
		}
	}
	return s, nil
}

// setSockoptInt is unix.SetsockoptInt; tests replace it to play a kernel
// that refuses an option.
var setSockoptInt = unix.SetsockoptInt

// setBusyPoll lets the socket's system calls poll its queue's NAPI context
// (SO_BUSY_POLL, in microseconds, at least 1) and asks the kernel to
// prefer that polling over interrupts and softirqs (SO_PREFER_BUSY_POLL),
// up to budget frames per poll (SO_BUSY_POLL_BUDGET). Kernels before 5.11
// or without CONFIG_NET_RX_BUSY_POLL refuse (ENOPROTOOPT), and so does one
// without CAP_NET_ADMIN (EPERM): setBusyPoll then turns polling off again
// and returns why.
func setBusyPoll(fd int, d time.Duration, budget int) error {
	opts := []struct {
		name    string
		opt, on int
	}{
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1},
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, max(int(d/time.Microsecond), 1)},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, budget},
	}
	for _, o := range opts {
		if err := setSockoptInt(fd, unix.SOL_SOCKET, o.opt, o.on); err != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL, 0)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, 0)
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	return nil
}

func (s *xsk) release() {
	for _, r := range []*ring{&s.fill, &s.comp, &s.rx, &s.tx} {
		if r.mem != nil {
			unix.Munmap(r.mem)
			*r = ring{}
		}
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
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

// refill moves free frames of s's UMEM to its fill ring.
func (q *Queue) refill(s *xsk) {
	f := s.u.frames
	n := min(s.fill.free(uint32(len(f.free))), uint32(len(f.free)))
	if n == 0 {
		return
	}
	for range n {
		i, _ := f.pop(OwnerFill)
		*s.fill.addr(s.fill.local) = uint64(i) << s.u.shift
		s.fill.local++
	}
	s.fill.submit()
	if s.fill.needWakeup() {
		// A zero-copy driver ran out of fill buffers and stopped; poke it.
		q.syscalls.Add(1)
		unix.Recvfrom(s.fd, nil, unix.MSG_DONTWAIT)
	}
}

// reap takes transmitted frames off s's completion ring and puts them
// straight on its fill ring (or the free stack when the fill ring is full).
func (q *Queue) reap(s *xsk) {
	n := s.comp.avail(s.comp.size)
	if n == 0 {
		return
	}
	f := s.u.frames
	room := s.fill.free(n)
	for range n {
		addr := *s.comp.addr(s.comp.local)
		s.comp.local++
		i := addr >> s.u.shift
		if room > 0 && f.move(i, OwnerTx, OwnerFill) {
			*s.fill.addr(s.fill.local) = i << s.u.shift
			s.fill.local++
			room--
			continue
		}
		f.push(i, OwnerTx)
	}
	s.comp.release()
	s.fill.submit()
}

// kick asks the kernel to transmit what is on s's TX ring, if it wants to
// be asked. Copy mode transmits in the syscall, a limited number of frames
// per call, so kick repeats while the kernel reports EAGAIN and frames are
// left, up to maxKicks calls.
func (q *Queue) kick(s *xsk) {
	const maxKicks = 4
	for range maxKicks {
		if !q.kickAlways && !s.tx.needWakeup() {
			return
		}
		q.syscalls.Add(1)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			if cons, _ := s.tx.outstanding(); cons != s.tx.local {
				continue
			}
		}
		return
	}
}

// Receive implements dataplane.Queue: it recycles completions, refills the
// fill rings, and returns up to len(b.Frames) received frames from every
// interface (taking turns to read first), waiting up to timeout (in ppoll,
// together with the eventfd Close and Wake use) only when every RX ring is
// empty. The frames are views into the UMEM, valid until Transmit.
func (q *Queue) Receive(b *dataplane.Batch, timeout time.Duration) error {
	b.N = 0
	if now := time.Now(); now.Sub(q.lastYield) >= schedYield {
		q.lastYield = now
		q.yields++
		runtime.Gosched()
	}
	q.busy.Store(1)
	if q.closed.Load() {
		q.busy.Store(0)
		return dataplane.ErrClosed
	}
	for _, s := range q.live {
		q.reap(s)
		q.refill(s)
	}
	q.rxAll(b)
	if b.N == 0 && q.spin {
		q.busyPollRx(b)
		q.spin = b.N > 0
	}
	if b.N == 0 {
		for _, s := range q.live {
			if cons, _ := s.tx.outstanding(); cons != s.tx.local {
				q.kick(s)
			}
		}
		if timeout > 0 {
			q.wait(timeout)
			if q.closed.Load() {
				q.busy.Store(0)
				return dataplane.ErrClosed
			}
			for _, s := range q.live {
				q.reap(s)
				q.refill(s)
			}
			q.rxAll(b)
		}
	}
	b.Link = packet.LinkEthernet
	if b.N > 0 && q.busyPoll > 0 {
		q.spin = true
	}
	if b.N == 0 {
		q.busy.Store(0)
	}
	return nil
}

// schedYield is how often Receive yields to the Go scheduler: under half of
// the runtime's forcePreemptNS (10 ms). A worker loop of Receive and Transmit
// never blocks in the scheduler — it waits in ppoll and sends in sendto — so
// without a yield the runtime's sysmon finds the same goroutine running for
// 10 ms and preempts it: a signal, and, when the worker is in a system call,
// its P taken and handed off (for a worker locked to its thread, as xvs's
// are, a hand-over to another thread and back); each such retake also resets
// sysmon to its fastest cadence (20 µs sleeps), so sysmon wakes thousands of
// times a second. Measured in the lab at 40 000 datagrams/s: the Go floor
// (perf.GoFloor) 400 context switches per 1000 datagrams without the yield,
// 290 with it (the C floor's), 0.8 µs less CPU per datagram; xvs 6.08 →
// 5.11 µs (docs/performance.md, "The floor of AF_XDP forwarding"). A yield
// of a locked worker costs a hand-over too, so not more often than this.
const schedYield = 5 * time.Millisecond

// busyPollRx polls the queue's NAPI contexts through its busy-polling
// sockets until an RX ring has frames (read into b) or q.busyPoll has
// passed. With busy polling on, a non-blocking sendto or recvfrom runs one
// NAPI poll of up to the budget in the caller's context before it returns:
// sendto when frames wait on the socket's TX ring (it transmits them too),
// recvfrom otherwise. The clock is read once per round, not per frame.
func (q *Queue) busyPollRx(b *dataplane.Batch) {
	deadline := time.Now().Add(q.busyPoll)
	for {
		for _, s := range q.live {
			if s.busyPoll == 0 {
				continue
			}
			if cons, _ := s.tx.outstanding(); cons != s.tx.local {
				q.kick(s)
				continue
			}
			q.syscalls.Add(1)
			unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		}
		if q.rxAll(b); b.N > 0 || time.Now().After(deadline) {
			return
		}
	}
}

// rxAll reads the RX rings into b.
func (q *Queue) rxAll(b *dataplane.Batch) {
	var bytes uint64
	n := len(q.live)
	for j := range n {
		s := q.live[(q.next+j)%n]
		room := uint32(len(b.Frames) - b.N)
		if room == 0 {
			break
		}
		k := s.rx.avail(room)
		f := s.u.frames
		for range k {
			d := *s.rx.desc(s.rx.local)
			s.rx.local++
			i := d.Addr >> s.u.shift
			end := (i + 1) << s.u.shift
			if d.Addr+uint64(d.Len) > end || !f.move(i, OwnerFill, OwnerWorker) {
				continue // counted as a violation; the frame is not ours to use
			}
			// The chunk's bytes before the data (XDP_PACKET_HEADROOM and
			// the UMEM headroom) are the frame's room.
			b.Room[b.N] = s.u.mem[i<<s.u.shift : d.Addr : end]
			b.Frames[b.N] = s.u.mem[d.Addr : d.Addr+uint64(d.Len) : end]
			b.Handles[b.N] = d.Addr | uint64(s.port)<<handlePort
			b.Port[b.N] = s.port
			b.Send[b.N] = false
			bytes += uint64(d.Len)
			b.N++
		}
		if k > 0 {
			s.rx.release()
		}
	}
	if n > 0 {
		q.next = (q.next + 1) % n
	}
	if b.N > 0 {
		q.rxFrames.Add(uint64(b.N))
		q.rxBytes.Add(bytes)
	}
}

func (q *Queue) wait(timeout time.Duration) {
	for i := range q.pfds {
		q.pfds[i].Revents = 0
	}
	ts := unix.NsecToTimespec(int64(timeout))
	q.syscalls.Add(1)
	unix.Ppoll(q.pfds, &ts, nil)
	if q.pfds[len(q.pfds)-1].Revents&unix.POLLIN != 0 && !q.closed.Load() {
		var v [8]byte
		unix.Read(q.wakeFD, v[:]) // a Wake: reset it
	}
}

var _ dataplane.Waker = (*Queue)(nil)

// Wake implements dataplane.Waker. It does nothing once the queue is
// closed (its eventfd is closed with it).
func (q *Queue) Wake() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.wakeFD < 0 || q.closed.Load() {
		return
	}
	var one = [8]byte{1}
	unix.Write(q.wakeFD, one[:])
}

// Transmit implements dataplane.Queue: frames marked Send go on the TX ring
// of their Port's socket — as the same UMEM frames with their current
// length (zero copy) when that socket shares the UMEM they arrived in, else
// copied into a frame of its own UMEM (counted in CrossPortCopies); the
// others go back on the fill ring of the socket they came from. One sendto
// per socket and batch at most, and only when the kernel sets need_wakeup
// on the TX ring.
func (q *Queue) Transmit(b *dataplane.Batch) error {
	if b.N == 0 {
		q.busy.Store(0)
		return nil
	}
	for _, s := range q.live {
		s.txRoom, s.fillRoom, s.sent, s.filled = -1, -1, false, false
	}
	var sent, dropped, recycled, copies, bytes uint64
	for k := range b.N {
		h := b.Handles[k]
		src := q.sock(uint8(h >> handlePort))
		f := b.Frames[k]
		b.Frames[k], b.Room[k] = nil, nil
		if src == nil {
			continue // not a handle of ours: nothing to give back
		}
		u := src.u
		i := (h &^ (0xff << handlePort)) >> u.shift
		l := uint64(len(f))
		if b.Send[k] {
			dst := q.sock(b.Port[k])
			// The frame leaves from wherever it starts now (a worker may
			// have grown it into its room): an address in the same chunk,
			// which an aligned UMEM accepts anywhere in the chunk
			// (xp_aligned_validate_desc).
			addr := u.offset(f)
			switch {
			case dst == nil || l == 0 || addr>>u.shift != i || addr+l > (i+1)<<u.shift:
				dropped++
			case dst.u == u:
				if dst.txFree() > 0 && u.frames.move(i, OwnerWorker, OwnerTx) {
					dst.putTx(addr, l)
					sent++
					bytes += l
					continue
				}
				dropped++
			default:
				// Another UMEM: copy into one of its frames, and give
				// this one back below.
				if j, ok := dst.u.frames.pop(OwnerTx); ok {
					if dst.txFree() > 0 {
						a := uint64(j) << dst.u.shift
						copy(dst.u.mem[a:a+l], f)
						dst.putTx(a, l)
						sent++
						copies++
						bytes += l
						q.giveBack(src, i)
						continue
					}
					dst.u.frames.push(uint64(j), OwnerTx)
				}
				dropped++
			}
		} else {
			recycled++
		}
		q.giveBack(src, i)
	}
	b.N = 0
	for _, s := range q.live {
		if s.filled {
			s.fill.submit()
		}
		if s.sent {
			s.tx.submit()
			q.kick(s)
		}
		q.reap(s)
	}
	q.txFrames.Add(sent)
	q.txBytes.Add(bytes)
	q.txDropped.Add(dropped)
	q.recycled.Add(recycled)
	q.crossCopies.Add(copies)
	q.busy.Store(0)
	return nil
}

// offset returns where f starts in u's memory, or an offset beyond it when
// f is not in it.
func (u *umem) offset(f []byte) uint64 {
	if len(f) == 0 || len(u.mem) == 0 {
		return ^uint64(0)
	}
	off := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(f))) - uintptr(unsafe.Pointer(unsafe.SliceData(u.mem))))
	if off >= uint64(len(u.mem)) {
		return ^uint64(0)
	}
	return off
}

// sock returns the socket of port, or nil.
func (q *Queue) sock(port uint8) *xsk {
	if int(port) < len(q.socks) {
		return q.socks[port]
	}
	return nil
}

func (s *xsk) txFree() int64 {
	if s.txRoom < 0 {
		s.txRoom = int64(s.tx.free(dataplane.MaxBatch))
	}
	return s.txRoom
}

func (s *xsk) putTx(addr, l uint64) {
	*s.tx.desc(s.tx.local) = unix.XDPDesc{Addr: addr, Len: uint32(l)}
	s.tx.local++
	s.txRoom--
	s.sent = true
}

// giveBack returns a frame the worker held to the fill ring of the socket
// it came from, or to the free stack when that ring is full.
func (q *Queue) giveBack(s *xsk, i uint64) {
	if s.fillRoom < 0 {
		s.fillRoom = int64(s.fill.free(dataplane.MaxBatch))
	}
	if s.fillRoom > 0 && s.u.frames.move(i, OwnerWorker, OwnerFill) {
		*s.fill.addr(s.fill.local) = i << s.u.shift
		s.fill.local++
		s.fillRoom--
		s.filled = true
		return
	}
	s.u.frames.push(i, OwnerWorker)
}

var _ dataplane.CopyTransmitter = (*Queue)(nil)

// TransmitCopies implements dataplane.CopyTransmitter: each frame (a copy
// the worker owns, such as a held fragment) is copied into a UMEM frame
// taken from the free stack of port's socket (free → tx in the ownership
// tracker; it comes back through the completion ring like any transmitted
// frame) and put on its TX ring, in order, with the same need_wakeup kick
// as Transmit. A frame that finds no free UMEM frame or no room on the TX
// ring, is empty, or is larger than a UMEM frame is counted in TxDropped, as
// are frames for a port the queue has no socket on. The slices are only
// read during the call. It returns how many frames it queued.
func (q *Queue) TransmitCopies(port uint8, frames [][]byte) (int, error) {
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
	s := q.sock(port)
	if s == nil {
		q.txDropped.Add(uint64(len(frames)))
		return 0, nil
	}
	q.reap(s) // completions first: they refill the free stack
	room := s.tx.free(uint32(len(frames)))
	var sent, bytes uint64
	for _, f := range frames {
		if room == 0 {
			break // a full TX ring: the rest are dropped
		}
		l := uint64(len(f))
		if l == 0 || l > s.u.frameSize {
			continue
		}
		i, ok := s.u.frames.pop(OwnerTx)
		if !ok {
			break // no free frame: the rest are dropped too
		}
		addr := uint64(i) << s.u.shift
		copy(s.u.mem[addr:addr+l], f)
		*s.tx.desc(s.tx.local) = unix.XDPDesc{Addr: addr, Len: uint32(l)}
		s.tx.local++
		room--
		sent++
		bytes += l
	}
	if sent > 0 {
		s.tx.submit()
		q.kick(s)
	}
	q.txFrames.Add(sent)
	q.txBytes.Add(bytes)
	q.txDropped.Add(uint64(len(frames)) - sent)
	return int(sent), nil
}

// Stats implements dataplane.Queue; the ring statistics come from the
// kernel (XDP_STATISTICS of every socket).
func (q *Queue) Stats() dataplane.QueueStats {
	s := dataplane.QueueStats{
		RxFrames: q.rxFrames.Load(), TxFrames: q.txFrames.Load(),
		RxBytes: q.rxBytes.Load(), TxBytes: q.txBytes.Load(),
		TxDropped: q.txDropped.Load(), Recycled: q.recycled.Load(),
		CrossPortCopies: q.crossCopies.Load(),
		Syscalls:        q.syscalls.Load(),
	}
	if q.busyPollErr != nil {
		s.BusyPollRefused = 1
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, x := range q.live {
		if x.fd < 0 {
			continue
		}
		var ks unix.XDPStatistics
		if getsockopt(x.fd, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks)) == nil {
			s.RxDropped += ks.Rx_dropped
			s.RxInvalidDescs += ks.Rx_invalid_descs
			s.RxRingFull += ks.Rx_ring_full
			s.FillRingEmpty += ks.Rx_fill_ring_empty_descs
			s.TxRingEmpty += ks.Tx_ring_empty_descs
			s.TxInvalidDescs += ks.Tx_invalid_descs
		}
	}
	return s
}

// Syscalls returns how many system calls the queue has made on its data
// path (ppoll, sendto, recvfrom wakeups).
func (q *Queue) Syscalls() uint64 { return q.syscalls.Load() }

// BusyPoll reports how long the queue busy-polls (0: it does not) and, when
// busy polling was asked for and the kernel refused it, why.
func (q *Queue) BusyPoll() (time.Duration, error) { return q.busyPoll, q.busyPollErr }

// ID returns the RX queue index the sockets are bound to.
func (q *Queue) ID() int { return q.id }

// ZeroCopy reports whether every socket of the queue runs in zero-copy
// mode.
func (q *Queue) ZeroCopy() bool {
	for _, s := range q.live {
		if !s.zeroCopy {
			return false
		}
	}
	return len(q.live) > 0
}

// SharedUMEM reports whether every socket of the queue shares one UMEM, so
// that frames cross interfaces without a copy.
func (q *Queue) SharedUMEM() bool { return len(q.umems) == 1 }

// CheckFrames verifies the frame-ownership invariant (DESIGN §2) of every
// UMEM of the queue: every frame has exactly one owner, no frame was handed
// back twice or by the wrong party, the addresses on the fill and RX rings
// of the sockets using a UMEM are distinct frames we gave the kernel for
// reception, and those on their TX and completion rings distinct frames we
// gave it for transmission — across interfaces. With quiescent set (no
// traffic, worker idle, copy mode) it also requires that no frame is in
// flight inside the kernel, i.e. nothing is lost. Call it on the worker's
// goroutine or while no worker runs.
func (q *Queue) CheckFrames(quiescent bool) error {
	if q.closed.Load() {
		return dataplane.ErrClosed
	}
	for _, u := range q.umems {
		if err := q.checkUMEM(u, quiescent); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) checkUMEM(u *umem, quiescent bool) error {
	f := u.frames
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
			i := addr >> u.shift
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
	var nf, nr, nt, nc int
	for _, s := range q.live {
		if s.u != u {
			continue
		}
		for _, r := range []struct {
			name   string
			r      *ring
			isDesc bool
			want   Owner
			n      *int
		}{{"fill", &s.fill, false, OwnerFill, &nf}, {"rx", &s.rx, true, OwnerFill, &nr},
			{"tx", &s.tx, true, OwnerTx, &nt}, {"completion", &s.comp, false, OwnerTx, &nc}} {
			n, err := scan(fmt.Sprintf("port %d %s", s.port, r.name), r.r, r.isDesc, r.want)
			if err != nil {
				return err
			}
			*r.n += n
		}
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
		return fmt.Errorf("%w: frames missing: owners %v, fill rings %d, rx rings %d, tx rings %d, completion rings %d", ErrOwnership, c, nf, nr, nt, nc)
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

// release frees the sockets, rings and UMEMs.
func (q *Queue) release() { q.releaseUMEM(true) }

func (q *Queue) releaseUMEM(unmapUMEM bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.live {
		s.release()
	}
	if q.wakeFD >= 0 {
		unix.Close(q.wakeFD)
		q.wakeFD = -1
	}
	if unmapUMEM {
		for _, u := range q.umems {
			if u.mem != nil {
				unix.Munmap(u.mem)
				u.mem = nil
			}
		}
	}
}
