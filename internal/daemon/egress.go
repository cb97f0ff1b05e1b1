package daemon

// Where frames go beyond the workers' own decisions: the real servers'
// reachability (reported, logged with backoff, resolved ahead of traffic),
// the director's own addresses (Local forwarding), and the frames handed to
// the host's own stack.

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/localnat"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
)

const (
	// reachInterval is how often the real servers' next hops are checked
	// for the log and for locality changes (the workers do not wait for
	// it: they read the next-hop table directly).
	reachInterval = time.Second
	// reachLogFirst and reachLogMax are the backoff of the log about a real
	// server that stays unreachable: once when it becomes so, then again
	// after a minute, doubling up to an hour, while it stays so.
	reachLogFirst = time.Minute
	reachLogMax   = time.Hour
	// incompleteGrace is how long a real server may stay unresolved before
	// it is logged: ARP and neighbour discovery take milliseconds, and the
	// kernel gives up (FAILED, which is logged at once) after about 3 s.
	incompleteGrace = 5 * time.Second
)

// addrKind classifies an address for the model's real-server checks, from
// the next-hop table (the kernel's addresses and local routes).
func (d *Daemon) addrKind(a netip.Addr) ipvs.AddrKind {
	switch d.hops.Classify(a) {
	case nexthop.KindLocal:
		return ipvs.AddrLocal
	case nexthop.KindBroadcast:
		return ipvs.AddrBroadcast
	case nexthop.KindMulticast:
		return ipvs.AddrMulticast
	case nexthop.KindUnusable:
		return ipvs.AddrUnusable
	}
	return ipvs.AddrUnicast
}

// probeNextHop is where a direct-routing health probe to server goes
// (health.Options.NextHop).
func (d *Daemon) probeNextHop(server netip.Addr) (int, [6]byte, bool) {
	e, st, _ := d.hops.Resolve(server)
	if st != nexthop.Resolved {
		return 0, [6]byte{}, false
	}
	ports := d.hops.Ports()
	if int(e.Port) >= len(ports) {
		return 0, [6]byte{}, false
	}
	return ports[e.Port].Ifindex, e.Dst, true
}

// NextHops reports, for every real server, where its frames go
// (control.NextHopReporter).
func (d *Daemon) NextHops() map[netip.Addr]control.NextHop {
	out := map[netip.Addr]control.NextHop{}
	s := d.snap.Load()
	if s == nil {
		return out
	}
	ports := d.hops.Ports()
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			a := dst.Addr.Addr()
			if _, ok := out[a]; !ok {
				out[a] = d.nextHop(a, ports)
			}
		}
	}
	return out
}

var _ control.NextHopReporter = (*Daemon)(nil)

// nextHop is one real server's report (ports: the served interfaces).
func (d *Daemon) nextHop(a netip.Addr, ports []nexthop.PortInfo) control.NextHop {
	_, st, ifindex := d.hops.Resolve(a)
	nh := control.NextHop{Status: st.String()}
	if ifindex != 0 {
		nh.Iface = ifaceName(ifindex, ports)
	}
	return nh
}

// ifaceName names an interface index (served or not).
func ifaceName(ifindex int, ports []nexthop.PortInfo) string {
	for _, p := range ports {
		if p.Ifindex == ifindex {
			return p.Name
		}
	}
	if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
		return ifi.Name
	}
	return fmt.Sprintf("ifindex %d", ifindex)
}

// reachability is the reachability loop's memory of each real server.
type reachability struct {
	mu      sync.Mutex
	servers map[netip.Addr]*reachState
}

type reachState struct {
	status  nexthop.Status
	since   time.Time
	logged  time.Time // last WARN; zero: not logged in this episode
	backoff time.Duration
}

// reachLoop resolves new real servers' next hops ahead of traffic (after
// every commit), logs real servers that cannot be reached (once, then with
// backoff), and follows changes of the director's own addresses (a real
// server becoming Local, or no longer).
func (d *Daemon) reachLoop() {
	defer d.wg.Done()
	t := time.NewTicker(reachInterval)
	defer t.Stop()
	d.prepareNextHops()
	for {
		select {
		case <-d.stop:
			return
		case <-d.prepare:
			d.prepareNextHops()
		case <-t.C:
		}
		d.checkReach(time.Now())
		d.checkLocality()
		d.checkTunnels()
	}
}

