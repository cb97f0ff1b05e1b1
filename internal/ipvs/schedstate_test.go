package ipvs

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xvs-lb/xvs/internal/sched"
)

// picks schedules n times on worker 0 of the current snapshot and returns
// the chosen real servers' last address bytes ("3 2 1 3").
func picks(t *testing.T, c *Config, n int) string {
	t.Helper()
	svc := c.Snapshot().Services()[0]
	var out []string
	for range n {
		d := svc.Schedule(0, &sched.Input{})
		if d == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, fmt.Sprint(d.Addr.Addr().As4()[3]))
	}
	return strings.Join(out, " ")
}

func rs(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 5060)
}

func schedService(c *Config, t *testing.T, name string, weights ...int) ServiceKey {
	t.Helper()
	must(t, c.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: name}))
	for i, w := range weights {
		d := DefaultDest(rs(i + 1))
		d.Weight = w
		must(t, c.AddDest(vkey, d))
	}
	return vkey
}

func edit(c *Config, t *testing.T, i, w int) {
	t.Helper()
	d := DefaultDest(rs(i))
	d.Weight = w
	must(t, c.EditDest(vkey, d))
}

// rr keeps its position across every change the kernel's does
// (ip_vs_rr.c: no add_dest or upd_dest; ip_vs_rr_del_dest moves it back to
// the previous server only when the current one is deleted; -E with the
// same scheduler does not rebind it). Issue 10 item 9: xvs restarted at the
// newest server after any edit.
func TestRRKeepsPositionAcrossEdits(t *testing.T) {
	c, _ := newConfig(t, 1)
	schedService(c, t, "rr", 1, 1, 1) // list order: 3 2 1 (IPVS prepends)
	if got := picks(t, c, 2); got != "3 2" {
		t.Fatalf("first picks %q", got)
	}
	edit(c, t, 2, 1) // -e with no real change
	if got := picks(t, c, 1); got != "1" {
		t.Fatalf("after -e of a server: %q, want 1 (the kernel keeps its position)", got)
	}
	must(t, c.EditService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr", Persistent: true}))
	if got := picks(t, c, 1); got != "3" {
		t.Fatalf("after -E with the same scheduler: %q, want 3", got)
	}
	must(t, c.SetNextHop(vkey, rs(1), [6]byte{2, 0, 0, 0, 0, 1}))
	if got := picks(t, c, 1); got != "2" {
		t.Fatalf("after a next-hop change: %q, want 2", got)
	}
	// A new server goes to the head of the list; the position stays on 2.
	must(t, c.AddDest(vkey, DefaultDest(rs(4)))) // list: 4 3 2 1
	if got := picks(t, c, 3); got != "1 4 3" {
		t.Fatalf("after -a: %q, want 1 4 3", got)
	}
	// Deleting the current server (3) moves the position to the one before
	// it (4): the next pick is the one after 4, now 2.
	must(t, c.DelDest(vkey, rs(3))) // list: 4 2 1
	if got := picks(t, c, 2); got != "2 1" {
		t.Fatalf("after -d of the current server: %q, want 2 1", got)
	}
	// Deleting another server keeps the position.
	must(t, c.DelDest(vkey, rs(2))) // list: 4 1
	if got := picks(t, c, 1); got != "4" {
		t.Fatalf("after -d of another server: %q, want 4", got)
	}
	// Deleting the current server at the head of the list moves the
	// position to the head: the next pick is the first server.
	must(t, c.DelDest(vkey, rs(4)))              // list: 1
	must(t, c.AddDest(vkey, DefaultDest(rs(5)))) // list: 5 1
	if got := picks(t, c, 2); got != "5 1" {
		t.Fatalf("after -d of the head's current server: %q, want 5 1", got)
	}
	// Health and drain changes of a server are weight changes: kept.
	must(t, c.Drain(vkey, rs(5), -1))
	if got := picks(t, c, 2); got != "1 1" {
		t.Fatalf("while 5 drains: %q", got)
	}
	must(t, c.Undrain(vkey, rs(5)))
	if got := picks(t, c, 1); got != "5" {
		t.Fatalf("after undrain: %q, want 5", got)
	}
	// Another scheduler is bound afresh, and so is rr bound again.
	must(t, c.EditService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "wlc"}))
	c.Snapshot()
	must(t, c.EditService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	if got := picks(t, c, 1); got != "5" {
		t.Fatalf("after rebinding rr: %q, want 5 (the head)", got)
	}
}

