package nexthop

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// view is an immutable snapshot of the control-side state that workers read
// through an atomic pointer: ports, routes by longest prefix, the host's
// addresses, and which slot holds which neighbour. Neighbours' MACs and
// states live in the slots, outside the view.
type view struct {
	gen   uint64
	ports []PortInfo
	v4    lpm4
	v6    lpm6
	local map[netip.Addr]struct{}
	bcast map[netip.Addr]struct{}
	neigh map[neighKey]uint32 // slot<<8 | generation
}

type routeEnt struct {
	typ   RouteType
	paths []pathEnt
}

type pathEnt struct {
	ifindex int
	port    Port
	served  bool
	gw      netip.Addr // invalid: on-link
}

// lpm4 finds the longest matching IPv4 prefix: one map per prefix length
// present, longest first (a director has a handful of lengths: /32 host
// routes, its links' /24s, the default route).
type lpm4 struct {
	lens   []int
	tables []map[uint32]int32
	routes []routeEnt
}

type lpm6 struct {
	lens   []int
	tables []map[[2]uint64]int32
	routes []routeEnt
}

func mask4(a uint32, n int) uint32 {
	if n == 0 {
		return 0
	}
	return a &^ (1<<(32-n) - 1)
}

func mask6(a [2]uint64, n int) [2]uint64 {
	switch {
	case n == 0:
		return [2]uint64{}
	case n <= 64:
		return [2]uint64{a[0] &^ (1<<(64-n) - 1), 0}
	case n < 128:
		return [2]uint64{a[0], a[1] &^ (1<<(128-n) - 1)}
	}
	return a
}

func key4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func key6(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (l *lpm4) lookup(a netip.Addr) *routeEnt {
	k := key4(a)
	for i, n := range l.lens {
		if r, ok := l.tables[i][mask4(k, n)]; ok {
			return &l.routes[r]
		}
	}
	return nil
}

func (l *lpm6) lookup(a netip.Addr) *routeEnt {
	k := key6(a)
	for i, n := range l.lens {
		if r, ok := l.tables[i][mask6(k, n)]; ok {
			return &l.routes[r]
		}
	}
	return nil
}

// buildView makes the view of the current control-side state. Caller holds
// t.mu.
func (t *Table) buildView() *view {
	v := &view{gen: t.gen, ports: slices.Clone(t.ports), local: make(map[netip.Addr]struct{}, len(t.local)),
		neigh: make(map[neighKey]uint32, len(t.neigh))}
	for _, a := range t.local {
		v.local[a.Unmap()] = struct{}{}
	}
	v.bcast = make(map[netip.Addr]struct{}, len(t.bcast))
	for _, a := range t.bcast {
		v.bcast[a.Unmap()] = struct{}{}
	}
	for k, i := range t.neigh {
		v.neigh[k] = i<<8 | uint32(wordGen(t.hops[i].word.Load()))
	}
	// Sort longest prefix first; within a length the first route listed
	// wins (the kernel lists the main table in its own order; a duplicate
	// prefix with another metric is a backup route).
	rs := slices.Clone(t.routes)
	slices.SortStableFunc(rs, func(a, b Route) int { return b.Dst.Bits() - a.Dst.Bits() })
	for _, r := range rs {
		if !r.Dst.IsValid() {
			continue
		}
		e := routeEnt{typ: r.Type}
		for _, p := range r.Paths {
			pe := pathEnt{ifindex: p.Ifindex, gw: p.Gateway.Unmap()}
			pe.port, pe.served = t.portOf(p.Ifindex)
			if !pe.gw.IsValid() || pe.gw.IsUnspecified() {
				pe.gw = netip.Addr{}
			}
			e.paths = append(e.paths, pe)
		}
		n := r.Dst.Bits()
		a := r.Dst.Addr().Unmap()
		if a.Is4() {
			if r.Dst.Addr().Is4In6() {
				n -= 96
			}
			l := &v.v4
			i := slices.Index(l.lens, n)
			if i < 0 {
				l.lens = append(l.lens, n)
				l.tables = append(l.tables, map[uint32]int32{})
				i = len(l.lens) - 1
			}
			k := mask4(key4(a), n)
			if _, dup := l.tables[i][k]; !dup {
				l.tables[i][k] = int32(len(l.routes))
				l.routes = append(l.routes, e)
			}
			continue
		}
		l := &v.v6
		i := slices.Index(l.lens, n)
		if i < 0 {
			l.lens = append(l.lens, n)
			l.tables = append(l.tables, map[[2]uint64]int32{})
			i = len(l.lens) - 1
		}
		k := mask6(key6(a), n)
		if _, dup := l.tables[i][k]; !dup {
			l.tables[i][k] = int32(len(l.routes))
			l.routes = append(l.routes, e)
		}
	}
	return v
}

// isLocal reports whether a is an address of this host.
func (v *view) isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	_, ok := v.local[a]
	return ok
}

// route is the routing decision for dst: the status (Resolved here means
// "a next hop on a served port": its neighbour decides the rest), the port
// and next-hop address, and the outgoing interface (for reports, also when
// Unserved).
func (v *view) route(dst netip.Addr) (st Status, port Port, hop netip.Addr, ifindex int) {
	if v.isLocal(dst) {
		return Local, 0, netip.Addr{}, 0
	}
	var r *routeEnt
	if dst.Is4() {
		r = v.v4.lookup(dst)
	} else {
		r = v.v6.lookup(dst)
	}
	if r == nil || len(r.paths) == 0 {
		return NoRoute, 0, netip.Addr{}, 0
	}
	switch r.typ {
	case LocalRoute:
		return Local, 0, netip.Addr{}, 0
	case Unreachable:
		return NoRoute, 0, netip.Addr{}, 0
	}
	p := &r.paths[0]
	if len(r.paths) > 1 {
		// One destination keeps one path (as the kernel's multipath hash
		// of the addresses keeps a flow on one).
		p = &r.paths[hashAddr(dst)%uint64(len(r.paths))]
	}
	if !p.served {
		return Unserved, 0, netip.Addr{}, p.ifindex
	}
	hop = dst
	if p.gw.IsValid() {
		hop = p.gw
	}
	return Resolved, p.port, hop, p.ifindex
}

// hashAddr mixes an address into 64 bits (cache index, multipath choice).
func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:])
	hi, lo := bits.Mul64(h, 0xbf58476d1ce4e5b9)
	return hi ^ lo
}
