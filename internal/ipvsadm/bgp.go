package ipvsadm

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The xvs BGP extension (docs/scale-out.md): the director's embedded BGP
// speaker is listed with -L --bgp, and the whole director is drained (its
// routes withdrawn, forwarding kept) with --drain-director and undrained
// with --undrain-director. Neither is saved by -S: a drain is the state of
// one director, not configuration.

// BGPView is what -L --bgp lists.
type BGPView struct {
	// Configured is false when `xvs run` has no BGP speaker.
	Configured bool
	ASN        uint32
	RouterID   netip.Addr
	// State: "announcing", "drained", "stopping" or "not forwarding".
	State  string
	Peers  []BGPPeerView
	Routes []BGPRouteView
}

// BGPPeerView is one peer's session.
type BGPPeerView struct {
	Addr                                    netip.Addr
	ASN                                     uint32
	State                                   string
	Since                                   time.Duration // since the last state change
	HoldTime                                time.Duration // negotiated; 0 while down
	UpdatesSent, UpdatesReceived, Announced uint64
	LocalAddr                               netip.Addr
}

// BGPRouteView is one VIP's route.
type BGPRouteView struct {
	Prefix      netip.Prefix
	Announced   bool
	Reason      string     // why not announced
	NextHop     netip.Addr // zero: the session's local address
	MED         uint32
	HasMED      bool
	Communities []string
}

// AppendBGP appends the -L --bgp listing:
//
//	BGP AS 65001 router-id 10.77.1.2: announcing
//	Peer                          AS         State        Since   Hold  Sent   Rcvd   Routes
//	  -> 10.77.1.1                65000      established  2m3s    3s    4      1      1
//	Route                         State      NextHop                  Attributes
//	  -> 10.77.2.1/32             announced  self                     med 10 community 65001:100
//	  -> fd77:2::1/128            withdrawn  self                     (no available real server)
func AppendBGP(b []byte, v BGPView) []byte {
	if !v.Configured {
		return append(b, "BGP: not configured (xvs run --bgp-asn … --bgp-peer …)\n"...)
	}
	b = fmt.Appendf(b, "BGP AS %d router-id %s: %s\n", v.ASN, v.RouterID, v.State)
	b = fmt.Appendf(b, "%-29s %-10s %-12s %-7s %-5s %-6s %-6s %s\n", "Peer", "AS", "State", "Since", "Hold", "Sent", "Rcvd", "Routes")
	for _, p := range v.Peers {
		hold := "-"
		if p.HoldTime > 0 {
			hold = shortDuration(p.HoldTime)
		}
		b = fmt.Appendf(b, "  -> %-24s %-10d %-12s %-7s %-5s %-6d %-6d %d\n", p.Addr, p.ASN, p.State,
			shortDuration(p.Since), hold, p.UpdatesSent, p.UpdatesReceived, p.Announced)
	}
	b = fmt.Appendf(b, "%-29s %-10s %-24s %s\n", "Route", "State", "NextHop", "Attributes")
	for _, r := range v.Routes {
		state, nh := "withdrawn", "self"
		if r.Announced {
			state = "announced"
		}
		if r.NextHop.IsValid() {
			nh = r.NextHop.String()
		}
		var attrs []string
		if r.HasMED {
			attrs = append(attrs, fmt.Sprintf("med %d", r.MED))
		}
		if len(r.Communities) > 0 {
			attrs = append(attrs, "community "+strings.Join(r.Communities, ","))
		}
		if !r.Announced && r.Reason != "" {
			attrs = append(attrs, "("+r.Reason+")")
		}
		b = fmt.Appendf(b, "  -> %-24s %-10s %-24s %s\n", r.Prefix, state, nh, strings.Join(attrs, " "))
	}
	return b
}
