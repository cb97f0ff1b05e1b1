package ipvs

import (
	"context"
	"sync"
	"time"
)

// Rates are the estimated per-second rates of a service or destination, as
// ipvsadm -L --rate shows them: connections, packets in and out, bytes in
// and out.
type Rates struct {
	CPS, InPPS, OutPPS, InBPS, OutBPS uint64
}

// EstimatorInterval is IPVS's rate-estimation period (ip_vs_est.c: every
// 2 seconds).
const EstimatorInterval = 2 * time.Second

// Estimate is IPVS's rate estimator for one service or real server
// (struct ip_vs_estimator): every EstimatorInterval the change of each
// cumulative counter is folded into an exponentially weighted moving average
// with weight W = 2^-2, kept in fixed point exactly as the kernel keeps it
// (rates of conns and packets scaled by 2^10 per second, of bytes by 2^5),
// and read rounded as the kernel reads it.
type Estimate struct {
	primed                             bool
	lastConns, lastInPkts, lastOutPkts uint64
	lastInBytes, lastOutBytes          uint64
	cps, inpps, outpps, inbps, outbps  int64
}

// Update folds one period's counters in (ip_vs_est.c estimation_timer). The
// first call only records the counters. A counter that went backwards (a
// zeroing the estimator was not told of) restarts the estimate.
func (e *Estimate) Update(s Counters) {
	if !e.primed || s.Conns < e.lastConns || s.InPkts < e.lastInPkts || s.OutPkts < e.lastOutPkts ||
		s.InBytes < e.lastInBytes || s.OutBytes < e.lastOutBytes {
		e.Reset(s)
		return
	}
	ewma := func(avg *int64, cur uint64, last *uint64, shift uint) {
		rate := int64((cur - *last) << shift)
		*last = cur
		*avg += (rate - *avg) >> 2
	}
	ewma(&e.cps, s.Conns, &e.lastConns, 9)
	ewma(&e.inpps, s.InPkts, &e.lastInPkts, 9)
	ewma(&e.outpps, s.OutPkts, &e.lastOutPkts, 9)
	ewma(&e.inbps, s.InBytes, &e.lastInBytes, 4)
	ewma(&e.outbps, s.OutBytes, &e.lastOutBytes, 4)
}

// Reset zeroes the rates and takes s as the new starting point
// (ip_vs_zero_estimator, run by ipvsadm -Z).
func (e *Estimate) Reset(s Counters) {
	*e = Estimate{primed: true, lastConns: s.Conns, lastInPkts: s.InPkts, lastOutPkts: s.OutPkts,
		lastInBytes: s.InBytes, lastOutBytes: s.OutBytes}
}

// rebase takes s as the starting point of the next period, keeping the
// rates: the estimation resumes after run_estimation was off.
func (e *Estimate) rebase(s Counters) {
	e.primed = true
	e.lastConns, e.lastInPkts, e.lastOutPkts, e.lastInBytes, e.lastOutBytes = s.Conns, s.InPkts, s.OutPkts, s.InBytes, s.OutBytes
}

// Rates reads the estimate as ipvsadm shows it (ip_vs_read_estimator).
func (e *Estimate) Rates() Rates {
	r := func(v int64, round int64, shift uint) uint64 {
		if v <= 0 {
			return 0
		}
		return uint64(v+round) >> shift
	}
	return Rates{
		CPS:    r(e.cps, 0x1ff, 10),
		InPPS:  r(e.inpps, 0x1ff, 10),
		OutPPS: r(e.outpps, 0x1ff, 10),
		InBPS:  r(e.inbps, 0xf, 5),
		OutBPS: r(e.outbps, 0xf, 5),
	}
}

// Estimator keeps an Estimate for every service and real server of the
// running configuration. Run it in a goroutine of its own: every
// EstimatorInterval it reads the counters of the current snapshot (sums of
// the workers' slots; no work on the data plane) and forgets the entries of
// services and real servers that are gone.
type Estimator struct {
	snapshot func() *Snapshot

	mu        sync.Mutex
	est       map[*Stats]*Estimate
	suspended bool // run_estimation was 0 at the last tick
}

// NewEstimator returns an estimator over the snapshots snapshot returns.
func NewEstimator(snapshot func() *Snapshot) *Estimator {
	return &Estimator{snapshot: snapshot, est: make(map[*Stats]*Estimate)}
}

// Run updates the estimates every EstimatorInterval until ctx is done.
func (e *Estimator) Run(ctx context.Context) {
	t := time.NewTicker(EstimatorInterval)
	defer t.Stop()
	e.Tick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Tick()
		}
	}
}

// Tick runs one estimation period. With the run_estimation sysctl at 0 it
// does nothing: the rates keep their values; the first tick after it is
// back on only records the counters, so the suspended time does not count
// as one period.
func (e *Estimator) Tick() {
	s := e.snapshot()
	if s == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.Sysctls.Get(RunEstimation) == 0 {
		e.suspended = true
		return
	}
	resumed := e.suspended
	e.suspended = false
	seen := make(map[*Stats]bool)
	update := func(st *Stats) {
		c := st.Read()
		if resumed {
			e.entry(st).rebase(c)
		} else {
			e.entry(st).Update(c)
		}
		seen[st] = true
	}
	for _, svc := range s.Services() {
		update(svc.Stats)
		for _, d := range svc.Dests {
			update(d.Stats)
		}
	}
	for st := range e.est {
		if !seen[st] {
			delete(e.est, st)
		}
	}
}

// entry returns st's estimate, creating it; e.mu must be held.
func (e *Estimator) entry(st *Stats) *Estimate {
	x := e.est[st]
	if x == nil {
		x = new(Estimate)
		e.est[st] = x
	}
	return x
}

// Rates returns st's estimated rates (zero before two periods have passed).
func (e *Estimator) Rates(st *Stats) Rates {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.est[st]; x != nil {
		return x.Rates()
	}
	return Rates{}
}

// Zero resets the rates of the given counters after ipvsadm -Z zeroed them
// (all of the snapshot's when svc is nil).
func (e *Estimator) Zero(svc *Service) {
	s := e.snapshot()
	if s == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	reset := func(st *Stats) { e.entry(st).Reset(st.Read()) }
	for _, v := range s.Services() {
		if svc != nil && v.Key != svc.Key {
			continue
		}
		reset(v.Stats)
		for _, d := range v.Dests {
			reset(d.Stats)
		}
	}
}
