package ipvs

import (
	"sync"
	"sync/atomic"

	"github.com/xvs-lb/xvs/internal/sched"
)

// Counter is one worker's slot of a [Stats]. Only that worker may call its
// methods; each is an atomic load and store of the worker's own slot, so
// readers see whole values, and there is neither a lock nor a read-modify-
// write. Gauges may go negative in one slot (a connection created on one
// worker and expired on another); only their sum is meaningful.
type Counter struct {
	conns, inPkts, inBytes, outPkts, outBytes atomic.Uint64
	active, inactive, persist                 atomic.Int64
	// Pad to 128 bytes: two workers' data are then always at least one
	// cache line apart, whatever the slice's alignment.
	_ [64]byte
}

func add(u *atomic.Uint64, n uint64) { u.Store(u.Load() + n) }
func addi(i *atomic.Int64, n int64)  { i.Store(i.Load() + n) }

// Conn counts a new connection (per packet under one-packet scheduling).
func (c *Counter) Conn() { add(&c.conns, 1) }

// In counts one packet of n bytes from client to real server.
func (c *Counter) In(n int) { add(&c.inPkts, 1); add(&c.inBytes, uint64(n)) }

// Out counts one packet of n bytes from real server to client (NAT replies).
func (c *Counter) Out(n int) { add(&c.outPkts, 1); add(&c.outBytes, uint64(n)) }

// AddActive adjusts the ActiveConn gauge by delta.
func (c *Counter) AddActive(delta int64) { addi(&c.active, delta) }

// AddInactive adjusts the InActConn gauge by delta.
func (c *Counter) AddInactive(delta int64) { addi(&c.inactive, delta) }

// AddPersist adjusts the PersistConn (live templates) gauge by delta.
func (c *Counter) AddPersist(delta int64) { addi(&c.persist, delta) }

// Counters is a read of a [Stats]: IPVS's cumulative counters since the
// last zeroing and the live gauges.
type Counters struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	ActiveConns, InactConns, PersistConns     int64
}

// Stats are the counters of one service or destination, one [Counter] per
// worker. They live as long as their service or destination, across
// snapshots.
type Stats struct {
	slots []Counter
	mu    sync.Mutex // guards base; control plane only
	base  Counters   // cumulative values at the last zeroing
}

func newStats(workers int) *Stats { return &Stats{slots: make([]Counter, workers)} }

// Worker returns worker w's counter slot, 0 <= w < the configured workers.
func (s *Stats) Worker(w int) *Counter { return &s.slots[w] }

// Load sums the live gauges; it implements sched.LoadReader and allocates
// nothing.
func (s *Stats) Load() sched.Load {
	var l sched.Load
	for i := range s.slots {
		c := &s.slots[i]
		l.Active += c.active.Load()
		l.Inactive += c.inactive.Load()
		l.Persist += c.persist.Load()
	}
	return l
}

func (s *Stats) sum() Counters {
	var t Counters
	for i := range s.slots {
		c := &s.slots[i]
		t.Conns += c.conns.Load()
		t.InPkts += c.inPkts.Load()
		t.InBytes += c.inBytes.Load()
		t.OutPkts += c.outPkts.Load()
		t.OutBytes += c.outBytes.Load()
		t.ActiveConns += c.active.Load()
		t.InactConns += c.inactive.Load()
		t.PersistConns += c.persist.Load()
	}
	return t
}

// Read sums all workers' slots, less the baseline of the last [Stats.Zero].
func (s *Stats) Read() Counters {
	t := s.sum()
	s.mu.Lock()
	b := s.base
	s.mu.Unlock()
	t.Conns -= b.Conns
	t.InPkts -= b.InPkts
	t.InBytes -= b.InBytes
	t.OutPkts -= b.OutPkts
	t.OutBytes -= b.OutBytes
	return t
}

// Zero restarts the cumulative counters from zero (ipvsadm -Z); the live
// gauges are not affected.
func (s *Stats) Zero() {
	t := s.sum()
	s.mu.Lock()
	s.base = t
	s.mu.Unlock()
}
