package rawsock

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// Limits and defaults.
const (
	// MaxQueues bounds Options.Queues: one socket and one worker each, and
	// a fanout group takes at most this many members usefully here.
	MaxQueues = 64
	// DefaultFrameSize is the smallest receive buffer per frame: an
	// Ethernet frame of a 1500-byte MTU with two VLAN tags fits with room
	// to spare. Larger MTUs get MTU+header room.
	DefaultFrameSize = 2048
	// MaxFrameSize bounds Options.FrameSize (a 9000-byte jumbo frame fits).
	MaxFrameSize = 1 << 14
	// RecvBufferBytes is each socket's receive buffer: about 2 ms of a
	// saturated 10 Gb/s link, so a worker's scheduling hiccup does not drop.
	RecvBufferBytes = 4 << 20
	// ethHeaderRoom is added to the MTU for the frame buffer: Ethernet
	// header and two VLAN tags.
	ethHeaderRoom = 14 + 8
)

// Errors.
var (
	// ErrPermission reports missing privileges (CAP_NET_RAW, and
	// CAP_NET_ADMIN for the large receive buffer).
	ErrPermission = errors.New("raw sockets need CAP_NET_RAW (run xvs as root)")
	// ErrNoInterface reports an unknown interface.
	ErrNoInterface = errors.New("no such network interface")
)

func init() {
	dataplane.Register("raw", func(o dataplane.Options) (dataplane.Backend, error) { return Open(o) })
}

var fanoutSeq atomic.Uint32

// Backend is the raw-socket backend: on each interface, one AF_PACKET socket
// per queue, the sockets of one interface sharing its traffic through a
// hash fanout group; queue i holds socket i of every interface.
type Backend struct {
	ifaces []string
	queues []*queue

	mu     sync.Mutex // Update, Stats' kernel reads and Close
	closed bool
	coarse bool
}

var _ dataplane.Backend = (*Backend)(nil)

// Open opens the raw-socket backend on o's interfaces with o.Queues sockets
// each (default 1). It receives nothing until the first Update.
func Open(o dataplane.Options) (*Backend, error) {
	names := o.Interfaces()
	if len(names) == 0 {
		return nil, fmt.Errorf("rawsock: no interface given")
	}
	if len(names) > dataplane.MaxIfaces {
		return nil, fmt.Errorf("rawsock: %d interfaces: at most %d", len(names), dataplane.MaxIfaces)
	}
	n := o.Queues
	if n <= 0 {
		n = 1
	}
	if n > MaxQueues {
		return nil, fmt.Errorf("rawsock: %d queues: at most %d", n, MaxQueues)
	}
	var ifis []*net.Interface
	size := o.FrameSize
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("rawsock: %q: %w", name, ErrNoInterface)
		}
		ifis = append(ifis, ifi)
		if o.FrameSize == 0 {
			size = max(size, DefaultFrameSize, ifi.MTU+ethHeaderRoom)
		}
	}
	if size < 64 || size > MaxFrameSize {
		return nil, fmt.Errorf("rawsock: frame size %d: must be 64..%d", size, MaxFrameSize)
	}
	b := &Backend{ifaces: names}
	// A fanout group is per interface; its id is per network namespace:
	// make ours unlikely to meet another process's.
	groups := make([]uint16, len(ifis))
	for i := range groups {
		groups[i] = uint16(os.Getpid()) ^ uint16(bits.RotateLeft32(fanoutSeq.Add(1), 11))
	}
	for range n {
		q, err := openQueue(ifis, size, n > 1, groups)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.queues = append(b.queues, q)
	}
	return b, nil
}

// Mode implements dataplane.Backend: "raw".
func (b *Backend) Mode() dataplane.Mode { return dataplane.Mode{Backend: "raw"} }

// Queues implements dataplane.Backend.
func (b *Backend) Queues() []dataplane.Queue {
	qs := make([]dataplane.Queue, len(b.queues))
	for i, q := range b.queues {
		qs[i] = q
	}
	return qs
}

// Coarse reports whether the last Update's exact filter exceeded the
// kernel's limits, so that every IP frame is delivered to the workers.
func (b *Backend) Coarse() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.coarse
}

// Check implements dataplane.Backend. The socket filter has no hard limit:
// a filter past the kernel's instruction limit falls back to delivering
// every IP frame (see Coarse), so only a filter that cannot be compiled at
// all is refused. Every interface gets the same filter.
func (b *Backend) Check(f dataplane.Filter) error {
	if _, err := compileFilter(f); err != nil && !errors.Is(err, errFilterTooLong) {
		return fmt.Errorf("rawsock: filter: %w", err)
	}
	return nil
}

