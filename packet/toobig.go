package packet

// What a tunnel does with a datagram that does not fit: the kernel's
// ensure_mtu_is_adequate answers the sender with ICMP "fragmentation
// needed" (IPv4 with DF) or ICMPv6 "packet too big" (icmp_send,
// icmpv6_send), else the encapsulated datagram is fragmented on output
// (ip_fragment, ip6_fragment). Both are built here in the frame, the first
// fragment in place and the others into caller buffers.

import (
	"encoding/binary"
	"net/netip"
)

// Sizes of the ICMP errors the kernel sends (icmp_send: a reply fits 576
// octets; icmpv6_send: the IPv6 minimum MTU, 1280), and their fields.
const (
	icmpv4ErrorMax = 576
	icmpv6ErrorMax = 1280
	// ICMPTTL is the TTL / hop limit of the errors: the kernel's default
	// (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit).
	ICMPTTL           = 64
	iptosTOSMask      = 0x1E
	iptosPrecInternet = 0xC0 // IPTOS_PREC_INTERNETCONTROL
	ipv6FragHdrLen    = 8
)

// TooBig turns the frame, holding the datagram p decoded, into the ICMP
// error that tells its sender it does not fit mtu: an ICMPv4 destination
// unreachable / fragmentation needed with the next-hop MTU (RFC 1191) for
// IPv4, an ICMPv6 packet too big (RFC 8201) for IPv6, as icmp_send and
// icmpv6_send build them for a packet to a local address: from the
// datagram's destination to its source, quoting the datagram from its IP
// header up to 576 (IPv4) or 1280 (IPv6) octets in all, TTL ICMPTTL, IPv4
// TOS the datagram's with precedence "internetwork control", no DF, id as
// given. The IP and ICMP headers are written into room (see Grow) and the
// link header moves in front of them unchanged (the caller addresses it);
// the quoted datagram stays where it is. It reports false, changing
// nothing, under Encapsulate's conditions.
func (p *Parsed) TooBig(room, frame []byte, mtu int, id uint16) (out, left []byte, ok bool) {
	if (p.Reason != ReasonOK && p.Reason != ReasonNonFirstFragment && p.Reason != ReasonUnsupportedProto) ||
		p.End > len(frame) || p.PPPoE || !linkRewritable(p.Link) || p.Version == 0 {
		return frame, room, false
	}
	hl, max := ipv4MinHeaderLen, icmpv4ErrorMax
	if p.Version == 6 {
		hl, max = ipv6HeaderLen, icmpv6ErrorMax
	}
	n := hl + icmpHeaderLen
	quote := min(p.End-p.L3Off, max-n)
	grown, left, ok := Grow(room, frame[:p.L3Off+quote], n)
	if !ok {
		return frame, room, false
	}
	l3 := p.L3Off
	copy(grown[:l3], frame[:l3])
	ip := grown[l3:]
	q := ip[n:]
	m := ip[hl:n]
	if p.Version == 4 {
		tos := q[1]&iptosTOSMask | iptosPrecInternet
		ip[0], ip[1] = 0x45, tos
		binary.BigEndian.PutUint16(ip[2:], uint16(n+quote))
		binary.BigEndian.PutUint16(ip[4:], id)
		ip[6], ip[7] = 0, 0
		ip[8], ip[9] = ICMPTTL, ProtoICMP
		ip[10], ip[11] = 0, 0
		d, s := p.Src.As4(), p.Dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ipv4MinHeaderLen]))
		m[0], m[1] = ICMPv4DestUnreachable, ICMPv4FragNeeded
		m[2], m[3], m[4], m[5] = 0, 0, 0, 0
		binary.BigEndian.PutUint16(m[6:], uint16(mtu))
		binary.BigEndian.PutUint16(m[2:], ^fold(uint64(sum16(m))+uint64(sum16(q[:quote]))))
		return grown, left, true
	}
	binary.BigEndian.PutUint32(ip[0:], 6<<28)
	binary.BigEndian.PutUint16(ip[4:], uint16(icmpHeaderLen+quote))
	ip[6], ip[7] = ProtoICMPv6, ICMPTTL
	d, s := p.Src.As16(), p.Dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m[0], m[1], m[2], m[3] = ICMPv6PacketTooBig, 0, 0, 0
	binary.BigEndian.PutUint32(m[4:], uint32(mtu))
	sum := uint64(sum16(m)) + uint64(sum16(q[:quote])) + pseudoSum(ip, true, ProtoICMPv6, icmpHeaderLen+quote)
	binary.BigEndian.PutUint16(m[2:], ^fold(sum))
	return grown, left, true
}

