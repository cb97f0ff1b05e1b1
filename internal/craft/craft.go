// Package craft builds test frames: Ethernet (optionally VLAN-tagged),
// Linux cooked, loopback or raw-IP framing, optionally with a PPPoE session
// header, around an IPv4 or IPv6 datagram (with IPv4 options or IPv6
// extension headers) carrying UDP or TCP, with correct lengths and checksums,
// real IP fragments of such a datagram, and canned SIP messages. Tests,
// benchmarks and the traffic generator share it.
//
// Its checksum code is a deliberately plain byte-pair loop, independent of
// package packet's, so that tests can use craft's output as an oracle for the
// decoder's and the rewrites' checksums. Every function returns a newly
// allocated slice the caller owns.
package craft

import (
	"encoding/binary"
	"net/netip"

	"github.com/xvs-lb/xvs/packet"
)

// VLAN is one 802.1Q/802.1ad tag.
type VLAN struct {
	TPID uint16 // 0x8100 (802.1Q) when zero; 0x88A8 for an 802.1ad service tag
	TCI  uint16 // priority, DEI and VLAN ID
}

// Ext is one IPv6 extension header placed between the IPv6 header and the
// L4 header (or the fragment header, which Fragment adds itself).
type Ext struct {
	Type uint8  // 0 hop-by-hop, 43 routing, 60 destination options
	Data []byte // body after the next-header and length octets; padded with zeros to a multiple of 8 octets in total
}

// Protocol numbers accepted in Spec.Proto.
const (
	UDP = packet.ProtoUDP
	TCP = packet.ProtoTCP
)

// Spec describes one packet. Zero values give sensible defaults: Ethernet,
// UDP, TTL 64.
type Spec struct {
	Link           packet.LinkType
	SrcMAC, DstMAC [6]byte
	VLANs          []VLAN // outermost first
	Src, Dst       netip.AddrPort
	Proto          uint8  // UDP (default) or TCP; other values carry Payload as is
	IPOptions      []byte // IPv4 options, padded with EOL to a multiple of 4 octets
	IPv6Ext        []Ext
	TTL            uint8  // 64 when zero
	TOS            uint8  // IPv4 TOS / IPv6 traffic class
	ID             uint32 // IPv4 identification (low 16 bits) or IPv6 fragment identification
	DF             bool   // IPv4 don't-fragment
	// ZeroUDPChecksum sends UDP with checksum 0 ("none"; valid over IPv4 only).
	ZeroUDPChecksum bool
	// PartialChecksum leaves the UDP/TCP checksum as a sender using transmit
	// checksum offload hands it to its device (Linux CHECKSUM_PARTIAL, as on
	// veth): the folded pseudo-header sum, not complemented, with the
	// segment's own sum left for the device to add.
	PartialChecksum bool
	TCPFlags        uint8  // default ACK|PSH when zero
	Seq, Ack        uint32 // TCP sequence and acknowledgement numbers
	Payload         []byte
	// Padding appends this many zero octets after the datagram, as Ethernet
	// does for frames under 60 octets; the decoder must ignore them.
	Padding int
	// PPPoE carries the datagram in a PPPoE session (RFC 2516) with id
	// PPPoESession, after the VLAN tags: a PPPoE header whose length counts
	// the PPP protocol field and the datagram (not Padding), then the
	// uncompressed PPP protocol field. Ignored for LinkNull and LinkRaw,
	// which have no EtherType.
	PPPoE        bool
	PPPoESession uint16
}

// TCP flags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

