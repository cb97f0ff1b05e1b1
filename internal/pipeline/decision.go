package pipeline

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
	ReasonFragment    // a non-first IP fragment (no ports): fragment tracking is not implemented yet
	ReasonNoDest      // no real server available (all removed, quiesced or overloaded)
	ReasonPEStrict    // strict persistence engine found no key (IPVS kernel behaviour)
	ReasonDestGone    // connection's real server was removed (expire_nodest_conn semantics)
	ReasonUnsupported // a forwarding method the data plane does not implement (tunnel)
	NumReasons
)

var reasonNames = [NumReasons]string{
	"not_ip", "not_service",
	"conn_hit", "template_hit", "shared_hit", "scheduled", "template_overflow", "scheduled_no_persistence",
	"nat_reply", "server_initiated",
	"malformed", "fragment_untracked", "no_dest", "pe_strict", "dest_gone", "unsupported_forwarding",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Verdict returns the verdict that goes with a reason.
func (r Reason) Verdict() Verdict {
	switch {
	case r <= ReasonNotService:
		return Pass
	case r <= ReasonServerOut:
		return Forward
	default:
		return Drop
	}
}