// FragmentIPv4 cuts the IPv4 packet at frame[l3:] (no options: an outer
// header Encapsulate wrote) so that it fits mtu, as ip_fragment does: frame
// keeps the link header, the IP header and the first (mtu-20)&^7 octets of
// data, now with MF; the rest, with a copy of the link and IP headers, its
// fragment offset and the original MF, is written to dst. It returns both
// (tail too may exceed mtu: cut it again), or false when the packet fits
// already, is not such a packet, or dst is too small.
func FragmentIPv4(frame []byte, l3, mtu int, dst []byte) (head, tail []byte, ok bool) {
	if l3 < 0 || len(frame) < l3+ipv4MinHeaderLen || frame[l3] != 0x45 {
		return frame, nil, false
	}
	ip := frame[l3:]
	total := int(binary.BigEndian.Uint16(ip[2:]))
	first := (mtu - ipv4MinHeaderLen) &^ 7
	if total > len(ip) || total <= mtu || first <= 0 {
		return frame, nil, false
	}
	rest := total - ipv4MinHeaderLen - first
	need := l3 + ipv4MinHeaderLen + rest
	if len(dst) < need {
		return frame, nil, false
	}
	fo := binary.BigEndian.Uint16(ip[6:])
	off := fo & ipv4FragOffMask
	t := dst[:need]
	copy(t, frame[:l3+ipv4MinHeaderLen])
	copy(t[l3+ipv4MinHeaderLen:], ip[ipv4MinHeaderLen+first:total])
	th := t[l3:]
	binary.BigEndian.PutUint16(th[2:], uint16(ipv4MinHeaderLen+rest))
	binary.BigEndian.PutUint16(th[6:], fo&^ipv4FragOffMask|(off+uint16(first/8)))
	th[10], th[11] = 0, 0
	binary.BigEndian.PutUint16(th[10:], Checksum(th[:ipv4MinHeaderLen]))
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4MinHeaderLen+first))
	binary.BigEndian.PutUint16(ip[6:], fo|ipv4FlagMF)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ipv4MinHeaderLen]))
	return frame[:l3+ipv4MinHeaderLen+first], t, true
}

// FragmentIPv6 cuts the IPv6 packet at frame[l3:] (a 40-octet header
// without extension headers: an outer header Encapsulate wrote) into
// fragments that fit mtu, as ip6_fragment does: frame grows by the 8-octet
// fragment header into room (see Grow) and keeps the first
// (mtu-48)&^7 octets of payload; each further fragment, with copies of the
// link and IPv6 headers and a fragment header, is written to the next of
// dsts. id is the fragment identification. It returns the first fragment,
// the room left and how many of dsts it filled, or false (nothing changed)
// when the packet fits already, is not such a packet, or room or dsts are
// too small.
func FragmentIPv6(room, frame []byte, l3, mtu int, id uint32, dsts [][]byte) (head, left []byte, n int, ok bool) {
	if l3 < 0 || len(frame) < l3+ipv6HeaderLen || frame[l3]>>4 != 6 {
		return frame, room, 0, false
	}
	ip := frame[l3:]
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	chunk := (mtu - ipv6HeaderLen - ipv6FragHdrLen) &^ 7
	if ipv6HeaderLen+plen > len(ip) || ipv6HeaderLen+plen <= mtu || chunk <= 0 {
		return frame, room, 0, false
	}
	// Check every buffer before changing anything.
	k := 0
	for off := chunk; off < plen; off += chunk {
		if k >= len(dsts) || len(dsts[k]) < l3+ipv6HeaderLen+ipv6FragHdrLen+min(chunk, plen-off) {
			return frame, room, 0, false
		}
		k++
	}
	grown, left, ok := Grow(room, frame[:l3+ipv6HeaderLen+plen], ipv6FragHdrLen)
	if !ok {
		return frame, room, 0, false
	}
	hdr := l3 + ipv6HeaderLen
	copy(grown[:hdr], frame[:hdr]) // link and IPv6 headers, 8 octets forward
	next := grown[l3+6]
	payload := frame[hdr : hdr+plen] // where it was, now after the fragment header
	fragHdr := func(b []byte, off int, more bool) {
		b[0], b[1] = next, 0
		v := uint16(off)
		if more {
			v |= ipv6FragMF
		}
		binary.BigEndian.PutUint16(b[2:], v)
		binary.BigEndian.PutUint32(b[4:], id)
	}
	for i, off := 0, chunk; off < plen; i, off = i+1, off+chunk {
		c := min(chunk, plen-off)
		t := dsts[i][:hdr+ipv6FragHdrLen+c]
		copy(t, grown[:hdr])
		t[l3+6] = protoFragment
		binary.BigEndian.PutUint16(t[l3+4:], uint16(ipv6FragHdrLen+c))
		fragHdr(t[hdr:], off, off+c < plen)
		copy(t[hdr+ipv6FragHdrLen:], payload[off:off+c])
		dsts[i] = t
		n++
	}
	grown[l3+6] = protoFragment
	binary.BigEndian.PutUint16(grown[l3+4:], uint16(ipv6FragHdrLen+chunk))
	fragHdr(grown[hdr:], 0, true)
	return grown[:hdr+ipv6FragHdrLen+chunk], left, n, true
}

// TunnelMTU returns the largest inner datagram a tunnel carries over a link
// of MTU linkMTU: the kernel's __ip_vs_get_out_rt less the outer IP header
// and the GUE or GRE header (remote checksum offload's option included only
// when partial, as the kernel counts it only for a CHECKSUM_PARTIAL
// packet). The kernel refuses to tunnel at all when it is below 68 (an
// IPv4 outer header) or 1280 (IPv6).
func (e *Encap) TunnelMTU(linkMTU int, partial bool) int { return linkMTU - e.Len(partial) }

// MinTunnelMTU is the smallest TunnelMTU the kernel forwards through, by the
// outer family: IPv4's minimum MTU (68, RFC 791) or IPv6's (1280).
func MinTunnelMTU(outer netip.Addr) int {
	if outer.Is6() {
		return icmpv6ErrorMax
	}
	return 68
}
