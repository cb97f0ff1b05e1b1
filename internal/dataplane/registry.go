package dataplane

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Options open a backend on an interface.
type Options struct {
	// Iface is the network interface to serve on.
	Iface string
	// Queues is how many RX queues to serve (0 = all the interface has).
	Queues int
	// XDPMode selects the AF_XDP attach mode: "auto" (native, then
	// generic), "native" or "generic". Ignored by other backends.
	XDPMode string
	// ZeroCopy selects AF_XDP zero-copy: "auto" (try, fall back to copy),
	// "on" or "off". Ignored by other backends.
	ZeroCopy string
	// RingSize is the number of descriptors per ring (0 = backend default).
	RingSize int
	// FrameSize is the UMEM frame size (0 = backend default).
	FrameSize int
}

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
