package perf

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func netipAddrPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }

// Run1 is one measured run of one candidate.
type Run1 struct {
	Round int `json:"round"`
	// Kind is "drop" (output counted and dropped at the drop point, the
	// generator unthrottled: rate and CPU) or "sinks" (output received by
	// the real servers' sinks: loss, latency, affinity).
	Kind string `json:"kind"`
	// RatePPS is the rate asked of the generator (0: as fast as it can).
	RatePPS      float64 `json:"rate_pps"`
	Seconds      float64 `json:"seconds"`
	Sent         uint64  `json:"sent"`
	Received     uint64  `json:"received"`
	OfferedPPS   float64 `json:"offered_pps"`
	DeliveredPPS float64 `json:"delivered_pps"`
	Loss         float64 `json:"loss"`
	Violations   int     `json:"affinity_violations"`
	Foreign      uint64  `json:"foreign"`
	// PerSink: datagrams per real server (received by its sink, or
	// counted for its MAC at the drop point).
	PerSink []int `json:"per_real_server"`
	// DropOther counts drop-point datagrams to no real server's MAC;
	// Leaked, datagrams a sink received during a drop run (both 0).
	DropOther uint64 `json:"drop_other,omitempty"`
	Leaked    uint64 `json:"leaked,omitempty"`
	// CPUSeconds: the balancer's processes (cgroup, else utime+stime);
	// for the kernel ceiling, the lab's CPU beyond the no-balancer baseline.
	CPUSeconds  float64 `json:"cpu_seconds"`
	UserSeconds float64 `json:"user_cpu_seconds"`
	SoftirqSecs float64 `json:"machine_softirq_seconds"`
	// MachineSecs: all busy CPU time of the machine (/proc/stat); LabSecs:
	// the candidate, the harness (generator, sinks) and the kernel's
	// softirq/NAPI threads (other processes excluded); SelfSecs and
	// KthreadSecs: those two parts.
	MachineSecs float64 `json:"machine_busy_seconds"`
	// CtxSwitches: the context switches (voluntary and not) of the
	// candidate's threads over the run (/proc/PID/task/TID/status).
	CtxSwitches uint64  `json:"context_switches,omitempty"`
	LabSecs     float64 `json:"lab_seconds,omitempty"`
	SelfSecs    float64 `json:"harness_seconds,omitempty"`
	KthreadSecs float64 `json:"kernel_thread_seconds,omitempty"`
	// Per-packet figures of a drop run: the balancer's CPU, and the
	// machine's and the lab's beyond the no-balancer baseline.
	BalancerUsPerPkt        float64 `json:"balancer_us_per_pkt,omitempty"`
	MachineUsPerPkt         float64 `json:"machine_us_per_pkt_over_baseline,omitempty"`
	LabUsPerPkt             float64 `json:"lab_us_per_pkt_over_baseline,omitempty"`
	PktsPerCPUSecond        float64 `json:"pkts_per_cpu_second"`
	PktsPerMachineCPUSecond float64 `json:"pkts_per_machine_cpu_second"`
	CtxSwitchesPerKPkt      float64 `json:"context_switches_per_1000_pkts,omitempty"`
	P50                     float64 `json:"p50_us"`
	P99                     float64 `json:"p99_us"`
	P999                    float64 `json:"p999_us"`
	// Accounting: where a sink run's datagrams went (sink runs only).
	Accounting *Accounting `json:"accounting,omitempty"`
	samples    []uint32
}

