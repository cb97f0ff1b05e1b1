package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xvs-lb/xvs/internal/control"
)

const (
	// connectRetry is how often a peer that is down is dialled again (GoBGP
	// enforces at least 2 s). BGP's customary 120 s would keep a director
	// out of the router's ECMP group for two minutes after the router
	// restarts; one SYN per peer every 5 s costs nothing.
	connectRetry = 5
	// idleHoldAfterReset is how long a peer waits after its session dropped
	// before dialling again (GoBGP's default is 30 s). Damping a flapping
	// director is the router's business.
	idleHoldAfterReset = 1
	// opTimeout bounds one call into the BGP server.
	opTimeout = 5 * time.Second
)

// Route is one announced prefix (a VIP's /32 or /128) with its attributes.
type Route struct {
	Prefix netip.Prefix
	Attrs  Attrs
}

// Speaker is the embedded BGP speaker: GoBGP run as a library, dialling
// its peers, originating the routes it is given and learning none.
type Speaker struct {
	cfg Config
	srv *server.BgpServer
	log *slog.Logger

	mu     sync.Mutex
	routes map[netip.Prefix]Route // originated now
	since  map[netip.Addr]time.Time
	state  map[netip.Addr]control.BGPState
	stop   context.CancelFunc
	closed bool
}

// ErrClosed is returned by a closed Speaker.
var ErrClosed = errors.New("bgp speaker closed")

// StartSpeaker starts the speaker for a validated cfg. GoBGP's own log
// messages go to log at warning level and above (debug when log is at
// debug level).
func StartSpeaker(cfg Config, log *slog.Logger) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		lvl.Set(slog.LevelDebug)
	}
	s := &Speaker{cfg: cfg, log: log, routes: map[netip.Prefix]Route{},
		since: map[netip.Addr]time.Time{}, state: map[netip.Addr]control.BGPState{}}
	s.srv = server.NewBgpServer(server.LoggerOption(log.With("component", "gobgp"), lvl))
	go s.srv.Serve()
	if err := s.start(); err != nil {
		if s.stop != nil {
			s.stop()
		}
		s.srv.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Speaker) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	g := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: -1}
	if s.cfg.Listen.IsValid() {
		g.ListenPort = int32(s.cfg.Listen.Port())
		g.ListenAddresses = []string{s.cfg.Listen.Addr().String()}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		return fmt.Errorf("bgp: start: %w", err)
	}
	if err := s.learnNothing(ctx); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	s.stop = wcancel
	if err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.peerEvent}, server.WatchPeer()); err != nil {
		return fmt.Errorf("bgp: watch: %w", err)
	}
	for _, p := range s.cfg.Peers {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConf(p)}); err != nil {
			return fmt.Errorf("bgp: peer %v: %w", p, err)
		}
		s.mu.Lock()
		s.state[p.Addr], s.since[p.Addr] = control.BGPIdle, time.Now()
		s.mu.Unlock()
	}
	return nil
}

// learnNothing installs an import policy that rejects every route a peer
// sends: the director only originates its VIPs, and a router that sends a
// full table must not cost memory. (GoBGP's import policy also filters
// locally originated paths, so the default action stays accept and the
// reject matches any neighbour.)
func (s *Speaker) learnNothing(ctx context.Context) error {
	const set, policy = "xvs-any-neighbor", "xvs-learn-nothing"
	if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: set, List: []string{"0.0.0.0/0", "::/0"}}}); err != nil {
		return err
	}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policy, Statements: []*api.Statement{{
		Name:       policy + "-reject",
		Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set}},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}}}}); err != nil {
		return err
	}
	return s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: policy}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}})
}

// peerConf is GoBGP's configuration of peer p. A peer carries its own
// address family, and the other one only when a next hop of that family is
// configured: a session's local address cannot be the next hop of the
// other family's VIPs.
func (s *Speaker) peerConf(p Peer) *api.Peer {
	hold := uint64(s.cfg.holdTime(p) / time.Second)
	pw := p.Password
	if pw == "" {
		pw = s.cfg.Password
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Addr.String(), PeerAsn: p.ASN, AuthPassword: pw},
		Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: max(hold/3, 1),
			ConnectRetry: connectRetry, IdleHoldTimeAfterReset: idleHoldAfterReset}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.LocalAddr.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddr.String()
	}
	fam := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Enabled: true,
			Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}}
	}
	if p.Addr.Is4() || s.cfg.NextHop4.IsValid() {
		ap.AfiSafis = append(ap.AfiSafis, fam(api.Family_AFI_IP))
	}
	if p.Addr.Is6() || s.cfg.NextHop6.IsValid() {
		ap.AfiSafis = append(ap.AfiSafis, fam(api.Family_AFI_IP6))
	}
	return ap
}

// peerEvent logs and records a peer's session state change.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.Conf.NeighborAddress.Unmap()
	st := fsmState(ev.Peer.State.SessionState)
	s.mu.Lock()
	old := s.state[addr]
	changed := old != st
	if changed {
		s.state[addr], s.since[addr] = st, time.Now()
	}
	s.mu.Unlock()
	if !changed {
		return
	}
	args := []any{"peer", addr.String(), "asn", ev.Peer.Conf.PeerASN, "state", st.String(), "was", old.String()}
	if st == control.BGPEstablished {
		s.log.Info("bgp session established", args...)
		return
	}
	if old == control.BGPEstablished {
		args = append(args, "reason", ev.Peer.State.DisconnectReason.String())
		if m := ev.Peer.State.DisconnectMessage; m != "" {
			args = append(args, "message", m)
		}
		s.log.Warn("bgp session down", args...)
		return
	}
	s.log.Debug("bgp session state", args...)
}

