package table

import (
	"errors"
	"time"
)

// DestID identifies a destination (real server). The configuration model
// allocates it (slot and generation); tables only store it.
type DestID uint32

// Ref is a stable reference to a table entry: its slot number and the
// slot's generation. A Ref outlives its entry safely: once the entry is
// removed the generation moves on, and every method taking a Ref reports
// the stale reference instead of touching the slot's new occupant. The zero
// Ref refers to nothing.
type Ref struct {
	slot uint32
	gen  uint32 // never 0 for a live entry
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r.gen == 0 }

// RemoveReason says why an entry left a table.
type RemoveReason uint8

const (
	// RemoveExpired: the entry's timeout passed (found on lookup, sweep or
	// when making room).
	RemoveExpired RemoveReason = iota + 1
	// RemoveEvictedProbation: the table was full and the entry was the least
	// recently used one never used again after its insertion.
	RemoveEvictedProbation
	// RemoveEvictedProtected: the table was full, the probation segment was
	// empty and the entry had been idle for at least MinProtectedIdle.
	RemoveEvictedProtected
	// RemoveInvalidated: the owner invalidated the entry (e.g. its real
	// server was removed) or deleted it.
	RemoveInvalidated
)

func (r RemoveReason) String() string {
	switch r {
	case RemoveExpired:
		return "expired"
	case RemoveEvictedProbation:
		return "evicted-probation"
	case RemoveEvictedProtected:
		return "evicted-protected"
	case RemoveInvalidated:
		return "invalidated"
	}
	return "unknown"
}

// InsertResult is the outcome of an insert.
type InsertResult uint8

const (
	// Inserted: a new entry was created.
	Inserted InsertResult = iota
	// InsertExists: a live entry with the same key exists; its Ref is
	// returned and it is left unchanged.
	InsertExists
	// InsertOverflow: the table is full of live, protected, recently used
	// entries (or the arena holds no slot for the key), so nothing was
	// evicted and nothing inserted. The caller forwards without a template or
	// connection entry; Stats.Overflow counts it.
	InsertOverflow
	// InsertInvalid: the key is malformed (mixed address families, pe data
	// longer than MaxPEData, an invalid address).
	InsertInvalid
)

func (r InsertResult) String() string {
	switch r {
	case Inserted:
		return "inserted"
	case InsertExists:
		return "exists"
	case InsertOverflow:
		return "overflow"
	case InsertInvalid:
		return "invalid"
	}
	return "unknown"
}

// RemoveFunc is called on the owner goroutine whenever an entry leaves a
// table, with the destination the entry pointed at. The pipeline uses it to
// keep per-real-server counts (live templates for least-connection
// schedulers). It must not call back into the table.
type RemoveFunc func(dest DestID, reason RemoveReason)

// Limits.
const (
	// MaxPEData is the longest persistence-engine data (IPVS
	// IP_VS_PEDATA_MAXLEN, the longest Call-ID the SIP engine accepts).
	MaxPEData = 255
	// MaxTimeout is the longest timeout an entry can hold: timeouts are
	// stored as uint32 milliseconds. Longer timeouts are clamped.
	MaxTimeout = time.Duration(1<<32-1) * time.Millisecond
	// HoldRearm is how far an expired entry that is still held (a template
	// controlling live connections) is pushed into the future, as IPVS
	// re-arms such a template for 60 s.
	HoldRearm = 60 * time.Second
	// DefaultMinProtectedIdle is the default Config.MinProtectedIdle: a
	// protected template used within the last 10 s is never evicted (SIP
	// retransmission timer T1×64 is 32 s, but a live dialog refreshes far
	// more often than that during call setup).
	DefaultMinProtectedIdle = 10 * time.Second
)

// Errors returned by constructors.
var (
	// ErrCapacity: the requested capacity is out of range.
	ErrCapacity = errors.New("table capacity out of range")
	// ErrArenaBudget: the pe-data arena budget is out of range.
	ErrArenaBudget = errors.New("table arena budget out of range")
)

func timeoutMillis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	if d >= MaxTimeout {
		return 1<<32 - 1
	}
	return uint32(d / time.Millisecond)
}
