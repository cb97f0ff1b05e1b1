package control

import (
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// TestZeroResetsRates: ipvsadm -Z zeroes the counters and the rates.
func TestZeroResetsRates(t *testing.T) {
	f := listFixture(t)
	s := NewServer(f, Options{})
	est := s.Estimator()
	est.Tick()
	svc := f.Snapshot().Services()[0]
	for range 2 {
		for range 50 {
			svc.Stats.Worker(0).Conn()
		}
		est.Tick()
	}
	if est.Rates(svc.Stats).CPS == 0 {
		t.Fatal("no rate estimated")
	}
	mustRun(t, s, "-Z", "-u", "10.4.3.192:5060")
	if r := est.Rates(svc.Stats); r != (ipvs.Rates{}) {
		t.Errorf("rates after -Z: %+v", r)
	}
	if c := svc.Stats.Read(); c.Conns != 0 || c.InPkts != 0 {
		t.Errorf("counters after -Z: %+v", c)
	}
	if c := f.Snapshot().Services()[3].Stats.Read(); c.Conns == 0 {
		t.Error("-Z of one service zeroed another")
	}
	mustRun(t, s, "-Z")
	if c := f.Snapshot().Services()[3].Stats.Read(); c.Conns != 0 {
		t.Error("-Z did not zero every service")
	}
}

// run_estimation=0 suspends the estimator: the rates keep their values, and
// when it is back on the suspended time does not count as one period.
func TestRunEstimationSuspends(t *testing.T) {
	f := listFixture(t)
	s := NewServer(f, Options{})
	est := s.Estimator()
	svc := f.Snapshot().Services()[0]
	tick := func(conns int) {
		for range conns {
			svc.Stats.Worker(0).Conn()
		}
		est.Tick()
	}
	tick(0)
	for range 60 { // until the average has converged
		tick(100)
	}
	steady := est.Rates(svc.Stats).CPS
	if steady == 0 {
		t.Fatal("no rate estimated")
	}
	mustRun(t, s, "--sysctl", "run_estimation=0")
	tick(100000)
	tick(0)
	if got := est.Rates(svc.Stats).CPS; got != steady {
		t.Fatalf("rate %d while suspended, was %d", got, steady)
	}
	mustRun(t, s, "--sysctl", "run_estimation=1")
	tick(100000) // the first tick back only takes the counters
	if got := est.Rates(svc.Stats).CPS; got != steady {
		t.Fatalf("rate %d on resuming, was %d", got, steady)
	}
	tick(100)
	if got := est.Rates(svc.Stats).CPS; got != steady {
		t.Fatalf("rate %d after resuming at the same rate, was %d", got, steady)
	}
}
