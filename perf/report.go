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
	"strings"
	"time"
)

func netipAddrPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }

// Run1 is one measured run of one candidate.
type Run1 struct {
	Round int `json:"round"`
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
	PerSink      []int   `json:"per_real_server"`
	// CPUSeconds: the balancer's processes (utime+stime), or for the
	// kernel ceiling the machine's softirq time.
	CPUSeconds              float64 `json:"cpu_seconds"`
	UserSeconds             float64 `json:"user_cpu_seconds"`
	SoftirqSecs             float64 `json:"machine_softirq_seconds"`
	MachineSecs             float64 `json:"machine_busy_seconds"`
	PktsPerCPUSecond        float64 `json:"pkts_per_cpu_second"`
	PktsPerMachineCPUSecond float64 `json:"pkts_per_machine_cpu_second"`
	P50                     float64 `json:"p50_us"`
	P99                     float64 `json:"p99_us"`
	P999                    float64 `json:"p999_us"`
	samples                 []uint32
}

// CandidateResult is a candidate's runs and their medians.
type CandidateResult struct {
	Candidate
	Skipped string   `json:"skipped,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	// Medians over the rounds' saturation runs (generator unthrottled).
	OfferedPPS              float64 `json:"offered_pps"`
	DeliveredPPS            float64 `json:"max_delivered_pps"`
	Loss                    float64 `json:"loss_at_max"`
	CPUSeconds              float64 `json:"cpu_seconds_per_second"`
	UserSeconds             float64 `json:"user_cpu_seconds_per_second"`
	PktsPerCPUSecond        float64 `json:"pkts_per_cpu_second"`
	PktsPerMachineCPUSecond float64 `json:"pkts_per_machine_cpu_second"`
	VsCeiling               float64 `json:"vs_ceiling"`
	// Medians over the latency runs (LatencyFraction of each round's max).
	LatencyRatePPS float64 `json:"latency_rate_pps"`
	LatencyLoss    float64 `json:"latency_loss"`
	P50            float64 `json:"p50_us"`
	P99            float64 `json:"p99_us"`
	P999           float64 `json:"p999_us"`
	Violations     int     `json:"affinity_violations"`

	Saturation []Run1 `json:"saturation_runs"`
	Latency    []Run1 `json:"latency_runs"`
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
	} `json:"settings"`
	Candidates []CandidateResult `json:"candidates"`
	Goals      []Goal            `json:"goals"`
	Notes      []string          `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	LoadBefore  string `json:"loadavg_before"`
	LoadAfter   string `json:"loadavg_after"`
	Description string `json:"description"`
}

func newReport(o Options) *Report {
	r := &Report{Started: time.Now(), Mode: "quick"}
	if o.Full {
		r.Mode = "full"
	}
	r.Settings.Rounds, r.Settings.RunSeconds, r.Settings.Calls = o.Rounds, o.RunTime.Seconds(), o.Calls
	r.Settings.SourcePorts, r.Settings.LatencyFraction, r.Settings.Senders = SourcePorts, o.LatencyFraction, o.Senders
	r.Machine = Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg(), CPUModel: cpuModel(), Kernel: kernel(),
		Description: "veth network-namespace lab (internal/lab): generator, router, balancer and sinks share the machine's CPUs"}
	return r
}

