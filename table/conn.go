package table

import (
	"fmt"
	"net/netip"
	"time"
)

// ConnKey identifies a connection as the client sends it: protocol, client
// address and port, virtual address and port.
type ConnKey struct {
	Protocol uint8
	Client   netip.AddrPort
	Virtual  netip.AddrPort
}

// Hash returns the key's seeded hash for Conns.LookupHashed and
// Conns.Prefetch; seed must be the table's Conns.Seed().
func (k *ConnKey) Hash(seed uint64) uint64 {
	return dirHash(seed, k.Protocol, k.Client, k.Virtual, dirIn)
}

// ConnInfo describes a connection.
type ConnInfo struct {
	Key       ConnKey
	Real      netip.AddrPort // where the connection was sent (NAT target)
	Dest      DestID
	State     uint8 // protocol state, owned by the pipeline (TCP state or UDP)
	Flags     uint8 // connection flags, owned by the pipeline
	Template  Ref   // controlling template, or the zero Ref
	Timeout   time.Duration
	Remaining time.Duration // only set by AppendInfo
	// Synced: a backup created the connection from a sync message
	// (Conns.Sync).
	Synced bool
}

// ConnConfig sizes a Conns table.
type ConnConfig struct {
	// Capacity is the maximum number of connections (1…MaxConnCapacity).
	Capacity int
	// MinProtectedIdle is as in Config.
	MinProtectedIdle time.Duration
	// Seed seeds the connection hashes.
	Seed uint64
	// Templates, if set, is the same worker's template table: when a
	// connection leaves, the template it holds is released (IPVS
	// ip_vs_control_del).
	Templates *Templates
	// OnRemove, if set, is told about every removed connection, with the
	// state and flags it had.
	OnRemove ConnRemoveFunc
}

// ConnRemoveFunc is called on the owner goroutine whenever a connection
// leaves a Conns table, with its destination and its last protocol state and
// flags (as set by Insert and SetState): the pipeline keeps IPVS's
// ActiveConn/InActConn gauges per real server, which depend on the state at
// removal. It must not call back into the table.
type ConnRemoveFunc func(dest DestID, state, flags uint8, reason RemoveReason)

// MaxConnCapacity bounds a Conns table: every connection takes two index
// references (both directions).
const MaxConnCapacity = maxIndexRefs / 2

const flagRealV6 = flagAssured // conns have no ASSURED state; reuse the bit

// conn is one connection, indexed from both directions. Pointer-free,
// 104 bytes: 96 for the connection, 8 (and a spare byte) for the sync
// state a master keeps (sync.go).
type conn struct {
	caddr, vaddr, daddr [16]byte
	expires             int64
	tmpl                Ref
	hashIn, hashOut     uint32
	timeout             uint32 // milliseconds
	dest                DestID
	gen                 uint32
	syncMark, inPkts    uint32 // ConnSync
	cport, vport, dport uint16
	proto, state        uint8
	cflags, flags       uint8
	oldState            uint8 // ConnSync
}

// ConnStats are a Conns table's counters.
type ConnStats struct {
	Lookups, Hits, Misses   uint64
	ReplyLookups, ReplyHits uint64
	Inserts, Exists         uint64
	Expired                 uint64
	EvictedProbation        uint64
	EvictedProtected        uint64
	Removed                 uint64
	Overflow, Invalid       uint64
	Live, Capacity          uint64
}

// Conns is a per-worker connection table, indexed in both directions so
// NAT replies (real server → client) find their connection. Owned by one
// goroutine, like Templates. Its replacement policy is the same segmented
// LRU: a SYN or new-flow flood evicts never-reused entries first.
type Conns struct {
	ents    []conn
	lists   lists
	index   index
	cursor  uint32
	minIdle int64
	seed    uint64
	tmpls   *Templates
	onRm    ConnRemoveFunc
	stats   ConnStats
}

// NewConns allocates a table for cfg.Capacity connections.
func NewConns(cfg ConnConfig) (*Conns, error) {
	if cfg.Capacity < 1 || cfg.Capacity > MaxConnCapacity {
		return nil, fmt.Errorf("conns: %d not in 1…%d: %w", cfg.Capacity, MaxConnCapacity, ErrCapacity)
	}
	minIdle := cfg.MinProtectedIdle
	if minIdle == 0 {
		minIdle = DefaultMinProtectedIdle
	}
	c := &Conns{
		ents:    make([]conn, cfg.Capacity),
		lists:   newLists(cfg.Capacity),
		index:   newIndex(2 * cfg.Capacity),
		minIdle: max(int64(minIdle), 0),
		seed:    cfg.Seed,
		tmpls:   cfg.Templates,
		onRm:    cfg.OnRemove,
	}
	c.stats.Capacity = uint64(cfg.Capacity)
	adviseHuge(c.ents)
	adviseHuge(c.index.slots)
	for i := range c.ents {
		c.ents[i].gen = 1
	}
	return c, nil
}

