package perf

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xvs-lb/xvs/internal/lab"
)

// Accounting is where a sink run's datagrams went: how many the generator
// sent, how many each point of the path counted (Hops, in path order), every
// drop counter of the lab that moved during the run (Drops: the veths' and
// bridges' rx/tx drops and errors in every namespace, the IP and UDP MIB
// drop counters — a sink's full socket buffer is Udp.RcvbufErrors —, the
// CPUs' backlog drops, and xvs's own ring and verdict counters), and how
// many of the lost datagrams no counter explains.
type Accounting struct {
	Sent uint64 `json:"sent"`
	// SendErrors counts the generator's failed sendmmsg calls (it pauses
	// and goes on; their datagrams are not in Sent).
	SendErrors uint64  `json:"send_errors"`
	Received   uint64  `json:"received"`
	Lost       uint64  `json:"lost"`
	Hops       []Count `json:"hops"`
	Drops      []Count `json:"drops"`
	// Events are counters that mark a condition, not a datagram each
	// (AF_XDP's fill_ring_empty, tx_ring_empty; the CPUs' time_squeeze).
	Events []Count `json:"events,omitempty"`
	// Counted is the sum of Drops less Overlap; Unexplained = Lost −
	// Counted (negative when the counters counted more: other traffic of
	// the lab's hosts).
	Counted uint64 `json:"drops_counted"`
	// Overlap is what two counters of Drops counted for the same
	// datagrams: a veth counts the frames its XDP program failed to
	// redirect (xvs's AF_XDP rx drops) in its rx_dropped, and a veth whose
	// peer's CPU backlog was full in its tx_dropped as well as the CPU's
	// softnet_stat (the smaller of each pair).
	Overlap     uint64 `json:"overlap"`
	Unexplained int64  `json:"unexplained"`
	// Where names the largest drop counter, "" without loss.
	Where string `json:"where,omitempty"`
	// Load is the 1-minute load average at the end of the run.
	Load float64 `json:"loadavg"`
	// CPU waits over the run (from the generator's start until the sinks
	// went quiet, Seconds): MachineCPUWait is the machine's CPU pressure
	// (/proc/pressure/cpu "some": the time in which some runnable task
	// waited for a CPU), BalancerCPUWait the same for the balancer's cgroup
	// alone; WorkerRun and WorkerWait are the run time and run-queue delay
	// of the balancer's busiest thread (most run time: an xvs worker), in
	// WorkerSlices time slices. A worker that waits longer at a stretch
	// than its RX ring holds datagrams at the run's rate loses them there.
	Seconds         float64 `json:"seconds"`
	MachineCPUWait  float64 `json:"machine_cpu_wait_seconds"`
	BalancerCPUWait float64 `json:"balancer_cpu_wait_seconds,omitempty"`
	WorkerRun       float64 `json:"worker_run_seconds,omitempty"`
	WorkerWait      float64 `json:"worker_wait_seconds,omitempty"`
	WorkerSlices    uint64  `json:"worker_slices,omitempty"`
	// Err says why the accounting is incomplete (a counter could not be
	// read).
	Err string `json:"error,omitempty"`
}

// Count is one counter of the accounting.
type Count struct {
	Where string `json:"where"`
	N     uint64 `json:"n"`
}

// labCounters are the counters the accounting compares before and after a
// run.
type labCounters struct {
	ns      map[string]lab.NetCounters
	softnet []lab.Softnet
	xvs     map[string]float64 // metric series ("name{labels}") → value; nil without xvs
	psi     float64            // the machine's CPU pressure, "some" total (s)
	waits   *cpuWait           // the balancer cgroup's; nil without one
}

// xvsMetricsAddr is where a benchmark's xvs serves its metrics, inside the
// balancer namespace (its own loopback: labs of other processes have
// their own).
const xvsMetricsAddr = "127.0.0.1:9469"

// metricsTimeout bounds one scrape of xvs's metrics.
const metricsTimeout = 2 * time.Second

// readCounters reads every namespace's counters, the CPUs' backlog
// counters and, when withXVS, xvs's metrics.
func (h *harness) readCounters(withXVS bool) (labCounters, error) {
	var c labCounters
	var err error
	if c.ns, err = h.lab.Counters(); err != nil {
		return c, err
	}
	if c.softnet, err = lab.ReadSoftnet(); err != nil {
		return c, err
	}
	c.psi, _ = readPressure("/proc/pressure/cpu") // 0 without PSI
	if h.clocks.cg != nil {
		if w, err := h.clocks.cg.waits(); err == nil {
			c.waits = &w
		}
	}
	if withXVS {
		if c.xvs, err = scrapeXVS(h.lab.Balancer.NS); err != nil {
			return c, fmt.Errorf("perf: xvs metrics: %w", err)
		}
	}
	return c, nil
}

