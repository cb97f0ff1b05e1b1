package afxdp

import (
	"errors"

	"github.com/xvs-lb/xvs/dataplane"
)

// Errors Open and Update return, wrapped with context; test with errors.Is.
var (
	// ErrPermission: the process may not create BPF objects or AF_XDP
	// sockets.
	ErrPermission = errors.New("AF_XDP needs root or CAP_NET_ADMIN+CAP_BPF")
	// ErrNoInterface: the interface does not exist (in this network
	// namespace).
	ErrNoInterface = errors.New("no such network interface")
	// ErrMTU: the interface's MTU does not fit the UMEM frame size.
	ErrMTU = errors.New("MTU too large for the AF_XDP frame size")
	// ErrNoNativeXDP: XDPMode "native" on a driver without native XDP.
	ErrNoNativeXDP = errors.New("driver has no native XDP support")
	// ErrNoZeroCopy: ZeroCopy "on" on a driver or mode without AF_XDP
	// zero-copy.
	ErrNoZeroCopy = errors.New("driver has no AF_XDP zero-copy support")
	// ErrNotSupported: the kernel has no AF_XDP (or XDP) support.
	ErrNotSupported = errors.New("kernel has no AF_XDP support")
	// ErrBusy: another process holds the interface's XDP hook through a
	// BPF link (a running xvs, or another XDP application).
	ErrBusy = errors.New("interface's XDP hook is held by another program")
	// ErrBadOption: an Options field has an invalid value.
	ErrBadOption = errors.New("invalid AF_XDP option")
	// ErrFilterTooLarge: a filter has more entries than MaxFilterEntries
	// (Check, Update); it is dataplane.ErrFilterTooLarge.
	ErrFilterTooLarge = dataplane.ErrFilterTooLarge
)
