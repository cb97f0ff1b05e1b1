package afxdp

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
)

// Defaults; every one can be overridden through dataplane.Options.
const (
	// DefaultFrames is UMEM frames per queue as a multiple of the ring
	// size: the fill and RX rings together hold at most one ring's worth
	// of frames in copy mode, the TX and completion rings another; twice
	// the ring size keeps the fill ring full while a full TX ring drains.
	framesPerRing = 2
	// DefaultFrameSize is the UMEM frame size for a standard MTU: 2048
	// bytes hold a 1500-byte MTU plus Ethernet, two VLAN tags and the
	// kernel's XDP headroom (256 bytes), at half the memory of 4096.
	DefaultFrameSize = 2048
	// LargeFrameSize is chosen automatically for MTUs up to 3818; larger
	// MTUs need multi-buffer AF_XDP, which xvs does not use.
	LargeFrameSize = 4096
	// xdpHeadroom is XDP_PACKET_HEADROOM, reserved at the start of every
	// frame in zero-copy mode.
	xdpHeadroom = 256
	// l2Overhead is the largest link header around an MTU-sized packet:
	// Ethernet and two VLAN tags.
	l2Overhead = ethHdrLen + maxVLANTags*vlanHdrLen
	// maxBusyPollBudget is the largest SO_BUSY_POLL_BUDGET the kernel
	// takes (a u16).
	maxBusyPollBudget = 1<<16 - 1
)

