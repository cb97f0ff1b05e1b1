package packet_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// TestTooBig: the ICMP error is icmp_send's / icmpv6_send's: from the
// datagram's destination to its source, quoting the datagram (576 / 1280
// octets in all), with the MTU, valid checksums; DecodeICMPError reads it
// back.
func TestTooBig(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := innerSpec(v6)
		s.Payload = bytes.Repeat([]byte("x"), 1400)
		orig := s.Build()
		room, frame := withRoom(orig)
		var p packet.Parsed
		p.Decode(frame, packet.LinkEthernet)
		out, _, ok := p.TooBig(room, frame, 1480, 99)
		if !ok {
			t.Fatal("no ICMP")
		}
		var q packet.Parsed
		q.Decode(out, packet.LinkEthernet)
		if q.Src != s.Dst.Addr() || q.Dst != s.Src.Addr() || q.TTL != packet.ICMPTTL || !bytes.Equal(out[:12], orig[:12]) {
			t.Errorf("v6=%v: %v→%v TTL %d", v6, q.Src, q.Dst, q.TTL)
		}
		var ie packet.ICMPError
		if !ie.DecodeICMPError(out, &q) || ie.MTU != 1480 || ie.Src != s.Src.Addr() || ie.Dst != s.Dst.Addr() || ie.SrcPort != 5060 || !ie.VerifyICMPChecksum(out, &q) {
			t.Errorf("v6=%v: ICMP error %+v", v6, ie)
		}
		ip := out[14:]
		if v6 {
			if len(ip) != 1280 || ip[40] != packet.ICMPv6PacketTooBig || binary.BigEndian.Uint32(ip[44:]) != 1480 {
				t.Errorf("ICMPv6: %d octets, type %d", len(ip), ip[40])
			}
			ph := append(append(append([]byte{}, ip[8:40]...), 0, 0, byte((len(ip)-40)>>8), byte(len(ip)-40)), 0, 0, 0, 58)
			if craft.Checksum(ph, ip[40:]) != 0 {
				t.Error("ICMPv6 checksum")
			}
			if !bytes.Equal(ip[48:], orig[14:14+1232]) {
				t.Error("quote")
			}
		} else {
			if len(ip) != 576 || ip[20] != 3 || ip[21] != 4 || binary.BigEndian.Uint16(ip[26:]) != 1480 ||
				ip[1] != 0xb8&0x1e|0xc0 || binary.BigEndian.Uint16(ip[4:]) != 99 || ip[6]&0x40 != 0 {
				t.Errorf("ICMPv4 header % x", ip[:28])
			}
			if craft.Checksum(ip[:20]) != 0 || craft.Checksum(ip[20:]) != 0 {
				t.Error("ICMPv4 checksums")
			}
			if !bytes.Equal(ip[28:], orig[14:14+548]) {
				t.Error("quote")
			}
		}
	}
	// A short datagram is quoted whole.
	s := innerSpec(false)
	s.Payload = []byte("hi")
	room, frame := withRoom(s.Build())
	var p packet.Parsed
	p.Decode(frame, packet.LinkEthernet)
	out, _, _ := p.TooBig(room, frame, 1000, 1)
	if len(out) != 14+28+20+8+2 {
		t.Errorf("short datagram: %d octets", len(out))
	}
}

// reassemble4 puts IPv4 fragments (link header l3 octets) back together.
func reassemble4(t *testing.T, frags [][]byte, l3 int) []byte {
	t.Helper()
	var data []byte
	var hdr []byte
	for i, f := range frags {
		ip := f[l3:]
		if craft.Checksum(ip[:20]) != 0 {
			t.Errorf("fragment %d: header checksum", i)
		}
		fo := binary.BigEndian.Uint16(ip[6:])
		if int(fo&0x1fff)*8 != len(data) || (fo&0x2000 != 0) != (i < len(frags)-1) {
			t.Fatalf("fragment %d: flags/offset %#x at %d", i, fo, len(data))
		}
		data = append(data, ip[20:binary.BigEndian.Uint16(ip[2:])]...)
		if i == 0 {
			hdr = append([]byte{}, ip[:20]...)
		}
	}
	return append(hdr, data...)
}

