package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
)

// Options configure a benchmark run.
type Options struct {
	// XVS is the xvs binary; Self a binary that becomes the naive proxy
	// when ProxyEnv is set (see MaybeRunProxy).
	XVS, Self string
	// Full selects the documentation run (rounds, longer runs, the offered
	// load sweep, queue scaling); otherwise the quick CI run.
	Full bool
	// Rounds, RunTime and Calls override the mode's defaults.
	Rounds  int
	RunTime time.Duration
	Calls   int
	// LatencyFraction is the fraction of a candidate's maximum rate at which
	// latency is measured (default 0.5).
	LatencyFraction float64
	// Only keeps the candidates whose name contains one of these strings.
	Only []string
	// Senders is how many goroutines send (default: one per CPU, so the
	// generator is not the bottleneck; they compete with the balancer).
	Senders int
	// NoKamailio skips Kamailio even when it is installed.
	NoKamailio bool
	Log        io.Writer
}

// Quick and full mode settings.
const (
	quickRunTime = 1 * time.Second
	fullRunTime  = 2 * time.Second
	fullRounds   = 3
	// drainGap: a run ends when no sink has received anything for this
	// long after the generator stopped (bounded by drainLimit).
	drainGap   = 150 * time.Millisecond
	drainLimit = 2 * time.Second
)

// sweepFractions are the offered loads of the full mode's sweep, as
// fractions of the fastest candidate's median maximum rate.
var sweepFractions = []float64{0.1, 0.3, 0.5, 0.7, 0.9}

// candidates lists what a run measures, in the order of each round.
func candidates(o Options, kamailio string) ([]Candidate, []string) {
	cs := []Candidate{
		{Name: "xvs afxdp-native dr", Kind: "xvs", Backend: "afxdp", XDPMode: "native", DR: true, Queues: 1},
		{Name: "xvs afxdp-native nat", Kind: "xvs", Backend: "afxdp", XDPMode: "native", Queues: 1},
		{Name: "xvs afxdp-generic dr", Kind: "xvs", Backend: "afxdp", XDPMode: "generic", DR: true, Queues: 1},
		{Name: "xvs afxdp-generic nat", Kind: "xvs", Backend: "afxdp", XDPMode: "generic", Queues: 1},
		{Name: "xvs raw dr", Kind: "xvs", Backend: "raw", DR: true, Queues: 1},
		{Name: "xvs raw nat", Kind: "xvs", Backend: "raw", Queues: 1},
		{Name: "naive Go proxy", Kind: "naive-proxy", Queues: 1},
		{Name: "kernel forwarding (ceiling)", Kind: "kernel", DR: true, Queues: 1, Ceiling: true},
	}
	var notes []string
	if o.Full && runtime.NumCPU() >= 2 {
		cs = slices.Insert(cs, 1, Candidate{Name: "xvs afxdp-native dr 2q", Kind: "xvs", Backend: "afxdp", XDPMode: "native", DR: true, Queues: 2})
	}
	switch {
	case o.NoKamailio:
		notes = append(notes, "Kamailio: skipped (--no-kamailio).")
	case kamailio == "":
		notes = append(notes, "Kamailio: not installed, skipped (Debian package kamailio; it is not installed in CI).")
	default:
		cs = append(cs, Candidate{Name: "kamailio dispatcher", Kind: "kamailio", Queues: 1})
	}
	if len(o.Only) > 0 {
		cs = slices.DeleteFunc(cs, func(c Candidate) bool {
			if c.Ceiling {
				return false // every ratio needs it
			}
			for _, s := range o.Only {
				if strings.Contains(c.Name, s) {
					return false
				}
			}
			return true
		})
	}
	return cs, notes
}

