// Package nexthop decides where the data plane sends a frame: for a
// destination address, the served interface it leaves by (its Port) and the
// MAC addresses of its Ethernet header, as the kernel's routing and
// neighbour tables say. It is the one place egress is chosen — frames to real
// servers, NAT replies and real servers' own requests towards clients,
// ICMP errors, fragments, and any encapsulation's outer destination all ask
// it — so that a director with several legs sends each frame out of the one
// the kernel would.
//
// A Table holds what the control plane knows: the served interfaces (ports),
// the main routing table, the host's own addresses and a fixed number of
// neighbour slots (next hop address and interface → MAC and state). The
// control plane (package neigh, which follows the kernel over netlink)
// writes it; the workers read it without locks through their own Cache,
// which remembers recent destinations. A destination whose next hop has no
// MAC yet is Incomplete: the worker asks the control plane to resolve it
// (Cache.Lookup posts the request on a lock-free bounded queue, at most once
// a second per next hop), holds a copy of the frame, and sends it once the
// slot turns Resolved.
//
// Routing follows the main table by longest prefix (multipath routes pick a
// path by the destination address, so one destination keeps one path); rules
// (ip rule) and other tables are not consulted. A destination that is an
// address of the host is Local; one whose route leaves by an interface the
// data plane does not serve is Unserved; one without a usable route is
// NoRoute.
package nexthop

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Port is a served interface: its index in the daemon's list of interfaces
// (xvs run --iface, in order).
type Port uint8

// Limits.
const (
	// MaxPorts bounds the served interfaces: a slot word keeps the port in
	// four bits, and a director has two or three legs, not sixteen.
	MaxPorts = 16
	// DefaultHops is the number of neighbour slots: four times the kernel's
	// default neighbour table limit per family (gc_thresh3 = 1024), so that
	// every neighbour the kernel keeps on the served links, in both
	// families, has a slot.
	DefaultHops = 4096
	// MaxHops bounds Options.Hops (the slot index and its generation share
	// a 32-bit value in a view).
	MaxHops = 1 << 20
	// requestQueue is the capacity of the resolution request queue: far
	// more next hops than become needed between two passes of the control
	// goroutine; a full queue drops the request, and the worker asks again
	// after RetryInterval.
	requestQueue = 1024
	// RetryInterval is how often a worker asks again for a next hop that is
	// still unresolved: the kernel's retransmission time for ARP and
	// neighbour solicitations (retrans_time_ms, 1 s).
	RetryInterval = int64(1e9)
	// neverAsked is a slot's "last asked" time before any request: far
	// enough in the past for any clock's first reading.
	neverAsked = math.MinInt64 / 2
)

// Status is the outcome of a lookup.
type Status uint8

const (
	// Resolved: the Egress is complete.
	Resolved Status = iota
	// Incomplete: the next hop's MAC is being resolved (ARP, neighbour
	// discovery); a frame may wait for it.
	Incomplete
	// Failed: the next hop did not answer resolution (the kernel's FAILED
	// state). A new lookup asks again.
	Failed
	// Unserved: the route leaves by an interface the data plane does not
	// serve.
	Unserved
	// NoRoute: no route, or an unreachable, blackhole or prohibit one.
	NoRoute
	// Local: the destination is an address of this host.
	Local
	numStatus
)

var statusNames = [numStatus]string{"resolved", "incomplete", "failed", "unserved", "no_route", "local"}

// String names the status as logs and metrics show it.
func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Egress is where a frame leaves: the port, the port's own MAC (the frame's
// new source) and the next hop's MAC (its new destination). For an
// Incomplete lookup only Hop is set: the next hop's identity, so that the
// frames held for one neighbour can be bounded together.
type Egress struct {
	Port     Port
	Src, Dst [6]byte
	Hop      uint64
}

// PortInfo describes a served interface.
type PortInfo struct {
	Name    string
	Ifindex int
	MAC     [6]byte
}

// RouteType is a route's kind, as the kernel's rtm_type.
type RouteType uint8

// Route kinds xvs tells apart; every other kernel type is Unreachable.
const (
	Unicast RouteType = iota
	Unreachable
	LocalRoute
)

// Route is one route of the main table.
type Route struct {
	Dst  netip.Prefix
	Type RouteType
	// Paths are the next hops: one for an ordinary route, several for a
	// multipath one. A path's Gateway is invalid for an on-link route.
	Paths []Path
}

// Path is one next hop of a route.
type Path struct {
	Ifindex int
	Gateway netip.Addr
}

// NeighState is a neighbour slot's state.
type NeighState uint8

