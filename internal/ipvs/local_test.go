package ipvs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// directorKinds classifies addresses as a director with 10.0.0.99 on its
// interface, 127.0.0.0/8 on lo, and the link broadcast 10.0.0.255 would.
func directorKinds(a netip.Addr) AddrKind {
	switch {
	case a.IsMulticast():
		return AddrMulticast
	case a.IsLoopback() || a == netip.MustParseAddr("10.0.0.99"):
		return AddrLocal
	case a == netip.MustParseAddr("10.0.0.255") || a == netip.MustParseAddr("255.255.255.255"):
		return AddrBroadcast
	case a.Is6() && a.IsLinkLocalUnicast():
		return AddrUnusable
	}
	return AddrUnicast
}

// TestRealServerAddressChecks: real servers that can never work are
// refused with an ipvsadm-style message (they were accepted and their share
// of calls black-holed): broadcast, multicast, link-local of another host,
// the VIP itself when the director does not own it, and a Local real server
// whose port differs from the service's when the kernel cannot translate
// it (TestLocalPortNeedsNAT). A real server on the director (127.0.0.1, its own
// address, a VIP it owns) is Local forwarding: accepted, shown as Local.
func TestRealServerAddressChecks(t *testing.T) {
	c, err := New(Options{Workers: 1, PEExists: sipPE, AddrKind: directorKinds})
	must(t, err)
	must(t, c.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	own := netip.MustParseAddrPort("10.0.0.99:5060")
	must(t, c.AddService(ServiceConfig{Protocol: UDP, Addr: own, Scheduler: "rr"}))
	owned := ServiceKey{UDP, own.Addr(), 5060}
	for _, tc := range []struct {
		svc  ServiceKey
		dest string
		fwd  Forward
		err  error
	}{
		{vkey, "10.0.0.255:5060", Masq, ErrBroadcastDest},
		{vkey, "255.255.255.255:5060", Route, ErrBroadcastDest},
		{vkey, "224.0.0.5:5060", Masq, ErrMulticastDest},
		{vkey, "192.0.2.10:5060", Masq, ErrVIPNotLocal}, // the VIP, not the director's
		{vkey, "192.0.2.10:5060", Route, ErrVIPNotLocal},
		{vkey, "127.0.0.1:5080", Masq, ErrLocalPort},
		{vkey, "10.0.0.99:5070", Masq, ErrLocalPort},
		{vkey, "127.0.0.1:5060", Masq, nil}, // Local, same port
		{vkey, "10.0.0.99:5060", Route, nil},
		{vkey, "10.0.0.7:5080", Masq, nil},   // an ordinary NAT real server
		{owned, "10.0.0.99:5060", Masq, nil}, // the VIP the director owns
	} {
		d := DestConfig{Addr: netip.MustParseAddrPort(tc.dest), Fwd: tc.fwd, Weight: 1}
		err := c.AddDest(tc.svc, d)
		if !errors.Is(err, tc.err) || (tc.err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("-a %v -r %s %v: %v, want %v", tc.svc, tc.dest, tc.fwd, err, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "Invalid argument") {
			t.Errorf("message %q lacks ipvsadm's wording", err)
		}
	}
	// -e is checked too.
	if err := c.EditDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.7:5080"), Fwd: Masq, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.EditDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Fwd: Route, Weight: 2}); err != nil {
		t.Errorf("-e of a Local server: %v", err)
	}
	s, err := c.Compile()
	must(t, err)
	local := map[string]bool{}
	for _, svc := range s.Services() {
		for _, d := range svc.Dests {
			local[d.Addr.String()] = d.Local
		}
	}
	if !local["127.0.0.1:5060"] || !local["10.0.0.99:5060"] || local["10.0.0.7:5080"] {
		t.Errorf("Local flags %v", local)
	}
	// Without a classifier (offline tools: xvs rules, replay) nothing is
	// known of the director's addresses: nothing is refused, nothing Local.
	plain, _ := newConfig(t, 1)
	must(t, plain.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	must(t, plain.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("127.0.0.1:5080"), Fwd: Masq, Weight: 1}))
	must(t, plain.AddDest(vkey, DestConfig{Addr: vip, Fwd: Masq, Weight: 1}))
}

// TestReclassify: a real server whose address becomes the director's (a VIP
// keepalived adds) is Local in the next snapshot once the daemon asks for it.
func TestReclassify(t *testing.T) {
	local := false
	c, err := New(Options{Workers: 1, AddrKind: func(a netip.Addr) AddrKind {
		if local && a == rs1.Addr() {
			return AddrLocal
		}
		return AddrUnicast
	}})
	must(t, err)
	must(t, c.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	must(t, c.AddDest(vkey, DestConfig{Addr: rs1, Fwd: Route, Weight: 1}))
	s, _ := c.Compile()
	if s.Services()[0].Dests[0].Local {
		t.Fatal("Local before")
	}
	local = true
	c.Reclassify()
	s, _ = c.Compile()
	if !s.Services()[0].Dests[0].Local {
		t.Fatal("not Local after Reclassify")
	}
}

// TestLocalPortNeedsNAT: a Local real server on another port than its
// service's is accepted when the kernel can translate the port
// (Options.LocalNAT: the daemon's nftables rules), for -a and -e, and
// refused with the reason (nftables) when it cannot.
func TestLocalPortNeedsNAT(t *testing.T) {
	unavailable := errors.New("nftables: operation not permitted")
	for _, nat := range []func() error{nil, func() error { return unavailable }, func() error { return nil }} {
		c, err := New(Options{Workers: 1, PEExists: sipPE, AddrKind: directorKinds, LocalNAT: nat})
		must(t, err)
		must(t, c.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
		must(t, c.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.99:5060"), Fwd: Masq, Weight: 1}))
		add := c.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("127.0.0.1:5080"), Fwd: Masq, Weight: 1})
		if nat == nil || nat() != nil {
			if !errors.Is(add, ErrLocalPort) || !strings.Contains(add.Error(), "nftables") || !strings.Contains(add.Error(), "Invalid argument") ||
				(nat != nil && !strings.Contains(add.Error(), unavailable.Error())) {
				t.Errorf("without the kernel's NAT, -a of a Local server on another port: %v, want %v", add, ErrLocalPort)
			}
			continue
		}
		if add != nil {
			t.Errorf("with the kernel's NAT, -a of a Local server on another port: %v", add)
		}
		if err := c.EditDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("127.0.0.1:5080"), Fwd: Masq, Weight: 2}); err != nil {
			t.Errorf("with the kernel's NAT, -e of a Local server on another port: %v", err)
		}
		s, err := c.Compile()
		must(t, err)
		for _, d := range s.Services()[0].Dests {
			if !d.Local {
				t.Errorf("%v is not Local", d.Addr)
			}
		}
	}
}
