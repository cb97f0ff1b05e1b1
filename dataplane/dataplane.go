// Package dataplane is the seam between packet I/O backends (AF_XDP, raw
// socket, in-memory) and whatever processes their frames: the one small
// batch interface every backend implements (Backend, Queue, Batch), the
// Filter a backend steers by, the Options it opens with, and a registry of
// backends by name. It is a leaf, as wireguard-go's conn package is: it
// imports the standard library and package packet, for LinkType alone
// (packet itself imports only the standard library), so that a backend
// (package afxdp, internal/rawsock) builds and tests without xvs's engine,
// and code outside this module can drive a backend.
//
// It is public, not internal, because package afxdp is: afxdp.Open takes
// Options and its Backend returns Queues, so the types of its API must be
// importable wherever afxdp is. They are not in afxdp itself because the
// raw-socket backend and the daemon implement and use the same interface
// and must not depend on the AF_XDP backend (cilium/ebpf, asavie/xdp).
//
// The worker loop that runs xvs's pipeline on a Queue (receive → decide →
// rewrite → transmit) is not here: it belongs to the daemon
// (internal/daemon's Runner), as does the translation of a configuration
// into a Filter.
//
// # Interfaces
//
// A backend may serve several interfaces (Options.Ifaces: the legs of a
// director, a client network and a server network). Its queue i serves RX
// queue i of every interface that has one, so one worker receives from
// every leg and transmits on any: Batch.Port says which interface (its index
// in Options.Ifaces) a frame arrived on, and the worker sets it to the one
// the frame leaves by. A backend moves a frame between interfaces without a
// copy where the kernel lets the interfaces' sockets share memory (AF_XDP's
// shared UMEM), and copies it (counted) where not.
//
// # Frame ownership
//
// A Batch's frames belong to the backend until Receive returns, to the worker
// between Receive and Transmit, and to the backend again from Transmit on:
// Transmit sends the frames marked Send (with their current length, from
// wherever they start: rewrites happen in place, and a frame may have grown
// into its Room) and recycles the others. A worker never keeps a frame, a
// slice of one, or a Decision that aliases one, across Transmit.
package dataplane

import (
	"errors"
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/packet"
)

// MaxBatch is the largest batch a backend hands a worker: AF_XDP's usual
// batch, and xvs's pipeline's prefetch window (its MaxBatch).
const MaxBatch = 64

// Headroom is the room every backend of this module leaves in front of a
// received frame (Batch.Room): enough for the largest encapsulation a
// tunnel adds (an IPv6 header, UDP, GUE with remote checksum offload: 60
// octets), an IPv6 fragment header more when the tunnel must fragment, or
// the IP and ICMP headers of an ICMP error, with room to spare. AF_XDP's
// descriptors leave XDP_PACKET_HEADROOM (256) before the data anyway.
const Headroom = 128

// Batch is a set of received frames. Backends allocate it once per queue
// (NewBatch) and reuse it.
type Batch struct {
	// Frames[:N] are the received frames: views into backend memory. The
	// worker may rewrite them in place, change their length within their
	// capacity, and grow them at their front into Room.
	Frames [][]byte
	// Room[i] is Frames[i]'s headroom: the bytes of its buffer just before
	// it, which a worker may grow the frame into (tunnel encapsulation,
	// with packet.Grow). len(Room[i]) is how much there is, and its
	// capacity runs on over the frame: Frames[i] is
	// Room[i][len(Room[i]):len(Room[i])+len(Frames[i])]. A worker that
	// grows or moves a frame sets both; Transmit sends each frame from
	// wherever it starts. Empty (no room) for a backend without headroom.
	Room [][]byte
	// Send[i] is set by the worker: transmit Frames[i] (true) or give it
	// back (false).
	Send []bool
	// Port[i] is the interface Frames[i] arrived on (its index in
	// Options.Ifaces); the worker sets it to the interface the frame
	// leaves by, when that differs.
	Port []uint8
	N    int
	// Link is the frames' link type (Ethernet for network interfaces).
	Link packet.LinkType
	// Handles is backend-private per-frame state (a UMEM address, a ring
	// slot); workers must not touch it.
	Handles []uint64
}

// NewBatch allocates a batch of capacity MaxBatch.
func NewBatch(link packet.LinkType) *Batch {
	return &Batch{
		Frames:  make([][]byte, MaxBatch),
		Room:    make([][]byte, MaxBatch),
		Send:    make([]bool, MaxBatch),
		Port:    make([]uint8, MaxBatch),
		Handles: make([]uint64, MaxBatch),
		Link:    link,
	}
}

// Queue is one RX/TX queue pair of a backend, used by one worker goroutine.
type Queue interface {
	// Receive waits up to timeout for frames and fills b (b.N may be 0 on
	// timeout). After Close it returns ErrClosed.
	Receive(b *Batch, timeout time.Duration) error
	// Transmit sends b's frames marked Send and recycles the rest; b is
	// the backend's again afterwards, even on error.
	Transmit(b *Batch) error
	// Stats returns the queue's counters; any goroutine may call it.
	Stats() QueueStats
}

