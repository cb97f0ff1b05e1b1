package pipeline

import (
	"net/netip"
	"sync/atomic"
)

// NextHops resolves where frames leaving towards clients go at layer 2: NAT
// replies and real servers' own requests, whose destination is a client (or
// a peer) rather than a real server. The control plane fills it from the
// kernel's neighbour and route tables; workers only read it.
//
// Lookup tries the client's own neighbour entry (an on-link client), then the
// default gateway. The zero NextHops, or a nil one, resolves nothing, and
// the pipeline then leaves such frames' MACs as they are (non-Ethernet links,
// offline replay).
type NextHops struct {
	table atomic.Pointer[nextHopTable]
}

type nextHopTable struct {
	neigh   map[netip.Addr][6]byte
	gateway [6]byte
	hasGW   bool
}

// Set replaces the table: on-link neighbours and the default gateway's MAC
// (zero for none). The maps are copied; Set may run concurrently with
// Lookups.
func (n *NextHops) Set(neigh map[netip.Addr][6]byte, gateway [6]byte) {
	t := &nextHopTable{neigh: make(map[netip.Addr][6]byte, len(neigh)), gateway: gateway, hasGW: gateway != [6]byte{}}
	for a, m := range neigh {
		t.neigh[a] = m
	}
	n.table.Store(t)
}

// Lookup returns the MAC to send a frame for dst to, and whether there is
// one. It allocates nothing.
func (n *NextHops) Lookup(dst netip.Addr) ([6]byte, bool) {
	if n == nil {
		return [6]byte{}, false
	}
	t := n.table.Load()
	if t == nil {
		return [6]byte{}, false
	}
	if m, ok := t.neigh[dst]; ok {
		return m, true
	}
	return t.gateway, t.hasGW
}

// Configured reports whether Set has been called: a worker with a
// configured table drops a client-bound Ethernet frame it cannot resolve
// (no_next_hop) rather than reflecting it to its own MAC.
func (n *NextHops) Configured() bool { return n != nil && n.table.Load() != nil }
