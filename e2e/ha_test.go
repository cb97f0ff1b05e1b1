package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ha"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// HA test parameters: batches of long calls, each with an INFO after
// haPause and a BYE after another, so that ≥ 100 calls are live when a
// director dies and when it comes back.
const (
	haCalls    = 120
	haRate     = 40
	haPause    = 8 * time.Second
	haKillAt   = 4 * time.Second // after a batch starts: every INVITE sent, every INFO to come
	haLagRate  = 1000            // new calls a second for the sync lag
	haLagFor   = 3 * time.Second
	haFailover = 15 * time.Second // bound on a VRRP change in the test
)

// TestRootFailover: two directors, each running xvs (AF_XDP) with master
// and backup sync daemons and keepalived (VRRP, tracking xvs), three real
// servers running SIPp, long SIP calls with an in-dialog INFO and a BYE
// long after their INVITE, rr scheduling. The active director's xvs is
// killed (kill -9) mid-calls, then, in a second batch, every process of its
// namespace; each time it comes back and takes the traffic back (failback).
// Every call completes, every request of a call reaches the real server
// that got its INVITE (counted at the real servers), and the failover times
// and the sync lag at 1000 new calls a second are reported.
func TestRootFailover(t *testing.T) {
	testenv.Require(t, ha.Check())
	dir := t.TempDir()
	f, err := ha.New(t.Context(), ha.Options{XVS: xvsBinary(t), XVSAdm: xvsadmBinary(t), Dir: dir})
	if err != nil {
		if strings.Contains(err.Error(), "not supported") {
			testenv.Require(t, fmt.Errorf("%w: %v", errNoBackend, err))
		}
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	a, b := f.Directors[0], f.Directors[1]
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s%s", append(args, a.Logs(), b.Logs())...)
	}
	tm := ha.DefaultTimers
	t.Logf("timers: VRRP advert_int %ds, track script every %ds (fall 1), A's preempt_delay %ds, sync_refresh_period %ds",
		tm.AdvertInt, tm.CheckInterval, tm.PreemptDelay, tm.RefreshPeriod)
	for _, d := range f.Directors {
		if out, err := d.Admin("-L", "--daemon"); err != nil || strings.Count(out, "sync daemon") != 2 {
			fail("%s: -L --daemon: %v\n%s", d.Name, err, out)
		}
	}

	// The sync lag at 1000 new calls a second: A creates the templates, B
	// measures from when A's workers queued them to their entry in its own
	// table (xvs_sync_lag_seconds).
	before, err := b.Metrics()
	if err != nil {
		fail("metrics: %v", err)
	}
	sent, err := f.NewCalls(haLagRate, haLagFor)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	after, err := b.Metrics()
	if err != nil {
		fail("metrics: %v", err)
	}
	lag := ha.SyncLag(after, ha.SyncLagCounts(before))
	am, _ := a.Metrics()
	t.Logf("sync lag at %d new calls/s (%d sent in %v): %d templates measured on B, median ≤ %v, p99 ≤ %v, mean %v, max %v; A's master: %v entries in %v messages, ring drops %v, queue drops %v",
		haLagRate, sent, haLagFor, lag.Count, lag.Median, lag.P99, lag.Mean.Round(time.Microsecond), lag.Max.Round(time.Microsecond),
		am["xvs_sync_master_entries_total"], am["xvs_sync_master_messages_total"], am["xvs_sync_master_ring_drops_total"], am["xvs_sync_master_queue_drops_total"])
	if lag.Count < uint64(sent)*95/100 {
		fail("B measured the lag of %d templates, A got %d new calls", lag.Count, sent)
	}
	if lag.Median > 100*time.Millisecond || lag.Max > time.Second {
		t.Errorf("sync lag: median ≤ %v, max %v; goal median ≤ 100 ms, max ≤ 1 s", lag.Median, lag.Max)
	}

	for _, sc := range []struct {
		name    string
		kill    func() error
		restart func() error
	}{
		{"kill -9 of A's xvs", func() error { a.KillXVS(); return nil }, a.StartXVS},
		{"every process of A's namespace killed", a.KillAll, func() error {
			if err := a.StartXVS(); err != nil {
				return err
			}
			return a.StartKeepalived()
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			runFailover(t, f, sc.kill, sc.restart)
		})
	}
}

// runFailover runs a batch of long calls through A, kills A (kill) after
// haKillAt, checks B takes over, brings A back (restart) once B has, waits
// for A to take the traffic back, and checks the calls.
func runFailover(t *testing.T, f *ha.Farm, kill, restart func() error) {
	a, b := f.Directors[0], f.Directors[1]
	dump := func() string { return a.Logs() + b.Logs() }
	if err := f.WaitMaster(a, haFailover); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type result struct {
		res sipp.Result
		err error
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan result, 1)
	go func() {
		r, err := f.UAC(ctx, haCalls, haRate, haPause, dir)
		done <- result{r, err}
	}()
	time.Sleep(haKillAt)
	killed := time.Now()
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitTakeOver(b, haFailover); err != nil {
		t.Fatal(err)
	}
	tookOver := time.Since(killed)
	if err := restart(); err != nil {
		t.Fatalf("%v\n%s", err, dump())
	}
	restarted := time.Now()
	if err := f.WaitMaster(a, haFailover+time.Duration(ha.DefaultTimers.PreemptDelay)*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Since(restarted)
	r := <-done
	elapsed := time.Since(start)

	// The calls: all completed, none failed.
	if r.err != nil || r.res.ExitCode != 0 || r.res.Successful != haCalls || r.res.Failed != 0 {
		t.Errorf("sipp: %d successful, %d failed of %d, exit %d, %v\n%s\n%s", r.res.Successful, r.res.Failed, haCalls,
			r.res.ExitCode, r.err, r.res.Output, dump())
	}
	// At the real servers: each call's requests on one server, which got
	// them all.
	batch := f.Counter.Settled(func(id string) bool { return !strings.HasPrefix(id, "lag-") && !seen[id] }, 3*time.Second)
	split, incomplete := batch.Split()
	if len(batch) != haCalls || len(split) != 0 || len(incomplete) != 0 {
		t.Errorf("%d calls at the real servers (want %d); %d split: %v; %d incomplete: %v", len(batch), haCalls, len(split),
			first(split, 5), len(incomplete), first(incomplete, 5))
	}
	// The failover and failback times, from the probe stream.
	probes := f.Counter.Probes()
	over, ok1 := ha.SwitchAfter(probes, killed)
	backSw, ok2 := ha.SwitchAfter(probes, over.FirstTo.Add(time.Millisecond))
	if !ok1 || !ok2 || over.To != b.MAC || backSw.To != a.MAC {
		t.Errorf("probe stream: failover %v %+v, failback %v %+v", ok1, over, ok2, backSw)
	}
	t.Logf("%d calls (≥ %d live at the failover), %v; %d retransmissions; B master %v after the kill; failover: last datagram through A → first through B %v; A master again %v after its restart; failback interruption %v; 0 split, 0 failed",
		r.res.Successful, haCalls, elapsed.Round(time.Millisecond), r.res.Retransmissions, tookOver.Round(time.Millisecond),
		over.Interrupt.Round(time.Millisecond), back.Round(time.Millisecond), backSw.Interrupt.Round(time.Millisecond))
	markSeen(batch)
}

// seen remembers the Call-IDs of earlier batches (SIPp's Call-IDs do not
// tell the batch).
var seen = map[string]bool{}

func markSeen(c ha.Calls) {
	for id := range c {
		seen[id] = true
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
