package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

type source struct {
	cfg    *ipvs.Config
	status control.Status
}

func (s *source) Snapshot() *ipvs.Snapshot { return s.cfg.Snapshot() }
func (s *source) Status() control.Status   { return s.status }

func newSource(t *testing.T) *source {
	cfg, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(`-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 0
-A -t [2001:db8::1]:80
-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -m
`), "t"); err != nil {
		t.Fatal(err)
	}
	if err := rules.SetSysctl(cfg, "expire_quiescent_template=1"); err != nil {
		t.Fatal(err)
	}
	svc := cfg.Snapshot().Services()[0]
	for range 3 {
		svc.Stats.Worker(1).Conn()
		svc.Stats.Worker(1).In(500)
		svc.Dests[1].Stats.Worker(1).Conn()
		svc.Dests[1].Stats.Worker(1).In(500) // 192.168.1.10 (IPVS prepends)
	}
	svc.Dests[1].Stats.Worker(0).AddPersist(3)
	svc.Dests[1].Stats.Worker(0).AddInactive(2)

	var w0, w1 pipeline.Counters
	w0.Reasons[pipeline.ReasonScheduled] = 3
	w0.Reasons[pipeline.ReasonTemplateHit] = 7
	w0.Reasons[pipeline.ReasonPEStrict] = 1
	w0.Reasons[pipeline.ReasonMalformed] = 2
	w0.Decode[packet.Reason(1)] = 2
	w0.PE[pe.StatusOK] = 10
	w0.PE[pe.StatusNotFound] = 4
	w0.PEFallback = 3
	w0.Frag.Emitted, w0.Frag.Timeout, w0.Frag.Entries = 6, 1, 9
	w0.Frag.Reassembled[pipeline.ReasonScheduled] = 2
	w0.Tunnel = pipeline.TunnelCounters{Encapsulated: 11, Fragmented: 2, Fragments: 3}
	w1.Reasons[pipeline.ReasonNotService] = 5
	return &source{cfg: cfg, status: control.Status{
		Mode: dataplane.Mode{Backend: "afxdp", XDP: dataplane.XDPNative, ZeroCopy: true}, Ifaces: []string{"eth1"},
		Workers: []pipeline.Counters{w0, w1},
		Queues: []dataplane.QueueStats{{RxFrames: 20, TxFrames: 15, RxBytes: 9000, RxRingFull: 6, RxInvalidDescs: 2, TxInvalidDescs: 1},
			{RxFrames: 5, Recycled: 5, RxDropped: 4, FillRingEmpty: 4}},
		Filters:   []dataplane.FilterStats{{Iface: "eth1", Steered: 31, Passed: 8}},
		Templates: []table.TemplateStats{{Live: 3, Capacity: 1024, Inserts: 4, Expired: 1, EvictedProbation: 6, Overflow: 2}, {Capacity: 1024}},
	}}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("no family %s", name)
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	t.Errorf("%s%v: no sample", name, want)
	return -1
}

