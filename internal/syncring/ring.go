// Package syncring hands sync records from a data-plane worker to the sync
// sender, and on a backup from the sync receiver to a worker: a
// single-producer, single-consumer ring of fixed-size [Record]s per worker
// and direction. The worker pushes without locks, blocking, system calls or
// allocation; when the ring is full the record is dropped and counted,
// never waited for. The sender drains every ring in turn.
//
// A Record is pointer-free (addresses as 16-byte arrays, the persistence
// engine by its small id, pe data inline), so the rings cost the garbage
// collector nothing to scan, and a worker fills a slot in place
// ([Ring.Reserve], [Ring.Commit]) rather than copying a record in.
package syncring

import (
	"net/netip"
	"sync/atomic"

	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/pe"
)

// DefaultCapacity is the records a worker's ring holds: 4096 records of
// RecordSize bytes, 1.4 MiB per worker. The sender drains the rings every
// few milliseconds (syncd's poll interval, 5 ms), so a ring absorbs 800 k
// records/s per worker. With xvs's sync_refresh_period a worker queues a
// record per new template and per refresh, far fewer than its packets; with
// the kernel's defaults (every use of a template synced) a worker at full
// speed, about 4 M packets/s per core in the pipeline benchmark, would
// overflow it and count the drops.
const DefaultCapacity = 4096

// Record is one entry for the sync sender: a connection or persistence
// template as the kernel's master sends it (syncproto.Conn), flattened into
// a fixed-size, pointer-free value.
type Record struct {
	Flags   syncproto.Flags
	FWMark  uint32
	Timeout uint32 // seconds
	// Dest is, in a backup's rings, the destination (the configuration
	// model's id) the receiver resolved for the entry; a master's rings do
	// not use it.
	Dest     uint32
	State    uint16
	CPort    uint16
	VPort    uint16
	DPort    uint16
	Protocol uint8
	IPv6     bool
	// PE is the persistence engine's registry id (pe.ID); 0 = none. The
	// sender sends the engine's name.
	PE        pe.ID
	PEDataLen uint8
	// CAddr, VAddr and DAddr hold the addresses in 16-byte form (IPv4 as
	// IPv4-mapped IPv6); IPv6 tells the entry's family.
	CAddr, VAddr, DAddr [16]byte
	// Queued is when the worker queued the record (its batch's monotonic
	// ns), for measuring the sync lag. In a backup's rings it is when the
	// master queued the entry (its origin option), on the backup's
	// monotonic clock; 0 when the master did not say.
	Queued int64
	// Used is when the entry was last used (a template's expiry minus its
	// timeout), on the same clock as Queued; 0 = unknown (the timeout then
	// runs from when the entry arrives).
	Used   int64
	PEData [syncproto.MaxPEDataLen]byte
}

// RecordSize is the size of a Record in bytes.
const RecordSize = 352

// SetAddrs sets the addresses and the family (from c; all three must have
// the same family).
func (r *Record) SetAddrs(c, v, d netip.Addr) {
	r.IPv6 = c.Is6()
	r.CAddr, r.VAddr, r.DAddr = c.As16(), v.As16(), d.As16()
}

// Addrs returns the addresses.
func (r *Record) Addrs() (c, v, d netip.Addr) {
	c, v, d = netip.AddrFrom16(r.CAddr), netip.AddrFrom16(r.VAddr), netip.AddrFrom16(r.DAddr)
	if !r.IPv6 {
		c, v, d = c.Unmap(), v.Unmap(), d.Unmap()
	}
	return c, v, d
}

// SetPEData copies data (at most MaxPEDataLen bytes; more is cut) into the
// record.
func (r *Record) SetPEData(data []byte) {
	r.PEDataLen = uint8(copy(r.PEData[:], data))
}

// Conn fills c from the record, with peName as the engine's name. c's
// PEData aliases the record: use c before the record's slot is released.
func (r *Record) Conn(c *syncproto.Conn, peName []byte) {
	*c = syncproto.Conn{
		Protocol: r.Protocol,
		Flags:    r.Flags,
		State:    r.State,
		CPort:    r.CPort,
		VPort:    r.VPort,
		DPort:    r.DPort,
		FWMark:   r.FWMark,
		Timeout:  r.Timeout,
	}
	c.CAddr, c.VAddr, c.DAddr = r.Addrs()
	if r.PEDataLen > 0 {
		c.PEData = r.PEData[:r.PEDataLen]
		c.PEName = peName
	}
}

// Ring is a single-producer, single-consumer ring of Records. One
// goroutine (the worker) calls Reserve/Commit or Push; one goroutine (the
// sender) calls Drain; Len and Stats may be called from anywhere.
type Ring struct {
	// head is the next slot the consumer reads; only the consumer writes
	// it. tail is the next slot the producer writes; only the producer
	// writes it. They sit on separate cache lines so that the two sides do
	// not invalidate each other's line on every record.
	head    atomic.Uint64
	_       [56]byte
	tail    atomic.Uint64
	dropped atomic.Uint64
	// headCache is the producer's last view of head: it reloads head only
	// when the ring looks full.
	headCache uint64
	_         [40]byte
	mask      uint64
	slots     []Record
}

// New returns a ring of capacity records (a power of 2; other values are
// rounded up, 0 means DefaultCapacity).
func New(capacity int) *Ring {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	n := 1
	for n < capacity {
		n <<= 1
	}
	return &Ring{mask: uint64(n - 1), slots: make([]Record, n)}
}

// Cap returns the ring's capacity in records.
func (r *Ring) Cap() int { return len(r.slots) }

// Reserve returns the next free slot for the producer to fill, or nil when
// the ring is full (the record is then counted as dropped). The slot holds
// whatever record it held before: set every field the sender reads. Commit
// publishes it; a slot reserved and not committed is reused by the next
// Reserve.
func (r *Ring) Reserve() *Record {
	t := r.tail.Load() // only this goroutine writes tail
	if t-r.headCache > r.mask {
		r.headCache = r.head.Load()
		if t-r.headCache > r.mask {
			r.dropped.Store(r.dropped.Load() + 1) // one writer: no read-modify-write needed
			return nil
		}
	}
	return &r.slots[t&r.mask]
}

// Commit publishes the slot Reserve returned last.
func (r *Ring) Commit() {
	r.tail.Store(r.tail.Load() + 1)
}

// Push copies rec into the ring; it reports false (and counts a drop) when
// the ring is full.
func (r *Ring) Push(rec *Record) bool {
	s := r.Reserve()
	if s == nil {
		return false
	}
	*s = *rec
	r.Commit()
	return true
}

// Drain calls fn with each queued record, oldest first, at most max of
// them (max <= 0: all), and returns how many it drained. The record is
// valid only during the call; its slot is released when Drain returns.
func (r *Ring) Drain(max int, fn func(*Record)) int {
	h := r.head.Load() // only this goroutine writes head
	t := r.tail.Load()
	n := int(t - h)
	if max > 0 && n > max {
		n = max
	}
	for i := range n {
		fn(&r.slots[(h+uint64(i))&r.mask])
	}
	r.head.Store(h + uint64(n))
	return n
}

// Len returns the number of queued records.
func (r *Ring) Len() int { return int(r.tail.Load() - r.head.Load()) }

// Stats are a ring's counters.
type Stats struct {
	Pushed  uint64 // records committed
	Dropped uint64 // records refused because the ring was full
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	return Stats{Pushed: r.tail.Load(), Dropped: r.dropped.Load()}
}
