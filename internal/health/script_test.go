package health

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// scriptCheck checks with argv every 500 ms. The timeout is the interval:
// these tests are about exit statuses and processes, and a shell script on
// a loaded machine can take more than 100 ms to start and finish.
func scriptCheck(argv ...string) ipvs.HealthCheck {
	h := fast(ipvs.CheckScript)
	h.Script = argv
	h.Interval, h.Timeout = 500*time.Millisecond, 500*time.Millisecond
	return h
}

func (r *rig) dest(server netip.AddrPort) *ipvs.Dest {
	for _, d := range r.snap.Load().Services()[0].Dests {
		if d.Addr == server {
			return d
		}
	}
	return nil
}

func (r *rig) status(server netip.AddrPort) Status {
	for _, s := range r.p.Status() {
		if s.Server == server {
			return s
		}
	}
	return Status{}
}

// scriptWait bounds a script check's state change (two runs 500 ms apart,
// with room for a loaded machine).
const scriptWait = 10 * time.Second

// keepalived's MISC_CHECK semantics: exit 0 alive, 1 failed; with
// Dynamic, 2..255 alive with weight status-2, 0 the configured weight
// again; without Dynamic, 2..255 fail. The script sees the service and the
// real server in its environment.
func TestScriptExitStatus(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	env := filepath.Join(dir, "env")
	os.WriteFile(status, []byte("0"), 0o644)
	sh := script(t, dir, "check.sh", `echo "$XVS_SERVICE $XVS_REAL_SERVER $XVS_REAL_SERVER_ADDR $XVS_REAL_SERVER_PORT $1" > `+env+`
exit $(cat `+status+`)
`)
	server := netip.MustParseAddrPort("127.0.0.1:5070")
	h := scriptCheck(sh, "first arg")
	h.Dynamic = true
	r := newRig(t, h, server)
	waitFor(t, "first run", scriptWait, func() bool { return r.status(server).Checked })
	if b, _ := os.ReadFile(env); string(b) != "UDP 127.0.0.1:5060 127.0.0.1:5070 127.0.0.1 5070 first arg\n" {
		t.Errorf("environment %q", b)
	}
	os.WriteFile(status, []byte("12"), 0o644)
	waitFor(t, "dynamic weight 10", scriptWait, func() bool { d := r.dest(server); return d.HasDynWeight && d.DynWeight == 10 })
	if d := r.dest(server); d.Down || d.SchedWeight() != 10 || d.Weight != 1 {
		t.Fatalf("dest %+v", d)
	}
	os.WriteFile(status, []byte("0"), 0o644)
	waitFor(t, "configured weight again", scriptWait, func() bool { return !r.dest(server).HasDynWeight })
	os.WriteFile(status, []byte("1"), 0o644)
	waitFor(t, "down on exit 1", scriptWait, func() bool { return r.down(server) })
	if st := r.status(server); st.Last != "exit 1" {
		t.Errorf("last %q", st.Last)
	}
	os.WriteFile(status, []byte("0"), 0o644)
	waitFor(t, "up on exit 0", scriptWait, func() bool { return !r.down(server) })
	if !strings.Contains(r.log.String(), `msg="dynamic weight"`) {
		t.Errorf("log:\n%s", r.log.String())
	}
	// Without Dynamic, a status of 12 is a failure.
	r.stop()
	h.Dynamic = false
	os.WriteFile(status, []byte("12"), 0o644)
	r = newRig(t, h, server)
	waitFor(t, "down on exit 12", scriptWait, func() bool { return r.down(server) })
	if d := r.dest(server); d.HasDynWeight {
		t.Error("dynamic weight without --dynamic")
	}
	// A missing program fails the check.
	r.stop()
	r = newRig(t, scriptCheck(filepath.Join(dir, "missing")), server)
	waitFor(t, "down when missing", scriptWait, func() bool { return r.down(server) })
	if st := r.status(server); !strings.HasPrefix(st.Last, "exec: ") {
		t.Errorf("last %q", st.Last)
	}
}

