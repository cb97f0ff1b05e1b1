// Package ha builds a high-availability SIP farm in a network-namespace lab
// with real components, for the failover test (e2e) and the live demo: two
// directors on the server LAN, each running `xvs run` with master and
// backup sync daemons and keepalived (VRRP) moving the next hop the router
// sends the VIPs to; three real servers running SIPp UAS behind them (direct
// routing); and, at the real servers, a counter of every SIP request by
// Call-ID and method and of a probe stream by the director that forwarded
// it, so that a split call and the failover time are measured where they
// happen, independently of xvs and SIPp.
//
//	client ─ router ──(VIPs via 10.77.1.100)── server LAN ─┬─ director A (balancer)  10.77.1.2  xvs + keepalived, priority 150
//	                                                        ├─ director B (balancer2) 10.77.1.3  xvs + keepalived, priority 100
//	                                                        └─ real0..2 (SIPp UAS, VIP on lo)
//
// keepalived holds 10.77.1.100 on the VRRP master; its track script asks
// xvs (xvsadm -L) every second, so a dead or stopped xvs takes its
// director out of VRRP. Both directors always run a master and a backup
// sync daemon (active-active), so each learns every call of the other.
package ha

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
)

// The farm's addresses and ports.
var (
	// VRRPAddr is the address keepalived moves: the router's next hop
	// for the VIPs.
	VRRPAddr = netip.MustParseAddr("10.77.1.100")
)

const (
	// SIPPort is the SIP service (SIPp calls): rr, Call-ID persistence,
	// one-packet scheduling, direct routing.
	SIPPort = 5060
	// ProbePort is the probe stream's service (no persistence): its
	// datagrams show which director forwarded them when.
	ProbePort = 5070
	// LagPort is the service the sync-lag load of new calls goes to.
	LagPort = 5080
	// SyncID is the sync daemons' syncid.
	SyncID = 52
	// VRID is the VRRP instance's virtual router id.
	VRID = 52
	// metricsAddr is each director's metrics endpoint, on its own
	// namespace's loopback.
	metricsAddr = "127.0.0.1:9469"
	// startLimit bounds a process's start.
	startLimit = 20 * time.Second
	// killLimit bounds the wait for killed processes to die.
	killLimit = 5 * time.Second
)

// Timers are the VRRP and sync timers of the farm.
type Timers struct {
	AdvertInt     int // VRRP advert_int, seconds
	CheckInterval int // track script interval, seconds (fall 1, rise 1)
	PreemptDelay  int // preempt_delay of director A, seconds
	RefreshPeriod int // sync_refresh_period, seconds
}

// DefaultTimers are the farm's defaults: 1 s adverts and checks; the
// refresh period short so that a run stays short, and A's preempt delay
// longer than it, so that A has learned every call from B before it takes
// the traffic back.
var DefaultTimers = Timers{AdvertInt: 1, CheckInterval: 1, PreemptDelay: 4, RefreshPeriod: 2}

// Options configure a farm.
type Options struct {
	XVS, XVSAdm string // the binaries
	Mode        string // xvs run --mode ("afxdp" by default)
	XDPMode     string // xvs run --xdp-mode ("generic" by default: veth)
	Dir         string // working directory (configs, logs); it must exist
	Prefix      string // lab namespace prefix ("" = lab's)
	Timers      Timers // zero = DefaultTimers
}

// Farm is a running HA farm.
type Farm struct {
	Lab       *lab.Lab
	Directors [2]*Director // A (priority 150) and B (priority 100)
	Counter   *Counter
	opts      Options
	uas       []*sipp.Server
	probeStop chan struct{}
	probeDone chan struct{}
}

// ErrNoTool reports a missing program the farm needs.
var ErrNoTool = errors.New("ha: required program not found")

// Check reports what the farm needs and is missing.
func Check() error {
	if err := lab.Available(); err != nil {
		return err
	}
	if _, err := sipp.Path(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoTool, err)
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		return fmt.Errorf("%w: keepalived (Debian package keepalived)", ErrNoTool)
	}
	return nil
}

