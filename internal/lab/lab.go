// Package lab builds throw-away test networks out of Linux network
// namespaces: client namespaces, a router, a balancer and real servers,
// joined by veth pairs into two bridges that live in a dedicated "switch"
// namespace. End-to-end tests, `make demo` and the benchmark harness all use
// it; it is the one place in the project that creates namespaces.
//
// # Topology and address plan
//
//	client0 ─┐                                ┌─ balancer  10.77.1.2   fd77:1::2
//	client1 ─┼─ brc ─ router ─ brs ───────────┼─ real0     10.77.1.11  fd77:1::11
//	   …     ┘  (client LAN)   (server LAN)   ├─ real1     10.77.1.12  fd77:1::12
//	10.77.0.10+i  fd77::10+i                  └─ …
//	router: 10.77.0.1 fd77::1 (client side), 10.77.1.1 fd77:1::1 (server side)
//	VIPs:   10.77.2.0/24 and fd77:2::/64, routed by the router to the balancer
//	        (VIP4 10.77.2.1, VIP6 fd77:2::1)
//
// # Two legs
//
// With Spec.Legs 2 the balancer also has a leg on the client LAN: eth1,
// 10.77.0.2 and fd77::2 ([Lab.ClientLeg]). The virtual addresses are routed
// to it there (the clients and the router route VIPNet4/VIPNet6 via the
// client leg), its default route is the router's client side, and the
// server LAN stays on eth0: clients and real servers are on different legs,
// as on a director with a public and a private side. Frames to real servers
// must leave by eth0, NAT replies by eth1 ([Lab.Ifaces] lists both).
//
//	client0 ─┬─ brc ─┬─ router ─ brs ─┬─ balancer eth0 10.77.1.2
//	client1 ─┘       └─ balancer eth1 │  real0…
//	                    10.77.0.2      └─
//
// With Spec.Balancers 2 a second balancer, balancer2 (10.77.1.3,
// fd77:1::3), sits on the server LAN beside the first, set up the same way,
// for high-availability tests: the router still routes the VIPs to the
// first until [Lab.RouteVIPsVia] points them at another next hop (a VRRP
// address that moves between the two).
//
// This is the classic IPVS layout: the virtual addresses are routed to the
// balancer, which does not own them (so in raw-socket mode its kernel drops
// those packets instead of answering them: forwarding is off in the
// balancer's namespace); the balancer's default gateway is the router, which
// is also the MAC NAT replies are sent to. For NAT the real servers' default
// route is the balancer ([Lab.UseNAT]); for direct routing it is the router
// and the VIPs sit on the real servers' loopback with arp_ignore=1 and
// arp_announce=2 ([Lab.UseDirectRouting]).
//
// Every interface in the lab is named inside its own namespace ("eth0" for a
// host, port names in the switch namespace), so nothing is created, changed
// or routed in the caller's namespace, and traffic never leaves the lab.
//
// # Names and cleanup
//
// Namespace names are Prefix+"-"+role, and a lab's prefix carries the
// creating process's id ("xvslab1234x1"). [Lab.Close] kills the processes
// still running in the lab's namespaces and deletes the namespaces (the
// veth pairs and bridges go with them); [New] first sweeps the namespaces of
// labs whose creating process is gone, so a crashed run leaves nothing
// behind for long; [Sweep] removes everything under a prefix.
//
// Building a lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip(8)
// tool from iproute2; ethtool(8) is used to switch offloads off when present.
//
// # Traffic
//
// [Flood] sends UDP datagrams in sendmmsg batches, paced or as fast as the
// sockets take them: the benchmark harness's generator and the robustness
// floods.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Address plan (see the package documentation).
var (
	ClientNet4 = netip.MustParsePrefix("10.77.0.0/24")
	ClientNet6 = netip.MustParsePrefix("fd77::/64")
	ServerNet4 = netip.MustParsePrefix("10.77.1.0/24")
	ServerNet6 = netip.MustParsePrefix("fd77:1::/64")
	VIPNet4    = netip.MustParsePrefix("10.77.2.0/24")
	VIPNet6    = netip.MustParsePrefix("fd77:2::/64")
)

