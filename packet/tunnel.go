package packet

// Tunnel encapsulation, as the kernel's IPVS tunnel transmitter builds it
// (net/netfilter/ipvs/ip_vs_xmit.c: ip_vs_tunnel_xmit for an IPv4 outer
// header, ip_vs_tunnel_xmit_v6 for IPv6, ipvs_gue_encap, ipvs_gre_encap).
// The inner datagram is not touched: the outer headers are written into the
// room in front of the frame, and the link header moves forward to meet
// them, so a frame grows at its front without a copy of its payload.
//
// Wire layout after the link header (offsets from the outer IP header; H is
// 20 for an IPv4 outer header, 40 for IPv6):
//
//	IPIP   [0,H) outer IP, protocol 4 (inner IPv4) or 41 (inner IPv6)
//	GUE    [0,H) outer IP, protocol 17
//	       [H,H+8)    UDP: source port (flow hash), Encap.Port, length, checksum
//	       [H+8,H+12) GUE: byte 0 = version 0 | C 0 | hlen (words of options),
//	                  byte 1 = inner protocol (4 or 41), bytes 2-3 flags
//	                  (0x0001 = private flags present)
//	       remote checksum offload only (hlen 2, flags 0x0001):
//	       [H+12,H+16) private flags 0x80000000 (REMCSUM)
//	       [H+16,H+18) checksum start, [H+18,H+20) checksum field offset,
//	                  both from the start of the inner datagram
//	GRE    [0,H) outer IP, protocol 47
//	       [H,H+2) flags: 0x8000 with a checksum, else 0 (version 0)
//	       [H+2,H+4) protocol: 0x0800 (inner IPv4) or 0x86DD (inner IPv6)
//	       checksum only: [H+4,H+6) checksum over GRE header and payload,
//	       [H+6,H+8) reserved 0

import (
	"encoding/binary"
	"net/netip"
)

// EncapType is the header between the outer IP header and the inner
// datagram.
type EncapType uint8

const (
	EncapIPIP EncapType = iota // none: IP in IP
	EncapGUE                   // UDP and a GUE header (draft-ietf-intarea-gue, Linux fou)
	EncapGRE                   // GRE (RFC 2784)
)

// Protocol numbers and sizes of the encapsulations.
const (
	ProtoIPIP = 4  // IPv4 in IP
	ProtoIPv6 = 41 // IPv6 in IP
	ProtoGRE  = 47

	udpHdrLen      = 8
	gueHdrLen      = 4
	gueRemCsumLen  = 8 // private flags (4) and the remote checksum option (4)
	gueFlagPriv    = 0x0001
	guePFlagRemCsm = 0x80000000
	greHdrLen      = 4
	greCsumLen     = 4 // checksum and reserved1
	greFlagCsum    = 0x8000

	// GUE source ports come from the local port range the kernel's
	// udp_flow_src_port uses by default (net.ipv4.ip_local_port_range
	// 32768 60999).
	flowPortMin = 32768
	flowPortMax = 60999

	ecnMask = 0x03
	ecnCE   = 0x03
	ecnECT0 = 0x02
)

// Encap describes the outer headers of a tunnelled datagram.
type Encap struct {
	Type EncapType
	// Csum: a GUE tunnel computes the outer UDP checksum (--tun-csum,
	// --tun-remcsum; else it is 0, also over IPv6, as the kernel sends it),
	// a GRE tunnel carries the GRE checksum (--tun-csum).
	Csum bool
	// RemCsum adds GUE's remote checksum offload option when the inner
	// datagram's L4 checksum is partial (Encapsulate's partial argument):
	// the receiver completes it (--tun-remcsum). Only with Csum.
	RemCsum bool
	// Src and Dst are the outer addresses: the director's and the real
	// server's. Their family may differ from the inner datagram's.
	Src, Dst netip.Addr
	// Port is GUE's UDP destination port; SrcPort its source port, which
	// spreads flows (FlowPort).
	Port, SrcPort uint16
	// ID is the outer IPv4 identification.
	ID uint16
	// CopyDF sets the outer IPv4 DF from an inner IPv4 datagram's
	// (ip_vs_tunnel_xmit with sysctl pmtu_disc); an inner IPv6 datagram,
	// or pmtu_disc off, gives an outer header without DF.
	CopyDF bool
}