// Neighbour states. The kernel's REACHABLE, DELAY, PROBE, PERMANENT and
// NOARP mean "the MAC is usable" (Reachable); STALE is usable too, but the
// kernel wants it confirmed: it keeps using a STALE address until proven
// wrong, and confirms it when it is used (DELAY, then a unicast probe). The
// kernel does not see the workers use an entry, so a lookup that meets a
// Stale one asks the control plane to mark it used (at most once per
// RetryInterval), which starts the kernel's confirmation: a MAC that
// changed is found again as it would be for the kernel's own traffic.
const (
	NeighNone       NeighState = iota // not known yet
	NeighIncomplete                   // being resolved
	NeighReachable                    // MAC usable
	NeighFailed                       // resolution failed
	NeighStale                        // MAC usable, to be confirmed
)

// usable reports whether a state's MAC may be used.
func (s NeighState) usable() bool { return s == NeighReachable || s == NeighStale }

// ErrFull reports that every neighbour slot is taken.
var ErrFull = errors.New("next-hop table full")

// Options size a Table.
type Options struct {
	// Hops is the number of neighbour slots (0 = DefaultHops).
	Hops int
}

// Table is the shared next-hop state: written by one control goroutine,
// read by every worker through a Cache.
type Table struct {
	view atomic.Pointer[view]
	hops []hopSlot
	reqs requestRing
	// bell wakes the control goroutine when a request is queued (capacity
	// 1: a ring is a ring; more are coalesced).
	bell chan struct{}

	// Control-side state, guarded by mu.
	mu     sync.Mutex
	ports  []PortInfo
	routes []Route
	local  []netip.Addr
	bcast  []netip.Addr
	neigh  map[neighKey]uint32 // → slot index
	keys   []neighKey          // slot index → its neighbour (for requests naming a slot)
	free   []uint32
	dirty  bool
	gen    uint64
	waker  func()
}

type neighKey struct {
	port Port
	addr netip.Addr
}

// hopSlot is one neighbour: its state word (MAC, state, port, generation),
// written by the control goroutine, and when a worker last asked for it
// to be resolved.
type hopSlot struct {
	word  atomic.Uint64
	asked atomic.Int64
	_     [48]byte // one slot per cache line: workers CAS asked
}

// A slot word: MAC in bits 0..47, state 48..51, port 52..55, generation
// 56..63. One atomic load gives a consistent (MAC, state, port); the
// generation tells a reused slot from the one a view named.
func packWord(mac [6]byte, st NeighState, p Port, gen uint8) uint64 {
	w := uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
	return w | uint64(st&0xf)<<48 | uint64(p&0xf)<<52 | uint64(gen)<<56
}

func wordMAC(w uint64) [6]byte {
	return [6]byte{byte(w >> 40), byte(w >> 32), byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)}
}
func wordState(w uint64) NeighState { return NeighState(w >> 48 & 0xf) }
func wordGen(w uint64) uint8        { return uint8(w >> 56) }

// New returns an empty table: no ports, no routes (every lookup is NoRoute
// until the control plane fills it).
func New(o Options) (*Table, error) {
	n := o.Hops
	if n == 0 {
		n = DefaultHops
	}
	if n < 1 || n > MaxHops {
		return nil, fmt.Errorf("next-hop table: %d slots (1..%d)", n, MaxHops)
	}
	t := &Table{hops: make([]hopSlot, n), neigh: map[neighKey]uint32{}, keys: make([]neighKey, n), bell: make(chan struct{}, 1)}
	t.reqs.init(requestQueue)
	t.free = make([]uint32, 0, n)
	for i := n - 1; i >= 0; i-- {
		t.free = append(t.free, uint32(i))
		t.hops[i].asked.Store(neverAsked)
	}
	t.view.Store(&view{})
	return t, nil
}

// SetWaker sets the function called after a neighbour becomes resolved
// (the daemon wakes its workers, so that frames held for it leave at once).
func (t *Table) SetWaker(f func()) {
	t.mu.Lock()
	t.waker = f
	t.mu.Unlock()
}

// SetPorts sets the served interfaces, in Port order.
func (t *Table) SetPorts(ps []PortInfo) error {
	if len(ps) > MaxPorts {
		return fmt.Errorf("%d interfaces: at most %d", len(ps), MaxPorts)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ports = append([]PortInfo(nil), ps...)
	t.dirty = true
	return nil
}

// Ports returns the served interfaces.
func (t *Table) Ports() []PortInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]PortInfo(nil), t.ports...)
}

// SetRoutes replaces the routes (the main table).
func (t *Table) SetRoutes(rs []Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.routes = append([]Route(nil), rs...)
	t.dirty = true
}