// prepareNextHops asks the kernel to resolve the next hops of real servers
// that are not resolved yet.
func (d *Daemon) prepareNextHops() {
	s := d.snap.Load()
	if s == nil {
		return
	}
	var addrs []netip.Addr
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			addrs = append(addrs, dst.Addr.Addr())
		}
	}
	d.watcher.Prepare(addrs)
}

// checkReach logs the real servers whose frames cannot leave.
func (d *Daemon) checkReach(now time.Time) {
	s := d.snap.Load()
	if s == nil {
		return
	}
	d.reach.mu.Lock()
	defer d.reach.mu.Unlock()
	if d.reach.servers == nil {
		d.reach.servers = map[netip.Addr]*reachState{}
	}
	seen := map[netip.Addr]bool{}
	ports := d.hops.Ports()
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			a := dst.Addr.Addr()
			if seen[a] {
				continue
			}
			seen[a] = true
			_, st, ifindex := d.hops.Resolve(a)
			nh := control.NextHop{Status: st.String()}
			if ifindex != 0 && st != nexthop.Resolved {
				nh.Iface = ifaceName(ifindex, ports)
			}
			r := d.reach.servers[a]
			if r == nil {
				r = &reachState{status: st, since: now}
				d.reach.servers[a] = r
			}
			if st != r.status {
				if bad(r.status) && !r.logged.IsZero() && !bad(st) {
					d.log.Info("real server reachable again", "server", a.String(), "status", st.String(), "iface", nh.Iface)
				}
				*r = reachState{status: st, since: now}
			}
			if st == nexthop.Local && !d.hops.IsLocal(svc.Key.Addr) {
				d.logReach(r, now, "Local real server for a virtual address this director does not own: its packets are dropped (local_unowned)",
					"service", svc.Key.String(), "server", a.String())
				continue
			}
			switch {
			case st == nexthop.Unserved:
				d.logReach(r, now, "real server is not reachable through a served interface: its packets are dropped (no_egress); serve that interface too (xvs run --iface)",
					"server", a.String(), "route_via", nh.Iface)
			case st == nexthop.NoRoute:
				d.logReach(r, now, "real server has no route: its packets are dropped (no_egress)", "server", a.String())
			case st == nexthop.Failed:
				d.logReach(r, now, "real server does not answer ARP/neighbour discovery: its packets are dropped (no_next_hop)", "server", a.String(), "iface", nh.Iface)
			case st == nexthop.Incomplete && now.Sub(r.since) > incompleteGrace:
				d.logReach(r, now, "real server not resolved yet: its packets wait, then are dropped", "server", a.String(), "iface", nh.Iface)
			}
		}
	}
	for a := range d.reach.servers {
		if !seen[a] {
			delete(d.reach.servers, a)
		}
	}
}

func bad(st nexthop.Status) bool {
	return st == nexthop.Unserved || st == nexthop.NoRoute || st == nexthop.Failed || st == nexthop.Incomplete
}

// logReach logs msg for r once, then with backoff.
func (d *Daemon) logReach(r *reachState, now time.Time, msg string, args ...any) {
	if !r.logged.IsZero() && now.Sub(r.logged) < r.backoff {
		return
	}
	if r.logged.IsZero() {
		r.backoff = reachLogFirst
	} else {
		r.backoff = min(2*r.backoff, reachLogMax)
		args = append(args, "since", now.Sub(r.since).Round(time.Second).String())
	}
	r.logged = now
	d.log.Warn(msg, args...)
}

