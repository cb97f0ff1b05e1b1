package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
)

// Candidate is one data path under test.
type Candidate struct {
	Name string `json:"name"`
	// Kind is "xvs", "naive-proxy", "go-floor", "c-floor", "kernel" or
	// "kamailio".
	Kind string `json:"kind"`
	// Backend and XDPMode are xvs run's --mode and --xdp-mode.
	Backend string `json:"backend,omitempty"`
	XDPMode string `json:"xdp_mode,omitempty"`
	// Variant names a variant of xvs (Options.Variants): another xvs
	// binary (Binary), and arguments added to xvs run's (Args).
	Variant string   `json:"variant,omitempty"`
	Binary  string   `json:"binary,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	// DR selects direct routing (-g) over NAT (-m) for xvs; the kernel
	// ceiling is always routing, the proxies always NAT-like.
	DR bool `json:"direct_routing"`
	// Queues is the balancer interface's RX queue count (veth channels)
	// and so xvs's worker count.
	Queues int `json:"queues"`
	// Ceiling marks the lab ceiling every candidate is compared with.
	Ceiling bool `json:"ceiling,omitempty"`
	// Baseline marks the no-balancer run: the datagrams are dropped where
	// they reach the balancer's interface; its machine CPU per datagram is
	// subtracted from every candidate's.
	Baseline bool `json:"baseline,omitempty"`
}

// ErrSkip wraps the reason a candidate cannot run on this machine.
var ErrSkip = errors.New("skipped")

// env is what candidates need to start.
type env struct {
	lab      *lab.Lab
	xvs      string
	self     string
	kamailio string
	dir      string
	macs     [][6]byte // the real servers', in lab order
	cg       *cgroup   // the candidates' processes start in it (nil: none)
	kam      KamailioOptions
	// cfloor is the C floor's binary, or why it could not be built.
	cfloor    string
	cfloorErr error
}

// running is a started candidate.
type running struct {
	stop func() error
	// softirq: the candidate has no process; its CPU is the machine's
	// softirq time.
	softirq bool
	log     func() string
	// metrics: the candidate is xvs, serving its metrics at
	// xvsMetricsAddr in the balancer namespace.
	metrics bool
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

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func (c Candidate) start(ctx context.Context, e env) (*running, error) {
	l := e.lab
	var err error
	if c.DR {
		err = l.UseDirectRouting()
	} else {
		err = l.UseNAT()
	}
	if err != nil {
		return nil, err
	}
	if err := setQueues(l, max(c.Queues, 1)); err != nil {
		return nil, err
	}
	switch c.Kind {
	case "xvs":
		return c.startXVS(ctx, e)
	case "naive-proxy":
		vip := netip.PrefixFrom(l.VIP4, 32).String()
		if out, err := l.Output(l.Balancer.NS, "ip", "addr", "replace", vip, "dev", "lo"); err != nil {
			return nil, fmt.Errorf("perf: VIP on the balancer: %v %s", err, out)
		}
		r, err := c.startProcess(ctx, e, "ready", e.self, nil, []string{ProxyEnv + "=" + netip.AddrPortFrom(l.VIP4, SIPPort).String() + " " + realList(l)})
		if err != nil {
			l.Output(l.Balancer.NS, "ip", "addr", "del", vip, "dev", "lo")
			return nil, err
		}
		inner := r.stop
		r.stop = func() error {
			err := inner()
			l.Output(l.Balancer.NS, "ip", "addr", "del", vip, "dev", "lo")
			return err
		}
		return r, nil
	case "go-floor":
		return c.startProcess(ctx, e, "ready", e.self, nil, append([]string{FloorEnv + "=" + lab.HostIface + " " +
			netip.AddrPortFrom(l.VIP4, SIPPort).String() + " " + strings.Join(macList(e.macs), ",")}, c.Env...))
	case "c-floor":
		if e.cfloorErr != nil {
			return nil, e.cfloorErr
		}
		return c.startProcess(ctx, e, "ready", e.cfloor, []string{lab.HostIface, l.VIP4.String(), strconv.Itoa(SIPPort), strings.Join(macList(e.macs), ",")}, nil)
	case "kamailio":
		return c.startKamailio(ctx, e)
	case "kernel":
		return c.startKernel(e)
	case "baseline":
		return &running{stop: func() error { return nil }, softirq: true, log: func() string { return "" }}, nil
	}
	return nil, fmt.Errorf("perf: unknown candidate kind %q", c.Kind)
}

func macList(macs [][6]byte) []string {
	var s []string
	for _, m := range macs {
		s = append(s, net.HardwareAddr(m[:]).String())
	}
	return s
}

func realList(l *lab.Lab) string {
	var s []string
	for _, r := range l.Reals {
		s = append(s, netip.AddrPortFrom(r.Addr4, SIPPort).String())
	}
	return strings.Join(s, ",")
}

// setQueues sets the RX/TX channel count of the balancer's veth and of its
// switch-side peer (which picks the balancer's RX queue by flow hash).
func setQueues(l *lab.Lab, q int) error {
	for _, x := range [][2]string{{l.Balancer.NS, l.Balancer.Iface}, {l.Switch, l.Balancer.Port}} {
		if out, err := l.Output(x[0], "ethtool", "-L", x[1], "rx", strconv.Itoa(q), "tx", strconv.Itoa(q)); err != nil {
			if q == 1 {
				continue // already one queue, or no ethtool: nothing to undo
			}
			return fmt.Errorf("%w: %d queues on veth: %v %s", ErrSkip, q, err, out)
		}
	}
	return nil
}

func (c Candidate) startXVS(ctx context.Context, e env) (*running, error) {
	l := e.lab
	fwd := "-m"
	if c.DR {
		fwd = "-g"
	}
	vip := netip.AddrPortFrom(l.VIP4, SIPPort)
	var rules strings.Builder
	fmt.Fprintf(&rules, "-A -u %v -s mh -p 60 -M 0.0.0.0 --pe sip -o\n", vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&rules, "-a -u %v -r %v %s -w 1\n", vip, netip.AddrPortFrom(r.Addr4, SIPPort), fwd)
	}
	rf := filepath.Join(e.dir, "bench.rules")
	if err := os.WriteFile(rf, []byte(rules.String()), 0o600); err != nil {
		return nil, err
	}
	args := []string{"run", "--iface", lab.HostIface, "--rules", rf, "--mode", c.Backend,
		"--control", filepath.Join(e.dir, "xvs.sock"), "--metrics", xvsMetricsAddr, "--templates", "65536", "--conns", "65536"}
	if c.XDPMode != "" {
		args = append(args, "--xdp-mode", c.XDPMode)
	}
	bin := e.xvs
	if c.Binary != "" {
		bin = c.Binary
	}
	r, err := c.startProcess(ctx, e, "mode=", bin, append(args, c.Args...), c.Env)
	if r != nil {
		r.metrics = true
	}
	return r, err
}

// startProcess starts bin in the balancer namespace and waits for ready on
// its standard error.
func (c Candidate) startProcess(ctx context.Context, e env, ready, bin string, args, envv []string) (*running, error) {
	var out syncBuffer
	cmd := lab.Command(ctx, e.lab.Balancer.NS, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), envv...)
	if e.cg != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(e.cg.fd.Fd())}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), ready) {
		select {
		case err := <-done:
			s := out.String()
			if strings.Contains(s, "not supported") || strings.Contains(s, "no such data-plane backend") {
				return nil, fmt.Errorf("%w: %s", ErrSkip, firstLines(s, 3))
			}
			return nil, fmt.Errorf("perf: %s exited at start: %v: %s", c.Name, err, firstLines(s, 5))
		case <-deadline:
			stop()
			return nil, fmt.Errorf("perf: %s not ready within 20 s: %s", c.Name, firstLines(out.String(), 5))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &running{stop: stop, log: out.String}, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func firstLines(s string, n int) string {
	ls := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(ls[:min(n, len(ls))], " | ")
}

// startKernel makes the balancer namespace a plain IP router for the VIP:
// forwarding on, the VIP routed over all real servers (ECMP, layer-4
// hash, so a call — one source port — stays on one server), with the real
// servers set up for direct routing (VIP on loopback). No user space, no
// NAT, no conntrack: the kernel's forwarding path is the ceiling of what
// the lab can carry through the balancer.
func (c Candidate) startKernel(e env) (*running, error) {
	l := e.lab
	ns := l.Balancer.NS
	route := []string{"route", "replace", netip.PrefixFrom(l.VIP4, 32).String()}
	for _, r := range l.Reals {
		route = append(route, "nexthop", "via", r.Addr4.String(), "dev", l.Balancer.Iface)
	}
	set := func(vals map[string]string) error {
		return l.Do(ns, func() error {
			for k, v := range vals {
				if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
	}
	stop := func() error {
		_, _ = l.Output(ns, "ip", "route", "del", netip.PrefixFrom(l.VIP4, 32).String())
		return set(map[string]string{"net/ipv4/ip_forward": "0"})
	}
	if err := set(map[string]string{
		"net/ipv4/ip_forward":                  "1",
		"net/ipv4/fib_multipath_hash_policy":   "1",
		"net/ipv4/conf/all/send_redirects":     "0",
		"net/ipv4/conf/eth0/send_redirects":    "0",
		"net/ipv4/conf/default/send_redirects": "0",
	}); err != nil {
		stop()
		return nil, err
	}
	if out, err := l.Output(ns, "ip", route...); err != nil {
		stop()
		return nil, fmt.Errorf("perf: ceiling route: %v %s", err, out)
	}
	return &running{stop: stop, softirq: true, log: func() string { return "" }}, nil
}
