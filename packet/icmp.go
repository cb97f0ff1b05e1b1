package packet

import (
	"encoding/binary"
	"net/netip"
)

// ICMP protocol numbers and the error messages a load balancer acts on.
const (
	ProtoICMP   = 1
	ProtoICMPv6 = 58

	ICMPv4DestUnreachable = 3 // type; code ICMPv4FragNeeded is path-MTU discovery (RFC 1191)
	ICMPv4FragNeeded      = 4
	ICMPv4TimeExceeded    = 11
	ICMPv4ParamProblem    = 12
	ICMPv6DestUnreachable = 1
	ICMPv6PacketTooBig    = 2 // path-MTU discovery (RFC 8201)
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4

	icmpHeaderLen = 8
)

// ICMPError is an ICMP error message: its type and code, the MTU a
// "fragmentation needed" or "packet too big" reports, and the fields of the
// datagram it quotes (the "inner" datagram: its IP header and as much of the
// rest as the sender included, at least 8 octets for IPv4, RFC 792). Offsets
// are into the frame, like Parsed's.
type ICMPError struct {
	Type, Code uint8
	MTU        uint32 // next-hop MTU (ICMPv4 type 3 code 4) or MTU (ICMPv6 type 2)

	Version     uint8 // of the inner datagram, the outer one's
	Proto       uint8 // inner L4 protocol, after IPv6 extension headers
	Src, Dst    netip.Addr
	SrcPort     uint16 // inner ports, 0 when not quoted (or a non-first fragment)
	DstPort     uint16
	HasPorts    bool
	FragID      uint32 // inner IPv4 identification or IPv6 fragment identification
	FragOff     uint16
	Fragmented  bool
	InnerOff    int // inner IP header
	InnerHdrLen int // inner IPv4 header length, or the IPv6 header and extension headers
	InnerL4Off  int // inner L4 header, 0 when not quoted or a non-first fragment
	End         int // end of the ICMP message (the outer datagram's end)
}

// DecodeICMPError decodes the ICMP error message of a frame that p decoded to
// ReasonUnsupportedProto with protocol ICMP (IPv4) or ICMPv6 (IPv6). It
// reports false, leaving e partly set, for other frames, ICMP messages that
// are not errors, and quotes too short to hold the inner IP header. It does
// not allocate and does not verify checksums.
func (e *ICMPError) DecodeICMPError(frame []byte, p *Parsed) bool {
	*e = ICMPError{}
	if p.Reason != ReasonUnsupportedProto || p.L4Off == 0 || p.End > len(frame) || p.End-p.L4Off < icmpHeaderLen {
		return false
	}
	h := frame[p.L4Off:p.End]
	e.Type, e.Code = h[0], h[1]
	e.End = p.End
	switch {
	case p.Version == 4 && p.Proto == ProtoICMP:
		switch e.Type {
		case ICMPv4DestUnreachable, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		default:
			return false
		}
		if e.Type == ICMPv4DestUnreachable && e.Code == ICMPv4FragNeeded {
			e.MTU = uint32(be16(h[6:]))
		}
	case p.Version == 6 && p.Proto == ProtoICMPv6:
		if e.Type < ICMPv6DestUnreachable || e.Type > ICMPv6ParamProblem {
			return false
		}
		if e.Type == ICMPv6PacketTooBig {
			e.MTU = be32(h[4:])
		}
	default:
		return false
	}
	e.InnerOff = p.L4Off + icmpHeaderLen
	in := frame[e.InnerOff:p.End]
	var l4 int
	if p.Version == 4 {
		if len(in) < ipv4MinHeaderLen || in[0]>>4 != 4 {
			return false
		}
		ihl := int(in[0]&0x0F) * 4
		if ihl < ipv4MinHeaderLen || ihl > len(in) {
			return false
		}
		e.Version, e.InnerHdrLen = 4, ihl
		e.Proto = in[9]
		e.Src = netip.AddrFrom4([4]byte(in[12:16]))
		e.Dst = netip.AddrFrom4([4]byte(in[16:20]))
		e.FragID = uint32(be16(in[4:]))
		frag := be16(in[6:])
		e.FragOff = (frag & ipv4FragOffMask) * 8
		e.Fragmented = frag&ipv4FlagMF != 0 || e.FragOff != 0
		l4 = ihl
	} else {
		if len(in) < ipv6HeaderLen || in[0]>>4 != 6 {
			return false
		}
		e.Version = 6
		e.Src = netip.AddrFrom16([16]byte(in[8:24]))
		e.Dst = netip.AddrFrom16([16]byte(in[24:40]))
		next, pos := in[6], ipv6HeaderLen
		for n := 0; ; n++ {
			if next != protoHopByHop && next != protoRouting && next != protoDestOpts && next != protoFragment {
				break
			}
			if n == MaxIPv6ExtHeaders || pos+ipv6ExtUnit > len(in) {
				return false
			}
			l := (int(in[pos+1]) + 1) * ipv6ExtUnit
			if next == protoFragment {
				l = ipv6ExtUnit
				fo := be16(in[pos+2:])
				e.Fragmented = true
				e.FragOff = fo & ipv6FragOffMask
				e.FragID = be32(in[pos+4:])
			}
			if pos+l > len(in) {
				return false
			}
			next = in[pos]
			pos += l
		}
		e.Proto, e.InnerHdrLen = next, pos
		l4 = pos
	}
	if e.FragOff == 0 && (e.Proto == ProtoUDP || e.Proto == ProtoTCP) && len(in)-l4 >= 4 {
		e.InnerL4Off = e.InnerOff + l4
		e.SrcPort = be16(in[l4:])
		e.DstPort = be16(in[l4+2:])
		e.HasPorts = true
	}
	return true
}

