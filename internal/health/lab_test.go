package health_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// Root lab test: `xvs run` with SIP OPTIONS probing of three real servers
// running SIPp; one server's agent is killed in the middle of a call load:
// calls keep succeeding on the others, the server goes down after the fail
// threshold and gets no datagram any more, and after its agent restarts it
// comes back after the rise threshold and takes new calls. NAT over AF_XDP
// (the probe tap) and direct routing over the raw socket (probes to the VIP
// at the server's MAC).
func TestRootHealthLab(t *testing.T) {
	testenv.NeedLab(t)
	_, err := sipp.Path()
	testenv.Require(t, err)
	for _, c := range []struct {
		name, mode string
		dr         bool
	}{
		{"afxdp/nat", "afxdp", false},
		{"raw/dr", "raw", true},
	} {
		t.Run(c.name, func(t *testing.T) { runHealthLab(t, c.mode, c.dr) })
	}
}

var build struct {
	once sync.Once
	bin  string
	err  error
}

func xvsBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "xvs-health-")
		if err != nil {
			build.err = err
			return
		}
		build.bin, build.err = testenv.Build(dir, "xvs")
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.bin != "" {
		os.RemoveAll(filepath.Dir(build.bin))
	}
	os.Exit(code)
}

// uas is a SIPp UAS that also answers OPTIONS (-aa), logging the Call-ID of
// every INVITE/ACK/BYE.
type uas struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startUAS(t *testing.T, ns string, addr netip.AddrPort) *uas {
	t.Helper()
	dir := t.TempDir()
	path, _ := sipp.Path()
	sf, _ := filepath.Abs("testdata/uas.xml")
	u := &uas{log: filepath.Join(dir, "calls.log"), done: make(chan struct{})}
	u.cmd = lab.Command(context.Background(), ns, path, "-sf", sf, "-t", "u1", "-nostdin", "-aa",
		"-i", addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())), "-bind_local",
		"-trace_logs", "-log_file", u.log)
	var out bytes.Buffer
	u.cmd.Stdout, u.cmd.Stderr = &out, &out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.cmd.Wait(); close(u.done) }()
	t.Cleanup(u.kill)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(u.log); err == nil {
			return u
		}
		select {
		case <-u.done:
			t.Fatalf("sipp UAS exited: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("sipp UAS did not start")
		}
	}
}

// kill stops the agent abruptly, as a crash would.
func (u *uas) kill() {
	if u.cmd.Process != nil {
		u.cmd.Process.Signal(syscall.SIGKILL)
		<-u.done
	}
}

func (u *uas) callIDs() map[string]bool {
	ids := map[string]bool{}
	f, err := os.Open(u.log)
	if err != nil {
		return ids
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, id, ok := strings.Cut(strings.TrimSpace(sc.Text()), " "); ok && (m == "INVITE" || m == "ACK" || m == "BYE") {
			ids[id] = true
		}
	}
	return ids
}

