package packet_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// tunnelRoom is the headroom the tests give frames.
const tunnelRoom = 128

// withRoom copies frame into a buffer behind tunnelRoom bytes of room and
// returns the room and the frame (see packet.Grow).
func withRoom(frame []byte) (room, f []byte) {
	buf := make([]byte, tunnelRoom+len(frame), tunnelRoom+len(frame)+16)
	copy(buf[tunnelRoom:], frame)
	return buf[:tunnelRoom], buf[tunnelRoom:]
}

var (
	tunSrc4, tunDst4 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	tunSrc6, tunDst6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:7::7")
)

func innerSpec(v6 bool) craft.Spec {
	s := craft.Spec{
		SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC,
		Src: netip.MustParseAddrPort("203.0.113.5:5060"), Dst: netip.MustParseAddrPort("192.0.2.100:5060"),
		TTL: 57, TOS: 0xb8, ID: 0x1234, DF: true,
		Payload: craft.SIPInvite("tunnel-call@example.com"),
	}
	if v6 {
		s.Src = netip.MustParseAddrPort("[2001:db8:c::5]:5060")
		s.Dst = netip.MustParseAddrPort("[2001:db8::100]:5060")
	}
	return s
}

// expectOuter builds, independently of package packet, the outer headers
// ip_vs_tunnel_xmit(_v6) puts before datagram: outer IP, then UDP+GUE or
// GRE. partialStart >= 0 adds the remote checksum offload option.
func expectOuter(e packet.Encap, datagram []byte, partialStart, partialField int) []byte {
	inner6 := datagram[0]>>4 == 6
	innerProto := byte(4)
	tos := datagram[1]
	df := e.CopyDF && !inner6 && datagram[6]&0x40 != 0
	ttl := datagram[8]
	if inner6 {
		innerProto = 41
		tos = datagram[0]<<4 | datagram[1]>>4
		ttl = datagram[7]
	}
	if tos&3 == 3 {
		tos = tos&^3 | 2
	}
	var mid []byte
	next := innerProto
	switch e.Type {
	case packet.EncapGUE:
		next = 17
		gue := []byte{0, innerProto, 0, 0}
		if partialStart >= 0 {
			gue = []byte{2, innerProto, 0, 1, 0x80, 0, 0, 0, byte(partialStart >> 8), byte(partialStart), byte(partialField >> 8), byte(partialField)}
		}
		l := 8 + len(gue) + len(datagram)
		mid = append([]byte{byte(e.SrcPort >> 8), byte(e.SrcPort), byte(e.Port >> 8), byte(e.Port), byte(l >> 8), byte(l), 0, 0}, gue...)
	case packet.EncapGRE:
		next = 47
		proto := []byte{0x08, 0x00}
		if inner6 {
			proto = []byte{0x86, 0xdd}
		}
		if e.Csum {
			mid = append([]byte{0x80, 0}, proto...)
			mid = append(mid, 0, 0, 0, 0)
			c := craft.Checksum(mid, datagram)
			mid[4], mid[5] = byte(c>>8), byte(c)
		} else {
			mid = append([]byte{0, 0}, proto...)
		}
	}
	var ip []byte
	n := len(mid) + len(datagram)
	if e.Dst.Is4() {
		ip = make([]byte, 20)
		ip[0], ip[1] = 0x45, tos
		binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
		binary.BigEndian.PutUint16(ip[4:], e.ID)
		if df {
			ip[6] = 0x40
		}
		ip[8], ip[9] = ttl, next
		copy(ip[12:], e.Src.AsSlice())
		copy(ip[16:], e.Dst.AsSlice())
		c := craft.Checksum(ip)
		ip[10], ip[11] = byte(c>>8), byte(c)
	} else {
		ip = make([]byte, 40)
		binary.BigEndian.PutUint32(ip, 6<<28|uint32(tos)<<20)
		binary.BigEndian.PutUint16(ip[4:], uint16(n))
		ip[6], ip[7] = next, ttl
		copy(ip[8:], e.Src.AsSlice())
		copy(ip[24:], e.Dst.AsSlice())
	}
	if e.Type == packet.EncapGUE && e.Csum {
		var ph []byte
		if e.Dst.Is4() {
			ph = append(append(append([]byte{}, e.Src.AsSlice()...), e.Dst.AsSlice()...), 0, 17, byte(n>>8), byte(n))
		} else {
			ph = append(append(append([]byte{}, e.Src.AsSlice()...), e.Dst.AsSlice()...), 0, 0, byte(n>>8), byte(n), 0, 0, 0, 17)
		}
		c := craft.Checksum(ph, mid, datagram)
		if c == 0 {
			c = 0xffff
		}
		mid[6], mid[7] = byte(c>>8), byte(c)
	}
	return append(ip, mid...)
}