func TestScrape(t *testing.T) {
	src := newSource(t)
	s, err := Serve("127.0.0.1:0", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fams := scrape(t, "http://"+s.Addr().String()+"/metrics")

	svc := map[string]string{"protocol": "udp", "service": "10.4.3.192:5060"}
	rs := map[string]string{"protocol": "udp", "service": "10.4.3.192:5060", "server": "192.168.1.10:5060"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{"xvs_service_connections_total", svc, 3, dto.MetricType_COUNTER},
		{"xvs_service_in_packets_total", svc, 3, dto.MetricType_COUNTER},
		{"xvs_service_in_bytes_total", svc, 1500, dto.MetricType_COUNTER},
		{"xvs_service_out_packets_total", svc, 0, dto.MetricType_COUNTER},
		{"xvs_service_connections_total", map[string]string{"protocol": "tcp", "service": "[2001:db8::1]:80"}, 0, dto.MetricType_COUNTER},
		{"xvs_server_connections_total", rs, 3, dto.MetricType_COUNTER},
		{"xvs_server_in_bytes_total", rs, 1500, dto.MetricType_COUNTER},
		{"xvs_server_persistent_templates", rs, 3, dto.MetricType_GAUGE},
		{"xvs_server_inactive_connections", rs, 2, dto.MetricType_GAUGE},
		{"xvs_server_active_connections", rs, 0, dto.MetricType_GAUGE},
		{"xvs_server_weight", map[string]string{"server": "192.168.1.11:5060"}, 0, dto.MetricType_GAUGE},
		{"xvs_server_weight", map[string]string{"server": "[2001:db8::10]:80"}, 1, dto.MetricType_GAUGE},
		{"xvs_frames_total", map[string]string{"worker": "0", "reason": "template_hit", "verdict": "forward"}, 7, dto.MetricType_COUNTER},
		{"xvs_frames_total", map[string]string{"worker": "0", "reason": "scheduled", "verdict": "forward"}, 3, dto.MetricType_COUNTER},
		{"xvs_frames_total", map[string]string{"worker": "0", "reason": "pe_strict", "verdict": "drop"}, 1, dto.MetricType_COUNTER},
		{"xvs_frames_total", map[string]string{"worker": "1", "reason": "not_service", "verdict": "pass"}, 5, dto.MetricType_COUNTER},
		{"xvs_decode_drops_total", map[string]string{"worker": "0", "reason": packet.Reason(1).String()}, 2, dto.MetricType_COUNTER},
		{"xvs_pe_total", map[string]string{"worker": "0", "status": "ok"}, 10, dto.MetricType_COUNTER},
		{"xvs_pe_total", map[string]string{"worker": "0", "status": "not_found"}, 4, dto.MetricType_COUNTER},
		{"xvs_pe_fallback_total", map[string]string{"worker": "0"}, 3, dto.MetricType_COUNTER},
		{"xvs_pe_strict_drops_total", map[string]string{"worker": "0"}, 1, dto.MetricType_COUNTER},
		{"xvs_fragment_copies_total", map[string]string{"worker": "0", "outcome": "emitted"}, 6, dto.MetricType_COUNTER},
		{"xvs_fragment_copies_total", map[string]string{"worker": "0", "outcome": "timeout"}, 1, dto.MetricType_COUNTER},
		{"xvs_fragment_entries_total", map[string]string{"worker": "0"}, 9, dto.MetricType_COUNTER},
		{"xvs_fragment_reassembled_total", map[string]string{"worker": "0", "reason": "scheduled"}, 2, dto.MetricType_COUNTER},
		{"xvs_tunnel_packets_total", map[string]string{"worker": "0", "outcome": "fragmented"}, 2, dto.MetricType_COUNTER},
		{"xvs_tunnel_fragments_total", map[string]string{"worker": "0"}, 3, dto.MetricType_COUNTER},
		{"xvs_templates", map[string]string{"worker": "0"}, 3, dto.MetricType_GAUGE},
		{"xvs_templates_capacity", map[string]string{"worker": "1"}, 1024, dto.MetricType_GAUGE},
		{"xvs_templates_created_total", map[string]string{"worker": "0"}, 4, dto.MetricType_COUNTER},
		{"xvs_templates_expired_total", map[string]string{"worker": "0"}, 1, dto.MetricType_COUNTER},
		{"xvs_templates_evicted_total", map[string]string{"worker": "0", "segment": "probation"}, 6, dto.MetricType_COUNTER},
		{"xvs_templates_overflow_total", map[string]string{"worker": "0"}, 2, dto.MetricType_COUNTER},
		{"xvs_queue_rx_frames_total", map[string]string{"queue": "0"}, 20, dto.MetricType_COUNTER},
		{"xvs_queue_recycled_total", map[string]string{"queue": "1"}, 5, dto.MetricType_COUNTER},
		{"xvs_queue_rx_ring_full_total", map[string]string{"queue": "0"}, 6, dto.MetricType_COUNTER},
		{"xvs_queue_rx_invalid_descs_total", map[string]string{"queue": "0"}, 2, dto.MetricType_COUNTER},
		{"xvs_queue_tx_invalid_descs_total", map[string]string{"queue": "0"}, 1, dto.MetricType_COUNTER},
		{"xvs_queue_rx_dropped_total", map[string]string{"queue": "1"}, 4, dto.MetricType_COUNTER},
		{"xvs_queue_fill_ring_empty_total", map[string]string{"queue": "1"}, 4, dto.MetricType_COUNTER},
		{"xvs_filter_frames_total", map[string]string{"iface": "eth1", "verdict": "steered"}, 31, dto.MetricType_COUNTER},
		{"xvs_filter_frames_total", map[string]string{"iface": "eth1", "verdict": "passed"}, 8, dto.MetricType_COUNTER},
		{"xvs_dataplane_info", map[string]string{"mode": "afxdp-native-zerocopy", "iface": "eth1"}, 1, dto.MetricType_GAUGE},
		{"xvs_sysctl", map[string]string{"name": "expire_quiescent_template"}, 1, dto.MetricType_GAUGE},
		{"xvs_sysctl", map[string]string{"name": "conn_reuse_mode"}, 1, dto.MetricType_GAUGE},
		{"xvs_sysctl", map[string]string{"name": "sloppy_tcp"}, 0, dto.MetricType_GAUGE},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
		if f := fams[c.name]; f != nil && f.GetType() != c.typ {
			t.Errorf("%s is %v, want %v", c.name, f.GetType(), c.typ)
		}
	}
	// One frames_total sample per worker and reason.
	if n := len(fams["xvs_frames_total"].GetMetric()); n != 2*int(pipeline.NumReasons) {
		t.Errorf("%d frames_total samples, want %d", n, 2*pipeline.NumReasons)
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	// Without pprof there is no /debug/pprof/.
	resp, err := http.Get("http://" + s.Addr().String() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without pprof: %s", resp.Status)
	}
}

func TestPprof(t *testing.T) {
	s, err := Serve("[::1]:0", newSource(t), Options{Pprof: true})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr().String() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("/debug/pprof/: %s", resp.Status)
	}
}

func TestLoopbackOnly(t *testing.T) {
	src := newSource(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:9469", "[::]:0", "example.com:9469"} {
		if _, err := Serve(addr, src, Options{}); !errors.Is(err, ErrPublicAddr) {
			t.Errorf("%s: %v, want ErrPublicAddr", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:9469", "127.1.2.3:1", "localhost:9469", "[::1]:9469"} {
		if err := checkAddr(addr, false); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	s, err := Serve("0.0.0.0:0", src, Options{AllowPublic: true})
	if err != nil {
		t.Fatalf("allowed public address: %v", err)
	}
	s.Close()
}