// Len returns how many bytes Encapsulate puts in front of the inner
// datagram: the outer IP header, and the UDP and GUE headers (with the
// remote checksum option when partial) or the GRE header.
func (e *Encap) Len(partial bool) int {
	n := ipv4MinHeaderLen
	if e.Dst.Is6() {
		n = ipv6HeaderLen
	}
	switch e.Type {
	case EncapGUE:
		n += udpHdrLen + gueHdrLen
		if e.RemCsum && partial {
			n += gueRemCsumLen
		}
	case EncapGRE:
		n += greHdrLen
		if e.Csum {
			n += greCsumLen
		}
	}
	return n
}

// FlowPort maps a flow hash to a GUE source port as udp_flow_src_port does:
// scaled into the local port range.
func FlowPort(hash uint32) uint16 {
	return uint16(uint64(hash)*(flowPortMax-flowPortMin)>>32 + flowPortMin)
}

// Grow returns frame grown by n bytes at its front into room, the bytes of
// its buffer before it (room's capacity runs over frame: frame is
// room[len(room):len(room)+len(frame)]), and the room left. It reports
// false, changing nothing, when the room is too small or frame does not
// follow room.
func Grow(room, frame []byte, n int) (grown, left []byte, ok bool) {
	h := len(room)
	if n < 0 || n > h || cap(room)-h < len(frame) {
		return frame, room, false
	}
	full := room[:h+len(frame)]
	if len(frame) > 0 && &full[h] != &frame[0] {
		return frame, room, false
	}
	return room[h-n : h+len(frame) : cap(room)], room[:h-n], true
}

// Encapsulate puts the outer headers e describes in front of the IP
// datagram p decoded from frame, growing the frame into room (see Grow):
// the link header moves to the new front, its network protocol is set to
// the outer family, link-layer padding after the datagram is dropped, and
// the datagram itself is left as it is. partial says that the inner L4
// checksum is partial (it holds only the pseudo-header sum, to be completed
// by offload): with e.RemCsum the GUE header then carries the remote
// checksum offload option and the receiver completes it, as the kernel
// does for a CHECKSUM_PARTIAL packet.
//
// Checksums: the outer IPv4 header's is computed in full; a GUE tunnel's UDP
// checksum (e.Csum) and a GRE checksum cover the whole encapsulated
// datagram, as the kernel computes them for a packet without checksum
// offload. The outer TTL or hop limit is the inner one, the outer TOS or
// traffic class the inner one with CE mapped to ECT(0)
// (INET_ECN_encapsulate), the IPv6 flow label 0.
//
// It returns the encapsulated frame and the room left, or false (frame and
// room unchanged) when p does not hold a decode of frame that can be
// encapsulated (an IP datagram: ReasonOK, ReasonNonFirstFragment, or
// ReasonUnsupportedProto such as ICMP; on an Ethernet, SLL, SLL2, NULL or
// raw link, not PPPoE), the outer addresses are not of one family, or the
// room is too small. It does not allocate. It is Header and
// EncapsulateHeader in one; a sender that encapsulates many datagrams alike
// prepares the Header once.
func (p *Parsed) Encapsulate(room, frame []byte, e *Encap, partial bool) (out, left []byte, ok bool) {
	h := e.Header()
	return p.EncapsulateHeader(room, frame, &h, e.ID, e.SrcPort, partial)
}

// maxEncapLen is the longest encapsulation: IPv6, UDP, GUE with the remote
// checksum offload option.
const maxEncapLen = ipv6HeaderLen + udpHdrLen + gueHdrLen + gueRemCsumLen

// EncapHeader is an Encap prepared for many datagrams (Encap.Header): its
// outer headers with every field that does not depend on the datagram
// filled in, and the checksum sums of those fields.
type EncapHeader struct {
	b       [maxEncapLen]byte
	n       int // octets without the remote checksum offload option
	hl      int // outer IP header: 20 or 40
	typ     EncapType
	csum    bool
	remcsum bool
	copyDF  bool
	outer6  bool
	ok      bool
	sum     uint64 // IPv4: the unfolded sum of the constant header words
	pseudo  uint64 // GUE checksum: the pseudo-header's addresses and protocol
	port    uint16 // GUE's destination port
}

// Outer6 reports whether the outer header is IPv6.
func (h *EncapHeader) Outer6() bool { return h.outer6 }

// Len returns how many octets EncapsulateHeader puts in front (see
// Encap.Len).
func (h *EncapHeader) Len(partial bool) int {
	if h.remcsum && partial {
		return h.n + gueRemCsumLen
	}
	return h.n
}

