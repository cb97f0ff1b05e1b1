package ipvs

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/sched"
)

func healthSetup(t *testing.T, policy TemplatePolicy) *Config {
	t.Helper()
	c, _ := newConfig(t, 1)
	must(t, c.AddService(sipService()))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs1, Fwd: Masq, Weight: 1}))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs2, Fwd: Masq, Weight: 2}))
	h := DefaultHealthCheck(CheckSIPOptions)
	h.OnFail = policy
	must(t, c.SetHealthCheck(vkey, &h))
	return c
}

func destOf(s *Snapshot, a string) *Dest {
	for _, d := range s.Services()[0].Dests {
		if d.Addr.String() == a {
			return d
		}
	}
	return nil
}

// scheduleAll returns the servers chosen for n new calls.
func scheduleAll(s *Snapshot, n int) map[string]int {
	svc := s.Services()[0]
	out := map[string]int{}
	for i := range n {
		d := svc.Schedule(0, &sched.Input{HasPE: true, PEHash: uint64(i)})
		if d == nil {
			out["none"]++
			continue
		}
		out[d.Addr.String()]++
	}
	return out
}

func TestHealthDownSkipsAndTemplatePolicy(t *testing.T) {
	for _, policy := range []TemplatePolicy{PolicyExpire, PolicyKeep} {
		t.Run(policy.String(), func(t *testing.T) {
			c := healthSetup(t, policy)
			before := c.Snapshot()
			id1 := destOf(before, "10.0.0.1:5060").ID
			changed, err := c.SetDestHealth(vkey, rs1, false)
			if err != nil || !changed {
				t.Fatalf("SetDestHealth: %v %v", changed, err)
			}
			if changed, _ := c.SetDestHealth(vkey, rs1, false); changed {
				t.Fatal("a repeated verdict changed the state")
			}
			s := c.Snapshot()
			if s == before {
				t.Fatal("health change did not produce a new snapshot")
			}
			d1 := destOf(s, "10.0.0.1:5060")
			if !d1.Down || d1.Weight != 1 || d1.ID != id1 {
				t.Fatalf("down dest: %+v", d1)
			}
			if got := scheduleAll(s, 100); got["10.0.0.1:5060"] != 0 || got["10.0.0.2:5060"] != 100 {
				t.Fatalf("new calls with rs1 down: %v", got)
			}
			td := s.TemplateDest(id1)
			if policy == PolicyExpire && td != nil || policy == PolicyKeep && td != d1 {
				t.Fatalf("template of the down server under %v: %v", policy, td)
			}
			// Recovery: scheduled again, templates valid again.
			must(t, second(c.SetDestHealth(vkey, rs1, true)))
			s = c.Snapshot()
			if got := scheduleAll(s, 100); got["10.0.0.1:5060"] == 0 {
				t.Fatalf("rs1 not scheduled after recovery: %v", got)
			}
			if s.TemplateDest(id1) == nil {
				t.Fatal("template invalid after recovery")
			}
		})
	}
}

func second(_ bool, err error) error { return err }

func TestHealthCheckConfig(t *testing.T) {
	c := healthSetup(t, PolicyExpire)
	must(t, second(c.SetDestHealth(vkey, rs1, false)))
	// The same check again keeps the state; a different type resets it.
	h, err := c.HealthCheck(vkey)
	must(t, err)
	must(t, c.SetHealthCheck(vkey, h))
	if !destOf(c.Snapshot(), "10.0.0.1:5060").Down {
		t.Fatal("re-setting the same check reset the state")
	}
	h.Interval = 3 * time.Second
	must(t, c.SetHealthCheck(vkey, h))
	if !destOf(c.Snapshot(), "10.0.0.1:5060").Down {
		t.Fatal("changing the interval reset the state")
	}
	h.Type = CheckUDP
	must(t, c.SetHealthCheck(vkey, h))
	if destOf(c.Snapshot(), "10.0.0.1:5060").Down {
		t.Fatal("a new check type kept the old verdict")
	}
	must(t, second(c.SetDestHealth(vkey, rs1, false)))
	must(t, c.SetHealthCheck(vkey, nil))
	s := c.Snapshot()
	if destOf(s, "10.0.0.1:5060").Down || s.Services()[0].Check != nil {
		t.Fatal("removing the check left the server down")
	}
	if _, err := c.SetDestHealth(vkey, rs1, false); !errors.Is(err, ErrNoCheck) {
		t.Fatalf("down without a check: %v", err)
	}
	for _, bad := range []HealthCheck{
		{Type: CheckSIPOptions, Interval: time.Millisecond, Timeout: time.Millisecond, Fail: 1, Rise: 1},
		{Type: CheckSIPOptions, Interval: time.Second, Timeout: 2 * time.Second, Fail: 1, Rise: 1},
		{Type: CheckSIPOptions, Interval: time.Second, Timeout: time.Second, Fail: 0, Rise: 1},
		{Type: CheckUDP, Interval: time.Second, Timeout: time.Second, Fail: 1, Rise: 1, Codes: []CodeRange{{200, 200}}},
		{Type: CheckSIPOptions, Interval: time.Second, Timeout: time.Second, Fail: 1, Rise: 1, Codes: []CodeRange{{99, 200}}},
	} {
		if err := c.SetHealthCheck(vkey, &bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	// Deleting and re-adding a server (trash revival) starts it up.
	must(t, c.SetHealthCheck(vkey, &HealthCheck{Type: CheckTCP, Interval: time.Second, Timeout: time.Second, Fail: 1, Rise: 1}))
	must(t, second(c.SetDestHealth(vkey, rs2, false)))
	must(t, c.DelDest(vkey, rs2))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs2, Fwd: Masq, Weight: 2}))
	if destOf(c.Snapshot(), "10.0.0.2:5060").Down {
		t.Fatal("revived server kept its down state")
	}
}

