package health

import (
	"bytes"
	"context"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// Prober limits.
const (
	// DefaultMaxInFlight bounds the probes outstanding at once: each holds
	// a socket and a goroutine for at most its timeout.
	DefaultMaxInFlight = 64
	// DefaultMaxScripts bounds the check scripts running at once (within
	// MaxInFlight): each is a process.
	DefaultMaxScripts = 8
	// tick is how often the scheduling goroutine looks for due probes
	// (half of ipvs.MinCheckInterval).
	tick = 50 * time.Millisecond
	// replyQueue bounds the datagrams queued for one probe.
	replyQueue = 8
)

// Options configure a Prober.
type Options struct {
	// Snapshot returns the configuration to check (the daemon's published
	// snapshot): every real server of every service with a health check.
	Snapshot func() *ipvs.Snapshot
	// SetHealth applies a state change to the configuration (and publishes
	// it). It is called from the prober's goroutine.
	SetHealth func(svc ipvs.ServiceKey, server netip.AddrPort, up bool) error
	// SetWeight applies the weight a dynamic script check reported (w < 0:
	// back to the configured weight); nil ignores dynamic weights. It is
	// called from the prober's goroutine.
	SetWeight func(svc ipvs.ServiceKey, server netip.AddrPort, w int) error
	// NextHop, if set, says where a direct-routing probe to a real server
	// goes at layer 2 (the daemon's next-hop table): the interface index
	// and the MAC it is sent to, at the VIP. Without it, probes go out of
	// Iface to the real server's Dest.NextHop MAC. When neither gives one
	// the probe goes to the real server's own address instead
	// (PathDRFallback).
	NextHop func(server netip.Addr) (ifindex int, mac [6]byte, ok bool)
	// Iface is the data-plane interface for direct-routing probes without
	// NextHop.
	Iface string
	// LocalAddrs, if set, is told the source addresses probes use whenever
	// the set changes: replies to them must reach Deliver, not the data
	// plane (see the daemon's probe tap).
	LocalAddrs func([]netip.Addr)
	// MaxInFlight bounds concurrent probes (0 = DefaultMaxInFlight).
	MaxInFlight int
	// MaxScripts bounds concurrent script checks (0 = DefaultMaxScripts).
	MaxScripts int
	Logger     *slog.Logger
	// Now is the clock of state-change times; nil means time.Now.
	Now func() time.Time
}

// Status is the prober's view of one real server.
type Status struct {
	Service ipvs.ServiceKey
	Server  netip.AddrPort
	Check   ipvs.CheckType
	Up      bool
	Checked bool
	Since   time.Time
	OK      int // consecutive successes
	Failed  int // consecutive failures
	Last    string
	RTT     time.Duration // of the last successful probe
	Path    string
	Probes  uint64
	// Transitions counts state changes to up and to down.
	TransitionsUp, TransitionsDown uint64
}

// Key names a checked real server: its service and address:port.
type Key struct {
	Service ipvs.ServiceKey
	Server  netip.AddrPort
}

// Key returns the real server s describes.
func (s *Status) Key() Key { return Key{s.Service, s.Server} }

// target is what one probe needs, taken from a snapshot.
type target struct {
	check   *ipvs.HealthCheck
	fwd     ipvs.Forward
	svc     ipvs.ServiceKey
	vip     netip.AddrPort // service address and port (port of the probe for DR)
	server  netip.AddrPort
	nextHop [6]byte
}

type state struct {
	target
	gen      uint64 // bumped when the check changes: late results are ignored
	m        machine
	due      time.Time
	launched time.Time
	inFlight bool
	dyn      int // the dynamic weight last applied; -1: none
	last     string
	rtt      time.Duration
	path     string
	probes   uint64
	ups      uint64
	downs    uint64
}

// Prober runs the health checks: one scheduling goroutine (Run) that starts
// each real server's probe when due, at most MaxInFlight at a time, and
// owns every server's state machine.
type Prober struct {
	o Options

	mu       sync.Mutex // guards states (Run writes, Status reads)
	states   map[Key]*state
	lastSnap *ipvs.Snapshot
	gen      uint64

	raw     *rawSender
	rawErr  error
	rawOnce sync.Once

	pmu     sync.Mutex // guards pending and locals
	pending map[netip.AddrPort]chan<- reply
	locals  []netip.Addr

	credCache // script users
}

// New returns a prober; Run runs it.
func New(o Options) *Prober {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxScripts <= 0 {
		o.MaxScripts = DefaultMaxScripts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Prober{o: o, states: map[Key]*state{}, pending: map[netip.AddrPort]chan<- reply{}}
}

// Run checks until ctx ends, then waits for the probes in flight.
func (p *Prober) Run(ctx context.Context) {
	results := make(chan result, p.o.MaxInFlight)
	sem := make(chan struct{}, p.o.MaxInFlight)
	scripts := make(chan struct{}, p.o.MaxScripts)
	var wg sync.WaitGroup
	t := time.NewTicker(tick)
	defer func() {
		t.Stop()
		wg.Wait()
		if p.raw != nil {
			p.raw.close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-results:
			p.apply(r)
		case <-t.C:
			p.reconcile()
			for _, l := range p.due() {
				script := l.check.Type == ipvs.CheckScript
				if !acquire(sem) {
					p.retryLater(l.k)
					continue
				}
				if script && !acquire(scripts) {
					<-sem
					p.retryLater(l.k)
					continue
				}
				wg.Go(func() {
					defer func() {
						if script {
							<-scripts
						}
						<-sem
					}()
					r := p.probe(ctx, l.target)
					r.key, r.gen = l.k, l.gen
					select {
					case results <- r:
					case <-ctx.Done():
					}
				})
			}
		}
	}
}

func acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// retryLater puts a probe that found no free slot back for the next tick.
func (p *Prober) retryLater(k Key) {
	p.mu.Lock()
	if st := p.states[k]; st != nil {
		st.inFlight, st.due = false, st.launched
	}
	p.mu.Unlock()
}

type launch struct {
	k   Key
	gen uint64
	target
}

// due marks and returns the probes to start now.
func (p *Prober) due() []launch {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []launch
	for k, st := range p.states {
		if st.inFlight || now.Before(st.due) {
			continue
		}
		st.inFlight = true
		st.launched = now
		st.due = now.Add(st.check.Interval)
		out = append(out, launch{k, st.gen, st.target})
	}
	return out
}

// jitter spreads the first probes of the servers over an interval, so that
// a rules load does not send them all at once.
func jitter(k Key, interval time.Duration) time.Duration {
	h := fnv.New64a()
	b, _ := k.Server.MarshalBinary()
	h.Write(b)
	b, _ = k.Service.Addr.MarshalBinary()
	h.Write(b)
	h.Write([]byte{byte(k.Service.Port), byte(k.Service.Port >> 8), byte(k.Service.Protocol)})
	return time.Duration(h.Sum64() % uint64(interval))
}

// reconcile follows configuration changes: new checked servers get a state
// (up, as the model starts them), removed ones lose theirs, a changed
// check restarts its servers' state.
func (p *Prober) reconcile() {
	s := p.o.Snapshot()
	p.mu.Lock()
	defer p.mu.Unlock()
	if s == p.lastSnap {
		return
	}
	p.lastSnap = s
	seen := map[Key]bool{}
	now := p.o.Now()
	for _, svc := range s.Services() {
		for _, d := range svc.Dests {
			chk := d.Check
			if chk == nil {
				continue
			}
			k := Key{svc.Key, d.Addr}
			seen[k] = true
			t := target{check: chk, fwd: d.Fwd, svc: svc.Key, vip: svc.Addr, server: d.Addr, nextHop: d.NextHop}
			st := p.states[k]
			if st == nil || !st.check.Equal(chk) {
				p.gen++
				old := st
				st = &state{target: t, gen: p.gen, m: machine{up: !d.Down, since: now},
					due: time.Now().Add(jitter(k, chk.Interval)), dyn: -1}
				if d.HasDynWeight {
					st.dyn = d.DynWeight
				}
				if old != nil && old.check.Type == chk.Type {
					st.m, st.probes, st.ups, st.downs, st.last, st.rtt = old.m, old.probes, old.ups, old.downs, old.last, old.rtt
					st.m.ok, st.m.failed = 0, 0
				}
				p.states[k] = st
			}
			st.target = t
			if st.m.up == d.Down { // the model was changed under us (check reset, server revived)
				st.m = machine{up: !d.Down, since: now}
			}
		}
	}
	for k := range p.states {
		if !seen[k] {
			delete(p.states, k)
		}
	}
}

// apply records a probe's result and acts on a state change.
func (p *Prober) apply(r result) {
	p.mu.Lock()
	st := p.states[r.key]
	if st == nil || st.gen != r.gen {
		p.mu.Unlock()
		return
	}
	st.inFlight = false
	st.probes++
	st.last, st.path = r.outcome, r.path
	if r.ok {
		st.rtt = r.rtt
	}
	old := st.m.up
	changed := st.m.observe(r.ok, st.check.Fail, st.check.Rise, p.o.Now())
	if changed {
		if st.m.up {
			st.ups++
		} else {
			st.downs++
		}
	}
	if !r.ok && st.m.up && st.check.RetryInterval > 0 {
		// keepalived's delay_before_retry: a failing server that is still
		// up is probed again sooner.
		if next := st.launched.Add(st.check.RetryInterval); next.Before(st.due) {
			st.due = next
		}
	}
	weight, setWeight := -1, false
	if st.check.Dynamic && r.dynamic != st.dyn {
		weight, setWeight, st.dyn = r.dynamic, true, r.dynamic
	}
	up, fails, oks := st.m.up, st.m.failed, st.m.ok
	p.mu.Unlock()
	if setWeight && p.o.SetWeight != nil {
		if err := p.o.SetWeight(r.key.Service, r.key.Server, weight); err != nil {
			p.o.Logger.Warn("dynamic weight not applied", "service", r.key.Service.String(), "server", r.key.Server.String(), "err", err)
		} else {
			p.o.Logger.Info("dynamic weight", "service", r.key.Service.String(), "server", r.key.Server.String(), "weight", weight, "reason", r.outcome)
		}
	}
	if !changed {
		return
	}
	level := slog.LevelWarn
	if up {
		level = slog.LevelInfo
	}
	p.o.Logger.Log(context.Background(), level, "health state change",
		"service", r.key.Service.String(), "server", r.key.Server.String(),
		"old", stateName(old), "new", stateName(up), "reason", reason(r, up, fails, oks), "path", r.path)
	if err := p.o.SetHealth(r.key.Service, r.key.Server, up); err != nil {
		p.o.Logger.Warn("health state not applied", "service", r.key.Service.String(), "server", r.key.Server.String(), "err", err)
	}
}

func stateName(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func reason(r result, up bool, fails, oks int) string {
	if up {
		return r.outcome + " (" + strconv.Itoa(oks) + " in a row)"
	}
	return r.outcome + " (" + strconv.Itoa(fails) + " in a row)"
}

// Status returns the prober's view of every checked real server, sorted by
// service and server.
func (p *Prober) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Status, 0, len(p.states))
	for k, st := range p.states {
		out = append(out, Status{Service: k.Service, Server: k.Server, Check: st.check.Type, Up: st.m.up,
			Checked: st.m.checked, Since: st.m.since, OK: st.m.ok, Failed: st.m.failed, Last: st.last,
			RTT: st.rtt, Path: st.path, Probes: st.probes, TransitionsUp: st.ups, TransitionsDown: st.downs})
	}
	slices.SortFunc(out, func(a, b Status) int {
		if c := a.Service.Addr.Compare(b.Service.Addr); c != 0 {
			return c
		}
		if a.Service.Port != b.Service.Port {
			return int(a.Service.Port) - int(b.Service.Port)
		}
		if a.Service.Protocol != b.Service.Protocol {
			return int(a.Service.Protocol) - int(b.Service.Protocol)
		}
		return a.Server.Compare(b.Server)
	})
	return out
}

// Deliver hands the prober a UDP datagram that the data plane received for
// one of the probes' source addresses (see Options.LocalAddrs): in AF_XDP
// mode a NAT real server's answers never reach the kernel's socket. It
// reports whether a probe was waiting for it. It copies payload.
func (p *Prober) Deliver(src, dst netip.AddrPort, payload []byte) bool {
	p.pmu.Lock()
	ch := p.pending[dst]
	p.pmu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- reply{data: bytes.Clone(payload)}:
	default:
	}
	return true
}