// New builds the lab, starts the real servers, the counters, the probe
// stream and both directors, and waits until director A is the VRRP
// master. On error everything started is stopped.
func New(ctx context.Context, o Options) (_ *Farm, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if o.Mode == "" {
		o.Mode = "afxdp"
	}
	if o.XDPMode == "" && o.Mode == "afxdp" {
		o.XDPMode = "generic"
	}
	if o.Timers == (Timers{}) {
		o.Timers = DefaultTimers
	}
	l, err := lab.New(lab.Spec{Prefix: o.Prefix, Clients: 1, RealServers: 3, Balancers: 2})
	if err != nil {
		return nil, err
	}
	f := &Farm{Lab: l, opts: o, probeStop: make(chan struct{}), probeDone: make(chan struct{})}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if err := l.UseDirectRouting(); err != nil {
		return nil, err
	}
	if err := l.RouteVIPsVia(VRRPAddr, netip.Addr{}); err != nil {
		return nil, err
	}
	if f.Counter, err = newCounter(l); err != nil {
		return nil, err
	}
	for _, r := range l.Reals {
		dir := filepath.Join(o.Dir, r.Role)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		s, err := sipp.UAS{NS: r.NS, Addr: netip.AddrPortFrom(l.VIP4, SIPPort), Dir: dir, Dialog: true}.Start(ctx)
		if err != nil {
			return nil, err
		}
		f.uas = append(f.uas, s)
	}
	rules := f.rules()
	for i, name := range []string{"A", "B"} {
		d, err := newDirector(f, name, l.Balancers[i], []int{150, 100}[i], rules)
		if err != nil {
			return nil, err
		}
		f.Directors[i] = d
		if err := d.StartXVS(); err != nil {
			return nil, err
		}
	}
	go f.probe()
	// A first, so that it is master from the start (both start as BACKUP;
	// the first to time out its master-down timer takes the address).
	if err := f.Directors[0].StartKeepalived(); err != nil {
		return nil, err
	}
	if err := f.WaitMaster(f.Directors[0], 15*time.Second); err != nil {
		return nil, err
	}
	if err := f.Directors[1].StartKeepalived(); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(2*o.Timers.AdvertInt) * time.Second) // B settles as BACKUP
	if !f.Directors[0].Master() || f.Directors[1].Master() {
		return nil, fmt.Errorf("ha: A should be the VRRP master, B its backup:\n%s\n%s", f.Directors[0].Logs(), f.Directors[1].Logs())
	}
	return f, nil
}

// rules are both directors' services: SIP calls, the probe stream and the
// sync-lag load, direct routing to the three real servers.
func (f *Farm) rules() string {
	var b strings.Builder
	vip := f.Lab.VIP4
	for _, svc := range []struct {
		port  int
		flags string
	}{{SIPPort, "-s rr -p 60 -M 0.0.0.0 --pe sip -o"}, {ProbePort, "-s rr -o"}, {LagPort, "-s rr -p 60 -M 0.0.0.0 --pe sip -o"}} {
		fmt.Fprintf(&b, "-A -u %v:%d %s\n", vip, svc.port, svc.flags)
		for _, r := range f.Lab.Reals {
			fmt.Fprintf(&b, "-a -u %v:%d -r %v:%d -g -w 1\n", vip, svc.port, r.Addr4, svc.port)
		}
	}
	return b.String()
}

// Close stops everything and removes the lab.
func (f *Farm) Close() {
	select {
	case <-f.probeStop:
	default:
		close(f.probeStop)
	}
	for _, d := range f.Directors {
		if d != nil {
			d.stopAll()
		}
	}
	for _, s := range f.uas {
		s.Stop()
	}
	if f.Counter != nil {
		f.Counter.close()
	}
	f.Lab.Close()
}

// UAC places a batch of long dialog calls from the client: Calls calls at
// Rate a second, each with an INFO after Pause and a BYE after another.
func (f *Farm) UAC(ctx context.Context, calls, rate int, pause time.Duration, dir string) (sipp.Result, error) {
	c := f.Lab.Clients[0]
	return sipp.UAC{NS: c.NS, Local: netip.AddrPortFrom(c.Addr4, SIPPort), Target: netip.AddrPortFrom(f.Lab.VIP4, SIPPort),
		Calls: calls, Rate: rate, Pause: pause, Dialog: true, Dir: dir}.Run(ctx)
}

// probeInterval is the probe stream's period: the resolution of the
// failover time.
const probeInterval = 5 * time.Millisecond

