package packet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Limits of the decoder. Each bounds a loop over attacker-controlled input.
const (
	// MaxVLANs is the number of VLAN tags decoded: an 802.1ad service tag
	// and an 802.1Q customer tag (QinQ). Deeper stacks are not used on the
	// networks a SIP farm sits in, so a third tag is a ReasonTooManyVLANs.
	MaxVLANs = 2
	// MaxIPv6ExtHeaders bounds the IPv6 extension-header walk. RFC 8200 §4.1
	// allows each header once (destination options twice): hop-by-hop,
	// destination options, routing, fragment, destination options makes 5;
	// 8 leaves room for AH-free oddities while stopping crafted chains.
	MaxIPv6ExtHeaders = 8
)

// Header sizes and protocol numbers.
const (
	ethHeaderLen     = 14
	vlanTagLen       = 4
	sllHeaderLen     = 16
	sll2HeaderLen    = 20
	nullHeaderLen    = 4
	ipv4MinHeaderLen = 20
	ipv6HeaderLen    = 40
	ipv6ExtUnit      = 8 // extension header lengths count 8-octet units
	udpHeaderLen     = 8
	tcpMinHeaderLen  = 20

	EtherTypeIPv4     = 0x0800
	EtherTypeIPv6     = 0x86DD
	EtherTypeVLAN     = 0x8100 // 802.1Q customer tag
	EtherTypeQinQ     = 0x88A8 // 802.1ad service tag
	etherTypeQinQOld  = 0x9100 // pre-standard QinQ, still sent by some switches
	ProtoTCP          = 6
	ProtoUDP          = 17
	protoHopByHop     = 0
	protoRouting      = 43
	protoFragment     = 44
	protoDestOpts     = 60
	afInet            = 2  // AF_INET everywhere
	afInet6BSD        = 24 // AF_INET6 on NetBSD/OpenBSD
	afInet6FreeBSD    = 28 // AF_INET6 on FreeBSD
	afInet6Darwin     = 30 // AF_INET6 on macOS
	ipv4FlagDF        = 0x4000
	ipv4FlagMF        = 0x2000
	ipv4FragOffMask   = 0x1FFF
	ipv6FragOffMask   = 0xFFF8
	ipv6FragMF        = 0x0001
	nullAFByteSwapped = 0xFFFF // an AF above this was written in the other byte order
)

// PPPoE session framing (RFC 2516), as on DSL access links: after the
// EtherType, a 6-octet PPPoE header and the PPP protocol field. The discovery
// stage (EtherType 0x8863) carries no IP and is a ReasonUnknownEtherType.
const (
	EtherTypePPPoESession = 0x8864
	PPPProtoIPv4          = 0x0021 // RFC 1332
	PPPProtoIPv6          = 0x0057 // RFC 5072
	pppoeHeaderLen        = 6      // version/type, code, session id, length
	pppoeVerType          = 0x11   // version 1, type 1: the only values RFC 2516 defines
	pppoeCodeSession      = 0x00   // session data; the other codes are discovery packets
	pppProtoLen           = 2      // uncompressed protocol field (see decodePPPoE)
)