// CandidateResult is a candidate's runs and their medians.
type CandidateResult struct {
	Candidate
	Skipped string   `json:"skipped,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// Medians over the rounds' drop-point runs (generator unthrottled).
	OfferedPPS              float64 `json:"offered_pps"`
	DeliveredPPS            float64 `json:"max_delivered_pps"`
	Loss                    float64 `json:"loss_at_max"`
	CPUSeconds              float64 `json:"cpu_seconds_per_second"`
	UserSeconds             float64 `json:"user_cpu_seconds_per_second"`
	PktsPerCPUSecond        float64 `json:"pkts_per_cpu_second"`
	BalancerUsPerPkt        float64 `json:"balancer_us_per_pkt"`
	UserUsPerPkt            float64 `json:"user_us_per_pkt"`
	PktsPerMachineCPUSecond float64 `json:"pkts_per_machine_cpu_second"`
	CtxSwitchesPerKPkt      float64 `json:"context_switches_per_1000_pkts"`
	MachineUsPerPkt         float64 `json:"machine_us_per_pkt_over_baseline"`
	LabUsPerPkt             float64 `json:"lab_us_per_pkt_over_baseline"`
	VsCeiling               float64 `json:"vs_ceiling"`
	// Medians over the sink runs (LatencyFraction of each round's max).
	LatencyRatePPS float64 `json:"latency_rate_pps"`
	LatencyLoss    float64 `json:"latency_loss"`
	// SinkUsPerPkt: the balancer's CPU per datagram the sinks received in
	// the sink runs, which charges it the receivers' stack veth runs
	// inline in its transmit (the drop-point figure does not).
	SinkUsPerPkt float64 `json:"sink_run_balancer_us_per_pkt,omitempty"`
	P50          float64 `json:"p50_us"`
	P99          float64 `json:"p99_us"`
	P999         float64 `json:"p999_us"`
	Violations   int     `json:"affinity_violations"`
	// Split is the perf(1) split of the candidate's CPU time (PerfSplit).
	Split *Split `json:"perf_split,omitempty"`

	Saturation []Run1 `json:"drop_runs"`
	Latency    []Run1 `json:"sink_runs"`
	Sweep      []Run1 `json:"sweep_runs,omitempty"`
	// LatencyCDF: latency (µs) at the quantiles of CDFQuantiles, all
	// latency runs pooled.
	LatencyCDF []float64 `json:"latency_cdf_us,omitempty"`

	latSamples []uint32
	latCDF     []float64
}

// CDFQuantiles are the quantiles of CandidateResult.LatencyCDF.
var CDFQuantiles = []float64{0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999}

func cdf(samples []uint32) []float64 {
	if len(samples) == 0 {
		return nil
	}
	return percentiles(samples, CDFQuantiles...)
}

// Goal is one of the goals with this run's figure.
type Goal struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail"`
}