func runHealthLab(t *testing.T, mode string, dr bool) {
	l, err := lab.New(lab.Spec{Clients: 1, RealServers: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fwd := "-m"
	if dr {
		fwd = "-g"
		if err := l.UseDirectRouting(); err != nil {
			t.Fatal(err)
		}
	}
	vip := netip.AddrPortFrom(l.VIP4, 5060)
	var rules strings.Builder
	fmt.Fprintf(&rules, "-A -u %v -s rr -p 60 -M 0.0.0.0 --pe sip -o\n", vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&rules, "-a -u %v -r %v %s -w 1\n", vip, netip.AddrPortFrom(r.Addr4, 5060), fwd)
	}
	fmt.Fprintf(&rules, "--health-check -u %v --check sip-options --interval 0.2 --check-timeout 0.15 --fail 2 --rise 2\n", vip)

	agentAddr := func(i int) netip.AddrPort {
		if dr {
			return vip // answers leave from the VIP
		}
		return netip.AddrPortFrom(l.Reals[i].Addr4, 5060)
	}
	agents := make([]*uas, len(l.Reals))
	for i, r := range l.Reals {
		agents[i] = startUAS(t, r.NS, agentAddr(i))
	}

	// xvs run in the balancer namespace.
	dir := t.TempDir()
	rf := filepath.Join(dir, "rules")
	os.WriteFile(rf, []byte(rules.String()), 0o644)
	sock := filepath.Join(dir, "xvs.sock")
	xlog := &testenv.Buffer{}
	xvs := lab.Command(context.Background(), l.Balancer.NS, xvsBinary(t), "run", "--iface", lab.HostIface, "--rules", rf,
		"--mode", mode, "--control", sock, "--metrics", "", "--templates", "65536", "--conns", "65536")
	xvs.Stdout, xvs.Stderr = xlog, xlog
	if err := xvs.Start(); err != nil {
		t.Fatal(err)
	}
	xdone := make(chan struct{})
	go func() { xvs.Wait(); close(xdone) }()
	t.Cleanup(func() {
		xvs.Process.Signal(syscall.SIGTERM)
		select {
		case <-xdone:
		case <-time.After(10 * time.Second):
			xvs.Process.Kill()
			<-xdone
		}
		if t.Failed() {
			t.Logf("xvs log:\n%s", xlog.String())
		}
	})
	adm := func(argv ...string) string {
		t.Helper()
		var out, errb strings.Builder
		code, err := control.Call(context.Background(), sock, control.Request{V: control.ProtocolVersion, Argv: argv}, &out, &errb)
		if err != nil || code != 0 {
			return ""
		}
		return out.String()
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Time {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s\nxvsadm -Ln --health:\n%s", limit, what, adm("-Ln", "--health"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Now()
	}
	row := func(i int) string {
		for line := range strings.SplitSeq(adm("-Ln", "--health"), "\n") {
			if strings.HasPrefix(line, "  -> "+netip.AddrPortFrom(l.Reals[i].Addr4, 5060).String()+" ") {
				return line
			}
		}
		return ""
	}
	state := func(i int) string {
		f := strings.Fields(row(i))
		if len(f) < 3 {
			return ""
		}
		return f[2]
	}
	inPkts := func(i int) uint64 {
		for line := range strings.SplitSeq(adm("-Ln", "--stats", "--exact"), "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "->" && f[1] == netip.AddrPortFrom(l.Reals[i].Addr4, 5060).String() {
				n, _ := strconv.ParseUint(f[3], 10, 64)
				return n
			}
		}
		return 0
	}
	t0 := time.Now()
	waitFor("all servers checked and up", 15*time.Second, func() bool {
		for i := range l.Reals {
			if state(i) != "up" || strings.Contains(row(i), " -       -") {
				return false
			}
		}
		return true
	})
	t.Logf("%s: xvs up and all servers checked in %v; %s", mode, time.Since(t0).Round(time.Millisecond), row(0))

	// The load: 10 calls/s for about 8 s.
	const calls = 80
	type uacResult struct {
		res sipp.Result
		err error
	}
	uacDone := make(chan uacResult, 1)
	go func() {
		res, err := sipp.UAC{NS: l.Clients[0].NS, Local: netip.AddrPortFrom(l.Clients[0].Addr4, 5060), Target: vip,
			Calls: calls, Rate: 10, Pause: 200 * time.Millisecond, Dir: t.TempDir(),
			GiveUp: 10 * time.Second}.Run(context.Background()) // the dead server's calls fail: do not wait 32 s for them
		uacDone <- uacResult{res, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	const victim = 1
	if n := inPkts(victim); n == 0 {
		t.Fatalf("real1 got no packet before the failure")
	}
	killed := time.Now()
	agents[victim].kill()
	downAt := waitFor("real1 down", 3*time.Second, func() bool { return state(victim) == "down" })
	t.Logf("real1 down %v after its agent died: %s", downAt.Sub(killed).Round(time.Millisecond), row(victim))
	before := inPkts(victim)
	time.Sleep(2 * time.Second) // calls go on; none may reach real1
	if after := inPkts(victim); after != before {
		t.Errorf("real1 got %d datagrams while down", after-before)
	}
	path := "path=direct"
	if dr {
		path = "path=dr-raw" // to the VIP at the server's MAC, not the fallback
	}
	if line := firstLine(xlog.String(), "new=down"); !strings.Contains(line, `msg="health state change" service="UDP `+vip.String()+`" server=`+
		netip.AddrPortFrom(l.Reals[victim].Addr4, 5060).String()+` old=up new=down reason="refused (2 in a row)" `+path) {
		t.Errorf("state-change log line: %q", line)
	}

	// Restart the agent: up again after two good probes, and new calls reach it.
	restarted := time.Now()
	agents[victim] = startUAS(t, l.Reals[victim].NS, agentAddr(victim))
	upAt := waitFor("real1 up again", 3*time.Second, func() bool { return state(victim) == "up" })
	t.Logf("real1 up %v after its agent restarted", upAt.Sub(restarted).Round(time.Millisecond))
	r := <-uacDone
	if r.err != nil {
		t.Fatalf("sipp UAC: %v\n%s", r.err, r.res.Output)
	}
	t.Logf("calls: %d successful, %d failed", r.res.Successful, r.res.Failed)
	if r.res.Successful+r.res.Failed != calls || r.res.Successful < calls*3/4 {
		t.Errorf("calls: %d successful, %d failed of %d", r.res.Successful, r.res.Failed, calls)
	}
	if ids := agents[victim].callIDs(); len(ids) == 0 {
		t.Errorf("no new call reached real1 after it came back")
	} else {
		t.Logf("real1 took %d new calls after coming back", len(ids))
	}
	for i, a := range agents {
		if i != victim && len(a.callIDs()) == 0 {
			t.Errorf("real%d took no call", i)
		}
	}
	out := adm("-Ln", "--health")
	if !strings.Contains(out, "sip-options every 0.2s timeout 0.15s fail 2 rise 2 on-fail expire") {
		t.Errorf("-Ln --health:\n%s", out)
	}
	t.Logf("-Ln --health at the end:\n%s", out)
}

func firstLine(s, substr string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
