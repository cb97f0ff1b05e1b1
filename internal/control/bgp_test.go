package control

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeDirector is a BGP announcer with fixed peers and routes.
type fakeDirector struct {
	drained bool
	calls   int
	now     time.Time
}

func (f *fakeDirector) DrainDirector(drain bool) error { f.drained = drain; f.calls++; return nil }

func (f *fakeDirector) BGPStatus() BGPStatus {
	st := BGPStatus{ASN: 65001, RouterID: netip.MustParseAddr("10.77.1.2"), Drained: f.drained, Forwarding: true,
		Peers: []BGPPeer{
			{Addr: netip.MustParseAddr("10.77.1.1"), ASN: 65000, State: BGPEstablished, Since: f.now.Add(-123 * time.Second),
				HoldTime: 3 * time.Second, UpdatesSent: 4, UpdatesReceived: 1, Advertised: 1, LocalAddr: netip.MustParseAddr("10.77.1.2")},
			{Addr: netip.MustParseAddr("fd77:1::1"), ASN: 65000, State: BGPActive, Since: f.now.Add(-5 * time.Second)},
		},
		Routes: []BGPRoute{
			{Prefix: netip.MustParsePrefix("10.77.2.1/32"), Announced: !f.drained, MED: 10, HasMED: true, Communities: []string{"65001:100"}},
			{Prefix: netip.MustParsePrefix("fd77:2::1/128"), Reason: "no available real server", NextHop: netip.MustParseAddr("fd77:1::2")},
		}}
	if f.drained {
		st.Routes[0].Reason = "director drained"
	}
	return st
}

func TestBGPThroughServer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFake(t, 1, "")
	dir := &fakeDirector{now: now}
	s := NewServer(f, Options{Now: func() time.Time { return now }, Director: dir})
	checkGolden(t, "testdata/list_bgp.golden", mustRun(t, s, "-L", "--bgp"))
	mustRun(t, s, "--drain-director")
	if !dir.drained {
		t.Fatal("--drain-director did not reach the director")
	}
	out := string(mustRun(t, s, "-Ln", "--bgp"))
	if !strings.Contains(out, "AS 65001 router-id 10.77.1.2: drained") || !strings.Contains(out, "(director drained)") {
		t.Fatalf("after --drain-director:\n%s", out)
	}
	mustRun(t, s, "--undrain-director")
	if dir.drained || dir.calls != 2 {
		t.Fatal("--undrain-director did not reach the director")
	}
	for _, bad := range [][]string{{"--drain-director", "-u", "10.0.0.1:5060"}, {"-L", "--bgp", "-c"}, {"-L", "--bgp", "--health"},
		{"-L", "--bgp", "-u", "10.0.0.1:5060"}} {
		if r := run(t, s, bad...); r.Code != 2 {
			t.Errorf("%q: %+v", bad, r)
		}
	}
	// xvsadm -S saves no director state.
	if out := string(mustRun(t, s, "-S", "-n")); strings.Contains(out, "director") {
		t.Fatalf("-S saved the director drain:\n%s", out)
	}

	// Without BGP: -L --bgp says so; a director drain is refused.
	s2 := NewServer(f, Options{})
	if out := string(mustRun(t, s2, "-L", "--bgp")); !strings.Contains(out, "not configured") {
		t.Fatalf("-L --bgp without BGP: %q", out)
	}
	r := run(t, s2, "--drain-director")
	if r.Code != ExitFailed || !strings.Contains(string(r.Stderr), "no BGP speaker") {
		t.Fatalf("--drain-director without BGP: %+v", r)
	}
}
