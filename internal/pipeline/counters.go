package pipeline

import (
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// Counters are a worker's own counts: every frame has exactly one Reason, so
// the Reasons sum to Frames. Decode counts the decoder's reason for frames
// dropped as malformed or as untracked fragments.
type Counters struct {
	Frames     uint64
	Reasons    [NumReasons]uint64
	Decode     [packet.NumReasons]uint64
	PE         [pe.NumStatus]uint64 // persistence-engine outcomes on inbound packets
	PEFallback uint64               // packets the engine could not key that used normal persistence
	SharedFull uint64               // new keys the shared index had no room for (cross-worker persistence not guaranteed for them)
	// SharedConnHits counts NAT replies translated through the shared
	// connection index (their connection is another worker's);
	// SharedConnFull new NAT connections it had no room for.
	SharedConnHits, SharedConnFull uint64
	// ChecksumCompleted counts frames whose UDP/TCP checksum the sender had
	// left to its TX offload, completed before forwarding.
	ChecksumCompleted uint64
	// Local counts frames handed to the host's own stack (Local real
	// servers; replies to clients on this host).
	Local uint64
	// Unsent counts emitted frames (Worker.Emitted: fragments and frames
	// that waited for a neighbour) the queue could not transmit.
	Unsent uint64
	Frag   FragCounters
	Neigh  NeighCounters
	Tunnel TunnelCounters
	Sync   SyncCounters // connection synchronisation (sync.go)
}

// FragCounters count what happens to fragmented datagrams beyond each
// frame's Reason: the fate of the copies held while a datagram waits for its
// decision (ReasonFragmentHeld), and the fragment table's own events.
type FragCounters struct {
	Emitted   uint64 // held copies sent once their datagram was decided (Worker.Emitted)
	Discarded uint64 // held copies of a datagram decided drop or pass (a copy cannot be passed to the kernel)
	Timeout   uint64 // held copies dropped because their datagram was not decided within the fragment timeout (a fragment was missing)
	Evicted   uint64 // held copies dropped because the fragment table needed their entry for a newer datagram
	// Reassembled counts datagrams decided after reassembly (no key in the
	// first fragment), by the decision's reason. They are not frames: their
	// fragments were counted as fragment_held when they arrived.
	Reassembled [NumReasons]uint64
	Entries     uint64 // decisions and waiting datagrams entered in the fragment table
	Replaced    uint64 // entries reclaimed from a full bucket before they expired
}

// counterCells publishes Counters for other goroutines: the owner copies its
// batch-local counts here once per batch with atomic stores; readers load.
type counterCells struct {
	frames     atomic.Uint64
	reasons    [NumReasons]atomic.Uint64
	decode     [packet.NumReasons]atomic.Uint64
	pe         [pe.NumStatus]atomic.Uint64
	peFallback atomic.Uint64
	sharedFull atomic.Uint64
	scHits     atomic.Uint64
	scFull     atomic.Uint64
	csum       atomic.Uint64
	local      atomic.Uint64
	unsent     atomic.Uint64
	frag       atomicFrag
	tunnel     [4]atomic.Uint64 // TunnelCounters, in field order
	nSent      atomic.Uint64
	nFailed    atomic.Uint64
	nTimeout   atomic.Uint64
	sync       atomicSync
}

// atomicSync publishes SyncCounters.
type atomicSync struct {
	queued, walked, staleDest, expired, lagSum, lagMax atomic.Uint64
	applied                                            [NumSyncResults]atomic.Uint64
	lag                                                [len(LagBuckets) + 1]atomic.Uint64
}

func (a *atomicSync) store(c *SyncCounters) {
	set(&a.queued, c.Queued)
	set(&a.walked, c.Walked)
	set(&a.staleDest, c.StaleDest)
	set(&a.expired, c.Expired)
	set(&a.lagSum, uint64(c.Lag.Sum))
	set(&a.lagMax, uint64(c.Lag.Max))
	for i := range a.applied {
		set(&a.applied[i], c.Applied[i])
	}
	for i := range a.lag {
		set(&a.lag[i], c.Lag.Counts[i])
	}
}

func (a *atomicSync) load() (c SyncCounters) {
	c.Queued = a.queued.Load()
	c.Walked = a.walked.Load()
	c.StaleDest = a.staleDest.Load()
	c.Expired = a.expired.Load()
	c.Lag.Sum = time.Duration(a.lagSum.Load())
	c.Lag.Max = time.Duration(a.lagMax.Load())
	for i := range a.applied {
		c.Applied[i] = a.applied[i].Load()
	}
	for i := range a.lag {
		c.Lag.Counts[i] = a.lag[i].Load()
	}
	return c
}

type atomicFrag struct {
	emitted, discarded, timeout, evicted, entries, replaced atomic.Uint64
	reassembled                                             [NumReasons]atomic.Uint64
}

func (a *atomicFrag) store(f *FragCounters) {
	set(&a.emitted, f.Emitted)
	set(&a.discarded, f.Discarded)
	set(&a.timeout, f.Timeout)
	set(&a.evicted, f.Evicted)
	set(&a.entries, f.Entries)
	set(&a.replaced, f.Replaced)
	for i := range f.Reassembled {
		set(&a.reassembled[i], f.Reassembled[i])
	}
}

func (a *atomicFrag) load() (f FragCounters) {
	f.Emitted = a.emitted.Load()
	f.Discarded = a.discarded.Load()
	f.Timeout = a.timeout.Load()
	f.Evicted = a.evicted.Load()
	f.Entries = a.entries.Load()
	f.Replaced = a.replaced.Load()
	for i := range f.Reassembled {
		f.Reassembled[i] = a.reassembled[i].Load()
	}
	return f
}

func (f *FragCounters) add(b *FragCounters) {
	f.Emitted += b.Emitted
	f.Discarded += b.Discarded
	f.Timeout += b.Timeout
	f.Evicted += b.Evicted
	f.Entries += b.Entries
	f.Replaced += b.Replaced
	for i := range f.Reassembled {
		f.Reassembled[i] += b.Reassembled[i]
	}
}

// set publishes v in a cell only the owner writes, storing only when it
// changed: an atomic load is a plain read (amd64, arm64), an atomic store a
// locked exchange on amd64, and of the cells a batch publishes (every
// reason, decode reason, fragment and sync count) a handful change. At
// batches of 4 that cut 10–20 % per packet (BenchmarkPipelineWarm/
// invite-dr-1M-batch4).
func set(a *atomic.Uint64, v uint64) {
	if a.Load() != v {
		a.Store(v)
	}
}

// publish copies the owner's running totals into the cells. Only the owner
// writes them, so plain stores of its own totals are enough.
func (w *Worker) publish() {
	c, l := &w.published, &w.local
	set(&c.frames, l.Frames)
	for i := range l.Reasons {
		set(&c.reasons[i], l.Reasons[i])
	}
	for i := range l.Decode {
		set(&c.decode[i], l.Decode[i])
	}
	for i := range l.PE {
		set(&c.pe[i], l.PE[i])
	}
	set(&c.peFallback, l.PEFallback)
	set(&c.sharedFull, l.SharedFull)
	set(&c.scHits, l.SharedConnHits)
	set(&c.scFull, l.SharedConnFull)
	set(&c.csum, l.ChecksumCompleted)
	set(&c.local, l.Local)
	set(&c.unsent, l.Unsent)
	c.frag.store(&l.Frag)
	t := &l.Tunnel
	for i, v := range [...]uint64{t.Encapsulated, t.Fragmented, t.Fragments, t.NoBuffer} {
		set(&c.tunnel[i], v)
	}
	set(&c.nSent, l.Neigh.Sent)
	set(&c.nFailed, l.Neigh.Failed)
	set(&c.nTimeout, l.Neigh.Timeout)
	c.sync.store(&l.Sync)
}

// Counters returns the worker's counts as of its last completed batch. Any
// goroutine may call it.
func (w *Worker) Counters() Counters {
	c := &w.published
	var out Counters
	out.Frames = c.frames.Load()
	for i := range out.Reasons {
		out.Reasons[i] = c.reasons[i].Load()
	}
	for i := range out.Decode {
		out.Decode[i] = c.decode[i].Load()
	}
	for i := range out.PE {
		out.PE[i] = c.pe[i].Load()
	}
	out.PEFallback = c.peFallback.Load()
	out.SharedFull = c.sharedFull.Load()
	out.SharedConnHits = c.scHits.Load()
	out.SharedConnFull = c.scFull.Load()
	out.ChecksumCompleted = c.csum.Load()
	out.Local = c.local.Load()
	out.Unsent = c.unsent.Load()
	out.Frag = c.frag.load()
	out.Tunnel = TunnelCounters{c.tunnel[0].Load(), c.tunnel[1].Load(), c.tunnel[2].Load(), c.tunnel[3].Load()}
	out.Neigh = NeighCounters{Sent: c.nSent.Load(), Failed: c.nFailed.Load(), Timeout: c.nTimeout.Load()}
	out.Sync = c.sync.load()
	return out
}

// Add adds b's counts to c (to total several workers).
func (c *Counters) Add(b *Counters) {
	c.Frames += b.Frames
	for i := range c.Reasons {
		c.Reasons[i] += b.Reasons[i]
	}
	for i := range c.Decode {
		c.Decode[i] += b.Decode[i]
	}
	for i := range c.PE {
		c.PE[i] += b.PE[i]
	}
	c.PEFallback += b.PEFallback
	c.SharedFull += b.SharedFull
	c.SharedConnHits += b.SharedConnHits
	c.SharedConnFull += b.SharedConnFull
	c.ChecksumCompleted += b.ChecksumCompleted
	c.Local += b.Local
	c.Unsent += b.Unsent
	c.Frag.add(&b.Frag)
	c.Tunnel.Encapsulated += b.Tunnel.Encapsulated
	c.Tunnel.Fragmented += b.Tunnel.Fragmented
	c.Tunnel.Fragments += b.Tunnel.Fragments
	c.Tunnel.NoBuffer += b.Tunnel.NoBuffer
	c.Neigh.Sent += b.Neigh.Sent
	c.Neigh.Failed += b.Neigh.Failed
	c.Neigh.Timeout += b.Neigh.Timeout
	c.Sync.add(&b.Sync)
}