// Update implements dataplane.Backend: it compiles f into a socket filter
// and attaches it to every socket of every interface (the kernel swaps
// filters atomically).
func (b *Backend) Update(f dataplane.Filter) error {
	prog, err := compileFilter(f)
	coarse := false
	if errors.Is(err, errFilterTooLong) {
		prog, coarse = coarseFilter(), true
	} else if err != nil {
		return fmt.Errorf("rawsock: filter: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return dataplane.ErrClosed
	}
	for _, q := range b.queues {
		for i, fd := range q.fds {
			if err := attach(fd, prog); err != nil {
				return fmt.Errorf("rawsock: %s: %w", b.ifaces[i], err)
			}
		}
	}
	b.coarse = coarse
	return nil
}

// Close implements dataplane.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, q := range b.queues {
		q.closed.Store(true)
		one := [8]byte{1}
		_, _ = unix.Write(q.efd, one[:]) // wakes a Receive in poll
	}
	for _, q := range b.queues {
		q.mu.Lock() // waits for the worker to leave Receive/Transmit
		q.statsMu.Lock()
		for i, fd := range q.fds {
			unix.Close(fd)
			q.fds[i] = -1
		}
		unix.Close(q.efd)
		q.efd = -1
		q.statsMu.Unlock()
		q.mu.Unlock()
	}
	return nil
}

// queue is one AF_PACKET socket per interface with frame buffers and
// message vectors, set up once; Receive fills Batch frames by recvmmsg
// straight into the buffers (one copy, by the kernel) and Transmit sends
// them by sendmmsg on the socket of the interface each leaves by.
type queue struct {
	mu sync.Mutex // held by Receive and Transmit; Close takes it to close the fds
	// statsMu keeps the fds open while Stats reads the kernel's counters.
	statsMu sync.Mutex
	fds     []int // by port
	efd     int   // eventfd: Close and Wake interrupt a poll with it
	closed  atomic.Bool
	size    int
	next    int // the socket Receive reads first (round robin)

	bufs  [dataplane.MaxBatch][]byte
	rxHdr [dataplane.MaxBatch]unix.Mmsghdr
	rxIov [dataplane.MaxBatch]unix.Iovec
	txHdr [dataplane.MaxBatch]unix.Mmsghdr
	txIov [dataplane.MaxBatch]unix.Iovec
	pfd   []unix.PollFd // the sockets, then the eventfd

	rx, tx, rxBytes, txBytes, txDropped, recycled, rxTrunc atomic.Uint64
	kernelDrops                                            atomic.Uint64
}

func openQueue(ifis []*net.Interface, size int, fanout bool, groups []uint16) (_ *queue, err error) {
	q := &queue{efd: -1, size: size}
	defer func() {
		if err != nil {
			for _, fd := range q.fds {
				unix.Close(fd)
			}
			if q.efd >= 0 {
				unix.Close(q.efd)
			}
		}
	}()
	for i, ifi := range ifis {
		fd, err := openSocket(ifi, fanout, groups[i])
		if err != nil {
			return nil, err
		}
		q.fds = append(q.fds, fd)
	}
	q.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("rawsock: eventfd: %w", err)
	}
	for _, fd := range q.fds {
		q.pfd = append(q.pfd, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	q.pfd = append(q.pfd, unix.PollFd{Fd: int32(q.efd), Events: unix.POLLIN})
	for i := range q.bufs {
		// Each buffer starts with the frame's room (dataplane.Batch.Room);
		// frames are received after it.
		q.bufs[i] = make([]byte, dataplane.Headroom+size)
		q.rxIov[i].Base = &q.bufs[i][dataplane.Headroom]
		q.rxIov[i].SetLen(size)
		q.rxHdr[i].Hdr.Iov = &q.rxIov[i]
		q.rxHdr[i].Hdr.SetIovlen(1)
		q.txHdr[i].Hdr.Iov = &q.txIov[i]
		q.txHdr[i].Hdr.SetIovlen(1)
	}
	return q, nil
}

// openSocket opens one interface's AF_PACKET socket, filtered to nothing
// until Update.
func openSocket(ifi *net.Interface, fanout bool, group uint16) (_ int, err error) {
	// Protocol 0: the socket receives nothing until bind, by which time the
	// drop-all filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return -1, fmt.Errorf("rawsock: AF_PACKET socket on %s: %w", ifi.Name, ErrPermission)
		}
		return -1, fmt.Errorf("rawsock: AF_PACKET socket on %s: %w", ifi.Name, err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	drop, _ := compileFilter(dataplane.Filter{})
	if err := attach(fd, drop); err != nil {
		return -1, fmt.Errorf("rawsock: %s: %w", ifi.Name, err)
	}
	// Our own transmissions must not come back to us (in direct routing
	// they still match the VIP).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return -1, fmt.Errorf("rawsock: PACKET_IGNORE_OUTGOING (Linux 4.20 or later): %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, RecvBufferBytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, RecvBufferBytes)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return -1, fmt.Errorf("rawsock: bind %s: %w", ifi.Name, ErrNoInterface)
		}
		return -1, fmt.Errorf("rawsock: bind %s: %w", ifi.Name, err)
	}
	if fanout {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(group)|unix.PACKET_FANOUT_HASH<<16); err != nil {
			return -1, fmt.Errorf("rawsock: PACKET_FANOUT on %s: %w", ifi.Name, err)
		}
	}
	return fd, nil
}

