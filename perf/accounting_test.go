package perf

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// exposition is a trimmed scrape of xvs's metrics.
const exposition = `# HELP xvs_queue_rx_frames_total Frames received on the queue.
# TYPE xvs_queue_rx_frames_total counter
xvs_queue_rx_frames_total{queue="0"} 1000
xvs_queue_rx_frames_total{queue="1"} 500
# TYPE xvs_queue_rx_ring_full_total counter
xvs_queue_rx_ring_full_total{queue="0"} 40
# TYPE xvs_frames_total counter
xvs_frames_total{reason="scheduled",verdict="forward",worker="0"} 900
xvs_frames_total{reason="template_hit",verdict="forward",worker="1"} 500
xvs_frames_total{reason="no_dest",verdict="drop",worker="0"} 60
# TYPE xvs_templates gauge
xvs_templates{worker="0"} 17
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want []string
		n    uint64
	}{
		{"xvs_queue_rx_frames_total", nil, 1500},
		{"xvs_frames_total", []string{"verdict=forward"}, 1400},
		{"xvs_frames_total", []string{"verdict=drop"}, 60},
		{"xvs_frames_total", []string{"verdict=forward", "worker=1"}, 500},
		{"xvs_templates", nil, 17},
		{"xvs_frames", nil, 0},
	} {
		if got := sumMetric(m, c.name, c.want...); got != c.n {
			t.Errorf("%s %v = %d, want %d", c.name, c.want, got, c.n)
		}
	}
	if _, err := parseMetrics(strings.NewReader("xvs_x{ 1\n")); err == nil {
		t.Error("a broken exposition parsed")
	}
}

// TestAccountXVS: datagrams the balancer's veth failed to redirect to a
// full AF_XDP RX ring are counted by the veth (rx_dropped) and by xvs
// (rx_ring_full): the accounting counts them once, names the ring, and
// explains every lost datagram; the xvs hops come from its metrics.
func TestAccountXVS(t *testing.T) {
	p := pathNames{client: "c", router: "rt", sw: "sw", balancer: "lb", clientPort: "c0", balancerPort: "lb",
		reals: []string{"r0"}, realPorts: []string{"r0"}, roles: map[string]string{"lb": "balancer", "r0": "real0"}}
	ns := func(rx, rxDrop, tx uint64, snmp map[string]uint64) lab.NetCounters {
		return lab.NetCounters{Links: map[string]lab.LinkCounters{lab.HostIface: {RxPackets: rx, RxDropped: rxDrop, TxPackets: tx}}, SNMP: snmp}
	}
	zero := labCounters{ns: map[string]lab.NetCounters{}, softnet: []lab.Softnet{{}, {}}, xvs: map[string]float64{}, psi: 10}
	after := labCounters{
		ns: map[string]lab.NetCounters{
			"lb": ns(1000, 40, 950, map[string]uint64{}),
			"r0": ns(950, 0, 0, map[string]uint64{"Udp.InDatagrams": 950, "Udp.RcvbufErrors": 10, "Udp.InErrors": 10}),
		},
		softnet: []lab.Softnet{{Processed: 5}, {TimeSqueeze: 2}},
		xvs: map[string]float64{`xvs_filter_frames_total{iface=eth0,verdict=steered}`: 1000, `xvs_filter_frames_total{iface=eth0,verdict=passed}`: 3,
			`xvs_queue_rx_frames_total{queue=0}`: 960, `xvs_queue_rx_ring_full_total{queue=0}`: 40,
			`xvs_queue_tx_frames_total{queue=0}`: 950, `xvs_frames_total{reason=x,verdict=forward,worker=0}`: 950,
			`xvs_frames_total{reason=y,verdict=drop,worker=0}`: 10},
		psi: 10.5,
	}
	a := account(p, zero, after, 1000, 0, 940, 1.5)
	if a.Lost != 60 || a.Counted != 60 || a.Unexplained != 0 || a.Overlap != 40 {
		t.Errorf("lost %d, counted %d, overlap %d, unexplained %d; want 60, 60, 40, 0: %s", a.Lost, a.Counted, a.Overlap, a.Unexplained, a)
	}
	if a.Where != "xvs: AF_XDP receive rings (rx_ring_full + fill ring empty)" {
		t.Errorf("where %q", a.Where)
	}
	hops := map[string]uint64{}
	for _, h := range a.Hops {
		hops[h.Where] = h.N
	}
	if hops["xvs: XDP filter steered"] != 1000 || hops["xvs: queue rx_frames"] != 960 || hops["xvs: forwarded"] != 950 || hops["real servers: UDP datagrams in"] != 950 || hops["sinks: received"] != 940 {
		t.Errorf("hops %v", a.Hops)
	}
	drops := map[string]uint64{}
	for _, d := range a.Drops {
		drops[d.Where] = d.N
	}
	if drops["real0: Udp.RcvbufErrors"] != 10 || drops["xvs: verdict drop"] != 10 || drops["real0: Udp.InErrors (other)"] != 0 {
		t.Errorf("drops %v", a.Drops)
	}
	if a.MachineCPUWait != 0.5 || len(a.Events) != 1 || a.Events[0].N != 2 {
		t.Errorf("cpu wait %.2f, events %v", a.MachineCPUWait, a.Events)
	}
	// Without xvs (a proxy), the balancer's UDP MIB gives its hops.
	after.xvs, zero.xvs = nil, nil
	after.ns["lb"].SNMP["Udp.InDatagrams"] = 7
	if a := account(p, zero, after, 1000, 0, 940, 1); a.Hops[8].Where != "balancer: UDP datagrams in (a proxy's socket)" || a.Hops[8].N != 7 {
		t.Errorf("proxy hops %v", a.Hops)
	}
}

// TestRootAccounting reads the lab's real counters around datagrams from
// the client to a real server whose socket is never read and has a small
// receive buffer: the accounting finds every lost datagram there.
func TestRootAccounting(t *testing.T) {
	testenv.NeedLab(t)
	l, err := lab.New(lab.Spec{Prefix: "xvsacct", RealServers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.UseDirectRouting(); err != nil {
		t.Fatal(err)
	}
	h := &harness{lab: l}
	r := l.Reals[0]
	srv, err := lab.ListenUDP(r.NS, r.Addr4.String()+":5060")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rc, _ := srv.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	cl, err := lab.ListenUDP(l.Clients[0].NS, ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	before, err := h.readCounters(false)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	buf := make([]byte, 800)
	for range n {
		if _, err := cl.WriteTo(buf, &net.UDPAddr{IP: r.Addr4.AsSlice(), Port: 5060}); err != nil {
			t.Fatal(err)
		}
	}
	srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var got uint64
	for {
		if _, _, err := srv.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	after, err := h.readCounters(false)
	if err != nil {
		t.Fatal(err)
	}
	a := account(newPathNames(l), before, after, n, 0, got, 1)
	t.Log(a)
	if got == 0 || a.Lost != n-got || a.Where != "real0: Udp.RcvbufErrors" || a.Unexplained != 0 {
		t.Errorf("received %d of %d: lost %d, where %q, unexplained %d", got, n, a.Lost, a.Where, a.Unexplained)
	}
	hops := map[string]uint64{}
	for _, c := range a.Hops {
		hops[c.Where] = c.N
	}
	for _, k := range []string{"client: eth0 tx", "router: IP forwarded", "switch: real-server ports tx", "real servers: eth0 rx"} {
		if hops[k] < n {
			t.Errorf("hop %q counted %d, want ≥ %d", k, hops[k], n)
		}
	}
	if hops["real servers: UDP datagrams in"] != got {
		t.Errorf("real servers' UDP in %d, sockets queued %d", hops["real servers: UDP datagrams in"], got)
	}
}
