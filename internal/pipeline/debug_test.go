package pipeline

import (
	"fmt"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

func TestDebugEvents(t *testing.T) {
	l := newLab(t, 1, sipRules)
	l.now = 5e8 // a clock that starts near zero, like the daemon's monotonic one
	var dl DebugLog
	l.workers[0].debug = &dl
	l.call(0, "10.4.3.7:5060", vip, "dbg-1") // recording off: nothing
	var got []string
	dl.Drain(func(e *DebugEvent) { got = append(got, "x") })
	if len(got) != 0 {
		t.Fatalf("events while disabled: %d", len(got))
	}
	dl.SetEnabled(true)
	l.call(0, "10.4.3.7:5060", vip, "dbg-2")
	dl.Drain(func(e *DebugEvent) {
		got = append(got, fmt.Sprintf("%d %s %v %d", e.Kind, e.Key(), e.VirtualAddr(), e.Len))
	})
	want := []string{
		"1 dbg-2 10.4.3.192:5060 5", "3 dbg-2 10.4.3.192:5060 5", // INVITE: callid, not hit
		"1 dbg-2 10.4.3.192:5060 5", "2 dbg-2 10.4.3.192:5060 5", // ACK: callid, hit
		"1 dbg-2 10.4.3.192:5060 5", "2 dbg-2 10.4.3.192:5060 5", // BYE
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %q\nwant %q", got, want)
	}
	// The rate limit: at most debugPerSecond events per worker per second,
	// the rest dropped without blocking.
	frame := sip("10.4.3.7:5060", vip, craft.SIPInvite("flood"))
	n := 0
	w := l.workers[0]
	var d Decision
	for range 3 * debugPerSecond {
		w.BeginBatch(l.now)
		w.Process(append([]byte(nil), frame...), packet.LinkEthernet, &d)
		w.EndBatch()
		dl.Drain(func(*DebugEvent) { n++ })
	}
	if n+len(want) != debugPerSecond { // the same second already spent len(want)
		t.Fatalf("%d+%d events in one second, want the limit %d", n, len(want), debugPerSecond)
	}
	l.advance(1e9) // a new second, a new budget
	w.BeginBatch(l.now)
	w.Process(append([]byte(nil), frame...), packet.LinkEthernet, &d)
	w.EndBatch()
	n = 0
	dl.Drain(func(*DebugEvent) { n++ })
	if n != 2 {
		t.Fatalf("%d events in the next second, want 2", n)
	}
	// Enabled or not, recording allocates nothing.
	buf := make([]byte, len(frame))
	if a := testing.AllocsPerRun(200, func() {
		copy(buf, frame)
		w.Process(buf, packet.LinkEthernet, &d)
	}); a != 0 {
		t.Fatalf("%v allocations per packet with debug on", a)
	}
}