func (r *Report) finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = loadavg()
	get := func(name string) *CandidateResult {
		for i := range r.Candidates {
			if r.Candidates[i].Name == name && r.Candidates[i].DeliveredPPS > 0 {
				return &r.Candidates[i]
			}
		}
		return nil
	}
	best := func(prefix string) *CandidateResult {
		var b *CandidateResult
		for i := range r.Candidates {
			c := &r.Candidates[i]
			if strings.HasPrefix(c.Name, prefix) && c.Queues == 1 && c.DeliveredPPS > 0 && (b == nil || c.PktsPerCPUSecond > b.PktsPerCPUSecond) {
				b = c
			}
		}
		return b
	}
	xdp := best("xvs afxdp")
	naive := get("naive Go proxy")
	kam := get("kamailio dispatcher")
	ceil := get("kernel forwarding (ceiling)")
	if xdp != nil && naive != nil && naive.PktsPerCPUSecond > 0 {
		v := xdp.PktsPerCPUSecond / naive.PktsPerCPUSecond
		r.Goals = append(r.Goals, Goal{Name: "xvs AF_XDP vs naive proxy, packets per CPU second", Target: "≥ 5×", Value: v, Met: v >= 5,
			Detail: fmt.Sprintf("%s %.0f vs %.0f", xdp.Name, xdp.PktsPerCPUSecond, naive.PktsPerCPUSecond)})
	}
	if xdp != nil && kam != nil && kam.PktsPerCPUSecond > 0 {
		v := xdp.PktsPerCPUSecond / kam.PktsPerCPUSecond
		r.Goals = append(r.Goals, Goal{Name: "xvs AF_XDP vs Kamailio dispatcher, packets per CPU second", Target: "≥ 50×", Value: v, Met: v >= 50,
			Detail: fmt.Sprintf("%s %.0f vs %.0f", xdp.Name, xdp.PktsPerCPUSecond, kam.PktsPerCPUSecond)})
	}
	if ceil != nil {
		var b *CandidateResult
		for i := range r.Candidates {
			c := &r.Candidates[i]
			if strings.HasPrefix(c.Name, "xvs afxdp") && (b == nil || c.DeliveredPPS > b.DeliveredPPS) {
				b = c
			}
		}
		if b != nil {
			r.Goals = append(r.Goals, Goal{Name: "xvs AF_XDP packets/s vs the lab ceiling", Target: "≥ 0.80", Value: b.VsCeiling, Met: b.VsCeiling >= 0.8,
				Detail: fmt.Sprintf("%s %.0f vs %.0f pkt/s", b.Name, b.DeliveredPPS, ceil.DeliveredPPS)})
		}
	}
	viol := 0
	for _, c := range r.Candidates {
		viol += c.Violations
	}
	r.Goals = append(r.Goals, Goal{Name: "affinity violations (Call-IDs at more than one real server), all runs", Target: "0", Value: float64(viol), Met: viol == 0})
	var lossy []string
	for _, c := range r.Candidates {
		for _, run := range append(append([]Run1(nil), c.Latency...), c.Sweep...) {
			if run.RatePPS > 0 && run.RatePPS < c.DeliveredPPS && run.Loss > 0 {
				lossy = append(lossy, fmt.Sprintf("%s %.3f%% at %.0f pkt/s", c.Name, 100*run.Loss, run.RatePPS))
			}
		}
	}
	r.Goals = append(r.Goals, Goal{Name: "loss below each candidate's maximum rate", Target: "0", Value: float64(len(lossy)), Met: len(lossy) == 0,
		Detail: strings.Join(lossy, "; ")})
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
	fmt.Fprintf(&b, "%s, %d CPUs (%s), kernel %s, %s; load average before %s, after %s; %.0f s.\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.Go,
		r.Machine.LoadBefore, r.Machine.LoadAfter, r.Seconds)
	fmt.Fprintf(&b, "%s. %d round(s) of %.1f s runs, candidates alternating; %d Call-IDs, %d-byte INVITEs from %d source ports, %d sending goroutines; medians over rounds.\n\n",
		r.Machine.Description, r.Settings.Rounds, r.Settings.RunSeconds, r.Settings.Calls, r.Settings.PayloadBytes, r.Settings.SourcePorts, r.Settings.Senders)
	b.WriteString("| candidate | max pkt/s | loss at max | balancer CPU s/s (user) | pkt per CPU s | pkt per machine CPU s | vs ceiling | latency at | loss there | p50 µs | p99 µs | p99.9 µs | affinity violations |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Candidates {
		if c.Skipped != "" || len(c.Saturation) == 0 {
			why := c.Skipped
			if why == "" {
				why = strings.Join(c.Errors, "; ")
			}
			fmt.Fprintf(&b, "| %s | not measured: %s |||||||||||\n", c.Name, strings.ReplaceAll(why, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f %% | %.2f (%.2f) | %s | %s | %.2f | %s | %.3f %% | %.0f | %.0f | %.0f | %d |\n",
			c.Name, kpps(c.DeliveredPPS), 100*c.Loss, c.CPUSeconds, c.UserSeconds, kpps(c.PktsPerCPUSecond), kpps(c.PktsPerMachineCPUSecond), c.VsCeiling,
			kpps(c.LatencyRatePPS), 100*c.LatencyLoss, c.P50, c.P99, c.P999, c.Violations)
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
		"max pkt/s: datagrams the real servers' sinks received per second while the generator sent as fast as it could (sendmmsg, 32 per call, from the sending goroutines in the client namespace); loss = 1 − received/sent, counting every drop on the path (lab, balancer, sinks).",
		"balancer CPU: utime+stime from /proc/PID/stat of every process in the balancer namespace (xvs, the naive proxy, Kamailio's processes) over the run; for the kernel ceiling, which has no process, the machine-wide softirq delta of /proc/stat (which also holds the generator's and sinks' softirq work: an over-estimate, so its pkt per CPU s is a lower bound). Softirq work done for a user-space balancer (XDP program, AF_XDP copy, socket receive) is not in its process time; pkt per machine CPU s divides by all busy CPU time of the machine (generator, router, sinks included) and is the column that charges everything.",
		"latency: one-way, client to real server through the balancer, from a send timestamp in an X-Send-Time header (one clock: generator and sinks are goroutines of the harness) to the sink's recvmmsg return (taken once per batch), at the latency fraction of each round's max.",
		"affinity: each sink finds the Call-ID with sipparse; a Call-ID that reached more than one real server in a run is a violation.",
		"lab ceiling: the balancer namespace as a plain IP router for the VIP (ip_forward=1, ECMP route over the real servers with a layer-4 hash, real servers set up for direct routing), no user space, no NAT, no conntrack.",
		"xvs: `xvs run --mode afxdp|raw [--xdp-mode native|generic]`, rules `-A -u VIP:5060 -s mh -p 60 -M 0.0.0.0 --pe sip -o` and 3 real servers with -g or -m. The naive proxy: one goroutine, ReadFromUDPAddrPort on the VIP (a local address for it), sipparse.CallID, FNV-1a, Write on a connected socket per real server.",
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