func TestAccepts(t *testing.T) {
	def := DefaultHealthCheck(CheckSIPOptions)
	for code, want := range map[int]bool{100: false, 180: false, 200: true, 404: true, 408: false, 486: true, 503: true, 699: true, 700: false} {
		if def.Accepts(code) != want {
			t.Errorf("default accepts %d = %v", code, !want)
		}
	}
	k := def
	k.Codes = []CodeRange{{200, 200}, {400, 499}}
	for code, want := range map[int]bool{200: true, 202: false, 404: true, 408: true, 503: false} {
		if k.Accepts(code) != want {
			t.Errorf("200,400-499 accepts %d = %v", code, !want)
		}
	}
}

func TestDrain(t *testing.T) {
	c := healthSetup(t, PolicyExpire)
	must(t, c.SetSysctl(ExpireQuiescentTemplate, []int64{1}))
	must(t, c.Drain(vkey, rs2, -1))
	must(t, c.Drain(vkey, rs2, -1)) // idempotent: the remembered weight stays 2
	s := c.Snapshot()
	d2 := destOf(s, "10.0.0.2:5060")
	if !d2.Draining || d2.Weight != 0 {
		t.Fatalf("drained dest %+v", d2)
	}
	if got := scheduleAll(s, 50); got["10.0.0.2:5060"] != 0 {
		t.Fatalf("new calls reached a draining server: %v", got)
	}
	if s.TemplateDest(d2.ID) != d2 {
		t.Fatal("a draining server's templates must stay valid, even with expire_quiescent_template")
	}
	// A plain -w 0 server's templates do expire with the switch.
	must(t, c.EditDest(vkey, DestConfig{Addr: rs1, Fwd: Masq, Weight: 0}))
	s = c.Snapshot()
	if s.TemplateDest(destOf(s, "10.0.0.1:5060").ID) != nil {
		t.Fatal("quiesced (not draining) template kept with expire_quiescent_template")
	}
	// A draining server that also fails its check: the check's policy wins.
	must(t, second(c.SetDestHealth(vkey, rs2, false)))
	s = c.Snapshot()
	if s.TemplateDest(destOf(s, "10.0.0.2:5060").ID) != nil {
		t.Fatal("down+draining under expire: template kept")
	}
	must(t, second(c.SetDestHealth(vkey, rs2, true)))
	must(t, c.Undrain(vkey, rs2))
	if d := destOf(c.Snapshot(), "10.0.0.2:5060"); d.Draining || d.Weight != 2 {
		t.Fatalf("undrained dest %+v", d)
	}
	// -e with a weight ends a drain; -e -w 0 keeps it.
	must(t, c.Drain(vkey, rs2, -1))
	must(t, c.EditDest(vkey, DestConfig{Addr: rs2, Fwd: Masq, Weight: 0}))
	if d := destOf(c.Snapshot(), "10.0.0.2:5060"); !d.Draining {
		t.Fatal("-e -w 0 ended the drain")
	}
	must(t, c.EditDest(vkey, DestConfig{Addr: rs2, Fwd: Masq, Weight: 5}))
	if d := destOf(c.Snapshot(), "10.0.0.2:5060"); d.Draining || d.Weight != 5 {
		t.Fatalf("-e -w 5 on a draining dest: %+v", d)
	}
	// Undrain of a server drained at weight 0 gives it ipvsadm's default 1.
	must(t, c.Drain(vkey, rs1, -1))
	must(t, c.Undrain(vkey, rs1))
	if d := destOf(c.Snapshot(), "10.0.0.1:5060"); d.Weight != 1 {
		t.Fatalf("undrain from weight 0: %+v", d)
	}
	if err := c.Drain(vkey, rs3, -1); !errors.Is(err, ErrNoDest) {
		t.Fatalf("drain of an unknown server: %v", err)
	}
}