func attach(fd int, prog []bpf.RawInstruction) error {
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("attach socket filter (%d instructions): %w", len(prog), err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

var _ dataplane.Waker = (*queue)(nil)

// Wake implements dataplane.Waker. It does nothing once the queue is
// closed (its eventfd is closed with it).
func (q *queue) Wake() {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if q.efd < 0 || q.closed.Load() {
		return
	}
	one := [8]byte{1}
	_, _ = unix.Write(q.efd, one[:])
}

// Receive implements dataplane.Queue: a recvmmsg per interface with frames
// waiting (up to MaxBatch frames in all, the interfaces taking turns to be
// read first), else a poll of every interface bounded by timeout first.
func (q *queue) Receive(b *dataplane.Batch, timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	b.N = 0
	b.Link = packet.LinkEthernet
	if q.closed.Load() {
		return dataplane.ErrClosed
	}
	k, err := q.recvAll(b)
	if err != nil || k > 0 {
		return err
	}
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
	for i := range q.pfd {
		q.pfd[i].Revents = 0
	}
	if _, err := unix.Poll(q.pfd, ms); err != nil && err != unix.EINTR {
		return fmt.Errorf("rawsock: poll: %w", err)
	}
	if q.closed.Load() {
		return dataplane.ErrClosed
	}
	if q.pfd[len(q.pfd)-1].Revents&unix.POLLIN != 0 {
		var v [8]byte
		_, _ = unix.Read(q.efd, v[:]) // a Wake: reset it
	}
	_, err = q.recvAll(b)
	return err
}

// recvAll reads what is waiting on every socket into b, and returns how many
// frames it read.
func (q *queue) recvAll(b *dataplane.Batch) (int, error) {
	k := 0
	var bytes uint64
	n := len(q.fds)
	for j := range n {
		port := (q.next + j) % n
		if k == len(q.rxHdr) {
			break
		}
		got, errno := q.recvmmsg(q.fds[port], k)
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINTR, unix.ENETDOWN: // ENETDOWN: the link went down; frames come again when it is up
			continue
		default:
			return k, fmt.Errorf("rawsock: recvmmsg: %w", errno)
		}
		for i := k; i < k+got; i++ {
			h := &q.rxHdr[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || int(h.Len) > q.size {
				q.rxTrunc.Add(1) // larger than a frame buffer: never half a frame
				continue
			}
			b.Room[b.N] = q.bufs[i][:dataplane.Headroom]
			b.Frames[b.N] = q.bufs[i][dataplane.Headroom : dataplane.Headroom+int(h.Len)]
			b.Port[b.N] = uint8(port)
			b.Send[b.N] = false
			bytes += uint64(h.Len)
			b.N++
		}
		k += got
	}
	q.next = (q.next + 1) % n
	q.rx.Add(uint64(b.N))
	q.rxBytes.Add(bytes)
	return b.N, nil
}

// recvmmsg reads into the message vectors from index from on.
func (q *queue) recvmmsg(fd, from int) (int, syscall.Errno) {
	for i := from; i < len(q.rxHdr); i++ {
		q.rxHdr[i].Hdr.Flags = 0
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&q.rxHdr[from])), uintptr(len(q.rxHdr)-from), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// Transmit implements dataplane.Queue: the frames marked Send leave by
// their Port's socket, one sendmmsg per interface (more only if the kernel
// takes part of them); a frame the kernel refuses, or for an interface the
// queue does not have, is counted in TxDropped and skipped.
func (q *queue) Transmit(b *dataplane.Batch) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer func() { b.N = 0 }()
	if q.closed.Load() {
		return dataplane.ErrClosed
	}
	var firstErr error
	for port := range q.fds {
		k := 0
		var bytes uint64
		for i := range b.N {
			f := b.Frames[i]
			if !b.Send[i] || len(f) == 0 || int(b.Port[i]) != port {
				continue
			}
			q.txIov[k].Base = &f[0]
			q.txIov[k].SetLen(len(f))
			bytes += uint64(len(f))
			k++
		}
		if k == 0 {
			continue
		}
		if _, err := q.send(q.fds[port], k); err != nil && firstErr == nil {
			firstErr = err
		}
		q.txBytes.Add(bytes)
	}
	for i := range b.N {
		switch {
		case !b.Send[i] || len(b.Frames[i]) == 0:
			q.recycled.Add(1)
		case int(b.Port[i]) >= len(q.fds):
			q.txDropped.Add(1)
		}
		b.Frames[i], b.Room[i] = nil, nil
	}
	return firstErr
}

// send transmits the first k prepared messages (txIov[:k]) on fd with
// sendmmsg: one call unless the kernel takes part of them; a frame the
// kernel refuses is counted in TxDropped and skipped. It returns how many
// frames left and clears the iovecs. The caller holds q.mu.
func (q *queue) send(fd, k int) (ok int, err error) {
	sent := 0
	for tries := 0; sent < k && tries <= k; tries++ {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&q.txHdr[sent])), uintptr(k-sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
			sent += int(r)
			ok += int(r)
			q.tx.Add(uint64(r))
		case errno == unix.EINTR:
		case errno == unix.EBADF:
			err = fmt.Errorf("rawsock: sendmmsg: %w", errno)
			sent = k
		default: // EAGAIN, ENOBUFS, ENETDOWN, EMSGSIZE…: drop that frame
			q.txDropped.Add(1)
			sent++
		}
	}
	if sent < k {
		q.txDropped.Add(uint64(k - sent))
	}
	for i := range k {
		q.txIov[i].Base = nil // keep no frame alive
	}
	return ok, err
}

