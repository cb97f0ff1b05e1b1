// Package rawsock is xvs's fallback data plane for where AF_XDP cannot run
// (no XDP support in the driver or kernel, a container without CAP_BPF):
// AF_PACKET sockets on one interface or several (Options.Ifaces, the legs of
// a director), registered as the "raw" backend.
//
// Each queue (Options.Queues, default 1) is one AF_PACKET socket per
// interface with its own worker; with more than one queue, an interface's
// sockets form a PACKET_FANOUT_HASH group, so the kernel spreads flows over
// the workers by their hash (all datagrams of one 5-tuple, and all fragments
// of one datagram, meet on one worker). Receive reads every interface's
// socket (Batch.Port says which); Transmit sends each frame on its Port's
// socket, one sendmmsg per interface and batch. A classic BPF socket filter compiled from dataplane.Filter lets
// through only the balancer's traffic — UDP/TCP to a virtual service's
// address and port, from a NAT real server's address and port, IPv4 and
// IPv6; fragments to a virtual address, and later fragments (which carry
// no ports) from a NAT real server's address, so that fragmented NAT
// replies come too (IPv6: every fragment from such an address; IPv4 first
// fragments go by their ports); ICMPv4 "fragmentation needed" and ICMPv6
// "packet too big" to a virtual address (path-MTU discovery: the pipeline
// finds the real server from the quoted header; other ICMP is not
// delivered); and VLAN-tagged frames for the pipeline to sort — and is
// swapped atomically on every Update. A filter too large for the kernel
// (4096 instructions: hundreds of services) falls back to delivering every
// IP frame (Backend.Coarse reports it). Since the socket gets a copy, a
// frame delivered that is not the balancer's costs a worker a recycle, not
// the kernel its packet.
//
// Receive takes up to dataplane.MaxBatch frames with one recvmmsg (a poll
// first only when nothing is waiting) and Transmit sends a batch with one
// sendmmsg: no system call per packet. The queues implement
// dataplane.CopyTransmitter: frames the worker owns (fragments it held
// until their datagram was decided) leave with one sendmmsg per batch. The backend is not zero-copy: the
// kernel copies each received frame into the queue's buffers and each sent
// frame out of them. PACKET_IGNORE_OUTGOING keeps our own transmissions
// from coming back.
//
// # The kernel still sees every packet
//
// An AF_PACKET socket receives a copy; it does not steal the packet from
// the kernel's stack as XDP does. So in raw mode the virtual address must
// not be a local address of the balancer (route the VIP to it instead, as
// the lab does, with IP forwarding off: the kernel then drops what it is
// not the destination of), or the host must drop the packets after the
// socket has seen them, or the kernel answers too (ICMP port unreachable,
// TCP resets, or a local SIP stack). A netdev ingress rule runs after packet
// sockets have taken their copy:
//
//	nft add table netdev xvs
//	nft add chain netdev xvs in '{ type filter hook ingress device eth0 priority 0; }'
//	nft add rule netdev xvs in ip daddr 10.77.2.1 udp dport 5060 drop
//	nft add rule netdev xvs in ip6 daddr fd77:2::1 udp dport 5060 drop
//
// For NAT, the balancer must likewise not forward the real servers'
// replies itself (net.ipv4.ip_forward=0 on the balancer, or the same kind of
// rule with ip saddr).
//
// Other limits: a VLAN tag the NIC stripped is not put back, so serve
// tagged traffic on the VLAN's interface (eth0.100) or with rxvlan offload
// off. (Frames whose checksum the sender left to TX offload are completed by
// xvs's pipeline.)
package rawsock
