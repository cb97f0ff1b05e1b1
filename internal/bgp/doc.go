// Package bgp is xvs's embedded BGP speaker: it announces each virtual
// address (a /32 or /128 route) to the routers only while this director can
// serve it, so that routers spread calls over several active directors with
// ECMP and stop sending to one that cannot serve.
//
// The speaker is GoBGP (github.com/osrg/gobgp/v4) run as a library; this
// package is the only one that imports it. It dials its peers and, by
// default, does not listen (directors dial out; nothing else on the host
// needs port 179); it learns no routes (import policy: reject).
//
// [Announcer] follows the daemon ([Source]): a VIP is announced while the
// data plane is attached and forwarding, the director is neither drained
// (xvsadm --drain-director) nor stopping (SIGTERM), and one of the VIP's
// services has an available real server (ipvs.Dest.Available: weight > 0,
// health up, not draining) whose next hop the data plane has resolved
// (Source.Reachable). [Announcer.Stop]
// withdraws everything, waits for the withdrawals to leave, and keeps the
// data plane forwarding for the drain period before the daemon exits.
//
// [Config] is set from `xvs run --bgp-NAME VALUE` flags and from a
// --bgp-config file whose lines are "NAME VALUE" with the same names
// ([Settings]); see docs/scale-out.md.
package bgp
