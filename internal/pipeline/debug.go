package pipeline

import (
	"net/netip"
	"sync/atomic"

	"github.com/xvs-lb/xvs/table"
)

// Debug events mirror IPVS's SIP engine debug output at debug_level 9:
// "SIP callid %s (%d bytes)" and "SIP template match %s %s->%s:%d hit|not hit".
// The data plane never logs: a worker records at most debugPerSecond events
// a second into a fixed ring that a logger goroutine drains (DebugLog.Drain);
// when logging is off the cost is one atomic load per persistent packet.
const (
	// debugRing is the number of events a worker's ring holds between
	// drains: a drain every 100 ms at the rate limit needs 100.
	debugRing = 256
	// debugPerSecond caps each worker's events: enough to follow a few calls
	// by eye, far too few to matter for the data plane or the log.
	debugPerSecond = 1000
	// debugCallIDMax is how much of a Call-ID an event keeps: IPVS prints
	// 64 characters (ip_vs_dbg_callid).
	debugCallIDMax = 64
)

// DebugKind says what a debug event records.
type DebugKind uint8

const (
	DebugCallID       DebugKind = iota + 1 // the engine found a key
	DebugTemplateHit                       // a template matched
	DebugTemplateMiss                      // no template matched: scheduled afresh
)

// DebugEvent is one recorded event.
type DebugEvent struct {
	Kind    DebugKind
	Worker  int
	Proto   uint8
	Virtual [18]byte // netip.AddrPort as 16 address bytes + port, to stay pointer-free
	Is4     bool
	Len     int // the key's full length
	n       uint8
	key     [debugCallIDMax]byte
}

// Key returns the (possibly cut) key bytes.
func (e *DebugEvent) Key() []byte { return e.key[:e.n] }

// DebugLog is the switch and the rings of the engine debug output; one is
// shared by all workers of a daemon.
type DebugLog struct {
	on    atomic.Bool
	rings [64]debugRingT // by worker (ipvs.MaxWorkers)
}

type debugRingT struct {
	head   atomic.Uint64 // written by the worker
	tail   atomic.Uint64 // written by the drainer
	budget int64         // worker-owned token bucket
	last   int64         // worker-owned: time of the last refill
	primed bool          // worker-owned: a window has started
	ev     [debugRing]DebugEvent
	_      [64]byte
}

// SetEnabled switches recording on or off (e.g. log level ≥ 9).
func (l *DebugLog) SetEnabled(on bool) { l.on.Store(on) }

// Enabled reports whether events are recorded.
func (l *DebugLog) Enabled() bool { return l != nil && l.on.Load() }

// record stores an event for worker w at time now, if the rate limit and
// the ring allow; otherwise it is dropped silently.
func (l *DebugLog) record(w int, now int64, kind DebugKind, proto uint8, virtual [18]byte, is4 bool, key []byte) {
	r := &l.rings[w]
	if !r.primed || now-r.last >= 1e9 || now < r.last {
		r.budget, r.last, r.primed = debugPerSecond, now, true
	}
	if r.budget <= 0 {
		return
	}
	h, t := r.head.Load(), r.tail.Load()
	if h-t >= debugRing {
		return
	}
	r.budget--
	e := &r.ev[h%debugRing]
	e.Kind, e.Worker, e.Proto, e.Virtual, e.Is4, e.Len = kind, w, proto, virtual, is4, len(key)
	e.n = uint8(copy(e.key[:], key))
	r.head.Store(h + 1)
}

// Drain hands every recorded event to fn and frees their slots. Call it
// from one goroutine (the logger).
func (l *DebugLog) Drain(fn func(*DebugEvent)) {
	for i := range l.rings {
		r := &l.rings[i]
		h, t := r.head.Load(), r.tail.Load()
		for ; t < h; t++ {
			fn(&r.ev[t%debugRing])
		}
		r.tail.Store(t)
	}
}

// VirtualAddr returns the event's virtual address and port.
func (e *DebugEvent) VirtualAddr() netip.AddrPort {
	a := netip.AddrFrom16(*(*[16]byte)(e.Virtual[:16]))
	if e.Is4 {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, uint16(e.Virtual[16])<<8|uint16(e.Virtual[17]))
}

// debugEvent records a template key's event.
func (w *Worker) debugEvent(kind DebugKind, k *table.TemplateKey) {
	var v [18]byte
	a := k.Virtual.Addr().As16()
	copy(v[:16], a[:])
	v[16], v[17] = byte(k.Virtual.Port()>>8), byte(k.Virtual.Port())
	w.debug.record(w.id, w.now, kind, k.Protocol, v, k.Virtual.Addr().Is4(), k.PEData)
}
