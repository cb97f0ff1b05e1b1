package afxdp

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// TestReceiveYields: a worker that only calls Receive (it never blocks in
// the Go scheduler) yields every schedYield — another goroutine on the one P
// runs once per yield, not only when sysmon preempts the worker (every
// 10 ms) — and not more often; Receive still allocates nothing.
func TestReceiveYields(t *testing.T) {
	q, err := newQueue(queueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.release()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	b := dataplane.NewBatch(packet.LinkEthernet)
	// The other goroutine counts and yields back at once: on one P it
	// runs once per yield of the worker (or preemption by sysmon, every
	// 10 ms).
	var ran atomic.Int64
	var stop atomic.Bool
	go func() {
		for !stop.Load() {
			ran.Add(1)
			runtime.Gosched()
		}
	}()
	const span = 60 * time.Millisecond
	start := time.Now()
	for time.Since(start) < span {
		if err := q.Receive(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	if max := uint64(span/schedYield) + 1; q.yields < 2 || q.yields > max {
		t.Errorf("%d yields in %v, want 2..%d", q.yields, span, max)
	}
	if n := ran.Load(); n < int64(q.yields)-1 {
		t.Errorf("the other goroutine ran %d times in %v, want once per yield (%d)", n, span, q.yields)
	}
	q.lastYield = time.Now()
	if a := testing.AllocsPerRun(100, func() { q.Receive(b, 0) }); a != 0 {
		t.Errorf("Receive allocates %.1f per call", a)
	}
}