// Run builds the lab, measures every candidate in alternating rounds and
// returns the report. The lab is torn down before it returns, even on
// failure.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if err := lab.Available(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Rounds == 0 {
		o.Rounds = 1
		if o.Full {
			o.Rounds = fullRounds
		}
	}
	if o.RunTime == 0 {
		o.RunTime = quickRunTime
		if o.Full {
			o.RunTime = fullRunTime
		}
	}
	if o.Calls == 0 {
		o.Calls = DefaultCalls
	}
	if o.Senders == 0 {
		o.Senders = runtime.NumCPU()
	}
	if o.LatencyFraction == 0 {
		o.LatencyFraction = 0.5
	}
	kam := ""
	if !o.NoKamailio {
		kam = findKamailio()
	}
	cands, notes := candidates(o, kam)
	rep = newReport(o)
	rep.Notes = append(rep.Notes, notes...)

	dir, err := os.MkdirTemp("", "xvs-perf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf(o.Log, "building the lab (1 client, router, balancer, 3 real servers)")
	l, err := lab.New(lab.Spec{Prefix: "xvsperf", Clients: 1, RealServers: 3})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	e := env{lab: l, xvs: o.XVS, self: o.Self, kamailio: kam, dir: dir}

	vip := netipAddrPort(l.VIP4, SIPPort)
	gen, err := NewGenerator(l.Clients[0].NS, l.Clients[0].Addr4, vip, o.Calls)
	if err != nil {
		return nil, err
	}
	defer gen.Close()
	rep.Settings.PayloadBytes = len(gen.data[0])
	var sinks []*Sink
	defer func() {
		for _, s := range sinks {
			s.Close()
		}
	}()
	for _, r := range l.Reals {
		s, err := NewSink(r.NS, r.Role, o.Calls, gen.tsOff)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}

	results := make([]*CandidateResult, len(cands))
	for i, c := range cands {
		results[i] = &CandidateResult{Candidate: c}
	}
	measure := func(cr *CandidateResult, body func(r *running) error) {
		if cr.Skipped != "" {
			return
		}
		r, err := cr.Candidate.start(ctx, e)
		if err != nil {
			if errors.Is(err, ErrSkip) {
				cr.Skipped = err.Error()
				logf(o.Log, "%s: %v", cr.Name, err)
				return
			}
			cr.Errors = append(cr.Errors, err.Error())
			logf(o.Log, "%s: %v", cr.Name, err)
			return
		}
		defer func() {
			r.stop()
			setQueues(l, 1)
		}()
		if err := warmUp(gen, sinks); err != nil {
			cr.Errors = append(cr.Errors, fmt.Sprintf("%v; log: %s", err, firstLines(r.log(), 5)))
			logf(o.Log, "%s: %v", cr.Name, err)
			return
		}
		if err := body(r); err != nil {
			cr.Errors = append(cr.Errors, err.Error())
		}
	}

	for round := range o.Rounds {
		for _, cr := range results {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			measure(cr, func(r *running) error {
				sat := runOnce(l, r, gen, sinks, o.RunTime, 0, o.Senders)
				sat.Round = round
				cr.Saturation = append(cr.Saturation, sat)
				rate := o.LatencyFraction * sat.DeliveredPPS
				lat := runOnce(l, r, gen, sinks, o.RunTime, rate, o.Senders)
				lat.Round = round
				cr.Latency = append(cr.Latency, lat)
				cr.latSamples = append(cr.latSamples, lat.samples...)
				logf(o.Log, "round %d %-28s max %8.0f pkt/s (offered %8.0f, loss %5.2f%%), cpu %.2fs → %8.0f pkt/cpu-s; at %.0f pkt/s: loss %.3f%%, p50 %.0fµs p99 %.0fµs",
					round+1, cr.Name, sat.DeliveredPPS, sat.OfferedPPS, 100*sat.Loss, sat.CPUSeconds, sat.PktsPerCPUSecond,
					rate, 100*lat.Loss, lat.P50, lat.P99)
				return nil
			})
		}
	}
	summarize(results)

	if o.Full {
		top := 0.0
		for _, cr := range results {
			top = max(top, cr.DeliveredPPS)
		}
		for _, f := range sweepFractions {
			for _, cr := range results {
				measure(cr, func(r *running) error {
					p := runOnce(l, r, gen, sinks, o.RunTime, f*top, o.Senders)
					cr.Sweep = append(cr.Sweep, p)
					logf(o.Log, "sweep %-28s offered %8.0f delivered %8.0f loss %.3f%%", cr.Name, p.OfferedPPS, p.DeliveredPPS, 100*p.Loss)
					return nil
				})
			}
		}
	}
	summarize(results) // again: the sweep's affinity violations count too
	for _, cr := range results {
		cr.latCDF = cdf(cr.latSamples)
		cr.latSamples = nil
		rep.Candidates = append(rep.Candidates, *cr)
	}
	rep.finish()
	return rep, nil
}

