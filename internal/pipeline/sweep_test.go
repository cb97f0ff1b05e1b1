package pipeline

import (
	"fmt"
	"testing"
	"time"
)

func TestSweepSlots(t *testing.T) {
	p := int64(DefaultSweepPeriod)
	for _, c := range []struct {
		capacity int
		el       int64
		want     int
	}{
		{1 << 20, int64(20 * time.Microsecond), 10}, // a small batch at moderate load
		{1 << 20, 0, minSweepSlots},                 // a clock that does not move
		{1 << 20, p, maxSweepSlots},                 // after an idle pause: bounded
		{256, p, 256},                               // a small table: once per period
		{256, p / 2, 128},
	} {
		if got := sweepSlots(c.capacity, c.el, p); got != c.want {
			t.Errorf("sweepSlots(%d, %d) = %d, want %d", c.capacity, c.el, got, c.want)
		}
	}
}

// TestSweepFollowsTime: expired templates are swept within a sweep period
// of batches spread over it, however few frames those batches carry (here
// none).
func TestSweepFollowsTime(t *testing.T) {
	const capacity = 1 << 12
	l := newLabSized(t, 1, "-A -u 10.0.0.1:5060 -s rr -p 1 -M 0.0.0.0 --pe sip -o\n-a -u 10.0.0.1:5060 -r 192.168.0.1 -g\n", capacity)
	w := l.workers[0]
	for i := range 100 {
		l.call(0, "10.9.0.1:5060", "10.0.0.1:5060", fmt.Sprintf("call-%d", i))
	}
	if live := w.Templates().Stats().Live; live != 100 {
		t.Fatalf("%d live templates, want 100", live)
	}
	l.advance(2 * time.Second) // every template has expired (-p 1)
	// Empty batches spread over one period: one full pass.
	const steps = 10
	for range steps {
		l.advance(DefaultSweepPeriod / steps)
		w.BeginBatch(l.now)
		w.EndBatch()
	}
	if live := w.Templates().Stats().Live; live != 0 {
		t.Errorf("%d live templates a sweep period after they expired", live)
	}
}
