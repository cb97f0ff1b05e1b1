package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// TestRootFirstPacket: on a two-legged director whose neighbour table was
// just flushed — a real server whose MAC it does not know, a client it has
// never seen — exactly one datagram of a new call reaches the real server,
// and the real server's one answer (the first NAT reply) reaches the
// client: no retransmission is needed. The workers hold each frame while
// the kernel resolves its next hop (asked at once, not at the next
// one-second poll) and send it when the answer arrives. IPv4 and IPv6.
func TestRootFirstPacket(t *testing.T) {
	testenv.NeedLab(t)
	for _, v6 := range []bool{false, true} {
		name := "ipv4"
		if v6 {
			name = "ipv6"
		}
		t.Run(name, func(t *testing.T) {
			l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 1, Legs: 2, KeepOffloads: true})
			if err := waitIPv6(l, ipv6Limit); err != nil {
				t.Fatal(err)
			}
			vip, real, client := l.VIP4, l.Reals[0].Addr4, l.Clients[0].Addr4
			flush := []string{"ip", "neigh", "flush", "all"}
			if v6 {
				vip, real, client = l.VIP6, l.Reals[0].Addr6, l.Clients[0].Addr6
				flush = []string{"ip", "-6", "neigh", "flush", "all"}
			}
			svc := netip.AddrPortFrom(vip, probePort)
			echo, err := lab.ListenUDP(l.Reals[0].NS, netip.AddrPortFrom(real, probePort).String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { echo.Close() })
			go func() {
				buf := make([]byte, 2048)
				for {
					n, from, err := echo.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					echo.WriteToUDPAddrPort(buf[:n], from)
				}
			}()
			b, err := startXVS(t, l, fmt.Sprintf("-A -u %v -s rr\n-a -u %v -r %v -m\n", svc, svc, netip.AddrPortFrom(real, probePort)), "afxdp", "")
			if err != nil {
				t.Fatal(err)
			}
			// The client knows the director's MAC (it will not ask, and so
			// not teach the director its own); the director forgets every
			// neighbour, and the data plane with it (its notifications
			// arrive in milliseconds).
			leg := l.ClientLeg.Addr4
			if v6 {
				leg = l.ClientLeg.Addr6
			}
			if out, err := l.Output(l.Clients[0].NS, "ping", "-c1", "-W2", leg.String()); err != nil {
				t.Fatalf("ping the client leg: %v\n%s", err, out)
			}
			if _, err := l.Output(l.Balancer.NS, flush[0], flush[1:]...); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			for _, a := range []netip.Addr{real, client} {
				if out, _ := l.Output(l.Balancer.NS, "ip", "neigh", "show", "to", a.String()); strings.Contains(out, "lladdr") {
					t.Fatalf("the director still knows %v: %s", a, out)
				}
			}
			c, err := lab.ListenUDP(l.Clients[0].NS, netip.AddrPortFrom(client, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.WriteToUDPAddrPort([]byte("the very first datagram"), svc); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second)) // below SIP's retransmission at 500 ms × 4
			buf := make([]byte, 2048)
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "the very first datagram" || from != svc {
				t.Fatalf("no answer to the one datagram: %q from %v, %v\ncounters:\n%s\nxvs:\n%s",
					buf[:n], from, err, nonZero(scrape(t, l.Balancer.NS, ctlMetrics)), b.stderr.String())
			}
			m := scrape(t, l.Balancer.NS, ctlMetrics)
			if v, _ := m.sum("xvs_neighbour_held_frames_total", map[string]string{"outcome": "sent"}); v < 2 {
				t.Errorf("%v held frames sent, want the datagram and its reply\n%s", v, nonZero(m))
			}
			for _, r := range []string{"no_next_hop", "no_egress", "neighbour_overflow"} {
				if v, _ := m.sum("xvs_frames_total", map[string]string{"reason": r}); v != 0 {
					t.Errorf("%v frames dropped as %s", v, r)
				}
			}
		})
	}
}