// Limits and defaults.
const (
	// DefaultRealServers is how many real servers a Spec without a count
	// gets: enough to see a spread, few enough to build in well under a
	// second.
	DefaultRealServers = 3
	// MaxHosts bounds clients and real servers (each): the address plan
	// numbers them .10+i and .11+i in a /24.
	MaxHosts = 200
	// MaxDirectors bounds Spec.Directors: they are numbered .2+i, below
	// the real servers' .11.
	MaxDirectors = 8
	// BasePrefix starts every lab's namespace names; New sweeps stale labs
	// under it.
	BasePrefix = "xvslab"
	// CommandTimeout bounds every setup and teardown command: a wedged ip(8)
	// must fail the test, not hang it.
	CommandTimeout = 20 * time.Second
	// settleTries bounds the pings New sends to check a host (one second
	// each at most).
	settleTries = 3
	// HostIface is the name of every host's lab interface in its namespace.
	HostIface = "eth0"
)

// Spec describes a lab. The zero Spec is one client, a balancer and
// DefaultRealServers real servers.
type Spec struct {
	// Prefix replaces BasePrefix in the namespace names (it must be short
	// and made of letters and digits).
	Prefix string
	// Clients and RealServers count the client and real-server namespaces
	// (0 = 1 client, DefaultRealServers real servers).
	Clients, RealServers int
	// Directors, when more than 1, builds the scale-out topology: that many
	// balancers ("director0"…, 10.77.1.2+i, fd77:1::2+i) on the server LAN,
	// and a router with no static VIP routes (its routing daemon learns
	// them, e.g. BIRD with StartBIRD) and L4 ECMP hashing
	// (fib_multipath_hash_policy=1 for IPv4 and IPv6). Balancer is
	// director0. 0 or 1: the classic single balancer.
	Directors int
	// Balancers is 1 (0 means 1) or 2: a second balancer, Lab.Balancers[1].
	Balancers int
	// KeepOffloads leaves the veths' checksum and segmentation offloads on
	// (the kernel's defaults: senders leave UDP/TCP checksums to the
	// offload, which xvs completes). By default they are switched off on
	// every host interface, so that every frame on the wire is complete and
	// MTU-sized.
	KeepOffloads bool
	// Legs is the balancer's number of legs: 1 (0 means 1) on the server
	// LAN only, 2 with a second one on the client LAN (see the package
	// documentation).
	Legs int
}

// Host is one namespace with one lab interface.
type Host struct {
	Role  string // "client0", "balancer", "real1", "router"
	NS    string // namespace name
	Iface string // the lab interface in NS (HostIface)
	Addr4 netip.Addr
	Addr6 netip.Addr
	// Port is the switch-namespace end of the host's veth.
	Port string
}

// Lab is a built test network. Its methods are safe for concurrent use.
type Lab struct {
	Prefix   string
	Switch   string // namespace holding the bridges
	Router   Host   // Iface/Addr*: its server-LAN side; its client side is "eth1", 10.77.0.1, fd77::1
	Balancer Host
	// Directors are the balancers of a scale-out lab (Spec.Directors > 1;
	// Balancers holds the same hosts); nil otherwise.
	Directors []Host
	// ClientLeg is the balancer's leg on the client LAN when it has two
	// (Spec.Legs 2): NS the balancer's, Iface "eth1", 10.77.0.2, fd77::2.
	// The zero Host otherwise.
	ClientLeg Host
	// Ifaces are the balancer's interfaces xvs serves: HostIface, and the
	// client leg's with two legs.
	Ifaces []string
	// Balancers are the balancers: Balancer, then balancer2 when the Spec
	// asks for two.
	Balancers []Host
	Clients   []Host
	Reals     []Host
	VIP4      netip.Addr
	VIP6      netip.Addr

	mu     sync.Mutex
	nss    []string // created, in creation order
	closed bool
	dr     bool // real servers set up for direct routing
}

var labSeq atomic.Uint32

// Errors.
var (
	// ErrNotRoot reports that building a lab needs root.
	ErrNotRoot = errors.New("lab: network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	// ErrNoTool reports a missing command-line tool.
	ErrNoTool = errors.New("lab: required tool not found")
)

// Available reports why labs cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: ip (Debian package iproute2)", ErrNoTool)
	}
	return nil
}