func (p *Prober) register(local netip.AddrPort, ch chan<- reply) {
	p.pmu.Lock()
	p.pending[local] = ch
	a := local.Addr()
	var changed []netip.Addr
	if !slices.Contains(p.locals, a) {
		p.locals = append(p.locals, a)
		changed = slices.Clone(p.locals)
	}
	p.pmu.Unlock()
	if changed != nil && p.o.LocalAddrs != nil {
		p.o.LocalAddrs(changed)
	}
}

func (p *Prober) unregister(local netip.AddrPort) {
	p.pmu.Lock()
	delete(p.pending, local)
	p.pmu.Unlock()
}

// rawSend returns the raw sender, opening it on first use.
func (p *Prober) rawSend() (*rawSender, error) {
	p.rawOnce.Do(func() {
		if p.o.Iface == "" && p.o.NextHop == nil {
			p.rawErr = errNoIface
			return
		}
		p.raw, p.rawErr = newRawSender(p.o.Iface)
		if p.rawErr != nil {
			p.o.Logger.Warn("direct-routing health probes fall back to the real servers' own addresses", "err", p.rawErr)
		}
	})
	return p.raw, p.rawErr
}

var errNoIface = net.UnknownNetworkError("no interface for raw probes")

// probe runs one check against t.
func (p *Prober) probe(ctx context.Context, t target) result {
	h := t.check
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	port := t.server.Port()
	if h.Port != 0 {
		port = h.Port
	}
	server := netip.AddrPortFrom(t.server.Addr(), port)
	start := time.Now()
	var r result
	switch h.Type {
	case ipvs.CheckTCP:
		r.ok, r.outcome = tcpProbe(ctx, server)
		r.path = PathDirect
	case ipvs.CheckHTTP, ipvs.CheckHTTPS:
		r.ok, r.outcome = httpProbe(ctx, h, server)
		r.path = PathDirect
	case ipvs.CheckScript:
		r = p.scriptProbe(ctx, t)
	default:
		r = p.udpProbe(ctx, t, server)
	}
	r.rtt = time.Since(start)
	if h.Type == ipvs.CheckUDP && r.outcome == outcomeTimeout {
		// keepalived's UDP_CHECK: silence is not a failure, only an ICMP
		// port unreachable is (a UDP service need not answer).
		r.ok, r.outcome = true, "no reply"
	}
	return r
}

