package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

var admBuild struct {
	once sync.Once
	bin  string
	err  error
}

// xvsadmBinary builds ./cmd/xvsadm once per test binary, beside xvs.
func xvsadmBinary(t *testing.T) string {
	t.Helper()
	xvsBinary(t) // creates build.dir
	admBuild.once.Do(func() {
		admBuild.bin, admBuild.err = testenv.Build(build.dir, "xvsadm")
	})
	if admBuild.err != nil {
		t.Fatal(admBuild.err)
	}
	return admBuild.bin
}

const (
	ctlMetrics   = "127.0.0.1:9469" // the balancer namespace's own loopback
	ctlConns     = 65536            // --conns: the banner's size=
	ctlLongPause = 2500 * time.Millisecond
	ctlLimit     = 10 * time.Second // bounded waits for counters and logs
)

// ctlLab is the control-plane test's world: a lab, xvs with no rules,
// three SIP agents and xvsadm.
type ctlLab struct {
	t      *testing.T
	l      *lab.Lab
	b      *balancer
	sock   string
	adm    string
	vip    netip.AddrPort
	agents []*sipp.Server
	dests  []netip.AddrPort // real servers' SIP addresses, in lab order
}

// xvsadm runs the real xvsadm in the balancer namespace against the
// control socket.
func (c *ctlLab) xvsadm(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlLimit)
	defer cancel()
	cmd := lab.Command(ctx, c.l.Balancer.NS, c.adm, append([]string{"--control", c.sock}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		c.t.Fatalf("xvsadm %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs xvsadm and fails the test unless it exits 0 with no stderr.
func (c *ctlLab) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, errs, code := c.xvsadm(stdin, args...)
	if code != 0 || errs != "" {
		c.t.Fatalf("xvsadm %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs xvsadm and checks ipvsadm's message and exit status.
func (c *ctlLab) fails(wantErr string, wantCode int, args ...string) {
	c.t.Helper()
	out, errs, code := c.xvsadm("", args...)
	if code != wantCode || errs != wantErr || out != "" {
		c.t.Errorf("xvsadm %s: exit %d, stdout %q, stderr %q; want exit %d, stderr %q",
			strings.Join(args, " "), code, out, errs, wantCode, wantErr)
	}
}

// calls places n SIPp calls from client ci and requires every one to succeed.
func (c *ctlLab) calls(ci, n int, pause time.Duration) sipp.Result {
	c.t.Helper()
	cl := c.l.Clients[ci]
	res, err := sipp.UAC{NS: cl.NS, Local: netip.AddrPortFrom(cl.Addr4, sipPort), Target: c.vip,
		Calls: n, Rate: e2eRate, Pause: pause, Dir: c.t.TempDir()}.Run(c.t.Context())
	if err != nil || res.ExitCode != 0 || res.Successful != n || res.Failed != 0 {
		c.t.Fatalf("sipp from %s: %d successful, %d failed, exit %d, %v\n%s\nxvs:\n%s",
			cl.Role, res.Successful, res.Failed, res.ExitCode, err, res.Output, c.b.stderr.String())
	}
	return res
}

// seen returns, per real server (lab order), the Call-IDs its agent logged
// and how many requests of each.
func (c *ctlLab) seen() []map[string]int {
	c.t.Helper()
	var out []map[string]int
	for _, a := range c.agents {
		ids, err := a.CallIDs()
		if err != nil {
			c.t.Fatal(err)
		}
		out = append(out, ids)
	}
	return out
}

// template is one -Lcn --persistent-conn template row.
type template struct {
	state, source, virtual, dest, pe, callID string
}

func (c *ctlLab) templates() map[string]template {
	c.t.Helper()
	out := c.ok("", "-Lcn", "--persistent-conn")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	wantHead := fmt.Sprintf("pro expire %-11s %-18s %-18s %-18s %-16s %s", "state", "source", "virtual", "destination", "pe name", "pe_data")
	if len(lines) < 2 || lines[0] != "IPVS connection entries" || lines[1] != wantHead {
		c.t.Fatalf("-Lcn --persistent-conn header:\n%s", out)
	}
	rows := map[string]template{}
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 8 || f[0] != "UDP" {
			c.t.Fatalf("-Lcn --persistent-conn: unexpected row %q (under -o only templates exist)", line)
		}
		if _, dup := rows[f[7]]; dup {
			c.t.Errorf("-Lcn: two templates for Call-ID %s", f[7])
		}
		rows[f[7]] = template{state: f[2], source: f[3], virtual: f[4], dest: f[5], pe: f[6], callID: f[7]}
	}
	return rows
}

// stats are one destination's -Ln --stats columns.
type stats struct{ conns, inPkts, outPkts int }

func (c *ctlLab) stats() map[string]stats {
	c.t.Helper()
	out := c.ok("", "-Ln", "--stats", "--exact")
	m := map[string]stats{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || f[0] != "->" {
			continue
		}
		var n [3]int
		for i := range n {
			v, err := strconv.Atoi(f[2+i])
			if err != nil {
				c.t.Fatalf("-Ln --stats: %q: %v", line, err)
			}
			n[i] = v
		}
		m[f[1]] = stats{n[0], n[1], n[2]}
	}
	return m
}

// Expected listings, from ipvsadm 1.31's printf formats (as
// internal/ipvsadm/testdata/golden.py), independently of xvs's formatter.
const (
	banner   = "IP Virtual Server version 1.2.1 (size=%d)\n"
	listHead = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)

type destRow struct {
	addr            netip.AddrPort
	weight, persist int
}

func (c *ctlLab) wantList(sched string, dests []destRow) string {
	s := fmt.Sprintf(banner, ctlConns) + listHead
	if sched == "" {
		return s
	}
	s += fmt.Sprintf("%s %s persistent 60 mask 0.0.0.0 pe sip ops\n", fmt.Sprintf("%-4s %s", "UDP", c.vip), sched)
	for _, d := range dests {
		s += fmt.Sprintf("  -> %-28s %-7s %-6d %-10d %-10d\n", d.addr, "Masq", d.weight, 0, 0)
	}
	return s
}

func (c *ctlLab) wantPersist(sched string, dests []destRow) string {
	s := fmt.Sprintf(banner, ctlConns) +
		fmt.Sprintf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	s += fmt.Sprintf("%s %s persistent 60 mask 0.0.0.0 pe sip ops\n", fmt.Sprintf("%-4s %s", "UDP", c.vip), sched)
	for _, d := range dests {
		s += fmt.Sprintf("  -> %-28s %-9d %-11d %-10d %-10d\n", d.addr, d.weight, d.persist, 0, 0)
	}
	return s
}

// eventually retries check until it returns "" or ctlLimit passes.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(ctlLimit)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRootControlPlane starts `xvs run` with no rules, configures it only
// through the real xvsadm, places SIP calls with SIPp between the steps and
// checks the listings, counters, metrics and debug log an operator relies
// on.
func TestRootControlPlane(t *testing.T) {
	testenv.Require(t, lab.Available())
	_, err := sipp.Path()
	testenv.Require(t, err)
	start := time.Now()
	l, err := lab.New(lab.Spec{Clients: 2, RealServers: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := &ctlLab{t: t, l: l, vip: netip.AddrPortFrom(l.VIP4, sipPort), adm: xvsadmBinary(t)}
	for _, r := range l.Reals {
		d := netip.AddrPortFrom(r.Addr4, sipPort)
		c.dests = append(c.dests, d)
		s, err := sipp.UAS{NS: r.NS, Addr: d, Dir: t.TempDir()}.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
		c.agents = append(c.agents, s)
	}

	// xvs with no rules file, metrics on the namespace's loopback, IPVS's
	// debug level 9.
	dir := t.TempDir()
	c.sock = filepath.Join(dir, "xvs.sock")
	b, err := startXVSArgs(t, l, "run", "--iface", lab.HostIface, "--mode", "afxdp", "--xdp-mode", "generic",
		"--control", c.sock, "--metrics", ctlMetrics, "--templates", "65536", "--conns", strconv.Itoa(ctlConns),
		"--log-level", "9")
	if errors.Is(err, errNoBackend) {
		t.Skip(err)
	}
	c.b = b
	mode := logValue(b.stderr.String(), "mode")
	t.Logf("xvs up in %v, mode %s", time.Since(start).Round(time.Millisecond), mode)

	// An empty table, then the service and its three real servers.
	if got, want := c.ok("", "-Ln"), c.wantList("", nil); got != want {
		t.Fatalf("-Ln with no rules:\n%s\nwant:\n%s", got, want)
	}
	c.fails("No such service\n", 255, "-a", "-u", c.vip.String(), "-r", c.dests[0].String(), "-m")
	c.ok("", "-A", "-u", c.vip.String(), "-s", "rr", "-p", "60", "-M", "0.0.0.0", "-o", "--pe", "sip")
	c.fails("Service already exists\n", 255, "-A", "-u", c.vip.String(), "-s", "rr", "-p", "60", "-M", "0.0.0.0", "-o", "--pe", "sip")
	for _, d := range c.dests {
		c.ok("", "-a", "-u", c.vip.String(), "-r", d.String(), "-m", "-w", "1")
	}
	c.fails("Destination already exists\n", 255, "-a", "-u", c.vip.String(), "-r", c.dests[0].String(), "-m", "-w", "1")
	c.fails("No such destination\n", 255, "-d", "-u", c.vip.String(), "-r", netip.AddrPortFrom(l.Router.Addr4, sipPort).String())
	all := []destRow{{c.dests[0], 1, 0}, {c.dests[1], 1, 0}, {c.dests[2], 1, 0}}
	if got, want := c.ok("", "-Ln"), c.wantList("rr", all); got != want {
		t.Fatalf("-Ln:\n%s\nwant:\n%s", got, want)
	}

	// Calls spread by rr; listings, counters and metrics match what each
	// real server's agent saw.
	const first = 12
	res := c.calls(0, first, 100*time.Millisecond)
	seen := c.seen()
	owner := map[string]int{} // Call-ID → real server index
	for i, ids := range seen {
		for id := range ids {
			if j, dup := owner[id]; dup {
				t.Errorf("Call-ID %s on real servers %d and %d", id, j, i)
			}
			owner[id] = i
		}
	}
	if len(owner) != first {
		t.Fatalf("agents saw %d Call-IDs, want %d", len(owner), first)
	}
	for i := range all {
		all[i].persist = len(seen[i])
		if len(seen[i]) == 0 {
			t.Errorf("real server %v got no calls", c.dests[i])
		}
	}
	if got, want := c.ok("", "-Ln", "--persistent-conn"), c.wantPersist("rr", all); got != want {
		t.Errorf("-Ln --persistent-conn (PersistConn = the calls each agent saw):\n%s\nwant:\n%s", got, want)
	}
	tmpl := c.templates()
	if len(tmpl) != first {
		t.Errorf("-Lcn --persistent-conn: %d templates, want one per Call-ID (%d)", len(tmpl), first)
	}
	for id, i := range owner {
		r, ok := tmpl[id]
		want := template{state: r.state, source: "0.0.0.0:0", virtual: c.vip.String(), dest: c.dests[i].String(), pe: "sip", callID: id}
		if !ok || r != want || (r.state != "NONE" && r.state != "ASSURED") {
			t.Errorf("template of %s: %+v (found %v), want %+v", id, r, ok, want)
		}
	}
	// Under -o every datagram through the balancer counts as a connection
	// (the NAT replies too: they are translated through conn_out, as in
	// IPVS); the packets in are the UAC's requests (INVITE, ACK, BYE) the
	// agents logged, plus any retransmission.
	var st map[string]stats
	eventually(t, "-Ln --stats against the agents' logs", func() string {
		st = c.stats()
		total, logged := 0, 0
		for i, d := range c.dests {
			n := 0
			for _, k := range seen[i] {
				n += k
			}
			logged += n
			s := st[d.String()]
			total += s.inPkts
			if s.conns != s.inPkts+s.outPkts || s.inPkts < n || s.inPkts > n+res.Retransmissions || s.outPkts < n {
				return fmt.Sprintf("%v: %+v, agent logged %d requests, %d retransmissions", d, s, n, res.Retransmissions)
			}
		}
		if total != logged+res.Retransmissions {
			return fmt.Sprintf("%d packets in, %d requests logged + %d retransmissions", total, logged, res.Retransmissions)
		}
		return ""
	})
	checkMetrics(t, c, mode, st, all, len(tmpl))
	if firstLine(b.stderr.String(), "SIP callid") == "" || firstLine(b.stderr.String(), "SIP template match") == "" {
		t.Errorf("--log-level 9: no \"SIP callid\"/\"SIP template match\" debug lines in xvs's log:\n%s", tail(b.stderr.String(), 3000))
	}

	// Quiesce real1 in the middle of long calls: its calls end on it (their
	// BYEs follow the templates), new Call-IDs avoid it.
	const long, short = 6, 6
	before := c.seen()
	longRes := make(chan error, 1)
	go func() {
		cl := l.Clients[0]
		r, err := sipp.UAC{NS: cl.NS, Local: netip.AddrPortFrom(cl.Addr4, sipPort), Target: c.vip, Calls: long, Rate: e2eRate,
			Pause: ctlLongPause, Dir: t.TempDir()}.Run(t.Context())
		if err == nil && (r.ExitCode != 0 || r.Successful != long) {
			err = fmt.Errorf("%d successful, %d failed, exit %d\n%s", r.Successful, r.Failed, r.ExitCode, r.Output)
		}
		longRes <- err
	}()
	newIDs := func(now []map[string]int) []map[string]int {
		var out []map[string]int
		for i, ids := range now {
			m := map[string]int{}
			for id, n := range ids {
				if _, old := before[i][id]; !old {
					m[id] = n
				}
			}
			out = append(out, m)
		}
		return out
	}
	var longIDs []map[string]int
	eventually(t, "long calls established", func() string {
		longIDs = newIDs(c.seen())
		n := 0
		for _, m := range longIDs {
			n += len(m)
		}
		if n != long {
			return fmt.Sprintf("%d of %d calls seen", n, long)
		}
		return ""
	})
	if len(longIDs[1]) == 0 {
		t.Fatalf("no long call on real1 to quiesce during: %v", longIDs)
	}
	c.ok("", "-e", "-u", c.vip.String(), "-r", c.dests[1].String(), "-m", "-w", "0")
	c.calls(1, short, 50*time.Millisecond)
	if err := <-longRes; err != nil {
		t.Fatalf("long calls across the quiesce: %v\nxvs:\n%s", err, b.stderr.String())
	}
	after := newIDs(c.seen())
	for i, ids := range after {
		for id, n := range ids {
			_, isLong := longIDs[i][id]
			if i == 1 && !isLong {
				t.Errorf("quiesced real1 got a new Call-ID %s", id)
			}
			if isLong && n < 3 {
				t.Errorf("long call %s on real%d: %d requests, want INVITE, ACK and BYE on it", id, i, n)
			}
		}
	}
	tmpl = c.templates()
	for id := range seen[1] {
		if r := tmpl[id]; r.dest != c.dests[1].String() {
			t.Errorf("after quiescing real1, template of its call %s points to %q", id, r.dest)
		}
	}
	for id := range longIDs[1] {
		if r := tmpl[id]; r.dest != c.dests[1].String() {
			t.Errorf("after quiescing real1, template of its long call %s points to %q", id, r.dest)
		}
	}

	// Remove real2: its templates lose their server, and its calls are
	// rescheduled on their next datagram (to real0, the only server with
	// weight).
	c.ok("", "-d", "-u", c.vip.String(), "-r", c.dests[2].String())
	two := []destRow{{c.dests[0], 1, 0}, {c.dests[1], 0, 0}}
	if got, want := c.ok("", "-Ln"), c.wantList("rr", two); got != want {
		t.Errorf("-Ln after -e -w 0 and -d:\n%s\nwant:\n%s", got, want)
	}
	var moved string
	for id := range seen[2] {
		moved = id
		break
	}
	if r := c.templates()[moved]; r.dest != "0.0.0.0:0" {
		t.Errorf("template of %s after its real server was deleted: destination %q, want 0.0.0.0:0", moved, r.dest)
	}
	replayCall(t, c, moved)
	eventually(t, "rescheduled call", func() string {
		if c.seen()[0][moved] == 0 {
			return fmt.Sprintf("real0's agent has not seen %s", moved)
		}
		if r := c.templates()[moved]; r.dest != c.dests[0].String() {
			return fmt.Sprintf("template of %s points to %q, want %v", moved, r.dest, c.dests[0])
		}
		return ""
	})

	// -E changes the scheduler and keeps the engine and the templates.
	nTmpl := len(c.templates())
	c.ok("", "-E", "-u", c.vip.String(), "-s", "wlc", "-p", "60", "-M", "0.0.0.0", "-o", "--pe", "sip")
	if got, want := c.ok("", "-Ln"), c.wantList("wlc", two); got != want {
		t.Errorf("-Ln after -E -s wlc:\n%s\nwant:\n%s", got, want)
	}
	if n := len(c.templates()); n != nTmpl {
		t.Errorf("-E: %d templates, had %d", n, nTmpl)
	}

	// -S, -C, -R restores an identical -S.
	saved := c.ok("", "-S", "-n")
	wantSave := fmt.Sprintf("-A -u %v -s wlc -p 60 -M 0.0.0.0 --pe sip -o\n-a -u %v -r %v -m -w 1\n-a -u %v -r %v -m -w 0\n",
		c.vip, c.vip, c.dests[0], c.vip, c.dests[1])
	if saved != wantSave {
		t.Errorf("-S -n:\n%s\nwant:\n%s", saved, wantSave)
	}
	c.ok("", "-C")
	if got, want := c.ok("", "-Ln"), c.wantList("", nil); got != want {
		t.Errorf("-Ln after -C:\n%s\nwant:\n%s", got, want)
	}
	c.ok(saved, "-R")
	if got := c.ok("", "-S", "-n"); got != saved {
		t.Errorf("-S after -C and -R:\n%s\nwant:\n%s", got, saved)
	}

	// -R of more services than the AF_XDP filter holds (two entries per
	// service on its own VIP, 16384 per address family) is refused whole:
	// the running configuration keeps serving and every later command works,
	// -d of a real server included.
	var big strings.Builder
	for i := range 8200 {
		fmt.Fprintf(&big, "-A -u 10.200.%d.%d:5060 -s rr\n", i/250, i%250+1)
	}
	if out, errs, code := c.xvsadm(big.String(), "-R"); code != 255 || !strings.Contains(errs, "filter too large") || out != "" {
		t.Errorf("-R of 8200 services: exit %d, stdout %q, stderr %q; want exit 255 and \"filter too large\"", code, out, errs)
	}
	if got := c.ok("", "-S", "-n"); got != saved {
		t.Errorf("-S after a refused -R:\n%s\nwant:\n%s", got, saved)
	}
	c.ok("", "-d", "-u", c.vip.String(), "-r", c.dests[1].String())
	c.ok("", "-a", "-u", c.vip.String(), "-r", c.dests[1].String(), "-m", "-w", "0")
	if got := c.ok("", "-S", "-n"); got != saved {
		t.Errorf("-S after -d and -a following a refused -R:\n%s\nwant:\n%s", got, saved)
	}
	// The restored service serves, and still avoids the quiesced server.
	before = c.seen()
	c.calls(1, short, 50*time.Millisecond)
	for id := range newIDs(c.seen())[1] {
		t.Errorf("quiesced real1 got Call-ID %s after -R", id)
	}
	if n := len(newIDs(c.seen())[0]); n != short {
		t.Errorf("real0 got %d of the %d calls after -R", n, short)
	}

	// IPVS sysctls, live: listed with sysctl(8)'s names, set through the
	// same publication as every change, exported, refused by name when xvs
	// does not honour them.
	if got := c.ok("", "--sysctl", "expire_quiescent_template"); got != "net.ipv4.vs.expire_quiescent_template = 0\n" {
		t.Errorf("--sysctl expire_quiescent_template: %q", got)
	}
	c.ok("", "--sysctl", "net.ipv4.vs.expire_quiescent_template=1")
	if got := c.ok("", "--sysctl"); !strings.Contains(got, "net.ipv4.vs.expire_quiescent_template = 1\n") {
		t.Errorf("--sysctl after setting it:\n%s", got)
	}
	if v, n := scrape(t, c.l.Balancer.NS, ctlMetrics).sum("xvs_sysctl", map[string]string{"name": "expire_quiescent_template"}); n != 1 || v != 1 {
		t.Errorf("xvs_sysctl{name=expire_quiescent_template} = %v (%d series)", v, n)
	}
	c.fails("sysctl net.ipv4.vs.drop_entry is not supported by xvs\n", 255, "--sysctl", "drop_entry=1")
	c.ok("", "--sysctl", "expire_quiescent_template=0")

	// A stopped daemon (SIGSTOP: the kernel still queues connections):
	// xvsadm gives up after its timeout with a clear message, and works
	// again once the daemon runs.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, errs, code := c.xvsadm("", "--control-timeout", "1s", "-Ln")
	took := time.Since(t0)
	b.cmd.Process.Signal(syscall.SIGCONT)
	if code != 2 || !strings.Contains(errs, "no answer from xvs at "+c.sock+" within 1s (is it stopped?)") || took > 3*time.Second {
		t.Errorf("xvsadm against a stopped daemon: exit %d after %v, stderr %q", code, took, errs)
	}
	if got, want := c.ok("", "-Ln"), c.wantList("wlc", two); got != want {
		t.Errorf("-Ln after SIGCONT:\n%s\nwant:\n%s", got, want)
	}
	t.Logf("control plane: %v", time.Since(start).Round(time.Millisecond))
}

// replayCall plays one call with Call-ID id from client0 (a Go socket):
// INVITE, wait for the 200 OK, ACK, BYE, wait for its 200 OK.
func replayCall(t *testing.T, c *ctlLab, id string) {
	t.Helper()
	cl := c.l.Clients[0]
	conn, err := lab.ListenUDP(cl.NS, netip.AddrPortFrom(cl.Addr4, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	d := craft.Dialog{CallID: id, FromHost: local.Addr().String(), FromPort: int(local.Port()),
		ToHost: c.vip.Addr().String(), ToPort: int(c.vip.Port())}
	await := func(what string) {
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(ctlLimit))
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("replayed call %s: waiting for %s: %v", id, what, err)
			}
			if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) && bytes.Contains(buf[:n], []byte(what)) {
				return
			}
		}
	}
	send := func(msg []byte) {
		if _, err := conn.WriteToUDPAddrPort(msg, c.vip); err != nil {
			t.Fatal(err)
		}
	}
	send(d.Invite())
	await("INVITE")
	send(d.Ack())
	send(d.Bye())
	await("BYE")
}

// checkMetrics scrapes /metrics from inside the balancer namespace and
// compares it with what xvsadm and the agents said.
func checkMetrics(t *testing.T, c *ctlLab, mode string, st map[string]stats, dests []destRow, templates int) {
	t.Helper()
	m := scrape(t, c.l.Balancer.NS, ctlMetrics)
	want := func(name string, labels map[string]string, v float64) {
		t.Helper()
		if got, n := m.sum(name, labels); n == 0 || got != v {
			t.Errorf("metric %s%v = %v (%d series), want %v", name, labels, got, n, v)
		}
	}
	want("xvs_dataplane_info", map[string]string{"mode": mode, "iface": lab.HostIface}, 1)
	svc := map[string]string{"protocol": "udp", "service": c.vip.String()}
	var in float64
	for _, d := range dests {
		ls := map[string]string{"protocol": "udp", "service": c.vip.String(), "server": d.addr.String()}
		s := st[d.addr.String()]
		want("xvs_server_in_packets_total", ls, float64(s.inPkts))
		want("xvs_server_connections_total", ls, float64(s.conns))
		want("xvs_server_out_packets_total", ls, float64(s.outPkts))
		want("xvs_server_persistent_templates", ls, float64(d.persist))
		want("xvs_server_weight", ls, float64(d.weight))
		in += float64(s.inPkts)
	}
	want("xvs_service_in_packets_total", svc, in)
	// Every datagram to the service had a Call-ID: one engine outcome "ok"
	// each, no fallback.
	want("xvs_pe_total", map[string]string{"status": "ok"}, in)
	for _, s := range []string{"not_found", "invalid", "too_long", "no_payload"} {
		if v, _ := m.sum("xvs_pe_total", map[string]string{"status": s}); v != 0 {
			t.Errorf("xvs_pe_total{status=%q} = %v, want 0", s, v)
		}
	}
	if v, _ := m.sum("xvs_pe_fallback_total", nil); v != 0 {
		t.Errorf("xvs_pe_fallback_total = %v, want 0", v)
	}
	want("xvs_templates", nil, float64(templates))
	want("xvs_templates_created_total", nil, float64(templates))
}

// series is a parsed Prometheus text exposition.
type series []struct {
	name   string
	labels map[string]string
	value  float64
}

// sum adds the values of the series called name whose labels include
// labels, and says how many there were.
func (s series) sum(name string, labels map[string]string) (float64, int) {
	var v float64
	n := 0
next:
	for _, e := range s {
		if e.name != name {
			continue
		}
		for k, want := range labels {
			if e.labels[k] != want {
				continue next
			}
		}
		v += e.value
		n++
	}
	return v, n
}

// scrape GETs http://addr/metrics from inside namespace ns.
func scrape(t *testing.T, ns, addr string) series {
	t.Helper()
	var conn net.Conn
	if err := lab.Do(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ctlLimit))
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %s", resp.Status)
	}
	var out series
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics: bad line %q", line)
		}
		name, rest, _ := strings.Cut(line[:i], "{")
		labels := map[string]string{}
		for rest = strings.TrimSuffix(rest, "}"); rest != ""; {
			k, r, _ := strings.Cut(rest, "=\"")
			val, r2, _ := strings.Cut(r, "\"")
			labels[k] = val
			rest = strings.TrimPrefix(r2, ",")
		}
		out = append(out, struct {
			name   string
			labels map[string]string
			value  float64
		}{name, labels, v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// startXVSArgs runs xvs with exactly args in the balancer namespace and
// waits for its mode line (startXVS with the caller's flags).
func startXVSArgs(t *testing.T, l *lab.Lab, args ...string) (*balancer, error) {
	t.Helper()
	return startXVSIn(t, l.Balancer.NS, args...)
}

// startXVSIn is startXVSArgs in namespace ns.
func startXVSIn(t *testing.T, ns string, args ...string) (*balancer, error) {
	t.Helper()
	b := &balancer{stderr: &testenv.Buffer{}, done: make(chan error, 1)}
	b.cmd = lab.Command(context.Background(), ns, xvsBinary(t), args...)
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.stop(t) })
	deadline := time.After(15 * time.Second)
	for !strings.Contains(b.stderr.String(), "data plane started") {
		select {
		case err := <-b.done:
			b.done <- err
			out := b.stderr.String()
			if strings.Contains(out, "no such data-plane backend") || strings.Contains(out, "not supported") {
				return nil, fmt.Errorf("%w: xvs %s: %s", errNoBackend, strings.Join(args, " "), out)
			}
			t.Fatalf("xvs exited at start: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("xvs did not start within 15s:\n%s", b.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return b, nil
}

// logValue returns key's value on the "data plane started" line of log.
func logValue(log, key string) string {
	for _, f := range strings.Fields(firstLine(log, "data plane started")) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
