package metrics

import (
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
)

// healthSource adds a health checker's view.
type healthSource struct {
	*source
	h map[health.Key]health.Status
}

func (s *healthSource) Health() map[health.Key]health.Status { return s.h }

func TestHealthMetrics(t *testing.T) {
	src := newSource(t)
	k := ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("10.4.3.192"), Port: 5060}
	h := ipvs.DefaultHealthCheck(ipvs.CheckSIPOptions)
	if err := src.cfg.SetHealthCheck(k, &h); err != nil {
		t.Fatal(err)
	}
	rs10, rs11 := netip.MustParseAddrPort("192.168.1.10:5060"), netip.MustParseAddrPort("192.168.1.11:5060")
	if _, err := src.cfg.SetDestHealth(k, rs11, false); err != nil {
		t.Fatal(err)
	}
	if err := src.cfg.Drain(k, rs10, -1); err != nil {
		t.Fatal(err)
	}
	hs := &healthSource{source: src, h: map[health.Key]health.Status{
		{Service: k, Server: rs10}: {Up: true, Checked: true, Probes: 40, RTT: 1500 * time.Microsecond},
		{Service: k, Server: rs11}: {Checked: true, Probes: 41, TransitionsDown: 2, TransitionsUp: 1},
	}}
	s, err := Serve("127.0.0.1:0", hs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fams := scrape(t, "http://"+s.Addr().String()+"/metrics")
	l := func(server string, extra ...string) map[string]string {
		m := map[string]string{"protocol": "udp", "service": "10.4.3.192:5060", "server": server}
		if len(extra) == 2 {
			m[extra[0]] = extra[1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{"xvs_health_up", l("192.168.1.10:5060"), 1, dto.MetricType_GAUGE},
		{"xvs_health_up", l("192.168.1.11:5060"), 0, dto.MetricType_GAUGE},
		{"xvs_health_transitions_total", l("192.168.1.11:5060", "to", "down"), 2, dto.MetricType_COUNTER},
		{"xvs_health_transitions_total", l("192.168.1.11:5060", "to", "up"), 1, dto.MetricType_COUNTER},
		{"xvs_health_probes_total", l("192.168.1.10:5060"), 40, dto.MetricType_COUNTER},
		{"xvs_health_probe_latency_seconds", l("192.168.1.10:5060"), 0.0015, dto.MetricType_GAUGE},
		{"xvs_server_draining", l("192.168.1.10:5060"), 1, dto.MetricType_GAUGE},
		{"xvs_server_draining", l("192.168.1.11:5060"), 0, dto.MetricType_GAUGE},
		{"xvs_server_weight", l("192.168.1.11:5060"), 0, dto.MetricType_GAUGE},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
		if f := fams[c.name]; f != nil && f.GetType() != c.typ {
			t.Errorf("%s is %v, want %v", c.name, f.GetType(), c.typ)
		}
	}
	// Unchecked services export no health_up.
	for _, m := range fams["xvs_health_up"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "service" && lp.GetValue() != "10.4.3.192:5060" {
				t.Errorf("health_up for unchecked service %s", lp.GetValue())
			}
		}
	}
}