// Parsed is a decoded frame: offsets into the frame and the header fields a
// load balancer decides on. Decode assigns every field, so one Parsed can be
// reused for every frame. The zero value is an undecoded frame.
type Parsed struct {
	Link    LinkType
	Reason  Reason    // the value Decode returned
	NumVLAN int       // VLAN tags present, at most MaxVLANs
	VLAN    [2]uint16 // tag control information (PCP, DEI, VID), outermost first

	EtherType uint16 // innermost EtherType (after the VLAN tags); EtherTypePPPoESession for PPPoE

	PPPoE        bool   // a PPPoE session header and PPP protocol field precede the IP header
	PPPoESession uint16 // PPPoE session id when PPPoE is set

	L3Off      int // start of the IP header
	L4Off      int // start of the UDP/TCP header; 0 when not reached or in a non-first fragment
	PayloadOff int // start of the L4 payload (of the fragment data in a non-first fragment); 0 when not reached
	End        int // end of the IP datagram in the frame; link-layer padding lies beyond it

	Version     uint8 // 4 or 6; 0 when no IP header was decoded
	Proto       uint8 // L4 protocol, after the IPv6 extension headers
	IPHeaderLen int   // IPv4 header length with options, IPv6 fixed header 40
	IPOptions   bool  // the IPv4 header carries options
	FragHdrOff  int   // offset of the IPv6 fragment header, 0 if none
	Src, Dst    netip.Addr
	SrcPort     uint16 // UDP/TCP; 0 when not present
	DstPort     uint16
	TTL         uint8 // TTL or hop limit

	Fragmented bool   // IPv4 MF or offset != 0, or an IPv6 fragment header present
	FragOff    uint16 // fragment offset in bytes
	MoreFrags  bool
	DF         bool   // IPv4 don't-fragment
	FragID     uint32 // IPv4 identification or IPv6 fragment identification

	TCPFlags uint8 // CWR ECE URG ACK PSH RST SYN FIN
}

// Decode decodes frame, framed as link, into p and returns ReasonOK or the
// first check the frame failed. It resets p entirely first (gopacket's
// DecodingLayer contract), keeps no reference to frame, does not allocate and
// does not panic on any input.
func (p *Parsed) Decode(frame []byte, link LinkType) Reason {
	*p = Parsed{Link: link}
	r := p.decode(frame)
	p.Reason = r
	return r
}

func (p *Parsed) decode(b []byte) Reason {
	var off int
	var et uint16
	switch p.Link {
	case LinkEthernet:
		if len(b) < ethHeaderLen {
			return ReasonTruncated
		}
		et, off = be16(b[12:]), ethHeaderLen
	case LinkLinuxSLL:
		if len(b) < sllHeaderLen {
			return ReasonTruncated
		}
		et, off = be16(b[14:]), sllHeaderLen
	case LinkLinuxSLL2:
		if len(b) < sll2HeaderLen {
			return ReasonTruncated
		}
		et, off = be16(b[0:]), sll2HeaderLen
	case LinkNull:
		if len(b) < nullHeaderLen {
			return ReasonTruncated
		}
		// Host byte order of the capturing machine (network order for
		// DLT_LOOP): the family is small, so a big value is swapped.
		af := binary.LittleEndian.Uint32(b)
		if af > nullAFByteSwapped {
			af = bits.ReverseBytes32(af)
		}
		switch af {
		case afInet:
			et = EtherTypeIPv4
		case afInet6BSD, afInet6FreeBSD, afInet6Darwin:
			et = EtherTypeIPv6
		default:
			return ReasonUnknownAddressFamily
		}
		off = nullHeaderLen
	case LinkRaw:
		if len(b) < 1 {
			return ReasonTruncated
		}
		switch b[0] >> 4 {
		case 4:
			et = EtherTypeIPv4
		case 6:
			et = EtherTypeIPv6
		default:
			return ReasonBadIPVersion
		}
	default:
		return ReasonBadLinkType
	}
	for et == EtherTypeVLAN || et == EtherTypeQinQ || et == etherTypeQinQOld {
		if p.NumVLAN == MaxVLANs {
			return ReasonTooManyVLANs
		}
		if len(b) < off+vlanTagLen {
			return ReasonTruncated
		}
		p.VLAN[p.NumVLAN] = be16(b[off:])
		p.NumVLAN++
		et = be16(b[off+2:])
		off += vlanTagLen
	}
	p.EtherType = et
	p.L3Off = off
	if et == EtherTypePPPoESession {
		var r Reason
		if b, et, r = p.decodePPPoE(b); r != ReasonOK {
			return r
		}
	}
	switch et {
	case EtherTypeIPv4:
		return p.decodeIPv4(b)
	case EtherTypeIPv6:
		return p.decodeIPv6(b)
	}
	return ReasonUnknownEtherType
}

