package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xvs-lb/xvs/internal/ha"
)

// HAOptions configure the failover demo.
type HAOptions struct {
	XVS, XVSAdm string // the binaries
	Mode        string // xvs run --mode (afxdp by default)
	Calls       int    // long calls in flight (default 120)
	Out         io.Writer
}

// CheckHA reports what the failover demo needs and is missing.
func CheckHA() error {
	if err := ha.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrCannotRun, err)
	}
	return nil
}

// RunHA runs the failover demo: two directors (xvs with both sync daemons,
// keepalived), long SIP calls, the active director's xvs killed mid-calls,
// the backup taking over with every call, the first director back. When
// ctx ends first it tears everything down and returns ErrInterrupted.
func RunHA(ctx context.Context, o HAOptions) (err error) {
	if err := CheckHA(); err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ErrInterrupted, context.Cause(ctx))
		}
	}()
	if o.Calls == 0 {
		o.Calls = 120
	}
	w := o.Out
	dir, err := os.MkdirTemp("", "xvs-demo-ha-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t := ha.DefaultTimers
	say(w, "building the lab: client, router, directors A and B, 3 real servers (SIPp); keepalived moves %v, the router's next hop for the VIPs", ha.VRRPAddr)
	f, err := ha.New(ctx, ha.Options{XVS: o.XVS, XVSAdm: o.XVSAdm, Mode: o.Mode, Dir: dir, Prefix: "xvsdemo"})
	if err != nil {
		return err
	}
	defer func() {
		say(w, "tearing the lab down")
		f.Close()
	}()
	a, b := f.Directors[0], f.Directors[1]
	indent(w, fmt.Sprintf("VRRP advert_int %ds, keepalived asks xvs every %ds (track script: xvsadm -L), A's preempt_delay %ds, sync_refresh_period %ds\n",
		t.AdvertInt, t.CheckInterval, t.PreemptDelay, t.RefreshPeriod))
	for _, d := range f.Directors {
		out, _ := d.Admin("-L", "--daemon")
		say(w, "director %s (%v, VRRP priority %d, master %v): xvsadm -L --daemon", d.Name, d.Host.Addr4, d.Priority, d.Master())
		indent(w, out)
	}

	const pause = 8 * time.Second
	say(w, "placing %d long calls with SIPp: INVITE, an INFO %v later, a BYE %v after that", o.Calls, pause, pause)
	type result struct {
		calls int
		fail  int
		err   error
	}
	done := make(chan result, 1)
	go func() {
		r, err := f.UAC(ctx, o.Calls, 40, pause, dir)
		done <- result{r.Successful, r.Failed, err}
	}()
	time.Sleep(4 * time.Second)
	say(w, "director A's templates (xvsadm -Lcn --persistent-conn, first lines):")
	out, _ := a.Admin("-Lcn", "--persistent-conn")
	indent(w, head(out, 5))
	say(w, "director B's copies, received from A's master sync daemon (marked SYNC):")
	out, _ = b.Admin("-Lcn", "--persistent-conn")
	indent(w, head(out, 5))

	killed := time.Now()
	say(w, "kill -9 of xvs on director A, mid-calls")
	a.KillXVS()
	if err := f.WaitTakeOver(b, 15*time.Second); err != nil {
		return err
	}
	say(w, "director B is the VRRP master %v later; the calls' INFOs go through B", time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	say(w, "restarting xvs on director A: its backup daemon learns every live call from B's within a refresh period, then A takes the traffic back (preempt_delay)")
	if err := a.StartXVS(); err != nil {
		return err
	}
	if err := f.WaitMaster(a, 20*time.Second); err != nil {
		return err
	}
	say(w, "director A is the VRRP master again; the calls' BYEs go through A")
	r := <-done
	if r.err != nil {
		return r.err
	}
	batch := f.Counter.Settled(func(id string) bool { return !strings.HasPrefix(id, "lag-") }, 3*time.Second)
	split, incomplete := batch.Split()
	probes := f.Counter.Probes()
	over, _ := ha.SwitchAfter(probes, killed)
	back, _ := ha.SwitchAfter(probes, over.FirstTo.Add(time.Millisecond))
	say(w, "result")
	indent(w, fmt.Sprintf("SIPp: %d calls successful, %d failed\n", r.calls, r.fail))
	indent(w, fmt.Sprintf("at the real servers: %d calls, %d split over servers, %d missing a request\n", len(batch), len(split), len(incomplete)))
	indent(w, fmt.Sprintf("failover: last datagram through A → first through B: %v; failback interruption: %v\n",
		over.Interrupt.Round(time.Millisecond), back.Interrupt.Round(time.Millisecond)))
	m, err := b.Metrics()
	if err == nil {
		lag := ha.SyncLag(m, nil)
		indent(w, fmt.Sprintf("sync lag measured on B (master queued → in B's table): %d templates, median ≤ %v, max %v\n",
			lag.Count, lag.Median, lag.Max.Round(time.Millisecond)))
	}
	for _, s := range append(split, incomplete...) {
		indent(w, s+"\n")
	}
	if r.fail != 0 || len(split) != 0 || len(incomplete) != 0 {
		return errors.New("demo check failed: calls failed or split")
	}
	return nil
}

func head(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[:min(len(lines), n)], "")
}
