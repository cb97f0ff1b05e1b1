package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// latency, loss and affinity are measured with the sinks (default 0.5).
	LatencyFraction float64
	// Only keeps the candidates whose name contains one of these strings.
	Only []string
	// Senders is how many goroutines send (default: one per CPU, so the
	// generator is not the bottleneck; they compete with the balancer).
	Senders int
	// NoKamailio skips Kamailio even when it is installed.
	NoKamailio bool
	// Drop is the drop point's hook (default lab.DropTC).
	Drop lab.DropMode
	// DropRate paces the drop-point runs' generator at this many datagrams
	// per second (0: as fast as it can). At a rate every candidate keeps
	// up with, each sees the same arrivals, so its CPU per datagram is
	// compared at equal batching: at saturation a cheaper candidate drains
	// its ring sooner and sleeps (and is woken) more often per datagram.
	DropRate float64
	// PerfSplit records each candidate once more with perf(1) (software
	// clock) during a drop-point run and splits its CPU time into
	// transmission, reception, wake-ups, user code and the Go runtime.
	PerfSplit bool
	// Kamailio tunes the Kamailio candidate (zero: the defaults).
	Kamailio KamailioOptions
	// KeepOffloads leaves the veths' checksum and segmentation offloads at
	// their defaults (lab.Spec.KeepOffloads): the generator's datagrams then
	// reach the balancer with the UDP checksum left to offload.
	KeepOffloads bool
	// Variants add candidates: GoalXVS run with another binary and/or
	// more arguments, measured in the same alternating rounds (how a change
	// to xvs is compared with the build before it).
	Variants []Variant
	Log      io.Writer
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
	// drainLate: when the sinks have received fewer datagrams than were
	// sent after drainGap, a run waits until they are quiet this long: a
	// balancer descheduled on a busy machine for longer than drainGap
	// still holds datagrams (p99 latencies of 200–260 ms were seen on the
	// shared 2-vCPU machine), and they are late, not lost.
	drainLate = 600 * time.Millisecond
	// dropSettle is how long a drop-point run waits after the generator
	// stops for the datagrams in flight (queued in the balancer's rings
	// and sockets) to reach the drop point.
	dropSettle = 100 * time.Millisecond
)

// Names of the candidates the goals are stated for (one fixed candidate per
// goal, not the best of several variants).
const (
	GoalXVS      = "xvs afxdp-native dr"
	NaiveName    = "naive Go proxy"
	KamailioName = "kamailio dispatcher"
	CeilingName  = "kernel forwarding (ceiling)"
	GoFloorName  = "AF_XDP floor (Go, afxdp)"
	CFloorName   = "AF_XDP floor (C, libxdp)"
	BaselineName = "no balancer (baseline)"
)

// sweepFractions are the offered loads of the full mode's sweep, as
// fractions of the fastest candidate's median maximum rate.
var sweepFractions = []float64{0.1, 0.3, 0.5, 0.7, 0.9}