// SetLocal replaces the host's own addresses (loopback addresses are local
// whether listed or not).
func (t *Table) SetLocal(as []netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.local = append([]netip.Addr(nil), as...)
	t.dirty = true
}

// SetBroadcast replaces the host's IPv4 broadcast addresses (its links'
// directed broadcasts; 255.255.255.255 is one whether listed or not).
func (t *Table) SetBroadcast(as []netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bcast = append([]netip.Addr(nil), as...)
	t.dirty = true
}

// Kind is what an address is to this host.
type Kind uint8

// Address kinds (Classify).
const (
	KindUnicast   Kind = iota // another host
	KindLocal                 // an address of this host (or a range it delivers locally)
	KindBroadcast             // 255.255.255.255, or a directed broadcast of one of its links
	KindMulticast
	KindUnusable // unspecified, or an IPv6 link-local address of another host (it names no link)
)

// Classify says what a is to this host, from the published view (no system
// call): the real-server check of ipvsadm -a (the kernel's ip_vs_new_dest
// accepts only a local or unicast address).
func (t *Table) Classify(a netip.Addr) Kind {
	a = a.Unmap()
	v := t.view.Load()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return KindUnusable
	case a.IsMulticast():
		return KindMulticast
	case v.isLocal(a):
		return KindLocal
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return KindBroadcast
	}
	if _, ok := v.bcast[a]; ok {
		return KindBroadcast
	}
	if st, _, _, _ := v.route(a); st == Local {
		return KindLocal
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		return KindUnusable
	}
	return KindUnicast
}

// portOf returns the port of an interface index.
func (t *Table) portOf(ifindex int) (Port, bool) {
	for i, p := range t.ports {
		if p.Ifindex == ifindex {
			return Port(i), true
		}
	}
	return 0, false
}

// SetNeighbour records the state of the neighbour addr on interface
// ifindex (ignored when the interface is not served). It reports whether
// the neighbour became usable (the caller then calls Flush, which wakes
// the workers). A new neighbour takes a slot; ErrFull when none is left.
func (t *Table) SetNeighbour(ifindex int, addr netip.Addr, mac [6]byte, st NeighState) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.portOf(ifindex)
	if !ok {
		return false, nil
	}
	k := neighKey{p, addr.Unmap()}
	i, ok := t.neigh[k]
	if !ok {
		if len(t.free) == 0 {
			return false, ErrFull
		}
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		t.neigh[k] = i
		t.keys[i] = k
		t.hops[i].asked.Store(neverAsked)
		t.dirty = true
		// A new generation, so that a view naming the slot's previous
		// neighbour no longer matches it.
		t.hops[i].word.Store(packWord([6]byte{}, NeighNone, p, wordGen(t.hops[i].word.Load())+1))
	}
	old := t.hops[i].word.Load()
	if !st.usable() {
		mac = wordMAC(old) // keep the last MAC for logs; it is not used
	}
	t.hops[i].word.Store(packWord(mac, st, p, wordGen(old)))
	return st.usable() && !wordState(old).usable(), nil
}

// DeleteNeighbour frees the slot of a neighbour the kernel removed.
func (t *Table) DeleteNeighbour(ifindex int, addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.portOf(ifindex)
	if !ok {
		return
	}
	k := neighKey{p, addr.Unmap()}
	i, ok := t.neigh[k]
	if !ok {
		return
	}
	delete(t.neigh, k)
	t.keys[i] = neighKey{}
	old := t.hops[i].word.Load()
	t.hops[i].word.Store(packWord([6]byte{}, NeighNone, p, wordGen(old)+1))
	t.free = append(t.free, i)
	t.dirty = true
}

// Neighbour returns a neighbour's state and MAC as the table has it.
func (t *Table) Neighbour(ifindex int, addr netip.Addr) (NeighState, [6]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.portOf(ifindex)
	if !ok {
		return NeighNone, [6]byte{}, false
	}
	i, ok := t.neigh[neighKey{p, addr.Unmap()}]
	if !ok {
		return NeighNone, [6]byte{}, false
	}
	w := t.hops[i].word.Load()
	return wordState(w), wordMAC(w), true
}

// Flush publishes the changes made since the last Flush to the workers, and
// wakes them when woke is set (a neighbour became usable).
func (t *Table) Flush(woke bool) {
	t.mu.Lock()
	if t.dirty {
		t.gen++
		t.view.Store(t.buildView())
		t.dirty = false
	}
	w := t.waker
	t.mu.Unlock()
	if woke && w != nil {
		w()
	}
}

// Gen returns the generation of the published view: it changes with every
// published change of routes, addresses, ports or the set of neighbours (not
// with a neighbour's MAC or state, which workers read from its slot).
func (t *Table) Gen() uint64 { return t.view.Load().gen }
