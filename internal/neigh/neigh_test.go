package neigh

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/testenv"
	"golang.org/x/sys/unix"
)

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// inNetns runs fn on a thread switched into the named network namespace.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

func TestResolverRoot(t *testing.T) {
	testenv.NeedLab(t)
	a, b := fmt.Sprintf("xvsnA%d", os.Getpid()), fmt.Sprintf("xvsnB%d", os.Getpid())
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", a).Run()
		exec.Command("ip", "netns", "del", b).Run()
	})
	run(t, "ip", "netns", "add", a)
	run(t, "ip", "netns", "add", b)
	run(t, "ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	run(t, "ip", "-n", a, "addr", "add", "10.66.0.1/24", "dev", "eth0")
	run(t, "ip", "-n", b, "addr", "add", "10.66.0.2/24", "dev", "eth0")
	run(t, "ip", "-n", a, "link", "set", "eth0", "up")
	run(t, "ip", "-n", b, "link", "set", "eth0", "up")
	run(t, "ip", "-n", a, "route", "add", "default", "via", "10.66.0.254")
	run(t, "ip", "-n", a, "neigh", "add", "10.66.0.254", "lladdr", "02:00:00:00:00:fe", "dev", "eth0", "nud", "permanent")
	peerMAC := strings.TrimSpace(run(t, "ip", "-n", b, "-br", "link", "show", "eth0"))
	peerMAC = strings.Fields(peerMAC)[2]

	inNetns(t, a, func() {
		r, err := New("eth0")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := New("nosuch0"); err == nil {
			t.Error("New(nosuch0) succeeded")
		}
		peer := netip.MustParseAddr("10.66.0.2")
		far := netip.MustParseAddr("198.51.100.1")
		if h, err := r.NextHop(peer); err != nil || h != peer {
			t.Errorf("NextHop(on-link) = %v, %v", h, err)
		}
		if h, err := r.NextHop(far); err != nil || h != netip.MustParseAddr("10.66.0.254") {
			t.Errorf("NextHop(far) = %v, %v", h, err)
		}
		// The peer is not resolved yet: Resolve probes and waits for ARP.
		got, err := r.Resolve([]netip.Addr{peer, far}, 2*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		if m, ok := got[peer]; !ok || fmtMAC(m) != peerMAC {
			t.Errorf("Resolve(peer) = %x, want %s", m, peerMAC)
		}
		if m := got[far]; m != [6]byte{2, 0, 0, 0, 0, 0xfe} {
			t.Errorf("Resolve(far) = %x, want the gateway's MAC", m)
		}
		n, _ := r.Neighbors()
		if gw, ok := r.DefaultGateway(far, n); !ok || gw != [6]byte{2, 0, 0, 0, 0, 0xfe} {
			t.Errorf("DefaultGateway = %x, %v", gw, ok)
		}
	})
}

func fmtMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