// Waker is implemented by queues whose Receive can be interrupted: Wake
// makes a Receive waiting for frames return at once (with none, if none
// came), so that a worker holding frames for a neighbour sends them as soon
// as it resolves. Any goroutine may call it.
type Waker interface {
	Wake()
}

// QueueStats are a queue's I/O counters.
type QueueStats struct {
	RxFrames, TxFrames uint64
	RxBytes, TxBytes   uint64
	// CrossPortCopies counts frames sent on another interface than they
	// arrived on by copying them (AF_XDP without a shared UMEM; the raw
	// socket copies every frame anyway and does not count them).
	CrossPortCopies uint64
	// TxDropped counts frames marked Send that could not be queued (a full
	// TX ring, a send error); Recycled counts frames given back unsent.
	TxDropped, Recycled uint64
	// Backend-specific (AF_XDP ring statistics, XDP_STATISTICS of the
	// queue's sockets; raw-socket drops): RxDropped counts frames the
	// kernel could not receive for want of a buffer (AF_XDP: the fill ring
	// was empty), RxRingFull frames dropped because the RX ring was full
	// (the worker did not read it in time), FillRingEmpty and TxRingEmpty
	// the times the kernel found those rings empty (events, not frames),
	// RxInvalidDescs and TxInvalidDescs frames dropped for an invalid
	// descriptor.
	RxDropped, RxRingFull, FillRingEmpty, TxRingEmpty uint64
	RxInvalidDescs, TxInvalidDescs                    uint64
	// Syscalls counts the system calls of the queue's data path (waits,
	// transmit kicks, busy polls): divided by RxFrames, how often the
	// worker enters the kernel per frame — the batching it achieves.
	Syscalls uint64
	// BusyPollRefused is 1 when Options.BusyPoll was asked for and the
	// kernel refused the socket options: the queue runs interrupt-driven.
	BusyPollRefused uint64
}

// FilterStats are the counters of a backend's kernel-side filter on one
// interface: frames it steered to the data plane and frames it passed to
// the kernel.
type FilterStats struct {
	Iface           string
	Steered, Passed uint64
}

// FilterReporter is implemented by backends whose kernel-side filter
// counts what it steers (AF_XDP's XDP program); any goroutine may call it.
type FilterReporter interface {
	FilterCounts() ([]FilterStats, error)
}

// Backend is a packet I/O backend bound to one or more network interfaces.
type Backend interface {
	// Mode says what the backend runs as, for logs and metrics.
	Mode() Mode
	// Queues returns one Queue per RX queue (queue i serving RX queue i of
	// every interface that has it), each for one worker.
	Queues() []Queue
	// Update tells the backend which traffic is the balancer's (virtual
	// services, and NAT real servers' replies), so that it can pass
	// everything else to the kernel untouched, on every interface. It is
	// called at start and after every reconfiguration, with a filter Check
	// accepted.
	Update(Filter) error
	// Check reports whether Update(f) fits the backend's limits on every
	// interface (the entries its filter holds: an error wrapping
	// ErrFilterTooLarge), without changing anything. The daemon checks every configuration
	// before it commits it, so that one the data plane cannot carry is
	// refused and the running one keeps serving.
	Check(Filter) error
	// Close stops the backend: Receive returns ErrClosed, resources
	// (sockets, XDP program, UMEM) are released.
	Close() error
}

// Mode is what a backend runs as: its registered name and, for AF_XDP, how
// its program is attached and whether its sockets are zero-copy. String
// gives the name logs and metrics show: "raw", "afxdp-generic",
// "afxdp-native-copy", "afxdp-native-zerocopy".
type Mode struct {
	Backend  string  // the registered name ("afxdp", "raw")
	XDP      XDPMode // XDPNative or XDPGeneric for an XDP backend, else XDPAuto
	ZeroCopy bool    // native XDP with zero-copy sockets
}

func (m Mode) String() string {
	switch {
	case m.XDP == XDPGeneric:
		return m.Backend + "-generic"
	case m.XDP == XDPNative && m.ZeroCopy:
		return m.Backend + "-native-zerocopy"
	case m.XDP == XDPNative:
		return m.Backend + "-native-copy"
	}
	return m.Backend
}

// Filter is what a backend must steer to the workers: packets to a virtual
// service, and packets from a NAT real server (replies and the server's own
// requests). Everything else goes to the kernel.
type Filter struct {
	Services    []ServiceMatch
	RealServers []RealServerMatch
}

// ServiceMatch is one virtual service: protocol, address and port (port 0:
// any port of the address).
type ServiceMatch struct {
	Protocol uint8 // IP protocol number: 17 (UDP) or 6 (TCP)
	Addr     netip.Addr
	Port     uint16
}

// RealServerMatch is one NAT real server: packets from this address and
// port (and protocol) come back through the balancer.
type RealServerMatch struct {
	Protocol uint8 // IP protocol number: 17 (UDP) or 6 (TCP)
	Addr     netip.AddrPort
}

// ErrClosed is returned by a closed queue.
var ErrClosed = errors.New("queue closed")

// ErrFilterTooLarge reports a filter with more entries than the backend
// can hold (Backend.Check, Backend.Update).
var ErrFilterTooLarge = errors.New("filter too large")
