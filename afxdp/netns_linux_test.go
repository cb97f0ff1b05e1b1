package afxdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// skipUnlessRoot skips a test that needs root and a kernel with AF_XDP.
func skipUnlessRoot(t testing.TB) {
	t.Helper()
	testenv.NeedLab(t)
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		t.Skip("kernel has no AF_XDP (CONFIG_XDP_SOCKETS)")
	}
	if err == nil {
		unix.Close(fd)
	}
}

var labSeq atomic.Int32

// lab is two test-owned network namespaces joined by a veth pair: A holds
// the balancer's interface va (10.77.0.1, fd77::1), B the peer vb
// (10.77.0.2, fd77::2, plus real-server addresses .3 and .4). B reaches the
// VIPs 10.77.0.100 and fd77::100 through static neighbour entries pointing
// at va's MAC. Both namespaces (and with them the veth) are deleted in
// t.Cleanup, even when the test fails.
type lab struct {
	t          testing.TB
	nsA, nsB   string
	a, b       string
	aMAC, bMAC net.HardwareAddr
	aIP, bIP   netip.Addr
	vip, vip6  netip.Addr
	a6, b6     netip.Addr
	rs1, rs2   netip.Addr
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	var out []byte
	var err error
	// iproute2 occasionally reports EBUSY while a namespace from a
	// parallel test is torn down; retry a few times (harness only).
	for try := 0; try < 3; try++ {
		out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
		if err == nil {
			return string(out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	return ""
}

func newLab(t testing.TB) *lab {
	t.Helper()
	skipUnlessRoot(t)
	removeStaleLabs()
	n := labSeq.Add(1)
	l := &lab{
		t:   t,
		nsA: fmt.Sprintf("xvsafxA%d-%d", os.Getpid(), n), nsB: fmt.Sprintf("xvsafxB%d-%d", os.Getpid(), n),
		a: "va", b: "vb",
		aMAC: net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x01}, bMAC: net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x02},
		aIP: netip.MustParseAddr("10.77.0.1"), bIP: netip.MustParseAddr("10.77.0.2"),
		rs1: netip.MustParseAddr("10.77.0.3"), rs2: netip.MustParseAddr("10.77.0.4"),
		vip: netip.MustParseAddr("10.77.0.100"), vip6: netip.MustParseAddr("fd77::100"),
		a6: netip.MustParseAddr("fd77::1"), b6: netip.MustParseAddr("fd77::2"),
	}
	run(t, "ip", "netns", "add", l.nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.nsA).Run() })
	run(t, "ip", "netns", "add", l.nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.nsB).Run() })
	A, B := []string{"ip", "-n", l.nsA}, []string{"ip", "-n", l.nsB}
	cmd := func(base []string, args ...string) { run(t, append(append([]string{}, base...), args...)...) }
	cmd(A, "link", "add", l.a, "address", l.aMAC.String(), "type", "veth", "peer", "name", l.b, "address", l.bMAC.String(), "netns", l.nsB)
	cmd(A, "link", "set", "lo", "up")
	cmd(B, "link", "set", "lo", "up")
	cmd(A, "addr", "add", "10.77.0.1/24", "dev", l.a)
	cmd(A, "-6", "addr", "add", "fd77::1/64", "dev", l.a, "nodad")
	for _, a := range []string{"10.77.0.2/24", "10.77.0.3/24", "10.77.0.4/24"} {
		cmd(B, "addr", "add", a, "dev", l.b)
	}
	cmd(B, "-6", "addr", "add", "fd77::2/64", "dev", l.b, "nodad")
	cmd(A, "link", "set", l.a, "up")
	cmd(B, "link", "set", l.b, "up")
	// veth offloads checksums (a frame carries only the pseudo-header sum
	// until a real NIC fills it in) and VLAN tags (kept beside the frame,
	// not in it); frames read through AF_XDP must be complete.
	if _, err := exec.LookPath("ethtool"); err == nil {
		run(t, "ip", "netns", "exec", l.nsB, "ethtool", "-K", l.b, "tx", "off", "txvlan", "off")
		run(t, "ip", "netns", "exec", l.nsA, "ethtool", "-K", l.a, "tx", "off", "txvlan", "off")
	}
	cmd(B, "neigh", "add", l.vip.String(), "lladdr", l.aMAC.String(), "dev", l.b, "nud", "permanent")
	cmd(B, "-6", "neigh", "add", l.vip6.String(), "lladdr", l.aMAC.String(), "dev", l.b, "nud", "permanent")
	cmd(A, "neigh", "add", l.bIP.String(), "lladdr", l.bMAC.String(), "dev", l.a, "nud", "permanent")
	// B receives NAT-forwarded frames whose source is its own client
	// address: accept them.
	run(t, "ip", "netns", "exec", l.nsB, "sysctl", "-qw", "net.ipv4.conf.all.accept_local=1", "net.ipv4.conf."+l.b+".accept_local=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf."+l.b+".rp_filter=0")
	return l
}

