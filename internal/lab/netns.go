package lab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has entered network namespace ns, and
// waits for it. Sockets fn opens stay in ns after it returns and may be used
// from any goroutine. fn must not start goroutines that expect to be in ns:
// only its own thread is. If the thread cannot return to its namespace it is
// retired (never reused by the Go scheduler).
func (l *Lab) Do(ns string, fn func() error) error { return Do(ns, fn) }

// Do runs fn in network namespace ns (see [Lab.Do]).
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: own network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: enter namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the locked thread exits with the goroutine
		errc <- ferr
	}()
	return <-errc
}

// MAC returns the hardware address of iface in namespace ns.
func MAC(ns, iface string) (mac [6]byte, err error) {
	err = Do(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("lab: %s in %s has no Ethernet address", iface, ns)
		}
		copy(mac[:], ifi.HardwareAddr)
		return nil
	})
	return mac, err
}

// ListenUDP opens a UDP socket bound to addr (host:port) in namespace ns.
func ListenUDP(ns, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := Do(ns, func() error {
		a, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp", a)
		return err
	})
	return c, err
}
