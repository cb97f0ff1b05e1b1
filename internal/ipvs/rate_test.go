package ipvs

import "testing"

// TestEstimateKernelArithmetic runs the estimator over a synthetic counter
// sequence and compares every reading with values worked out by hand from
// ip_vs_est.c's fixed-point formulas.
func TestEstimateKernelArithmetic(t *testing.T) {
	var e Estimate
	var s Counters
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
	want := []Rates{
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
	if got, w := e.Rates(), (Rates{CPS: 500, InPPS: 500, OutPPS: 5, InBPS: 50000, OutBPS: 1000}); got != w {
		t.Errorf("steady state %+v, want %+v", got, w)
	}
	// Traffic stops: the rates decay by 3/4 per period.
	e.Update(s)
	if got := e.Rates().CPS; got != 375 {
		t.Errorf("after one idle period cps %d, want 375", got)
	}
	// A zeroing (counters go back) restarts the estimate at zero.
	e.Update(Counters{})
	if got := e.Rates(); got != (Rates{}) {
		t.Errorf("after zeroing %+v", got)
	}
}