// A script still running at the timeout is killed with its process group:
// SIGTERM, then SIGKILL 2 s later if it ignores that; its children go too.
func TestScriptTimeoutKillsTheGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the kill grace period")
	}
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	sh := script(t, dir, "hang.sh", `trap '' TERM
sleep 60 &
echo $$ $! >> `+pids+`
wait
`)
	ctx, cancel := contextWithTimeout(300 * time.Millisecond)
	defer cancel()
	start := time.Now()
	status, outcome := runScript(ctx, []string{sh}, nil, nil)
	took := time.Since(start)
	if status != -1 || outcome != outcomeTimeout {
		t.Fatalf("status %d outcome %q", status, outcome)
	}
	if took < scriptKillGrace || took > scriptKillGrace+2*time.Second {
		t.Errorf("took %v: SIGTERM ignored, SIGKILL expected after %v", took, scriptKillGrace)
	}
	b, _ := os.ReadFile(pids)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		waitFor(t, "process "+f+" gone", 2*time.Second, func() bool { return !alive(pid) })
	}
	// A script that honours SIGTERM ends at once.
	sh = script(t, dir, "sleep.sh", "sleep 60\n")
	ctx, cancel = contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, outcome := runScript(ctx, []string{sh}, nil, nil); outcome != outcomeTimeout || time.Since(start) > time.Second {
		t.Errorf("outcome %q after %v", outcome, time.Since(start))
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie (reaped soon by its parent or init) is not running.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// At most MaxScripts run at once, whatever the number of servers: six
// one-second scripts whose first runs fall within the same 1.5 s overlap
// three deep without the bound (the control run), never more than two
// with it.
func TestScriptConcurrencyBound(t *testing.T) {
	for _, tc := range []struct{ bound, lo, hi int }{{2, 1, 2}, {6, 3, 6}} {
		if most := scriptConcurrency(t, tc.bound); most < tc.lo || most > tc.hi {
			t.Errorf("MaxScripts %d: up to %d scripts ran at once, want %d..%d", tc.bound, most, tc.lo, tc.hi)
		}
	}
}

func scriptConcurrency(t *testing.T, bound int) int {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	os.Mkdir(runs, 0o755)
	counts, done := filepath.Join(dir, "counts"), filepath.Join(dir, "done")
	// A run that overstays its timeout on a loaded machine is sent SIGTERM
	// (its sleep too, as the whole group is): the trap removes its marker,
	// so it delays the measurement instead of counting as running forever.
	sh := script(t, dir, "slow.sh", `trap 'rm -f `+runs+`/$$; exit 1' TERM
touch `+runs+`/$$
sleep 1
ls `+runs+` | wc -l >> `+counts+`
rm `+runs+`/$$
echo "$XVS_REAL_SERVER" >> `+done+`
`)
	h := scriptCheck(sh)
	h.Interval, h.Timeout = 1500*time.Millisecond, 1500*time.Millisecond
	var servers []netip.AddrPort
	for i := range 6 {
		servers = append(servers, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(6000+i)))
	}
	r := newRigWith(t, &rig{maxScripts: bound}, h, servers...)
	defer r.stop()
	// The bound is measured on completed runs: wait until every server
	// has had one.
	waitFor(t, "a completed run of every server", 30*time.Second, func() bool {
		b, _ := os.ReadFile(done)
		seen := map[string]bool{}
		for _, f := range strings.Fields(string(b)) {
			seen[f] = true
		}
		return !slices.ContainsFunc(servers, func(s netip.AddrPort) bool { return !seen[s.String()] })
	})
	b, _ := os.ReadFile(counts)
	most := 0
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		most = max(most, n)
	}
	t.Logf("MaxScripts %d: counts %q", bound, strings.Fields(string(b)))
	return most
}

// Scripts run as ScriptUser ("user" or "user:group").
func TestScriptUser(t *testing.T) {
	testenv.NeedRoot(t, "change user")
	// t.TempDir's parent is private: the script's user must reach it.
	dir, err := os.MkdirTemp("", "xvs-script-user-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "id")
	sh := script(t, dir, "id.sh", "id -u > "+out+"\nid -g >> "+out+"\n")
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	p := New(Options{})
	cred, err := p.credential("nobody:nogroup")
	if err == nil && cred == nil {
		t.Skip("already nobody")
	}
	if err != nil {
		t.Skip("no nobody/nogroup:", err)
	}
	if status, outcome := runScript(ctx, []string{sh}, nil, cred); status != 0 {
		t.Fatalf("%d %s", status, outcome)
	}
	b, _ := os.ReadFile(out)
	if got := strings.Fields(string(b)); len(got) != 2 || got[0] != strconv.Itoa(int(cred.Uid)) || got[1] != strconv.Itoa(int(cred.Gid)) {
		t.Errorf("ran as %q, want %d %d", got, cred.Uid, cred.Gid)
	}
	if _, err := p.credential("no-such-user-xvs"); err == nil {
		t.Error("unknown user accepted")
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
