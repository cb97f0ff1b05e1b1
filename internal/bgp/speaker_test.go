package bgp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xvs-lb/xvs/internal/control"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// router is a GoBGP server standing in for a ToR: it listens on addr and
// accepts the director at peer.
type router struct {
	srv  *server.BgpServer
	port int
}

func freePort(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startRouter(t *testing.T, addr string, peer netip.Addr, password string) *router {
	t.Helper()
	r := &router{srv: server.NewBgpServer(server.LoggerOption(quiet, &slog.LevelVar{})), port: freePort(t, addr)}
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "192.0.2.1",
		ListenPort: int32(r.port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	fam := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}}
	}
	if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: peer.String(), PeerAsn: 65001, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
		AfiSafis:  []*api.AfiSafi{fam(api.Family_AFI_IP), fam(api.Family_AFI_IP6)},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		r.srv.Stop()
	})
	return r
}

// learned returns the router's routes: prefix → "nexthop med communities".
func (r *router) learned(t *testing.T) map[netip.Prefix]string { return rib(t, r.srv) }

func rib(t *testing.T, srv *server.BgpServer) map[netip.Prefix]string {
	t.Helper()
	out := map[netip.Prefix]string{}
	for _, f := range []gobgp.Family{gobgp.RF_IPv4_UC, gobgp.RF_IPv6_UC} {
		err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f},
			func(n gobgp.NLRI, paths []*apiutil.Path) {
				pfx := n.(*gobgp.IPAddrPrefix).Prefix
				for _, p := range paths {
					var nh, med, com string
					for _, a := range p.Attrs {
						switch a := a.(type) {
						case *gobgp.PathAttributeNextHop:
							nh = a.Value.String()
						case *gobgp.PathAttributeMpReachNLRI:
							nh = a.Nexthop.String()
						case *gobgp.PathAttributeMultiExitDisc:
							med = strconv.Itoa(int(a.Value))
						case *gobgp.PathAttributeCommunities:
							for _, c := range a.Value {
								com += FormatCommunity(c) + " "
							}
						}
					}
					out[pfx] = nh + " " + med + " " + com
				}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func established(sp *Speaker) bool {
	ps := sp.Peers()
	return len(ps) == 1 && ps[0].State == control.BGPEstablished
}

// TestSpeakerAnnounceWithdraw runs the speaker against a GoBGP router on
// loopback: IPv4 and IPv6 VIPs (the IPv6 one over the IPv4 session with a
// configured IPv6 next hop), MED and communities, withdrawal, and the
// session's end on Close.
func TestSpeakerAnnounceWithdraw(t *testing.T) {
	local, peer := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	r := startRouter(t, peer.String(), local, "")
	cfg := NewConfig()
	for _, kv := range [][2]string{{"asn", "65001"}, {"router-id", "10.0.0.1"}, {"hold-time", "3"},
		{"peer", "127.0.0.2:65000,port=" + strconv.Itoa(r.port) + ",local-address=127.0.0.1"},
		{"next-hop", "fd00::1"}, {"community", "65001:100"}, {"med", "10.77.2.1=7"}} {
		if err := cfg.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := StartSpeaker(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	waitFor(t, "the session", 15*time.Second, func() bool { return established(sp) })
	// The router's own route is not learned.
	nlri, _ := gobgp.NewIPAddrPrefix(netip.MustParsePrefix("192.0.2.0/24"))
	nh, _ := gobgp.NewPathAttributeNextHop(netip.MustParseAddr("127.0.0.2"))
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: gobgp.RF_IPv4_UC, Nlri: nlri,
		Attrs: []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(0), nh}}}}); err != nil {
		t.Fatal(err)
	}

	v4 := netip.MustParsePrefix("10.77.2.1/32")
	v6 := netip.MustParsePrefix("fd77:2::1/128")
	routes := []Route{{Prefix: v4, Attrs: cfg.AttrsFor(v4.Addr())}, {Prefix: v6, Attrs: cfg.AttrsFor(v6.Addr())}}
	if err := sp.Announce(routes); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]string{v4: "127.0.0.1 7 65001:100 ", v6: "fd00::1  65001:100 "}
	waitFor(t, "both routes at the router", 5*time.Second, func() bool {
		got := r.learned(t)
		return len(got) == 3 && got[v4] == want[v4] && got[v6] == want[v6]
	})
	// The router's update reaches the speaker's Adj-RIB-In (before policy)
	// after the speaker's routes reach the router's RIB, or before: wait
	// for it, then check that it did not enter the RIB. (The server's loop
	// processes a received update completely before it answers a listing.)
	waitFor(t, "the router's update at the speaker", 5*time.Second, func() bool {
		in := false
		sp.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: peer.String(),
			Family: gobgp.RF_IPv4_UC, EnableFiltered: true}, func(n gobgp.NLRI, _ []*apiutil.Path) {
			in = in || n.(*gobgp.IPAddrPrefix).Prefix == netip.MustParsePrefix("192.0.2.0/24")
		})
		return in
	})
	if got := rib(t, sp.srv); len(got) != 2 {
		t.Fatalf("the speaker's RIB holds %v: it learned the router's route", got)
	}
	if ps := sp.Peers(); ps[0].UpdatesReceived == 0 {
		t.Fatal("no update counted from the router")
	}
	if err := sp.Announce(routes); err != nil { // idempotent: nothing sent
		t.Fatal(err)
	}
	if err := sp.Announce(routes[1:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the IPv4 withdrawal", 5*time.Second, func() bool {
		got := r.learned(t)
		_, has4 := got[v4]
		return len(got) == 2 && !has4
	})
	ps := sp.Peers()
	if ps[0].UpdatesSent < 3 || ps[0].Advertised != 1 || ps[0].HoldTime != 3*time.Second ||
		ps[0].LocalAddr != local || ps[0].Since.IsZero() {
		t.Fatalf("peer status %+v", ps[0])
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router to drop the session's routes", 5*time.Second, func() bool { return len(r.learned(t)) == 1 })
	if err := sp.Announce(routes); err == nil {
		t.Fatal("announce after Close succeeded")
	}
}

// TestSpeakerPassword: a session with a TCP MD5 password comes up only
// when both sides have the same one.
func TestSpeakerPassword(t *testing.T) {
	for _, tc := range []struct {
		name, ours string
		up         bool
	}{{"same", "s3cret", true}, {"different", "wrong", false}} {
		t.Run(tc.name, func(t *testing.T) {
			local, peer := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.3")
			r := startRouter(t, peer.String(), local, "s3cret")
			cfg := NewConfig()
			cfg.ASN, cfg.RouterID = 65001, netip.MustParseAddr("10.0.0.1")
			cfg.Password = tc.ours
			cfg.Peers = []Peer{{Addr: peer, ASN: 65000, Port: uint16(r.port), LocalAddr: local}}
			sp, err := StartSpeaker(cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			if tc.up {
				waitFor(t, "the session", 15*time.Second, func() bool { return established(sp) })
				return
			}
			time.Sleep(3 * time.Second) // two connection attempts
			if established(sp) {
				t.Fatal("session established with a wrong password")
			}
		})
	}
}

func TestSpeakerRefusesInvalidConfig(t *testing.T) {
	cfg := NewConfig()
	cfg.ASN = 65001
	if _, err := StartSpeaker(cfg, quiet); err == nil {
		t.Fatal("started without router id and peers")
	}
}
