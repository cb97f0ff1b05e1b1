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
// name used in replay logs and metric labels.
type Reason uint8

const (
	// Pass reasons.
	ReasonNotIP      Reason = iota // not IPv4/IPv6 (ARP, LLDP, …)
	ReasonNotService               // IP, but not to a virtual service nor from a NAT real server

	// Forward reasons (inbound).
	ReasonConnHit       // matched a connection entry (no -o)
	ReasonTemplateHit   // persistent: this worker's template chose the real server
	ReasonSharedHit     // persistent: another worker's template chose it (cross-worker persistence)
	ReasonScheduled     // persistent: no template; scheduled and a template was created
	ReasonOverflow      // persistent: scheduled, but the template table was full of live dialogs; no template kept
	ReasonScheduledOnly // not persistent: scheduled per packet (-o) or per new connection
	// Forward reasons (from real servers).
	ReasonReplyNAT  // NAT reply matched a connection and was translated back to the virtual address
	ReasonServerOut // a NAT real server's own request (or -o reply) created/refreshed the template (IPVS conn_out)

	// Drop reasons.
	ReasonMalformed   // the frame could not be decoded; Decision.Decode says why
	ReasonFragment    // a non-first UDP/TCP fragment for the balancer while fragment tracking is disabled (Options.FragDatagrams < 0)
	ReasonNoDest      // no real server available (all removed, quiesced or overloaded)
	ReasonPEStrict    // strict persistence engine found no key (IPVS kernel behaviour)
	ReasonDestGone    // connection's real server was removed (expire_nodest_conn semantics)
	ReasonUnsupported // a forwarding method the data plane does not implement (tunnel)
	ReasonNoNextHop   // an Ethernet frame for a real server whose MAC is not resolved yet

	// Added with fragment tracking and ICMP (after the reasons above so that
	// their values do not change; Verdict reads reasonVerdicts).
	ReasonFragmentFollowed  // forward: a non-first fragment sent where its datagram's first fragment went (see frag.go)
	ReasonFragmentHeld      // drop: the frame is recycled but a copy waits for its datagram's decision (emitted later, see Worker.Emitted)
	ReasonFragmentOverflow  // drop: a fragment that had to wait found no room (hold buffer full, datagram over MaxFragDatagramBytes, frame over FragSlotBytes)
	ReasonFragmentDuplicate // drop: a waiting datagram already holds a fragment at this offset, or this one overlaps another (RFC 5722)
	ReasonICMPForwarded     // forward: an ICMP "fragmentation needed" / "packet too big" about a balanced flow, sent to the real server that owns it
	ReasonICMPUnmatched     // drop: such an ICMP error about a virtual service whose owning real server cannot be found
	ReasonTCPNoSYN          // pass: a TCP segment that is not a SYN (or is an RST) with no connection entry, not scheduled without sloppy_tcp (tcp_conn_schedule)
	NumReasons
)

var reasonNames = [NumReasons]string{
	"not_ip", "not_service",
	"conn_hit", "template_hit", "shared_hit", "scheduled", "template_overflow", "scheduled_no_persistence",
	"nat_reply", "server_initiated",
	"malformed", "fragment_untracked", "no_dest", "pe_strict", "dest_gone", "unsupported_forwarding", "no_next_hop",
	"fragment_followed", "fragment_held", "fragment_overflow", "fragment_duplicate", "icmp_forwarded", "icmp_unmatched",
	"tcp_no_syn",
}

var reasonVerdicts = func() (v [NumReasons]Verdict) {
	for r := range NumReasons {
		switch {
		case r <= ReasonNotService, r == ReasonTCPNoSYN:
			v[r] = Pass
		case r <= ReasonServerOut, r == ReasonFragmentFollowed, r == ReasonICMPForwarded:
			v[r] = Forward
		default:
			v[r] = Drop
		}
	}
	return v
}()

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Verdict returns the verdict that goes with a reason.
func (r Reason) Verdict() Verdict {
	if r < NumReasons {
		return reasonVerdicts[r]
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
}

// Verdict returns the decision's verdict.
func (d *Decision) Verdict() Verdict { return d.Reason.Verdict() }