// MemoryBytes is the table's fixed memory.
func (c *Conns) MemoryBytes() int {
	return len(c.ents)*int(sizeofConn) + c.lists.bytes() + c.index.bytes()
}

// Stats returns the counters.
func (c *Conns) Stats() ConnStats { return c.stats }

// Seed returns the hash seed of ConnKey.Hash for this table.
func (c *Conns) Seed() uint64 { return c.seed }

// dirHash hashes one direction: src → dst.
func dirHash(seed uint64, proto uint8, src, dst netip.AddrPort, dir uint64) uint64 {
	s, d := src.Addr().As16(), dst.Addr().As16()
	h := hashAddr(seed^dir, &s)
	h = hashAddr(h, &d)
	return mix(h^wyp1, uint64(src.Port())<<32|uint64(dst.Port())<<16|uint64(proto)^wyp0)
}

const (
	dirIn  = 0x6f7574 // distinct seeds per direction
	dirOut = 0x726570
)

func (c *Conns) refHome(ref uint32) uint32 {
	e := &c.ents[ref>>1]
	if ref&1 != 0 {
		return e.hashOut
	}
	return e.hashIn
}

// findIn returns the entry of a packet from k.Client to k.Virtual, whose
// hash is h. The two find loops are written out rather than sharing one with
// a match closure: the closure call was indirect and kept the key in memory.
func (c *Conns) findIn(k *ConnKey, h uint64) (uint32, bool) {
	h32, tag := hashHome(h), hashTag(h)
	ca, va := k.Client.Addr().As16(), k.Virtual.Addr().As16()
	cport, vport := k.Client.Port(), k.Virtual.Port()
	var fam uint8
	if v6(k.Client.Addr()) {
		fam = flagV6
	}
	x := &c.index
	for pos := x.home(h32); ; pos = x.next(pos) {
		s := x.slots[pos]
		if s == 0 {
			return 0, false
		}
		if s&^indexRefMask != tag || (s-1)&1 != 0 {
			continue
		}
		i := (s&indexRefMask - 1) >> 1
		e := &c.ents[i]
		if e.hashIn == h32 && e.cport == cport && e.vport == vport && e.proto == k.Protocol &&
			e.caddr == ca && e.vaddr == va && e.flags&flagV6 == fam {
			return i, true
		}
	}
}

// findOut returns the entry a reply from real to client belongs to.
func (c *Conns) findOut(proto uint8, real, client netip.AddrPort, h uint64) (uint32, bool) {
	h32, tag := hashHome(h), hashTag(h)
	da, ca := real.Addr().As16(), client.Addr().As16()
	dport, cport := real.Port(), client.Port()
	var fam uint8
	if v6(real.Addr()) {
		fam = flagRealV6
	}
	x := &c.index
	for pos := x.home(h32); ; pos = x.next(pos) {
		s := x.slots[pos]
		if s == 0 {
			return 0, false
		}
		if s&^indexRefMask != tag || (s-1)&1 != 1 {
			continue
		}
		i := (s&indexRefMask - 1) >> 1
		e := &c.ents[i]
		if e.hashOut == h32 && e.dport == dport && e.cport == cport && e.proto == proto &&
			e.daddr == da && e.caddr == ca && e.flags&flagRealV6 == fam {
			return i, true
		}
	}
}

func v6(a netip.Addr) bool { return !a.Is4() }

// Lookup finds the connection of a packet from k.Client to k.Virtual. An
// expired connection is removed and reported as a miss.
func (c *Conns) Lookup(k *ConnKey, now int64) (Ref, bool) {
	return c.LookupHashed(k, k.Hash(c.seed), now)
}

// LookupHashed is Lookup with h = k.Hash(c.Seed()) computed by the caller
// (who may have passed it to Prefetch first).
func (c *Conns) LookupHashed(k *ConnKey, h uint64, now int64) (Ref, bool) {
	c.stats.Lookups++
	if i, ok := c.findIn(k, h); ok && c.live(i, now) {
		c.stats.Hits++
		return Ref{i, c.ents[i].gen}, true
	}
	c.stats.Misses++
	return Ref{}, false
}