// A real server's own check overrides the service's: its down state, its
// template policy and its reset on change follow its own check.
func TestDestHealthCheckOverride(t *testing.T) {
	c := healthSetup(t, PolicyKeep)
	own := DefaultHealthCheck(CheckScript)
	own.Script = []string{"/bin/check", "10.0.0.1"}
	must(t, c.SetDestHealthCheck(vkey, rs1, &own))
	s := c.Snapshot()
	d1, d2 := destOf(s, rs1.String()), destOf(s, rs2.String())
	if !d1.OwnCheck || d1.Check.Type != CheckScript || d2.OwnCheck || d2.Check.Type != CheckSIPOptions {
		t.Fatalf("checks %+v %+v", d1.Check, d2.Check)
	}
	// Down under an expire policy of its own: its templates are invalid.
	_, err := c.SetDestHealth(vkey, rs1, false)
	must(t, err)
	if s := c.Snapshot(); s.TemplateDest(destOf(s, rs1.String()).ID) != nil {
		t.Error("template of a down server with its own expire check kept")
	}
	// Changing the service's check leaves it alone; removing its own check
	// makes it follow the service's again, up.
	h := DefaultHealthCheck(CheckTCP)
	must(t, c.SetHealthCheck(vkey, &h))
	if !destOf(c.Snapshot(), rs1.String()).Down {
		t.Error("the service's check reset a server with its own")
	}
	must(t, c.SetDestHealthCheck(vkey, rs1, nil))
	if d := destOf(c.Snapshot(), rs1.String()); d.Down || d.OwnCheck || d.Check.Type != CheckTCP {
		t.Errorf("after removal %+v", d)
	}
	if err := c.SetDestHealthCheck(vkey, rs1, &HealthCheck{Type: CheckScript, Interval: time.Second, Timeout: time.Second, Fail: 1, Rise: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("script check without a script: %v", err)
	}
}

// StartDown (keepalived's alpha) starts servers down: when the check is
// set and when a server is added; a dynamic weight overrides the
// configured one for the scheduler, but not a drain.
func TestStartDownAndDynamicWeight(t *testing.T) {
	c, _ := newConfig(t, 1)
	svc := sipService()
	svc.Scheduler = "wrr"
	must(t, c.AddService(svc))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs1, Fwd: Masq, Weight: 1}))
	h := DefaultHealthCheck(CheckScript)
	h.Script, h.StartDown, h.Dynamic = []string{"/bin/true"}, true, true
	must(t, c.SetHealthCheck(vkey, &h))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs2, Fwd: Masq, Weight: 1}))
	s := c.Snapshot()
	if !destOf(s, rs1.String()).Down || !destOf(s, rs2.String()).Down {
		t.Fatal("servers did not start down")
	}
	if got := scheduleAll(s, 10); got["none"] != 10 {
		t.Errorf("scheduled %v with every server down", got)
	}
	c.SetDestHealth(vkey, rs1, true)
	c.SetDestHealth(vkey, rs2, true)
	changed, err := c.SetDestWeightOverride(vkey, rs2, 9)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	got := scheduleAll(c.Snapshot(), 100)
	if got[rs2.String()] != 90 || got[rs1.String()] != 10 {
		t.Errorf("wrr over weights 1 and 9 (dynamic) gave %v", got)
	}
	if d := destOf(c.Snapshot(), rs2.String()); d.Weight != 1 || d.SchedWeight() != 9 {
		t.Errorf("configured %d, scheduled %d", d.Weight, d.SchedWeight())
	}
	must(t, c.Drain(vkey, rs2, -1))
	if d := destOf(c.Snapshot(), rs2.String()); d.SchedWeight() != 0 {
		t.Errorf("a drained server scheduled with weight %d", d.SchedWeight())
	}
	if changed, _ := c.SetDestWeightOverride(vkey, rs2, -1); !changed {
		t.Error("clearing the override changed nothing")
	}
}

// TestAvailable: a server is available only with weight > 0, up, not
// draining, NAT or direct routing, and a resolved next hop; a service is
// available while one of its servers is.
func TestAvailable(t *testing.T) {
	c := healthSetup(t, PolicyExpire)
	s := c.Snapshot()
	if !destOf(s, "10.0.0.1:5060").Available() || !destOf(s, "10.0.0.2:5060").Available() {
		t.Fatal("up, weighted server not available")
	}
	must(t, c.Drain(vkey, rs1, 0))
	if _, err := c.SetDestHealth(vkey, rs2, false); err != nil {
		t.Fatal(err)
	}
	s = c.Snapshot()
	if destOf(s, "10.0.0.1:5060").Available() || destOf(s, "10.0.0.2:5060").Available() {
		t.Fatal("a draining or down server counts as available")
	}
	must(t, c.Undrain(vkey, rs1))
	if !destOf(c.Snapshot(), "10.0.0.1:5060").Available() {
		t.Fatal("undrained server not available")
	}
	d := DestConfig{Addr: rs1, Fwd: Masq, Weight: 0}
	must(t, c.EditDest(vkey, d))
	if destOf(c.Snapshot(), "10.0.0.1:5060").Available() {
		t.Fatal("weight 0 counts as available")
	}
	d.Weight, d.Fwd = 1, Tunnel
	must(t, c.EditDest(vkey, d))
	if destOf(c.Snapshot(), "10.0.0.1:5060").Available() {
		t.Fatal("a tunnel server without its outer source address counts as available")
	}
	must(t, c.SetEgress(vkey, rs1, [6]byte{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("10.0.0.254"), 1500))
	if !destOf(c.Snapshot(), "10.0.0.1:5060").Available() {
		t.Fatal("a tunnel server with its egress resolved is not available")
	}
}
