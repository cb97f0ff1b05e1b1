// Package neigh keeps a nexthop.Table in step with the kernel: the served
// interfaces, the main routing table, the host's addresses and the
// neighbours on the served links. It subscribes to the kernel's neighbour,
// route, address and link notifications over rtnetlink (RTNLGRP_NEIGH,
// RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_IFADDR,
// RTNLGRP_IPV6_IFADDR, RTNLGRP_LINK) instead of polling: a neighbour's
// change reaches the workers as soon as the kernel makes it, and a route or
// address change within Debounce.
//
// When a worker needs a next hop the table does not have (a client seen for
// the first time, a real server whose entry expired), it posts a request;
// the watcher asks the kernel to resolve it at once with an RTM_NEWNEIGH
// carrying NTF_USE, which makes the kernel create the entry and send its
// ARP request or neighbour solicitation as if it had a packet for it (it
// has none: the worker holds the frame). The kernel's answer arrives as a
// neighbour notification, and the table wakes the workers.
//
// The data plane never asks the kernel per packet.
package neigh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/nexthop"
)

const (
	// Debounce coalesces a burst of route, address and link notifications
	// (an interface going down withdraws all its routes, one message each)
	// into one re-read of the tables.
	Debounce = 20 * time.Millisecond
	// Resync is how often the whole state is read again regardless, in
	// case a notification was lost (a full netlink socket buffer drops
	// them; the subscription is then renewed at once as well).
	Resync = 30 * time.Second
	// resubscribeDelay is the pause before a failed subscription is
	// renewed.
	resubscribeDelay = 100 * time.Millisecond
	// updateQueue is the capacity of each subscription's channel.
	updateQueue = 1024
)

// Watcher follows the kernel for one nexthop.Table.
type Watcher struct {
	tbl    *nexthop.Table
	ifaces []string
	log    *slog.Logger

	mu     sync.Mutex // guards ports
	ports  []nexthop.PortInfo
	fullAt time.Time // last ErrFull log

	stop chan struct{}
	done chan struct{}
}

// ErrNoInterface reports an interface that does not exist.
var ErrNoInterface = errors.New("no such network interface")

// Start reads the interfaces, routes, addresses and neighbours into tbl
// and follows their changes until Close. ifaces are the served interfaces,
// in Port order.
func Start(tbl *nexthop.Table, ifaces []string, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{tbl: tbl, ifaces: append([]string(nil), ifaces...), log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if err := w.readPorts(); err != nil {
		return nil, err
	}
	subs, err := subscribe()
	if err != nil {
		return nil, err
	}
	if err := w.sync(); err != nil {
		subs.close()
		return nil, err
	}
	go w.run(subs)
	return w, nil
}

// Close stops following the kernel.
func (w *Watcher) Close() {
	close(w.stop)
	<-w.done
}

// Ports returns the served interfaces as last read.
func (w *Watcher) Ports() []nexthop.PortInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]nexthop.PortInfo(nil), w.ports...)
}

func (w *Watcher) readPorts() error {
	ps := make([]nexthop.PortInfo, 0, len(w.ifaces))
	for _, name := range w.ifaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, ErrNoInterface)
		}
		p := nexthop.PortInfo{Name: name, Ifindex: l.Attrs().Index}
		copy(p.MAC[:], l.Attrs().HardwareAddr)
		ps = append(ps, p)
	}
	if err := w.tbl.SetPorts(ps); err != nil {
		return err
	}
	w.mu.Lock()
	w.ports = ps
	w.mu.Unlock()
	return nil
}

// subs are the kernel subscriptions.
type subs struct {
	neigh chan netlink.NeighUpdate
	route chan netlink.RouteUpdate
	addr  chan netlink.AddrUpdate
	link  chan netlink.LinkUpdate
	done  chan struct{}
}

