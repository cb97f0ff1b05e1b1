package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// The scale-out lab (docs/scale-out.md): a router running BIRD 2 with
// ECMP and L4 hashing, three directors running `xvs run` on AF_XDP whose
// embedded BGP speakers announce the VIPs to it, three SIPp UAS real
// servers behind them (direct routing), and clients calling from many
// source ports. Hold time 3 s (the lab's; production default 9 s), drain
// period 2 s.

const (
	soRouterASN   = 65000
	soDirectorASN = 65001
	soHold        = 3 * time.Second
	soDrain       = 2 * time.Second
	soProbePort   = 5061 // a service nobody listens on: real servers count arrivals as UDP NoPorts
	soProbeRate   = 1000 // probe datagrams per second, over soProbeFlows source ports
	soProbeFlows  = 64
	soSample      = 500 * time.Millisecond // to find the director with the most SIP flows
	soRate        = 3                      // calls per second per UAC
	soSyncID      = 13
	// soRefresh is the sync_refresh_period of the rr + sync phase: a
	// director that (re)starts learns every live call from its peers'
	// walks within it, and announces its VIPs only after it (plus a
	// second for the sync lag: --bgp-announce-delay).
	soRefresh = 2 * time.Second
	// soLagMargin widens the sync window (see syncWindow) beyond the
	// longest sync lag the directors measured.
	soLagMargin = 500 * time.Millisecond
)

// soMetrics is every director's metrics listener, on the loopback of its
// own namespace.
const soMetrics = "127.0.0.1:9101"

type soLab struct {
	t     *testing.T
	l     *lab.Lab
	bird  *lab.BIRD
	rules string   // the rules file every director starts with
	extra []string // more xvs run arguments (sync daemons)
	// changes are the times the router's paths to the VIP changed during
	// a churn (a director left or came back): each moves flows, and with
	// them calls, between directors.
	changes []time.Time
	// lastSplit and callsStart are the split Call-IDs of the last churn
	// and when its UACs started.
	lastSplit  []string
	callsStart time.Time
	dirs       []*balancer
	socks      []string
	uas        []*sipp.Server
	vip        netip.AddrPort
}

func TestRootScaleOutBGP(t *testing.T) {
	testenv.NeedLab(t)
	_, err := sipp.Path()
	testenv.Require(t, err)
	l := testenv.Lab(t, lab.Spec{Clients: 2, RealServers: 3, Directors: 3})
	if err := l.UseDirectRouting(); err != nil {
		t.Fatal(err)
	}
	s := &soLab{t: t, l: l, vip: netip.AddrPortFrom(l.VIP4, 5060)}
	var peers []lab.BIRDPeer
	for i, d := range l.Directors {
		peers = append(peers, lab.BIRDPeer{Name: fmt.Sprintf("d%dv4", i), Addr: d.Addr4, ASN: soDirectorASN},
			lab.BIRDPeer{Name: fmt.Sprintf("d%dv6", i), Addr: d.Addr6, ASN: soDirectorASN})
	}
	s.bird, err = l.StartBIRD(lab.BIRDConfig(lab.BIRDSpec{ASN: soRouterASN, RouterID: l.Router.Addr4, Peers: peers,
		HoldTime: soHold, Keepalive: time.Second}))
	testenv.Require(t, err)
	defer s.bird.Stop()

	for _, r := range l.Reals {
		u, err := sipp.UAS{NS: r.NS, Addr: s.vip, Dir: t.TempDir()}.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		s.uas = append(s.uas, u)
		defer u.Stop()
	}
	s.rules = s.rulesFor("mh")
	s.socks = make([]string, len(l.Directors))
	s.dirs = make([]*balancer, len(l.Directors))
	for i := range l.Directors {
		s.startDirector(i)
	}
	start := time.Now()
	s.waitPaths(3, 20*time.Second)
	t.Logf("router has 3 ECMP paths to the VIP %v after the directors started", time.Since(start).Round(10*time.Millisecond))
	s.waitPaths6(3, 5*time.Second)
	routes, _ := s.bird.Birdc("show", "route", "for", l.VIP4.String(), "all")
	t.Logf("birdc show route for %v all:\n%s", l.VIP4, routes)
	out := s.xvsadm(0, "-L", "--bgp")
	if !strings.Contains(out, "established") || !strings.Contains(out, "10.77.2.1/32             announced") {
		t.Fatalf("-L --bgp on director 0:\n%s", out)
	}
	t.Logf("xvsadm -L --bgp on director 0:\n%s", out)
	m := s.metrics(t, 0)
	for _, want := range []string{
		fmt.Sprintf(`xvs_bgp_session_state{peer="%s",state="established"} 1`, l.Router.Addr4),
		fmt.Sprintf(`xvs_bgp_session_state{peer="%s",state="established"} 1`, l.Router.Addr6),
		fmt.Sprintf(`xvs_bgp_route_announced{prefix="%s/32"} 1`, l.VIP4),
		fmt.Sprintf(`xvs_bgp_route_announced{prefix="%s/128"} 1`, l.VIP6),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("director 0's metrics lack %s", want)
		}
	}

	t.Run("spread", s.spread)
	t.Run("drainDirector", s.drainDirector)
	t.Run("directorsLeaveAndJoin", s.leaveAndJoin)
	t.Run("realServerFails", s.realServerFails)

	// rr: every director schedules on its own.
	s.rules = s.rulesFor("rr")
	s.restartAll()
	t.Run("rrAloneSplits", s.rrAloneSplits)

	// rr + sync: every director runs a master and a backup sync daemon,
	// and waits one refresh period after start before it announces.
	s.extra = []string{"--start-daemon", "master", "--start-daemon", "backup", "--syncid", strconv.Itoa(soSyncID),
		"--sysctl", "sync_refresh_period=" + strconv.Itoa(int(soRefresh/time.Second)),
		"--bgp-announce-delay", (soRefresh + time.Second).String()}
	s.restartAll()
	t.Run("rrSyncLeaveAndJoin", s.rrSyncLeaveAndJoin)
}

