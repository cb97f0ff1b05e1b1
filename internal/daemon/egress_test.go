package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
)

// TestReachLogBackoff: an unreachable real server is logged once, then
// after a minute, two, four… up to an hour, while it stays unreachable.
func TestReachLogBackoff(t *testing.T) {
	var buf testenv.Buffer
	d := &Daemon{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r := &reachState{}
	start := time.Unix(1_700_000_000, 0)
	var logged []time.Duration
	for s := time.Duration(0); s <= 3*time.Hour; s += time.Second {
		before := strings.Count(buf.String(), "\n")
		d.logReach(r, start.Add(s), "real server is not reachable", "server", "10.0.0.1")
		if strings.Count(buf.String(), "\n") > before {
			logged = append(logged, s)
		}
	}
	want := []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute, 31 * time.Minute, 63 * time.Minute, 123 * time.Minute} // then every hour (183 min is past the loop)
	if len(logged) != len(want) {
		t.Fatalf("logged at %v, want %v", logged, want)
	}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged at %v, want %v", logged, want)
		}
	}
	if !strings.Contains(buf.String(), "since=") {
		t.Error("repeated lines do not say since when")
	}
}

// BenchmarkLocalSender measures Local delivery: an 850-byte SIP datagram
// handed to the host's stack through the raw IP socket, received by a UDP
// socket on 127.0.0.1, beside a plain UDP send to the same socket in the
// same run (what a local client would pay), and with the packet mark of a
// Local real server on another port. Needs root (a raw socket).
//
//	go test -run '^$' -bench LocalSender ./internal/daemon
func BenchmarkLocalSender(b *testing.B) {
	testenv.NeedRoot(b, "a raw IP socket")
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(8 << 20)
	dst := netip.MustParseAddrPort(c.LocalAddr().String())
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	frame := craft.Spec{Src: netip.MustParseAddrPort("198.51.100.7:5060"), Dst: dst, Payload: craft.SIPInvite("local-bench")}.Build()
	b.Run("udp-send-baseline", func(b *testing.B) {
		s, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		payload := craft.SIPInvite("local-bench")
		b.ReportAllocs()
		for b.Loop() {
			s.Write(payload)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
	for _, c := range []struct {
		name  string
		ports []uint16
	}{
		{"local-sender", nil},
		// With the mark of a Local real server on another port (an
		// SO_MARK control message; no rule in this namespace takes it).
		{"local-sender-marked", []uint16{dst.Port()}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ls localSender
			defer ls.Close()
			frames := [][]byte{frame}
			b.ReportAllocs()
			sent := 0
			for b.Loop() {
				sent += ls.Send(frames, c.ports, packet.LinkEthernet)
			}
			if sent != b.N {
				b.Fatalf("%d of %d sent", sent, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// TestTunnelEgress: a tunnelling real server's outer source and MTU come
// from the kernel's route to it when the configuration is committed (the
// route's source, the interface's MTU), and xvs run --tunnel-source wins
// over the route's source for its family. The route to 127.0.0.2 (local,
// by lo, from 127.0.0.1) is the same on every host.
func TestTunnelEgress(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip(err)
	}
	rules := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rules, []byte("-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 127.0.0.2:5060 -i --tun-type gue --tun-port 6080\n"), 0o600)
	for _, c := range []struct {
		name    string
		sources []netip.Addr
		want    netip.Addr
	}{
		{"route", nil, netip.MustParseAddr("127.0.0.1")},
		{"tunnel-source", []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.9")}, netip.MustParseAddr("127.0.0.9")},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: t.TempDir(),
				TunnelSources: c.sources, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			dst := d.Snapshot().Services()[0].Dests[0]
			if dst.Source != c.want || dst.MTU != lo.MTU {
				t.Fatalf("outer source %v MTU %d, want %v and lo's %d", dst.Source, dst.MTU, c.want, lo.MTU)
			}
		})
	}
}

// TestLocalPortWithoutNAT: without the kernel's NAT (here: no nft command),
// a Local real server on another port than its service's is refused at
// configuration time with ipvsadm's wording and why — in the rules file at
// start, and by a command, which leaves the running configuration as it
// was — never accepted to be dropped later.
func TestLocalPortWithoutNAT(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rules := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rules, []byte("-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 127.0.0.1:5080 -m\n"), 0o600)
	_, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: t.TempDir(), Logger: quiet})
	want := func(err error) {
		t.Helper()
		if !errors.Is(err, ipvs.ErrLocalPort) || !strings.Contains(err.Error(), "Invalid argument") || !strings.Contains(err.Error(), `"nft"`) {
			t.Errorf("got %v, want %v naming the missing nft", err, ipvs.ErrLocalPort)
		}
	}
	want(err)
	os.WriteFile(rules, []byte("-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 127.0.0.1:5060 -m\n"), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cmd, err := ipvsadm.Parse([]string{"-a", "-u", "10.0.0.1:5060", "-r", "127.0.0.1:5080", "-m"})
	if err != nil {
		t.Fatal(err)
	}
	want(d.Apply(context.Background(), cmd))
	if dests := d.Snapshot().Services()[0].Dests; len(dests) != 1 || !dests[0].Local {
		t.Errorf("the running configuration changed: %v", dests)
	}
}

// A refused locality change is logged once per reason, however often
// checkLocality retries it, and its end once.
func TestRetryLoggedOncePerReason(t *testing.T) {
	var logbuf testenv.Buffer
	rules := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rules, []byte("-A -u 10.0.0.1:5060 -s rr\n-a -u 10.0.0.1:5060 -r 10.0.0.9:5060 -m\n"), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logbuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	noNFT := fmt.Errorf("Invalid argument: %w", ipvs.ErrLocalPort)
	const what = "real servers' locality changed but the configuration was not republished"
	d.mu.Lock()
	for range 5 {
		d.localityLog.report(d.log, what, noNFT)
	}
	d.localityLog.report(d.log, what, errors.New("another reason"))
	d.localityLog.report(d.log, what, errors.New("another reason"))
	d.localityLog.report(d.log, what, nil)
	d.localityLog.report(d.log, what, nil)
	d.localityLog.report(d.log, what, noNFT)
	d.mu.Unlock()
	out := logbuf.String()
	if n := strings.Count(out, "level=WARN msg=\"real servers' locality changed but"); n != 3 {
		t.Errorf("%d refusals logged, want 3 (one per reason and episode):\n%s", n, out)
	}
	if n := strings.Count(out, "now applied"); n != 1 {
		t.Errorf("%d acceptances logged, want 1:\n%s", n, out)
	}
}