var _ dataplane.CopyTransmitter = (*queue)(nil)

// TransmitCopies implements dataplane.CopyTransmitter: the frames (copies
// the worker owns, such as held fragments) leave in order by interface
// port with one sendmmsg per dataplane.MaxBatch of them; the kernel copies
// them out, so the slices are the caller's again when it returns. An empty
// frame or one the kernel refuses is counted in TxDropped. It returns how
// many were sent.
func (q *queue) TransmitCopies(port uint8, frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return 0, dataplane.ErrClosed
	}
	if int(port) >= len(q.fds) {
		q.txDropped.Add(uint64(len(frames)))
		return 0, nil
	}
	fd := q.fds[port]
	total := 0
	for len(frames) > 0 {
		chunk := frames[:min(len(frames), len(q.txIov))]
		frames = frames[len(chunk):]
		k := 0
		var bytes uint64
		for _, f := range chunk {
			if len(f) == 0 {
				q.txDropped.Add(1)
				continue
			}
			q.txIov[k].Base = &f[0]
			q.txIov[k].SetLen(len(f))
			bytes += uint64(len(f))
			k++
		}
		n, err := q.send(fd, k)
		total += n
		q.txBytes.Add(bytes)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Stats implements dataplane.Queue. RxDropped counts frames the kernel
// dropped on a full socket buffer plus frames larger than a buffer.
func (q *queue) Stats() dataplane.QueueStats {
	q.readKernelDrops()
	return dataplane.QueueStats{
		RxFrames: q.rx.Load(), TxFrames: q.tx.Load(),
		RxBytes: q.rxBytes.Load(), TxBytes: q.txBytes.Load(),
		TxDropped: q.txDropped.Load(), Recycled: q.recycled.Load(),
		RxDropped: q.kernelDrops.Load() + q.rxTrunc.Load(),
	}
}

// readKernelDrops adds the sockets' drop counters (which the kernel resets
// on every read) to kernelDrops.
func (q *queue) readKernelDrops() {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	if q.closed.Load() {
		return
	}
	for _, fd := range q.fds {
		if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			q.kernelDrops.Add(uint64(st.Drops))
		}
	}
}