// rulesFor returns the lab's rules with sched as the SIP services'
// scheduler: the IPv4 and IPv6 SIP services (-o --pe sip, persistent), and
// the probe's service (mh, no persistence), each over the three real
// servers by direct routing, with OPTIONS health checks on the IPv4 SIP
// service.
func (s *soLab) rulesFor(sched string) string {
	l := s.l
	var rules strings.Builder
	for _, svc := range []struct {
		vip   string
		reals func(lab.Host) netip.Addr
		opts  string
		port  int
	}{
		{l.VIP4.String(), func(h lab.Host) netip.Addr { return h.Addr4 }, "-s " + sched + " -p 60 -M 0.0.0.0 --pe sip -o", 5060},
		{"[" + l.VIP6.String() + "]", func(h lab.Host) netip.Addr { return h.Addr6 }, "-s " + sched + " -p 60 --pe sip -o", 5060},
		{l.VIP4.String(), func(h lab.Host) netip.Addr { return h.Addr4 }, "-s mh", soProbePort},
	} {
		fmt.Fprintf(&rules, "-A -u %s:%d %s\n", svc.vip, svc.port, svc.opts)
		for _, r := range l.Reals {
			a := svc.reals(r).String()
			if svc.reals(r).Is6() {
				a = "[" + a + "]"
			}
			fmt.Fprintf(&rules, "-a -u %s:%d -r %s:%d -g\n", svc.vip, svc.port, a, svc.port)
		}
	}
	// An OPTIONS check, as in production (the UASes answer OPTIONS). Not
	// the udp check: a dead server's kernel rate-limits its ICMP port
	// unreachable to a director to about one a second after a burst
	// (net.ipv4.icmp_ratelimit), so with probes every 0.3 s the silences in
	// between count as alive and the dead server comes back up (measured:
	// up again about a second after it went down, new calls sent to it).
	// Three failures of 0.3 s: a loaded machine can delay an answer past
	// one timeout, and a live server taken down moves its calls.
	fmt.Fprintf(&rules, "--health-check -u %s --check sip-options --interval 0.3 --check-timeout 0.3 --fail 3 --rise 2\n", s.vip)
	return rules.String()
}

// restartAll stops every director (kill -9: nothing of the previous phase
// must linger) and starts them again with s.rules and s.extra.
func (s *soLab) restartAll() {
	for _, d := range s.dirs {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
			_ = d.cmd.Process.Kill()
			<-d.done
			d.done <- nil
		}
	}
	s.waitPaths(0, soHold+5*time.Second)
	for i := range s.dirs {
		s.startDirector(i)
	}
	s.waitPaths(3, 20*time.Second)
}