// New builds a lab. On error nothing of it is left behind.
func New(spec Spec) (_ *Lab, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if spec.Clients == 0 {
		spec.Clients = 1
	}
	if spec.RealServers == 0 {
		spec.RealServers = DefaultRealServers
	}
	if spec.Clients < 0 || spec.Clients > MaxHosts || spec.RealServers < 0 || spec.RealServers > MaxHosts {
		return nil, fmt.Errorf("lab: %d clients, %d real servers: each must be 1..%d", spec.Clients, spec.RealServers, MaxHosts)
	}
	if spec.Directors < 0 || spec.Directors > MaxDirectors {
		return nil, fmt.Errorf("lab: %d directors: at most %d", spec.Directors, MaxDirectors)
	}
	if spec.Directors > 1 && spec.Balancers > 1 {
		return nil, fmt.Errorf("lab: %d directors and %d balancers: one or the other", spec.Directors, spec.Balancers)
	}
	if spec.Directors > 1 && spec.Legs > 1 {
		return nil, fmt.Errorf("lab: scale-out directors have one leg")
	}
	if spec.Legs == 0 {
		spec.Legs = 1
	}
	if spec.Legs != 1 && spec.Legs != 2 {
		return nil, fmt.Errorf("lab: %d legs: the balancer has 1 or 2", spec.Legs)
	}
	if spec.Balancers == 0 {
		spec.Balancers = 1
	}
	if spec.Balancers < 1 || spec.Balancers > 2 {
		return nil, fmt.Errorf("lab: %d balancers: 1 or 2", spec.Balancers)
	}
	base := spec.Prefix
	if base == "" {
		base = BasePrefix
	}
	sweepStale(base)
	l := &Lab{
		Prefix: fmt.Sprintf("%s%dx%d", base, os.Getpid(), labSeq.Add(1)),
		VIP4:   netip.MustParseAddr("10.77.2.1"),
		VIP6:   netip.MustParseAddr("fd77:2::1"),
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	l.Switch = l.Prefix + "-sw"
	if err := l.addNS(l.Switch); err != nil {
		return nil, err
	}
	for _, br := range []string{"brc", "brs"} {
		if err := l.ip(l.Switch, "link", "add", br, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"); err != nil {
			return nil, err
		}
		if err := l.ip(l.Switch, "link", "set", br, "up"); err != nil {
			return nil, err
		}
	}
	if err := l.ip(l.Switch, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if err := l.plainSwitch(); err != nil {
		return nil, err
	}

	l.Router = Host{Role: "router", Iface: "eth0", Port: "rts", Addr4: netip.MustParseAddr("10.77.1.1"), Addr6: netip.MustParseAddr("fd77:1::1")}
	l.Balancer = Host{Role: "balancer", Iface: HostIface, Port: "lb", Addr4: netip.MustParseAddr("10.77.1.2"), Addr6: netip.MustParseAddr("fd77:1::2")}
	if spec.Directors > 1 {
		for i := range spec.Directors {
			l.Directors = append(l.Directors, Host{Role: fmt.Sprintf("director%d", i), Iface: HostIface, Port: fmt.Sprintf("lb%d", i),
				Addr4: netip.MustParseAddr(fmt.Sprintf("10.77.1.%d", 2+i)), Addr6: netip.MustParseAddr(fmt.Sprintf("fd77:1::%d", 2+i))})
		}
		l.Balancer = l.Directors[0]
	}
	l.Ifaces = []string{HostIface}
	for i := range spec.Clients {
		l.Clients = append(l.Clients, Host{Role: fmt.Sprintf("client%d", i), Iface: HostIface, Port: fmt.Sprintf("c%d", i),
			Addr4: netip.MustParseAddr(fmt.Sprintf("10.77.0.%d", 10+i)), Addr6: netip.MustParseAddr(fmt.Sprintf("fd77::%d", 10+i))})
	}
	for i := range spec.RealServers {
		l.Reals = append(l.Reals, Host{Role: fmt.Sprintf("real%d", i), Iface: HostIface, Port: fmt.Sprintf("r%d", i),
			Addr4: netip.MustParseAddr(fmt.Sprintf("10.77.1.%d", 11+i)), Addr6: netip.MustParseAddr(fmt.Sprintf("fd77:1::%d", 11+i))})
	}

	// The router: eth0 on the server LAN, eth1 on the client LAN.
	if err := l.host(&l.Router, "brs", 24, 64, spec.KeepOffloads); err != nil {
		return nil, err
	}
	rc := Host{NS: l.Router.NS, Iface: "eth1", Port: "rtc", Addr4: netip.MustParseAddr("10.77.0.1"), Addr6: netip.MustParseAddr("fd77::1")}
	if err := l.plug(rc, "brc", 24, 64, spec.KeepOffloads); err != nil {
		return nil, err
	}
	if err := l.sysctls(l.Router.NS, map[string]string{"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"}); err != nil {
		return nil, err
	}
	// The VIPs' next hop: the balancer's server-LAN address, or its client
	// leg (a scale-out lab's routes come from BGP instead).
	vipVia4, vipVia6 := l.Balancer.Addr4, l.Balancer.Addr6
	if spec.Legs == 2 {
		l.ClientLeg = Host{Role: "balancer", Iface: "eth1", Port: "lbc", Addr4: netip.MustParseAddr("10.77.0.2"), Addr6: netip.MustParseAddr("fd77::2")}
		vipVia4, vipVia6 = l.ClientLeg.Addr4, l.ClientLeg.Addr6
	}
	if spec.Directors > 1 {
		// Scale-out: the VIP routes come from BGP; ECMP hashes on L4.
		if err := l.sysctls(l.Router.NS, map[string]string{"net/ipv4/fib_multipath_hash_policy": "1",
			"net/ipv6/fib_multipath_hash_policy": "1"}); err != nil {
			return nil, err
		}
	} else {
		for _, r := range [][]string{
			{"route", "add", VIPNet4.String(), "via", vipVia4.String()},
			{"-6", "route", "add", VIPNet6.String(), "via", vipVia6.String()},
		} {
			if err := l.ip(l.Router.NS, r...); err != nil {
				return nil, err
			}
		}
	}

	// The balancers: forwarding off, so that their kernel drops (rather
	// than routes) what the data plane handles; default route to the router.
	l.Balancers = []Host{l.Balancer}
	if spec.Balancers == 2 {
		l.Balancers = append(l.Balancers, Host{Role: "balancer2", Iface: HostIface, Port: "lb2",
			Addr4: netip.MustParseAddr("10.77.1.3"), Addr6: netip.MustParseAddr("fd77:1::3")})
	}
	if len(l.Directors) > 0 {
		l.Balancers = l.Directors // the same hosts
	}
	for i := range l.Balancers {
		b := &l.Balancers[i]
		if err := l.host(b, "brs", 24, 64, spec.KeepOffloads); err != nil {
			return nil, err
		}
		if err := l.sysctls(b.NS, map[string]string{"net/ipv4/ip_forward": "0", "net/ipv6/conf/all/forwarding": "0"}); err != nil {
			return nil, err
		}
		gw4, gw6 := l.Router.Addr4, l.Router.Addr6
		if i == 0 && spec.Legs == 2 {
			l.ClientLeg.NS = b.NS
			if err := l.plug(l.ClientLeg, "brc", 24, 64, spec.KeepOffloads); err != nil {
				return nil, err
			}
			l.Ifaces = append(l.Ifaces, l.ClientLeg.Iface)
			// A client's packets arrive on one leg and its host's answers
			// (ping, the host check) leave by the other: no reverse-path
			// filter.
			if err := l.sysctls(b.NS, map[string]string{"net/ipv4/conf/all/rp_filter": "0",
				"net/ipv4/conf/" + HostIface + "/rp_filter": "0", "net/ipv4/conf/eth1/rp_filter": "0"}); err != nil {
				return nil, err
			}
			gw4, gw6 = rc.Addr4, rc.Addr6
		}
		if err := l.defaultRoute(b.NS, gw4, gw6); err != nil {
			return nil, err
		}
	}
	l.Balancer = l.Balancers[0]

	for i := range l.Clients {
		c := &l.Clients[i]
		if err := l.host(c, "brc", 24, 64, spec.KeepOffloads); err != nil {
			return nil, err
		}
		if err := l.defaultRoute(c.NS, rc.Addr4, rc.Addr6); err != nil {
			return nil, err
		}
		if spec.Legs == 2 {
			// Straight to the client leg, not through the router (which
			// would forward back out where the packet came in).
			for _, r := range [][]string{
				{"route", "add", VIPNet4.String(), "via", vipVia4.String()},
				{"-6", "route", "add", VIPNet6.String(), "via", vipVia6.String()},
			} {
				if err := l.ip(c.NS, r...); err != nil {
					return nil, err
				}
			}
		}
	}
	for i := range l.Reals {
		r := &l.Reals[i]
		if err := l.host(r, "brs", 24, 64, spec.KeepOffloads); err != nil {
			return nil, err
		}
	}
	if err := l.UseNAT(); err != nil {
		return nil, err
	}
	if err := l.settle(); err != nil {
		return nil, err
	}
	return l, nil
}

// settle pings every host once in both families from a neighbour on its
// LAN, with bounded retries: it checks the build and fills the neighbour
// caches, so that a test's first packet is not the one that waits for
// neighbour discovery.
func (l *Lab) settle() error {
	type probe struct{ from, to string }
	var probes []probe
	hosts := append(append([]Host(nil), l.Balancers...), l.Clients...)
	if l.ClientLeg.NS != "" {
		hosts = append(hosts, l.ClientLeg)
	}
	for _, h := range hosts {
		probes = append(probes, probe{l.Router.NS, h.Addr4.String()}, probe{l.Router.NS, h.Addr6.String()})
	}
	for _, h := range append([]Host{l.Router}, l.Reals...) {
		probes = append(probes, probe{l.Balancer.NS, h.Addr4.String()}, probe{l.Balancer.NS, h.Addr6.String()})
	}
	for _, p := range probes {
		var err error
		for range settleTries {
			if _, err = l.Output(p.from, "ping", "-c1", "-W1", p.to); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("lab: %s does not reach %s: %w", p.from, p.to, err)
		}
	}
	return nil
}

// Namespaces lists the lab's namespaces in creation order.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.nss...)
}

func (l *Lab) addNS(name string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("lab: closed")
	}
	l.nss = append(l.nss, name) // before creation: Close deletes a half-made one too
	l.mu.Unlock()
	if _, err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		return err
	}
	// No duplicate address detection: the lab's addresses are unique by
	// construction, and while an IPv6 link-local address is tentative
	// (1–2 s) the kernel delays neighbour solicitations for forwarded
	// packets by a retransmission interval, so the first IPv6 datagrams
	// of a fresh lab would arrive a second late (SIPp then resends its
	// INVITE and its UAS drops the call). Set before any interface exists,
	// so every interface inherits it.
	return l.sysctls(name, map[string]string{"net/ipv6/conf/all/accept_dad": "0", "net/ipv6/conf/default/accept_dad": "0"})
}