// TestRootLocalRealServer: a real server on the director itself (127.0.0.1
// for a VIP the director owns) is IPVS's Local forwarding: -Ln shows Local,
// -S saves -g, and a client's datagram reaches the director's own socket,
// whose answer reaches the client from the VIP. Real servers that can never
// work are refused with ipvsadm's message (a broadcast, a multicast
// address, a VIP the director does not own as its own real server), and one
// whose route leaves by an interface xvs
// does not serve is reported as such (-Ln --health, the metrics, the log),
// not as "not resolved yet".
func TestRootLocalRealServer(t *testing.T) {
	testenv.NeedLab(t)
	l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 1})
	// The director owns VIP4 (as keepalived would put it on an interface),
	// not VIP4+1; it has one more interface, which xvs does not serve.
	other := netip.MustParseAddr("10.77.2.2")
	for _, cmd := range [][]string{
		{"ip", "addr", "add", l.VIP4.String() + "/32", "dev", "lo"},
		{"ip", "link", "add", "xtra", "type", "veth", "peer", "name", "xtrap"},
		{"ip", "addr", "add", "192.168.77.1/24", "dev", "xtra"},
		{"ip", "link", "set", "xtra", "up"},
		{"ip", "link", "set", "xtrap", "up"},
	} {
		if out, err := l.Output(l.Balancer.NS, cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	// Bound to the VIP, so that its answers leave from it (a socket bound
	// to the wildcard would answer from the route's source address).
	local, err := lab.ListenUDP(l.Balancer.NS, netip.AddrPortFrom(l.VIP4, probePort).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := local.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			local.WriteToUDPAddrPort(append([]byte("local: "), buf[:n]...), from)
		}
	}()
	svc := netip.AddrPortFrom(l.VIP4, probePort)
	dir := t.TempDir()
	rf := filepath.Join(dir, "rules")
	os.WriteFile(rf, fmt.Appendf(nil, "-A -u %v -s rr\n-a -u %v -r 127.0.0.1:%d -m\n", svc, svc, probePort), 0o644)
	sock := filepath.Join(dir, "xvs.sock")
	b, err := startXVSArgs(t, l, "run", "--iface", lab.HostIface, "--rules", rf, "--mode", "afxdp", "--control", sock,
		"--metrics", ctlMetrics, "--templates", "4096", "--conns", "4096")
	if err != nil {
		t.Fatal(err)
	}
	c := &ctlLab{t: t, l: l, b: b, sock: sock, adm: xvsadmBinary(t)}

	// Local forwarding, shown and saved as ipvsadm does.
	if out := c.ok("", "-Ln"); !strings.Contains(out, "127.0.0.1:5070") || !strings.Contains(out, "Local") {
		t.Errorf("-Ln does not show the Local real server:\n%s", out)
	}
	if out := c.ok("", "-S", "-n"); !strings.Contains(out, "-r 127.0.0.1:5070 -g") {
		t.Errorf("-S does not save the Local real server as -g:\n%s", out)
	}
	cl, err := lab.ListenUDP(l.Clients[0].NS, netip.AddrPortFrom(l.Clients[0].Addr4, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := ""
	for try := 0; try < 3 && got == ""; try++ {
		cl.WriteToUDPAddrPort([]byte("hello"), svc)
		cl.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		if n, from, err := cl.ReadFromUDPAddrPort(buf); err == nil && from == svc {
			got = string(buf[:n])
		}
	}
	if got != "local: hello" {
		t.Fatalf("the director's own server did not answer from the VIP: %q\ncounters:\n%s\nxvs:\n%s", got,
			nonZero(scrape(t, l.Balancer.NS, ctlMetrics)), b.stderr.String())
	}
	if v, _ := scrape(t, l.Balancer.NS, ctlMetrics).sum("xvs_local_delivered_total", nil); v == 0 {
		t.Error("local deliveries not counted")
	}

	// Real servers that can never work: refused, the configuration intact.
	c.ok("", "-A", "-u", netip.AddrPortFrom(other, probePort).String(), "-s", "rr")
	for _, r := range []struct{ svc, server, why string }{
		{svc.String(), "10.77.1.255:5070", "broadcast"},
		{svc.String(), "224.0.0.9:5070", "multicast"},
		{netip.AddrPortFrom(other, probePort).String(), netip.AddrPortFrom(other, probePort).String(), "not an address of this director"},
	} {
		_, errs, code := c.xvsadm("", "-a", "-u", r.svc, "-r", r.server, "-m")
		if code == 0 || !strings.Contains(errs, "Invalid argument") || !strings.Contains(errs, r.why) {
			t.Errorf("-a -r %s: exit %d, %q; want a refusal naming %q", r.server, code, errs, r.why)
		}
	}

	// A real server routed through an interface xvs does not serve.
	c.ok("", "-a", "-u", svc.String(), "-r", "192.168.77.7:5070", "-m")
	want := "not reachable through a served interface (routed via xtra)"
	var health string
	for deadline := time.Now().Add(ctlLimit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if health = c.ok("", "-Ln", "--health"); strings.Contains(health, want) {
			break
		}
	}
	if !strings.Contains(health, "192.168.77.7:5070") || !strings.Contains(health, want) {
		t.Errorf("-Ln --health:\n%s\nwant %q", health, want)
	}
	m := scrape(t, l.Balancer.NS, ctlMetrics)
	if v, n := m.sum("xvs_server_next_hop", map[string]string{"server": "192.168.77.7:5070", "status": "unserved", "iface": "xtra"}); n != 1 || v != 1 {
		t.Errorf("xvs_server_next_hop for the unserved server: %v (%d series)", v, n)
	}
	if v, n := m.sum("xvs_server_next_hop", map[string]string{"server": "127.0.0.1:5070", "status": "local"}); n != 1 || v != 1 {
		t.Errorf("xvs_server_next_hop for the Local server: %v (%d series)", v, n)
	}
	logged := func() int {
		return strings.Count(b.stderr.String(), "real server is not reachable through a served interface")
	}
	for deadline := time.Now().Add(ctlLimit); logged() == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	time.Sleep(2500 * time.Millisecond) // two more checks: logged once, not every second
	if n := logged(); n != 1 {
		t.Errorf("logged %d times, want once (then with backoff):\n%s", n, b.stderr.String())
	}
	if strings.Contains(b.stderr.String(), "not resolved yet") {
		t.Errorf("the unserved real server was reported as not resolved yet:\n%s", b.stderr.String())
	}
}