// Header prepares e's outer headers (see EncapHeader). The ID and SrcPort
// are the datagram's, given to EncapsulateHeader.
func (e *Encap) Header() EncapHeader {
	h := EncapHeader{typ: e.Type, csum: e.Csum, remcsum: e.Type == EncapGUE && e.RemCsum, copyDF: e.CopyDF, outer6: e.Dst.Is6(),
		ok: e.Src.IsValid() && e.Src.Is4() == e.Dst.Is4() && !e.Src.Is4In6() && !e.Dst.Is4In6()}
	if !h.ok {
		return h
	}
	h.n = e.Len(false)
	h.hl = ipv4MinHeaderLen
	ip := h.b[:]
	if h.outer6 {
		h.hl = ipv6HeaderLen
		s, d := e.Src.As16(), e.Dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		h.pseudo = words(ip[8:40]) + ProtoUDP
	} else {
		ip[0] = 0x45
		s, d := e.Src.As4(), e.Dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		h.sum = words(ip[12:20]) + 0x4500
		h.pseudo = words(ip[12:20]) + ProtoUDP
	}
	switch e.Type {
	case EncapGUE:
		binary.BigEndian.PutUint16(ip[h.hl+2:], e.Port)
		h.port = e.Port
	case EncapGRE:
		if e.Csum {
			binary.BigEndian.PutUint16(ip[h.hl:], greFlagCsum)
		}
	}
	return h
}