// host creates h's namespace and plugs it into bridge br.
func (l *Lab) host(h *Host, br string, bits4, bits6 int, keepOffloads bool) error {
	h.NS = l.Prefix + "-" + h.Role
	if err := l.addNS(h.NS); err != nil {
		return err
	}
	if err := l.ip(h.NS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return l.plug(*h, br, bits4, bits6, keepOffloads)
}

// plug creates the veth pair h.Port (switch side, in br) ↔ h.Iface (in h.NS)
// and addresses and raises it.
func (l *Lab) plug(h Host, br string, bits4, bits6 int, keepOffloads bool) error {
	steps := []struct {
		ns   string
		args []string
	}{
		{l.Switch, []string{"link", "add", h.Port, "type", "veth", "peer", "name", h.Iface, "netns", h.NS}},
		{l.Switch, []string{"link", "set", h.Port, "master", br}},
		{l.Switch, []string{"link", "set", h.Port, "up"}},
		{h.NS, []string{"addr", "add", netip.PrefixFrom(h.Addr4, bits4).String(), "dev", h.Iface}},
		{h.NS, []string{"-6", "addr", "add", netip.PrefixFrom(h.Addr6, bits6).String(), "dev", h.Iface, "nodad"}},
		{h.NS, []string{"link", "set", h.Iface, "up"}},
	}
	for _, s := range steps {
		if err := l.ip(s.ns, s.args...); err != nil {
			return err
		}
	}
	if !keepOffloads {
		if err := l.DisableOffloads(h.NS, h.Iface); err != nil {
			return err
		}
		if err := l.DisableOffloads(l.Switch, h.Port); err != nil {
			return err
		}
	}
	return nil
}

// DisableOffloads switches off checksum, segmentation and receive-offload
// features of iface in ns, so that every frame on the wire is complete and
// MTU-sized (what raw sockets and XDP need). Without ethtool(8) it does
// nothing and says so in its error only if the tool is missing in CI.
func (l *Lab) DisableOffloads(ns, iface string) error {
	if _, err := exec.LookPath("ethtool"); err != nil {
		if os.Getenv("CI") == "true" {
			return fmt.Errorf("%w: ethtool (Debian package ethtool)", ErrNoTool)
		}
		return nil
	}
	// One feature at a time: a veth lacking one (lro) must not stop the rest.
	for _, f := range []string{"tx", "rx", "tso", "gso", "gro", "sg"} {
		_, _ = l.Output(ns, "ethtool", "-K", iface, f, "off")
	}
	return nil
}

func (l *Lab) defaultRoute(ns string, gw4, gw6 netip.Addr) error {
	if err := l.ip(ns, "route", "replace", "default", "via", gw4.String()); err != nil {
		return err
	}
	return l.ip(ns, "-6", "route", "replace", "default", "via", gw6.String())
}

// RouteVIPsVia makes the router send the VIPs to another next hop on the
// server LAN: a VRRP address that keepalived moves between two balancers.
// An invalid address leaves that family's route as it is.
func (l *Lab) RouteVIPsVia(via4, via6 netip.Addr) error {
	if via4.IsValid() {
		if err := l.ip(l.Router.NS, "route", "replace", VIPNet4.String(), "via", via4.String()); err != nil {
			return err
		}
	}
	if via6.IsValid() {
		return l.ip(l.Router.NS, "-6", "route", "replace", VIPNet6.String(), "via", via6.String())
	}
	return nil
}

// UseNAT sets the real servers up for masquerading (-m): their default route
// is the balancer, and the VIPs are not on their loopback. It is the state a
// new lab starts in.
func (l *Lab) UseNAT() error {
	for _, r := range l.Reals {
		if err := l.defaultRoute(r.NS, l.Balancer.Addr4, l.Balancer.Addr6); err != nil {
			return err
		}
		_, _ = l.Output(r.NS, "ip", "addr", "del", netip.PrefixFrom(l.VIP4, 32).String(), "dev", "lo")
		_, _ = l.Output(r.NS, "ip", "-6", "addr", "del", netip.PrefixFrom(l.VIP6, 128).String(), "dev", "lo")
	}
	l.mu.Lock()
	l.dr = false
	l.mu.Unlock()
	return nil
}

// UseDirectRouting sets the real servers up for direct routing (-g): the VIPs
// on their loopback, arp_ignore=1 and arp_announce=2 so that they neither
// answer nor announce ARP for them, and their default route via the router
// (replies go straight back to the client, not through the balancer).
func (l *Lab) UseDirectRouting() error {
	for _, r := range l.Reals {
		if err := l.sysctls(r.NS, map[string]string{
			"net/ipv4/conf/all/arp_ignore":    "1",
			"net/ipv4/conf/all/arp_announce":  "2",
			"net/ipv4/conf/eth0/arp_ignore":   "1",
			"net/ipv4/conf/eth0/arp_announce": "2",
		}); err != nil {
			return err
		}
		for _, a := range [][]string{
			{"addr", "replace", netip.PrefixFrom(l.VIP4, 32).String(), "dev", "lo"},
			{"-6", "addr", "replace", netip.PrefixFrom(l.VIP6, 128).String(), "dev", "lo", "nodad"},
		} {
			if err := l.ip(r.NS, a...); err != nil {
				return err
			}
		}
		if err := l.defaultRoute(r.NS, l.Router.Addr4, l.Router.Addr6); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.dr = true
	l.mu.Unlock()
	return nil
}

// bridgeNFSysctls are br_netfilter's per-namespace switches. When the module
// is loaded (Docker and Kubernetes hosts load it) every new namespace
// starts with them on, so each frame a lab bridge forwards runs the IPv4,
// IPv6 or ARP netfilter hooks.
var bridgeNFSysctls = []string{
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"net/bridge/bridge-nf-call-arptables",
}

// plainSwitch turns br_netfilter off in the switch namespace, so that its
// bridges forward like an L2 switch. It is a lab property, the same for
// every test and benchmark candidate: a host's transmission on a veth runs
// the receiving side (the bridge, then the peer's stack) inline in the
// sender's system call or softirq, so these hooks were charged to whichever
// process sent — about 28 % of xvs's CPU time on AF_XDP in the benchmark,
// and the same per packet for the naive proxy. Without br_netfilter the
// files do not exist and there is nothing to do.
func (l *Lab) plainSwitch() error {
	return l.Do(l.Switch, func() error {
		for _, k := range bridgeNFSysctls {
			err := os.WriteFile(filepath.Join("/proc/sys", k), []byte("0"), 0o644)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("lab: sysctl %s=0 in %s: %w", k, l.Switch, err)
			}
		}
		return nil
	})
}

func (l *Lab) sysctls(ns string, kv map[string]string) error {
	return l.Do(ns, func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("lab: sysctl %s=%s in %s: %w", k, v, ns, err)
			}
		}
		return nil
	})
}

