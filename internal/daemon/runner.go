package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/packet"
)

// DefaultPollTimeout is how long a worker waits for frames before it runs
// an empty batch anyway: table sweeps and control-plane requests must make
// progress on an idle queue, and 50 ms keeps an idle worker's wake-ups rare.
const DefaultPollTimeout = 50 * time.Millisecond

// holdPollTimeout is the wait while the worker holds frames for a
// neighbour: the next-hop table wakes the queue when one resolves
// (dataplane.Waker), and without that a frame waits at most this long
// after the answer.
const holdPollTimeout = time.Millisecond

// Runner runs one pipeline worker on one queue: receive a batch, decide,
// rewrite in place, transmit — each frame on the interface its decision
// names (pipeline.Out), or to the host's own stack (Local) — on one locked
// OS thread. Frames the worker emits besides the batch (held fragments,
// frames that waited for a neighbour, see pipeline.Worker.Emitted) go out
// after it through dataplane.CopyTransmitter when the queue has it.
type Runner struct {
	Queue  dataplane.Queue
	Worker *pipeline.Worker
	// Clock returns the time in nanoseconds on a monotonic scale; it is
	// read once per batch. Nil means the process's monotonic clock.
	Clock func() int64
	// PollTimeout bounds a wait for frames (0 = DefaultPollTimeout).
	PollTimeout time.Duration
	// Local hands frames to the host's own stack (Local real servers);
	// nil counts them as unsent.
	Local *localSender
	// Pin restricts the worker's thread to CPU (sched_setaffinity): with
	// the queue's interrupts on the same CPU, a frame stays in one CPU's
	// caches from the driver to the transmit.
	Pin bool
	CPU int
	// Nice, when not 0, is the nice value of the worker's thread
	// (setpriority on the thread, -20..19): a negative one lets the worker
	// take its CPU from other processes' tasks when it has frames, as the
	// kernel's IPVS, run in softirq, does before any task.
	Nice int

	requests   chan request
	local      [][]byte // this batch's frames for the host's stack
	localPorts []uint16 // and their Out.LocalPort
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
// fails. It locks its goroutine to an OS thread, pinned to r.CPU with Pin
// (an error wrapping ErrPin if the kernel refuses that CPU) and at nice
// value r.Nice (an error wrapping ErrNice if the kernel refuses it).
func (r *Runner) Run() error {
	r.init()
	runtime.LockOSThread()
	if !r.Pin && r.Nice == 0 {
		defer runtime.UnlockOSThread()
	} // else the thread is not handed back to other goroutines (no Unlock): exiting it is cheaper than restoring its mask and priority
	if r.Pin {
		var set unix.CPUSet
		set.Set(r.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("worker on CPU %d: %w (%w)", r.CPU, ErrPin, err)
		}
	}
	if r.Nice != 0 {
		// PRIO_PROCESS with a thread id sets that thread's nice value
		// on Linux (nice values are per thread).
		if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), r.Nice); err != nil {
			return fmt.Errorf("worker at nice %d: %w (%w)", r.Nice, ErrNice, err)
		}
	}
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
	r.local = make([][]byte, 0, dataplane.MaxBatch)
	r.localPorts = make([]uint16, 0, dataplane.MaxBatch)
	w := r.Worker
	for {
		select {
		case req := <-r.requests:
			req.fn(w)
			close(req.done)
		default:
		}
		wait := timeout
		if w.Holding() {
			wait = min(wait, holdPollTimeout)
		}
		err := r.Queue.Receive(b, wait)
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
			if err := r.sendEmitted(b.Link); err != nil {
				return err
			}
			continue
		}
		w.ProcessFrames(b.Frames[:b.N], b.Room[:b.N], b.Link, now, out)
		for i := range b.N {
			d := &out[i]
			send := d.Reason.Verdict() == pipeline.Forward
			switch {
			case send && d.Out.Local:
				r.local = append(r.local, b.Frames[i])
				r.localPorts = append(r.localPorts, d.Out.LocalPort)
				send = false
			case send && d.Out.Routed:
				b.Port[i] = uint8(d.Out.Port)
			}
			b.Send[i] = send
			*d = pipeline.Decision{} // drop references into the frames
		}
		if len(r.local) > 0 {
			// Before Transmit: the frames are the backend's again after it.
			r.toLocal(r.local, r.localPorts, b.Link)
			clear(r.local)
			r.local, r.localPorts = r.local[:0], r.localPorts[:0]
		}
		if err := r.Queue.Transmit(b); err != nil && !errors.Is(err, dataplane.ErrClosed) {
			return err
		}
		if err := r.sendEmitted(b.Link); err != nil {
			return err
		}
	}
}

// toLocal hands frames to the host's stack (ports: their Out.LocalPort),
// counting those it could not.
func (r *Runner) toLocal(frames [][]byte, ports []uint16, link packet.LinkType) {
	sent := 0
	if r.Local != nil {
		sent = r.Local.Send(frames, ports, link)
	}
	r.Worker.CountUnsent(len(frames) - sent)
}

// sendEmitted sends the frames the worker emitted besides the batch: each
// run of frames for one port with one TransmitCopies, in order; the host's
// own ones through Local.
func (r *Runner) sendEmitted(link packet.LinkType) error {
	w := r.Worker
	em, outs := w.Emitted(), w.EmittedOut()
	if len(em) == 0 {
		return nil
	}
	ct, _ := r.Queue.(dataplane.CopyTransmitter)
	var firstErr error
	for i := 0; i < len(em); {
		o := outs[i]
		j := i + 1
		for j < len(em) && outs[j] == o {
			j++
		}
		run := em[i:j]
		i = j
		if o.Local {
			r.localPorts = r.localPorts[:0]
			for range run {
				r.localPorts = append(r.localPorts, o.LocalPort)
			}
			r.toLocal(run, r.localPorts, link)
			r.localPorts = r.localPorts[:0]
			continue
		}
		if ct == nil {
			w.CountUnsent(len(run))
			continue
		}
		port := uint8(0)
		if o.Routed {
			port = uint8(o.Port)
		}
		n, err := ct.TransmitCopies(port, run)
		w.CountUnsent(len(run) - n)
		if err != nil && !errors.Is(err, dataplane.ErrClosed) && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// ErrPin reports a CPU a worker could not be pinned to (not online, or not
// in the process's allowed set).
var ErrPin = errors.New("cannot pin worker")

// ErrNice reports a nice value a worker's thread could not take (a
// negative one needs CAP_SYS_NICE or RLIMIT_NICE).
var ErrNice = errors.New("cannot set the worker's priority")

// Nice values (Options.WorkerNice): setpriority's range.
const (
	MinNice = -20
	MaxNice = 19
)

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