// Default MAC addresses (locally administered).
var (
	ClientMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	LBMAC     = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

func (s Spec) proto() uint8 {
	if s.Proto == 0 {
		return UDP
	}
	return s.Proto
}

// Build returns the frame: link framing, IP header, L4 header and payload.
func (s Spec) Build() []byte {
	return append(s.Frame(s.Datagram()), make([]byte, s.Padding)...)
}

// Frame wraps an IP datagram in s's link framing (and VLAN tags).
func (s Spec) Frame(datagram []byte) []byte {
	et, ppp := uint16(packet.EtherTypeIPv4), uint16(packet.PPPProtoIPv4)
	if s.Src.Addr().Is6() {
		et, ppp = packet.EtherTypeIPv6, packet.PPPProtoIPv6
	}
	if s.PPPoE && s.Link != packet.LinkNull && s.Link != packet.LinkRaw {
		h := []byte{0x11, 0x00} // version 1, type 1; code 0: session data
		h = binary.BigEndian.AppendUint16(h, s.PPPoESession)
		h = binary.BigEndian.AppendUint16(h, uint16(2+len(datagram)))
		h = binary.BigEndian.AppendUint16(h, ppp)
		datagram = append(h, datagram...)
		et = packet.EtherTypePPPoESession
	}
	var tags []byte
	// Build the tag stack outermost first: each tag holds its TCI and the
	// EtherType of what follows.
	for i, v := range s.VLANs {
		next := et
		if i+1 < len(s.VLANs) {
			next = s.VLANs[i+1].TPID
			if next == 0 {
				next = packet.EtherTypeVLAN
			}
		}
		tags = binary.BigEndian.AppendUint16(tags, v.TCI)
		tags = binary.BigEndian.AppendUint16(tags, next)
	}
	outer := et
	if len(s.VLANs) > 0 {
		outer = s.VLANs[0].TPID
		if outer == 0 {
			outer = packet.EtherTypeVLAN
		}
	}
	var b []byte
	switch s.Link {
	case packet.LinkEthernet:
		b = append(b, s.DstMAC[:]...)
		b = append(b, s.SrcMAC[:]...)
		b = binary.BigEndian.AppendUint16(b, outer)
	case packet.LinkLinuxSLL:
		b = binary.BigEndian.AppendUint16(b, 0) // packet type: to us
		b = binary.BigEndian.AppendUint16(b, 1) // ARPHRD_ETHER
		b = binary.BigEndian.AppendUint16(b, 6) // address length
		b = append(b, s.SrcMAC[:]...)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, outer)
	case packet.LinkLinuxSLL2:
		b = binary.BigEndian.AppendUint16(b, outer)
		b = append(b, 0, 0)                     // reserved
		b = binary.BigEndian.AppendUint32(b, 1) // interface index
		b = binary.BigEndian.AppendUint16(b, 1) // ARPHRD_ETHER
		b = append(b, 0, 6)                     // packet type, address length
		b = append(b, s.SrcMAC[:]...)
		b = append(b, 0, 0)
	case packet.LinkNull:
		af := uint32(2)
		if et == packet.EtherTypeIPv6 {
			af = 30
		}
		b = binary.LittleEndian.AppendUint32(b, af)
		tags = nil
	case packet.LinkRaw:
		tags = nil
	}
	b = append(b, tags...)
	return append(b, datagram...)
}

// Datagram returns the IP datagram alone (no link framing).
func (s Spec) Datagram() []byte {
	seg := s.Segment()
	if s.Src.Addr().Is6() {
		return append(s.ipv6Header(len(seg), s.proto(), nil), seg...)
	}
	return append(s.ipv4Header(len(seg), 0, false, s.IPOptions), seg...)
}

// Segment returns the L4 segment (header with checksum, and payload).
func (s Spec) Segment() []byte {
	var h []byte
	switch s.proto() {
	case UDP:
		h = binary.BigEndian.AppendUint16(h, s.Src.Port())
		h = binary.BigEndian.AppendUint16(h, s.Dst.Port())
		h = binary.BigEndian.AppendUint16(h, uint16(8+len(s.Payload)))
		h = append(h, 0, 0)
	case TCP:
		flags := s.TCPFlags
		if flags == 0 {
			flags = ACK | PSH
		}
		h = binary.BigEndian.AppendUint16(h, s.Src.Port())
		h = binary.BigEndian.AppendUint16(h, s.Dst.Port())
		h = binary.BigEndian.AppendUint32(h, s.Seq)
		h = binary.BigEndian.AppendUint32(h, s.Ack)
		h = append(h, 5<<4, flags)
		h = binary.BigEndian.AppendUint16(h, 65535) // window
		h = append(h, 0, 0, 0, 0)                   // checksum, urgent pointer
	}
	seg := append(h, s.Payload...)
	csOff := -1
	switch s.proto() {
	case UDP:
		if !s.ZeroUDPChecksum {
			csOff = 6
		}
	case TCP:
		csOff = 16
	}
	if csOff >= 0 && s.PartialChecksum {
		binary.BigEndian.PutUint16(seg[csOff:], ^Checksum(s.pseudoHeader(len(seg))))
	} else if csOff >= 0 {
		c := Checksum(s.pseudoHeader(len(seg)), seg)
		if c == 0 && s.proto() == UDP {
			c = 0xFFFF
		}
		binary.BigEndian.PutUint16(seg[csOff:], c)
	}
	return seg
}

func (s Spec) pseudoHeader(l4len int) []byte {
	src, dst := s.Src.Addr().AsSlice(), s.Dst.Addr().AsSlice()
	b := append(append([]byte(nil), src...), dst...)
	if s.Src.Addr().Is6() {
		b = binary.BigEndian.AppendUint32(b, uint32(l4len))
		return append(b, 0, 0, 0, s.proto())
	}
	b = append(b, 0, s.proto())
	return binary.BigEndian.AppendUint16(b, uint16(l4len))
}

func (s Spec) ttl() uint8 {
	if s.TTL == 0 {
		return 64
	}
	return s.TTL
}