// wrr follows ip_vs_wrr_dest_changed: adding, deleting or editing a server
// (even with no real change) restarts the round at the list head with the
// new gcd and maximum weight, keeping the current weight where it still
// fits; other changes (-E with the same scheduler, next hops) keep the
// position and the current weight.
func TestWRRStateAcrossEdits(t *testing.T) {
	c, _ := newConfig(t, 1)
	schedService(c, t, "wrr", 2, 4) // list: 2(w4) 1(w2); di 2, mw 3
	if got := picks(t, c, 6); got != "2 2 1 2 2 1" {
		t.Fatalf("wrr 4:2: %q", got)
	}
	if got := picks(t, c, 2); got != "2 2" { // cw is now 1, position on 2
		t.Fatalf("%q", got)
	}
	must(t, c.EditService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "wrr", Persistent: true}))
	must(t, c.SetNextHop(vkey, rs(1), [6]byte{2, 0, 0, 0, 0, 1}))
	if got := picks(t, c, 4); got != "1 2 2 1" {
		t.Fatalf("after -E and a next-hop change: %q, want 1 2 2 1 (kept)", got)
	}
	picks(t, c, 2)   // 2 2: cw 1, position on 2
	edit(c, t, 1, 2) // -e with no real change: head, cw (1/2)*2+1 = 1
	if got := picks(t, c, 5); got != "2 1 2 2 1" {
		t.Fatalf("after -e: %q, want 2 1 2 2 1 (restart at the head, cw kept)", got)
	}
	// A change of weights: a current weight above the new maximum comes
	// down to it.
	if got := picks(t, c, 1); got != "2" { // a new round: cw 3
		t.Fatalf("%q", got)
	}
	edit(c, t, 2, 1) // list: 2(w1) 1(w2) → di 1, mw 2; cw 3 → 2
	if got := picks(t, c, 3); got != "1 2 1" {
		t.Fatalf("after -e -w 1: %q, want 1 2 1", got)
	}
}

// The overload marks of the threshold hysteresis belong to each server
// and survive changes of other servers (IP_VS_DEST_F_OVERLOAD); raising or
// removing a server's upper threshold clears its mark (__ip_vs_update_dest).
func TestOverloadMarksAcrossEdits(t *testing.T) {
	c, _ := newConfig(t, 1)
	schedService(c, t, "rr", 1, 1) // list: 2 1
	d1 := DefaultDest(rs(1))
	d1.Upper, d1.Lower = 4, 2
	must(t, c.EditDest(vkey, d1))
	st := c.Snapshot().Services()[0].Dests[1].Stats
	st.Worker(0).AddInactive(4) // at the upper threshold: overloaded
	if got := picks(t, c, 3); got != "2 2 2" {
		t.Fatalf("1 overloaded: %q", got)
	}
	st.Worker(0).AddInactive(-1) // 3: above the lower threshold, still overloaded
	edit(c, t, 2, 1)
	if got := picks(t, c, 2); got != "2 2" {
		t.Fatalf("after -e of 2, 1 at 3 conns (between thresholds): %q, want 2 2", got)
	}
	d1.Upper = 8
	must(t, c.EditDest(vkey, d1))
	if got := picks(t, c, 2); got != "1 2" {
		t.Fatalf("after raising 1's upper threshold: %q, want 1 2", got)
	}
}

// Workers carry their states over to new snapshots while the control plane
// compiles more: each State is only ever touched by its worker (run with
// -race).
func TestSchedStateHandOverConcurrently(t *testing.T) {
	c, _ := newConfig(t, 2)
	schedService(c, t, "wrr", 1, 2, 3)
	var cur atomic.Pointer[Snapshot]
	cur.Store(c.Snapshot())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := &sched.Input{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := cur.Load()
				for range 100 {
					s.Services()[0].Schedule(w, in)
				}
			}
		}()
	}
	for i := range 300 {
		switch i % 3 {
		case 0:
			edit(c, t, 1+i%3, 1+i%5)
		case 1:
			must(t, c.AddDest(vkey, DefaultDest(rs(10+i%7))))
		case 2:
			must(t, c.DelDest(vkey, rs(10+(i-1)%7)))
		}
		cur.Store(c.Snapshot())
	}
	close(stop)
	wg.Wait()
}