// removeStaleLabs deletes namespaces left by a test binary that died
// without running its cleanups (a panic, a kill).
func removeStaleLabs() {
	names, _ := filepath.Glob("/var/run/netns/xvsafx*")
	for _, p := range names {
		name := filepath.Base(p)
		var pid, n int
		if _, err := fmt.Sscanf(name[len("xvsafxA"):], "%d-%d", &pid, &n); err != nil {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// in runs fn on an OS thread inside namespace ns. The thread is never
// returned to the scheduler (its goroutine exits locked, so the runtime
// ends it), so no other goroutine runs in the wrong namespace.
func (l *lab) in(ns string, fn func()) {
	l.t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		l.t.Fatal(err)
	}
}

// open opens the backend on va.
func (l *lab) open(o dataplane.Options) *Backend {
	l.t.Helper()
	if len(o.Ifaces) == 0 {
		o.Iface = l.a
	}
	var b *Backend
	var err error
	l.in(l.nsA, func() { b, err = Open(o) })
	if err != nil {
		l.t.Fatalf("Open(%+v): %v", o, err)
	}
	l.t.Cleanup(func() { b.Close() })
	return b
}

// udp opens a UDP socket bound to addr in namespace ns.
func (l *lab) udp(ns string, addr netip.AddrPort) *net.UDPConn {
	l.t.Helper()
	var c *net.UDPConn
	var err error
	l.in(ns, func() { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr)) })
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends each payload from c to dst and collects what comes back to
// c, a window of 64 at a time (so the peer's socket buffer never
// overflows), resending the missing ones a few times: the harness tolerates
// the odd loss on a busy 2-core machine; the product does not retry. It
// returns the payloads that came back.
func exchange(t testing.TB, c *net.UDPConn, dst netip.AddrPort, payloads []string) map[string]bool {
	t.Helper()
	return exchangeTries(t, c, dst, payloads, 4)
}

// noExchange checks that nothing comes back (one try, 200 ms).
func noExchange(t testing.TB, c *net.UDPConn, dst netip.AddrPort, payloads []string) bool {
	t.Helper()
	return len(exchangeTries(t, c, dst, payloads, 1)) == 0
}

func exchangeTries(t testing.TB, c *net.UDPConn, dst netip.AddrPort, payloads []string, tries int) map[string]bool {
	t.Helper()
	const window = 64
	got := map[string]bool{}
	buf := make([]byte, 2048)
	for try := 0; try < tries && len(got) < len(payloads); try++ {
		wait := 200 * time.Millisecond
		if try > 0 {
			wait = time.Second
		}
		var missing []string
		for _, p := range payloads {
			if !got[p] {
				missing = append(missing, p)
			}
		}
		for len(missing) > 0 {
			w := missing[:min(window, len(missing))]
			missing = missing[len(w):]
			for _, p := range w {
				if _, err := c.WriteToUDPAddrPort([]byte(p), dst); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(wait)
			for pending := len(w); pending > 0; {
				c.SetReadDeadline(deadline)
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				if !got[string(buf[:n])] {
					got[string(buf[:n])] = true
					pending--
				}
			}
		}
	}
	return got
}