func (l *Lab) ip(ns string, args ...string) error {
	_, err := run(context.Background(), "ip", append([]string{"-n", ns}, args...)...)
	return err
}

// Command returns a command that runs name with args in namespace ns
// (through `ip netns exec`). The caller starts and waits for it; Close kills
// it if it is still running.
func (l *Lab) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return Command(ctx, ns, name, args...)
}

// Command returns a command that runs name with args in namespace ns.
func Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Output runs a command in namespace ns, bounded by CommandTimeout, and
// returns its standard output; the error carries its standard error.
func (l *Lab) Output(ns, name string, args ...string) (string, error) {
	return Exec(ns, append([]string{name}, args...)...)
}

// Exec runs cmd (name and arguments) in namespace ns, bounded by
// CommandTimeout, and returns its standard output.
func Exec(ns string, cmd ...string) (string, error) {
	if len(cmd) == 0 {
		return "", errors.New("lab: empty command")
	}
	return run(context.Background(), "ip", append([]string{"netns", "exec", ns}, cmd...)...)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("lab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Close kills what still runs in the lab's namespaces and deletes them,
// with every veth and bridge in them. It is safe to call more than once and
// after a failed New; it returns the first error but tries everything.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	nss := l.nss
	l.mu.Unlock()
	var first error
	// Reverse order: hosts before the switch, so that no veth outlives
	// its bridge for long.
	for i := len(nss) - 1; i >= 0; i-- {
		if err := deleteNS(nss[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// deleteNS kills the processes in ns and deletes it; a missing ns is fine.
func deleteNS(ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := run(context.Background(), "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	}
	var err error
	for range 5 { // EBUSY while a killed process is still exiting
		if _, err = run(context.Background(), "ip", "netns", "del", ns); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Sweep deletes every namespace whose name starts with prefix (and the
// processes in it): leftovers of crashed runs. Use a lab's own Prefix or a
// base prefix no running test shares.
func Sweep(prefix string) error {
	if prefix == "" {
		return errors.New("lab: Sweep needs a prefix")
	}
	var first error
	for _, ns := range listNS(prefix) {
		if err := deleteNS(ns); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// sweepStale deletes the namespaces of labs under base whose creating
// process no longer exists.
func sweepStale(base string) {
	for _, ns := range listNS(base) {
		rest := strings.TrimPrefix(ns, base)
		pid, err := strconv.Atoi(rest[:strings.IndexFunc(rest+"x", func(r rune) bool { return r < '0' || r > '9' })])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			_ = deleteNS(ns)
		}
	}
}

func listNS(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
