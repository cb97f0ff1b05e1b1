package neigh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// (The polling resolver the daemon used before the Watcher; removed once
// the daemon runs on the Watcher.)

// probePort is where a resolution probe is sent: UDP discard (RFC 863).
// Sending any datagram makes the kernel resolve the neighbour (ARP or IPv6
// neighbour discovery); the datagram itself is meant to be ignored.
const probePort = 9

// Resolver reads the neighbour and route tables of one interface.
type Resolver struct {
	link netlink.Link
}

// New returns a resolver for the named interface.
func New(iface string) (*Resolver, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", iface, err)
	}
	return &Resolver{link: l}, nil
}

// usable reports whether a neighbour entry's MAC can be used: the kernel
// keeps STALE entries' addresses valid until proven wrong.
func usable(n netlink.Neigh) bool {
	const bad = unix.NUD_INCOMPLETE | unix.NUD_FAILED | unix.NUD_NOARP
	return n.State&bad == 0 && len(n.HardwareAddr) == 6
}

// Neighbors returns the interface's usable neighbour entries (IPv4 and IPv6).
func (r *Resolver) Neighbors() (map[netip.Addr][6]byte, error) {
	out := map[netip.Addr][6]byte{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		list, err := netlink.NeighList(r.link.Attrs().Index, fam)
		if err != nil {
			return nil, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range list {
			if !usable(n) {
				continue
			}
			a, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			out[a.Unmap()] = [6]byte(n.HardwareAddr)
		}
	}
	return out, nil
}

// NextHop returns the address frames for dst are sent to at layer 2: dst
// itself when it is on-link, else the gateway of the route towards it.
func (r *Resolver) NextHop(dst netip.Addr) (netip.Addr, error) {
	rt, err := r.Route(dst)
	return rt.Hop, err
}

// Route is the kernel's route towards a destination through the served
// interface: what the balancer needs to send there itself.
type Route struct {
	// Hop is where frames go at layer 2: the destination when it is
	// on-link, else the route's gateway.
	Hop netip.Addr
	// Src is the address the kernel would send from (the route's
	// preferred source): a tunnel's outer source (ip_vs_tunnel_xmit takes
	// the route's). Invalid when the kernel names none.
	Src netip.Addr
	// MTU is the path MTU: the route's mtu attribute, else the
	// interface's.
	MTU int
}

// Route returns the route towards dst (ip route get).
func (r *Resolver) Route(dst netip.Addr) (Route, error) {
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return Route{}, fmt.Errorf("route to %v: %w", dst, err)
	}
	for _, rt := range routes {
		if rt.LinkIndex != r.link.Attrs().Index {
			continue
		}
		out := Route{Hop: dst, MTU: rt.MTU}
		if gw, ok := netip.AddrFromSlice(rt.Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
			out.Hop = gw.Unmap()
		}
		if src, ok := netip.AddrFromSlice(rt.Src); ok && src.IsValid() && !src.IsUnspecified() {
			out.Src = src.Unmap()
		}
		if out.MTU == 0 {
			if l, err := netlink.LinkByIndex(r.link.Attrs().Index); err == nil {
				out.MTU = l.Attrs().MTU
			} else {
				out.MTU = r.link.Attrs().MTU
			}
		}
		return out, nil
	}
	return Route{}, fmt.Errorf("route to %v: %w", dst, ErrNotOnLink)
}

// ErrNotOnLink reports a destination whose route does not leave through the
// served interface.
var ErrNotOnLink = errors.New("not reachable through the served interface")

// DefaultGateway returns the MAC of the default gateway of the family of
// probe (any address of that family), if it is resolved.
func (r *Resolver) DefaultGateway(probe netip.Addr, neighbors map[netip.Addr][6]byte) ([6]byte, bool) {
	hop, err := r.NextHop(probe)
	if err != nil || hop == probe {
		return [6]byte{}, false
	}
	m, ok := neighbors[hop]
	return m, ok
}

// Resolve returns the MACs of the next hops towards addrs, probing the
// unresolved ones and waiting up to wait for the kernel to resolve them.
// Addresses it could not resolve are absent from the result.
func (r *Resolver) Resolve(addrs []netip.Addr, wait time.Duration) (map[netip.Addr][6]byte, error) {
	hops := make(map[netip.Addr]netip.Addr, len(addrs))
	for _, a := range addrs {
		h, err := r.NextHop(a)
		if err != nil {
			continue
		}
		hops[a] = h
	}
	deadline := time.Now().Add(wait)
	probed := map[netip.Addr]bool{}
	for {
		neigh, err := r.Neighbors()
		if err != nil {
			return nil, err
		}
		out := make(map[netip.Addr][6]byte, len(addrs))
		var missing []netip.Addr
		for a, h := range hops {
			if m, ok := neigh[h]; ok {
				out[a] = m
			} else {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		for _, h := range missing {
			if !probed[h] {
				probed[h] = true
				probe(h) // even with no time to wait: the next call finds it resolved
			}
		}
		if time.Now().After(deadline) {
			return out, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe sends one empty UDP datagram to a's discard port so that the kernel
// resolves a's link-layer address.
func probe(a netip.Addr) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, probePort)))
	if err != nil {
		return
	}
	c.Write(nil)
	c.Close()
}