func init() {
	dataplane.Register("afxdp", func(o dataplane.Options) (dataplane.Backend, error) {
		b, err := Open(o)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// Backend is the AF_XDP data plane on one or more interfaces: on each, the
// XDP filter program attached through a BPF link; and one Queue per RX
// queue index, holding that queue's socket on every interface.
type Backend struct {
	ifs    []*iface
	mode   dataplane.Mode
	queues []*Queue

	mu     sync.Mutex
	have4  map[key4]bool
	have6  map[key6]bool
	closed bool
}

// iface is one served interface: its filter program and attach link.
type iface struct {
	name    string
	ifindex int
	nq      int // RX queues served
	prog    *program
	link    link.Link
	native  bool
	zc      bool // its sockets are bound zero-copy
}

var _ dataplane.Backend = (*Backend)(nil)

// Open attaches the filter to each of o's interfaces and opens one AF_XDP
// socket per RX queue of each, walking the mode ladder native zero-copy →
// native copy → generic per interface as o.XDPMode and o.ZeroCopy allow.
// Queue i of the backend holds the sockets of RX queue i of every interface
// that has it, sharing one UMEM where the kernel allows. Nothing is steered
// until Update.
func Open(o dataplane.Options) (_ *Backend, err error) {
	xdpMode, zc := o.XDPMode, o.ZeroCopy
	switch {
	case xdpMode != dataplane.XDPAuto && xdpMode != dataplane.XDPNative && xdpMode != dataplane.XDPGeneric:
		return nil, fmt.Errorf("XDP mode %v (want auto, native or generic): %w", o.XDPMode, ErrBadOption)
	case zc != dataplane.ZeroCopyAuto && zc != dataplane.ZeroCopyOn && zc != dataplane.ZeroCopyOff:
		return nil, fmt.Errorf("zero-copy %v (want auto, on or off): %w", o.ZeroCopy, ErrBadOption)
	case xdpMode == dataplane.XDPGeneric && zc == dataplane.ZeroCopyOn:
		return nil, fmt.Errorf("zero-copy needs native XDP, not generic: %w", ErrBadOption)
	}
	names := o.Interfaces()
	if len(names) == 0 || len(names) > dataplane.MaxIfaces {
		return nil, fmt.Errorf("%d interfaces (want 1..%d): %w", len(names), dataplane.MaxIfaces, ErrBadOption)
	}
	ringSize := o.RingSize
	if ringSize == 0 {
		ringSize = DefaultRingSize
	}
	if ringSize < MinRingSize || ringSize > MaxRingSize || ringSize&(ringSize-1) != 0 {
		return nil, fmt.Errorf("ring size %d (want a power of two from %d to %d): %w", ringSize, MinRingSize, MaxRingSize, ErrBadOption)
	}
	frameSize := o.FrameSize
	if frameSize != 0 && frameSize != DefaultFrameSize && frameSize != LargeFrameSize {
		return nil, fmt.Errorf("frame size %d (want %d or %d): %w", frameSize, DefaultFrameSize, LargeFrameSize, ErrBadOption)
	}
	var ifcs []*net.Interface
	mtu := 0
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, ErrNoInterface)
		}
		ifcs = append(ifcs, ifc)
		mtu = max(mtu, ifc.MTU)
	}
	need := mtu + l2Overhead + xdpHeadroom
	switch {
	case frameSize == 0 && need <= DefaultFrameSize:
		frameSize = DefaultFrameSize
	case frameSize == 0:
		frameSize = LargeFrameSize
	}
	if need > frameSize {
		return nil, fmt.Errorf("MTU %d needs %d-byte frames, have %d: %w", mtu, need, frameSize, ErrMTU)
	}
	budget := o.BusyPollBudget
	switch {
	case o.BusyPoll < 0:
		return nil, fmt.Errorf("busy poll %v (want 0 for off, or a duration): %w", o.BusyPoll, ErrBadOption)
	case budget < 0 || budget > maxBusyPollBudget:
		return nil, fmt.Errorf("busy-poll budget %d (want 1 to %d, 0 for %d): %w", budget, maxBusyPollBudget, dataplane.MaxBatch, ErrBadOption)
	case budget == 0:
		budget = dataplane.MaxBatch
	}

	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, permErr("raising RLIMIT_MEMLOCK", err)
	}
	b := &Backend{have4: map[key4]bool{}, have6: map[key6]bool{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	nqMax := 0
	for _, ifc := range ifcs {
		avail := rxQueues(ifc.Name)
		nq := o.Queues
		switch {
		case nq == 0:
			nq = avail
		case nq < 0 || nq > avail:
			return nil, fmt.Errorf("%s has %d RX queues, asked for %d: %w", ifc.Name, avail, nq, ErrBadOption)
		}
		f := &iface{name: ifc.Name, ifindex: ifc.Index, nq: nq}
		b.ifs = append(b.ifs, f)
		if f.prog, err = loadProgram(avail); err != nil {
			return nil, permErr("loading the XDP filter", err)
		}
		if xdpMode != dataplane.XDPGeneric {
			err = f.attach(link.XDPDriverMode)
			switch {
			case err == nil:
				f.native = true
			case xdpMode == dataplane.XDPNative:
				return nil, err
			}
		}
		if !f.native {
			if zc == dataplane.ZeroCopyOn {
				return nil, fmt.Errorf("%s: zero-copy needs native XDP: %w (%w)", ifc.Name, ErrNoZeroCopy, err)
			}
			if err = f.attach(link.XDPGenericMode); err != nil {
				return nil, err
			}
		}
		f.zc = f.native && zc != dataplane.ZeroCopyOff
		nqMax = max(nqMax, nq)
	}
	for qi := range nqMax {
		ports := 0
		for _, f := range b.ifs {
			if qi < f.nq {
				ports++
			}
		}
		cfg := queueConfig{queue: qi, frameSize: frameSize, ringSize: ringSize, ports: ports,
			busyPoll: o.BusyPoll, busyPollBudget: budget}
		q, err := newQueue(cfg)
		if err != nil {
			return nil, err
		}
		b.queues = append(b.queues, q)
		for port, f := range b.ifs {
			if qi >= f.nq {
				continue
			}
			if err := f.addSocket(q, cfg, uint8(port), qi, zc); err != nil {
				return nil, err
			}
			if err := f.prog.xdp.Register(qi, q.socks[port].fd); err != nil {
				return nil, fmt.Errorf("%s: registering queue %d's socket: %w", f.name, qi, err)
			}
		}
		q.start()
	}
	b.mode = b.computeMode()
	return b, nil
}

// addSocket adds f's socket for queue qi to q, zero-copy if f.zc (falling
// back to copy mode with ZeroCopyAuto: f.zc is then cleared).
func (f *iface) addSocket(q *Queue, cfg queueConfig, port uint8, qi int, zc dataplane.ZeroCopy) error {
	if f.zc {
		err := q.addSocket(cfg, port, f.ifindex, unix.XDP_ZEROCOPY)
		switch {
		case err == nil:
			return nil
		case zc == dataplane.ZeroCopyOn:
			return fmt.Errorf("%s: %w (%w)", f.name, ErrNoZeroCopy, err)
		case errors.Is(err, ErrPermission):
			return err
		}
		f.zc = false
	}
	return q.addSocket(cfg, port, f.ifindex, unix.XDP_COPY)
}

// computeMode reports the weakest interface's mode: generic if any runs
// generic, native copy if any native one copies.
func (b *Backend) computeMode() dataplane.Mode {
	m := dataplane.Mode{Backend: "afxdp", XDP: dataplane.XDPNative, ZeroCopy: true}
	for _, f := range b.ifs {
		if !f.native {
			return dataplane.Mode{Backend: "afxdp", XDP: dataplane.XDPGeneric}
		}
		m.ZeroCopy = m.ZeroCopy && f.zc
	}
	for _, q := range b.queues {
		m.ZeroCopy = m.ZeroCopy && q.ZeroCopy()
	}
	return m
}

// InterfaceModes reports each interface's mode, in port order.
func (b *Backend) InterfaceModes() []dataplane.Mode {
	out := make([]dataplane.Mode, len(b.ifs))
	for i, f := range b.ifs {
		out[i] = dataplane.Mode{Backend: "afxdp", XDP: dataplane.XDPGeneric}
		if f.native {
			out[i] = dataplane.Mode{Backend: "afxdp", XDP: dataplane.XDPNative, ZeroCopy: f.zc}
		}
	}
	return out
}

func permErr(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w (%w)", what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// rxQueues counts the interface's RX queues: ethtool's channel count, else
// /sys/class/net/IF/queues/rx-* (sysfs shows the namespace it was mounted
// in, ethtool the caller's), else 1.
func rxQueues(iface string) int {
	if n := ethtoolChannels(iface); n > 0 {
		return n
	}
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", iface, "queues", "rx-*"))
	return max(len(m), 1)
}

func ethtoolChannels(iface string) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	// struct ethtool_channels and struct ifreq with ifr_data.
	ch := struct {
		cmd                                    uint32
		maxRx, maxTx, maxOther, maxCombined    uint32
		rxCount, txCount, other, combinedCount uint32
	}{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], iface)
	ifr.data = unsafe.Pointer(&ch)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return 0
	}
	// Combined channels are queues 0..combined-1, RX-only ones follow.
	return int(ch.combinedCount + ch.rxCount)
}

