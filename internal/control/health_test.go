package control

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
)

// healthFake adds a health checker's view to the fake target.
type healthFake struct {
	*fake
	h map[health.Key]health.Status
}

func (f *healthFake) Health() map[health.Key]health.Status { return f.h }

const healthRules = `-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 2
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m -w 1
`

// xvsadm's health and drain extensions through the control server: the
// commands change the model, -Ln stays ipvsadm's format, -Ln --health shows
// states, checks and live templates (byte-exact golden), -S saves the
// extension lines and -R restores them.
func TestHealthAndDrainThroughServer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	svc := ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("10.4.3.192"), Port: 5060}
	rs := func(s string) health.Key { return health.Key{Service: svc, Server: netip.MustParseAddrPort(s)} }
	hf := &healthFake{fake: newFake(t, 1, healthRules), h: map[health.Key]health.Status{
		rs("192.168.1.10:5060"): {Up: true, Checked: true, Since: now.Add(-90 * time.Second), OK: 18, Last: "200 OK", RTT: 850 * time.Microsecond},
		rs("192.168.1.11:5060"): {Up: true, Checked: true, Since: now.Add(-time.Hour), OK: 700, Last: "200 OK", RTT: 1200 * time.Microsecond},
		rs("192.168.1.12:5060"): {Checked: true, Since: now.Add(-4 * time.Second), Failed: 3, Last: "timeout"},
	}}
	s := NewServer(hf, Options{Now: func() time.Time { return now }})

	// Eight calls spread by rr: each server gets live templates.
	for i := range 8 {
		d := hf.send(0, udp("10.9.0.1:5060", "10.4.3.192:5060", craft.SIPInvite(fmt.Sprintf("call-%d", i))))
		if d.Reason != pipeline.ReasonScheduled {
			t.Fatalf("call-%d: %v", i, d.Reason)
		}
	}
	mustRun(t, s, "--health-check", "-u", "10.4.3.192:5060", "--check", "sip-options", "--interval", "2", "--check-timeout", "0.5", "--fail", "3", "--rise", "2")
	mustRun(t, s, "--drain", "-u", "10.4.3.192:5060", "-r", "192.168.1.11")
	if _, err := hf.cfg.SetDestHealth(svc, netip.MustParseAddrPort("192.168.1.12:5060"), false); err != nil {
		t.Fatal(err)
	}
	hf.resolve()

	// -Ln is ipvsadm's listing: the drained server shows weight 0, nothing else.
	out := string(mustRun(t, s, "-Ln"))
	if !strings.Contains(out, "  -> 192.168.1.11:5060            Masq    0      0          0         \n") || strings.Contains(out, "drain") {
		t.Fatalf("-Ln:\n%s", out)
	}
	checkGolden(t, "testdata/list_health.golden", mustRun(t, s, "-Ln", "--health"))
	one := mustRun(t, s, "-L", "-n", "-u", "10.4.3.192:5060", "--health")
	if all := mustRun(t, s, "-Ln", "--health"); string(one) != string(all) {
		t.Fatalf("-L -u --health differs from the whole listing with one service:\n%s", one)
	}
	if r := run(t, s, "-Ln", "-u", "10.4.3.9:5060", "--health"); r.Code != 1 {
		t.Fatalf("--health of a missing service: %+v", r)
	}
	if r := run(t, s, "--drain", "-u", "10.4.3.192:5060", "-r", "192.168.1.99"); r.Code != ExitFailed || string(r.Stderr) != "No such destination\n" {
		t.Fatalf("--drain of a missing server: %d %q", r.Code, r.Stderr)
	}

	saved := mustRun(t, s, "-Sn")
	checkGolden(t, "testdata/save_health.golden", saved)
	mustRun(t, s, "-C")
	if r := s.Execute(t.Context(), Request{V: 1, Argv: []string{"-R"}, Stdin: string(saved)}); r.Code != 0 {
		t.Fatalf("-R: %s", r.Stderr)
	}
	if again := mustRun(t, s, "-Sn"); string(again) != string(saved) {
		t.Fatalf("-S after -C and -R:\n%s", again)
	}
	// --undrain restores the weight; --check none removes the check.
	mustRun(t, s, "--undrain", "-u", "10.4.3.192:5060", "-r", "192.168.1.11:5060")
	mustRun(t, s, "--health-check", "-u", "10.4.3.192:5060", "--check", "none")
	if got := string(mustRun(t, s, "-Sn")); strings.Contains(got, "--health-check") || strings.Contains(got, "--drain") || !strings.Contains(got, "-r 192.168.1.11:5060 -m -w 2\n") {
		t.Fatalf("-S after undrain and --check none:\n%s", got)
	}
}
