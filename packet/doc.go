// Package packet decodes the headers of a captured or received frame into a
// caller-owned Parsed value and rewrites them in place, without allocating.
//
// It understands the link framings the data plane and the replay backend meet
// (Ethernet II, Linux cooked capture SLL and SLL2, BSD loopback/NULL, raw IP),
// up to MaxVLANs 802.1Q/802.1ad tags, PPPoE sessions (RFC 2516, DSL access)
// after them, IPv4 with options and fragments, IPv6 with hop-by-hop, routing,
// destination-options and fragment extension headers, and the ports of UDP
// and TCP.
//
// # Buffer lifetimes
//
// Decode reads the frame and keeps no reference to it: a Parsed holds offsets
// into the frame, never a slice of it, so a worker keeps one Parsed per queue
// and decodes every frame of a batch into it. Payload returns a subslice of
// the frame passed to it; it is valid as long as that frame (an AF_XDP UMEM
// chunk, a capture reader's buffer) is, and must not be retained past it. The
// rewrite functions (SetDst, SetSrc, SetDstMAC, SetSrcMAC) change the frame in
// place; they must be given the same frame that was decoded into p.
//
// # Reasons
//
// Decode never returns an error value and never panics: it returns a Reason,
// ReasonOK or the first check the frame failed, so that the caller counts
// drops in an array indexed by Reason (see NumReasons and Reason.String for
// metric labels) and an attacker cannot choose the garbage-collection rate by
// sending malformed frames. The fields of Parsed are set for every layer
// decoded before the failing check; a frame that failed at L3 has its link
// fields (VLAN tags, EtherType, L3Off) set, and one that failed at L4 also has
// its addresses. ReasonNonFirstFragment is a normal outcome for fragmented
// traffic: the IP header fields, the fragment fields and Proto are set, L4Off
// is 0 and Payload returns the fragment's data.
//
// # Checksums
//
// Decode does not verify checksums (a forwarding load balancer leaves that to
// the real server, as IPVS does in its forwarding path); VerifyChecksums
// recomputes them for tests and replay. The rewrites update the IPv4 header
// checksum and the UDP/TCP checksum incrementally (RFC 1624, eqn. 3), so a
// packet that arrived with a valid checksum leaves with a valid one and a
// packet that arrived with a bad one stays bad.
package packet