// attach attaches the filter in mode through a BPF link, which the kernel
// removes when the process exits, so a crash leaves no program behind. A
// program attached the old way (netlink, e.g. by a pre-link tool or
// asavie/xdp's Attach) blocks a link: it is detached and the attach
// retried once.
func (f *iface) attach(mode link.XDPAttachFlags) error {
	name := dataplane.XDPNative
	if mode == link.XDPGenericMode {
		name = dataplane.XDPGeneric
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: f.prog.xdp.Program, Interface: f.ifindex, Flags: mode})
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		if derr := detachStale(f.ifindex); derr != nil {
			return fmt.Errorf("%s: attaching %s XDP: %w (%w)", f.name, name, ErrBusy, err)
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: f.prog.xdp.Program, Interface: f.ifindex, Flags: mode})
	}
	switch {
	case err == nil:
		f.link = l
		return nil
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: attaching %s XDP: %w (%w)", f.name, name, ErrBusy, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s: attaching XDP: %w (%w)", f.name, ErrPermission, err)
	case mode == link.XDPDriverMode && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)):
		return fmt.Errorf("%s: %w (%w)", f.name, ErrNoNativeXDP, err)
	}
	return fmt.Errorf("%s: attaching %s XDP: %w", f.name, name, err)
}

// detachStale removes netlink-attached XDP programs in every mode.
func detachStale(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	var last error
	for _, f := range []int{unix.XDP_FLAGS_SKB_MODE, unix.XDP_FLAGS_DRV_MODE} {
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, f); err != nil {
			last = err
		}
	}
	l, err = netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		return fmt.Errorf("XDP program %d still attached: %v", x.ProgId, last)
	}
	return nil
}

// Mode implements dataplane.Backend: "afxdp-native-zerocopy",
// "afxdp-native-copy" or "afxdp-generic".
func (b *Backend) Mode() dataplane.Mode { return b.mode }

