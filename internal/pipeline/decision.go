package pipeline

import (
	"net/netip"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// Verdict is what happens to a frame.
type Verdict uint8

const (
	// Pass: the frame is not for a virtual service (nor a reply from a NAT
	// real server); it goes on to the kernel untouched.
	Pass Verdict = iota
	// Forward: the frame was rewritten in place and goes out to Decision.Dest
	// (inbound) or back to the client (NAT reply).
	Forward
	// Drop: the frame is for a virtual service but cannot be served; the
	// Reason says why and a counter records it.
	Drop
	numVerdicts
)

var verdictNames = [numVerdicts]string{"pass", "forward", "drop"}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Reason says how a verdict was reached. Every frame gets exactly one reason;
// each reason has a per-worker counter. String returns a stable snake_case
// name, used in replay logs and metric labels; the Go name is the same
// words in CamelCase (ReasonTemplateOverflow is "template_overflow").
// The values are indexes of counter arrays: new reasons go at the end.
type Reason uint8

const (
	ReasonNotIP      Reason = iota // not IPv4/IPv6 (ARP, LLDP, …)
	ReasonNotService               // IP, but not to a virtual service nor from a NAT real server

	ReasonConnHit                // matched a connection entry (no -o)
	ReasonTemplateHit            // persistent: this worker's template chose the real server
	ReasonSharedHit              // persistent: another worker's template chose it (cross-worker persistence)
	ReasonScheduled              // persistent: no template; scheduled and a template was created
	ReasonTemplateOverflow       // persistent: scheduled, but the template table was full of live dialogs; no template kept
	ReasonScheduledNoPersistence // not persistent: scheduled per packet (-o) or per new connection

	ReasonNATReply        // a NAT reply matched a connection and was translated back to the virtual address
	ReasonServerInitiated // a NAT real server's own request (or -o reply) created/refreshed the template (IPVS conn_out)

	ReasonMalformed             // the frame could not be decoded; Decision.Decode says why
	ReasonFragmentUntracked     // a non-first UDP/TCP fragment for the balancer while fragment tracking is disabled (Options.FragDatagrams < 0)
	ReasonNoDest                // no real server available (all removed, quiesced or overloaded)
	ReasonPEStrict              // strict persistence engine found no key (IPVS kernel behaviour)
	ReasonDestGone              // connection's real server was removed (expire_nodest_conn semantics)
	ReasonUnsupportedForwarding // a forwarding method the data plane does not implement (none is: kept for safety; the configuration refuses what cannot be forwarded)
	ReasonNoNextHop             // an Ethernet frame whose next hop has no MAC: its neighbour failed to resolve (the kernel's FAILED; asked again), or, without a next-hop table, its real server has none; or a tunnel without a source address yet

	ReasonFragmentFollowed  // a non-first fragment sent where its datagram's first fragment went (see frag.go)
	ReasonFragmentHeld      // the frame is recycled but a copy waits for its datagram's decision (emitted later, see Worker.Emitted)
	ReasonFragmentOverflow  // a fragment that had to wait found no room (hold buffer full, datagram over MaxFragDatagramBytes, frame over FragSlotBytes)
	ReasonFragmentDuplicate // a waiting datagram already holds a fragment at this offset, or this one overlaps another (RFC 5722)
	ReasonICMPForwarded     // an ICMP "fragmentation needed" / "packet too big" about a balanced flow, sent to the real server that owns it
	ReasonICMPUnmatched     // such an ICMP error about a virtual service whose owning real server cannot be found
	ReasonTCPNoSYN          // a TCP segment that is not a SYN (or is an RST) with no connection entry, not scheduled without sloppy_tcp (tcp_conn_schedule)

	ReasonTunnelICMPTooBig  // for a tunnel but too large for it (DF, or IPv6): answered with ICMP fragmentation needed / packet too big carrying the tunnel's MTU, the frame sent back to the client as that error
	ReasonTunnelTooBig      // for a tunnel but too large for it and no ICMP error due (a non-first IPv6 fragment, an ICMP message, a tunnel MTU below the outer family's minimum, no fragment buffer)
	ReasonNoHeadroom        // for a tunnel, but the backend left no room in front of the frame for the outer headers
	ReasonNoEgress          // the destination (real server or client) is routed through no interface xvs serves, or not routed at all; the frame is unchanged
	ReasonNeighbourHeld     // the frame is recycled but a copy waits for its next hop's MAC (ARP, neighbour discovery): emitted when it resolves (Worker.Emitted)
	ReasonNeighbourOverflow // a frame that had to wait for its next hop found no room (hold buffer full, NeighHoldPerHop for that next hop, or a frame over NeighSlotBytes)
	ReasonLocalUnowned      // a Local real server (an address of this host) for a virtual address the host does not own: the kernel would route it out again
	NumReasons
)

// reasons is every reason's name and verdict: the one table they are read
// from (TestReasonTable checks that each reason has an entry).
var reasons = [NumReasons]struct {
	name    string
	verdict Verdict
}{
	ReasonNotIP:                  {"not_ip", Pass},
	ReasonNotService:             {"not_service", Pass},
	ReasonConnHit:                {"conn_hit", Forward},
	ReasonTemplateHit:            {"template_hit", Forward},
	ReasonSharedHit:              {"shared_hit", Forward},
	ReasonScheduled:              {"scheduled", Forward},
	ReasonTemplateOverflow:       {"template_overflow", Forward},
	ReasonScheduledNoPersistence: {"scheduled_no_persistence", Forward},
	ReasonNATReply:               {"nat_reply", Forward},
	ReasonServerInitiated:        {"server_initiated", Forward},
	ReasonMalformed:              {"malformed", Drop},
	ReasonFragmentUntracked:      {"fragment_untracked", Drop},
	ReasonNoDest:                 {"no_dest", Drop},
	ReasonPEStrict:               {"pe_strict", Drop},
	ReasonDestGone:               {"dest_gone", Drop},
	ReasonUnsupportedForwarding:  {"unsupported_forwarding", Drop},
	ReasonNoNextHop:              {"no_next_hop", Drop},
	ReasonFragmentFollowed:       {"fragment_followed", Forward},
	ReasonFragmentHeld:           {"fragment_held", Drop},
	ReasonFragmentOverflow:       {"fragment_overflow", Drop},
	ReasonFragmentDuplicate:      {"fragment_duplicate", Drop},
	ReasonICMPForwarded:          {"icmp_forwarded", Forward},
	ReasonICMPUnmatched:          {"icmp_unmatched", Drop},
	ReasonTCPNoSYN:               {"tcp_no_syn", Pass},
	ReasonTunnelICMPTooBig:       {"tunnel_icmp_too_big", Forward},
	ReasonTunnelTooBig:           {"tunnel_too_big", Drop},
	ReasonNoHeadroom:             {"no_headroom", Drop},
	ReasonNoEgress:               {"no_egress", Drop},
	ReasonNeighbourHeld:          {"neighbour_held", Drop},
	ReasonNeighbourOverflow:      {"neighbour_overflow", Drop},
	ReasonLocalUnowned:           {"local_unowned", Drop},
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasons[r].name
	}
	return "unknown"
}

