package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// localPortAnswer is what the director's own servers prefix their answers
// with.
const localPortAnswer = "local %d: "

// TestRootLocalRealServerPort: a Local real server on another port than its
// service's (a SIP proxy on the director at 5080 behind VIP:5070) gets the
// client's packets at its own port and its answers reach the client from
// the virtual port, as the kernel's IPVS does with its NAT rewrite and its
// LOCAL_OUT reply hook: xvs marks the packets it hands to the host's stack
// and its nftables table (inet xvs-eth0) DNATs them, the kernel's
// connection tracking translating the answers back. UDP over IPv4 (the real
// server 127.0.0.1:5080) and IPv6 (the director's own address), and TCP
// over IPv4; and two calls from one client address and port (a proxy's),
// --pe sip sending each to another Local server on its own port: each
// reaches its server (the zone of the original direction keeps the kernel's
// connection tracking from pinning the address and port to the first). The
// table holds exactly the configured translations: a removed real server's
// rule goes, and the table goes when xvs stops.
func TestRootLocalRealServerPort(t *testing.T) {
	testenv.NeedLab(t) // nft (package nftables, a prerequisite) reads the rules
	l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 1})
	for _, cmd := range [][]string{
		{"ip", "addr", "add", l.VIP4.String() + "/32", "dev", "lo"},
		{"ip", "-6", "addr", "add", l.VIP6.String() + "/128", "dev", "lo", "nodad"},
	} {
		if out, err := l.Output(l.Balancer.NS, cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	const port = probePort + 10 // the local servers' port, not the service's
	const port2 = port + 1      // a second one, for the SIP service
	// Bound to the VIPs, so that their answers leave from them.
	for _, ap := range []netip.AddrPort{
		netip.AddrPortFrom(l.VIP4, port), netip.AddrPortFrom(l.VIP6, port), netip.AddrPortFrom(l.VIP4, port2),
	} {
		c, err := lab.ListenUDP(l.Balancer.NS, ap.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				c.WriteToUDPAddrPort(append(fmt.Appendf(nil, localPortAnswer, ap.Port()), buf[:n]...), from)
			}
		}()
	}
	var ln net.Listener
	if err := lab.Do(l.Balancer.NS, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.VIP4, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, localPortAnswer+"tcp", port)
			c.Close()
		}
	}()

	svc4, svc6 := netip.AddrPortFrom(l.VIP4, probePort), netip.AddrPortFrom(l.VIP6, probePort)
	svcSIP := netip.AddrPortFrom(l.VIP4, probePort+1)
	svcClosed := netip.AddrPortFrom(l.VIP4, probePort+2) // its Local server's port has no socket
	const closedPort = port + 5
	real6 := netip.AddrPortFrom(l.Balancer.Addr6, port) // the director's own address
	dir := t.TempDir()
	rf := filepath.Join(dir, "rules")
	os.WriteFile(rf, fmt.Appendf(nil, "-A -u %v -s rr\n-a -u %v -r 127.0.0.1:%d -m\n-A -u %v -s rr\n-a -u %v -r %v -m\n-A -t %v -s rr\n-a -t %v -r 127.0.0.1:%d -m\n"+
		"-A -u %v -s rr -p 60 -M 0.0.0.0 -o --pe sip\n-a -u %v -r 127.0.0.1:%d -m\n-a -u %v -r 127.0.0.1:%d -m\n"+
		"-A -u %v -s rr\n-a -u %v -r 127.0.0.1:%d -m\n",
		svc4, svc4, port, svc6, svc6, real6, svc4, svc4, port, svcSIP, svcSIP, port, svcSIP, port2, svcClosed, svcClosed, closedPort), 0o644)
	sock := filepath.Join(dir, "xvs.sock")
	b, err := startXVSArgs(t, l, "run", "--iface", lab.HostIface, "--rules", rf, "--mode", "afxdp", "--control", sock,
		"--metrics", ctlMetrics, "--templates", "4096", "--conns", "4096")
	if err != nil {
		t.Fatal(err)
	}
	c := &ctlLab{t: t, l: l, b: b, sock: sock, adm: xvsadmBinary(t)}
	if out := c.ok("", "-Ln"); !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(out, "Local") {
		t.Errorf("-Ln does not show the Local real server:\n%s", out)
	}
	table := "xvs-" + lab.HostIface
	rules := func() string {
		out, _ := l.Output(l.Balancer.NS, "nft", "list", "table", "inet", table)
		return out
	}
	nat4 := fmt.Sprintf("dnat ip to %v:%d", l.VIP4, port)
	nat6 := fmt.Sprintf("dnat ip6 to [%v]:%d", l.VIP6, port)
	if r := rules(); strings.Count(r, nat4) != 3 || strings.Count(r, nat6) != 1 || strings.Count(r, "ct original zone set") != 6 || !strings.Contains(r, "meta mark 0x787613d8") {
		t.Fatalf("nft list table inet %s:\n%s\nwant three rules with %q (UDP, TCP, SIP), one with %q, marked 0x787613d8, and their zones", table, r, nat4, nat6)
	}

	want := fmt.Sprintf(localPortAnswer, port) + "hello"
	for _, tc := range []struct {
		client netip.Addr
		svc    netip.AddrPort
	}{{l.Clients[0].Addr4, svc4}, {l.Clients[0].Addr6, svc6}} {
		cl, err := lab.ListenUDP(l.Clients[0].NS, netip.AddrPortFrom(tc.client, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		got, from := "", netip.AddrPort{}
		for try := 0; try < 3 && got == ""; try++ {
			cl.WriteToUDPAddrPort([]byte("hello"), tc.svc)
			cl.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 2048)
			var n int
			if n, from, err = cl.ReadFromUDPAddrPort(buf); err == nil {
				got = string(buf[:n])
			}
		}
		cl.Close()
		if got != want || from.Addr().Unmap() != tc.svc.Addr() || from.Port() != tc.svc.Port() {
			t.Errorf("UDP to %v: answer %q from %v, want %q from the service\ncounters:\n%s\nxvs:\n%s", tc.svc, got, from, want,
				nonZero(scrape(t, l.Balancer.NS, ctlMetrics)), b.stderr.String())
		}
	}
	// Two calls from one client address and port (a proxy's), each to the
	// next of the SIP service's two Local servers (rr, by Call-ID): each
	// reaches its own server, and both answers come from the service.
	cl, err := lab.ListenUDP(l.Clients[0].NS, netip.AddrPortFrom(l.Clients[0].Addr4, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	answered := map[string]bool{}
	for i := range 2 {
		cl.WriteToUDPAddrPort(craft.SIPInvite(fmt.Sprintf("local-port-%d@client", i)), svcSIP)
		cl.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, from, err := cl.ReadFromUDPAddrPort(buf)
		if err != nil || from.Addr().Unmap() != svcSIP.Addr() || from.Port() != svcSIP.Port() {
			t.Errorf("call %d: answer from %v, %v", i, from, err)
			continue
		}
		prefix, _, _ := strings.Cut(string(buf[:n]), ": ")
		answered[prefix] = true
	}
	cl.Close()
	if want := []string{fmt.Sprintf("local %d", port), fmt.Sprintf("local %d", port2)}; !answered[want[0]] || !answered[want[1]] {
		t.Errorf("two calls from one address and port answered by %v, want %v (one each)\n%s\n%s", answered, want, c.ok("", "-Lcn"), rules())
	}

	// ICMP errors about a translated flow are translated back: nothing
	// listens at the Local server's port, the director's kernel answers
	// port unreachable, and the client's connected socket — whose
	// datagram went to the service's port — gets it as ECONNREFUSED
	// (untranslated, the error would quote the Local port and match no
	// socket of the client).
	err = lab.Do(l.Clients[0].NS, func() error {
		conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(svcClosed))
		if err != nil {
			return err
		}
		defer conn.Close()
		buf := make([]byte, 512)
		for try := 0; try < 3; try++ {
			conn.Write([]byte("hello"))
			conn.SetReadDeadline(time.Now().Add(time.Second))
			_, err = conn.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
		}
		return fmt.Errorf("read: %v, want ECONNREFUSED (the port unreachable for the service's port)", err)
	})
	if err != nil {
		t.Errorf("UDP to %v, whose Local server %d has no socket: %v\n%s", svcClosed, closedPort, err, rules())
	}
	// ... and it was xvs that handed them to the Local server (the kernel
	// answering for the VIP itself would refuse them too).
	if v, _ := scrape(t, l.Balancer.NS, ctlMetrics).sum("xvs_service_in_packets_total", map[string]string{"service": svcClosed.String()}); v == 0 {
		t.Errorf("xvs forwarded none of the datagrams to %v", svcClosed)
	}

	var answer []byte
	err = lab.Do(l.Clients[0].NS, func() error {
		conn, err := net.DialTimeout("tcp", svc4.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		answer, err = io.ReadAll(conn)
		return err
	})
	if want := fmt.Sprintf(localPortAnswer, port) + "tcp"; err != nil || string(answer) != want {
		t.Errorf("TCP to %v: %q, %v; want %q", svc4, answer, err, want)
	}

	// The rule goes with its real server, and the table with xvs.
	c.ok("", "-d", "-u", svc4.String(), "-r", fmt.Sprintf("127.0.0.1:%d", port))
	match := func(proto string, vip netip.Addr) string {
		family := "ip"
		if vip.Is6() {
			family = "ip6"
		}
		return fmt.Sprintf("%s daddr %v %s dport %d", family, vip, proto, probePort)
	}
	if r := rules(); strings.Contains(r, match("udp", l.VIP4)) || !strings.Contains(r, match("tcp", l.VIP4)) || !strings.Contains(r, match("udp", l.VIP6)) {
		t.Errorf("after -d of the UDP IPv4 real server:\n%s", r)
	}
	b.stop(t)
	if out, err := l.Output(l.Balancer.NS, "nft", "list", "tables"); err != nil || strings.Contains(out, table) {
		t.Errorf("xvs stopped but its table stayed: %v\n%s", err, out)
	}
}