// candidates lists what a run measures, in the order of each round.
func candidates(o Options, kamailio string) ([]Candidate, []string) {
	cs := []Candidate{
		{Name: GoalXVS, Kind: "xvs", Backend: "afxdp", XDPMode: "native", DR: true, Queues: 1},
		{Name: "xvs afxdp-native nat", Kind: "xvs", Backend: "afxdp", XDPMode: "native", Queues: 1},
		{Name: "xvs afxdp-generic dr", Kind: "xvs", Backend: "afxdp", XDPMode: "generic", DR: true, Queues: 1},
		{Name: "xvs afxdp-generic nat", Kind: "xvs", Backend: "afxdp", XDPMode: "generic", Queues: 1},
		{Name: "xvs raw dr", Kind: "xvs", Backend: "raw", DR: true, Queues: 1},
		{Name: "xvs raw nat", Kind: "xvs", Backend: "raw", Queues: 1},
		{Name: NaiveName, Kind: "naive-proxy", Queues: 1},
		{Name: GoFloorName, Kind: "go-floor", DR: true, Queues: 1},
		{Name: CFloorName, Kind: "c-floor", DR: true, Queues: 1},
		{Name: CeilingName, Kind: "kernel", DR: true, Queues: 1, Ceiling: true},
		{Name: BaselineName, Kind: "baseline", DR: true, Queues: 1, Baseline: true},
	}
	var notes []string
	for i, v := range o.Variants {
		c := cs[0]
		c.Name, c.Variant, c.Binary, c.Args, c.Env = GoalXVS+" ["+v.Name+"]", v.Name, v.Binary, v.Args, v.Env
		cs = slices.Insert(cs, 1+i, c)
	}
	if o.Full && runtime.NumCPU() >= 2 {
		cs = slices.Insert(cs, 1, Candidate{Name: "xvs afxdp-native dr 2q", Kind: "xvs", Backend: "afxdp", XDPMode: "native", DR: true, Queues: 2})
	}
	switch {
	case o.NoKamailio:
		notes = append(notes, "Kamailio: skipped (--no-kamailio).")
	case kamailio == "":
		notes = append(notes, "Kamailio: not installed, skipped (Debian package kamailio; it is not installed in CI).")
	default:
		cs = slices.Insert(cs, len(cs)-2, Candidate{Name: KamailioName, Kind: "kamailio", Queues: 1})
	}
	if len(o.Only) > 0 {
		cs = slices.DeleteFunc(cs, func(c Candidate) bool {
			if c.Ceiling || c.Baseline || c.Variant != "" || c.Name == GoalXVS && len(o.Variants) > 0 {
				return false // every ratio needs them; variants were asked for, with their reference
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

// Variant is a variant of the goal candidate (Options.Variants).
type Variant struct {
	Name   string   // the candidate is named GoalXVS + " [" + Name + "]"
	Binary string   // "" = Options.XVS
	Args   []string // added to xvs run's arguments
	Env    []string // added to its environment (K=V)
}

// ParseVariant parses "NAME=[BINARY] [ARG...]": an empty BINARY is the
// benchmark's xvs; an ARG env:K=V sets an environment variable instead of
// being an argument. (Spaces separate: a command-line list flag splits on
// commas.)
func ParseVariant(s string) (Variant, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Variant{}, fmt.Errorf("perf: variant %q: want NAME=[BINARY] [ARG...]", s)
	}
	v := Variant{Name: name}
	f := strings.Fields(rest)
	if len(f) > 0 && !strings.HasPrefix(rest, " ") && !strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "env:") {
		v.Binary, f = f[0], f[1:]
	}
	for _, a := range f {
		if e, ok := strings.CutPrefix(a, "env:"); ok {
			v.Env = append(v.Env, e)
		} else {
			v.Args = append(v.Args, a)
		}
	}
	return v, nil
}

// harness is one benchmark run's lab and instruments.
type harness struct {
	o      Options
	lab    *lab.Lab
	env    env
	gen    *Generator
	sinks  []*Sink
	clocks clocks
	macs   [][6]byte // the real servers', in lab order
	path   pathNames
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
	l, err := lab.New(lab.Spec{Prefix: "xvsperf", Clients: 1, RealServers: 3, KeepOffloads: o.KeepOffloads})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	h := &harness{o: o, lab: l, env: env{lab: l, xvs: o.XVS, self: o.Self, kamailio: kam, dir: dir, kam: o.Kamailio}}
	if cg, err := newCgroup(fmt.Sprintf("xvsperf-%d", os.Getpid())); err == nil {
		h.clocks.cg, h.env.cg = cg, cg
		defer cg.remove()
		rep.Machine.BalancerClock = "cgroup v2 cpu.stat of the candidate's processes (" + cg.dir + ")"
	} else {
		rep.Machine.BalancerClock = "utime+stime of the balancer namespace's processes (/proc/PID/stat): " + err.Error()
	}
	h.clocks.kthreads = kernelThreads()
	h.path = newPathNames(l)
	for _, r := range l.Reals {
		m, err := lab.MAC(r.NS, r.Iface)
		if err != nil {
			return nil, err
		}
		h.macs = append(h.macs, m)
	}
	h.env.macs = h.macs
	for _, c := range cands {
		if c.Kind == "c-floor" {
			h.env.cfloor, h.env.cfloorErr = buildCFloor(dir)
			break
		}
	}

	vip := netipAddrPort(l.VIP4, SIPPort)
	if h.gen, err = NewGenerator(l.Clients[0].NS, l.Clients[0].Addr4, vip, o.Calls); err != nil {
		return nil, err
	}
	defer h.gen.Close()
	rep.Settings.PayloadBytes = len(h.gen.data[0])
	defer func() {
		for _, s := range h.sinks {
			s.Close()
		}
	}()
	for _, r := range l.Reals {
		s, err := NewSink(r.NS, r.Role, o.Calls, h.gen.tsOff)
		if err != nil {
			return nil, err
		}
		h.sinks = append(h.sinks, s)
	}

	results := make([]*CandidateResult, len(cands))
	for i, c := range cands {
		results[i] = &CandidateResult{Candidate: c}
	}
	if kam != "" {
		rep.Settings.KamailioConfig = kamailioConfig(o.Kamailio, l.VIP4, l.Balancer.Addr4, kamailioModules(kam), filepath.Join(dir, "dispatcher.list"))
		rep.Settings.KamailioArgs = strings.Join(kamailioArgs(o.Kamailio, filepath.Join(dir, "kamailio.cfg"), dir), " ")
	}
	for round := range o.Rounds {
		rep.Machine.LoadMax = max(rep.Machine.LoadMax, load1())
		for _, cr := range results {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h.measure(ctx, cr, func(r *running) error { return h.round(cr, r, round) })
		}
	}
	if o.PerfSplit {
		for _, cr := range results {
			h.measure(ctx, cr, func(r *running) error { return h.perfSplit(ctx, cr, r) })
		}
	}
	summarize(results)

	if o.Full {
		top := 0.0
		for _, cr := range results {
			if !cr.Baseline {
				top = max(top, cr.DeliveredPPS)
			}
		}
		for _, f := range sweepFractions {
			for _, cr := range results {
				if cr.Baseline {
					continue
				}
				h.measure(ctx, cr, func(r *running) error {
					p := h.sinkRun(r, f*top)
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

// measure starts the candidate, checks that it forwards, runs body and
// stops it.
func (h *harness) measure(ctx context.Context, cr *CandidateResult, body func(r *running) error) {
	if cr.Skipped != "" {
		return
	}
	r, err := cr.Candidate.start(ctx, h.env)
	if err != nil {
		if errors.Is(err, ErrSkip) {
			cr.Skipped = err.Error()
		} else {
			cr.Errors = append(cr.Errors, err.Error())
		}
		logf(h.o.Log, "%s: %v", cr.Name, err)
		return
	}
	defer func() {
		r.stop()
		setQueues(h.lab, 1)
		if strings.HasSuffix(cr.Kind, "floor") {
			// The floors print their counters (frames, system calls) as
			// they stop.
			logf(h.o.Log, "%s: %s", cr.Name, lastLine(r.log()))
		}
	}()
	if !cr.Baseline {
		if err := warmUp(h.gen, h.sinks); err != nil {
			cr.Errors = append(cr.Errors, fmt.Sprintf("%v; log: %s", err, firstLines(r.log(), 5)))
			logf(h.o.Log, "%s: %v", cr.Name, err)
			return
		}
	}
	if err := body(r); err != nil {
		cr.Errors = append(cr.Errors, err.Error())
		logf(h.o.Log, "%s: %v", cr.Name, err)
	}
}

// round is one round of a candidate: the drop-point run at saturation, then
// a sink run at the latency fraction of the rate it reached.
func (h *harness) round(cr *CandidateResult, r *running, round int) error {
	sat, err := h.dropRun(cr, r)
	if err != nil {
		return err
	}
	sat.Round = round
	cr.Saturation = append(cr.Saturation, sat)
	if cr.Baseline {
		logf(h.o.Log, "round %d %-28s %8.0f pkt/s offered and dropped at the balancer's port; machine %.2f, lab %.2f µs per datagram sent",
			round+1, cr.Name, sat.DeliveredPPS, 1e6*sat.MachineSecs/float64(max(sat.Sent, 1)), 1e6*sat.LabSecs/float64(max(sat.Sent, 1)))
		return nil
	}
	rate := h.o.LatencyFraction * sat.DeliveredPPS
	lat := h.sinkRun(r, rate)
	lat.Round = round
	cr.Latency = append(cr.Latency, lat)
	cr.latSamples = append(cr.latSamples, lat.samples...)
	logf(h.o.Log, "round %d %-28s max %8.0f pkt/s (offered %8.0f, loss %5.2f%%), balancer %.2f µs/pkt (%.0f pkt/cpu-s, %.1f context switches per 1000); sinks at %.0f pkt/s: loss %.3f%%, p50 %.0fµs p99 %.0fµs, %d affinity violations",
		round+1, cr.Name, sat.DeliveredPPS, sat.OfferedPPS, 100*sat.Loss, sat.BalancerUsPerPkt, sat.PktsPerCPUSecond, sat.CtxSwitchesPerKPkt,
		rate, 100*lat.Loss, lat.P50, lat.P99, lat.Violations)
	if a := lat.Accounting; a != nil && (a.Lost > 0 || a.Err != "" || len(a.Drops) > 0) {
		logf(h.o.Log, "round %d %-28s sink run: %s", round+1, cr.Name, a)
	}
	return nil
}

// dropPoint attaches the drop point where a candidate's output leaves the
// balancer (the switch port facing it), or for the baseline where its input
// arrives (the balancer's own interface).
func (h *harness) dropPoint(cr *CandidateResult) (*lab.DropPoint, error) {
	if cr.Baseline {
		return lab.NewDropPoint(h.lab.Balancer.NS, h.lab.Balancer.Iface, SIPPort, nil, h.o.Drop)
	}
	return lab.NewDropPoint(h.lab.Switch, h.lab.Balancer.Port, SIPPort, h.macs, h.o.Drop)
}

// dropRun offers load as fast as the generator can for RunTime with the
// drop point attached, and measures rate, loss and CPU.
func (h *harness) dropRun(cr *CandidateResult, r *running) (Run1, error) {
	d, err := h.dropPoint(cr)
	if err != nil {
		return Run1{}, err
	}
	defer d.Close()
	var pids []int
	if h.clocks.cg == nil && !r.softirq {
		pids = nsPIDs(h.lab.Balancer.NS)
	}
	merge(h.sinks, 0)
	var procs []int
	if !r.softirq {
		procs = h.candidatePIDs()
	}
	cs0 := ctxSwitches(procs)
	before := h.clocks.snap(pids)
	t0 := time.Now()
	sent, _ := h.gen.Run(h.o.RunTime, h.o.DropRate, h.o.Senders)
	el := time.Since(t0).Seconds()
	time.Sleep(dropSettle)
	after := h.clocks.snap(pids)
	cs := ctxSwitches(procs) - cs0
	per, other, err := d.Counts()
	if err != nil {
		return Run1{}, err
	}
	leaked := merge(h.sinks, 0).Received
	var got uint64
	for _, n := range per {
		got += n
	}
	got += other
	cpu := before.delta(after)
	out := Run1{
		Kind: "drop", Seconds: el, Sent: sent, Received: got,
		OfferedPPS: float64(sent) / el, DeliveredPPS: float64(got) / el,
		DropOther: other, Leaked: leaked,
		CPUSeconds: cpu.cand, UserSeconds: cpu.candUser, SoftirqSecs: cpu.softirq, MachineSecs: cpu.busy,
		LabSecs: cpu.lab(), SelfSecs: cpu.self, KthreadSecs: cpu.kthreads,
		CtxSwitches: cs,
	}
	for _, n := range per {
		out.PerSink = append(out.PerSink, int(n))
	}
	if sent > 0 && got < sent {
		out.Loss = float64(sent-got) / float64(sent)
	}
	if r.softirq {
		// No process: the balancer's CPU is what the machine spent beyond
		// the baseline (see finishMachine); until then, its softirq time.
		out.CPUSeconds, out.UserSeconds = cpu.softirq, 0
	}
	out.setPerPacket()
	return out, nil
}

// setPerPacket derives the per-packet figures of a drop run.
func (r *Run1) setPerPacket() {
	if r.Received == 0 {
		return
	}
	n := float64(r.Received)
	if r.CPUSeconds > 0 {
		r.PktsPerCPUSecond = n / r.CPUSeconds
	}
	r.BalancerUsPerPkt = 1e6 * r.CPUSeconds / n
	r.CtxSwitchesPerKPkt = 1e3 * float64(r.CtxSwitches) / n
	if r.MachineSecs > 0 {
		r.PktsPerMachineCPUSecond = n / r.MachineSecs
	}
}

// sinkRun offers load at rate (0: as fast as it can) to the sinks, waits
// for the stragglers and measures loss, latency and affinity.
func (h *harness) sinkRun(r *running, rate float64) Run1 {
	var pids []int
	if h.clocks.cg == nil && !r.softirq {
		pids = nsPIDs(h.lab.Balancer.NS)
	}
	merge(h.sinks, 0) // start clean
	cBefore, cerr := h.readCounters(r.metrics)
	before := h.clocks.snap(pids)
	t0 := time.Now()
	sent, sendErrs := h.gen.Run(h.o.RunTime, rate, h.o.Senders)
	el := time.Since(t0).Seconds()
	drain(h.sinks, sent, drainGap, drainLate, drainLimit)
	cpu := before.delta(h.clocks.snap(pids))
	res := merge(h.sinks, sent)
	var cAfter labCounters
	if cerr == nil {
		cAfter, cerr = h.readCounters(r.metrics)
	}
	acc := account(h.path, cBefore, cAfter, res.Sent, sendErrs, res.Received, time.Since(t0).Seconds())
	if cerr != nil {
		acc = Accounting{Sent: res.Sent, SendErrors: sendErrs, Received: res.Received, Err: cerr.Error()}
	}
	acc.Load = load1()
	out := Run1{
		Kind: "sinks", RatePPS: rate, Seconds: el, Sent: res.Sent, Received: res.Received,
		OfferedPPS: float64(res.Sent) / el, DeliveredPPS: float64(res.Received) / el,
		Violations: res.Violations, Foreign: res.Foreign, PerSink: res.PerSink, samples: res.lat,
		Accounting: &acc,
	}
	if !r.softirq && res.Received > 0 {
		// The candidate's CPU with its output delivered: the receivers'
		// stack that veth runs inline in its transmit is charged to it.
		out.CPUSeconds, out.UserSeconds = cpu.cand, cpu.candUser
		out.BalancerUsPerPkt = 1e6 * cpu.cand / float64(res.Received)
	}
	if res.Sent > 0 && res.Received < res.Sent {
		out.Loss = float64(res.Sent-res.Received) / float64(res.Sent)
	}
	q := percentiles(res.lat, 0.5, 0.99, 0.999)
	out.P50, out.P99, out.P999 = q[0], q[1], q[2]
	return out
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

func summarize(results []*CandidateResult) {
	var ceiling, baseline *CandidateResult
	for _, cr := range results {
		switch {
		case cr.Ceiling:
			ceiling = cr
		case cr.Baseline:
			baseline = cr
		}
	}
	// The no-balancer baseline: machine and lab CPU per datagram the
	// generator sent and the lab carried to the balancer's door, by round.
	type perSent struct{ machine, lab float64 }
	base := map[int]perSent{}
	if baseline != nil {
		for _, r := range baseline.Saturation {
			if r.Sent > 0 {
				base[r.Round] = perSent{r.MachineSecs / float64(r.Sent), r.LabSecs / float64(r.Sent)}
			}
		}
	}
	for _, cr := range results {
		for i := range cr.Saturation {
			r := &cr.Saturation[i]
			b, ok := base[r.Round]
			if !ok || r.Received == 0 {
				continue
			}
			n := float64(r.Received)
			if cr.Baseline {
				r.MachineUsPerPkt, r.LabUsPerPkt = 1e6*r.MachineSecs/n, 1e6*r.LabSecs/n
				continue
			}
			r.MachineUsPerPkt = 1e6 * (r.MachineSecs - b.machine*float64(r.Sent)) / n
			r.LabUsPerPkt = 1e6 * (r.LabSecs - b.lab*float64(r.Sent)) / n
			if cr.Ceiling && r.LabUsPerPkt > 0 {
				// The ceiling's own CPU is what the lab spent beyond the
				// baseline (its softirq work, in whatever context).
				r.CPUSeconds = r.LabUsPerPkt * n / 1e6
				r.setPerPacket()
			}
		}
	}
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
		cr.BalancerUsPerPkt = med(func(r Run1) float64 { return r.BalancerUsPerPkt }, s)
		cr.UserUsPerPkt = med(func(r Run1) float64 {
			if r.Received == 0 {
				return 0
			}
			return 1e6 * r.UserSeconds / float64(r.Received)
		}, s)
		cr.CtxSwitchesPerKPkt = med(func(r Run1) float64 { return r.CtxSwitchesPerKPkt }, s)
		cr.PktsPerMachineCPUSecond = med(func(r Run1) float64 { return r.PktsPerMachineCPUSecond }, s)
		cr.MachineUsPerPkt = med(func(r Run1) float64 { return r.MachineUsPerPkt }, s)
		cr.LabUsPerPkt = med(func(r Run1) float64 { return r.LabUsPerPkt }, s)
		cr.LatencyRatePPS = med(func(r Run1) float64 { return r.RatePPS }, lt)
		cr.LatencyLoss = med(func(r Run1) float64 { return r.Loss }, lt)
		cr.SinkUsPerPkt = med(func(r Run1) float64 { return r.BalancerUsPerPkt }, lt)
		cr.P50 = med(func(r Run1) float64 { return r.P50 }, lt)
		cr.P99 = med(func(r Run1) float64 { return r.P99 }, lt)
		cr.P999 = med(func(r Run1) float64 { return r.P999 }, lt)
		cr.Violations = 0
		for _, r := range append(append([]Run1(nil), lt...), cr.Sweep...) {
			cr.Violations += r.Violations
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