// scrapeXVS reads xvs's metrics from inside namespace ns.
func scrapeXVS(ns string) (map[string]float64, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := lab.Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: metricsTimeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: metricsTimeout}
	resp, err := cl.Get("http://" + xvsMetricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics flattens a Prometheus text exposition into series names
// ("xvs_frames_total{reason=…,verdict=…,worker=…}", labels sorted) and
// values (counters and gauges).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			key := name
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out, nil
}

// sumMetric sums the series of metric name whose labels include every one
// of want ("verdict=drop").
func sumMetric(m map[string]float64, name string, want ...string) uint64 {
	var s float64
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ls := strings.Split(strings.TrimSuffix(labels, "}"), ",")
		ok := true
		for _, w := range want {
			ok = ok && containsString(ls, w)
		}
		if ok {
			s += v
		}
	}
	return uint64(s)
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// pathNames are the namespaces and interfaces a datagram crosses from the
// generator to a sink, for the accounting's hops.
type pathNames struct {
	client, router, sw, balancer string   // namespaces
	clientPort, balancerPort     string   // switch ports
	reals                        []string // namespaces
	realPorts                    []string // switch ports
	roles                        map[string]string
}

func newPathNames(l *lab.Lab) pathNames {
	p := pathNames{client: l.Clients[0].NS, router: l.Router.NS, sw: l.Switch, balancer: l.Balancer.NS,
		clientPort: l.Clients[0].Port, balancerPort: l.Balancer.Port, roles: map[string]string{}}
	for _, r := range l.Reals {
		p.reals = append(p.reals, r.NS)
		p.realPorts = append(p.realPorts, r.Port)
	}
	for _, ns := range l.Namespaces() {
		p.roles[ns] = strings.TrimPrefix(ns, l.Prefix+"-")
	}
	return p
}

