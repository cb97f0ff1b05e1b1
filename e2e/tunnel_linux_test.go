package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// tunnelCells: each runs SIPp calls through one virtual service whose three
// real servers are one of each tunnel type, so that a cell covers IPIP, GUE
// and GRE, with and without checksums, and a real server of the other
// address family (4in6, 6in4).
var tunnelCells = []struct {
	name, mode, xdpMode string
	v6                  bool
	legs                int // the balancer's legs (lab.Spec.Legs; two: clients on their own leg, offloads at their defaults)
}{
	{"raw/ipv4", "raw", "", false, 1},
	{"raw/ipv6", "raw", "", true, 1},
	{"afxdp-native/ipv4", "afxdp", "native", false, 1},
	{"afxdp-native/ipv6", "afxdp", "native", true, 1},
	{"two-legs/raw/ipv6", "raw", "", true, 2},
	{"two-legs/afxdp-native/ipv4", "afxdp", "native", false, 2},
}

// TestRootTunnels: SIPp calls through tunnelling real servers (-i, every
// --tun-type) complete, each Call-ID on exactly one server, all servers
// used, over IPv4 and IPv6, on AF_XDP and the raw socket, with the clients
// on the real servers' leg and on a leg of their own (the encapsulated
// frames leave by the servers' leg, the partial checksums of the clients'
// TX offload completed before encapsulation). The real servers
// decapsulate with the lab's XDP decapsulator (decap_linux_test.go) and
// answer the client directly, as for direct routing.
func TestRootTunnels(t *testing.T) {
	testenv.NeedLab(t)
	_, err := sipp.Path()
	testenv.Require(t, err)
	for _, c := range tunnelCells {
		t.Run(c.name, func(t *testing.T) {
			l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 3, Legs: c.legs, KeepOffloads: c.legs == 2})
			// Real servers as for direct routing: the VIPs on their
			// loopback, replies straight to the client.
			if err := l.UseDirectRouting(); err != nil {
				t.Fatal(err)
			}
			if err := waitIPv6(l, ipv6Limit); err != nil {
				t.Fatal(err)
			}
			var nss []string
			for _, r := range l.Reals {
				nss = append(nss, r.NS)
			}
			detach, err := attachDecap(l, nss)
			testenv.Require(t, err)
			t.Cleanup(detach)

			vip, client := l.VIP4, l.Clients[0].Addr4
			if c.v6 {
				vip, client = l.VIP6, l.Clients[0].Addr6
			}
			svc := netip.AddrPortFrom(vip, sipPort)
			addr := func(r lab.Host, v6 bool) netip.Addr {
				if v6 {
					return r.Addr6
				}
				return r.Addr4
			}
			// IPv4 service: ipip, gue with checksum, gre with checksum to
			// an IPv6 server (4in6). IPv6 service: ipip, gue without
			// checksum (a zero UDP checksum over IPv6, as the kernel sends
			// it), gre to an IPv4 server (6in4).
			opts := []string{"--tun-type ipip", "--tun-type gue --tun-port 6080 --tun-csum", "--tun-type gre --tun-csum"}
			if c.v6 {
				opts = []string{"--tun-type ipip", "--tun-type gue --tun-port 6080 --tun-nocsum", "--tun-type gre --tun-nocsum"}
			}
			var rules strings.Builder
			mask := "0.0.0.0"
			if c.v6 {
				mask = "64"
			}
			fmt.Fprintf(&rules, "-A -u %v -s rr -p 60 -M %s --pe sip -o\n", svc, mask)
			for i, r := range l.Reals {
				fmt.Fprintf(&rules, "-a -u %v -r %v -i -w 1 %s\n", svc, netip.AddrPortFrom(addr(r, c.v6 != (i == 2)), sipPort), opts[i])
			}
			var uas []*sipp.Server
			for _, r := range l.Reals {
				s, err := sipp.UAS{NS: r.NS, Addr: svc, Dir: t.TempDir()}.Start(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Stop() })
				uas = append(uas, s)
			}
			b, err := startXVS(t, l, rules.String(), c.mode, c.xdpMode)
			if errors.Is(err, errNoBackend) {
				t.Skip(err)
			}
			t.Logf("%s", firstLine(b.stderr.String(), "mode="))
			start := time.Now()
			res, err := sipp.UAC{NS: l.Clients[0].NS, Local: netip.AddrPortFrom(client, sipPort),
				Target: svc, Calls: e2eCalls, Rate: e2eRate, Pause: 100 * time.Millisecond,
				Dir: t.TempDir()}.Run(t.Context())
			if err != nil || res.ExitCode != 0 || res.Successful != e2eCalls || res.Failed != 0 {
				t.Errorf("sipp: %d successful, %d failed, exit %d, %v\n%s\nrules:\n%s\nxvs:\n%s", res.Successful, res.Failed, res.ExitCode, err, res.Output, rules.String(), b.stderr.String())
			}
			seen := map[string][]string{}
			perServer := map[string]int{}
			for i, s := range uas {
				ids, err := s.CallIDs()
				if err != nil {
					t.Fatal(err)
				}
				for id := range ids {
					seen[id] = append(seen[id], l.Reals[i].Role)
					perServer[l.Reals[i].Role]++
				}
			}
			split := 0
			for id, on := range seen {
				if len(on) != 1 {
					split++
					t.Errorf("Call-ID %s on %v, want exactly one real server", id, on)
				}
			}
			if len(seen) != e2eCalls || len(perServer) != len(l.Reals) {
				t.Errorf("real servers saw %d Call-IDs (want %d), per server %v", len(seen), e2eCalls, perServer)
			}
			t.Logf("tunnels %s: %d calls in %v, %d split, per server %v", c.name, res.Successful, time.Since(start).Round(time.Millisecond), split, perServer)
		})
	}
}