type tunCase struct {
	name   string
	e      packet.Encap
	inner6 bool
}

func tunCases() []tunCase {
	var cs []tunCase
	for _, inner6 := range []bool{false, true} {
		for _, outer6 := range []bool{false, true} {
			src, dst := tunSrc4, tunDst4
			if outer6 {
				src, dst = tunSrc6, tunDst6
			}
			for _, e := range []packet.Encap{
				{Type: packet.EncapIPIP},
				{Type: packet.EncapGUE, Port: 6080},
				{Type: packet.EncapGUE, Port: 6080, Csum: true},
				{Type: packet.EncapGUE, Port: 6081, Csum: true, RemCsum: true},
				{Type: packet.EncapGRE},
				{Type: packet.EncapGRE, Csum: true},
			} {
				e.Src, e.Dst, e.ID, e.SrcPort, e.CopyDF = src, dst, 0x4321, packet.FlowPort(0x9e3779b9), true
				fam := map[bool]string{false: "4", true: "6"}
				name := fmt.Sprintf("%sin%s/%v/csum=%v/remcsum=%v", fam[inner6], fam[outer6], []string{"ipip", "gue", "gre"}[e.Type], e.Csum, e.RemCsum)
				cs = append(cs, tunCase{name, e, inner6})
			}
		}
	}
	return cs
}

// TestEncapsulate: every tunnel type, checksum mode and family pair gives
// the outer headers ip_vs_tunnel_xmit builds, byte for byte (an
// independent construction above, with craft's checksums), the inner
// datagram untouched, the link header moved and retyped.
func TestEncapsulate(t *testing.T) {
	for _, c := range tunCases() {
		t.Run(c.name, func(t *testing.T) {
			s := innerSpec(c.inner6)
			s.Padding = 0
			orig := s.Build()
			room, frame := withRoom(orig)
			var p packet.Parsed
			if r := p.Decode(frame, packet.LinkEthernet); r != packet.ReasonOK {
				t.Fatal(r)
			}
			e := c.e
			out, left, ok := p.Encapsulate(room, frame, &e, false)
			if !ok {
				t.Fatal("not encapsulated")
			}
			datagram := orig[14:]
			want := append(append(append([]byte{}, orig[:12]...), 0x08, 0x00), expectOuter(e, datagram, -1, 0)...)
			if e.Dst.Is6() {
				want[12], want[13] = 0x86, 0xdd
			}
			want = append(want, datagram...)
			if !bytes.Equal(out, want) {
				t.Fatalf("encapsulated\n%s\nwant\n%s", hex.Dump(out), hex.Dump(want))
			}
			if len(left)+e.Len(false) != tunnelRoom || &out[len(out)-1] != &frame[len(frame)-1] {
				t.Error("the frame did not grow in place at its front")
			}
			var q packet.Parsed
			if r := q.Decode(out, packet.LinkEthernet); q.Version == 0 || q.Src != e.Src || q.Dst != e.Dst {
				t.Errorf("outer decode %v %v→%v", r, q.Src, q.Dst)
			}
		})
	}
}