// startDirector starts (or restarts) director i.
func (s *soLab) startDirector(i int) {
	t, l := s.t, s.l
	d := l.Directors[i]
	dir := t.TempDir()
	rf := filepath.Join(dir, "rules")
	if err := os.WriteFile(rf, []byte(s.rules), 0o644); err != nil {
		t.Fatal(err)
	}
	s.socks[i] = filepath.Join(dir, "xvs.sock")
	args := []string{"run", "--iface", lab.HostIface, "--rules", rf, "--mode", "afxdp",
		"--control", s.socks[i], "--metrics", soMetrics, "--templates", "65536", "--conns", "4096",
		"--bgp-asn", strconv.Itoa(soDirectorASN), "--bgp-router-id", d.Addr4.String(),
		"--bgp-peer", fmt.Sprintf("%s:%d", l.Router.Addr4, soRouterASN),
		"--bgp-peer", fmt.Sprintf("[%s]:%d", l.Router.Addr6, soRouterASN),
		"--bgp-hold-time", strconv.Itoa(int(soHold / time.Second)), "--bgp-drain-period", soDrain.String()}
	args = append(args, s.extra...)
	b := &balancer{stderr: &testenv.Buffer{}, done: make(chan error, 1)}
	b.cmd = lab.Command(context.Background(), d.NS, xvsBinary(t), args...)
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			_ = b.cmd.Process.Signal(syscall.SIGCONT)
			_ = b.cmd.Process.Kill()
		}
	})
	deadline := time.After(15 * time.Second)
	for !strings.Contains(b.stderr.String(), "bgp speaker started") {
		select {
		case err := <-b.done:
			b.done <- err
			out := b.stderr.String()
			if strings.Contains(out, "AF_XDP") || strings.Contains(out, "not supported") {
				testenv.Require(t, fmt.Errorf("%w: %s", errNoBackend, out))
			}
			t.Fatalf("director %d exited at start: %v\n%s", i, err, out)
		case <-deadline:
			t.Fatalf("director %d did not start its BGP speaker within 15s:\n%s", i, b.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.dirs[i] = b
}

func (s *soLab) xvsadm(i int, argv ...string) string {
	var out, errb strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := control.Call(ctx, s.socks[i], control.Request{Argv: argv}, &out, &errb)
	if err != nil || code != 0 {
		s.t.Fatalf("xvsadm %q on director %d: %v, exit %d: %s", argv, i, err, code, errb.String())
	}
	return out.String()
}

// paths counts the router's ECMP next hops towards addr.
func (s *soLab) paths(addr netip.Addr) int {
	args := []string{"route", "show", addr.String()}
	if addr.Is6() {
		args = append([]string{"-6"}, args...)
	}
	out, err := s.l.Output(s.l.Router.NS, "ip", args...)
	if err != nil {
		return -1
	}
	if n := strings.Count(out, "nexthop via"); n > 0 {
		return n
	}
	if strings.Contains(out, " via ") {
		return 1
	}
	return 0
}

func (s *soLab) waitPathsOf(addr netip.Addr, n int, within time.Duration) time.Duration {
	start := time.Now()
	for s.paths(addr) != n {
		if time.Since(start) > within {
			r, _ := s.l.Output(s.l.Router.NS, "ip", "route")
			b, _ := s.bird.Birdc("show", "protocols")
			s.t.Fatalf("router did not reach %d paths to %v within %v\n%s\n%s\n%s", n, addr, within, r, b, s.bird.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.changes = append(s.changes, time.Now())
	return time.Since(start)
}

func (s *soLab) waitPaths(n int, within time.Duration) time.Duration {
	return s.waitPathsOf(s.l.VIP4, n, within)
}

func (s *soLab) waitPaths6(n int, within time.Duration) time.Duration {
	return s.waitPathsOf(s.l.VIP6, n, within)
}

// probe sends numbered UDP datagrams to VIP:soProbePort from soProbeFlows
// source ports of a client at soProbeRate until stopped; the real servers
// count what arrives (no socket listens there) as UDP NoPorts.
type soProbe struct {
	sent   atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	before int64
}

func (s *soLab) startProbe() *soProbe {
	t := s.t
	var conns []*net.UDPConn
	err := s.l.Do(s.l.Clients[0].NS, func() error {
		for range soProbeFlows {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.l.Clients[0].Addr4.AsSlice()})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &soProbe{stop: make(chan struct{}), done: make(chan struct{}), before: s.noPorts()}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.l.VIP4, soProbePort))
	go func() {
		defer close(p.done)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		tick := time.NewTicker(time.Second / soProbeRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			if _, err := conns[i%len(conns)].WriteToUDP([]byte("xvs-probe "+strconv.Itoa(i)), dst); err == nil {
				p.sent.Add(1)
			}
		}
	}()
	return p
}

// finish stops the probe and returns datagrams sent and lost.
func (s *soLab) finish(p *soProbe) (sent, lost int64) {
	close(p.stop)
	<-p.done
	time.Sleep(200 * time.Millisecond) // in flight
	got := s.noPorts() - p.before
	return p.sent.Load(), p.sent.Load() - got
}

// noPorts sums the real servers' UDP NoPorts counters.
func (s *soLab) noPorts() int64 {
	var sum int64
	for _, r := range s.l.Reals {
		out, err := s.l.Output(r.NS, "cat", "/proc/net/snmp")
		if err != nil {
			s.t.Fatal(err)
		}
		var head []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if head == nil {
				head = f
				continue
			}
			for i, h := range head {
				if h == "NoPorts" && i < len(f) {
					n, _ := strconv.ParseInt(f[i], 10, 64)
					sum += n
				}
			}
			break
		}
	}
	return sum
}

// inPkts returns a director's datagram count (InPkts) for VIP:port.
func (s *soLab) inPkts(i int, port uint16) int64 {
	out := s.xvsadm(i, "-Ln", "--stats", "-u", fmt.Sprintf("%s:%d", s.l.VIP4, port))
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[0] == "UDP" {
			n, _ := strconv.ParseInt(f[3], 10, 64)
			return n
		}
	}
	return 0
}

// busiest returns the director that forwards the most SIP datagrams now
// (over soSample) and how many: the one whose leaving affects the most
// calls. Every director is up.
func (s *soLab) busiest() (int, int64) {
	before := make([]int64, len(s.dirs))
	for i := range s.dirs {
		before[i] = s.inPkts(i, s.vip.Port())
	}
	time.Sleep(soSample)
	best, most := 0, int64(-1)
	for i := range s.dirs {
		if n := s.inPkts(i, s.vip.Port()) - before[i]; n > most {
			best, most = i, n
		}
	}
	if most <= 0 {
		s.t.Fatalf("no director forwarded a SIP datagram in %v", soSample)
	}
	return best, most
}

// spread: ECMP spreads the probe flows over all three directors.
func (s *soLab) spread(t *testing.T) {
	before := make([]int64, 3)
	for i := range before {
		before[i] = s.inPkts(i, soProbePort)
	}
	p := s.startProbe()
	time.Sleep(2 * time.Second)
	sent, lost := s.finish(p)
	var per []string
	for i := range before {
		n := s.inPkts(i, soProbePort) - before[i]
		per = append(per, strconv.FormatInt(n, 10))
		if n < sent/10 {
			t.Errorf("director %d forwarded %d of %d probe datagrams: ECMP does not spread", i, n, sent)
		}
	}
	t.Logf("spread: %d datagrams over %d flows, %d lost; per director: %s", sent, soProbeFlows, lost, strings.Join(per, " "))
	if lost != 0 {
		t.Errorf("%d probe datagrams lost in steady state", lost)
	}
}

// soUACPorts are the source ports of each client's UACs: every UAC is one
// 5-tuple (as between SIP proxies), so 2 clients × 4 ports are 8 flows for
// the router's L4 hash to spread over the directors.
var soUACPorts = []uint16{5060, 5062, 5064, 5066}

// calls runs SIPp UACs from every client and source port for about d, at
// rate calls per second each, and returns their results. giveUp is the
// UACs' transaction timeout (0: a real UA's 32 s).
func (s *soLab) calls(d time.Duration, rate int, pause, giveUp time.Duration) func() []sipp.Result {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var res []sipp.Result
	for _, c := range s.l.Clients {
		for _, port := range soUACPorts {
			wg.Go(func() {
				r, err := sipp.UAC{NS: c.NS, Local: netip.AddrPortFrom(c.Addr4, port), Target: s.vip,
					Calls: int(d.Seconds()) * rate, Rate: rate, Pause: pause, Dir: s.t.TempDir(), GiveUp: giveUp}.Run(context.Background())
				if err != nil {
					s.t.Errorf("UAC on %s:%d: %v", c.Role, port, err)
				}
				mu.Lock()
				res = append(res, r)
				mu.Unlock()
			})
		}
	}
	return func() []sipp.Result { wg.Wait(); return res }
}

// callServers maps every Call-ID the UASes have seen to the servers that
// saw it: the calls each one logged, and the in-dialog requests (ACK, BYE)
// of calls it never had (sipp.Server.Strays), which a split sends there.
func (s *soLab) callServers() map[string][]int {
	m := map[string][]int{}
	for i, u := range s.uas {
		ids, err := u.CallIDs()
		if err != nil {
			s.t.Fatal(err)
		}
		strays, err := u.Strays()
		if err != nil {
			s.t.Fatal(err)
		}
		maps.Copy(ids, strays)
		for id := range ids {
			m[id] = append(m[id], i)
		}
	}
	return m
}

// split counts the calls of m that are not in before and that more than
// one real server saw.
func split(m, before map[string][]int) int {
	n := 0
	for id, srv := range m {
		if _, old := before[id]; !old && len(srv) > 1 {
			n++
		}
	}
	return n
}

// soEvent is a director leaving mid-calls and coming back.
type soEvent int

const (
	graceful soEvent = iota // SIGTERM: withdraw, drain, exit; then restarted
	abrupt                  // kill -9: the kernel closes the session at once; then restarted
	frozen                  // SIGSTOP: the hold timer expires; then SIGCONT
)

// churn places calls from every UAC for callsFor while each event happens
// in turn to the director that carries the most SIP flows at that moment
// (so that every event hits calls in progress), and returns the calls'
// results and how many were split over real servers. giveUp is the UACs'
// transaction timeout (0: a real UA's 32 s).
//
// Abrupt leaves lose the datagrams sent to the dead director until the
// router drops its path (the probe measures them); calls survive by SIP's
// own retransmissions. A frozen director that resumes forwards the
// datagrams its receive ring queued, seconds late: the UASes take those
// late INVITE copies as a real UA does (sipp's scenarios; the count is
// logged).
func (s *soLab) churn(t *testing.T, callsFor, giveUp time.Duration, events ...soEvent) (ok, failed, splits int, res []sipp.Result) {
	before := s.callServers()
	copiesBefore := s.lateCopies()
	s.changes = nil
	callsStart := time.Now()
	wait := s.calls(callsFor, soRate, 2*time.Second, giveUp)
	time.Sleep(2 * time.Second)
	for _, ev := range events {
		// The leave happens about soSample after this (busiest); the
		// UACs start their last calls at callsFor.
		if late := time.Since(callsStart) + soSample + time.Second; late > callsFor {
			t.Errorf("event %d would come %v after the calls started, too late to hit calls in progress (they start for %v)", ev, late, callsFor)
		}
		switch ev {
		case graceful:
			s.gracefulLeave(t)
		case abrupt:
			s.abruptLeave(t)
		case frozen:
			s.frozenLeave(t)
		}
	}
	res = wait()
	for _, r := range res {
		ok += r.Successful
		failed += r.Failed
	}
	after := s.callServers()
	splits = split(after, before)
	s.lastSplit = s.lastSplit[:0]
	for id, srv := range after {
		if _, old := before[id]; !old && len(srv) > 1 {
			s.lastSplit = append(s.lastSplit, id)
		}
	}
	s.callsStart = callsStart
	t.Logf("late INVITE copies taken by the UASes: %d", s.lateCopies()-copiesBefore)
	return ok, failed, splits, res
}

// gracefulLeave: SIGTERM to the busiest director (withdraw, drain, exit),
// 0 probe datagrams lost; then it starts again and rejoins.
func (s *soLab) gracefulLeave(t *testing.T) {
	v, flows := s.busiest()
	p := s.startProbe()
	t0 := time.Now()
	s.dirs[v].cmd.Process.Signal(syscall.SIGTERM)
	dropped := s.waitPaths(2, 5*time.Second)
	var exited time.Duration
	select {
	case err := <-s.dirs[v].done:
		s.dirs[v].done <- err
		exited = time.Since(t0)
		if err != nil {
			t.Errorf("director %d did not exit cleanly: %v\n%s", v, err, s.dirs[v].stderr.String())
		}
	case <-time.After(soDrain + 10*time.Second):
		t.Fatalf("director %d did not exit after SIGTERM:\n%s", v, s.dirs[v].stderr.String())
	}
	sent, lost := s.finish(p)
	t.Logf("graceful leave (SIGTERM) of director %d (%d SIP datagrams in %v before): router dropped the path after %v, director exited after %v (drain period %v); probe: %d sent, %d lost",
		v, flows, soSample, dropped.Round(time.Millisecond), exited.Round(time.Millisecond), soDrain, sent, lost)
	if lost != 0 {
		t.Errorf("graceful leave lost %d of %d probe datagrams", lost, sent)
	}
	if exited < soDrain {
		t.Errorf("director exited %v after SIGTERM, before its %v drain period", exited, soDrain)
	}
	if log := s.dirs[v].stderr.String(); !strings.Contains(log, "bgp route withdrawn") || !strings.Contains(log, "draining") {
		t.Errorf("director %d did not log its withdrawal and drain:\n%s", v, log)
	}
	s.rejoin(t, v)
}

// rejoin starts director v again and waits for the router to take it back.
func (s *soLab) rejoin(t *testing.T, v int) {
	t0 := time.Now()
	s.startDirector(v)
	joined := s.waitPaths(3, 15*time.Second)
	t.Logf("rejoin of director %d: path back %v after start (%v after the speaker started)", v,
		time.Since(t0).Round(time.Millisecond), joined.Round(time.Millisecond))
}

// abruptLeave: kill -9 of the busiest director; the time until the router
// drops the path and the probe datagrams lost meanwhile are logged; then
// it starts again and rejoins.
func (s *soLab) abruptLeave(t *testing.T) {
	v, flows := s.busiest()
	p := s.startProbe()
	time.Sleep(300 * time.Millisecond)
	s.dirs[v].cmd.Process.Kill()
	dropped := s.waitPaths(2, soHold+5*time.Second)
	time.Sleep(300 * time.Millisecond)
	sent, lost := s.finish(p)
	t.Logf("abrupt leave (kill -9) of director %d (%d SIP datagrams in %v before): router dropped the path after %v; probe: %d sent, %d lost",
		v, flows, soSample, dropped.Round(time.Millisecond), sent, lost)
	err := <-s.dirs[v].done
	s.dirs[v].done <- err
	s.rejoin(t, v)
}

// frozenLeave: SIGSTOP of the busiest director, so that the hold timer
// expires; then SIGCONT: the thawed speaker finds its sessions reset,
// waits its connect retry (5 s) and dials again.
func (s *soLab) frozenLeave(t *testing.T) {
	v, flows := s.busiest()
	p := s.startProbe()
	time.Sleep(300 * time.Millisecond)
	s.dirs[v].cmd.Process.Signal(syscall.SIGSTOP)
	dropped := s.waitPaths(2, soHold+5*time.Second)
	time.Sleep(300 * time.Millisecond)
	sent, lost := s.finish(p)
	t.Logf("frozen director %d (SIGSTOP, hold time %v; %d SIP datagrams in %v before): router dropped the path after %v; probe: %d sent, %d not delivered before the thaw (%.0f ms of a third of %d/s)",
		v, soHold, flows, soSample, dropped.Round(time.Millisecond), sent, lost, float64(lost)/(soProbeRate/3.0)*1000, soProbeRate)
	if dropped > soHold+time.Second {
		t.Errorf("hold-timer expiry took %v (hold time %v)", dropped, soHold)
	}
	s.dirs[v].cmd.Process.Signal(syscall.SIGCONT)
	back := s.waitPaths(3, 30*time.Second)
	t.Logf("thawed director %d back in the ECMP group after %v", v, back.Round(time.Millisecond))
}

// failures returns the first UAC output with failed calls, for the log.
func failures(res []sipp.Result) string {
	for _, r := range res {
		if r.Failed != 0 {
			return r.Output
		}
	}
	return ""
}

// leaveAndJoin: with mh, directors leaving gracefully (SIGTERM), abruptly
// (kill -9), freezing (SIGSTOP: the hold timer expires) and rejoining
// mid-calls split no call and fail none.
func (s *soLab) leaveAndJoin(t *testing.T) {
	ok, failed, splits, res := s.churn(t, 24*time.Second, 0, graceful, abrupt, frozen)
	t.Logf("calls across the leaves and joins (mh): %d successful, %d failed, %d split", ok, failed, splits)
	if splits != 0 {
		t.Errorf("%d calls split over real servers", splits)
	}
	if failed != 0 {
		t.Errorf("%d of %d calls failed:\n%s", failed, ok+failed, failures(res))
	}
}

// lateCopies sums the UASes' late INVITE copies so far.
func (s *soLab) lateCopies() int {
	n := 0
	for _, u := range s.uas {
		k, _ := u.LateCopies()
		n += k
	}
	return n
}

// realServerFails: a real server dies mid-calls; the health checks of every
// director take it down; only its calls move, the others keep their
// server; the calls that fail are calls it had. It is started again
// afterwards.
func (s *soLab) realServerFails(t *testing.T) {
	before := s.callServers()
	// The dead server's calls fail: do not wait a real UA's 32 s for them.
	wait := s.calls(8*time.Second, 3, 2*time.Second, 10*time.Second)
	time.Sleep(3 * time.Second)
	out, err := s.l.Output(s.l.Reals[2].NS, "ip", "netns", "pids", s.l.Reals[2].NS)
	if err != nil {
		t.Fatal(err)
	}
	for f := range strings.FieldsSeq(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t0 := time.Now()
	for i := range s.dirs {
		for !strings.Contains(s.xvsadm(i, "-Ln", "--health"), "down") {
			if time.Since(t0) > 5*time.Second {
				t.Fatalf("director %d did not take the dead server down:\n%s", i, s.xvsadm(i, "-Ln", "--health"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("real server 2 killed: down on every director after %v", time.Since(t0).Round(time.Millisecond))
	res := wait()
	for i := range s.dirs {
		h := s.xvsadm(i, "-Ln", "--health")
		for line := range strings.SplitSeq(h, "\n") {
			if strings.Contains(line, s.l.Reals[2].Addr4.String()+":5060") && !strings.Contains(line, "down") {
				t.Errorf("director %d: the dead server is not down at the end:\n%s", i, h)
			}
		}
	}
	var ok, failed int
	for _, r := range res {
		ok += r.Successful
		failed += r.Failed
	}
	// Calls of this phase by server; real2's log holds what it saw until
	// it died.
	m := s.callServers()
	var dead, moved, survivors, splits int
	for id, srv := range m {
		if _, old := before[id]; old {
			continue
		}
		switch {
		case slices.Contains(srv, 2):
			dead++
			if len(srv) > 1 {
				moved++
			}
		default:
			survivors++
			if len(srv) > 1 {
				splits++
			}
		}
	}
	t.Logf("calls while real server 2 died: %d successful, %d failed; real server 2 had %d of them (%d moved on after it died); %d calls on the survivors only, %d split between them",
		ok, failed, dead, moved, survivors, splits)
	if splits != 0 {
		t.Errorf("%d calls of surviving servers changed server; the directors' health state changes:\n%s", splits, s.healthChanges())
	}
	if failed > dead {
		t.Errorf("%d calls failed, more than the %d the dead server had: calls of the survivors failed too; the directors' health state changes:\n%s", failed, dead, s.healthChanges())
	}
	if ok == 0 {
		t.Error("no call succeeded")
	}
	u, err := sipp.UAS{NS: s.l.Reals[2].NS, Addr: s.vip, Dir: s.t.TempDir()}.Start(s.t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.uas[2] = u
	s.t.Cleanup(func() { u.Stop() })
	t0 = time.Now()
	for i := range s.dirs {
		for strings.Contains(s.xvsadm(i, "-Ln", "--health"), "down") {
			if time.Since(t0) > 5*time.Second {
				t.Fatalf("director %d did not take the restarted server up:\n%s", i, s.xvsadm(i, "-Ln", "--health"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// rrAloneSplits: with a scheduler that is not consistent (rr) and nothing
// spreading templates, a call whose datagrams change director (a director
// leaves and comes back) is scheduled again there and split. The control
// for the split count: the same churn that splits no call with mh does
// split calls here.
func (s *soLab) rrAloneSplits(t *testing.T) {
	ok, failed, splits, _ := s.churn(t, 10*time.Second, 5*time.Second, graceful)
	t.Logf("calls across a leave and join (rr, no sync): %d successful, %d failed, %d split", ok, failed, splits)
	if splits == 0 {
		t.Error("no call split with rr and no sync: the split count sees nothing")
	}
}

// rrSyncLeaveAndJoin: with rr, master and backup sync daemons on every
// director and the announce delay, directors leaving gracefully and
// abruptly mid-calls and rejoining split no call whose template had been
// synced: the director a call moves to has its template, and a director
// that comes back has learned the live calls before it takes traffic. A
// call whose datagrams change director within the sync lag of its first
// one can be scheduled twice (the guarantee docs/scale-out.md gives); the
// test counts those apart, by the call's start and the times the router's
// paths changed, and fails on any other split.
func (s *soLab) rrSyncLeaveAndJoin(t *testing.T) {
	ok, failed, splits, res := s.churn(t, 18*time.Second, 0, graceful, abrupt)
	lag := s.syncLagMax(t)
	window := lag + soLagMargin
	young := 0
	for _, id := range s.lastSplit {
		if s.inSyncWindow(id, window) {
			young++
			continue
		}
		t.Errorf("call %s split over real servers, although it started more than %v before every path change", id, window)
	}
	t.Logf("calls across the leaves and joins (rr + sync): %d successful, %d failed, %d split; of them %d started within the sync window (%v: the longest sync lag %v + %v) before a path change",
		ok, failed, splits, young, window.Round(time.Millisecond), lag.Round(time.Millisecond), soLagMargin)
	if failed != 0 {
		t.Logf("failed calls (a split call fails: its BYE reaches a server that does not have it):\n%s", failures(res))
	}
}

// inSyncWindow reports whether the call id (SIPp's "N-PID@ADDR", its UAC's
// N-th call, started about (N-1)/soRate seconds after the UACs) started
// within window before one of the router's path changes (or just after,
// while the change reached the FIB).
func (s *soLab) inSyncWindow(id string, window time.Duration) bool {
	n, err := strconv.Atoi(id[:max(strings.IndexByte(id, '-'), 0)])
	if err != nil {
		return false
	}
	start := s.callsStart.Add(time.Duration(n-1) * time.Second / soRate)
	const slack = 300 * time.Millisecond // sipp's start and pacing
	for _, c := range s.changes {
		if start.After(c.Add(-window-slack)) && start.Before(c.Add(slack)) {
			return true
		}
	}
	return false
}

// syncLagMax returns the longest sync lag any running director has
// measured (xvs_sync_lag_max_seconds on its metrics listener).
func (s *soLab) syncLagMax(t *testing.T) time.Duration {
	var most time.Duration
	for i, d := range s.dirs {
		if d.cmd.ProcessState != nil {
			continue
		}
		for line := range strings.SplitSeq(s.metrics(t, i), "\n") {
			if v, ok := strings.CutPrefix(line, "xvs_sync_lag_max_seconds "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				most = max(most, time.Duration(f*float64(time.Second)))
			}
		}
	}
	return most
}

// metrics returns director i's metrics (the listener is on the loopback
// of its namespace).
func (s *soLab) metrics(t *testing.T, i int) string {
	var body []byte
	err := s.l.Do(s.l.Directors[i].NS, func() error {
		c, err := net.DialTimeout("tcp", soMetrics, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", soMetrics)
		body, err = io.ReadAll(c)
		return err
	})
	if err != nil {
		t.Fatalf("metrics of director %d: %v", i, err)
	}
	return string(body)
}

// drainDirector: xvsadm --drain-director withdraws every VIP of a director
// (the router drops its path, -L --bgp and the metrics say why) while it
// keeps forwarding what still arrives (0 probe datagrams lost);
// --undrain-director announces them again.
func (s *soLab) drainDirector(t *testing.T) {
	p := s.startProbe()
	time.Sleep(200 * time.Millisecond)
	s.xvsadm(0, "--drain-director")
	dropped := s.waitPaths(2, 5*time.Second)
	s.waitPaths6(2, 5*time.Second)
	out := s.xvsadm(0, "-L", "--bgp")
	m := s.metrics(t, 0)
	time.Sleep(300 * time.Millisecond)
	sent, lost := s.finish(p)
	t.Logf("--drain-director: router dropped the path after %v; probe: %d sent, %d lost; -L --bgp:\n%s", dropped.Round(time.Millisecond), sent, lost, out)
	if !strings.Contains(out, "withdrawn") || !strings.Contains(out, "director drained") {
		t.Errorf("-L --bgp of a drained director:\n%s", out)
	}
	if !strings.Contains(m, "xvs_bgp_director_drained 1") || !strings.Contains(m, "xvs_bgp_routes_announced 0") {
		t.Errorf("metrics of a drained director lack xvs_bgp_director_drained 1 and xvs_bgp_routes_announced 0")
	}
	if lost != 0 {
		t.Errorf("the director drain lost %d of %d probe datagrams", lost, sent)
	}
	s.xvsadm(0, "--undrain-director")
	back := s.waitPaths(3, 5*time.Second)
	s.waitPaths6(3, 5*time.Second)
	t.Logf("--undrain-director: path back after %v", back.Round(time.Millisecond))
}

// healthChanges returns the directors' "health state change" log lines.
func (s *soLab) healthChanges() string {
	var b strings.Builder
	for i, d := range s.dirs {
		for line := range strings.SplitSeq(d.stderr.String(), "\n") {
			if strings.Contains(line, "health state change") {
				fmt.Fprintf(&b, "director %d: %s\n", i, line)
			}
		}
	}
	return b.String()
}