func subscribe() (*subs, error) {
	s := &subs{
		neigh: make(chan netlink.NeighUpdate, updateQueue),
		route: make(chan netlink.RouteUpdate, updateQueue),
		addr:  make(chan netlink.AddrUpdate, updateQueue),
		link:  make(chan netlink.LinkUpdate, updateQueue),
		done:  make(chan struct{}),
	}
	ignore := func(error) {} // a failed subscription closes its channel: run renews them all
	if err := netlink.NeighSubscribeWithOptions(s.neigh, s.done, netlink.NeighSubscribeOptions{ErrorCallback: ignore}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribing to neighbour changes: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(s.route, s.done, netlink.RouteSubscribeOptions{ErrorCallback: ignore}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribing to route changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(s.addr, s.done, netlink.AddrSubscribeOptions{ErrorCallback: ignore}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribing to address changes: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(s.link, s.done, netlink.LinkSubscribeOptions{ErrorCallback: ignore}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	return s, nil
}

func (s *subs) close() { close(s.done) }

func (w *Watcher) run(s *subs) {
	defer close(w.done)
	defer func() { s.close() }()
	resync := time.NewTicker(Resync)
	defer resync.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	later := func() {
		if !pending {
			pending = true
			debounce.Reset(Debounce)
		}
	}
	renew := func() {
		s.close()
		for {
			select {
			case <-w.stop:
				s = &subs{done: make(chan struct{})}
				return
			case <-time.After(resubscribeDelay):
			}
			ns, err := subscribe()
			if err == nil {
				s = ns
				break
			}
			w.log.Warn("renewing the kernel subscriptions", "err", err)
		}
		w.log.Info("kernel notifications were lost: next hops read again")
		later()
	}
	for {
		select {
		case <-w.stop:
			return
		case u, ok := <-s.neigh:
			if !ok {
				renew()
				continue
			}
			woke := w.neighbour(u)
			// Take what else is queued before publishing once.
			for more := true; more; {
				select {
				case u, ok := <-s.neigh:
					if !ok {
						more = false
						break
					}
					woke = w.neighbour(u) || woke
				default:
					more = false
				}
			}
			w.tbl.Flush(woke)
		case _, ok := <-s.route:
			if !ok {
				renew()
				continue
			}
			later()
		case _, ok := <-s.addr:
			if !ok {
				renew()
				continue
			}
			later()
		case u, ok := <-s.link:
			if !ok {
				renew()
				continue
			}
			if w.served(int(u.Index)) || u.Header.Type == unix.RTM_NEWLINK {
				later()
			}
		case <-debounce.C:
			pending = false
			if err := w.sync(); err != nil {
				w.log.Warn("reading routes and addresses", "err", err)
			}
		case <-resync.C:
			if err := w.sync(); err != nil {
				w.log.Warn("reading routes and addresses", "err", err)
			}
		case <-w.tbl.Bell():
			w.tbl.Requests(func(ifindex int, a netip.Addr) {
				if err := Solicit(ifindex, a); err != nil {
					w.log.Debug("neighbour resolution", "ifindex", ifindex, "addr", a.String(), "err", err)
				}
			})
		}
	}
}

func (w *Watcher) served(ifindex int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.ports {
		if p.Ifindex == ifindex {
			return true
		}
	}
	return false
}

// neighbour applies one neighbour notification; it reports whether a
// neighbour became usable.
func (w *Watcher) neighbour(u netlink.NeighUpdate) bool {
	a, ok := netip.AddrFromSlice(u.IP)
	if !ok || (u.Family != unix.AF_INET && u.Family != unix.AF_INET6) {
		return false
	}
	if u.Type == unix.RTM_DELNEIGH {
		w.tbl.DeleteNeighbour(u.LinkIndex, a)
		return false
	}
	st, mac := state(u.Neigh)
	became, err := w.tbl.SetNeighbour(u.LinkIndex, a, mac, st)
	if errors.Is(err, nexthop.ErrFull) && time.Since(w.fullAt) > time.Minute {
		w.fullAt = time.Now()
		w.log.Warn("next-hop table full: neighbours beyond it are not used (frames to them are dropped as no_next_hop)", "neighbour", a.String())
	}
	return became
}

// state maps a kernel neighbour state to the table's.
func state(n netlink.Neigh) (nexthop.NeighState, [6]byte) {
	const usable = unix.NUD_REACHABLE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP
	var mac [6]byte
	switch {
	case n.State&unix.NUD_FAILED != 0:
		return nexthop.NeighFailed, mac
	case n.State&unix.NUD_STALE != 0 && len(n.HardwareAddr) == 6:
		copy(mac[:], n.HardwareAddr)
		return nexthop.NeighStale, mac
	case n.State&usable != 0 && len(n.HardwareAddr) == 6:
		copy(mac[:], n.HardwareAddr)
		return nexthop.NeighReachable, mac
	}
	return nexthop.NeighIncomplete, mac
}

// sync reads everything again: the served links (an interface recreated
// gets a new index), the main table's routes, the host's addresses and local
// routes, and the served links' neighbours; then publishes.
func (w *Watcher) sync() error {
	if err := w.readPorts(); err != nil {
		return err
	}
	var routes []nexthop.Route
	var local, bcast []netip.Addr
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		for _, r := range rs {
			if nr, ok := route(fam, r); ok {
				routes = append(routes, nr)
			}
		}
		// The kernel's "local" table: local routes (addresses, and ranges
		// delivered locally: ip route add local 10.9.0.0/16 dev lo), and
		// the links' broadcast addresses.
		ls, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("local routes: %w", err)
		}
		for _, r := range ls {
			switch r.Type {
			case unix.RTN_LOCAL:
				if nr, ok := route(fam, r); ok {
					routes = append(routes, nr)
				}
			case unix.RTN_BROADCAST:
				if nr, ok := route(fam, r); ok && nr.Dst.IsSingleIP() {
					bcast = append(bcast, nr.Dst.Addr())
				}
			}
		}
		addrs, err := netlink.AddrList(nil, fam)
		if err != nil {
			return fmt.Errorf("addresses: %w", err)
		}
		for _, ad := range addrs {
			if a, ok := netip.AddrFromSlice(ad.IP); ok {
				local = append(local, a.Unmap())
			}
		}
	}
	w.tbl.SetRoutes(routes)
	w.tbl.SetLocal(local)
	w.tbl.SetBroadcast(bcast)
	woke := false
	for _, p := range w.Ports() {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			ns, err := netlink.NeighList(p.Ifindex, fam)
			if err != nil {
				return fmt.Errorf("neighbours of %s: %w", p.Name, err)
			}
			for _, n := range ns {
				woke = w.neighbour(netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: n}) || woke
			}
		}
	}
	w.tbl.Flush(woke)
	return nil
}

