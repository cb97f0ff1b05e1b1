// Package demo runs the xvs demonstration: a SIP proxy farm built in network
// namespaces (a client, a router, the balancer and three real servers), the
// real xvs binary serving a SIP service on AF_XDP (or the best data plane the
// machine has), real SIP user agents (SIPp) placing calls from one source
// ip:port, and the listings an operator would look at. Everything is torn
// down at the end, even on failure.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
)

// Options configure the demo.
type Options struct {
	XVS, XVSAdm string // the binaries
	Mode        string // xvs run --mode (auto by default)
	Calls       int    // calls to place (default 120)
	Rate        int    // calls per second (default 60)
	Out         io.Writer
}

// ErrCannotRun wraps the reason the live demo cannot run on this machine.
var ErrCannotRun = errors.New("the live demo cannot run here")

// ErrInterrupted reports a demo stopped by its context (xvslab demo: Ctrl-C
// or SIGTERM) before it finished; the lab was torn down.
var ErrInterrupted = errors.New("demo interrupted")

// Check reports what the live demo needs and is missing.
func Check() error {
	if err := lab.Available(); err != nil {
		return fmt.Errorf("%w: %w", ErrCannotRun, err)
	}
	if _, err := sipp.Path(); err != nil {
		return fmt.Errorf("%w: SIPp is not installed (Debian package sip-tester): %v", ErrCannotRun, err)
	}
	return nil
}

const sipPort = 5060

// Run runs the demo. When ctx ends first it stops, tears everything down
// and returns ErrInterrupted.
func Run(ctx context.Context, o Options) (err error) {
	if err := Check(); err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ErrInterrupted, context.Cause(ctx))
		}
	}()
	if o.Mode == "" {
		o.Mode = "auto"
	}
	if o.Calls == 0 {
		o.Calls = 120
	}
	if o.Rate == 0 {
		o.Rate = 60
	}
	w := o.Out
	dir, err := os.MkdirTemp("", "xvs-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	say(w, "building the lab: client, router, balancer and 3 real servers in network namespaces")
	l, err := lab.New(lab.Spec{Prefix: "xvsdemo", Clients: 1, RealServers: 3})
	if err != nil {
		return err
	}
	defer func() {
		say(w, "tearing the lab down")
		l.Close()
	}()
	defer func() {
		if ctx.Err() != nil {
			say(w, "interrupted (%v): stopping xvs and SIPp", context.Cause(ctx))
		}
	}()
	vip := netip.AddrPortFrom(l.VIP4, sipPort)
	var rules strings.Builder
	fmt.Fprintf(&rules, "-A -u %v -s rr -p 60 -M 0.0.0.0 --pe sip -o\n", vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&rules, "-a -u %v -r %v -m -w 1\n", vip, netip.AddrPortFrom(r.Addr4, sipPort))
	}
	rulesFile := filepath.Join(dir, "sip.rules")
	if err := os.WriteFile(rulesFile, []byte(rules.String()), 0o600); err != nil {
		return err
	}
	say(w, "rules (ipvsadm -S format):")
	indent(w, rules.String())

	// SIP agents on the real servers, answering calls and logging Call-IDs.
	var agents []*sipp.Server
	for i, r := range l.Reals {
		d := filepath.Join(dir, fmt.Sprintf("uas%d", i))
		os.MkdirAll(d, 0o700)
		s, err := sipp.UAS{NS: r.NS, Addr: netip.AddrPortFrom(r.Addr4, sipPort), Dir: d}.Start(ctx)
		if err != nil {
			return err
		}
		defer s.Stop()
		agents = append(agents, s)
	}

	sock := filepath.Join(dir, "xvs.sock")
	var logBuf syncBuffer
	xvs := l.Command(ctx, l.Balancer.NS, o.XVS, "run", "--iface", lab.HostIface, "--rules", rulesFile, "--mode", o.Mode,
		"--control", sock, "--metrics", "", "--templates", "65536", "--conns", "65536")
	xvs.Stdout, xvs.Stderr = &logBuf, &logBuf
	say(w, "starting: xvs run --iface %s --rules sip.rules --mode %s (in the balancer namespace)", lab.HostIface, o.Mode)
	if err := xvs.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- xvs.Wait() }()
	defer func() {
		xvs.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			xvs.Process.Kill()
		}
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(logBuf.String(), "data plane started") {
		select {
		case err := <-exited:
			return fmt.Errorf("xvs run exited: %v\n%s", err, logBuf.String())
		case <-deadline:
			return fmt.Errorf("xvs run did not start within 20 s:\n%s", logBuf.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	indent(w, pick(logBuf.String(), "data plane started"))

	client := l.Clients[0]
	src := netip.AddrPortFrom(client.Addr4, sipPort)
	say(w, "placing %d calls with SIPp from ONE source %v to the VIP %v (%d calls/s)", o.Calls, src, vip, o.Rate)
	res, err := sipp.UAC{NS: client.NS, Local: src, Target: vip, Calls: o.Calls, Rate: o.Rate, Pause: 200 * time.Millisecond,
		Dir: dir}.Run(ctx)
	if err != nil {
		return err
	}
	indent(w, fmt.Sprintf("SIPp: %d calls successful, %d failed\n", res.Successful, res.Failed))

	adm := func(args ...string) string {
		cmd := l.Command(ctx, l.Balancer.NS, o.XVSAdm, append([]string{"--control", sock}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s(xvsadm: %v)\n", out, err)
		}
		return string(out)
	}
	say(w, "xvsadm -Ln")
	indent(w, adm("-Ln"))
	say(w, "xvsadm -Ln --persistent-conn (PersistConn: live templates, i.e. live calls, per real server)")
	indent(w, adm("-Ln", "--persistent-conn"))
	say(w, "xvsadm -Ln --stats (under -o every datagram counts as a connection, as in IPVS)")
	indent(w, adm("-Ln", "--stats"))
	conns := adm("-Lcn", "--persistent-conn")
	lines := strings.SplitAfter(conns, "\n")
	say(w, "xvsadm -Lcn --persistent-conn (first 8 of %d templates: one per Call-ID)", max(0, len(lines)-3))
	indent(w, strings.Join(lines[:min(len(lines), 10)], ""))

	say(w, "calls per real server, from the real servers' own SIP agents")
	owners := map[string][]string{}
	for i, a := range agents {
		ids, err := a.CallIDs()
		if err != nil {
			return err
		}
		indent(w, fmt.Sprintf("%-6s %-16v %4d calls\n", l.Reals[i].Role, l.Reals[i].Addr4, len(ids)))
		for id := range ids {
			owners[id] = append(owners[id], l.Reals[i].Role)
		}
	}
	var split []string
	for id, rs := range owners {
		if len(rs) > 1 {
			split = append(split, id)
		}
	}
	sort.Strings(split)
	indent(w, fmt.Sprintf("%d Call-IDs seen, %d of them on more than one real server\n", len(owners), len(split)))
	indent(w, "(all calls share one 5-tuple: a 5-tuple balancer would have sent every one to the same server)\n")
	if res.Failed != 0 || len(split) != 0 || len(owners) != o.Calls {
		return fmt.Errorf("demo check failed: %d failed calls, %d Call-IDs split, %d seen of %d", res.Failed, len(split), len(owners), o.Calls)
	}
	return nil
}

func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "== "+format+"\n", args...)
}

func indent(w io.Writer, s string) {
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			fmt.Fprint(w, "   "+l)
		}
	}
	if !strings.HasSuffix(s, "\n") && s != "" {
		fmt.Fprintln(w)
	}
}

func pick(log, substr string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			return l + "\n"
		}
	}
	return ""
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