// Queues implements dataplane.Backend.
func (b *Backend) Queues() []dataplane.Queue {
	qs := make([]dataplane.Queue, len(b.queues))
	for i, q := range b.queues {
		qs[i] = q
	}
	return qs
}

// AFXDPQueues returns the queues with their concrete type (CheckFrames,
// Syscalls).
func (b *Backend) AFXDPQueues() []*Queue { return b.queues }

// BusyPollErr returns why the kernel refused busy polling on the first
// queue that refused it (nil when busy polling was not asked for or every
// queue has it); such a queue waits for interrupts as without it.
func (b *Backend) BusyPollErr() error {
	for _, q := range b.queues {
		if _, err := q.BusyPoll(); err != nil {
			return fmt.Errorf("queue %d: %w", q.id, err)
		}
	}
	return nil
}

// Update implements dataplane.Backend: it rewrites every interface's
// filter maps in place (removals first, then new entries, so that a full
// map can take another full filter), with the programs attached. Every
// interface steers the same traffic: a service's packets, a NAT real
// server's replies, fragments and ICMP errors may arrive on any leg. It
// changes nothing when f does not fit (see Check) or when the kernel refuses
// an entry: the running filter is then put back whole on every interface.
func (b *Backend) Update(f dataplane.Filter) error {
	k4, k6, err := matchKeys(f)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return dataplane.ErrClosed
	}
	for i, ifc := range b.ifs {
		err := syncMap(ifc.prog.match4, b.have4, k4)
		if err == nil {
			if err = syncMap(ifc.prog.match6, b.have6, k6); err != nil {
				syncMap(ifc.prog.match4, k4, b.have4)
			}
		}
		if err != nil {
			for _, done := range b.ifs[:i] {
				syncMap(done.prog.match4, k4, b.have4)
				syncMap(done.prog.match6, k6, b.have6)
			}
			return fmt.Errorf("%s: %w", ifc.name, err)
		}
	}
	b.have4, b.have6 = k4, k6
	return nil
}

// Check implements dataplane.Backend: it reports whether f fits the filter's
// maps (MaxFilterEntries per address family, on every interface: each has
// the same maps and holds the same entries), an error wrapping
// ErrFilterTooLarge if not.
func (b *Backend) Check(f dataplane.Filter) error {
	_, _, err := matchKeys(f)
	return err
}

// FilterStats are the filter program's counters.
type FilterStats struct {
	Steered uint64 // frames redirected to an AF_XDP socket
	Passed  uint64 // frames given to the kernel
}

// FilterStats reads the filter programs' counters, summed over the
// interfaces.
func (b *Backend) FilterStats() (FilterStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return FilterStats{}, dataplane.ErrClosed
	}
	var out FilterStats
	for _, f := range b.ifs {
		s, p, err := f.prog.counters()
		if err != nil {
			return FilterStats{}, err
		}
		out.Steered += s
		out.Passed += p
	}
	return out, nil
}

// FilterCounts implements dataplane.FilterReporter: the filter program's
// counters per interface.
func (b *Backend) FilterCounts() ([]dataplane.FilterStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, dataplane.ErrClosed
	}
	out := make([]dataplane.FilterStats, 0, len(b.ifs))
	for _, f := range b.ifs {
		s, p, err := f.prog.counters()
		if err != nil {
			return nil, err
		}
		out = append(out, dataplane.FilterStats{Iface: f.name, Steered: s, Passed: p})
	}
	return out, nil
}

var _ dataplane.FilterReporter = (*Backend)(nil)

// Close implements dataplane.Backend: Receive returns ErrClosed, the
// program is detached, and sockets, rings, UMEM and maps are freed once the
// workers have returned their batches.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for _, f := range b.ifs {
		if f.link != nil {
			if err := f.link.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: detaching XDP: %w", f.name, err))
			}
		}
	}
	for i, q := range b.queues {
		for _, f := range b.ifs {
			if f.prog != nil && i < f.nq {
				f.prog.xdp.Unregister(i)
			}
		}
		if q.close() {
			q.release()
		} else {
			errs = append(errs, fmt.Errorf("queue %d: worker still holds frames after %v; its sockets and UMEM stay mapped", i, closeWait))
		}
	}
	for _, f := range b.ifs {
		f.prog.close()
	}
	return errors.Join(errs...)
}