// EncapsulateHeader is Encapsulate with the outer headers prepared by
// Encap.Header, id the outer IPv4 identification and sport GUE's source
// port. It writes the prepared headers and the datagram's own fields
// (lengths, TOS, TTL, DF, protocols, checksums) and allocates nothing.
func (p *Parsed) EncapsulateHeader(room, frame []byte, h *EncapHeader, id, sport uint16, partial bool) (out, left []byte, ok bool) {
	// Every link type that decodes is rewritable (setLinkProto).
	if !h.ok || p.End > len(frame) || p.PPPoE ||
		(p.Reason != ReasonOK && p.Reason != ReasonNonFirstFragment && p.Reason != ReasonUnsupportedProto) {
		return frame, room, false
	}
	n := h.n
	remcsum := false
	if h.remcsum && partial && p.L4Off != 0 && (p.Proto == ProtoUDP || p.Proto == ProtoTCP) {
		remcsum = true
		n += gueRemCsumLen
	}
	// Grow, inline: the frame must follow room in one buffer.
	r := len(room)
	if n > r || cap(room)-r < p.End || p.End == 0 || &room[:r+1][r] != &frame[0] {
		return frame, room, false
	}
	grown, left := room[r-n:r+p.End:cap(room)], room[:r-n]
	inner := grown[n+p.L3Off:]
	l3 := p.L3Off
	if p.Link == LinkEthernet && l3 == ethHeaderLen {
		// The common case, with fixed-size copies: the header moves at
		// least 20 octets forward, so the two do not overlap.
		*(*[ethHeaderLen]byte)(grown) = *(*[ethHeaderLen]byte)(frame)
		et := uint16(EtherTypeIPv4)
		if h.outer6 {
			et = EtherTypeIPv6
		}
		binary.BigEndian.PutUint16(grown[12:], et)
	} else {
		copy(grown[:l3], frame[:l3]) // the link header, n octets forward (memmove)
		setLinkProto(grown, p.Link, l3, h.outer6)
	}
	ip := grown[l3 : l3+n : l3+n]
	// Fixed-size copies for IPIP, GRE and GUE over IPv4 (a call to memmove
	// costs more than the copy).
	switch n {
	case ipv4MinHeaderLen:
		*(*[ipv4MinHeaderLen]byte)(ip) = *(*[ipv4MinHeaderLen]byte)(h.b[:])
	case ipv4MinHeaderLen + greHdrLen:
		*(*[ipv4MinHeaderLen + greHdrLen]byte)(ip) = *(*[ipv4MinHeaderLen + greHdrLen]byte)(h.b[:])
	case ipv4MinHeaderLen + udpHdrLen + gueHdrLen:
		// Four words: the compiler copies a 32-octet array with memmove.
		b := ip[:32]
		binary.LittleEndian.PutUint64(b[0:], binary.LittleEndian.Uint64(h.b[0:]))
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(h.b[8:]))
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(h.b[16:]))
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(h.b[24:]))
	default:
		copy(ip, h.b[:n])
	}
	// Inner fields the outer header copies.
	var tos uint8
	df := false
	innerProto := uint8(ProtoIPIP)
	if p.Version == 6 {
		tos = inner[0]<<4 | inner[1]>>4
		innerProto = ProtoIPv6
	} else {
		tos = inner[1]
		df = p.DF && h.copyDF
	}
	if tos&ecnMask == ecnCE {
		tos = tos&^ecnMask | ecnECT0
	}
	hl := h.hl
	total := n + len(inner)
	next := innerProto
	switch h.typ {
	case EncapGUE:
		next = ProtoUDP
		u := ip[hl:]
		// Source port, destination port, length and a zero checksum in
		// one word (the checksum follows below when there is one).
		binary.BigEndian.PutUint64(u[0:], uint64(sport)<<48|uint64(h.port)<<32|uint64(total-hl)<<16)
		u[udpHdrLen+1] = innerProto
		if remcsum {
			g := u[udpHdrLen:]
			g[0] = gueRemCsumLen / 4
			binary.BigEndian.PutUint16(g[2:], gueFlagPriv)
			binary.BigEndian.PutUint32(g[4:], guePFlagRemCsm)
			start := p.L4Off - p.L3Off
			field := start + udpChecksumOff
			if p.Proto == ProtoTCP {
				field = start + tcpChecksumOff
			}
			binary.BigEndian.PutUint16(g[8:], uint16(start))
			binary.BigEndian.PutUint16(g[10:], uint16(field))
		}
	case EncapGRE:
		next = ProtoGRE
		g := ip[hl:]
		if p.Version == 6 {
			binary.BigEndian.PutUint16(g[2:], EtherTypeIPv6)
		} else {
			binary.BigEndian.PutUint16(g[2:], EtherTypeIPv4)
		}
		if h.csum {
			c := ^fold(uint64(sum16(g[:greHdrLen+greCsumLen])) + uint64(sum16(inner)))
			binary.BigEndian.PutUint16(g[4:], c)
		}
	}
	if h.outer6 {
		binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(tos)<<20)
		binary.BigEndian.PutUint16(ip[4:], uint16(total-ipv6HeaderLen))
		ip[6] = next
		ip[7] = p.TTL
	} else {
		var frag uint16
		if df {
			frag = ipv4FlagDF
		}
		c := ^fold(h.sum + uint64(tos) + uint64(total) + uint64(id) + uint64(frag) + uint64(p.TTL)<<8 + uint64(next))
		// Version and IHL, TOS, total length, identification, flags and
		// fragment offset in one word; TTL, protocol and checksum in another.
		binary.BigEndian.PutUint64(ip[0:], 0x45<<56|uint64(tos)<<48|uint64(total)<<32|uint64(id)<<16|uint64(frag))
		binary.BigEndian.PutUint32(ip[8:], uint32(p.TTL)<<24|uint32(next)<<16|uint32(c))
	}
	if h.typ == EncapGUE && h.csum {
		u := ip[hl:]
		l := total - hl
		seg := uint64(sum16(u)) + uint64(sum16(inner))
		c := ^fold(seg + h.pseudo + uint64(l>>16) + uint64(l&0xFFFF))
		if c == 0 {
			c = 0xFFFF // RFC 768: 0 means "no checksum"
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
	return grown, left, true
}

// pseudoSum returns the unfolded sum of the pseudo-header of the IP header
// ip (RFC 768, RFC 8200 §8.1) for a segment of length n.
func pseudoSum(ip []byte, v6 bool, proto uint8, n int) uint64 {
	if v6 {
		return words(ip[8:40]) + uint64(n>>16) + uint64(n&0xFFFF) + uint64(proto)
	}
	return words(ip[12:20]) + uint64(n) + uint64(proto)
}

// linkRewritable reports whether setLinkProto can rewrite a link's network
// protocol.
func linkRewritable(link LinkType) bool {
	switch link {
	case LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkNull, LinkRaw:
		return true
	}
	return false
}

// setLinkProto writes the network protocol of a link header of length l3
// (the EtherType, the SLL protocol, the NULL address family); a raw link has
// none. The link must be one linkRewritable accepts.
func setLinkProto(b []byte, link LinkType, l3 int, v6 bool) {
	et := uint16(EtherTypeIPv4)
	if v6 {
		et = EtherTypeIPv6
	}
	switch link {
	case LinkEthernet, LinkLinuxSLL:
		binary.BigEndian.PutUint16(b[l3-2:], et) // the innermost EtherType, after any VLAN tags
	case LinkLinuxSLL2:
		binary.BigEndian.PutUint16(b[0:], et)
	case LinkNull:
		af := uint32(afInet)
		if v6 {
			af = afInet6BSD
		}
		if binary.LittleEndian.Uint32(b) > nullAFByteSwapped {
			binary.BigEndian.PutUint32(b, af)
		} else {
			binary.LittleEndian.PutUint32(b, af)
		}
	}
}
