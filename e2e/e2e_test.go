// Package e2e runs the real xvs binary (`xvs run`) in a network-namespace
// lab between real SIP agents (SIPp) and checks what an operator would:
// every call succeeds, each Call-ID reaches exactly one real server, calls
// spread over all servers, one Call-ID from two clients reaches one server
// (-M 0.0.0.0), and the balancer's host keeps working meanwhile.
//
// The tests need root; they skip without it, and skip when a tool is
// missing unless CI=true, where a missing tool fails them.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// xvsBinary builds ./cmd/xvs once per test binary. The overlay adds a blank
// import of the raw-socket backend, in case cmd/xvs does not (yet) import
// it itself; it changes nothing when it does.
func xvsBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "xvs-e2e-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		root, _ := filepath.Abs("..")
		extra := filepath.Join(dir, "backends.go")
		os.WriteFile(extra, []byte("package main\n\nimport _ \"github.com/xvs-lb/xvs/internal/rawsock\"\n"), 0o644)
		overlay := filepath.Join(dir, "overlay.json")
		os.WriteFile(overlay, fmt.Appendf(nil, `{"Replace":{%q:%q}}`, filepath.Join(root, "cmd/xvs/zz_e2e_backends.go"), extra), 0o644)
		if build.bin, build.err = testenv.Build(dir, "xvs", "-overlay", overlay); build.err != nil {
			return
		}
		if out, err := exec.Command(build.bin, "run", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--iface") {
			build.err = fmt.Errorf("xvs run is not available yet: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// balancer is a running `xvs run`.
type balancer struct {
	cmd    *exec.Cmd
	stderr *testenv.Buffer
	done   chan error
}

// errNoBackend is a skip reason: the binary lacks the requested backend.
var errNoBackend = errors.New("backend not available")

// startXVS runs xvs in the balancer namespace and waits for its mode line.
func startXVS(t *testing.T, l *lab.Lab, rules, mode, xdpMode string) (*balancer, error) {
	t.Helper()
	bin := xvsBinary(t)
	dir := t.TempDir()
	rf := filepath.Join(dir, "rules")
	if err := os.WriteFile(rf, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, iface := range l.Ifaces {
		args = append(args, "--iface", iface)
	}
	args = append([]string{"run"}, append(args, "--rules", rf, "--mode", mode,
		"--control", filepath.Join(dir, "xvs.sock"), "--metrics", ctlMetrics, "--templates", "65536", "--conns", "65536")...)
	if xdpMode != "" {
		args = append(args, "--xdp-mode", xdpMode)
	}
	b := &balancer{stderr: &testenv.Buffer{}, done: make(chan error, 1)}
	b.cmd = lab.Command(context.Background(), l.Balancer.NS, bin, args...)
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.stop(t) })
	deadline := time.After(15 * time.Second)
	for !strings.Contains(b.stderr.String(), "mode=") {
		select {
		case err := <-b.done:
			b.done <- err
			out := b.stderr.String()
			if strings.Contains(out, "no such data-plane backend") || strings.Contains(out, "not supported") {
				return nil, fmt.Errorf("%w: xvs run --mode %s %s: %s", errNoBackend, mode, xdpMode, out)
			}
			t.Fatalf("xvs exited at start: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("xvs did not log its mode within 15s:\n%s", b.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return b, nil
}

// stop sends SIGTERM and expects a clean exit within 10 s.
func (b *balancer) stop(t *testing.T) {
	if b.cmd.Process == nil {
		return
	}
	select {
	case err := <-b.done: // already gone
		b.done <- err
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		b.done <- err
		if err != nil {
			t.Errorf("xvs did not exit cleanly on SIGTERM: %v\n%s", err, b.stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		t.Errorf("xvs did not exit within 10s of SIGTERM\n%s", b.stderr.String())
	}
}

type cell struct {
	name, mode, xdpMode string
	dr                  bool
	v6                  bool // SIPp calls over IPv6 (VIP6) instead of IPv4
	// legs is the balancer's: 1 (the lab's default layout), or 2 with the
	// clients on one leg and the real servers on the other, every frame
	// crossing legs, and the veths' offloads at the kernel's defaults
	// (senders leave checksums to the offload).
	legs int
}

var matrix = []cell{
	{"raw/nat", "raw", "", false, false, 1},
	{"raw/dr", "raw", "", true, false, 1},
	{"afxdp-native/nat", "afxdp", "native", false, false, 1},
	{"afxdp-native/dr", "afxdp", "native", true, false, 1},
	{"afxdp-generic/nat", "afxdp", "generic", false, false, 1},
	{"afxdp-generic/dr", "afxdp", "generic", true, false, 1},
	{"raw/nat/ipv6", "raw", "", false, true, 1},
	{"raw/dr/ipv6", "raw", "", true, true, 1},
	{"afxdp-native/nat/ipv6", "afxdp", "native", false, true, 1},
	{"afxdp-native/dr/ipv6", "afxdp", "native", true, true, 1},
	{"afxdp-generic/nat/ipv6", "afxdp", "generic", false, true, 1},
	{"afxdp-generic/dr/ipv6", "afxdp", "generic", true, true, 1},
}

const (
	sipPort    = 5060 // SIPp calls
	probePort  = 5070 // Go senders and listeners: shared Call-IDs, IPv6
	e2eCalls   = 30
	e2eRate    = 60
	sharedIDs  = 12
	probeLimit = 10 * time.Second
	ipv6Limit  = 10 * time.Second // duplicate address detection in a new lab
)

func TestRootE2E(t *testing.T) {
	testenv.Require(t, lab.Available())
	_, err := sipp.Path()
	testenv.Require(t, err)
	for _, legs := range []int{1, 2} {
		for _, c := range matrix {
			c.legs = legs
			name := c.name
			if legs == 2 {
				name = "two-legs/" + name
			}
			t.Run(name, func(t *testing.T) { runCell(t, c) })
		}
	}
}

func runCell(t *testing.T, c cell) {
	l, err := lab.New(lab.Spec{Clients: 2, RealServers: 3, Legs: c.legs, KeepOffloads: c.legs == 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fwd := "-m"
	if c.dr {
		fwd = "-g"
		if err := l.UseDirectRouting(); err != nil {
			t.Fatal(err)
		}
	}
	// IPv6 works once duplicate address detection is over (see waitIPv6).
	if err := waitIPv6(l, ipv6Limit); err != nil {
		t.Fatal(err)
	}
	var rules strings.Builder
	for _, svc := range []netip.AddrPort{
		netip.AddrPortFrom(l.VIP4, sipPort), netip.AddrPortFrom(l.VIP6, sipPort),
		netip.AddrPortFrom(l.VIP4, probePort), netip.AddrPortFrom(l.VIP6, probePort),
	} {
		mask := "0.0.0.0" // one template per Call-ID whatever the client
		if svc.Addr().Is6() {
			mask = "64" // ipvsadm's IPv6 mask is a prefix length (1..128); the clients share fd77::/64
		}
		fmt.Fprintf(&rules, "-A -u %v -s rr -p 60 -M %s --pe sip -o\n", svc, mask)
		for _, r := range l.Reals {
			a := r.Addr4
			if svc.Addr().Is6() {
				a = r.Addr6
			}
			fmt.Fprintf(&rules, "-a -u %v -r %v %s -w 1\n", svc, netip.AddrPortFrom(a, svc.Port()), fwd)
		}
	}
	// Agents first, so that no call meets a closed port.
	vip, client := l.VIP4, l.Clients[0].Addr4
	if c.v6 {
		vip, client = l.VIP6, l.Clients[0].Addr6
	}
	var uas []*sipp.Server
	for _, r := range l.Reals {
		addr := netip.AddrPortFrom(r.Addr4, sipPort)
		if c.v6 {
			addr = netip.AddrPortFrom(r.Addr6, sipPort)
		}
		if c.dr {
			addr = netip.AddrPortFrom(vip, sipPort) // answers must leave from the VIP
		}
		s, err := sipp.UAS{NS: r.NS, Addr: addr, Dir: t.TempDir()}.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
		uas = append(uas, s)
	}
	probes := startProbes(t, l)

	start := time.Now()
	b, err := startXVS(t, l, rules.String(), c.mode, c.xdpMode)
	if errors.Is(err, errNoBackend) {
		t.Skip(err)
	}
	t.Logf("%s", firstLine(b.stderr.String(), "mode="))

	// The host keeps working while xvs is attached: checked during the calls.
	hostErr := make(chan error, 1)
	go func() { hostErr <- l.CheckHost(l.Clients[1]) }()

	res, err := sipp.UAC{NS: l.Clients[0].NS, Local: netip.AddrPortFrom(client, sipPort),
		Target: netip.AddrPortFrom(vip, sipPort), Calls: e2eCalls, Rate: e2eRate, Pause: 100 * time.Millisecond,
		Dir: t.TempDir()}.Run(t.Context())
	if err != nil || res.ExitCode != 0 || res.Successful != e2eCalls || res.Failed != 0 {
		t.Errorf("sipp: %d successful, %d failed, exit %d, %v\n%s\nxvs:\n%s", res.Successful, res.Failed, res.ExitCode, err, res.Output, b.stderr.String())
	}
	if err := <-hostErr; err != nil {
		t.Errorf("host while xvs runs: %v", err)
	}

	// Every Call-ID on exactly one real server; all servers used.
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
	if len(seen) != e2eCalls {
		t.Errorf("real servers saw %d Call-IDs, want %d", len(seen), e2eCalls)
	}
	for id, on := range seen {
		if len(on) != 1 {
			t.Errorf("Call-ID %s on %v, want exactly one real server", id, on)
		}
	}
	if len(perServer) != len(l.Reals) {
		t.Errorf("calls per server %v: want all %d servers used", perServer, len(l.Reals))
	}

	// One Call-ID from two clients reaches one server (-M 0.0.0.0), IPv4
	// and IPv6.
	for _, vip := range []netip.Addr{l.VIP4, l.VIP6} {
		sharedCallIDs(t, l, probes, netip.AddrPortFrom(vip, probePort))
	}
	// Nothing was dropped for want of a next hop; with the offloads at their
	// defaults the senders' partial checksums were completed.
	m := scrape(t, l.Balancer.NS, ctlMetrics)
	for _, r := range []string{"no_egress", "no_next_hop", "neighbour_overflow"} {
		if v, _ := m.sum("xvs_frames_total", map[string]string{"reason": r}); v != 0 {
			t.Errorf("%v frames dropped as %s", v, r)
		}
	}
	if v, _ := m.sum("xvs_checksum_completed_total", nil); c.legs == 2 && v == 0 {
		t.Errorf("offloads on, but no partial checksum completed")
	}
	t.Logf("cell %s: %v, calls per server %v", c.name, time.Since(start).Round(time.Millisecond), perServer)
}

// probes records, per real server, the Call-IDs of datagrams received on
// probePort (IPv4 and IPv6, any local address: works for NAT and DR).
type probes struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // Call-ID → servers
}

func startProbes(t *testing.T, l *lab.Lab) *probes {
	p := &probes{seen: map[string]map[string]bool{}}
	for _, r := range l.Reals {
		var conn net.PacketConn
		if err := l.Do(r.NS, func() (err error) {
			conn, err = net.ListenPacket("udp", fmt.Sprintf(":%d", probePort)) // dual-stack
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		go func() {
			buf := make([]byte, 4096)
			for {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				id := callID(buf[:n])
				p.mu.Lock()
				if p.seen[id] == nil {
					p.seen[id] = map[string]bool{}
				}
				p.seen[id][r.Role] = true
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// sharedCallIDs sends INVITEs with the same Call-IDs from both clients to
// vip and checks each Call-ID reached exactly one server.
func sharedCallIDs(t *testing.T, l *lab.Lab, p *probes, vip netip.AddrPort) {
	t.Helper()
	prefix := fmt.Sprintf("shared-%s-", vip.Addr())
	for _, c := range l.Clients {
		src := c.Addr4
		if vip.Addr().Is6() {
			src = c.Addr6
		}
		conn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(src, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		for i := range sharedIDs {
			d := craft.DefaultDialog(fmt.Sprintf("%s%d", prefix, i))
			if _, err := conn.WriteToUDPAddrPort(d.Invite(), vip); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
		time.Sleep(20 * time.Millisecond) // the first client's templates exist first
	}
	deadline := time.Now().Add(probeLimit)
	for {
		p.mu.Lock()
		n, bad := 0, ""
		servers := map[string]bool{}
		for id, on := range p.seen {
			if strings.HasPrefix(id, prefix) {
				n++
				if len(on) != 1 {
					bad = fmt.Sprintf("%s on %v", id, on)
				}
				for s := range on {
					servers[s] = true
				}
			}
		}
		p.mu.Unlock()
		if bad != "" {
			t.Errorf("%v: %s, want one server per Call-ID whatever the client", vip, bad)
			return
		}
		if n == sharedIDs {
			if len(servers) < 2 {
				t.Errorf("%v: shared Call-IDs all on %v: no spread", vip, servers)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%v: %d of %d shared Call-IDs reached a real server", vip, n, sharedIDs)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func callID(msg []byte) string {
	for _, line := range strings.Split(string(msg), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(k, "Call-ID") || k == "i") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitIPv6 waits, at most limit, until no address in the lab is tentative.
// A new lab's link-local addresses spend a second or two in duplicate
// address detection; meanwhile the router cannot send a neighbour
// solicitation for a packet it forwards (Linux solicits from a
// non-tentative link-local address when the packet's source is not its
// own) and holds the first packets to each neighbour for one solicitation
// interval (1 s). SIPp's UAC retransmits its INVITEs after 500 ms, both
// copies arrive back to back, and SIPp 3.6.1's UAS aborts the call at the
// second copy ("unexpected message" while it waits for the ACK). IPv4 has
// no such delay.
func waitIPv6(l *lab.Lab, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var busy []string
		for _, ns := range l.Namespaces() {
			out, err := lab.Exec(ns, "ip", "-6", "-o", "addr", "show", "tentative")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" {
				busy = append(busy, ns)
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 addresses still tentative after %v in %v", limit, busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func firstLine(s, substr string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
