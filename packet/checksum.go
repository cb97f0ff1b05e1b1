package packet

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the RFC 1071 Internet checksum of b: the ones' complement
// of the ones' complement sum of its 16-bit big-endian words (an odd last byte
// padded with zero). A buffer that includes a correct checksum field sums to
// zero, so Checksum over it returns 0.
//
// It adds 64-bit little-endian words with carry, eight per iteration, and
// swaps the folded result once: the ones' complement sum is independent of
// byte order (RFC 1071 §2(B)), so no per-word byte swap is needed.
func Checksum(b []byte) uint16 { return ^sum16(b) }

// sum16 returns the folded (not complemented) ones' complement sum of b in
// network byte order.
func sum16(b []byte) uint16 {
	var s, c uint64
	for len(b) >= 64 {
		b = b[:len(b):len(b)]
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[0:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[32:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[40:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[48:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[56:]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.LittleEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.LittleEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		// The odd byte is the high byte of a big-endian word, which is
		// the low byte in the little-endian domain.
		s, c = bits.Add64(s, uint64(b[0]), c)
	}
	s, c = bits.Add64(s, 0, c)
	s += c // end-around carry; cannot carry again (s was 0 if c is 1)
	return bits.ReverseBytes16(fold(s))
}

// fold reduces a 64-bit ones' complement sum to 16 bits. It returns 0 only
// for a zero sum.
func fold(s uint64) uint16 {
	s = s&0xFFFFFFFF + s>>32
	s = s&0xFFFFFFFF + s>>32
	s = s&0xFFFF + s>>16
	s = s&0xFFFF + s>>16
	return uint16(s)
}

// replace returns the RFC 1624 eqn. 3 term ~m + m' for the 16-bit words of
// old replaced by those of new (equal even lengths): Σ(0xFFFF - old) + Σ new,
// left unfolded. For up to 16 words it stays below 2^22.
func replace(old, new []byte) uint64 {
	var d uint64
	for i := 0; i+3 < len(old); i += 4 {
		o, n := be32(old[i:]), be32(new[i:])
		d += 2*0xFFFF - uint64(o>>16) - uint64(o&0xFFFF) + uint64(n>>16) + uint64(n&0xFFFF)
	}
	return d
}

// update applies an unfolded replace term d (below 2^32 - 2^16) to the
// checksum field hc: HC' = ~(~HC + ~m + m'). A valid checksum (never 0xFFFF
// for IPv4 headers and TCP) stays the unique representative of its value.
func update(hc uint16, d uint64) uint16 {
	s := uint64(^hc) + d
	s = s&0xFFFF + s>>16
	s = s&0xFFFF + s>>16
	return ^uint16(s)
}

// words sums the big-endian 16-bit words of an even-length b.
func words(b []byte) uint64 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(be16(b[i:]))
	}
	return s
}

// VerifyChecksums recomputes the checksums of the decoded packet in frame: the
// IPv4 header checksum, and for an unfragmented UDP or TCP datagram the L4
// checksum over the pseudo-header and the whole segment. A UDP checksum of 0
// over IPv4 means "none" and is valid; over IPv6 it is invalid (RFC 8200
// §8.1). A fragment's L4 checksum covers the reassembled datagram, so for
// fragments only the IPv4 header is checked. It returns false for a frame that
// did not decode to ReasonOK or ReasonNonFirstFragment. It is meant for tests
// and replay, not for the per-packet path.
func (p *Parsed) VerifyChecksums(frame []byte) bool {
	if (p.Reason != ReasonOK && p.Reason != ReasonNonFirstFragment) || p.End > len(frame) {
		return false
	}
	if p.Version == 4 && Checksum(frame[p.L3Off:p.L3Off+p.IPHeaderLen]) != 0 {
		return false
	}
	if p.Fragmented || p.L4Off == 0 {
		return true
	}
	seg := frame[p.L4Off:p.End]
	if p.Proto == ProtoUDP && be16(seg[6:]) == 0 {
		return p.Version == 4
	}
	return fold(p.pseudoSum(frame, len(seg))+uint64(sum16(seg))) == 0xFFFF
}

// pseudoSum is the sum of the pseudo-header words for an L4 length.
func (p *Parsed) pseudoSum(frame []byte, l4len int) uint64 {
	var addrs []byte
	if p.Version == 4 {
		addrs = frame[p.L3Off+12 : p.L3Off+20]
	} else {
		addrs = frame[p.L3Off+8 : p.L3Off+40]
	}
	return words(addrs) + uint64(p.Proto) + uint64(l4len)&0xFFFF + uint64(l4len)>>16
}

// CompletePartialChecksum finishes a UDP or TCP checksum that the sender
// left to transmit checksum offload, and reports whether it did.
//
// A host that offloads the L4 checksum (CHECKSUM_PARTIAL: veth and most
// NICs by default) hands its driver a segment whose checksum field holds only
// the folded sum of the pseudo-header; the device adds the segment's sum.
// A frame that reaches the balancer that way — over veth, or from a host on
// the same machine — would leave with that partial value, and the real server
// or client would drop it. AF_XDP and packet sockets give no checksum status,
// so the field itself is the sign: it equals the pseudo-header sum. A
// complete checksum coincides with it once in 65 536 frames, and completing
// such a one yields the same value (a complete checksum C makes the whole
// segment sum to the complement of the pseudo-header sum, which is C), so a
// false positive costs one sum over the segment and changes nothing.
//
// It looks only at an unfragmented UDP or TCP packet (a fragmented datagram's
// checksum is computed before fragmentation) and leaves an IPv4 UDP checksum
// of 0 ("none") alone. It must run before any rewrite of the packet's
// addresses or ports: the incremental updates assume a complete checksum. It
// does not allocate; for a complete checksum it costs the pseudo-header sum
// (about ten additions).
func (p *Parsed) CompletePartialChecksum(frame []byte) bool {
	l4, end := p.L4Off, p.End
	if p.Reason != ReasonOK || p.Fragmented || l4 == 0 || end > len(frame) {
		return false
	}
	off := l4 + udpChecksumOff
	switch p.Proto {
	case ProtoUDP:
	case ProtoTCP:
		off = l4 + tcpChecksumOff
	default:
		return false
	}
	if off+2 > end {
		return false
	}
	field := be16(frame[off:])
	if field == 0 && p.Proto == ProtoUDP {
		return false // IPv4: no checksum; IPv6: invalid either way
	}
	if field != p.pseudoFold(frame, end-l4) {
		return false
	}
	// The field holds the pseudo-header sum, so the segment as it is sums
	// to pseudo-header + segment: its complement is the checksum.
	c := Checksum(frame[l4:end])
	if c == 0 && p.Proto == ProtoUDP {
		c = 0xFFFF // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(frame[off:], c)
	return true
}

// pseudoFold is the folded pseudo-header sum for an L4 length, summed a
// 64-bit word at a time (the addresses are 8 or 32 bytes, an IPv4 pair in
// one load): the per-frame check of CompletePartialChecksum.
func (p *Parsed) pseudoFold(frame []byte, l4len int) uint16 {
	if p.Version == 4 {
		// Two 32-bit addresses, the protocol and a length below 2^16:
		// no carry out of 64 bits.
		a := binary.BigEndian.Uint64(frame[p.L3Off+12:])
		return fold(a>>32 + a&0xFFFFFFFF + uint64(p.Proto) + uint64(l4len))
	}
	a := frame[p.L3Off+8 : p.L3Off+40 : p.L3Off+40]
	s, c := bits.Add64(binary.BigEndian.Uint64(a), binary.BigEndian.Uint64(a[8:]), 0)
	s, c = bits.Add64(s, binary.BigEndian.Uint64(a[16:]), c)
	s, c = bits.Add64(s, binary.BigEndian.Uint64(a[24:]), c)
	s, c = bits.Add64(s, uint64(p.Proto)+uint64(l4len)&0xFFFF+uint64(l4len)>>16, c)
	return fold(s + c)
}