// TestRootTunnelRouteChange: the tunnel MTU follows the kernel's route to
// the real server while xvs runs (docs/tunnels.md: "followed every
// second"). A 1 000-octet datagram with DF goes through the IPIP tunnel;
// after a route with MTU 700 to the server appears in the balancer's
// namespace it is answered with ICMP fragmentation needed
// (tunnel_icmp_too_big); when the route goes, it is forwarded again.
func TestRootTunnelRouteChange(t *testing.T) {
	testenv.NeedLab(t)
	l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 1, Legs: 1})
	if err := l.UseDirectRouting(); err != nil {
		t.Fatal(err)
	}
	detach, err := attachDecap(l, []string{l.Reals[0].NS})
	testenv.Require(t, err)
	t.Cleanup(detach)
	const port = 7000
	svc, server := netip.AddrPortFrom(l.VIP4, port), netip.AddrPortFrom(l.Reals[0].Addr4, port)
	rules := fmt.Sprintf("-A -u %v -s rr\n-a -u %v -r %v -i -w 1\n", svc, svc, server)
	if _, err := startXVS(t, l, rules, "afxdp", "native"); errors.Is(err, errNoBackend) {
		t.Skip(err)
	}
	var rs, client *net.UDPConn
	if err := l.Do(l.Reals[0].NS, func() (err error) {
		rs, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(svc))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := l.Do(l.Clients[0].NS, func() (err error) {
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.Clients[0].Addr4, port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// DF on every datagram, whatever path MTU the client's kernel learns
	// from the ICMP errors.
	raw, _ := client.SyscallConn()
	raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	buf := make([]byte, 2048)
	// delivered sends datagrams until one reaches the real server or the
	// deadline passes.
	delivered := func(within time.Duration) bool {
		for end := time.Now().Add(within); time.Now().Before(end); {
			client.WriteToUDPAddrPort(payload, svc)
			rs.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := rs.ReadFromUDPAddrPort(buf); err == nil && n == len(payload) {
				return true
			}
		}
		return false
	}
	tooBig := func() float64 {
		v, _ := scrape(t, l.Balancer.NS, ctlMetrics).sum("xvs_frames_total", map[string]string{"reason": "tunnel_icmp_too_big"})
		return v
	}
	if !delivered(5 * time.Second) {
		t.Fatal("a 1000-octet datagram did not reach the real server through the tunnel at MTU 1500")
	}
	route := []string{"route", "add", server.Addr().String() + "/32", "dev", lab.HostIface, "mtu", "700"}
	if out, err := lab.Command(t.Context(), l.Balancer.NS, "ip", route...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v %s", route, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tooBig() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the route's MTU 700 was not followed within 10 s: no tunnel_icmp_too_big")
		}
		client.WriteToUDPAddrPort(payload, svc)
		time.Sleep(100 * time.Millisecond)
	}
	// Drain what arrived before the change; nothing arrives after it.
	rs.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		if _, _, err := rs.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	if delivered(time.Second) {
		t.Fatal("a 1000-octet datagram with DF was tunnelled past a 700-octet route MTU")
	}
	route[1] = "del"
	if out, err := lab.Command(t.Context(), l.Balancer.NS, "ip", route...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v %s", route, err, out)
	}
	if !delivered(10 * time.Second) {
		t.Fatal("the route's removal was not followed within 10 s: the datagram is still refused")
	}
}