// warmUp sends a trickle until the sinks receive (the candidate is
// forwarding), then discards what the sinks counted.
func warmUp(gen *Generator, sinks []*Sink) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		gen.Run(100*time.Millisecond, 2000, 1)
		quiet(sinks, drainGap, drainLimit)
		res := merge(sinks, 0)
		if res.Received > 0 {
			return nil
		}
	}
	return errors.New("perf: nothing reached the real servers within 10 s")
}

// runOnce offers load for d at rate (0: as fast as the generator can),
// waits for the stragglers and measures.
func runOnce(l *lab.Lab, r *running, gen *Generator, sinks []*Sink, d time.Duration, rate float64, senders int) Run1 {
	var pids []int
	if !r.softirq {
		pids = nsPIDs(l.Balancer.NS)
	}
	merge(sinks, 0) // start clean
	before := snapCPU(pids)
	t0 := time.Now()
	sent := gen.Run(d, rate, senders)
	el := time.Since(t0).Seconds()
	quiet(sinks, drainGap, drainLimit)
	after := snapCPU(pids)
	res := merge(sinks, sent)
	proc, user, soft, busy := before.delta(after)
	out := Run1{
		RatePPS:      rate,
		Seconds:      el,
		Sent:         res.Sent,
		Received:     res.Received,
		OfferedPPS:   float64(res.Sent) / el,
		DeliveredPPS: float64(res.Received) / el,
		Violations:   res.Violations,
		Foreign:      res.Foreign,
		PerSink:      res.PerSink,
		CPUSeconds:   proc,
		UserSeconds:  user,
		SoftirqSecs:  soft,
		MachineSecs:  busy,
		samples:      res.lat,
	}
	if res.Sent > 0 && res.Received < res.Sent {
		out.Loss = float64(res.Sent-res.Received) / float64(res.Sent)
	}
	cpu := proc
	if r.softirq {
		cpu = soft
		out.CPUSeconds = soft
	}
	if cpu > 0 {
		out.PktsPerCPUSecond = float64(res.Received) / cpu
	}
	if busy > 0 {
		out.PktsPerMachineCPUSecond = float64(res.Received) / busy
	}
	q := percentiles(res.lat, 0.5, 0.99, 0.999)
	out.P50, out.P99, out.P999 = q[0], q[1], q[2]
	return out
}

func summarize(results []*CandidateResult) {
	var ceiling *CandidateResult
	for _, cr := range results {
		med := func(f func(Run1) float64, runs []Run1) float64 {
			var v []float64
			for _, r := range runs {
				v = append(v, f(r))
			}
			return median(v)
		}
		s, lt := cr.Saturation, cr.Latency
		cr.OfferedPPS = med(func(r Run1) float64 { return r.OfferedPPS }, s)
		cr.DeliveredPPS = med(func(r Run1) float64 { return r.DeliveredPPS }, s)
		cr.Loss = med(func(r Run1) float64 { return r.Loss }, s)
		cr.CPUSeconds = med(func(r Run1) float64 { return r.CPUSeconds / r.Seconds }, s)
		cr.UserSeconds = med(func(r Run1) float64 { return r.UserSeconds / r.Seconds }, s)
		cr.PktsPerCPUSecond = med(func(r Run1) float64 { return r.PktsPerCPUSecond }, s)
		cr.PktsPerMachineCPUSecond = med(func(r Run1) float64 { return r.PktsPerMachineCPUSecond }, s)
		cr.LatencyRatePPS = med(func(r Run1) float64 { return r.RatePPS }, lt)
		cr.LatencyLoss = med(func(r Run1) float64 { return r.Loss }, lt)
		cr.P50 = med(func(r Run1) float64 { return r.P50 }, lt)
		cr.P99 = med(func(r Run1) float64 { return r.P99 }, lt)
		cr.P999 = med(func(r Run1) float64 { return r.P999 }, lt)
		for _, r := range append(append(append([]Run1(nil), s...), lt...), cr.Sweep...) {
			cr.Violations += r.Violations
		}
		if cr.Ceiling {
			ceiling = cr
		}
	}
	if ceiling != nil && ceiling.DeliveredPPS > 0 {
		for _, cr := range results {
			cr.VsCeiling = cr.DeliveredPPS / ceiling.DeliveredPPS
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "== "+format+"\n", args...)
}