// decodePPPoE steps over the PPPoE session header and PPP protocol field at
// p.L3Off. It returns the frame cut at the end of the PPPoE payload, so that
// the IP lengths are checked against the PPPoE length and the Ethernet padding
// of a short frame stays outside, and the EtherType of the PPP protocol.
//
// The protocol field must be uncompressed: RFC 2516 §7 does not recommend
// protocol-field compression on PPPoE, and none of the frames of a real DSL
// capture use it. A compressed field (one odd octet, 0x21 for IPv4) reads as
// an unknown protocol, like LCP, IPCP and the other PPP control protocols:
// ReasonUnknownEtherType, the not-IP reason, so they go where non-IP traffic
// goes rather than being counted as malformed.
func (p *Parsed) decodePPPoE(b []byte) ([]byte, uint16, Reason) {
	off := p.L3Off
	if len(b) < off+pppoeHeaderLen+pppProtoLen {
		return b, 0, ReasonTruncated
	}
	h := b[off:]
	n := int(be16(h[4:])) // PPP protocol field and payload
	if h[0] != pppoeVerType || h[1] != pppoeCodeSession || n < pppProtoLen || n > len(h)-pppoeHeaderLen {
		return b, 0, ReasonBadPPPoE
	}
	p.PPPoE = true
	p.PPPoESession = be16(h[2:])
	p.L3Off = off + pppoeHeaderLen + pppProtoLen
	b = b[:off+pppoeHeaderLen+n]
	switch be16(h[pppoeHeaderLen:]) {
	case PPPProtoIPv4:
		return b, EtherTypeIPv4, ReasonOK
	case PPPProtoIPv6:
		return b, EtherTypeIPv6, ReasonOK
	}
	return b, 0, ReasonUnknownEtherType
}