// fsmState is GoBGP's FSM state in xvs's vocabulary.
func fsmState(st bgp.FSMState) control.BGPState {
	switch st {
	case bgp.BGP_FSM_CONNECT:
		return control.BGPConnect
	case bgp.BGP_FSM_ACTIVE:
		return control.BGPActive
	case bgp.BGP_FSM_OPENSENT:
		return control.BGPOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return control.BGPOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return control.BGPEstablished
	}
	return control.BGPIdle
}

// Announce makes the originated routes exactly routes: new prefixes (or
// changed attributes) are announced, missing ones withdrawn. GoBGP sends
// the updates to every established peer, and the whole set to a peer when
// its session comes up.
func (s *Speaker) Announce(routes []Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	want := make(map[netip.Prefix]Route, len(routes))
	for _, r := range routes {
		want[r.Prefix] = r
	}
	var add, del []*apiutil.Path
	for p, r := range s.routes {
		if _, ok := want[p]; !ok {
			path, err := s.path(r, true)
			if err != nil {
				return err
			}
			del = append(del, path)
		}
	}
	for p, r := range want {
		if old, ok := s.routes[p]; !ok || !sameAttrs(old.Attrs, r.Attrs) {
			path, err := s.path(r, false)
			if err != nil {
				return err
			}
			add = append(add, path) // a changed route replaces the old one (implicit withdraw)
		}
	}
	if len(del) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			return fmt.Errorf("bgp: withdraw: %w", err)
		}
		for _, p := range del {
			delete(s.routes, p.Nlri.(*bgp.IPAddrPrefix).Prefix)
		}
	}
	if len(add) > 0 {
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add}); err != nil {
			return fmt.Errorf("bgp: announce: %w", err)
		}
		for _, p := range add {
			pfx := p.Nlri.(*bgp.IPAddrPrefix).Prefix
			s.routes[pfx] = want[pfx]
		}
	}
	return nil
}

func sameAttrs(a, b Attrs) bool {
	return a.MED == b.MED && a.HasMED == b.HasMED && slices.Equal(a.Communities, b.Communities)
}

// path builds GoBGP's path for r: origin IGP, the configured next hop of
// the prefix's family (unspecified: GoBGP puts the session's local
// address), MED and communities.
func (s *Speaker) path(r Route, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("bgp: %v: %w", r.Prefix, err)
	}
	p := &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Withdrawal: withdraw}
	nh := s.cfg.NextHop4
	if !nh.IsValid() {
		nh = netip.IPv4Unspecified()
	}
	if r.Prefix.Addr().Is6() {
		p.Family = bgp.RF_IPv6_UC
		if nh = s.cfg.NextHop6; !nh.IsValid() {
			nh = netip.IPv6Unspecified()
		}
	}
	if withdraw {
		return p, nil
	}
	p.Attrs = []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Family == bgp.RF_IPv4_UC && nh.Is4() {
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		p.Attrs = append(p.Attrs, a)
	} else {
		a, err := bgp.NewPathAttributeMpReachNLRI(p.Family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		p.Attrs = append(p.Attrs, a)
	}
	if r.Attrs.HasMED {
		p.Attrs = append(p.Attrs, bgp.NewPathAttributeMultiExitDisc(r.Attrs.MED))
	}
	if len(r.Attrs.Communities) > 0 {
		p.Attrs = append(p.Attrs, bgp.NewPathAttributeCommunities(slices.Clone(r.Attrs.Communities)))
	}
	return p, nil
}

// Peers returns every peer's session state and message counters.
func (s *Speaker) Peers() []control.BGPPeer {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var out []control.BGPPeer
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil {
			return
		}
		addr, err := netip.ParseAddr(p.Conf.NeighborAddress)
		if err != nil {
			return
		}
		addr = addr.Unmap()
		bp := control.BGPPeer{Addr: addr, ASN: p.Conf.PeerAsn, State: sessionState(p.State.SessionState)}
		if m := p.State.Messages; m != nil && m.Sent != nil && m.Received != nil {
			bp.UpdatesSent, bp.UpdatesReceived = m.Sent.Update, m.Received.Update
		}
		if p.Transport != nil {
			bp.LocalAddr, _ = netip.ParseAddr(p.Transport.LocalAddress)
		}
		if p.Timers != nil && p.Timers.State != nil {
			bp.HoldTime = time.Duration(p.Timers.State.NegotiatedHoldTime) * time.Second
		}
		for _, a := range p.AfiSafis {
			if a.State != nil {
				bp.Advertised += a.State.Advertised
			}
		}
		s.mu.Lock()
		bp.Since = s.since[addr]
		s.mu.Unlock()
		out = append(out, bp)
	})
	if err != nil {
		s.log.Warn("bgp: listing peers", "err", err)
	}
	slices.SortFunc(out, func(a, b control.BGPPeer) int { return a.Addr.Compare(b.Addr) })
	return out
}

// sessionState is GoBGP's API session state in xvs's vocabulary.
func sessionState(st api.PeerState_SessionState) control.BGPState {
	switch st {
	case api.PeerState_SESSION_STATE_CONNECT:
		return control.BGPConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return control.BGPActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return control.BGPOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return control.BGPOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return control.BGPEstablished
	}
	return control.BGPIdle
}

// Close withdraws nothing by itself: it sends every established peer a
// NOTIFICATION (Cease), which makes the router drop the session's routes,
// and stops the server. Withdraw first (Announce(nil)) for a graceful stop.
func (s *Speaker) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := s.srv.StopBgp(ctx, &api.StopBgpRequest{})
	s.stop()
	s.srv.Stop()
	return err
}
