package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
)

const (
	// pollInterval is how often the announcer compares the running
	// configuration with what it announces. A health verdict, a drain or a
	// deletion publishes a new snapshot; 100 ms adds little to the time
	// the router takes to act on the update, and a snapshot walk per VIP
	// costs microseconds.
	pollInterval = 100 * time.Millisecond
	// withdrawWait bounds how long Stop waits for the withdrawals to leave
	// for the established peers before the drain period starts.
	withdrawWait = 2 * time.Second
)

// Reasons a VIP is not announced (control.BGPRoute.Reason).
const (
	ReasonNoServer      = "no available real server"
	ReasonDrained       = "director drained"
	ReasonStopping      = "stopping"
	ReasonNotForwarding = "data plane not forwarding"
	ReasonStarting      = "announce delay after start"
)

// Source is what the announcer follows: the daemon's running
// configuration, whether its data plane forwards, and whether a real
// server's frames can leave (its next hop resolved, or a local address).
type Source interface {
	Snapshot() *ipvs.Snapshot
	Forwarding() bool
	Reachable(server netip.Addr) bool
}

// RouteSpeaker is what the announcer drives: the Speaker, or a fake in
// tests.
type RouteSpeaker interface {
	Announce(routes []Route) error
	Peers() []control.BGPPeer
	Close() error
}

// Announcer announces each VIP of the running configuration over BGP
// exactly while the data plane forwards, the director is not drained or
// stopping, and one of the VIP's services has an available real server
// (ipvs.Dest.Available) whose next hop is reachable. It implements
// control.Director.
type Announcer struct {
	cfg Config
	src Source
	sp  RouteSpeaker
	log *slog.Logger

	mu        sync.Mutex // serialises evaluations and guards below
	holdUntil time.Time  // the end of cfg.AnnounceDelay
	drained   bool
	stopping  bool
	routes    []control.BGPRoute
	announced map[netip.Prefix]bool
	nAnn      uint64
	nWd       uint64

	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

var _ control.Director = (*Announcer)(nil)

// Start starts the speaker of cfg and an announcer following src.
func Start(cfg Config, src Source, log *slog.Logger) (*Announcer, error) {
	sp, err := StartSpeaker(cfg, log)
	if err != nil {
		return nil, err
	}
	a := NewAnnouncer(cfg, src, sp, log)
	a.Run()
	log.Info("bgp speaker started", "asn", cfg.ASN, "router_id", cfg.RouterID.String(), "peers", len(cfg.Peers),
		"hold_time", cfg.HoldTime, "listen", listenString(cfg.Listen), "drain_period", cfg.DrainPeriod, "announce_delay", cfg.AnnounceDelay)
	return a, nil
}

func listenString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "no"
	}
	return ap.String()
}

// NewAnnouncer returns an announcer driving sp; Run starts it.
func NewAnnouncer(cfg Config, src Source, sp RouteSpeaker, log *slog.Logger) *Announcer {
	return &Announcer{cfg: cfg, src: src, sp: sp, log: log, announced: map[netip.Prefix]bool{},
		holdUntil: time.Now().Add(cfg.AnnounceDelay), kick: make(chan struct{}, 1), quit: make(chan struct{})}
}

// Run evaluates once and then follows the source in the background.
func (a *Announcer) Run() {
	a.evaluate()
	a.wg.Go(func() {
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for {
			select {
			case <-a.quit:
				return
			case <-t.C:
			case <-a.kick:
			}
			a.evaluate()
		}
	})
}

// Plan returns every VIP of snap with whether it is to be announced and
// why not: a VIP is announced when the director forwards, is neither
// drained nor stopping nor within its announce delay (starting), and one
// of the VIP's services has an available (ipvs.Dest.Available) and
// reachable real server. Routes are sorted by prefix.
func Plan(cfg *Config, snap *ipvs.Snapshot, forwarding, drained, stopping, starting bool, reachable func(netip.Addr) bool) []control.BGPRoute {
	avail := map[netip.Addr]bool{}
	if snap != nil {
		for _, svc := range snap.Services() {
			ok := avail[svc.Key.Addr]
			for _, d := range svc.Dests {
				ok = ok || d.Available() && reachable(d.Addr.Addr())
			}
			avail[svc.Key.Addr] = ok
		}
	}
	out := make([]control.BGPRoute, 0, len(avail))
	for vip, ok := range avail {
		r := control.BGPRoute{Prefix: netip.PrefixFrom(vip, vip.BitLen())}
		switch {
		case stopping:
			r.Reason = ReasonStopping
		case !forwarding:
			r.Reason = ReasonNotForwarding
		case drained:
			r.Reason = ReasonDrained
		case starting:
			r.Reason = ReasonStarting
		case !ok:
			r.Reason = ReasonNoServer
		default:
			r.Announced = true
		}
		at := cfg.AttrsFor(vip)
		r.MED, r.HasMED = at.MED, at.HasMED
		for _, c := range at.Communities {
			r.Communities = append(r.Communities, FormatCommunity(c))
		}
		r.NextHop = cfg.NextHop4
		if vip.Is6() {
			r.NextHop = cfg.NextHop6
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y control.BGPRoute) int {
		if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
			return c
		}
		return x.Prefix.Bits() - y.Prefix.Bits()
	})
	return out
}