// Report is a whole run.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Mode     string    `json:"mode"`
	Machine  Machine   `json:"machine"`
	Settings struct {
		Rounds          int     `json:"rounds"`
		RunSeconds      float64 `json:"run_seconds"`
		Calls           int     `json:"calls"`
		SourcePorts     int     `json:"source_ports"`
		PayloadBytes    int     `json:"payload_bytes"`
		LatencyFraction float64 `json:"latency_fraction"`
		Senders         int     `json:"senders"`
		DropPoint       string  `json:"drop_point"`
		Offloads        string  `json:"offloads"`
		// DropRatePPS is the drop-point runs' offered rate (0: unthrottled).
		DropRatePPS float64 `json:"drop_rate_pps,omitempty"`
		// KamailioConfig is the kamailio.cfg the run used, with its
		// command-line arguments.
		KamailioConfig string `json:"kamailio_config,omitempty"`
		KamailioArgs   string `json:"kamailio_args,omitempty"`
	} `json:"settings"`
	Candidates []CandidateResult `json:"candidates"`
	Goals      []Goal            `json:"goals"`
	Notes      []string          `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
	// LoadMax is the highest 1-minute load average seen between rounds.
	LoadMax     float64 `json:"loadavg_max"`
	Description string  `json:"description"`
	// BalancerClock says where the balancer's CPU time was read.
	BalancerClock string `json:"balancer_clock"`
}

func newReport(o Options) *Report {
	r := &Report{Started: time.Now(), Mode: "quick"}
	if o.Full {
		r.Mode = "full"
	}
	r.Settings.Rounds, r.Settings.RunSeconds, r.Settings.Calls = o.Rounds, o.RunTime.Seconds(), o.Calls
	r.Settings.SourcePorts, r.Settings.LatencyFraction, r.Settings.Senders = SourcePorts, o.LatencyFraction, o.Senders
	r.Settings.DropPoint = o.Drop.String()
	r.Settings.DropRatePPS = o.DropRate
	r.Settings.Offloads = "off (checksums complete on the wire)"
	if o.KeepOffloads {
		r.Settings.Offloads = "defaults (the senders leave UDP checksums to offload)"
	}
	r.Machine = Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg(), CPUModel: cpuModel(), Kernel: kernel(),
		Description: "veth network-namespace lab (internal/lab): generator, router, balancer and sinks share the machine's CPUs"}
	return r
}

func (r *Report) finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = loadavg()
	r.Machine.LoadMax = max(r.Machine.LoadMax, load1())
	get := func(name string) *CandidateResult {
		for i := range r.Candidates {
			if r.Candidates[i].Name == name && r.Candidates[i].DeliveredPPS > 0 {
				return &r.Candidates[i]
			}
		}
		return nil
	}
	// One fixed candidate per goal: AF_XDP native, direct routing.
	xvs := get(GoalXVS)
	naive := get(NaiveName)
	kam := get(KamailioName)
	ceil := get(CeilingName)
	ratio := func(name, target string, min float64, a, b *CandidateResult) {
		if a == nil || b == nil || b.PktsPerCPUSecond == 0 {
			return
		}
		v := a.PktsPerCPUSecond / b.PktsPerCPUSecond
		detail := fmt.Sprintf("%s %.0f vs %s %.0f pkt per balancer CPU-s (%.2f vs %.2f µs/pkt)", a.Name, a.PktsPerCPUSecond, b.Name, b.PktsPerCPUSecond,
			a.BalancerUsPerPkt, b.BalancerUsPerPkt)
		if a.MachineUsPerPkt > 0 && b.MachineUsPerPkt > 0 {
			detail += fmt.Sprintf("; machine CPU beyond the baseline %.2f vs %.2f µs/pkt (%.2f×)", a.MachineUsPerPkt, b.MachineUsPerPkt, b.MachineUsPerPkt/a.MachineUsPerPkt)
		}
		r.Goals = append(r.Goals, Goal{Name: name, Target: target, Value: v, Met: v >= min, Detail: detail})
	}
	ratio("xvs vs the naive proxy, packets per balancer CPU second", "≥ 3×", 3, xvs, naive)
	ratio("xvs vs Kamailio's dispatcher, packets per balancer CPU second", "≥ 20×", 20, xvs, kam)
	if xvs != nil && ceil != nil {
		r.Goals = append(r.Goals, Goal{Name: "xvs packets/s vs the lab ceiling (drop point)", Target: "≥ 0.90", Value: xvs.VsCeiling, Met: xvs.VsCeiling >= 0.9,
			Detail: fmt.Sprintf("%s %.0f vs %.0f pkt/s", xvs.Name, xvs.DeliveredPPS, ceil.DeliveredPPS)})
	}
	if xvs != nil {
		r.Goals = append(r.Goals, Goal{Name: "xvs affinity violations (Call-IDs at more than one real server), sink runs", Target: "0",
			Value: float64(xvs.Violations), Met: xvs.Violations == 0})
		var lossy []string
		for _, run := range append(append([]Run1(nil), xvs.Latency...), xvs.Sweep...) {
			if run.RatePPS > 0 && run.RatePPS < xvs.DeliveredPPS && run.Loss > 0 {
				s := fmt.Sprintf("%.3f%% at %.0f pkt/s", 100*run.Loss, run.RatePPS)
				if a := run.Accounting; a != nil && a.Where != "" {
					s += fmt.Sprintf(" (at %s, %d unexplained; %s)", a.Where, a.Unexplained, a.waits())
				}
				lossy = append(lossy, s)
			}
		}
		r.Goals = append(r.Goals, Goal{Name: "xvs loss below its maximum rate (sink runs)", Target: "0", Value: float64(len(lossy)), Met: len(lossy) == 0,
			Detail: strings.Join(lossy, "; ")})
	}
	viol := 0
	for _, c := range r.Candidates {
		viol += c.Violations
	}
	r.Goals = append(r.Goals, Goal{Name: "affinity violations, every candidate and run", Target: "0", Value: float64(viol), Met: viol == 0})
}

// load1 is the 1-minute load average.
func load1() float64 {
	f := strings.Fields(loadavg())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Write writes base.json, base.md and base.svg.
func (r *Report) Write(base string) error {
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return err
	}
	for i := range r.Candidates {
		r.Candidates[i].LatencyCDF = r.Candidates[i].latCDF
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(j, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(r.Markdown(filepath.Base(base)+".svg")), 0o644); err != nil {
		return err
	}
	return os.WriteFile(base+".svg", []byte(r.SVG()), 0o644)
}

func us(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

// shares renders the drop point's per-real-server split of a candidate's
// drop runs, in percent.
func shares(runs []Run1) string {
	var per []int
	total := 0
	for _, r := range runs {
		for i, n := range r.PerSink {
			if i >= len(per) {
				per = append(per, 0)
			}
			per[i] += n
			total += n
		}
	}
	if total == 0 {
		return "–"
	}
	var f []string
	for _, n := range per {
		f = append(f, fmt.Sprintf("%.0f", 100*float64(n)/float64(total)))
	}
	return strings.Join(f, "/") + " %"
}

func kpps(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f k", v/1e3)
}

// Markdown renders the report's tables.
func (r *Report) Markdown(svg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# xvs end-to-end benchmark (%s mode)\n\n", r.Mode)
	fmt.Fprintf(&b, "%s, %d CPUs (%s), kernel %s, %s; load average before %s, after %s, highest 1-minute value between rounds %.2f; %.0f s.\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.Go,
		r.Machine.LoadBefore, r.Machine.LoadAfter, r.Machine.LoadMax, r.Seconds)
	fmt.Fprintf(&b, "Drop point: %s. Veth offloads: %s. Balancer CPU: %s.\n", r.Settings.DropPoint, r.Settings.Offloads, r.Machine.BalancerClock)
	fmt.Fprintf(&b, "%s. %d round(s) of %.1f s runs, candidates alternating; %d Call-IDs, %d-byte INVITEs from %d source ports, %d sending goroutines; medians over rounds.\n\n",
		r.Machine.Description, r.Settings.Rounds, r.Settings.RunSeconds, r.Settings.Calls, r.Settings.PayloadBytes, r.Settings.SourcePorts, r.Settings.Senders)
	gen := "generator unthrottled"
	if r.Settings.DropRatePPS > 0 {
		gen = fmt.Sprintf("generator paced at %.0f pkt/s", r.Settings.DropRatePPS)
	}
	fmt.Fprintf(&b, "Drop-point runs (the balancer's output counted and dropped on the switch port facing it; %s):\n\n", gen)
	b.WriteString("| candidate | max pkt/s | loss at max | balancer CPU s/s (user) | balancer µs/pkt (user) | pkt per balancer CPU s | context switches per 1000 pkts | machine µs/pkt beyond baseline | lab µs/pkt beyond baseline | vs ceiling | per real server |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Candidates {
		if c.Skipped != "" || len(c.Saturation) == 0 {
			why := c.Skipped
			if why == "" {
				why = strings.Join(c.Errors, "; ")
			}
			fmt.Fprintf(&b, "| %s | not measured: %s ||||||||||\n", c.Name, strings.ReplaceAll(why, "|", "/"))
			continue
		}
		if c.Baseline {
			fmt.Fprintf(&b, "| %s | %s | – | – | – | – | – | (%.2f µs/pkt: subtracted) | (%.2f) | – | – |\n", c.Name, kpps(c.DeliveredPPS), c.MachineUsPerPkt, c.LabUsPerPkt)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f %% | %.2f (%.2f) | %.2f (%.2f) | %s | %s | %s | %s | %.2f | %s |\n",
			c.Name, kpps(c.DeliveredPPS), 100*c.Loss, c.CPUSeconds, c.UserSeconds, c.BalancerUsPerPkt, c.UserUsPerPkt, kpps(c.PktsPerCPUSecond),
			us(c.CtxSwitchesPerKPkt), us(c.MachineUsPerPkt), us(c.LabUsPerPkt), c.VsCeiling, shares(c.Saturation))
	}
	b.WriteString("\nSink runs (the real servers' sinks receive; at the latency fraction of each round's maximum):\n\n")
	b.WriteString("| candidate | offered pkt/s | loss | balancer µs/pkt (delivered) | p50 µs | p99 µs | p99.9 µs | affinity violations |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Candidates {
		if c.Baseline || len(c.Latency) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f %% | %s | %.0f | %.0f | %.0f | %d |\n", c.Name, kpps(c.LatencyRatePPS), 100*c.LatencyLoss, us(c.SinkUsPerPkt), c.P50, c.P99, c.P999, c.Violations)
	}
	if loss := lossTable(r.Candidates); loss != "" {
		b.WriteString("\n" + loss)
	} else {
		b.WriteString("\nNo sink run lost a datagram.\n")
	}
	if split := r.splitTable(); split != "" {
		b.WriteString("\n" + split)
	}
	b.WriteString("\n| goal | target | this run | met | detail |\n|---|---|---|---|---|\n")
	for _, g := range r.Goals {
		met := "no"
		if g.Met {
			met = "**yes**"
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s | %s |\n", g.Name, g.Target, g.Value, met, g.Detail)
	}
	hasSweep := false
	for _, c := range r.Candidates {
		hasSweep = hasSweep || len(c.Sweep) > 0
	}
	if hasSweep {
		b.WriteString("\nOffered load sweep (one run per point): delivered pkt/s (loss)\n\n| candidate |")
		var cols []float64
		for _, c := range r.Candidates {
			if len(c.Sweep) > len(cols) {
				cols = nil
				for _, p := range c.Sweep {
					cols = append(cols, p.RatePPS)
				}
			}
		}
		for _, v := range cols {
			fmt.Fprintf(&b, " %s offered |", kpps(v))
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
		for _, c := range r.Candidates {
			if len(c.Sweep) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s |", c.Name)
			for _, p := range c.Sweep {
				fmt.Fprintf(&b, " %s (%.2f %%) |", kpps(p.DeliveredPPS), 100*p.Loss)
			}
			b.WriteString("\n")
		}
	}
	if svg != "" {
		fmt.Fprintf(&b, "\n![throughput vs offered load, latency distribution](%s)\n", svg)
	}
	b.WriteString("\nHow it is measured:\n\n")
	for _, n := range append(methodNotes(), r.Notes...) {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}

func methodNotes() []string {
	return []string{
		"drop point: a BPF program on the switch port facing the balancer (TCX ingress, or native XDP with --drop xdp) counts the balancer's output per real server by destination MAC and drops it, the same fixed cost for every candidate; nothing reaches the real servers. max pkt/s: datagrams it counted per second while the generator sent as fast as it could (sendmmsg, 32 per call, from the sending goroutines in the client namespace); loss = 1 − counted/sent.",
		"balancer CPU: the CPU time of the candidate's processes (a cgroup v2 holding them, or utime+stime of the processes in the balancer namespace), which includes the softirq work the kernel runs inline in their system calls (veth delivers to the drop point inside the sender's sendto); µs/pkt = that time over the datagrams counted. For the kernel ceiling, which has no process, its lab CPU beyond the baseline.",
		"machine CPU beyond the baseline: all busy CPU time of the machine (/proc/stat) over the run, minus what the no-balancer baseline run spent per datagram sent (generator, client LAN, router, delivery to the balancer's interface, where that run drops it), over the datagrams counted. It charges the softirq work a candidate causes in other contexts (AF_XDP's receive copy runs in the generator's softirq). Other processes on the machine are in it too: read it only from a quiet machine. lab CPU: the same from the candidate's, the harness's and the kernel softirq/NAPI threads' clocks only, which other processes do not disturb.",
		"sink runs: the drop point detached, the real servers' sinks receive (recvmmsg) at the latency fraction of each round's drop-point maximum. latency: one-way, client to real server through the balancer, from a send timestamp in an X-Send-Time header (one clock: generator and sinks are goroutines of the harness) to the sink's recvmmsg return (taken once per batch). balancer µs/pkt (delivered): the candidate's CPU over the datagrams the sinks received, at that lower rate and with the receivers' stack (bridge, IP, UDP, the sink's wake-up) that veth runs inline in the candidate's transmit charged to it — what a per-process figure on a veth lab without a drop point shows.",
		"loss accounting (sink runs): the lab's counters are read before the run and after the sinks went quiet — every namespace's interfaces (/proc/net/dev: packets, drops, errors), IP and UDP MIB (/proc/net/snmp: forwarded, RcvbufErrors, …), the CPUs' backlog drops (softnet_stat), xvs's metrics (the XDP filter's steered frames, each queue's AF_XDP ring statistics, verdicts) — and every drop counter that moved is listed; a veth counts a frame its XDP program could not hand to a full AF_XDP ring in its rx_dropped as well, which is counted once. CPU waits: the machine's CPU pressure (PSI \"some\") and the run-queue delay of the balancer's busiest thread (/proc/TID/schedstat) over the run.",
		"affinity: each sink finds the Call-ID with sipparse; a Call-ID that reached more than one real server in a run is a violation.",
		"lab ceiling: the balancer namespace as a plain IP router for the VIP (ip_forward=1, ECMP route over the real servers with a layer-4 hash, real servers set up for direct routing), no user space, no NAT, no conntrack.",
		"xvs: `xvs run --mode afxdp|raw [--xdp-mode native|generic]`, rules `-A -u VIP:5060 -s mh -p 60 -M 0.0.0.0 --pe sip -o` and 3 real servers with -g or -m. The naive proxy: one goroutine, ReadFromUDPAddrPort on the VIP (a local address for it), sipparse.CallID, FNV-1a, Write on a connected socket per real server. Kamailio: the kamailio.cfg in the JSON report (settings.kamailio_config). The AF_XDP floors forward with no pipeline: each frame's destination MAC set to a real server's by its UDP source port, nothing else; the Go one on xvs's package afxdp (same filter, rings, batches, waits), the C one on libxdp's xsk API (copy mode, need_wakeup, poll()).",
		"goals: one fixed candidate, " + GoalXVS + ", against " + NaiveName + ", " + KamailioName + " and the ceiling, ratios from this run.",
	}
}

// SVG renders two panels: delivered vs offered load for every run, and the
// latency distribution (CDF) of the latency runs.
func (r *Report) SVG() string {
	const W, H = 1100, 520
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}
	type pt struct{ x, y float64 }
	var series [][]pt
	var names []string
	maxX, maxY := 1.0, 1.0
	for _, c := range r.Candidates {
		var ps []pt
		for _, run := range append(append(append([]Run1(nil), c.Saturation...), c.Latency...), c.Sweep...) {
			ps = append(ps, pt{run.OfferedPPS, run.DeliveredPPS})
			maxX, maxY = max(maxX, run.OfferedPPS), max(maxY, run.DeliveredPPS)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].x < ps[j].x })
		series = append(series, ps)
		names = append(names, c.Name)
	}
	maxX, maxY = niceCeil(maxX), niceCeil(max(maxX, maxY))
	// Panel 1.
	x0, y0, pw, ph := 70.0, 40.0, 420.0, 360.0
	axes(&b, x0, y0, pw, ph, "offered load (k datagrams/s)", "delivered (k datagrams/s)", "Throughput vs offered load", maxX/1e3, maxY/1e3, false)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#bbb" stroke-dasharray="4 3"/>`+"\n",
		x0, y0+ph, x0+pw*min(1, maxY/maxX), y0+ph-ph*min(1, maxX/maxY))
	for i, ps := range series {
		col := colors[i%len(colors)]
		var path strings.Builder
		for k, p := range ps {
			X, Y := x0+pw*p.x/maxX, y0+ph-ph*p.y/maxY
			if k == 0 {
				fmt.Fprintf(&path, "M%.1f %.1f", X, Y)
			} else {
				fmt.Fprintf(&path, " L%.1f %.1f", X, Y)
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", X, Y, col)
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", path.String(), col)
	}
	// Panel 2: latency CDF, log x.
	x1 := 570.0
	lo, hi := 1.0, 10.0
	for i := range r.Candidates {
		if r.Candidates[i].latCDF == nil { // a report read back from JSON
			r.Candidates[i].latCDF = r.Candidates[i].LatencyCDF
		}
	}
	for _, c := range r.Candidates {
		for _, v := range c.latCDF {
			if v > 0 {
				hi = max(hi, v)
			}
		}
	}
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	axes(&b, x1, y0, pw, ph, "one-way latency (µs, log scale)", "fraction of datagrams", "Latency distribution at the latency fraction of max", hi, 1, true)
	for i, c := range r.Candidates {
		if len(c.latCDF) == 0 {
			continue
		}
		col := colors[i%len(colors)]
		var path strings.Builder
		for k, v := range c.latCDF {
			X := x1 + pw*math.Log10(max(v, lo)/lo)/math.Log10(hi/lo)
			Y := y0 + ph - ph*CDFQuantiles[k]
			if k == 0 {
				fmt.Fprintf(&path, "M%.1f %.1f", X, Y)
			} else {
				fmt.Fprintf(&path, " L%.1f %.1f", X, Y)
			}
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", path.String(), col)
	}
	// Legend.
	for i, n := range names {
		col := colors[i%len(colors)]
		lx := 70.0 + float64(i%3)*340
		ly := 458.0 + float64(i/3)*16
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="4" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", lx, ly-4, col, lx+16, ly, esc(n))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func axes(b *strings.Builder, x0, y0, w, h float64, xl, yl, title string, maxX, maxY float64, logX bool) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", x0, y0-15, esc(title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", x0, y0, w, h)
	for i := 0; i <= 5; i++ {
		f := float64(i) / 5
		Y := y0 + h - h*f
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			x0, Y, x0+w, Y, x0-5, Y+4, num(maxY*f))
		if !logX {
			X := x0 + w*f
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n",
				X, y0, X, y0+h, X, y0+h+15, num(maxX*f))
		}
	}
	if logX {
		decades := int(math.Round(math.Log10(maxX)))
		for d := 0; d <= decades; d++ {
			X := x0 + w*float64(d)/float64(max(decades, 1))
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n",
				X, y0, X, y0+h, X, y0+h+15, num(math.Pow(10, float64(d))))
		}
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+w/2, y0+h+32, esc(xl))
	fmt.Fprintf(b, `<text transform="translate(%.0f %.0f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0-50, y0+h/2, esc(yl))
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.1f", v)
	case v >= 1e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