// ipv4Header builds an IPv4 header for a payload of n octets at fragment
// offset off (octets, a multiple of 8).
func (s Spec) ipv4Header(n, off int, more bool, opts []byte) []byte {
	opts = append([]byte(nil), opts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0) // EOL
	}
	hl := 20 + len(opts)
	h := []byte{0x40 | byte(hl/4), s.TOS}
	h = binary.BigEndian.AppendUint16(h, uint16(hl+n))
	h = binary.BigEndian.AppendUint16(h, uint16(s.ID))
	frag := uint16(off / 8)
	if s.DF {
		frag |= 0x4000
	}
	if more {
		frag |= 0x2000
	}
	h = binary.BigEndian.AppendUint16(h, frag)
	h = append(h, s.ttl(), s.proto(), 0, 0)
	h = append(h, s.Src.Addr().AsSlice()...)
	h = append(h, s.Dst.Addr().AsSlice()...)
	h = append(h, opts...)
	binary.BigEndian.PutUint16(h[10:], Checksum(h))
	return h
}

// ipv6Header builds the IPv6 header and s.IPv6Ext for n octets after them;
// last is the next-header value after the extension headers, and frag, when
// not nil, is a fragment header appended after them.
func (s Spec) ipv6Header(n int, last uint8, frag []byte) []byte {
	var ext []byte
	for i, e := range s.IPv6Ext {
		next := last
		if i+1 < len(s.IPv6Ext) {
			next = s.IPv6Ext[i+1].Type
		} else if frag != nil {
			next = 44
		}
		body := append([]byte{next, 0}, e.Data...)
		for len(body)%8 != 0 {
			body = append(body, 0) // Pad1/PadN-compatible zero padding
		}
		body[1] = byte(len(body)/8 - 1)
		ext = append(ext, body...)
	}
	first := last
	switch {
	case len(s.IPv6Ext) > 0:
		first = s.IPv6Ext[0].Type
	case frag != nil:
		first = 44
	}
	ext = append(ext, frag...)
	h := []byte{0x60 | s.TOS>>4, s.TOS << 4, 0, 0}
	h = binary.BigEndian.AppendUint16(h, uint16(len(ext)+n))
	h = append(h, first, s.ttl())
	h = append(h, s.Src.Addr().AsSlice()...)
	h = append(h, s.Dst.Addr().AsSlice()...)
	return append(h, ext...)
}

// Checksum is the RFC 1071 checksum of the concatenation of parts, summed a
// byte pair at a time (the oracle for package packet's fast version).
func Checksum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		w := uint32(all[i]) << 8
		if i+1 < len(all) {
			w |= uint32(all[i+1])
		}
		s += w
	}
	for s > 0xFFFF {
		s = s&0xFFFF + s>>16
	}
	return ^uint16(s)
}

// Fragment returns the frames of s's datagram split into real IPv4 or IPv6
// fragments whose IP payload (after the IPv4 header or the IPv6 fragment
// header) is at most maxIPPayload octets, rounded down to a multiple of 8.
// Every fragment carries the IPv4 options whose copied flag is set (all
// options in the first) or all of s.IPv6Ext as the unfragmentable part. A
// datagram that fits yields one unfragmented frame for IPv4 and one atomic
// fragment (offset 0, M clear) for IPv6. Padding is not applied.
func Fragment(s Spec, maxIPPayload int) [][]byte {
	seg := s.Segment()
	step := max(maxIPPayload/8*8, 8)
	var out [][]byte
	if s.Src.Addr().Is4() && len(seg) <= step {
		return [][]byte{s.Frame(s.Datagram())}
	}
	for off := 0; off < len(seg); off += step {
		end := min(off+step, len(seg))
		more := end < len(seg)
		var d []byte
		if s.Src.Addr().Is6() {
			fh := []byte{s.proto(), 0}
			fo := uint16(off)
			if more {
				fo |= 1
			}
			fh = binary.BigEndian.AppendUint16(fh, fo)
			fh = binary.BigEndian.AppendUint32(fh, s.ID)
			d = append(s.ipv6Header(end-off, s.proto(), fh), seg[off:end]...)
		} else {
			opts := s.IPOptions
			if off > 0 {
				opts = copiedOptions(opts)
			}
			d = append(s.ipv4Header(end-off, off, more, opts), seg[off:end]...)
		}
		out = append(out, s.Frame(d))
	}
	return out
}

// copiedOptions keeps the IPv4 options with the copied flag (RFC 791).
func copiedOptions(opts []byte) []byte {
	var out []byte
	for i := 0; i < len(opts); {
		t := opts[i]
		switch {
		case t == 0: // end of list
			return out
		case t == 1: // no-op
			i++
			continue
		case i+1 >= len(opts) || opts[i+1] < 2:
			return out
		}
		l := int(opts[i+1])
		if i+l > len(opts) {
			return out
		}
		if t&0x80 != 0 {
			out = append(out, opts[i:i+l]...)
		}
		i += l
	}
	return out
}
