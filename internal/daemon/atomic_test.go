package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
)

// manyServices returns -A/-a commands for n services on distinct VIPs.
func manyServices(t *testing.T, n int) []ipvsadm.Command {
	t.Helper()
	var cmds []ipvsadm.Command
	for i := range n {
		cmds = append(cmds, parse(t, fmt.Sprintf("-A -u 10.1.%d.%d:5060 -s rr", i/250, i%250+1)))
	}
	return cmds
}

// A change the backend's filter cannot hold is refused as a whole: the
// running configuration keeps serving, and every later command works (issue
// 10 item 2: it used to leave the live model changed and every command
// failing with "filter too large" until -C).
func TestRefusedAtFilterCapacityChangesNothing(t *testing.T) {
	d, b := start(t, 1, "")
	defer d.Close()
	b.capacity = 8 // the rules hold 1 service + 2 NAT real servers
	ctx := context.Background()
	b.queues[0].Inject(invite("10.9.0.1:5060", "counted"))
	waitSent(t, b.queues[0], 1)
	before := d.Snapshot()
	conns := before.Services()[0].Stats.Read().Conns
	nfilters := len(b.filters)

	// -R of more services than fit, with a -Z: nothing happens, not even
	// the zeroing.
	if err := d.ApplyAll(ctx, append([]ipvsadm.Command{parse(t, "-Z")}, manyServices(t, 10)...)); err == nil {
		t.Fatal("ApplyAll beyond the filter's capacity succeeded")
	}
	if d.Snapshot() != before || len(b.filters) != nfilters {
		t.Fatal("a refused change was published")
	}
	if got := before.Services()[0].Stats.Read().Conns; got != conns || conns == 0 {
		t.Fatalf("conns %d after a refused -R with -Z, was %d", got, conns)
	}
	// One command too many, after commands that fit.
	if err := d.Apply(ctx, parse(t, "-A -u 10.2.0.1:5060")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		d.Apply(ctx, parse(t, fmt.Sprintf("-A -u 10.3.0.%d:5060", i+1)))
	}
	if err := d.Apply(ctx, parse(t, "-A -u 10.3.0.99:5060")); err == nil {
		t.Fatal("a service beyond the filter's capacity was accepted")
	}
	if got := len(d.Snapshot().Services()); got > 8 {
		t.Fatalf("%d services running", got)
	}
	// Every later command works, including a delete of a real server.
	if err := d.Apply(ctx, parse(t, "-d -u 10.0.0.1:5060 -r 192.168.0.2:5060")); err != nil {
		t.Fatalf("-d after a refused change: %v", err)
	}
	svc := d.Snapshot().Lookup(17, before.Services()[0].Key.Addr, 5060)
	if svc == nil || len(svc.Dests) != 1 {
		t.Fatalf("after -d: %+v", svc)
	}
	last := b.filters[len(b.filters)-1]
	if len(last.RealServers) != 1 || len(b.filters) <= nfilters {
		t.Fatalf("filter after -d: %+v", last)
	}
	// The refusal names the limit.
	err := d.ApplyAll(ctx, manyServices(t, 10))
	if err == nil || !strings.Contains(err.Error(), "filter") {
		t.Fatalf("refusal: %v", err)
	}
}