// evaluate brings the speaker in line with the plan and logs each change.
func (a *Announcer) evaluate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	plan := Plan(&a.cfg, a.src.Snapshot(), a.src.Forwarding(), a.drained, a.stopping, time.Now().Before(a.holdUntil), a.src.Reachable)
	var want []Route
	for _, r := range plan {
		if r.Announced {
			want = append(want, Route{Prefix: r.Prefix, Attrs: a.cfg.AttrsFor(r.Prefix.Addr())})
		}
	}
	if err := a.sp.Announce(want); err != nil {
		a.log.Error("bgp: announcing", "err", err)
		return // retried at the next evaluation
	}
	now := make(map[netip.Prefix]bool, len(want))
	for _, r := range plan {
		switch {
		case r.Announced && !a.announced[r.Prefix]:
			a.nAnn++
			a.log.Info("bgp route announced", "prefix", r.Prefix.String())
		case !r.Announced && a.announced[r.Prefix]:
			a.nWd++
			a.log.Warn("bgp route withdrawn", "prefix", r.Prefix.String(), "reason", r.Reason)
		}
		if r.Announced {
			now[r.Prefix] = true
		}
	}
	for p := range a.announced {
		if !now[p] && !slices.ContainsFunc(plan, func(r control.BGPRoute) bool { return r.Prefix == p }) {
			a.nWd++
			a.log.Warn("bgp route withdrawn", "prefix", p.String(), "reason", "VIP deleted")
		}
	}
	a.announced, a.routes = now, plan
}

// DrainDirector withdraws every VIP while the data plane keeps forwarding
// (drain), or lets them be announced again (undrain). It returns once the
// speaker has the change.
func (a *Announcer) DrainDirector(drain bool) error {
	a.mu.Lock()
	changed := a.drained != drain
	a.drained = drain
	a.mu.Unlock()
	if changed {
		if drain {
			a.log.Warn("director drained: withdrawing every VIP, forwarding continues")
		} else {
			a.log.Info("director undrained: announcing VIPs with available servers")
		}
	}
	a.evaluate()
	return nil
}

// BGPStatus describes the speaker for -L --bgp and the metrics.
func (a *Announcer) BGPStatus() control.BGPStatus {
	a.mu.Lock()
	st := control.BGPStatus{ASN: a.cfg.ASN, RouterID: a.cfg.RouterID, Drained: a.drained, Stopping: a.stopping,
		Routes: slices.Clone(a.routes), Announcements: a.nAnn, Withdrawals: a.nWd}
	a.mu.Unlock()
	st.Forwarding = a.src.Forwarding()
	st.Peers = a.sp.Peers()
	return st
}

// Stop withdraws every VIP (SIGTERM), waits until the withdrawals have
// left for the established peers, then keeps the data plane forwarding for
// the drain period, so that what the routers still send is served. It
// skips the drain period when nothing was announced, and ends early when
// ctx is done (a second signal).
func (a *Announcer) Stop(ctx context.Context) {
	a.mu.Lock()
	wasAnnounced := len(a.announced) > 0
	a.stopping = true
	a.mu.Unlock()
	a.evaluate()
	if !wasAnnounced {
		return
	}
	start := time.Now()
	deadline := time.NewTimer(withdrawWait)
	defer deadline.Stop()
wait:
	for !a.withdrawn() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			a.log.Warn("bgp: withdrawals not confirmed by every peer in time", "waited", withdrawWait)
			break wait
		case <-time.After(10 * time.Millisecond):
		}
	}
	a.log.Info("bgp routes withdrawn, draining", "after", time.Since(start).Round(time.Millisecond), "drain_period", a.cfg.DrainPeriod)
	if a.cfg.DrainPeriod <= 0 {
		return
	}
	t := time.NewTimer(a.cfg.DrainPeriod)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		a.log.Warn("drain period cut short")
	}
}

// withdrawn reports whether no established peer has a route of ours left
// in its Adj-RIB-Out.
func (a *Announcer) withdrawn() bool {
	for _, p := range a.sp.Peers() {
		if p.State == control.BGPEstablished && p.Advertised > 0 {
			return false
		}
	}
	return true
}

// Close stops following the source and closes the speaker (its sessions
// end with a Cease notification).
func (a *Announcer) Close() error {
	var err error
	a.once.Do(func() {
		close(a.quit)
		a.wg.Wait()
		err = a.sp.Close()
		a.log.Info("bgp speaker stopped")
	})
	return err
}
