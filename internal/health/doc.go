// Package health checks the real servers of xvs's virtual services, as
// keepalived does for IPVS and Kamailio's dispatcher does with SIP OPTIONS,
// and reports each server's state changes to the configuration model
// (ipvs.Config.SetDestHealth), where a down server is skipped by the
// scheduler and its templates follow the service's TemplatePolicy.
//
// # Checks
//
//   - sip-options: an OPTIONS request with a fresh Call-ID per probe; the
//     response must carry that Call-ID and, by default, any final status
//     (200..699) except 408 (a proxy's own transaction timeout); --codes
//     narrows the list (Kamailio's default is 200 only). Provisional
//     responses are skipped; silence until the timeout and an ICMP port
//     unreachable are failures.
//   - udp: a double CRLF (the SIP keep-alive); an ICMP port unreachable is a
//     failure, any reply or silence a success (keepalived's UDP_CHECK: a UDP
//     service need not answer). Use sip-options for SIP servers.
//   - tcp: a connection opened and closed.
//   - script (keepalived's MISC_CHECK): a command run per probe, exit 0
//     alive; with Dynamic, 2..255 alive with weight status-2 (reported
//     through Options.SetWeight); killed with its process group at the
//     timeout (SIGTERM, SIGKILL 2 s later); at most MaxScripts at once; as
//     ScriptUser; see script.go.
//   - http, https (keepalived's HTTP_GET, SSL_GET): a GET whose status must
//     be in Codes (200..299 by default) and whose body's MD5 must match
//     Digest when set; https verifies no certificate.
//
// A real server follows its own check when it has one (keepalived attaches
// checkers to real servers), else its service's: ipvs.Dest.Check.
//
// # Paths
//
// A probe travels the way the data plane sends a client's packet, so that it
// proves what clients need:
//
//   - NAT (-m) real servers are probed at their own address:port from the
//     balancer's own address. Their answers come from address:port the data
//     plane steers (NAT replies), so in AF_XDP mode they never reach the
//     kernel: the daemon's probe tap hands every UDP datagram addressed to
//     a probe source address (Options.LocalAddrs) to Deliver instead of the
//     pipeline. (A datagram to the balancer's own address is never a NAT
//     reply to a client.)
//   - Direct-routing (-g) real servers are probed at the VIP, sent from the
//     balancer's own address to the real server's MAC through an AF_PACKET
//     socket on the data-plane interface; the server answers from the VIP
//     to our address, which the data plane does not steer. Without
//     CAP_NET_RAW, without an interface, or before the server's MAC is
//     resolved, the probe goes to the server's own address instead
//     (PathDRFallback, shown in the listing's logs) — that proves the SIP
//     stack runs, not that it serves the VIP.
//   - tcp checks connect to the server's own address (use --check-port for a
//     direct-routing server that listens only on the VIP).
//
// # State machine and scheduling
//
// Each checked real server has an up/down state with Kamailio's and
// keepalived's thresholds: Fail consecutive failures take an up server down,
// Rise consecutive successes bring a down one back; a success resets the
// failure run and vice versa, so a flapping server does not flap the state.
// Servers start up (the model's default), so loading rules never black-holes
// calls; a dead server goes down after about Fail×Interval.
//
// One goroutine (Run) owns the states: every 50 ms it follows the published
// snapshot (new servers, removed ones, changed checks) and starts the probes
// that are due, first ones spread over the interval; at most MaxInFlight
// probes run at once, each in its own goroutine with its own socket for at
// most its timeout. After a failure of a server still up, the next probe
// comes after RetryInterval when the check has one (keepalived's
// delay_before_retry). A state change is logged ("health state change" with
// service, server, old, new, reason), counted, and applied through
// Options.SetHealth.
package health