// account compares the counters before and after a sink run. xvs's
// counters are read when both snapshots have them.
func account(p pathNames, before, after labCounters, sent, sendErrs, received uint64, seconds float64) Accounting {
	a := Accounting{Sent: sent, SendErrors: sendErrs, Received: received, Seconds: seconds}
	a.MachineCPUWait = max(0, after.psi-before.psi)
	if before.waits != nil && after.waits != nil {
		a.BalancerCPUWait = max(0, after.waits.some-before.waits.some)
		for tid, t := range after.waits.threads {
			b := before.waits.threads[tid]
			if run := t.run - b.run; run > a.WorkerRun {
				a.WorkerRun, a.WorkerWait, a.WorkerSlices = run, t.wait-b.wait, t.slices-b.slices
			}
		}
	}
	if received < sent {
		a.Lost = sent - received
	}
	d := map[string]lab.NetCounters{}
	for ns, c := range after.ns {
		d[ns] = c.Sub(before.ns[ns])
	}
	link := func(ns, iface string) lab.LinkCounters { return d[ns].Links[iface] }
	snmp := func(ns, k string) uint64 { return d[ns].SNMP[k] }
	hop := func(where string, n uint64) { a.Hops = append(a.Hops, Count{where, n}) }
	role := func(ns string) string {
		if r, ok := p.roles[ns]; ok {
			return r
		}
		return ns
	}

	hop("generator: sent (sendmmsg accepted)", sent)
	hop("client: eth0 tx", link(p.client, lab.HostIface).TxPackets)
	hop("switch: client port rx", link(p.sw, p.clientPort).RxPackets)
	hop("router: eth1 rx", link(p.router, "eth1").RxPackets)
	hop("router: IP forwarded", snmp(p.router, "Ip.ForwDatagrams"))
	hop("router: eth0 tx", link(p.router, lab.HostIface).TxPackets)
	hop("switch: balancer port tx", link(p.sw, p.balancerPort).TxPackets)
	hop("balancer: eth0 rx", link(p.balancer, lab.HostIface).RxPackets)
	var xd map[string]float64
	var places []Count // drop places made of several counters, for Where
	skip := ""         // a counter one of them includes
	if before.xvs != nil && after.xvs != nil {
		xd = map[string]float64{}
		for k, v := range after.xvs {
			xd[k] = v - before.xvs[k]
		}
		hop("xvs: XDP filter steered", sumMetric(xd, "xvs_filter_frames_total", "verdict=steered"))
		hop("xvs: queue rx_frames", sumMetric(xd, "xvs_queue_rx_frames_total"))
		hop("xvs: forwarded", sumMetric(xd, "xvs_frames_total", "verdict=forward"))
		hop("xvs: queue tx_frames", sumMetric(xd, "xvs_queue_tx_frames_total"))
	} else {
		hop("balancer: UDP datagrams in (a proxy's socket)", snmp(p.balancer, "Udp.InDatagrams"))
		hop("balancer: UDP datagrams out", snmp(p.balancer, "Udp.OutDatagrams"))
	}
	hop("balancer: eth0 tx", link(p.balancer, lab.HostIface).TxPackets)
	hop("switch: balancer port rx", link(p.sw, p.balancerPort).RxPackets)
	var portsTx, realsRx, realsUDP uint64
	for i, ns := range p.reals {
		portsTx += link(p.sw, p.realPorts[i]).TxPackets
		realsRx += link(ns, lab.HostIface).RxPackets
		realsUDP += snmp(ns, "Udp.InDatagrams")
	}
	hop("switch: real-server ports tx", portsTx)
	hop("real servers: eth0 rx", realsRx)
	hop("real servers: UDP datagrams in", realsUDP)
	hop("sinks: received", received)

	// Every drop counter that moved.
	nss := make([]string, 0, len(d))
	for ns := range d {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	drop := func(where string, n uint64) {
		if n > 0 {
			a.Drops = append(a.Drops, Count{where, n})
			a.Counted += n
		}
	}
	for _, ns := range nss {
		c := d[ns]
		ifs := make([]string, 0, len(c.Links))
		for i := range c.Links {
			ifs = append(ifs, i)
		}
		sort.Strings(ifs)
		for _, i := range ifs {
			l := c.Links[i]
			drop(role(ns)+": "+i+" rx_dropped", l.RxDropped)
			drop(role(ns)+": "+i+" rx_errors", l.RxErrors)
			drop(role(ns)+": "+i+" tx_dropped", l.TxDropped)
			drop(role(ns)+": "+i+" tx_errors", l.TxErrors)
		}
		for _, k := range snmpDrops {
			drop(role(ns)+": "+k, c.SNMP[k])
		}
		// Udp.InErrors counts the datagrams of RcvbufErrors, InCsumErrors
		// and MemErrors too: only the rest is a drop of its own.
		drop(role(ns)+": Udp.InErrors (other)", sub0(c.SNMP["Udp.InErrors"], c.SNMP["Udp.RcvbufErrors"]+c.SNMP["Udp.InCsumErrors"]+c.SNMP["Udp.MemErrors"]))
	}
	var vethTx uint64
	for _, c := range d {
		for _, l := range c.Links {
			vethTx += l.TxDropped
		}
	}
	var backlog uint64
	sn := lab.SubSoftnet(after.softnet, before.softnet)
	for cpu, s := range sn {
		backlog += s.Dropped
		drop(fmt.Sprintf("cpu%d: backlog full (softnet_stat dropped)", cpu), s.Dropped)
		if s.TimeSqueeze > 0 {
			a.Events = append(a.Events, Count{fmt.Sprintf("cpu%d: softnet time_squeeze", cpu), s.TimeSqueeze})
		}
	}
	if xd != nil {
		rxd, rxf := sumMetric(xd, "xvs_queue_rx_dropped_total"), sumMetric(xd, "xvs_queue_rx_ring_full_total")
		rxi := sumMetric(xd, "xvs_queue_rx_invalid_descs_total")
		drop("xvs: queue rx_dropped (AF_XDP fill ring empty)", rxd)
		drop("xvs: queue rx_ring_full (AF_XDP RX ring full)", rxf)
		drop("xvs: queue rx_invalid_descs", rxi)
		vethRx := link(p.balancer, lab.HostIface).RxDropped
		a.Overlap += min(vethRx, rxd+rxf+rxi)
		if xrx := rxd + rxf + rxi; xrx > 0 {
			// One place: the queue's AF_XDP socket, whose worker did not
			// read its RX ring or refill its fill ring in time.
			places = append(places, Count{"xvs: AF_XDP receive rings (rx_ring_full + fill ring empty)", xrx})
			if vethRx > xrx {
				places = append(places, Count{"balancer: eth0 rx_dropped (beyond xvs's)", vethRx - xrx})
			}
			skip = role(p.balancer) + ": " + lab.HostIface + " rx_dropped"
		}
		drop("xvs: queue tx_dropped (TX ring full, no frame)", sumMetric(xd, "xvs_queue_tx_dropped_total"))
		drop("xvs: queue tx_invalid_descs", sumMetric(xd, "xvs_queue_tx_invalid_descs_total"))
		drop("xvs: verdict drop", sumMetric(xd, "xvs_frames_total", "verdict=drop"))
		drop("xvs: emitted unsent", sumMetric(xd, "xvs_emitted_unsent_total"))
		for _, e := range []string{"fill_ring_empty", "tx_ring_empty"} {
			if n := sumMetric(xd, "xvs_queue_"+e+"_total"); n > 0 {
				a.Events = append(a.Events, Count{"xvs: queue " + e, n})
			}
		}
	}
	a.Overlap += min(vethTx, backlog)
	a.Counted -= min(a.Overlap, a.Counted)
	a.Unexplained = int64(a.Lost) - int64(a.Counted)
	if a.Lost > 0 {
		best := Count{}
		for _, c := range a.Drops {
			if c.Where == skip || strings.HasPrefix(c.Where, "xvs: queue rx_") {
				continue // in places
			}
			if c.N > best.N {
				best = c
			}
		}
		for _, c := range places {
			if c.N > best.N {
				best = c
			}
		}
		a.Where = best.Where
		if best.N == 0 {
			a.Where = "no drop counter moved"
		}
	}
	return a
}

// snmpDrops are the MIB counters that count a datagram dropped (in every
// namespace: the generator's socket buffer, the router, a proxy's or a
// sink's socket buffer).
var snmpDrops = []string{
	"Ip.InHdrErrors", "Ip.InAddrErrors", "Ip.InDiscards", "Ip.OutDiscards", "Ip.OutNoRoutes",
	"Udp.NoPorts", "Udp.RcvbufErrors", "Udp.SndbufErrors", "Udp.InCsumErrors", "Udp.MemErrors",
}

// waits renders the run's CPU waits.
func (a Accounting) waits() string {
	s := fmt.Sprintf("over %.2f s: machine CPU pressure %.0f ms", a.Seconds, 1e3*a.MachineCPUWait)
	if a.WorkerRun > 0 {
		s += fmt.Sprintf(", balancer %.0f ms; its busiest thread ran %.0f ms and waited %.0f ms for a CPU in %d slices",
			1e3*a.BalancerCPUWait, 1e3*a.WorkerRun, 1e3*a.WorkerWait, a.WorkerSlices)
	}
	return s + fmt.Sprintf(" (load %.1f)", a.Load)
}

// lossTable renders the accounting of every sink run that lost datagrams.
func lossTable(cands []CandidateResult) string {
	var b strings.Builder
	for _, c := range cands {
		for _, r := range append(append([]Run1(nil), c.Latency...), c.Sweep...) {
			a := r.Accounting
			if a == nil || a.Lost == 0 && a.Err == "" {
				continue
			}
			if b.Len() == 0 {
				b.WriteString("Where the sink runs lost datagrams (every drop counter of the lab that moved; see accounting in the JSON for the hops):\n\n")
				b.WriteString("| candidate | round | pkt/s asked | sent | lost | drop counters | unexplained | CPU waits |\n|---|---|---|---|---|---|---|---|\n")
			}
			var ds []string
			for _, d := range a.Drops {
				ds = append(ds, fmt.Sprintf("%s %d", d.Where, d.N))
			}
			if a.Overlap > 0 {
				ds = append(ds, fmt.Sprintf("(%d of these counted at two points)", a.Overlap))
			}
			if a.Err != "" {
				ds = append(ds, "incomplete: "+a.Err)
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %d (%.2f %%) | %s | %d | %s |\n", c.Name, r.Round+1, r.RatePPS, a.Sent, a.Lost,
				100*float64(a.Lost)/float64(max(a.Sent, 1)), strings.ReplaceAll(strings.Join(ds, "; "), "|", "/"), a.Unexplained, a.waits())
		}
	}
	return b.String()
}

func sub0(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// String renders the accounting in one line: the hops where the count
// falls, the drop counters, what is unexplained.
func (a Accounting) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d, received %d, lost %d", a.Sent, a.Received, a.Lost)
	fmt.Fprintf(&b, "; %s", a.waits())
	if a.SendErrors > 0 {
		fmt.Fprintf(&b, " (%d failed sendmmsg calls)", a.SendErrors)
	}
	if len(a.Drops) > 0 {
		var ds []string
		for _, c := range a.Drops {
			ds = append(ds, fmt.Sprintf("%s %d", c.Where, c.N))
		}
		fmt.Fprintf(&b, "; drops: %s", strings.Join(ds, ", "))
	}
	if len(a.Events) > 0 {
		var es []string
		for _, c := range a.Events {
			es = append(es, fmt.Sprintf("%s %d", c.Where, c.N))
		}
		fmt.Fprintf(&b, "; events: %s", strings.Join(es, ", "))
	}
	if a.Overlap > 0 {
		fmt.Fprintf(&b, " (%d counted twice)", a.Overlap)
	}
	fmt.Fprintf(&b, "; unexplained %d", a.Unexplained)
	if a.Err != "" {
		fmt.Fprintf(&b, " (incomplete: %s)", a.Err)
	}
	return b.String()
}