func (p *Parsed) decodeIPv4(b []byte) Reason {
	off := p.L3Off
	if len(b) < off+ipv4MinHeaderLen {
		return ReasonTruncated
	}
	h := b[off:]
	if h[0]>>4 != 4 {
		return ReasonBadIPVersion
	}
	ihl := int(h[0]&0x0F) * 4
	if ihl < ipv4MinHeaderLen {
		return ReasonBadIHL
	}
	if len(h) < ihl {
		return ReasonTruncated
	}
	total := int(be16(h[2:]))
	if total < ihl || total > len(h) {
		return ReasonBadTotalLength
	}
	p.Version = 4
	p.IPHeaderLen = ihl
	p.IPOptions = ihl > ipv4MinHeaderLen
	p.TTL = h[8]
	p.Proto = h[9]
	p.Src = netip.AddrFrom4([4]byte(h[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(h[16:20]))
	p.End = off + total
	frag := be16(h[6:])
	p.FragID = uint32(be16(h[4:]))
	p.DF = frag&ipv4FlagDF != 0
	p.MoreFrags = frag&ipv4FlagMF != 0
	p.FragOff = (frag & ipv4FragOffMask) * 8
	p.Fragmented = p.MoreFrags || p.FragOff != 0
	if p.FragOff != 0 {
		p.PayloadOff = off + ihl
		return ReasonNonFirstFragment
	}
	return p.decodeL4(b, off+ihl)
}

func (p *Parsed) decodeIPv6(b []byte) Reason {
	off := p.L3Off
	if len(b) < off+ipv6HeaderLen {
		return ReasonTruncated
	}
	h := b[off:]
	if h[0]>>4 != 6 {
		return ReasonBadIPVersion
	}
	plen := int(be16(h[4:]))
	// A payload length of 0 announces a jumbogram (RFC 2675), which cannot
	// cross an Ethernet link; treat it as a bad length.
	if plen == 0 || off+ipv6HeaderLen+plen > len(b) {
		return ReasonBadTotalLength
	}
	p.Version = 6
	p.IPHeaderLen = ipv6HeaderLen
	p.TTL = h[7]
	p.Src = netip.AddrFrom16([16]byte(h[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(h[24:40]))
	p.End = off + ipv6HeaderLen + plen
	next := h[6]
	pos := off + ipv6HeaderLen
	for n := 0; ; n++ {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts, protoFragment:
		default:
			p.Proto = next
			return p.decodeL4(b, pos)
		}
		// RFC 8200 §4.1: hop-by-hop only directly after the IPv6 header.
		if n == MaxIPv6ExtHeaders || (next == protoHopByHop && n != 0) || pos+ipv6ExtUnit > p.End {
			return ReasonBadExtHeader
		}
		if next == protoFragment {
			if p.FragHdrOff != 0 {
				return ReasonBadExtHeader
			}
			p.FragHdrOff = pos
			fo := be16(b[pos+2:])
			p.Fragmented = true
			p.FragOff = fo & ipv6FragOffMask
			p.MoreFrags = fo&ipv6FragMF != 0
			p.FragID = be32(b[pos+4:])
			next = b[pos]
			pos += ipv6ExtUnit
			if p.FragOff != 0 {
				p.Proto = next
				p.PayloadOff = pos
				return ReasonNonFirstFragment
			}
			continue
		}
		l := (int(b[pos+1]) + 1) * ipv6ExtUnit
		if pos+l > p.End {
			return ReasonBadExtHeader
		}
		next = b[pos]
		pos += l
	}
}

func (p *Parsed) decodeL4(b []byte, l4 int) Reason {
	p.L4Off = l4
	avail := p.End - l4
	switch p.Proto {
	case ProtoUDP:
		if avail < udpHeaderLen {
			return ReasonBadUDPLength
		}
		ulen := int(be16(b[l4+4:]))
		// Unfragmented: the UDP length must be the IP payload. First
		// fragment: the datagram is at least as long as this fragment.
		if ulen < udpHeaderLen || (!p.Fragmented && ulen != avail) || (p.Fragmented && ulen < avail) {
			return ReasonBadUDPLength
		}
		p.PayloadOff = l4 + udpHeaderLen
	case ProtoTCP:
		if avail < tcpMinHeaderLen {
			return ReasonBadTCPOffset
		}
		doff := int(b[l4+12]>>4) * 4
		if doff < tcpMinHeaderLen || doff > avail {
			return ReasonBadTCPOffset
		}
		p.TCPFlags = b[l4+13]
		p.PayloadOff = l4 + doff
	default:
		return ReasonUnsupportedProto
	}
	p.SrcPort = be16(b[l4:])
	p.DstPort = be16(b[l4+2:])
	return ReasonOK
}

// Payload returns the L4 payload, frame[p.PayloadOff:p.End] (the fragment
// data of a non-first fragment), or nil when it was not reached. frame must be
// the frame decoded into p; the result aliases it.
func (p *Parsed) Payload(frame []byte) []byte {
	if p.PayloadOff == 0 || p.End > len(frame) || p.PayloadOff > p.End {
		return nil
	}
	return frame[p.PayloadOff:p.End]
}

// IsFirstFragment reports whether the packet carries the L4 header: it is
// not fragmented, or it is the fragment at offset 0.
func (p *Parsed) IsFirstFragment() bool { return !p.Fragmented || p.FragOff == 0 }

// SrcAddrPort returns the source address and port (port 0 without ports).
func (p *Parsed) SrcAddrPort() netip.AddrPort { return netip.AddrPortFrom(p.Src, p.SrcPort) }

// DstAddrPort returns the destination address and port (port 0 without ports).
func (p *Parsed) DstAddrPort() netip.AddrPort { return netip.AddrPortFrom(p.Dst, p.DstPort) }

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
