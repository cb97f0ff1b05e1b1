package afxdp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// sockopt reads an integer SOL_SOCKET option of q's socket.
func sockopt(t *testing.T, q *Queue, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(q.live[0].fd, unix.SOL_SOCKET, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// echoes opens the backend with o on the lab, steers the VIP's port 5060 to
// it, runs an echo worker and checks that n datagrams come back.
func echoes(t *testing.T, l *lab, o dataplane.Options, n int) *Backend {
	t.Helper()
	b := l.open(o)
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 5060}}}); err != nil {
		t.Fatal(err)
	}
	q := b.AFXDPQueues()[0]
	stop := echo(q)
	c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40000))
	if got := exchange(t, c, netip.AddrPortFrom(l.vip, 5060), payloads("bp", n)); len(got) != n {
		stop()
		t.Fatalf("%d of %d echoed; queue %+v", len(got), n, q.Stats())
	}
	stop()
	quiesce(t, q)
	return b
}

// TestBusyPoll: --busy-poll sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL (in
// microseconds) and SO_BUSY_POLL_BUDGET on every queue's socket, and the
// queue still forwards everything (its waits now poll NAPI from the
// worker's system calls) without losing a frame.
func TestBusyPoll(t *testing.T) {
	l := newLab(t)
	// The kernel has no getsockopt for SO_BUSY_POLL_BUDGET: record what
	// was set (and accepted).
	orig := setSockoptInt
	set := map[int]int{}
	setSockoptInt = func(fd, level, opt, v int) error {
		err := orig(fd, level, opt, v)
		if level == unix.SOL_SOCKET && err == nil {
			set[opt] = v
		}
		return err
	}
	t.Cleanup(func() { setSockoptInt = orig })
	b := echoes(t, l, dataplane.Options{XDPMode: dataplane.XDPNative, BusyPoll: 50 * time.Microsecond, BusyPollBudget: 16}, 3000)
	q := b.AFXDPQueues()[0]
	if d, err := q.BusyPoll(); d != 50*time.Microsecond || err != nil {
		t.Fatalf("BusyPoll() = %v, %v", d, err)
	}
	for opt, want := range map[int]int{unix.SO_PREFER_BUSY_POLL: 1, unix.SO_BUSY_POLL: 50} {
		if got := sockopt(t, q, opt); got != want {
			t.Errorf("socket option %#x = %d, want %d", opt, got, want)
		}
	}
	if set[unix.SO_BUSY_POLL_BUDGET] != 16 {
		t.Errorf("SO_BUSY_POLL_BUDGET set to %d, want 16", set[unix.SO_BUSY_POLL_BUDGET])
	}
	if s := q.Stats(); s.BusyPollRefused != 0 || s.Syscalls == 0 || s.TxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := b.BusyPollErr(); err != nil {
		t.Error(err)
	}
}

// TestBusyPollOffByDefault: without Options.BusyPoll the sockets are left
// interrupt-driven.
func TestBusyPollOffByDefault(t *testing.T) {
	l := newLab(t)
	b := l.open(dataplane.Options{XDPMode: dataplane.XDPNative})
	q := b.AFXDPQueues()[0]
	if d, err := q.BusyPoll(); d != 0 || err != nil {
		t.Fatalf("BusyPoll() = %v, %v", d, err)
	}
	if got := sockopt(t, q, unix.SO_PREFER_BUSY_POLL); got != 0 {
		t.Errorf("SO_PREFER_BUSY_POLL = %d", got)
	}
	if got := sockopt(t, q, unix.SO_BUSY_POLL); got != 0 {
		t.Errorf("SO_BUSY_POLL = %d", got)
	}
}

// TestBusyPollRefused: a kernel that refuses one of the options (here
// SO_BUSY_POLL_BUDGET with ENOPROTOOPT, as a kernel before 5.11 does) leaves
// the queue serving interrupt-driven with busy polling turned off again on
// the socket; the refusal is counted and reported.
func TestBusyPollRefused(t *testing.T) {
	l := newLab(t)
	orig := setSockoptInt
	setSockoptInt = func(fd, level, opt, v int) error {
		if level == unix.SOL_SOCKET && opt == unix.SO_BUSY_POLL_BUDGET {
			return unix.ENOPROTOOPT
		}
		return orig(fd, level, opt, v)
	}
	t.Cleanup(func() { setSockoptInt = orig })
	b := echoes(t, l, dataplane.Options{XDPMode: dataplane.XDPNative, BusyPoll: 50 * time.Microsecond}, 500)
	q := b.AFXDPQueues()[0]
	if d, err := q.BusyPoll(); d != 0 || !errors.Is(err, unix.ENOPROTOOPT) {
		t.Fatalf("BusyPoll() = %v, %v; want 0, ENOPROTOOPT", d, err)
	}
	if err := b.BusyPollErr(); !errors.Is(err, unix.ENOPROTOOPT) {
		t.Errorf("BusyPollErr() = %v", err)
	}
	if s := q.Stats(); s.BusyPollRefused != 1 {
		t.Errorf("BusyPollRefused = %d, want 1", s.BusyPollRefused)
	}
	if got := sockopt(t, q, unix.SO_PREFER_BUSY_POLL); got != 0 {
		t.Errorf("SO_PREFER_BUSY_POLL left at %d after the refusal", got)
	}
	if got := sockopt(t, q, unix.SO_BUSY_POLL); got != 0 {
		t.Errorf("SO_BUSY_POLL left at %d after the refusal", got)
	}
}

// TestBusyPollOptionErrors: a negative duration or a budget the kernel
// cannot hold is refused before anything is attached.
func TestBusyPollOptionErrors(t *testing.T) {
	l := newLab(t)
	for _, o := range []dataplane.Options{
		{BusyPoll: -time.Microsecond},
		{BusyPoll: time.Microsecond, BusyPollBudget: -1},
		{BusyPoll: time.Microsecond, BusyPollBudget: 1 << 16},
	} {
		o.Iface = l.a
		var err error
		l.in(l.nsA, func() { _, err = Open(o) })
		if !errors.Is(err, ErrBadOption) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if out := run(t, "ip", "-n", l.nsA, "link", "show", l.a); containsXDP(out) {
		t.Errorf("XDP program left attached:\n%s", out)
	}
}