// route converts a kernel route.
func route(fam int, r netlink.Route) (nexthop.Route, bool) {
	var out nexthop.Route
	if r.Dst == nil {
		if fam == unix.AF_INET {
			out.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		} else {
			out.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	} else {
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return out, false
		}
		ones, _ := r.Dst.Mask.Size()
		out.Dst = netip.PrefixFrom(a.Unmap(), ones).Masked()
	}
	switch r.Type {
	case unix.RTN_UNICAST:
		out.Type = nexthop.Unicast
	case unix.RTN_LOCAL:
		out.Type = nexthop.LocalRoute
	default:
		out.Type = nexthop.Unreachable
	}
	gw := func(ip net.IP) netip.Addr {
		a, _ := netip.AddrFromSlice(ip)
		return a.Unmap()
	}
	if len(r.MultiPath) > 0 {
		for _, p := range r.MultiPath {
			out.Paths = append(out.Paths, nexthop.Path{Ifindex: p.LinkIndex, Gateway: gw(p.Gw)})
		}
	} else {
		out.Paths = []nexthop.Path{{Ifindex: r.LinkIndex, Gateway: gw(r.Gw)}}
	}
	return out, true
}

// Solicit asks the kernel to resolve addr on interface ifindex now: an
// RTM_NEWNEIGH with NTF_USE creates the neighbour entry (if need be) and
// makes the kernel send its ARP request or neighbour solicitation, as a
// packet waiting for it would. An entry that is already usable is only
// marked used. (vishvananda/netlink's NeighSet cannot send it: it adds an
// empty link-layer address, which the kernel refuses.)
func Solicit(ifindex int, addr netip.Addr) error {
	fam := unix.AF_INET6
	if addr.Is4() {
		fam = unix.AF_INET
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddData(&netlink.Ndmsg{Family: uint8(fam), Index: uint32(ifindex), State: netlink.NUD_NONE, Flags: netlink.NTF_USE})
	req.AddData(nl.NewRtAttr(netlink.NDA_DST, addr.AsSlice()))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("resolving %v on interface %d: %w", addr, ifindex, err)
	}
	return nil
}

// Prepare asks the kernel to resolve, ahead of traffic, the next hops of
// addrs (real servers) that leave by a served interface and are not usable
// yet.
func (w *Watcher) Prepare(addrs []netip.Addr) {
	for _, a := range addrs {
		if _, st, _ := w.tbl.Resolve(a); st == nexthop.Resolved {
			continue
		}
		if ifindex, hop, ok := w.tbl.NextHop(a); ok {
			if err := Solicit(ifindex, hop); err != nil {
				w.log.Debug("neighbour resolution", "addr", hop.String(), "err", err)
			}
		}
	}
}

// Source is what the kernel would send from towards a destination: the
// outer header of a tunnel to it (ip_vs_tunnel_xmit takes the route's).
// Which interface and MACs the frame takes is the next-hop table's
// business, as for every frame; Source gives only what the table does not
// keep.
type Source struct {
	// Addr is the route's preferred source, or the address the kernel
	// selects for it (ip route get's src). Invalid when there is none.
	Addr netip.Addr
	// MTU is the path MTU: the route's mtu attribute, else its
	// interface's.
	MTU int
	// Ifindex is the interface the route leaves by.
	Ifindex int
}

// SourceFor asks the kernel for its route towards dst (ip route get).
func SourceFor(dst netip.Addr) (Source, error) {
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return Source{}, fmt.Errorf("route to %v: %w", dst, err)
	}
	if len(routes) == 0 {
		return Source{}, fmt.Errorf("route to %v: %w", dst, unix.ENETUNREACH)
	}
	rt := routes[0]
	out := Source{MTU: rt.MTU, Ifindex: rt.LinkIndex}
	if src, ok := netip.AddrFromSlice(rt.Src); ok && src.IsValid() && !src.IsUnspecified() {
		out.Addr = src.Unmap()
	}
	if out.MTU == 0 {
		if l, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
			out.MTU = l.Attrs().MTU
		}
	}
	return out, nil
}
