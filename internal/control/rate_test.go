package control

import (
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
)

// TestEstimateKernelArithmetic runs the estimator over a synthetic counter
// sequence and compares every reading with values worked out by hand from
// ip_vs_est.c's fixed-point formulas.
func TestEstimateKernelArithmetic(t *testing.T) {
	var e Estimate
	var s ipvsadm.Stats
	// Each 2-second period: 1000 conns, 1000 packets in, 10 out, 100000
	// bytes in, 2000 out; i.e. 500 cps, 500 pps, 5 pps, 50000 Bps, 1000 Bps.
	step := func() {
		s.Conns += 1000
		s.InPkts += 1000
		s.OutPkts += 10
		s.InBytes += 100000
		s.OutBytes += 2000
		e.Update(s)
	}
	e.Update(s) // primes
	want := []ipvsadm.Rates{
		// cps: avg 128000 → (128000+511)>>10 = 125; inbps: 400000 → (400000+15)>>5 = 12500
		{CPS: 125, InPPS: 125, OutPPS: 1, InBPS: 12500, OutBPS: 250},
		// cps: 128000 + (512000-128000)>>2 = 224000 → 219; inbps 700000 → 21875
		{CPS: 219, InPPS: 219, OutPPS: 2, InBPS: 21875, OutBPS: 437},
		// cps: 224000 + 72000 = 296000 → 289; inbps 925000 → 28906
		{CPS: 289, InPPS: 289, OutPPS: 3, InBPS: 28906, OutBPS: 578},
	}
	for i, w := range want {
		step()
		if got := e.Rates(); got != w {
			t.Errorf("period %d: %+v, want %+v", i+1, got, w)
		}
	}
	for range 60 {
		step()
	}
	if got, w := e.Rates(), (ipvsadm.Rates{CPS: 500, InPPS: 500, OutPPS: 5, InBPS: 50000, OutBPS: 1000}); got != w {
		t.Errorf("steady state %+v, want %+v", got, w)
	}
	// Traffic stops: the rates decay by 3/4 per period.
	e.Update(s)
	if got := e.Rates().CPS; got != 375 {
		t.Errorf("after one idle period cps %d, want 375", got)
	}
	// A zeroing (counters go back) restarts the estimate at zero.
	e.Update(ipvsadm.Stats{})
	if got := e.Rates(); got != (ipvsadm.Rates{}) {
		t.Errorf("after zeroing %+v", got)
	}
}

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
	if r := est.Rates(svc.Stats); r != (ipvsadm.Rates{}) {
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