// Prefetch starts loading the index line a lookup of hash h (from
// ConnKey.Hash) reads first, as Templates.Prefetch does.
func (c *Conns) Prefetch(h uint64) {
	c.index.prefetch(hashHome(h))
}

// LookupReply finds the connection a reply from real to client belongs to
// (for NAT, to translate its source back to the virtual address).
func (c *Conns) LookupReply(proto uint8, real, client netip.AddrPort, now int64) (Ref, bool) {
	c.stats.ReplyLookups++
	h := dirHash(c.seed, proto, real, client, dirOut)
	// Unlike the forward key, the reply key need not be unique: two
	// connections from one client addr:port to two virtual addresses sent to
	// the same real server share it. So when the match found has expired (and
	// is dropped), look again for another (TestConnsModel).
	for {
		i, ok := c.findOut(proto, real, client, h)
		if !ok {
			return Ref{}, false
		}
		if c.live(i, now) {
			c.stats.ReplyHits++
			return Ref{i, c.ents[i].gen}, true
		}
	}
}

func (c *Conns) live(i uint32, now int64) bool {
	if now < c.ents[i].expires {
		return true
	}
	c.drop(i, RemoveExpired)
	return false
}

// Insert adds a connection sent to real (destination dest), with an
// initial state and timeout, controlled by tmpl (the zero Ref for none; the
// caller has already called Templates.Hold(tmpl), and the table releases
// it when the connection leaves). On InsertExists the existing entry's Ref is
// returned and nothing changes (the caller still owns its Hold).
func (c *Conns) Insert(k *ConnKey, real netip.AddrPort, dest DestID, state uint8, timeout time.Duration, tmpl Ref, now int64) (Ref, InsertResult) {
	if !k.Client.Addr().IsValid() || !real.Addr().IsValid() || k.Client.Addr().Is4() != k.Virtual.Addr().Is4() {
		c.stats.Invalid++
		return Ref{}, InsertInvalid
	}
	if r, ok := c.Lookup(k, now); ok {
		c.stats.Exists++
		return r, InsertExists
	}
	if c.lists.n[segFree] == 0 && !c.lists.makeRoom(c, now, c.minIdle) {
		c.stats.Overflow++
		return Ref{}, InsertOverflow
	}
	i, _ := c.lists.back(segFree)
	c.lists.move(i, segProbation)
	e := &c.ents[i]
	flags := flagLive
	if v6(k.Client.Addr()) {
		flags |= flagV6
	}
	if v6(real.Addr()) {
		flags |= flagRealV6
	}
	hin := k.Hash(c.seed)
	hout := dirHash(c.seed, k.Protocol, real, k.Client, dirOut)
	*e = conn{
		caddr: k.Client.Addr().As16(), vaddr: k.Virtual.Addr().As16(), daddr: real.Addr().As16(),
		expires: now + int64(timeoutMillis(timeout))*int64(time.Millisecond),
		tmpl:    tmpl,
		hashIn:  hashHome(hin), hashOut: hashHome(hout),
		timeout: timeoutMillis(timeout),
		dest:    dest,
		gen:     e.gen,
		cport:   k.Client.Port(), vport: k.Virtual.Port(), dport: real.Port(),
		proto: k.Protocol, state: state, flags: flags,
	}
	c.index.add(hin, 2*i)
	c.index.add(hout, 2*i+1)
	c.stats.Inserts++
	c.stats.Live++
	return Ref{i, e.gen}, Inserted
}

func (c *Conns) entry(r Ref) *conn {
	if r.slot >= uint32(len(c.ents)) {
		return nil
	}
	e := &c.ents[r.slot]
	if e.gen != r.gen || e.flags&flagLive == 0 {
		return nil
	}
	return e
}

// Get returns the connection r refers to, or false for a stale Ref.
func (c *Conns) Get(r Ref) (ConnInfo, bool) {
	e := c.entry(r)
	if e == nil {
		return ConnInfo{}, false
	}
	return c.info(e), true
}

