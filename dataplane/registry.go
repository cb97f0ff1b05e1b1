package dataplane

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options open a backend on one or more interfaces.
type Options struct {
	// Iface is the network interface to serve on, when there is one;
	// Ifaces lists them when there are several (Iface is then ignored).
	// An interface's index in the list is its port (Batch.Port).
	Iface  string
	Ifaces []string
	// Queues is how many RX queues to serve (0 = all the interface has).
	Queues int
	// XDPMode selects the AF_XDP attach mode (the zero value: native, then
	// generic). Ignored by other backends.
	XDPMode XDPMode
	// ZeroCopy selects AF_XDP zero-copy (the zero value: try, fall back to
	// copy). Ignored by other backends.
	ZeroCopy ZeroCopy
	// RingSize is the number of descriptors per ring (0 = backend default).
	RingSize int
	// FrameSize is the UMEM frame size (0 = backend default).
	FrameSize int
	// BusyPoll turns on AF_XDP busy polling (SO_PREFER_BUSY_POLL,
	// SO_BUSY_POLL): a worker whose last batch had frames polls its
	// queue's NAPI context from its own system calls for up to this long
	// before it sleeps, instead of waiting for an interrupt and a wake-up.
	// 0 (the default) is off. A kernel that refuses the socket options
	// leaves the queue interrupt-driven, counted in
	// QueueStats.BusyPollRefused. Ignored by other backends.
	BusyPoll time.Duration
	// BusyPollBudget is how many frames one busy poll may process
	// (SO_BUSY_POLL_BUDGET; 0 = MaxBatch). Only with BusyPoll.
	BusyPollBudget int
}

// MaxIfaces bounds the interfaces of one backend: a port is a byte in a
// batch, and a director has two or three legs.
const MaxIfaces = 16

// Interfaces returns the interfaces to serve: Ifaces, or Iface alone.
func (o Options) Interfaces() []string {
	if len(o.Ifaces) > 0 {
		return o.Ifaces
	}
	if o.Iface != "" {
		return []string{o.Iface}
	}
	return nil
}

// XDPMode is how an XDP program is attached to the interface.
type XDPMode uint8

// XDP attach modes, named as xvs run --xdp-mode takes them.
const (
	XDPAuto    XDPMode = iota // "auto": native (driver) XDP, else generic
	XDPNative                 // "native": the driver's XDP hook only
	XDPGeneric                // "generic": the kernel's skb-level hook (any driver, slower)
)

var xdpModeNames = []string{"auto", "native", "generic"}

// String returns the mode's name ("auto", "native", "generic").
func (m XDPMode) String() string { return name(m, xdpModeNames, "XDPMode") }

// ParseXDPMode parses a mode's name; "" is XDPAuto.
func ParseXDPMode(s string) (XDPMode, error) {
	return parse[XDPMode](s, xdpModeNames, "XDP mode")
}

// ZeroCopy is whether AF_XDP sockets share the driver's memory (XDP_ZEROCOPY)
// or have the kernel copy frames (XDP_COPY).
type ZeroCopy uint8

// Zero-copy choices, named as xvs run --zerocopy takes them.
const (
	ZeroCopyAuto ZeroCopy = iota // "auto": zero-copy where the driver has it, else copy
	ZeroCopyOn                   // "on": zero-copy or fail
	ZeroCopyOff                  // "off": always copy
)

var zeroCopyNames = []string{"auto", "on", "off"}

// String returns the choice's name ("auto", "on", "off").
func (z ZeroCopy) String() string { return name(z, zeroCopyNames, "ZeroCopy") }

// ParseZeroCopy parses a choice's name; "" is ZeroCopyAuto.
func ParseZeroCopy(s string) (ZeroCopy, error) {
	return parse[ZeroCopy](s, zeroCopyNames, "zero-copy")
}

// name returns v's name in names, or typ(v) for a value without one.
func name[T ~uint8](v T, names []string, typ string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(int(v)) + ")"
}

// parse returns the value named s (its index in names; "" is the zero
// value, auto) or an ErrOption naming what and the choices.
func parse[T ~uint8](s string, names []string, what string) (T, error) {
	if s == "" {
		return 0, nil
	}
	if i := slices.Index(names, s); i >= 0 {
		return T(i), nil
	}
	return 0, fmt.Errorf("%s %q (want %s or %s): %w", what, s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1], ErrOption)
}

// ErrOption reports an invalid Options value (or name of one).
var ErrOption = errors.New("invalid data-plane option")

// OpenFunc opens a backend.
type OpenFunc func(Options) (Backend, error)

var backends struct {
	sync.Mutex
	m map[string]OpenFunc
}

// ErrNoBackend reports an unknown backend name.
var ErrNoBackend = errors.New("no such data-plane backend")

// Register makes a backend available by name ("afxdp", "raw"); backends call
// it from an init function.
func Register(name string, open OpenFunc) {
	backends.Lock()
	defer backends.Unlock()
	if backends.m == nil {
		backends.m = map[string]OpenFunc{}
	}
	backends.m[name] = open
}

// Open opens the named backend.
func Open(name string, o Options) (Backend, error) {
	backends.Lock()
	open := backends.m[name]
	backends.Unlock()
	if open == nil {
		return nil, fmt.Errorf("%q: %w (have %v)", name, ErrNoBackend, Names())
	}
	return open(o)
}

// Names lists the registered backends.
func Names() []string {
	backends.Lock()
	defer backends.Unlock()
	var n []string
	for k := range backends.m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