// probe sends a datagram to the probe service every probeInterval.
func (f *Farm) probe() {
	defer close(f.probeDone)
	c := f.Lab.Clients[0]
	conn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 0).String())
	if err != nil {
		return
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(f.Lab.VIP4, ProbePort)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-f.probeStop:
			return
		case <-t.C:
		}
		conn.WriteToUDPAddrPort(fmt.Appendf(nil, "probe %d", n), dst)
	}
}

// NewCalls sends INVITEs of new Call-IDs to the sync-lag service at rate
// a second for d, from the client (no one answers them: each creates a
// template on the active director, which syncs it). It returns how many it
// sent.
func (f *Farm) NewCalls(rate int, d time.Duration) (int, error) {
	c := f.Lab.Clients[0]
	conn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 0).String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(f.Lab.VIP4, LagPort)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	n, total := 0, int(int64(rate)*int64(d)/int64(time.Second))
	for start := time.Now(); n < total; {
		<-t.C
		// As many as the rate asks by now: a late tick catches up.
		for due := min(int(int64(rate)*int64(time.Since(start))/int64(time.Second)), total); n < due; n++ {
			msg := invite(fmt.Sprintf("lag-%d-%d@ha.xvs.example", os.Getpid(), n), c.Addr4, f.Lab.VIP4)
			if _, err := conn.WriteToUDPAddrPort(msg, dst); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func invite(callID string, from, to netip.Addr) []byte {
	return []byte("INVITE sip:service@" + to.String() + ":5080 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + from.String() + ":5080;branch=z9hG4bK-" + callID + "\r\n" +
		"From: <sip:lag@" + from.String() + ">;tag=1\r\n" +
		"To: <sip:service@" + to.String() + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

// WaitMaster waits until d holds the VRRP address and the other director
// does not.
func (f *Farm) WaitMaster(d *Director, limit time.Duration) error {
	other := f.Directors[0]
	if other == d {
		other = f.Directors[1]
	}
	return f.wait(d, other, limit)
}

// WaitTakeOver waits until d holds the VRRP address, whatever the other
// director has: one whose keepalived was killed keeps the address
// configured (as a crashed host would) until its keepalived starts again,
// but nothing announces it any more, and the router follows d's
// gratuitous ARPs.
func (f *Farm) WaitTakeOver(d *Director, limit time.Duration) error { return f.wait(d, nil, limit) }

func (f *Farm) wait(d, other *Director, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !d.Master() || (other != nil && other.Master()) {
		if time.Now().After(deadline) {
			var logs string
			for _, x := range f.Directors {
				if x != nil {
					logs += x.Logs()
				}
			}
			return fmt.Errorf("ha: %s did not become the only VRRP master within %v\n%s", d.Name, limit, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Director is one director: its namespace, xvs and keepalived.
type Director struct {
	Name     string
	Host     lab.Host
	MAC      [6]byte
	Priority int
	Sock     string // xvs's control socket

	farm    *Farm
	dir     string
	rules   string
	kaConf  string
	mu      sync.Mutex
	xvs, ka *proc
}

func newDirector(f *Farm, name string, h lab.Host, prio int, rules string) (*Director, error) {
	dir := filepath.Join(f.opts.Dir, "director-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mac, err := lab.MAC(h.NS, h.Iface)
	if err != nil {
		return nil, err
	}
	d := &Director{Name: name, Host: h, MAC: mac, Priority: prio, Sock: filepath.Join(dir, "xvs.sock"), farm: f, dir: dir}
	d.rules = filepath.Join(dir, "rules")
	if err := os.WriteFile(d.rules, []byte(rules), 0o600); err != nil {
		return nil, err
	}
	// keepalived's script security wants a script only root can change.
	track := filepath.Join(dir, "xvs-track.sh")
	if err := os.WriteFile(track, []byte("#!/bin/sh\n# xvs answers its control socket: alive and not stuck\nexec "+
		f.opts.XVSAdm+" --control "+d.Sock+" -L -n >/dev/null 2>&1\n"), 0o755); err != nil {
		return nil, err
	}
	d.kaConf = filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(d.kaConf, []byte(KeepalivedConf(name, prio, f.opts.Timers, track, name == "A")), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// KeepalivedConf is a director's keepalived.conf: VRRP for the next-hop
// address, tracking xvs. preempt makes it take the address back (after
// preempt_delay) when it has the higher priority.
func KeepalivedConf(name string, priority int, t Timers, track string, preempt bool) string {
	pre := "    nopreempt\n"
	if preempt {
		pre = fmt.Sprintf("    preempt_delay %d\n", t.PreemptDelay)
	}
	return fmt.Sprintf(`! xvs HA director %[1]s: VRRP moves the router's next hop for the VIPs
global_defs {
    router_id xvs_ha_%[1]s
    enable_script_security
    script_user root
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
}

vrrp_script chk_xvs {
    script "%[2]s"
    interval %[3]d
    timeout %[3]d
    fall 1
    rise 1
}

vrrp_instance VI_XVS {
    state BACKUP
    interface eth0
    virtual_router_id %[4]d
    priority %[5]d
    advert_int %[6]d
%[7]s    virtual_ipaddress {
        %[8]s/24 dev eth0
    }
    track_script {
        chk_xvs
    }
}
`, name, track, t.CheckInterval, VRID, priority, t.AdvertInt, pre, VRRPAddr)
}

// proc is a process in a namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(ns string, name string, args ...string) (*proc, error) {
	p := &proc{out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = lab.Command(context.Background(), ns, name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p, nil
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err
		return false
	default:
		return true
	}
}

// kill kills the process with SIGKILL and waits for it.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// term stops the process with SIGTERM, then SIGKILL after limit.
func (p *proc) term(limit time.Duration) {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(limit):
		p.kill()
	}
}

// StartXVS starts xvs on the director with both sync daemons and waits
// until it serves.
func (d *Director) StartXVS() error {
	o := d.farm.opts
	args := []string{"run", "--iface", lab.HostIface, "--rules", d.rules, "--mode", o.Mode,
		"--control", d.Sock, "--metrics", metricsAddr, "--templates", "65536", "--conns", "65536",
		"--start-daemon", "master", "--start-daemon", "backup", "--syncid", strconv.Itoa(SyncID),
		"--sysctl", "sync_refresh_period=" + strconv.Itoa(o.Timers.RefreshPeriod)}
	if o.XDPMode != "" {
		args = append(args, "--xdp-mode", o.XDPMode)
	}
	p, err := start(d.Host.NS, o.XVS, args...)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.xvs = p
	d.mu.Unlock()
	deadline := time.Now().Add(startLimit)
	for !strings.Contains(p.out.String(), "data plane started") {
		if !p.running() || time.Now().After(deadline) {
			return fmt.Errorf("ha: xvs on %s did not start:\n%s", d.Name, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// StartKeepalived starts keepalived's VRRP on the director.
func (d *Director) StartKeepalived() error {
	run := filepath.Join(d.dir, "run")
	os.MkdirAll(run, 0o700)
	// The pid files of a keepalived that was killed: keepalived refuses to
	// start ("daemon is already running") while a pid in them names a
	// process, which a killed child not yet reaped, or a reused pid, does.
	// The run directory is this director's alone.
	for _, f := range []string{"keepalived.pid", "vrrp.pid", "checkers.pid"} {
		os.Remove(filepath.Join(run, f))
	}
	p, err := start(d.Host.NS, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
		"--use-file", d.kaConf, "--pid", filepath.Join(run, "keepalived.pid"), "--vrrp_pid", filepath.Join(run, "vrrp.pid"),
		"--checkers_pid", filepath.Join(run, "checkers.pid"))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.ka = p
	d.mu.Unlock()
	return nil
}

// KillXVS kills xvs with SIGKILL: a crashed data plane.
func (d *Director) KillXVS() {
	d.mu.Lock()
	p := d.xvs
	d.mu.Unlock()
	p.kill()
}

// KillAll kills every process in the director's namespace with SIGKILL:
// xvs, keepalived and its children, as if the director died (its
// addresses stay configured, as a crashed host's would until it reboots).
func (d *Director) KillAll() error {
	pids, err := exec.Command("ip", "netns", "pids", d.Host.NS).Output()
	if err != nil {
		return fmt.Errorf("ha: ip netns pids %s: %w", d.Host.NS, err)
	}
	var killed []int
	for _, s := range strings.Fields(string(pids)) {
		if pid, err := strconv.Atoi(s); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
		}
	}
	// Wait for them all to be dead, keepalived's VRRP child (not ours to
	// wait for) included, before anything is restarted.
	for deadline := time.Now().Add(killLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !slices.ContainsFunc(killed, alive) {
			break
		}
	}
	d.mu.Lock()
	x, k := d.xvs, d.ka
	d.mu.Unlock()
	for _, p := range []*proc{x, k} {
		if p != nil {
			err := <-p.done
			p.done <- err
		}
	}
	return nil
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func (d *Director) stopAll() {
	d.mu.Lock()
	x, k := d.xvs, d.ka
	d.mu.Unlock()
	if k != nil {
		k.term(10 * time.Second)
	}
	if x != nil {
		x.term(10 * time.Second)
	}
}

// Master reports whether the director holds the VRRP address.
func (d *Director) Master() bool {
	out, err := lab.Exec(d.Host.NS, "ip", "-o", "-4", "addr", "show", "dev", lab.HostIface)
	return err == nil && strings.Contains(out, " "+VRRPAddr.String()+"/")
}

// Logs returns xvs's and keepalived's output.
func (d *Director) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, p := range []struct {
		name string
		p    *proc
	}{{"xvs", d.xvs}, {"keepalived", d.ka}} {
		if p.p != nil {
			fmt.Fprintf(&b, "---- %s %s ----\n%s\n", d.Name, p.name, tailString(p.p.out.String(), 6000))
		}
	}
	return b.String()
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Admin runs xvsadm against the director's xvs.
func (d *Director) Admin(args ...string) (string, error) {
	out, err := exec.Command(d.farm.opts.XVSAdm, append([]string{"--control", d.Sock}, args...)...).CombinedOutput()
	return string(out), err
}

// Metrics scrapes the director's metrics: samples by name and labels
// (`name{k="v",…}` as Prometheus writes them).
func (d *Director) Metrics() (map[string]float64, error) {
	var conn net.Conn
	if err := lab.Do(d.Host.NS, func() (err error) {
		conn, err = net.DialTimeout("tcp", metricsAddr, 5*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+metricsAddr+"/metrics", nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// Lag is the sync lag a backup measured, from its metrics
// (xvs_sync_lag_seconds).
type Lag struct {
	Count  uint64
	Median time.Duration // upper bound of the bucket holding the median
	P99    time.Duration // same for the 99th percentile
	Mean   time.Duration
	Max    time.Duration
}

// SyncLag reads the director's sync lag histogram, minus before's counts
// (from an earlier SyncLagCounts) when given.
func SyncLag(m map[string]float64, before map[float64]float64) Lag {
	buckets := map[float64]float64{}
	for k, v := range m {
		if le, ok := strings.CutPrefix(k, `xvs_sync_lag_seconds_bucket{le="`); ok {
			b, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
			if err == nil {
				buckets[b] = v - before[b]
			}
		}
	}
	var les []float64
	for b := range buckets {
		les = append(les, b)
	}
	sort.Float64s(les)
	n := m["xvs_sync_lag_seconds_count"] - before[-1]
	l := Lag{Count: uint64(n), Max: time.Duration(m["xvs_sync_lag_max_seconds"] * 1e9)}
	if n > 0 {
		l.Mean = time.Duration((m["xvs_sync_lag_seconds_sum"] - before[-2]) / n * 1e9)
	}
	q := func(p float64) time.Duration {
		for _, b := range les {
			if buckets[b] >= p*n {
				if b > 1e6 { // +Inf
					return l.Max
				}
				return min(time.Duration(b*1e9), l.Max)
			}
		}
		return l.Max
	}
	if n > 0 {
		l.Median, l.P99 = q(0.5), q(0.99)
	}
	return l
}

// SyncLagCounts keeps the histogram's cumulative counts for a later
// SyncLag (the count under -1, the sum under -2).
func SyncLagCounts(m map[string]float64) map[float64]float64 {
	out := map[float64]float64{-1: m["xvs_sync_lag_seconds_count"], -2: m["xvs_sync_lag_seconds_sum"]}
	for k, v := range m {
		if le, ok := strings.CutPrefix(k, `xvs_sync_lag_seconds_bucket{le="`); ok {
			if b, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64); err == nil {
				out[b] = v
			}
		}
	}
	return out
}