// TestFragmentIPv4: an encapsulated datagram too large for the link is cut
// into fragments of at most mtu octets that reassemble to it.
func TestFragmentIPv4(t *testing.T) {
	s := innerSpec(false)
	s.DF = false
	s.Payload = bytes.Repeat([]byte("y"), 3000)
	room, frame := withRoom(s.Build())
	var p packet.Parsed
	p.Decode(frame, packet.LinkEthernet)
	e := packet.Encap{Type: packet.EncapGRE, Src: tunSrc4, Dst: tunDst4, ID: 5}
	out, _, _ := p.Encapsulate(room, frame, &e, false)
	whole := append([]byte{}, out[14:]...)
	frags := [][]byte{}
	head := out
	for {
		buf := make([]byte, 2000)
		h, tail, ok := packet.FragmentIPv4(head, 14, 1500, buf)
		if !ok {
			frags = append(frags, head)
			break
		}
		frags = append(frags, h)
		head = tail
	}
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	for i, f := range frags {
		if len(f)-14 > 1500 || !bytes.Equal(f[:14], out[:14]) {
			t.Errorf("fragment %d: %d octets", i, len(f)-14)
		}
	}
	got := reassemble4(t, frags, 14)
	// The reassembled header differs from the original by its length and
	// checksum only.
	binary.BigEndian.PutUint16(got[2:], binary.BigEndian.Uint16(whole[2:]))
	got[6] &^= 0x20
	got[10], got[11] = whole[10], whole[11]
	if !bytes.Equal(got, whole) {
		t.Error("fragments do not reassemble to the datagram")
	}
	if _, _, ok := packet.FragmentIPv4(frags[2], 14, 1500, make([]byte, 2000)); ok {
		t.Error("fragmented a packet that fits")
	}
	if _, _, ok := packet.FragmentIPv4(out, 14, 1500, make([]byte, 10)); ok {
		t.Error("fragmented into a buffer too small")
	}
}

// TestFragmentIPv6: an IPv6 outer datagram gets a fragment header and is
// cut into fragments of at most mtu octets that reassemble to it.
func TestFragmentIPv6(t *testing.T) {
	s := innerSpec(false)
	s.DF = false
	s.Payload = bytes.Repeat([]byte("z"), 2900)
	room, frame := withRoom(s.Build())
	var p packet.Parsed
	p.Decode(frame, packet.LinkEthernet)
	e := packet.Encap{Type: packet.EncapIPIP, Src: tunSrc6, Dst: tunDst6}
	out, left, _ := p.Encapsulate(room, frame, &e, false)
	whole := append([]byte{}, out[14:]...)
	dsts := [][]byte{make([]byte, 1600), make([]byte, 1600), make([]byte, 1600)}
	head, _, n, ok := packet.FragmentIPv6(left, out, 14, 1280, 0xabcdef, dsts)
	if !ok || n != 2 {
		t.Fatalf("%v, %d further fragments", ok, n)
	}
	frags := append([][]byte{head}, dsts[:n]...)
	var data []byte
	for i, f := range frags {
		var q packet.Parsed
		r := q.Decode(f, packet.LinkEthernet)
		if len(f)-14 > 1280 || q.FragID != 0xabcdef || int(q.FragOff) != len(data) || q.MoreFrags != (i < len(frags)-1) || q.Src != tunSrc6 {
			t.Fatalf("fragment %d: %v %d octets id %#x off %d more %v", i, r, len(f)-14, q.FragID, q.FragOff, q.MoreFrags)
		}
		data = append(data, f[14+48:]...)
	}
	if !bytes.Equal(data, whole[40:]) || frags[0][14+40] != packet.ProtoIPIP {
		t.Error("fragments do not reassemble to the payload")
	}
	var none [][]byte
	if _, _, _, ok := packet.FragmentIPv6(left, out, 14, 1280, 1, none); ok {
		t.Error("fragmented without buffers")
	}
}

func TestMinTunnelMTU(t *testing.T) {
	if packet.MinTunnelMTU(netip.MustParseAddr("192.0.2.1")) != 68 || packet.MinTunnelMTU(netip.MustParseAddr("::1")) != 1280 {
		t.Error("MinTunnelMTU")
	}
	e := packet.Encap{Type: packet.EncapGUE, Dst: tunDst4, Src: tunSrc4}
	if e.TunnelMTU(1500, false) != 1500-20-12 {
		t.Error("TunnelMTU")
	}
}
