package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
)

// fakeSpeaker records what the announcer asks for.
type fakeSpeaker struct {
	mu     sync.Mutex
	routes []netip.Prefix
	calls  int
	closed bool
}

func (f *fakeSpeaker) Announce(rs []Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = f.routes[:0]
	for _, r := range rs {
		f.routes = append(f.routes, r.Prefix)
	}
	f.calls++
	return nil
}

func (f *fakeSpeaker) Peers() []control.BGPPeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []control.BGPPeer{{Addr: netip.MustParseAddr("10.0.0.254"), State: control.BGPEstablished, Advertised: uint64(len(f.routes))}}
}

func (f *fakeSpeaker) Close() error { f.closed = true; return nil }

func (f *fakeSpeaker) announced() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, p := range f.routes {
		s = append(s, p.String())
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// fakeSource is a daemon: a live ipvs.Config, a forwarding switch and
// the real servers whose next hop does not resolve.
type fakeSource struct {
	cfg         *ipvs.Config
	fwd         atomic.Bool
	mu          sync.Mutex
	unreachable map[netip.Addr]bool
}

func (f *fakeSource) Snapshot() *ipvs.Snapshot { return f.cfg.Snapshot() }
func (f *fakeSource) Forwarding() bool         { return f.fwd.Load() }
func (f *fakeSource) Reachable(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unreachable[a]
}

func (f *fakeSource) setReachable(a netip.Addr, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unreachable == nil {
		f.unreachable = map[netip.Addr]bool{}
	}
	f.unreachable[a] = !ok
}

var (
	vip4  = netip.MustParseAddrPort("10.77.2.1:5060")
	vip6  = netip.MustParseAddrPort("[fd77:2::1]:5060")
	real4 = netip.MustParseAddrPort("10.77.1.11:5060")
	real6 = netip.MustParseAddrPort("[fd77:1::11]:5060")
)

func newSource(t *testing.T) *fakeSource {
	t.Helper()
	c, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ vip, real netip.AddrPort }{{vip4, real4}, {vip6, real6}} {
		svc := ipvs.ServiceConfig{Protocol: ipvs.UDP, Addr: s.vip, Scheduler: "mh"}
		if err := c.AddService(svc); err != nil {
			t.Fatal(err)
		}
		if err := c.AddDest(svc.Key(), ipvs.DefaultDest(s.real)); err != nil {
			t.Fatal(err)
		}
	}
	// A TCP service on the same IPv4 VIP without servers: the VIP stays
	// announced while its UDP service has one.
	if err := c.AddService(ipvs.ServiceConfig{Protocol: ipvs.TCP, Addr: vip4, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{cfg: c}
	src.fwd.Store(true)
	return src
}

func testConfig() Config {
	c := NewConfig()
	c.ASN, c.RouterID = 65001, netip.MustParseAddr("10.0.0.1")
	c.Peers = []Peer{{Addr: netip.MustParseAddr("10.0.0.254"), ASN: 65000}}
	c.DrainPeriod = 300 * time.Millisecond
	return c
}

func reasons(st control.BGPStatus) string {
	var s []string
	for _, r := range st.Routes {
		if r.Announced {
			s = append(s, r.Prefix.String()+" announced")
		} else {
			s = append(s, r.Prefix.String()+" "+r.Reason)
		}
	}
	return strings.Join(s, "; ")
}

// TestAnnouncerFollowsAvailability: a VIP is announced while one of its
// services has an available server, and withdrawn on a health failure, a
// drain of the server, the loss of the data plane, a director drain and a
// deletion — and announced again when that ends.
func TestAnnouncerFollowsAvailability(t *testing.T) {
	src := newSource(t)
	sp := &fakeSpeaker{}
	a := NewAnnouncer(testConfig(), src, sp, quiet)
	a.Run()
	defer a.Close()
	both := "10.77.2.1/32 fd77:2::1/128"
	check := func(what, want string) {
		t.Helper()
		a.evaluate()
		if got := sp.announced(); got != want {
			t.Fatalf("%s: announced %q, want %q (%s)", what, got, want, reasons(a.BGPStatus()))
		}
	}
	check("start", both)
	k4 := ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: vip4.Addr(), Port: 5060}
	h := ipvs.DefaultHealthCheck(ipvs.CheckSIPOptions)
	if err := src.cfg.SetHealthCheck(k4, &h); err != nil {
		t.Fatal(err)
	}
	if _, err := src.cfg.SetDestHealth(k4, real4, false); err != nil {
		t.Fatal(err)
	}
	check("server down", "fd77:2::1/128")
	if st := reasons(a.BGPStatus()); !strings.Contains(st, "10.77.2.1/32 "+ReasonNoServer) {
		t.Fatalf("reason: %s", st)
	}
	if _, err := src.cfg.SetDestHealth(k4, real4, true); err != nil {
		t.Fatal(err)
	}
	check("server up", both)
	if err := src.cfg.Drain(k4, real4, 1); err != nil {
		t.Fatal(err)
	}
	check("server drained", "fd77:2::1/128")
	if err := src.cfg.Undrain(k4, real4); err != nil {
		t.Fatal(err)
	}
	check("server undrained", both)
	src.setReachable(real4.Addr(), false)
	check("next hop unreachable", "fd77:2::1/128")
	src.setReachable(real4.Addr(), true)
	check("next hop back", both)

	src.fwd.Store(false)
	check("data plane gone", "")
	src.fwd.Store(true)
	check("data plane back", both)

	if err := a.DrainDirector(true); err != nil {
		t.Fatal(err)
	}
	if got := sp.announced(); got != "" {
		t.Fatalf("DrainDirector returned with %q still announced", got)
	}
	st := a.BGPStatus()
	if !st.Drained || !strings.Contains(reasons(st), ReasonDrained) {
		t.Fatalf("status after drain: %+v", st)
	}
	a.DrainDirector(false)
	check("undrained", both)

	if err := src.cfg.DelService(ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: vip6.Addr(), Port: 5060}); err != nil {
		t.Fatal(err)
	}
	check("IPv6 service deleted", "10.77.2.1/32")
	st = a.BGPStatus()
	if st.Announcements < 5 || st.Withdrawals < 5 || len(st.Peers) != 1 || !st.Forwarding {
		t.Fatalf("status %+v", st)
	}

	// The background loop follows without an explicit evaluation.
	if _, err := src.cfg.SetDestHealth(k4, real4, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for sp.announced() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the announcer did not follow a health failure by itself")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnnouncerStopDrains: Stop withdraws at once and returns after the
// drain period, or at once when nothing was announced or the context ends.
func TestAnnouncerStopDrains(t *testing.T) {
	src := newSource(t)
	sp := &fakeSpeaker{}
	a := NewAnnouncer(testConfig(), src, sp, quiet)
	a.Run()
	start := time.Now()
	done := make(chan struct{})
	go func() { a.Stop(context.Background()); close(done) }()
	deadline := time.Now().Add(time.Second)
	for sp.announced() != "" {
		if time.Now().After(deadline) {
			t.Fatal("not withdrawn at once")
		}
		time.Sleep(time.Millisecond)
	}
	withdrawnAfter := time.Since(start)
	<-done
	took := time.Since(start)
	if took < 300*time.Millisecond || withdrawnAfter > 200*time.Millisecond {
		t.Fatalf("withdrawn after %v, Stop returned after %v (drain period 300ms)", withdrawnAfter, took)
	}
	if st := a.BGPStatus(); !st.Stopping || !strings.Contains(reasons(st), ReasonStopping) {
		t.Fatalf("status %+v", st)
	}
	a.Close()
	if !sp.closed {
		t.Fatal("speaker not closed")
	}

	// Nothing announced: no drain.
	src2 := newSource(t)
	src2.fwd.Store(false)
	a2 := NewAnnouncer(testConfig(), src2, &fakeSpeaker{}, quiet)
	a2.Run()
	start = time.Now()
	a2.Stop(context.Background())
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Stop with nothing announced took %v", d)
	}
	a2.Close()

	// A second signal cuts the drain short.
	a3 := NewAnnouncer(testConfig(), newSource(t), &fakeSpeaker{}, quiet)
	a3.cfg.DrainPeriod = time.Minute
	a3.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	a3.Stop(ctx)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop ignored its context: %v", d)
	}
	a3.Close()
}

// TestAnnouncerHoldsAtStart: with an announce delay nothing is announced
// (reason: the delay) until it has passed; then the VIPs are, without an
// explicit evaluation.
func TestAnnouncerHoldsAtStart(t *testing.T) {
	src := newSource(t)
	sp := &fakeSpeaker{}
	cfg := testConfig()
	cfg.AnnounceDelay = 300 * time.Millisecond
	start := time.Now()
	a := NewAnnouncer(cfg, src, sp, quiet)
	a.Run()
	defer a.Close()
	if got, st := sp.announced(), reasons(a.BGPStatus()); time.Since(start) < cfg.AnnounceDelay &&
		(got != "" || !strings.Contains(st, "10.77.2.1/32 "+ReasonStarting)) {
		t.Fatalf("within the delay: announced %q (%s)", got, st)
	}
	for sp.announced() != "10.77.2.1/32 fd77:2::1/128" {
		if time.Since(start) > cfg.AnnounceDelay+2*time.Second {
			t.Fatalf("not announced after the delay: %q (%s)", sp.announced(), reasons(a.BGPStatus()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < cfg.AnnounceDelay {
		t.Fatalf("announced after %v, within the %v delay", took, cfg.AnnounceDelay)
	}
}