// udpProbe sends a SIP OPTIONS request or a plain datagram and waits for
// the answer. NAT (and any non-DR) servers are probed at their own
// address; a direct-routing server is probed at the VIP, sent to its MAC
// from our own address, so that the probe proves it serves the VIP.
func (p *Prober) udpProbe(ctx context.Context, t target, server netip.AddrPort) result {
	h := t.check
	dr := t.fwd == ipvs.Route
	path := PathDirect
	var raw *rawSender
	mac, ifindex := t.nextHop, 0
	if dr && p.o.NextHop != nil {
		var ok bool
		if ifindex, mac, ok = p.o.NextHop(t.server.Addr()); !ok {
			mac = [6]byte{}
		}
	}
	if dr {
		path = PathDRFallback
		if mac != ([6]byte{}) {
			if rs, err := p.rawSend(); err == nil {
				raw, path = rs, PathDR
			}
		}
	}
	// The source address the kernel uses towards the real server.
	probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return result{outcome: "socket: " + shortErr(err), path: path}
	}
	peer := server
	if raw != nil {
		// Receive on a socket connected to the VIP: the real server answers
		// from it; send the crafted datagram at the real server's MAC.
		local := netip.MustParseAddrPort(probe.LocalAddr().String()).Addr()
		probe.Close()
		peer = netip.AddrPortFrom(t.vip.Addr(), server.Port())
		if h.Port == 0 {
			peer = t.vip
		}
		probe, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(peer))
		if err != nil {
			return result{outcome: "socket: " + shortErr(err), path: path}
		}
	}
	defer probe.Close()
	local := netip.MustParseAddrPort(probe.LocalAddr().String())
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	replies := make(chan reply, replyQueue)
	p.register(local, replies)
	defer p.unregister(local)
	go readLoop(probe, replies)

	payload := udpPing
	callID := ""
	if h.Type == ipvs.CheckSIPOptions {
		callID = newCallID(local.Addr())
		payload = sipOptions(peer, local, callID)
	}
	send := func() error {
		if raw != nil {
			return raw.send(udpPacket(local, peer, payload), peer.Addr().Is6(), mac, ifindex)
		}
		_, err := probe.Write(payload)
		return err
	}
	ok, outcome := exchange(ctx, send, replies, judge(h, callID))
	return result{ok: ok, outcome: outcome, path: path}
}
