package daemon

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
)

// DefaultPollTimeout is how long a worker waits for frames before it runs
// an empty batch anyway: table sweeps and control-plane requests must make
// progress on an idle queue, and 50 ms keeps an idle worker's wake-ups rare.
const DefaultPollTimeout = 50 * time.Millisecond

// Runner runs one pipeline worker on one queue: receive a batch, decide,
// rewrite in place, transmit, on one locked OS thread. Frames the worker
// emits besides the batch (held fragments, see pipeline.Worker.Emitted) go
// out after it through dataplane.CopyTransmitter when the queue has it.
type Runner struct {
	Queue  dataplane.Queue
	Worker *pipeline.Worker
	// Clock returns the time in nanoseconds on a monotonic scale; it is
	// read once per batch. Nil means the process's monotonic clock.
	Clock func() int64
	// PollTimeout bounds a wait for frames (0 = DefaultPollTimeout).
	PollTimeout time.Duration

	requests chan request
}

type request struct {
	fn   func(*pipeline.Worker)
	done chan struct{}
}

var epoch = time.Now()

// Monotonic is the default clock: nanoseconds on the process's monotonic
// clock (unaffected by wall-clock steps).
func Monotonic() int64 { return int64(time.Since(epoch)) }

func (r *Runner) init() {
	if r.requests == nil {
		r.requests = make(chan request)
	}
}

// Prepare must be called before Run and Do are used from different
// goroutines.
func (r *Runner) Prepare() { r.init() }

// Run processes batches until the queue is closed (it then returns nil) or
// fails. It locks its goroutine to an OS thread.
func (r *Runner) Run() error {
	r.init()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	clock := r.Clock
	if clock == nil {
		clock = Monotonic
	}
	timeout := r.PollTimeout
	if timeout <= 0 {
		timeout = DefaultPollTimeout
	}
	b := dataplane.NewBatch(0)
	out := make([]pipeline.Decision, dataplane.MaxBatch)
	w := r.Worker
	for {
		select {
		case req := <-r.requests:
			req.fn(w)
			close(req.done)
		default:
		}
		err := r.Queue.Receive(b, timeout)
		if errors.Is(err, dataplane.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		now := clock()
		if b.N == 0 {
			w.BeginBatch(now)
			w.EndBatch()
			continue
		}
		w.ProcessFrames(b.Frames[:b.N], b.Room[:b.N], b.Link, now, out)
		for i := range b.N {
			b.Send[i] = out[i].Reason.Verdict() == pipeline.Forward
			out[i] = pipeline.Decision{} // drop references into the frames
		}
		if err := r.Queue.Transmit(b); err != nil && !errors.Is(err, dataplane.ErrClosed) {
			return err
		}
		if em := w.Emitted(); len(em) > 0 {
			unsent, err := transmitEmitted(r.Queue, em)
			w.CountUnsent(unsent)
			if err != nil && !errors.Is(err, dataplane.ErrClosed) {
				return err
			}
		}
	}
}

// Do runs fn on the worker's goroutine between two batches and waits for it:
// the way the control plane reads a worker's tables (listings, template
// snapshots), which only their owner may touch. fn must be quick and must
// not call Do.
func (r *Runner) Do(ctx context.Context, fn func(*pipeline.Worker)) error {
	req := request{fn: fn, done: make(chan struct{})}
	select {
	case r.requests <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		// fn is running or about to; wait for it so its captures stay valid.
		<-req.done
		return ctx.Err()
	}
}

// transmitEmitted sends the frames the worker emitted during the last batch
// on q, or counts them as unsent when q cannot send copies.
func transmitEmitted(q dataplane.Queue, emitted [][]byte) (unsent int, err error) {
	ct, ok := q.(dataplane.CopyTransmitter)
	if !ok {
		return len(emitted), nil
	}
	n, err := ct.TransmitCopies(emitted)
	return len(emitted) - n, err
}

// FilterOf derives a backend filter from a configuration snapshot: every
// virtual service, and every NAT real server (whose replies and own
// requests come back through the balancer).
func FilterOf(s *ipvs.Snapshot) dataplane.Filter {
	var f dataplane.Filter
	if s == nil {
		return f
	}
	seen := map[dataplane.RealServerMatch]bool{}
	for _, svc := range s.Services() {
		proto := uint8(svc.Protocol)
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: proto, Addr: svc.Key.Addr, Port: svc.Key.Port})
		for _, d := range svc.Dests {
			if d.Fwd != ipvs.Masq {
				continue
			}
			m := dataplane.RealServerMatch{Protocol: proto, Addr: d.Addr}
			if !seen[m] {
				seen[m] = true
				f.RealServers = append(f.RealServers, m)
			}
		}
	}
	return f
}
