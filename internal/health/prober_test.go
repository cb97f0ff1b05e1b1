package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/sipparse"
)

// sipServer answers OPTIONS on a loopback UDP socket with code (0: stay
// silent); deliver, if set, hands the answer to it instead of the socket
// (as the daemon's tap does in AF_XDP mode).
type sipServer struct {
	c       *net.UDPConn
	code    atomic.Int32
	seen    atomic.Int32
	deliver atomic.Pointer[func(src, dst netip.AddrPort, payload []byte)] // set after serve starts
	mu      sync.Mutex
	callIDs map[string]bool
}

func newSIPServer(t *testing.T, addr string) *sipServer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	s := &sipServer{c: c, callIDs: map[string]bool{}}
	s.code.Store(200)
	go s.serve()
	return s
}

func (s *sipServer) addr() netip.AddrPort { return netip.MustParseAddrPort(s.c.LocalAddr().String()) }

func (s *sipServer) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := s.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		s.seen.Add(1)
		req := buf[:n]
		if sl := sipparse.ParseStartLine(req); sl.Kind != sipparse.KindRequest || sl.Method != sipparse.MethodOptions {
			continue
		}
		id, _ := sipparse.CallID(req)
		s.mu.Lock()
		s.callIDs[string(id)] = true
		s.mu.Unlock()
		code := s.code.Load()
		if code == 0 {
			continue
		}
		var resp bytes.Buffer
		if code >= 200 {
			fmt.Fprintf(&resp, "SIP/2.0 100 Trying\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", id)
			s.send(from, resp.Bytes())
			resp.Reset()
		}
		fmt.Fprintf(&resp, "SIP/2.0 %d Whatever\r\nVia: x\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", code, id)
		s.send(from, resp.Bytes())
	}
}

func (s *sipServer) send(to netip.AddrPort, b []byte) {
	if d := s.deliver.Load(); d != nil {
		(*d)(s.addr(), to, b)
		return
	}
	s.c.WriteToUDPAddrPort(b, to)
}

