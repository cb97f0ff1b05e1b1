package lab

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// newLab builds a lab for a test (skipping only without root) and closes it
// when the test ends.
func newLab(t *testing.T, spec Spec) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		if errors.Is(err, ErrNotRoot) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	l, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func TestRootLabReachability(t *testing.T) {
	l := newLab(t, Spec{Clients: 2})
	// No address is left tentative (duplicate address detection is off),
	// so the first IPv6 packets are not held for a neighbour retransmission.
	for _, ns := range l.Namespaces() {
		if out, err := l.Output(ns, "ip", "-6", "addr", "show", "tentative"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s: tentative IPv6 addresses right after New: %v\n%s", ns, err, out)
		}
	}
	// The switch forwards as a plain L2 switch: br_netfilter's hooks are
	// off in its namespace (when the module is loaded at all).
	for _, k := range bridgeNFSysctls {
		var v []byte
		err := l.Do(l.Switch, func() (err error) {
			v, err = os.ReadFile("/proc/sys/" + k)
			return err
		})
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil || strings.TrimSpace(string(v)) != "0" {
			t.Fatalf("switch namespace %s = %q, %v; want 0", k, v, err)
		}
	}
	// The host checks end-to-end tests run beside xvs pass on a bare lab.
	if err := l.CheckHost(l.Clients[0]); err != nil {
		t.Fatalf("CheckHost: %v", err)
	}
	// Client → balancer (through the router), both families.
	for _, c := range l.Clients {
		for _, dst := range []string{l.Balancer.Addr4.String(), l.Balancer.Addr6.String()} {
			if out, err := l.Output(c.NS, "ping", "-c1", "-W2", dst); err != nil {
				t.Fatalf("%s → %s: %v\n%s", c.Role, dst, err, out)
			}
		}
	}
	// Real servers reach the clients via the balancer in NAT mode only:
	// the balancer does not forward, so a ping must fail.
	if _, err := l.Output(l.Reals[0].NS, "ping", "-c1", "-W1", l.Clients[0].Addr4.String()); err == nil {
		t.Fatal("real server reached a client through a non-forwarding balancer")
	}
	if err := l.UseDirectRouting(); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{l.Clients[0].Addr4.String(), l.Clients[0].Addr6.String()} {
		if out, err := l.Output(l.Reals[0].NS, "ping", "-c1", "-W2", dst); err != nil {
			t.Fatalf("direct routing: real0 → %s: %v\n%s", dst, err, out)
		}
	}
	out, err := l.Output(l.Reals[1].NS, "ip", "addr", "show", "dev", "lo")
	if err != nil || !strings.Contains(out, l.VIP4.String()) || !strings.Contains(out, l.VIP6.String()) {
		t.Fatalf("VIPs not on real1's loopback: %v\n%s", err, out)
	}
	if err := l.UseNAT(); err != nil {
		t.Fatal(err)
	}
	out, _ = l.Output(l.Reals[1].NS, "ip", "addr", "show", "dev", "lo")
	if strings.Contains(out, l.VIP4.String()) {
		t.Fatal("NAT: VIP still on a real server's loopback")
	}
}

func TestRootLabDoAndUDP(t *testing.T) {
	l := newLab(t, Spec{RealServers: 1})
	srv, err := ListenUDP(l.Reals[0].NS, l.Reals[0].Addr4.String()+":5060")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := l.UseDirectRouting(); err != nil { // a route back to the client
		t.Fatal(err)
	}
	cl, err := ListenUDP(l.Clients[0].NS, ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.WriteTo([]byte("hello"), &net.UDPAddr{IP: l.Reals[0].Addr4.AsSlice(), Port: 5060}); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := srv.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "hello" || from.IP.String() != l.Clients[0].Addr4.String() {
		t.Fatalf("got %q from %v: %v", buf[:n], from, err)
	}
	mac, err := MAC(l.Balancer.NS, HostIface)
	if err != nil || mac == ([6]byte{}) {
		t.Fatalf("MAC %x %v", mac, err)
	}
	// The caller's namespace is untouched: no interface of the lab is here.
	if _, err := net.InterfaceByName("brs"); err == nil {
		t.Fatal("a lab bridge appeared in the test's own namespace")
	}
}

func TestRootLabCloseAndSweep(t *testing.T) {
	l := newLab(t, Spec{RealServers: 1})
	// A process left running in a namespace must not keep it alive.
	cmd := l.Command(t.Context(), l.Reals[0].NS, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Fatalf("%s left behind", ns)
		}
	}
	// A crashed run's leftovers: Sweep removes them by prefix.
	l2 := newLab(t, Spec{Prefix: "xvssweep", RealServers: 1})
	if err := Sweep(l2.Prefix); err != nil {
		t.Fatal(err)
	}
	if len(listNS(l2.Prefix)) != 0 {
		t.Fatal("Sweep left namespaces")
	}
}

