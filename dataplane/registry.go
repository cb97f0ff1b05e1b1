package dataplane

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// Options open a backend on an interface.
type Options struct {
	// Iface is the network interface to serve on.
	Iface string
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
}

// XDPMode is how an XDP program is attached to the interface.
type XDPMode uint8

// XDP attach modes, named as xvs run --xdp-mode takes them.
const (
	XDPAuto    XDPMode = iota // "auto": native (driver) XDP, else generic
	XDPNative                 // "native": the driver's XDP hook only
	XDPGeneric                // "generic": the kernel's skb-level hook (any driver, slower)
	numXDPModes
)

var xdpModeNames = [numXDPModes]string{"auto", "native", "generic"}

// String returns the mode's name ("auto", "native", "generic").
func (m XDPMode) String() string {
	if m < numXDPModes {
		return xdpModeNames[m]
	}
	return "XDPMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseXDPMode parses a mode's name; "" is XDPAuto.
func ParseXDPMode(s string) (XDPMode, error) {
	m, ok := parseName(s, xdpModeNames[:])
	if !ok {
		return 0, fmt.Errorf("XDP mode %q (want auto, native or generic): %w", s, ErrOption)
	}
	return XDPMode(m), nil
}

// ZeroCopy is whether AF_XDP sockets share the driver's memory (XDP_ZEROCOPY)
// or have the kernel copy frames (XDP_COPY).
type ZeroCopy uint8

// Zero-copy choices, named as xvs run --zerocopy takes them.
const (
	ZeroCopyAuto ZeroCopy = iota // "auto": zero-copy where the driver has it, else copy
	ZeroCopyOn                   // "on": zero-copy or fail
	ZeroCopyOff                  // "off": always copy
	numZeroCopy
)

var zeroCopyNames = [numZeroCopy]string{"auto", "on", "off"}

// String returns the choice's name ("auto", "on", "off").
func (z ZeroCopy) String() string {
	if z < numZeroCopy {
		return zeroCopyNames[z]
	}
	return "ZeroCopy(" + strconv.Itoa(int(z)) + ")"
}

// ParseZeroCopy parses a choice's name; "" is ZeroCopyAuto.
func ParseZeroCopy(s string) (ZeroCopy, error) {
	z, ok := parseName(s, zeroCopyNames[:])
	if !ok {
		return 0, fmt.Errorf("zero-copy %q (want auto, on or off): %w", s, ErrOption)
	}
	return ZeroCopy(z), nil
}

// parseName returns name's index in names; "" is index 0 (auto).
func parseName(name string, names []string) (int, bool) {
	if name == "" {
		return 0, true
	}
	i := slices.Index(names, name)
	return i, i >= 0
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