type rig struct {
	cfg    *ipvs.Config
	p      *Prober
	svc    ipvs.ServiceKey
	snap   atomic.Pointer[ipvs.Snapshot]
	cancel context.CancelFunc
	done   chan struct{}
	log    syncBuf

	maxScripts int
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newRig configures one NAT service on 127.0.0.1 with the given servers and
// check, and runs a prober over it.
func newRig(t *testing.T, h ipvs.HealthCheck, servers ...netip.AddrPort) *rig {
	t.Helper()
	return newRigWith(t, &rig{}, h, servers...)
}

// newRigWith is newRig with r's settings (maxScripts).
func newRigWith(t *testing.T, r *rig, h ipvs.HealthCheck, servers ...netip.AddrPort) *rig {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg, r.svc = cfg, ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 5060}
	if h.Type == ipvs.CheckTCP || h.Type == ipvs.CheckHTTP || h.Type == ipvs.CheckHTTPS {
		r.svc.Protocol = ipvs.TCP
	}
	must(t, cfg.AddService(ipvs.ServiceConfig{Protocol: r.svc.Protocol, Addr: netip.AddrPortFrom(r.svc.Addr, 5060), Scheduler: "rr"}))
	for _, s := range servers {
		must(t, cfg.AddDest(r.svc, ipvs.DestConfig{Addr: s, Fwd: ipvs.Masq, Weight: 1}))
	}
	must(t, cfg.SetHealthCheck(r.svc, &h))
	r.snap.Store(cfg.Snapshot())
	r.p = New(Options{
		Snapshot: r.snap.Load,
		SetHealth: func(svc ipvs.ServiceKey, server netip.AddrPort, up bool) error {
			_, err := cfg.SetDestHealth(svc, server, up)
			r.snap.Store(cfg.Snapshot())
			return err
		},
		SetWeight: func(svc ipvs.ServiceKey, server netip.AddrPort, w int) error {
			_, err := cfg.SetDestWeightOverride(svc, server, w)
			r.snap.Store(cfg.Snapshot())
			return err
		},
		MaxScripts: r.maxScripts,
		Logger:     slog.New(slog.NewTextHandler(io.MultiWriter(&r.log), nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { r.p.Run(ctx); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

func (r *rig) stop() {
	r.cancel()
	<-r.done
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) down(server netip.AddrPort) bool {
	for _, d := range r.snap.Load().Services()[0].Dests {
		if d.Addr == server {
			return d.Down
		}
	}
	return false
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fast(t ipvs.CheckType) ipvs.HealthCheck {
	return ipvs.HealthCheck{Type: t, Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond, Fail: 2, Rise: 2}
}

func TestSIPOptionsDownAndUp(t *testing.T) {
	a := newSIPServer(t, "127.0.0.1:0")
	b := newSIPServer(t, "127.0.0.1:0")
	defer a.c.Close()
	r := newRig(t, fast(ipvs.CheckSIPOptions), a.addr(), b.addr())
	waitFor(t, "first probes", 2*time.Second, func() bool {
		st := r.p.Status()
		return len(st) == 2 && st[0].Checked && st[1].Checked
	})
	// b stops answering (silence): down after two timeouts.
	b.code.Store(0)
	waitFor(t, "b down", 2*time.Second, func() bool { return r.down(b.addr()) })
	if r.down(a.addr()) {
		t.Fatal("a went down too")
	}
	// b answers again: up after two successes.
	b.code.Store(200)
	waitFor(t, "b up", 2*time.Second, func() bool { return !r.down(b.addr()) })
	// b answers 503 (Service Unavailable counts as alive by default) …
	b.code.Store(503)
	time.Sleep(350 * time.Millisecond)
	if r.down(b.addr()) {
		t.Fatal("a 503 took b down with the default codes")
	}
	// … and 408 does not.
	b.code.Store(408)
	waitFor(t, "b down on 408", 2*time.Second, func() bool { return r.down(b.addr()) })
	// Closing the socket: ICMP port unreachable ("refused").
	b.code.Store(200)
	waitFor(t, "b up", 2*time.Second, func() bool { return !r.down(b.addr()) })
	b.c.Close()
	waitFor(t, "b down when closed", 2*time.Second, func() bool { return r.down(b.addr()) })
	var sb Status
	for _, s := range r.p.Status() {
		if s.Server == b.addr() {
			sb = s
		}
	}
	if sb.Up || sb.Last != "refused" || sb.TransitionsDown != 3 || sb.TransitionsUp != 2 || sb.Path != PathDirect {
		t.Fatalf("b status %+v", sb)
	}
	log := r.log.String()
	for _, want := range []string{`msg="health state change" service="UDP 127.0.0.1:5060" server=` + b.addr().String() + ` old=up new=down reason="timeout (2 in a row)"`,
		`old=down new=up reason="200 Whatever (2 in a row)"`, `reason="refused (2 in a row)"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// Every probe used its own Call-ID.
	a.mu.Lock()
	n := len(a.callIDs)
	a.mu.Unlock()
	if int32(n) != a.seen.Load() || n < 5 {
		t.Fatalf("%d Call-IDs for %d probes", n, a.seen.Load())
	}
}

func TestSIPOptionsCodes(t *testing.T) {
	a := newSIPServer(t, "127.0.0.1:0")
	defer a.c.Close()
	h := fast(ipvs.CheckSIPOptions)
	h.Codes = []ipvs.CodeRange{{Lo: 200, Hi: 200}} // Kamailio's default: 200 only
	a.code.Store(404)
	r := newRig(t, h, a.addr())
	waitFor(t, "down on 404", 2*time.Second, func() bool { return r.down(a.addr()) })
	a.code.Store(200)
	waitFor(t, "up on 200", 2*time.Second, func() bool { return !r.down(a.addr()) })
}

// In AF_XDP mode a NAT real server's answer reaches the prober through the
// data plane (Deliver), never through the probe's socket.
func TestDeliveredReplies(t *testing.T) {
	a := newSIPServer(t, "127.0.0.1:0")
	defer a.c.Close()
	var rp atomic.Pointer[rig]
	var delivered atomic.Int32
	deliver := func(src, dst netip.AddrPort, b []byte) {
		if r := rp.Load(); r != nil && r.p.Deliver(src, dst, b) {
			delivered.Add(1)
		}
	}
	a.deliver.Store(&deliver)
	r := newRig(t, fast(ipvs.CheckSIPOptions), a.addr())
	rp.Store(r)
	waitFor(t, "probes answered through Deliver", 2*time.Second, func() bool {
		st := r.p.Status()
		return len(st) == 1 && st[0].Checked && st[0].OK >= 3 && st[0].Up
	})
	if delivered.Load() == 0 {
		t.Fatal("nothing delivered")
	}
}

func TestTCPAndUDPChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ta := netip.MustParseAddrPort(ln.Addr().String())
	r := newRig(t, fast(ipvs.CheckTCP), ta)
	waitFor(t, "tcp checked", 2*time.Second, func() bool { st := r.p.Status(); return len(st) == 1 && st[0].OK >= 2 })
	ln.Close()
	waitFor(t, "tcp down", 2*time.Second, func() bool { return r.down(ta) })
	r.stop()

	// Plain UDP: a silent socket is alive (keepalived's UDP_CHECK), a closed
	// port (ICMP unreachable) is down.
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ua := netip.MustParseAddrPort(u.LocalAddr().String())
	r = newRig(t, fast(ipvs.CheckUDP), ua)
	waitFor(t, "udp checked", 2*time.Second, func() bool { st := r.p.Status(); return len(st) == 1 && st[0].OK >= 2 })
	if r.down(ua) {
		t.Fatal("silent UDP server down")
	}
	u.Close()
	waitFor(t, "udp down", 2*time.Second, func() bool { return r.down(ua) })
}

// Removing the check (or the server) drops its state; the model marks it up.
func TestReconcile(t *testing.T) {
	a := newSIPServer(t, "127.0.0.1:0")
	a.code.Store(0)
	defer a.c.Close()
	r := newRig(t, fast(ipvs.CheckSIPOptions), a.addr())
	waitFor(t, "down", 2*time.Second, func() bool { return r.down(a.addr()) })
	must(t, r.cfg.SetHealthCheck(r.svc, nil))
	r.snap.Store(r.cfg.Snapshot())
	waitFor(t, "state dropped", 2*time.Second, func() bool { return len(r.p.Status()) == 0 })
	if r.down(a.addr()) {
		t.Fatal("server still down without a check")
	}
}

func TestUDPPacket(t *testing.T) {
	for _, c := range []struct{ src, dst string }{{"10.0.0.1:40000", "10.0.0.2:5060"}, {"[fd00::1]:40000", "[fd00::2]:5060"}} {
		pkt := udpPacket(netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst), []byte("hello"))
		hl := 20
		if pkt[0]>>4 == 6 {
			hl = 40
		} else if checksum(pkt[:20]) != 0 {
			t.Errorf("%s: bad IPv4 header checksum", c.src)
		}
		// Verify the UDP checksum over the pseudo-header.
		udp := pkt[hl:]
		var pseudo []byte
		if hl == 20 {
			pseudo = append(append(pseudo, pkt[12:20]...), 0, 17, 0, byte(len(udp)))
		} else {
			pseudo = append(append(pseudo, pkt[8:40]...), 0, 0, 0, byte(len(udp)), 0, 0, 0, 17)
		}
		if checksum(pseudo, udp) != 0 {
			t.Errorf("%s: bad UDP checksum", c.src)
		}
		if string(udp[8:]) != "hello" {
			t.Errorf("payload %q", udp[8:])
		}
	}
}

func TestSIPOptionsMessage(t *testing.T) {
	local := netip.MustParseAddrPort("10.0.0.1:40000")
	m := sipOptions(netip.MustParseAddrPort("10.0.0.9:5060"), local, "xvs-hc-1@10.0.0.1")
	sl := sipparse.ParseStartLine(m)
	id, ok := sipparse.CallID(m)
	if sl.Kind != sipparse.KindRequest || sl.Method != sipparse.MethodOptions || !ok || string(id) != "xvs-hc-1@10.0.0.1" ||
		!bytes.Contains(m, []byte("Via: SIP/2.0/UDP 10.0.0.1:40000;branch=z9hG4bK-xvs-")) || !bytes.HasSuffix(m, []byte("Content-Length: 0\r\n\r\n")) {
		t.Fatalf("OPTIONS:\n%s", m)
	}
	if code, text, ours := sipResponse([]byte("SIP/2.0 200 OK\r\nCall-ID: xvs-hc-1@10.0.0.1\r\n\r\n"), "xvs-hc-1@10.0.0.1"); !ours || code != 200 || text != "200 OK" {
		t.Fatalf("response: %d %q %v", code, text, ours)
	}
	if _, _, ours := sipResponse([]byte("SIP/2.0 200 OK\r\nCall-ID: other\r\n\r\n"), "xvs-hc-1@10.0.0.1"); ours {
		t.Fatal("another Call-ID matched")
	}
}