// TestRootTwoLegs: the two-legged balancer has a leg on each LAN, the VIPs
// are routed to its client leg, its default route leaves by that leg, and
// the server LAN is on its other one: what crosses the balancer changes
// legs.
func TestRootTwoLegs(t *testing.T) {
	l := newLab(t, Spec{Clients: 1, RealServers: 1, Legs: 2})
	if len(l.Ifaces) != 2 || l.Ifaces[0] != HostIface || l.Ifaces[1] != "eth1" || l.ClientLeg.NS != l.Balancer.NS {
		t.Fatalf("legs %v, client leg %+v", l.Ifaces, l.ClientLeg)
	}
	for _, c := range []struct{ ns, dst, dev string }{
		{l.Clients[0].NS, l.VIP4.String(), "eth0"},            // client: to the VIP via the client leg…
		{l.Router.NS, l.VIP4.String(), "eth1"},                // router: on its client side
		{l.Balancer.NS, l.Clients[0].Addr4.String(), "eth1"},  // balancer: clients on the client leg
		{l.Balancer.NS, l.Reals[0].Addr4.String(), HostIface}, // real servers on the other
		{l.Balancer.NS, "203.0.113.9", "eth1"},                // default route on the client leg
		{l.Balancer.NS, l.Clients[0].Addr6.String(), "eth1"},
	} {
		out, err := l.Output(c.ns, "ip", "route", "get", c.dst)
		if err != nil || !strings.Contains(out, "dev "+c.dev) {
			t.Errorf("%s: route to %s: %q %v, want dev %s", c.ns, c.dst, out, err, c.dev)
		}
	}
	if out, err := l.Output(l.Clients[0].NS, "ip", "route", "get", l.VIP4.String()); err != nil || !strings.Contains(out, "via "+l.ClientLeg.Addr4.String()) {
		t.Errorf("client's route to the VIP: %q %v", out, err)
	}
	if err := l.CheckHost(l.Clients[0]); err != nil {
		t.Fatalf("CheckHost: %v", err)
	}
}

// A second balancer for high-availability tests: on the server LAN beside
// the first, reachable, with its own address; the router sends the VIPs
// wherever RouteVIPsVia says.
func TestRootLabTwoBalancers(t *testing.T) {
	l := newLab(t, Spec{Balancers: 2, RealServers: 1})
	if len(l.Balancers) != 2 || l.Balancers[0] != l.Balancer || l.Balancers[1].Addr4.String() != "10.77.1.3" {
		t.Fatalf("balancers %+v", l.Balancers)
	}
	b2 := l.Balancers[1]
	if out, err := l.Output(b2.NS, "ping", "-c1", "-W2", l.Reals[0].Addr4.String()); err != nil {
		t.Fatalf("balancer2 → real0: %v\n%s", err, out)
	}
	if err := l.RouteVIPsVia(b2.Addr4, b2.Addr6); err != nil {
		t.Fatal(err)
	}
	out, err := l.Output(l.Router.NS, "ip", "route", "get", l.VIP4.String())
	if err != nil || !strings.Contains(out, "via "+b2.Addr4.String()) {
		t.Fatalf("route to the VIP: %v %s", err, out)
	}
	if _, err := New(Spec{Balancers: 3}); err == nil {
		t.Error("three balancers accepted")
	}
	if _, err := New(Spec{Balancers: 2, Directors: 3}); err == nil {
		t.Error("two balancers and three scale-out directors accepted")
	}
	if _, err := New(Spec{Directors: MaxDirectors + 1}); err == nil {
		t.Errorf("%d directors accepted", MaxDirectors+1)
	}
	// The default lab keeps one balancer.
	if one := newLab(t, Spec{RealServers: 1}); len(one.Balancers) != 1 {
		t.Errorf("default lab: %d balancers", len(one.Balancers))
	}
}
