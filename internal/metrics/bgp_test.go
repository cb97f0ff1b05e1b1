package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
)

type director struct{ st control.BGPStatus }

func (d *director) DrainDirector(bool) error     { return nil }
func (d *director) BGPStatus() control.BGPStatus { return d.st }

func TestScrapeBGP(t *testing.T) {
	dir := &director{st: control.BGPStatus{Drained: true, Announcements: 3, Withdrawals: 2,
		Peers: []control.BGPPeer{{Addr: netip.MustParseAddr("10.77.1.1"), State: control.BGPEstablished, Since: time.Now(),
			UpdatesSent: 4, UpdatesReceived: 1, Advertised: 1}},
		Routes: []control.BGPRoute{{Prefix: netip.MustParsePrefix("10.77.2.1/32"), Announced: true},
			{Prefix: netip.MustParsePrefix("fd77:2::1/128")}}}}
	s, err := Serve("127.0.0.1:0", newSource(t), Options{Director: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fams := scrape(t, "http://"+s.Addr().String()+"/metrics")
	peer := map[string]string{"peer": "10.77.1.1"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"xvs_bgp_session_state", map[string]string{"peer": "10.77.1.1", "state": "established"}, 1},
		{"xvs_bgp_session_state", map[string]string{"peer": "10.77.1.1", "state": "idle"}, 0},
		{"xvs_bgp_updates_sent_total", peer, 4},
		{"xvs_bgp_updates_received_total", peer, 1},
		{"xvs_bgp_peer_routes", peer, 1},
		{"xvs_bgp_route_announced", map[string]string{"prefix": "10.77.2.1/32"}, 1},
		{"xvs_bgp_route_announced", map[string]string{"prefix": "fd77:2::1/128"}, 0},
		{"xvs_bgp_routes_announced", nil, 1},
		{"xvs_bgp_director_drained", nil, 1},
		{"xvs_bgp_route_changes_total", map[string]string{"change": "withdrawn"}, 2},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Without BGP there are no bgp metrics.
	s2, err := Serve("127.0.0.1:0", newSource(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if fams := scrape(t, "http://"+s2.Addr().String()+"/metrics"); fams["xvs_bgp_routes_announced"] != nil {
		t.Error("bgp metrics without BGP")
	}
}
