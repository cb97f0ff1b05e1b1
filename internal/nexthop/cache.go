package nexthop

import "net/netip"

// cacheSize is the number of destinations a worker's Cache remembers: the
// real servers and the clients of a busy moment; 1024 entries of 40 bytes
// stay within L2. A miss costs a route lookup (a map read per prefix length
// in use) and a neighbour map read.
const cacheSize = 1024

// askedSize is the size of a Cache's filter of recently requested next hops
// that have no slot yet (the filter is direct-mapped: a collision only costs
// a duplicate request).
const askedSize = 256

// Cache is one worker's view of a Table: it remembers where recent
// destinations go, and asks the control plane to resolve next hops. Only its
// owner goroutine may use it. Lookups do not allocate, lock or block.
type Cache struct {
	t     *Table
	gen   uint64
	ents  []cacheEnt
	asked []askedEnt
}

type cacheEnt struct {
	addr  netip.Addr
	val   uint32 // slot<<8 | generation, when slot
	st    Status
	port  Port
	slot  bool
	valid bool
}

type askedEnt struct {
	key Request
	at  int64
}

// NewCache returns a cache for the workers of t.
func (t *Table) NewCache() *Cache {
	c := &Cache{t: t, ents: make([]cacheEnt, cacheSize), asked: make([]askedEnt, askedSize)}
	for i := range c.asked {
		c.asked[i].at = neverAsked
	}
	return c
}

// Lookup returns where a frame to dst leaves, at time now (monotonic
// nanoseconds, the worker's batch time). For Incomplete and Failed it has
// asked the control plane to resolve the next hop (at most once per
// RetryInterval per next hop). It does not allocate.
func (c *Cache) Lookup(dst netip.Addr, now int64) (Egress, Status) {
	v := c.t.view.Load()
	if v.gen != c.gen {
		clear(c.ents)
		c.gen = v.gen
	}
	e := &c.ents[hashAddr(dst)&(cacheSize-1)]
	if !e.valid || e.addr != dst {
		st, port, hop, _ := v.route(dst)
		if st != Resolved {
			*e = cacheEnt{addr: dst, st: st, valid: true}
			return Egress{}, st
		}
		val, ok := v.neigh[neighKey{port, hop}]
		if !ok {
			// A next hop the table has no slot for yet (a client seen
			// for the first time): ask for it, do not remember it.
			c.askNew(Request{Port: port, Addr: hop}, now)
			return Egress{Hop: hashAddr(hop) ^ uint64(port)}, Incomplete
		}
		*e = cacheEnt{addr: dst, val: val, port: port, slot: true, valid: true}
	}
	if !e.slot {
		return Egress{}, e.st
	}
	s := &c.t.hops[e.val>>8]
	w := s.word.Load()
	if wordGen(w) != uint8(e.val) {
		// The slot was given to another neighbour since this view: the
		// view that says so is about to be published.
		e.valid = false
		return Egress{Hop: uint64(e.val) | 1<<63}, Incomplete
	}
	switch wordState(w) {
	case NeighReachable:
		return Egress{Port: e.port, Src: v.ports[e.port].MAC, Dst: wordMAC(w)}, Resolved
	case NeighStale:
		c.ask(s, e.val>>8, now) // used: the kernel confirms it
		return Egress{Port: e.port, Src: v.ports[e.port].MAC, Dst: wordMAC(w)}, Resolved
	case NeighFailed:
		c.ask(s, e.val>>8, now)
		return Egress{}, Failed
	}
	c.ask(s, e.val>>8, now)
	return Egress{Hop: uint64(e.val) | 1<<63}, Incomplete
}

// ask posts a resolution request for slot i unless one was posted in the
// last RetryInterval (by any worker).
func (c *Cache) ask(s *hopSlot, i uint32, now int64) {
	a := s.asked.Load()
	if now-a < RetryInterval || !s.asked.CompareAndSwap(a, now) {
		return
	}
	c.t.post(Request{slot: i + 1})
}

// askNew posts a request for a next hop without a slot, unless this cache
// asked for it in the last RetryInterval.
func (c *Cache) askNew(r Request, now int64) {
	a := &c.asked[hashAddr(r.Addr)&(askedSize-1)]
	if a.key == r && now-a.at < RetryInterval {
		return
	}
	a.key, a.at = r, now
	c.t.post(r)
}

// post queues a request and rings the control goroutine's bell. The bell is
// a channel with room for one signal: a non-blocking send, which happens at
// most once per next hop per RetryInterval, never per packet.
func (t *Table) post(r Request) {
	if !t.reqs.push(r) {
		return
	}
	select {
	case t.bell <- struct{}{}:
	default:
	}
}

// Request asks the control plane to resolve a next hop: the neighbour Addr
// on Port, or (from a slot) the neighbour slot names.
type Request struct {
	Port Port
	Addr netip.Addr
	slot uint32 // slot index + 1; 0 for Port/Addr
}

// Bell receives a signal when requests are queued.
func (t *Table) Bell() <-chan struct{} { return t.bell }

// Requests hands fn every queued request as (interface index, neighbour
// address), oldest first; requests for slots the table has since freed are
// skipped. Only the control goroutine may call it.
func (t *Table) Requests(fn func(ifindex int, addr netip.Addr)) {
	for {
		r, ok := t.reqs.pop()
		if !ok {
			return
		}
		t.mu.Lock()
		if r.slot != 0 {
			k := t.keys[r.slot-1] // zero for a slot freed since
			r.Port, r.Addr = k.port, k.addr
		}
		ifindex := 0
		if r.Addr.IsValid() && int(r.Port) < len(t.ports) {
			ifindex = t.ports[r.Port].Ifindex
		}
		t.mu.Unlock()
		if ifindex != 0 {
			fn(ifindex, r.Addr)
		}
	}
}

// RequestsDropped counts requests lost to a full queue (they are asked
// again after RetryInterval).
func (t *Table) RequestsDropped() uint64 { return t.reqs.dropped.Load() }

// Resolve is Lookup for the control plane (health probes, reports): it asks
// for nothing and reads the current view. ifindex is the outgoing interface
// also when the route leaves by an unserved one.
func (t *Table) Resolve(dst netip.Addr) (e Egress, st Status, ifindex int) {
	v := t.view.Load()
	st, port, hop, ifindex := v.route(dst.Unmap())
	if st != Resolved {
		return Egress{}, st, ifindex
	}
	val, ok := v.neigh[neighKey{port, hop}]
	if !ok {
		return Egress{Port: port}, Incomplete, ifindex
	}
	w := t.hops[val>>8].word.Load()
	if wordGen(w) != uint8(val) {
		return Egress{Port: port}, Incomplete, ifindex
	}
	switch wordState(w) {
	case NeighReachable, NeighStale:
		return Egress{Port: port, Src: v.ports[port].MAC, Dst: wordMAC(w)}, Resolved, ifindex
	case NeighFailed:
		return Egress{Port: port}, Failed, ifindex
	}
	return Egress{Port: port}, Incomplete, ifindex
}

// NextHop returns the port and next-hop address frames to dst go to, when
// the route leaves by a served interface (the control plane resolves it
// ahead of traffic).
func (t *Table) NextHop(dst netip.Addr) (ifindex int, hop netip.Addr, ok bool) {
	st, _, hop, ifindex := t.view.Load().route(dst.Unmap())
	return ifindex, hop, st == Resolved
}

// IsLocal reports whether a is an address of this host.
func (t *Table) IsLocal(a netip.Addr) bool { return t.view.Load().isLocal(a.Unmap()) }