// checkLocality recompiles the configuration when a real server's address
// became the director's, or stopped being (keepalived moved a VIP), so that
// -L shows Local where the data plane delivers locally.
func (d *Daemon) checkLocality() {
	s := d.snap.Load()
	if s == nil {
		return
	}
	changed := false
	for _, svc := range s.Services() {
		for _, dst := range svc.Dests {
			if dst.Local != (d.hops.Classify(dst.Addr.Addr()) == nexthop.KindLocal) {
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.cfg.Clone()
	next.Reclassify()
	d.localityLog.report(d.log, "real servers' locality changed but the configuration was not republished", d.commit(next))
}

// retryLog logs a periodic retry's refusal once per reason, and once when
// the retry is finally accepted: checkLocality and checkTunnels retry every
// reachInterval, and a reason that persists (a port-changing real server
// became Local on a host without nftables) would otherwise be logged every
// time. Used under Daemon.mu.
type retryLog struct {
	last string // the last refusal's reason; "" after an acceptance
}

// report logs err (what failed: what) if its reason is new, or the
// acceptance after a refusal when err is nil.
func (r *retryLog) report(log *slog.Logger, what string, err error) {
	switch {
	case err != nil && err.Error() != r.last:
		r.last = err.Error()
		log.Warn(what+" (retried every "+reachInterval.String()+", logged again when the reason changes)", "err", err)
	case err == nil && r.last != "":
		r.last = ""
		log.Info(what + ": now applied")
	}
}

// localSender hands frames to the host's own stack (Local real servers,
// IPVS's LOCALNODE): each IP packet is sent, header included, on a raw
// socket (IPPROTO_RAW, one per family), so that the kernel routes it to the
// local address it is for and delivers it to the socket listening there,
// as if it had arrived. Its source is the client's: the local server
// answers the client directly, through the kernel. A packet for a Local
// real server on another port than the virtual one carries the socket mark
// localnat.Mark(port) (an SO_MARK control message), for xvs's kernel NAT
// rule that translates the port (and, by its connection tracking, the
// replies back). One system call per packet (Local traffic is a director's
// own service, not the farm's).
type localSender struct {
	fd4, fd6 int
	opened   bool
	p        packet.Parsed
	sa4      unix.RawSockaddrInet4
	sa6      unix.RawSockaddrInet6
	iov      unix.Iovec
	msg      unix.Msghdr
	cmsg     [cmsgMarkRoom]byte
}

// cmsgMarkRoom bounds the room of one SO_MARK control message (a uint32
// after a cmsghdr: unix.CmsgSpace(4), 24 bytes on 64-bit Linux).
const cmsgMarkRoom = 32

// Send sends the IP packets of frames (Ethernet frames of link type link)
// and returns how many left; ports are their Out.LocalPort (nil: none).
func (s *localSender) Send(frames [][]byte, ports []uint16, link packet.LinkType) int {
	if !s.opened {
		s.open()
	}
	n := 0
	for i, f := range frames {
		r := s.p.Decode(f, link)
		if r != packet.ReasonOK && r != packet.ReasonNonFirstFragment {
			continue
		}
		ip := f[s.p.L3Off:s.p.End]
		fd := -1
		s.msg.Name, s.msg.Namelen = nil, 0
		if s.p.Version == 4 && s.fd4 >= 0 {
			fd = s.fd4
			s.sa4.Addr = s.p.Dst.As4()
			s.msg.Name, s.msg.Namelen = (*byte)(unsafe.Pointer(&s.sa4)), uint32(unsafe.Sizeof(s.sa4))
		} else if s.p.Version == 6 && s.fd6 >= 0 {
			fd = s.fd6
			s.sa6.Addr = s.p.Dst.As16()
			s.msg.Name, s.msg.Namelen = (*byte)(unsafe.Pointer(&s.sa6)), uint32(unsafe.Sizeof(s.sa6))
		}
		if fd < 0 {
			continue
		}
		s.iov.Base = &ip[0]
		s.iov.SetLen(len(ip))
		s.msg.Iov, s.msg.Iovlen = &s.iov, 1
		s.msg.Control = nil
		s.msg.SetControllen(0)
		if i < len(ports) && ports[i] != 0 {
			h := (*unix.Cmsghdr)(unsafe.Pointer(&s.cmsg[0]))
			h.Level, h.Type = unix.SOL_SOCKET, unix.SO_MARK
			h.SetLen(unix.CmsgLen(4))
			*(*uint32)(unsafe.Pointer(&s.cmsg[unix.CmsgLen(0)])) = localnat.Mark(ports[i])
			s.msg.Control = &s.cmsg[0]
			s.msg.SetControllen(unix.CmsgSpace(4))
		}
		_, _, err := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msg)), unix.MSG_DONTWAIT)
		if err == 0 {
			n++
		}
	}
	return n
}

func (s *localSender) open() {
	s.opened = true
	s.fd4, s.fd6 = -1, -1
	s.sa4.Family = unix.AF_INET
	s.sa6.Family = unix.AF_INET6
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err == nil {
		s.fd4 = fd // IPPROTO_RAW implies IP_HDRINCL
	}
	if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err == nil {
		s.fd6 = fd // and IPV6_HDRINCL (Linux 4.5)
	}
}

// Close closes the sockets.
func (s *localSender) Close() {
	if s == nil || !s.opened {
		return
	}
	for _, fd := range []int{s.fd4, s.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	s.opened = false
}