// InnerPayload returns the quoted part of the inner datagram's UDP payload
// (nil when none is quoted): what an engine may find a key in.
func (e *ICMPError) InnerPayload(frame []byte) []byte {
	if e.InnerL4Off == 0 || e.Proto != ProtoUDP || e.InnerL4Off+udpHeaderLen >= e.End || e.End > len(frame) {
		return nil
	}
	return frame[e.InnerL4Off+udpHeaderLen : e.End]
}

// RewriteToReal rewrites, in place, an ICMP error about a datagram the
// balancer translated, so that it reaches the real server that sent it: the
// outer destination becomes outerDst and the quoted source becomes
// innerSrc:innerSrcPort (the port only when quoted). It updates the outer
// IPv4 header checksum, the quoted IPv4 header checksum and the quoted
// UDP/TCP checksum incrementally (when quoted; a UDP checksum of 0 stays 0),
// and recomputes the ICMP checksum over the message (with the IPv6
// pseudo-header for ICMPv6), and updates p and e to match. It returns false,
// changing nothing, when the addresses are not of the datagram's family or e
// does not describe frame.
func (e *ICMPError) RewriteToReal(frame []byte, p *Parsed, outerDst, innerSrc netip.Addr, innerSrcPort uint16) bool {
	if e.InnerOff == 0 || e.End != p.End || p.End > len(frame) || e.Version != p.Version {
		return false
	}
	if (p.Version == 4) != (outerDst.Is4() && innerSrc.Is4()) || (p.Version == 6) != (outerDst.Is6() && innerSrc.Is6()) {
		return false
	}
	// Outer destination.
	if p.Version == 4 {
		f := frame[p.L3Off+16 : p.L3Off+20]
		a := outerDst.As4()
		d := replace(f, a[:])
		copy(f, a[:])
		c := frame[p.L3Off+ipv4ChecksumOff:]
		binary.BigEndian.PutUint16(c, update(be16(c), d))
	} else {
		a := outerDst.As16()
		copy(frame[p.L3Off+24:p.L3Off+40], a[:])
	}
	p.Dst = outerDst
	// Quoted source address, and the quoted checksums covering it.
	var d uint64
	if e.Version == 4 {
		f := frame[e.InnerOff+12 : e.InnerOff+16]
		a := innerSrc.As4()
		d = replace(f, a[:])
		copy(f, a[:])
		c := frame[e.InnerOff+ipv4ChecksumOff:]
		binary.BigEndian.PutUint16(c, update(be16(c), d))
	} else {
		f := frame[e.InnerOff+8 : e.InnerOff+24]
		a := innerSrc.As16()
		d = replace(f, a[:])
		copy(f, a[:])
	}
	e.Src = innerSrc
	if e.HasPorts {
		old := be16(frame[e.InnerL4Off:])
		binary.BigEndian.PutUint16(frame[e.InnerL4Off:], innerSrcPort)
		e.SrcPort = innerSrcPort
		d += 0xFFFF - uint64(old) + uint64(innerSrcPort)
		switch {
		case e.Proto == ProtoUDP && e.InnerL4Off+udpChecksumOff+2 <= e.End:
			c := frame[e.InnerL4Off+udpChecksumOff:]
			if hc := be16(c); hc != 0 {
				if hc = update(hc, d); hc == 0 {
					hc = 0xFFFF
				}
				binary.BigEndian.PutUint16(c, hc)
			}
		case e.Proto == ProtoTCP && e.InnerL4Off+tcpChecksumOff+2 <= e.End:
			c := frame[e.InnerL4Off+tcpChecksumOff:]
			binary.BigEndian.PutUint16(c, update(be16(c), d))
		}
	}
	e.setChecksum(frame, p)
	return true
}

// setChecksum recomputes the ICMP checksum of the message.
func (e *ICMPError) setChecksum(frame []byte, p *Parsed) {
	msg := frame[p.L4Off:p.End]
	msg[2], msg[3] = 0, 0
	var c uint16
	if p.Version == 4 {
		c = Checksum(msg)
	} else {
		c = ^fold(p.pseudoSum(frame, len(msg)) + uint64(sum16(msg)))
	}
	binary.BigEndian.PutUint16(msg[2:], c)
}

// VerifyICMPChecksum reports whether the ICMP message of a frame decoded into
// p and e has a valid checksum (for tests and replay).
func (e *ICMPError) VerifyICMPChecksum(frame []byte, p *Parsed) bool {
	if p.L4Off == 0 || p.End > len(frame) {
		return false
	}
	msg := frame[p.L4Off:p.End]
	if p.Version == 4 {
		return Checksum(msg) == 0
	}
	return fold(p.pseudoSum(frame, len(msg))+uint64(sum16(msg))) == 0xFFFF
}
