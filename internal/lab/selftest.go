package lab

import (
	"fmt"
	"net/netip"
	"os"
)

// The addressing of the Linux kernel's own IPVS end-to-end test
// (tools/testing/selftests/net/netfilter/ipvs.sh), which [NewSelftest]
// reproduces.
var (
	SelftestVIP        = netip.MustParseAddr("207.175.44.110")
	SelftestClient     = netip.MustParseAddr("10.0.0.2")   // the client, on the bridge in ns0
	SelftestDirClient  = netip.MustParseAddr("10.0.0.1")   // the director's leg on the client network
	SelftestDirServer  = netip.MustParseAddr("172.16.0.1") // the director's leg on the server network
	SelftestReal       = netip.MustParseAddr("172.16.0.2") // the real server on the server network
	SelftestRealClient = netip.MustParseAddr("10.0.0.3")   // the real server's leg on the client network
)

// SelftestPort is the service's TCP port.
const SelftestPort = 8080

// Selftest is the three namespaces of the kernel's IPVS selftest: ns0 the
// client, with a bridge br0 joining veth01 (to the director) and veth02 (to
// the real server); ns1 the director with two legs, veth10 on the client
// network and veth12 on the server network; ns2 the real server, veth21 on
// the server network and veth20 on the client network (its direct way back
// to the client under direct routing; NAT deletes it and routes through
// the director).
//
//	ns0 client 10.0.0.2 (br0) ── veth01 ═ veth10 10.0.0.1   ns1 director
//	          └──────────────── veth02 ═ veth20 10.0.0.3    ns2 real server
//	                   ns1 veth12 172.16.0.1 ═ veth21 172.16.0.2 ns2
type Selftest struct {
	*Lab
	Client, Director, Real string // the namespaces (ns0, ns1, ns2)
}

// NewSelftest builds the selftest's topology (the service is set up by
// UseDirectRouting or UseNAT). keepOffloads leaves the veths' offloads at
// the kernel's defaults, as the selftest does; otherwise they are switched
// off.
func NewSelftest(keepOffloads bool) (_ *Selftest, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	sweepStale(BasePrefix)
	l := &Lab{Prefix: fmt.Sprintf("%s%dx%d", BasePrefix, os.Getpid(), labSeq.Add(1))}
	s := &Selftest{Lab: l, Client: l.Prefix + "-ns0", Director: l.Prefix + "-ns1", Real: l.Prefix + "-ns2"}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, ns := range []string{s.Client, s.Director, s.Real} {
		if err := l.addNS(ns); err != nil {
			return nil, err
		}
		if err := l.ip(ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	type leg struct {
		ns, dev, peerNS, peer string
	}
	for _, v := range []leg{{s.Client, "veth01", s.Director, "veth10"}, {s.Client, "veth02", s.Real, "veth20"}, {s.Director, "veth12", s.Real, "veth21"}} {
		if err := l.ip(v.ns, "link", "add", v.dev, "type", "veth", "peer", "name", v.peer, "netns", v.peerNS); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		ns   string
		args []string
	}{
		// A fixed address: a bridge takes its lowest port's by default and
		// changes it when that port goes (UseNAT deletes veth02's peer),
		// which would leave the director's neighbour entry for the client
		// stale.
		{s.Client, []string{"link", "add", "br0", "address", "02:00:0a:00:00:02", "type", "bridge", "stp_state", "0"}},
		{s.Client, []string{"link", "set", "veth01", "master", "br0"}},
		{s.Client, []string{"link", "set", "veth02", "master", "br0"}},
		{s.Client, []string{"addr", "add", SelftestClient.String() + "/24", "dev", "br0"}},
		{s.Director, []string{"addr", "add", SelftestDirClient.String() + "/24", "dev", "veth10"}},
		{s.Director, []string{"addr", "add", SelftestDirServer.String() + "/24", "dev", "veth12"}},
		{s.Real, []string{"addr", "add", SelftestReal.String() + "/24", "dev", "veth21"}},
		{s.Real, []string{"addr", "add", SelftestRealClient.String() + "/24", "dev", "veth20"}},
	}
	for _, st := range steps {
		if err := l.ip(st.ns, st.args...); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct{ ns, dev string }{{s.Client, "veth01"}, {s.Client, "veth02"}, {s.Client, "br0"},
		{s.Director, "veth10"}, {s.Director, "veth12"}, {s.Real, "veth21"}, {s.Real, "veth20"}} {
		if err := l.ip(d.ns, "link", "set", d.dev, "up"); err != nil {
			return nil, err
		}
		if !keepOffloads && d.dev != "br0" {
			if err := l.DisableOffloads(d.ns, d.dev); err != nil {
				return nil, err
			}
		}
	}
	// The selftest's bridge lives in the client's namespace: keep it a
	// plain switch there too.
	l.Switch = s.Client
	if err := l.plainSwitch(); err != nil {
		return nil, err
	}
	for _, p := range []struct{ ns, dst string }{{s.Client, SelftestDirClient.String()}, {s.Client, SelftestRealClient.String()}, {s.Director, SelftestReal.String()}} {
		var err error
		for range settleTries {
			if _, err = l.Output(p.ns, "ping", "-c1", "-W1", p.dst); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("lab: %s does not reach %s: %w", p.ns, p.dst, err)
		}
	}
	return s, nil
}

// common is what both forwarding methods set up: the client routes the VIP
// to the director's client leg, the director forwards and owns the VIP (on
// lo, as keepalived would put it on an interface).
func (s *Selftest) common() error {
	if err := s.ip(s.Client, "route", "add", SelftestVIP.String(), "via", SelftestDirClient.String(), "dev", "br0"); err != nil {
		return err
	}
	if err := s.sysctls(s.Director, map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		return err
	}
	return s.ip(s.Director, "addr", "add", SelftestVIP.String()+"/32", "dev", "lo")
}

// UseDirectRouting sets the selftest's direct-routing case up: the real
// server carries the VIP on lo, neither answers nor announces ARP for it,
// does no reverse-path filtering, and answers the client by its own leg on
// the client network.
func (s *Selftest) UseDirectRouting() error {
	if err := s.common(); err != nil {
		return err
	}
	if err := s.sysctls(s.Real, map[string]string{
		"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
		"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/veth21/rp_filter": "0",
	}); err != nil {
		return err
	}
	return s.ip(s.Real, "addr", "add", SelftestVIP.String()+"/32", "dev", "lo")
}

// UseNAT sets the selftest's NAT case up: the real server loses its leg on
// the client network and routes everything through the director.
func (s *Selftest) UseNAT() error {
	if err := s.common(); err != nil {
		return err
	}
	if err := s.ip(s.Real, "link", "del", "veth20"); err != nil {
		return err
	}
	return s.ip(s.Real, "route", "add", "default", "via", SelftestDirServer.String(), "dev", "veth21")
}
