package packet

import (
	"encoding/binary"
	"net/netip"
)

// Field offsets used by the rewrites.
const (
	ipv4ChecksumOff = 10
	ipv4SrcOff      = 12
	ipv6SrcOff      = 8
	udpChecksumOff  = 6
	tcpChecksumOff  = 16
	macLen          = 6
)

// SetDstMAC writes the destination MAC address of an Ethernet frame. It does
// nothing to a frame shorter than an Ethernet header.
func SetDstMAC(frame []byte, mac [6]byte) {
	if len(frame) >= ethHeaderLen {
		copy(frame[0:macLen], mac[:])
	}
}

// SetSrcMAC writes the source MAC address of an Ethernet frame. It does
// nothing to a frame shorter than an Ethernet header.
func SetSrcMAC(frame []byte, mac [6]byte) {
	if len(frame) >= ethHeaderLen {
		copy(frame[macLen:2*macLen], mac[:])
	}
}

// ForwardMAC readdresses an Ethernet frame to its next hop: it leaves from
// the MAC address it was sent to (its destination becomes its source) towards
// next. It does nothing to a frame shorter than an Ethernet header.
func ForwardMAC(frame []byte, next [6]byte) {
	if len(frame) >= ethHeaderLen {
		copy(frame[macLen:2*macLen], frame[0:macLen])
		copy(frame[0:macLen], next[:])
	}
}

// SetDst rewrites, in place, the destination address and — when the packet
// carries the L4 header (unfragmented or first fragment) — the destination
// port of the packet decoded into p, and updates p to match. See SetSrc.
func (p *Parsed) SetDst(frame []byte, addr netip.Addr, port uint16) bool {
	return p.rewrite(frame, addr, port, true)
}

// SetSrc rewrites, in place, the source address and — when the packet
// carries the L4 header — the source port, and updates p to match.
//
// The IPv4 header checksum and the UDP/TCP checksum are updated incrementally
// (RFC 1624, eqn. 3). A UDP checksum of 0 ("none") stays 0, and a non-zero UDP
// checksum never becomes 0 (0xFFFF is written instead, RFC 768). A non-first
// fragment has only its IP header changed: the L4 checksum lives in the first
// fragment, and rewriting the first fragment adjusts it for the pseudo-header
// of the whole datagram, so the reassembled datagram stays correct as long as
// every fragment gets the same address. The port is ignored for such a
// fragment.
//
// It returns false, changing nothing, when addr is not of the packet's family
// (an IPv4-mapped IPv6 address counts as IPv6) or p does not hold a
// ReasonOK or ReasonNonFirstFragment decode of frame.
func (p *Parsed) SetSrc(frame []byte, addr netip.Addr, port uint16) bool {
	return p.rewrite(frame, addr, port, false)
}

func (p *Parsed) rewrite(b []byte, addr netip.Addr, port uint16, dst bool) bool {
	if (p.Reason != ReasonOK && p.Reason != ReasonNonFirstFragment) || p.End > len(b) {
		return false
	}
	var d uint64 // pseudo-header change, ~m + m' (see replace)
	switch {
	case p.Version == 4 && addr.Is4():
		off := p.L3Off + ipv4SrcOff
		if dst {
			off += 4
		}
		a := addr.As4()
		f := b[off : off+4]
		d = replace(f, a[:])
		copy(f, a[:])
		c := b[p.L3Off+ipv4ChecksumOff:]
		binary.BigEndian.PutUint16(c, update(be16(c), d))
	case p.Version == 6 && addr.Is6():
		off := p.L3Off + ipv6SrcOff
		if dst {
			off += 16
		}
		a := addr.As16()
		f := b[off : off+16]
		d = replace(f, a[:])
		copy(f, a[:])
	default:
		return false
	}
	if dst {
		p.Dst = addr
	} else {
		p.Src = addr
	}
	if p.L4Off == 0 {
		return true // non-first fragment: no ports, no L4 checksum
	}
	poff := p.L4Off
	if dst {
		poff += 2
		p.DstPort = port
	} else {
		p.SrcPort = port
	}
	old := be16(b[poff:])
	binary.BigEndian.PutUint16(b[poff:], port)
	d += 0xFFFF - uint64(old) + uint64(port)
	switch p.Proto {
	case ProtoUDP:
		c := b[p.L4Off+udpChecksumOff:]
		if hc := be16(c); hc != 0 {
			hc = update(hc, d)
			if hc == 0 {
				hc = 0xFFFF
			}
			binary.BigEndian.PutUint16(c, hc)
		}
	case ProtoTCP:
		c := b[p.L4Off+tcpChecksumOff:]
		binary.BigEndian.PutUint16(c, update(be16(c), d))
	}
	return true
}