// TestEncapsulateGUELayout pins the GUE encapsulation of an IPv4 datagram
// in IPv4 (UDP checksum on) and with remote checksum offload, in the
// layout documented in docs/tunnels.md: the kernel's ipvs_gue_encap.
func TestEncapsulateGUELayout(t *testing.T) {
	datagram := []byte{
		0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0, 0, // IPv4, DF, TTL 64, UDP
		203, 0, 113, 5, 192, 0, 2, 100,
		0x13, 0xc4, 0x13, 0xc4, 0x00, 0x0c, 0x00, 0x00, 'S', 'I', 'P', '!', // UDP 5060→5060, checksum 0
	}
	c := craft.Checksum(datagram[:20])
	datagram[10], datagram[11] = byte(c>>8), byte(c)
	frame := append(append(append([]byte{}, craft.LBMAC[:]...), craft.ClientMAC[:]...), 0x08, 0x00)
	frame = append(frame, datagram...)
	for _, tc := range []struct {
		name    string
		e       packet.Encap
		partial bool
		want    string
	}{
		{"csum", packet.Encap{Type: packet.EncapGUE, Csum: true, Port: 6080, SrcPort: 40000, ID: 7, CopyDF: true}, false,
			"45000040000740004011" + "XXXX" + "c0000201c6336407" + // outer IPv4: len 64, id 7, DF, TTL 64, UDP
				"9c4017c0002cYYYY" + // UDP 40000→6080, len 44
				"00040000"}, // GUE: version 0, C 0, hlen 0, proto 4, flags 0
		{"remcsum", packet.Encap{Type: packet.EncapGUE, Csum: true, RemCsum: true, Port: 6080, SrcPort: 40000, ID: 7}, true,
			"45000048000700004011" + "XXXX" + "c0000201c6336407" + // no DF: pmtu_disc off
				"9c4017c00034YYYY" +
				"02040001" + // GUE: hlen 2 words, proto 4, flags: private flags present
				"80000000" + // private flags: REMCSUM
				"0014001a"}, // checksum start 20 (the UDP header), field 26 (its checksum)
	} {
		t.Run(tc.name, func(t *testing.T) {
			room, f := withRoom(frame)
			var p packet.Parsed
			p.Decode(f, packet.LinkEthernet)
			e := tc.e
			e.Src, e.Dst = tunSrc4, tunDst4
			out, _, ok := p.Encapsulate(room, f, &e, tc.partial)
			if !ok {
				t.Fatal("not encapsulated")
			}
			got := hex.EncodeToString(out[14 : len(out)-len(datagram)])
			want := tc.want
			// The checksums: from the bytes, by craft's oracle.
			ip := out[14:34]
			want = want[:20] + hex.EncodeToString(ip[10:12]) + want[24:]
			if craft.Checksum(ip) != 0 {
				t.Error("outer IPv4 checksum")
			}
			udp := out[34:]
			ph := append(append(append([]byte{}, tunSrc4.AsSlice()...), tunDst4.AsSlice()...), 0, 17, udp[4], udp[5])
			if craft.Checksum(ph, udp) != 0 {
				t.Error("outer UDP checksum")
			}
			want = want[:52] + hex.EncodeToString(udp[6:8]) + want[56:]
			if got != want {
				t.Errorf("outer headers\n%s\nwant\n%s", got, want)
			}
			if !bytes.Equal(out[len(out)-len(datagram):], datagram) {
				t.Error("inner datagram changed")
			}
		})
	}
}

// TestEncapsulateRemCsum: with a partial inner checksum, GUE remote checksum
// offload adds the option naming where the inner checksum starts and lies;
// the outer UDP checksum covers the datagram as it is (partial).
func TestEncapsulateRemCsum(t *testing.T) {
	for _, inner6 := range []bool{false, true} {
		for _, proto := range []uint8{craft.UDP, craft.TCP} {
			s := innerSpec(inner6)
			s.Proto = proto
			orig := s.Build()
			room, frame := withRoom(orig)
			var p packet.Parsed
			p.Decode(frame, packet.LinkEthernet)
			start := p.L4Off - p.L3Off
			field := start + 6
			if proto == craft.TCP {
				field = start + 16
			}
			e := packet.Encap{Type: packet.EncapGUE, Port: 6080, Csum: true, RemCsum: true, Src: tunSrc6, Dst: tunDst6, SrcPort: 33333}
			out, _, ok := p.Encapsulate(room, frame, &e, true)
			if !ok {
				t.Fatal("not encapsulated")
			}
			want := append(append([]byte{}, orig[:12]...), 0x86, 0xdd)
			want = append(append(want, expectOuter(e, orig[14:], start, field)...), orig[14:]...)
			if !bytes.Equal(out, want) {
				t.Fatalf("inner6=%v proto %d:\n%s\nwant\n%s", inner6, proto, hex.Dump(out), hex.Dump(want))
			}
			if e.Len(true) != 40+8+12 || e.Len(false) != 40+8+4 {
				t.Errorf("Len %d %d", e.Len(true), e.Len(false))
			}
		}
	}
}

// TestEncapsulateECN: the outer TOS is the inner one, with CE mapped to
// ECT(0) (INET_ECN_encapsulate); the inner header keeps its CE.
func TestEncapsulateECN(t *testing.T) {
	for tos, want := range map[uint8]uint8{0x00: 0x00, 0xb8: 0xb8, 0xb9: 0xb9, 0xba: 0xba, 0xbb: 0xba} {
		s := innerSpec(false)
		s.TOS = tos
		room, frame := withRoom(s.Build())
		var p packet.Parsed
		p.Decode(frame, packet.LinkEthernet)
		e := packet.Encap{Src: tunSrc4, Dst: tunDst4}
		out, _, _ := p.Encapsulate(room, frame, &e, false)
		if out[15] != want || out[35] != tos {
			t.Errorf("inner TOS %#x: outer %#x inner %#x, want %#x", tos, out[15], out[35], want)
		}
	}
}