// Verdict returns the verdict that goes with a reason.
func (r Reason) Verdict() Verdict {
	if r < NumReasons {
		return reasons[r].verdict
	}
	return Drop
}

// Decision is what Process decided for one frame. Addresses are as received
// (before any rewrite). PEData aliases the frame or the worker's scratch
// buffer and is valid until the frame is reused or the worker's next Process
// call; copy it to keep it.
type Decision struct {
	Reason Reason
	// Decode is the decoder's verdict on the frame (packet.ReasonOK for every
	// frame that reached the service lookup).
	Decode packet.Reason
	Proto  uint8
	Src    netip.AddrPort
	Dst    netip.AddrPort
	// Service is the virtual service the frame was for (or, for a real
	// server's request, the service whose template it created); nil for Pass.
	Service *ipvs.Service
	// Dest is the real server the frame goes to or comes from.
	Dest *ipvs.Dest
	// Real is the real server's address and port: where an inbound frame now
	// goes, or where a reply came from.
	Real netip.AddrPort
	// HasPE is set when the service's persistence engine was asked for a
	// key; PE is its answer and PEData the key (when PE is pe.StatusOK).
	HasPE  bool
	PE     pe.Status
	PEData []byte
	// Fallback is set when the engine found no key and the packet used the
	// normal (client-address) persistence instead.
	Fallback bool
	// Hold identifies the copy kept of a frame decided fragment_held
	// (non-zero, unique per worker); Worker.Released reports its end.
	Hold uint64
	// Out is where a forwarded frame leaves: a port of the next-hop table,
	// or the host's own stack (Local), or (zero) where it came in.
	Out Out
}

// Verdict returns the decision's verdict.
func (d *Decision) Verdict() Verdict { return d.Reason.Verdict() }