func addrOf(a [16]byte, is6 bool) netip.Addr {
	if is6 {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom16(a).Unmap()
}

func (c *Conns) info(e *conn) ConnInfo {
	is6 := e.flags&flagV6 != 0
	return ConnInfo{
		Key: ConnKey{
			Protocol: e.proto,
			Client:   netip.AddrPortFrom(addrOf(e.caddr, is6), e.cport),
			Virtual:  netip.AddrPortFrom(addrOf(e.vaddr, is6), e.vport),
		},
		Real:     netip.AddrPortFrom(addrOf(e.daddr, e.flags&flagRealV6 != 0), e.dport),
		Dest:     e.dest,
		State:    e.state,
		Flags:    e.cflags,
		Template: e.tmpl,
		Timeout:  time.Duration(e.timeout) * time.Millisecond,
		Synced:   e.flags&flagSync != 0,
	}
}

// Touch restarts the connection's timeout and marks it used. It reports
// false for a stale Ref.
func (c *Conns) Touch(r Ref, now int64) bool {
	e := c.entry(r)
	if e == nil {
		return false
	}
	e.expires = now + int64(e.timeout)*int64(time.Millisecond)
	e.flags |= flagUsed
	return true
}

// State returns the connection's protocol state and flags, or false for a
// stale Ref: the pipeline reads them before SetState to move the connection
// between its destination's active and inactive gauges.
func (c *Conns) State(r Ref) (state, flags uint8, ok bool) {
	e := c.entry(r)
	if e == nil {
		return 0, 0, false
	}
	return e.state, e.cflags, true
}

// SetState changes the protocol state, flags and timeout (restarted from
// now), as a TCP state transition does.
func (c *Conns) SetState(r Ref, state, flags uint8, timeout time.Duration, now int64) bool {
	e := c.entry(r)
	if e == nil {
		return false
	}
	e.state, e.cflags, e.timeout = state, flags, timeoutMillis(timeout)
	e.expires = now + int64(e.timeout)*int64(time.Millisecond)
	e.flags |= flagUsed
	return true
}

// Remove deletes the connection (reason RemoveInvalidated).
func (c *Conns) Remove(r Ref) bool {
	if c.entry(r) == nil {
		return false
	}
	c.drop(r.slot, RemoveInvalidated)
	return true
}

// Capacity is how many entry slots the table has (what Sweep cycles
// through).
func (c *Conns) Capacity() int { return len(c.ents) }

// Sweep visits up to budget slots round-robin and removes expired
// connections, returning how many it removed.
func (c *Conns) Sweep(now int64, budget int) int {
	n := 0
	for range min(budget, len(c.ents)) {
		i := c.cursor
		if c.cursor++; c.cursor == uint32(len(c.ents)) {
			c.cursor = 0
		}
		if c.ents[i].flags&flagLive != 0 && now >= c.ents[i].expires {
			c.drop(i, RemoveExpired)
			n++
		}
	}
	return n
}

// AppendInfo appends every live connection to dst (a control-plane call).
func (c *Conns) AppendInfo(dst []ConnInfo, now int64) []ConnInfo {
	dst, _ = c.AppendInfoFrom(dst, 0, len(c.ents), now)
	return dst
}

// AppendInfoFrom is AppendInfo over at most n entry slots from slot from,
// returning the slot to continue from (see Templates.AppendInfoFrom).
func (c *Conns) AppendInfoFrom(dst []ConnInfo, from, n int, now int64) ([]ConnInfo, int) {
	from = min(max(from, 0), len(c.ents))
	end := from + min(max(n, 0), len(c.ents)-from)
	for i := from; i < end; i++ {
		e := &c.ents[i]
		if e.flags&flagLive == 0 || now >= e.expires {
			continue
		}
		in := c.info(e)
		in.Remaining = time.Duration(e.expires - now)
		dst = append(dst, in)
	}
	return dst, end
}

func (c *Conns) expired(i uint32, now int64) bool { return now >= c.ents[i].expires }

func (c *Conns) used(i uint32) bool {
	e := &c.ents[i]
	u := e.flags&flagUsed != 0
	e.flags &^= flagUsed
	return u
}

func (c *Conns) idle(i uint32, now int64) int64 {
	e := &c.ents[i]
	return now - (e.expires - int64(e.timeout)*int64(time.Millisecond))
}

func (c *Conns) drop(i uint32, reason RemoveReason) {
	e := &c.ents[i]
	c.index.remove(e.hashIn, 2*i, c)
	c.index.remove(e.hashOut, 2*i+1, c)
	c.lists.move(i, segFree)
	dest, tmpl, state, flags := e.dest, e.tmpl, e.state, e.cflags
	gen := e.gen + 1
	if gen == 0 {
		gen = 1
	}
	*e = conn{gen: gen}
	c.stats.Live--
	switch reason {
	case RemoveExpired:
		c.stats.Expired++
	case RemoveEvictedProbation:
		c.stats.EvictedProbation++
	case RemoveEvictedProtected:
		c.stats.EvictedProtected++
	default:
		c.stats.Removed++
	}
	if c.tmpls != nil && !tmpl.IsZero() {
		c.tmpls.Release(tmpl)
	}
	if c.onRm != nil {
		c.onRm(dest, state, flags, reason)
	}
}