// TestEncapsulateRefusals: what cannot be encapsulated is left unchanged.
func TestEncapsulateRefusals(t *testing.T) {
	s := innerSpec(false)
	orig := s.Build()
	room, frame := withRoom(orig)
	var p packet.Parsed
	p.Decode(frame, packet.LinkEthernet)
	for name, e := range map[string]packet.Encap{
		"mixed outer families": {Src: tunSrc4, Dst: tunDst6},
		"no source":            {Dst: tunDst4},
	} {
		if _, _, ok := p.Encapsulate(room, frame, &e, false); ok {
			t.Errorf("%s: encapsulated", name)
		}
	}
	e := packet.Encap{Src: tunSrc6, Dst: tunDst6, Type: packet.EncapGUE}
	if _, _, ok := p.Encapsulate(room[:10], frame, &e, false); ok {
		t.Error("encapsulated into too little room")
	}
	if _, _, ok := p.Encapsulate(make([]byte, 100), frame, &e, false); ok {
		t.Error("encapsulated into a room that is not the frame's")
	}
	pp := s
	pp.PPPoE = true
	room, frame = withRoom(pp.Build())
	p.Decode(frame, packet.LinkEthernet)
	if _, _, ok := p.Encapsulate(room, frame, &e, false); ok {
		t.Error("encapsulated a PPPoE frame")
	}
	if !bytes.Equal(frame, pp.Build()) {
		t.Error("a refusal changed the frame")
	}
}

// TestEncapsulateLinks: the link header's network protocol follows the
// outer family on every link type; VLAN tags stay.
func TestEncapsulateLinks(t *testing.T) {
	for _, link := range []packet.LinkType{packet.LinkEthernet, packet.LinkLinuxSLL, packet.LinkLinuxSLL2, packet.LinkNull, packet.LinkRaw} {
		s := innerSpec(false)
		s.Link = link
		if link == packet.LinkEthernet {
			s.VLANs = []craft.VLAN{{TCI: 100}}
		}
		room, frame := withRoom(s.Build())
		var p packet.Parsed
		if r := p.Decode(frame, link); r != packet.ReasonOK {
			t.Fatal(link, r)
		}
		e := packet.Encap{Src: tunSrc6, Dst: tunDst6}
		out, _, ok := p.Encapsulate(room, frame, &e, false)
		var q packet.Parsed
		q.Decode(out, link)
		if !ok || q.Version != 6 || q.Proto != packet.ProtoIPIP || q.NumVLAN != p.NumVLAN || q.Dst != tunDst6 {
			t.Errorf("%v: %v, outer v%d proto %d, %d VLANs", link, ok, q.Version, q.Proto, q.NumVLAN)
		}
	}
}

// TestEncapsulateFragments: every fragment of a datagram is encapsulated as
// it is; IPv4 fragments keep their headers (the inner checksum is valid).
func TestEncapsulateFragments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := innerSpec(v6)
		s.DF = false
		for i, fr := range craft.Fragment(s, 600) {
			room, frame := withRoom(fr)
			var p packet.Parsed
			p.Decode(frame, packet.LinkEthernet)
			e := packet.Encap{Type: packet.EncapGRE, Csum: true, Src: tunSrc4, Dst: tunDst4, CopyDF: true}
			out, _, ok := p.Encapsulate(room, frame, &e, true)
			want := append(append(append([]byte{}, fr[:12]...), 0x08, 0x00), expectOuter(e, fr[14:], -1, 0)...)
			want = append(want, fr[14:]...)
			if !ok || !bytes.Equal(out, want) {
				t.Errorf("v6=%v fragment %d: %v\n%s", v6, i, ok, hex.Dump(out))
			}
		}
	}
}

func TestFlowPort(t *testing.T) {
	for h, want := range map[uint32]uint16{0: 32768, 0xffffffff: 60998, 0x80000000: 32768 + (60999-32768)/2} {
		if got := packet.FlowPort(h); got != want {
			t.Errorf("FlowPort(%#x) = %d, want %d", h, got, want)
		}
	}
}
