package packet_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
)

var (
	client4 = netip.MustParseAddrPort("192.0.2.10:5060")
	vip4    = netip.MustParseAddrPort("198.51.100.1:5060")
	client6 = netip.MustParseAddrPort("[2001:db8::10]:5060")
	vip6    = netip.MustParseAddrPort("[2001:db8:1::1]:5060")
)

func udp4(payload []byte) craft.Spec {
	return craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, Src: client4, Dst: vip4, Payload: payload}
}

func udp6(payload []byte) craft.Spec {
	return craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, Src: client6, Dst: vip6, Payload: payload}
}

func TestDecodeFramings(t *testing.T) {
	payload := craft.SIPInvite("framing@example.com")
	qinq := []craft.VLAN{{TPID: packet.EtherTypeQinQ, TCI: 0x2064}, {TCI: 0x0123}}
	for _, tc := range []struct {
		name string
		spec craft.Spec
	}{
		{"ethernet-ipv4", udp4(payload)},
		{"ethernet-ipv6", udp6(payload)},
		{"dot1q-ipv4", with(udp4(payload), func(s *craft.Spec) { s.VLANs = qinq[1:] })},
		{"qinq-ipv4", with(udp4(payload), func(s *craft.Spec) { s.VLANs = qinq })},
		{"qinq-ipv6", with(udp6(payload), func(s *craft.Spec) { s.VLANs = qinq })},
		{"sll-ipv4", with(udp4(payload), func(s *craft.Spec) { s.Link = packet.LinkLinuxSLL })},
		{"sll-dot1q-ipv4", with(udp4(payload), func(s *craft.Spec) { s.Link = packet.LinkLinuxSLL; s.VLANs = qinq[1:] })},
		{"sll2-ipv6", with(udp6(payload), func(s *craft.Spec) { s.Link = packet.LinkLinuxSLL2 })},
		{"null-ipv4", with(udp4(payload), func(s *craft.Spec) { s.Link = packet.LinkNull })},
		{"null-ipv6", with(udp6(payload), func(s *craft.Spec) { s.Link = packet.LinkNull })},
		{"raw-ipv4", with(udp4(payload), func(s *craft.Spec) { s.Link = packet.LinkRaw })},
		{"raw-ipv6", with(udp6(payload), func(s *craft.Spec) { s.Link = packet.LinkRaw })},
		{"ipv4-options", with(udp4(payload), func(s *craft.Spec) { s.IPOptions = []byte{0x94, 4, 0, 0, 1} })},
		{"ipv6-ext", with(udp6(payload), func(s *craft.Spec) {
			s.IPv6Ext = []craft.Ext{{Type: 0, Data: make([]byte, 6)}, {Type: 60, Data: make([]byte, 14)}, {Type: 43, Data: make([]byte, 22)}}
		})},
		{"tcp-ipv4", with(udp4(payload), func(s *craft.Spec) { s.Proto = craft.TCP; s.TCPFlags = craft.SYN | craft.ACK })},
		{"tcp-ipv6", with(udp6(payload), func(s *craft.Spec) { s.Proto = craft.TCP; s.TCPFlags = craft.SYN | craft.ACK })},
		{"padded-short", with(udp4([]byte("x")), func(s *craft.Spec) { s.Padding = 17 })},
		{"zero-udp-checksum", with(udp4(payload), func(s *craft.Spec) { s.ZeroUDPChecksum = true })},
		{"pppoe-ipv4", with(udp4(payload), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 0x18E5 })},
		{"pppoe-ipv6", with(udp6(payload), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 0xFFFF })},
		{"pppoe-qinq-ipv4", with(udp4(payload), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 1; s.VLANs = qinq })},
		{"pppoe-sll-ipv4", with(udp4(payload), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 2; s.Link = packet.LinkLinuxSLL })},
		{"pppoe-sll2-ipv6", with(udp6(payload), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 3; s.Link = packet.LinkLinuxSLL2 })},
		{"pppoe-tcp-ipv6-ext", with(udp6(payload), func(s *craft.Spec) {
			s.PPPoE = true
			s.Proto = craft.TCP
			s.TCPFlags = craft.ACK
			s.IPv6Ext = []craft.Ext{{Type: 0, Data: make([]byte, 6)}}
		})},
		{"pppoe-ipv4-options", with(udp4(payload), func(s *craft.Spec) { s.PPPoE = true; s.IPOptions = []byte{0x94, 4, 0, 0} })},
		// The Ethernet padding of a short frame lies beyond the PPPoE length.
		{"pppoe-padded-short", with(udp4([]byte("x")), func(s *craft.Spec) { s.PPPoE = true; s.Padding = 9 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.spec.Build()
			var p packet.Parsed
			if r := p.Decode(frame, tc.spec.Link); r != packet.ReasonOK {
				t.Fatalf("Decode = %v", r)
			}
			checkAgainstSpec(t, &p, frame, tc.spec)
			if !p.VerifyChecksums(frame) {
				t.Error("VerifyChecksums = false on a crafted frame")
			}
		})
	}
}

func with(s craft.Spec, f func(*craft.Spec)) craft.Spec { f(&s); return s }

func checkAgainstSpec(t *testing.T, p *packet.Parsed, frame []byte, s craft.Spec) {
	t.Helper()
	proto := s.Proto
	if proto == 0 {
		proto = craft.UDP
	}
	if p.SrcAddrPort() != s.Src || p.DstAddrPort() != s.Dst || p.Proto != proto {
		t.Errorf("got %v > %v proto %d, want %v > %v proto %d", p.SrcAddrPort(), p.DstAddrPort(), p.Proto, s.Src, s.Dst, proto)
	}
	if got := string(p.Payload(frame)); got != string(s.Payload) {
		t.Errorf("payload %q, want %q", got, s.Payload)
	}
	if p.End != len(frame)-s.Padding {
		t.Errorf("End = %d, want %d", p.End, len(frame)-s.Padding)
	}
	if p.PPPoE != s.PPPoE || p.PPPoESession != s.PPPoESession {
		t.Errorf("PPPoE %v session %#x, want %v %#x", p.PPPoE, p.PPPoESession, s.PPPoE, s.PPPoESession)
	}
	if want := len(frame) - s.Padding - len(s.Datagram()); p.L3Off != want {
		t.Errorf("L3Off = %d, want %d", p.L3Off, want)
	}
	if p.NumVLAN != len(s.VLANs) {
		t.Fatalf("NumVLAN = %d, want %d", p.NumVLAN, len(s.VLANs))
	}
	for i, v := range s.VLANs {
		if p.VLAN[i] != v.TCI {
			t.Errorf("VLAN[%d] = %#x, want %#x", i, p.VLAN[i], v.TCI)
		}
	}
	if want := uint8(4); s.Src.Addr().Is6() && p.Version != 6 || !s.Src.Addr().Is6() && p.Version != want {
		t.Errorf("Version = %d", p.Version)
	}
	if p.IPOptions != (len(s.IPOptions) > 0) {
		t.Errorf("IPOptions = %v", p.IPOptions)
	}
	if p.TTL != 64 || p.Fragmented {
		t.Errorf("TTL %d Fragmented %v", p.TTL, p.Fragmented)
	}
	if proto == craft.TCP && p.TCPFlags != s.TCPFlags {
		t.Errorf("TCPFlags = %#x, want %#x", p.TCPFlags, s.TCPFlags)
	}
	if !(p.L3Off < p.L4Off && p.L4Off < p.PayloadOff && p.PayloadOff <= p.End && p.End <= len(frame)) {
		t.Errorf("offsets out of order: L3 %d L4 %d payload %d end %d len %d", p.L3Off, p.L4Off, p.PayloadOff, p.End, len(frame))
	}
}

func TestDecodeFragments(t *testing.T) {
	payload := craft.SIPInvite("frag@example.com")
	for _, s := range []craft.Spec{
		with(udp4(payload), func(s *craft.Spec) { s.ID = 0xBEEF; s.IPOptions = []byte{0x94, 4, 0, 0, 7, 4, 0, 0} }),
		with(udp6(payload), func(s *craft.Spec) {
			s.ID = 0xDEADBEEF
			s.IPv6Ext = []craft.Ext{{Type: 0, Data: make([]byte, 6)}}
		}),
	} {
		frags := craft.Fragment(s, 300)
		if len(frags) < 3 {
			t.Fatalf("%d fragments", len(frags))
		}
		var data []byte
		for i, f := range frags {
			var p packet.Parsed
			r := p.Decode(f, packet.LinkEthernet)
			want := packet.ReasonNonFirstFragment
			if i == 0 {
				want = packet.ReasonOK
			}
			if r != want || !p.Fragmented || p.MoreFrags != (i < len(frags)-1) || p.FragOff != uint16(len(data)) || p.IsFirstFragment() != (i == 0) {
				t.Fatalf("fragment %d: reason %v, %+v", i, r, p)
			}
			if p.FragID != s.ID || p.Proto != craft.UDP || p.Src != s.Src.Addr() || p.Dst != s.Dst.Addr() {
				t.Fatalf("fragment %d: id %#x proto %d %v > %v", i, p.FragID, p.Proto, p.Src, p.Dst)
			}
			if i == 0 {
				if p.SrcPort != s.Src.Port() || p.DstPort != s.Dst.Port() {
					t.Fatalf("first fragment ports %d > %d", p.SrcPort, p.DstPort)
				}
				data = append(data, f[p.L4Off:p.End]...)
			} else {
				if p.L4Off != 0 || p.SrcPort != 0 {
					t.Fatalf("fragment %d: L4Off %d ports %d", i, p.L4Off, p.SrcPort)
				}
				data = append(data, p.Payload(f)...)
			}
			if !p.VerifyChecksums(f) {
				t.Errorf("fragment %d: bad IP checksum", i)
			}
		}
		if string(data) != string(s.Segment()) {
			t.Errorf("reassembled segment differs")
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	good4 := udp4([]byte("hello")).Build()
	good6 := udp6([]byte("hello")).Build()
	tcp4 := with(udp4([]byte("hello")), func(s *craft.Spec) { s.Proto = craft.TCP }).Build()
	mod := func(b []byte, f func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		f(b)
		return b
	}
	three := with(udp4(nil), func(s *craft.Spec) { s.VLANs = make([]craft.VLAN, 3) }).Build()
	manyExt := with(udp6(nil), func(s *craft.Spec) {
		for range packet.MaxIPv6ExtHeaders + 1 {
			s.IPv6Ext = append(s.IPv6Ext, craft.Ext{Type: 60})
		}
	}).Build()
	maxExt := with(udp6(nil), func(s *craft.Spec) {
		for range packet.MaxIPv6ExtHeaders {
			s.IPv6Ext = append(s.IPv6Ext, craft.Ext{Type: 60})
		}
	}).Build()
	hbhSecond := with(udp6(nil), func(s *craft.Spec) { s.IPv6Ext = []craft.Ext{{Type: 60}, {Type: 0}} }).Build()
	icmp := mod(good4, func(b []byte) { b[14+9] = 1 })
	// PPPoE: the header at 14, its length at 18, the PPP protocol at 20, IP at 22.
	pppoe4 := with(udp4([]byte("hello")), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 9 }).Build()
	pppoe6 := with(udp6([]byte("hello")), func(s *craft.Spec) { s.PPPoE = true }).Build()
	pppoeLen := func(b []byte, d int) []byte {
		return mod(b, func(b []byte) { binary.BigEndian.PutUint16(b[18:], uint16(len(b)-20+d)) })
	}
	// Protocol-field compression (RFC 1661 §6.5): one octet 0x21, then IP.
	pfc := mod(append(pppoe4[:20:20], pppoe4[21:]...), func(b []byte) { binary.BigEndian.PutUint16(b[18:], uint16(len(b)-20)) })
	for _, tc := range []struct {
		name  string
		frame []byte
		link  packet.LinkType
		want  packet.Reason
	}{
		{"ok-max-ext", maxExt, 0, packet.ReasonOK},
		{"empty", nil, 0, packet.ReasonTruncated},
		{"short-ethernet", good4[:13], 0, packet.ReasonTruncated},
		{"short-sll", good4[:15], packet.LinkLinuxSLL, packet.ReasonTruncated},
		{"short-sll2", good4[:19], packet.LinkLinuxSLL2, packet.ReasonTruncated},
		{"short-null", good4[:3], packet.LinkNull, packet.ReasonTruncated},
		{"empty-raw", nil, packet.LinkRaw, packet.ReasonTruncated},
		{"bad-link", good4, packet.LinkType(200), packet.ReasonBadLinkType},
		{"arp", mod(good4, func(b []byte) { b[12], b[13] = 0x08, 0x06 }), 0, packet.ReasonUnknownEtherType},
		{"three-vlans", three, 0, packet.ReasonTooManyVLANs},
		{"short-vlan", three[:16], 0, packet.ReasonTruncated},
		{"null-af-ipx", mod(good4[10:], func(b []byte) { binary.LittleEndian.PutUint32(b, 23) }), packet.LinkNull, packet.ReasonUnknownAddressFamily},
		{"raw-version-5", mod(good4[14:], func(b []byte) { b[0] = 0x55 }), packet.LinkRaw, packet.ReasonBadIPVersion},
		{"ipv4-version-6", mod(good4, func(b []byte) { b[14] = 0x65 }), 0, packet.ReasonBadIPVersion},
		{"ipv6-version-4", mod(good6, func(b []byte) { b[14] = 0x40 }), 0, packet.ReasonBadIPVersion},
		{"short-ipv4", good4[:14+19], 0, packet.ReasonTruncated},
		{"short-ipv6", good6[:14+39], 0, packet.ReasonTruncated},
		{"ihl-4", mod(good4, func(b []byte) { b[14] = 0x44 }), 0, packet.ReasonBadIHL},
		{"ihl-beyond-frame", mod(good4[:14+24], func(b []byte) { b[14] = 0x4F }), 0, packet.ReasonTruncated},
		{"total-beyond-frame", good4[:len(good4)-1], 0, packet.ReasonBadTotalLength},
		{"total-below-ihl", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[16:], 19) }), 0, packet.ReasonBadTotalLength},
		{"ipv6-payload-beyond-frame", good6[:len(good6)-1], 0, packet.ReasonBadTotalLength},
		{"ipv6-jumbogram", mod(good6, func(b []byte) { binary.BigEndian.PutUint16(b[18:], 0) }), 0, packet.ReasonBadTotalLength},
		{"ipv6-too-many-ext", manyExt, 0, packet.ReasonBadExtHeader},
		{"ipv6-hop-by-hop-second", hbhSecond, 0, packet.ReasonBadExtHeader},
		{"ipv6-ext-beyond-payload", mod(maxExt, func(b []byte) { b[14+40+1] = 200 }), 0, packet.ReasonBadExtHeader},
		{"ipv4-non-first-fragment", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[20:], 1) }), 0, packet.ReasonNonFirstFragment},
		{"udp-length-short", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[38:], 12) }), 0, packet.ReasonBadUDPLength},
		{"udp-length-long", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[38:], 14) }), 0, packet.ReasonBadUDPLength},
		{"udp-length-below-8", mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[38:], 7) }), 0, packet.ReasonBadUDPLength},
		{"udp-header-cut", mod(good4[:14+20+7], func(b []byte) { binary.BigEndian.PutUint16(b[16:], 27) }), 0, packet.ReasonBadUDPLength},
		{"tcp-offset-4", mod(tcp4, func(b []byte) { b[14+20+12] = 4 << 4 }), 0, packet.ReasonBadTCPOffset},
		{"tcp-offset-beyond", mod(tcp4, func(b []byte) { b[14+20+12] = 15 << 4 }), 0, packet.ReasonBadTCPOffset},
		{"icmp", icmp, 0, packet.ReasonUnsupportedProto},
		{"pppoe-ok", pppoe4, 0, packet.ReasonOK},
		{"pppoe-short-header", pppoe4[:14+5], 0, packet.ReasonTruncated},
		{"pppoe-no-ppp-proto", pppoe4[:14+7], 0, packet.ReasonTruncated},
		{"pppoe-version-2", mod(pppoe4, func(b []byte) { b[14] = 0x21 }), 0, packet.ReasonBadPPPoE},
		{"pppoe-type-2", mod(pppoe4, func(b []byte) { b[14] = 0x12 }), 0, packet.ReasonBadPPPoE},
		{"pppoe-code-padt", mod(pppoe4, func(b []byte) { b[15] = 0xA7 }), 0, packet.ReasonBadPPPoE},
		{"pppoe-length-0", mod(pppoe4, func(b []byte) { b[18], b[19] = 0, 0 }), 0, packet.ReasonBadPPPoE},
		{"pppoe-length-1", mod(pppoe4, func(b []byte) { b[18], b[19] = 0, 1 }), 0, packet.ReasonBadPPPoE},
		{"pppoe-length-beyond-frame", pppoeLen(pppoe4, 1), 0, packet.ReasonBadPPPoE},
		{"pppoe-length-max", mod(pppoe4, func(b []byte) { b[18], b[19] = 0xFF, 0xFF }), 0, packet.ReasonBadPPPoE},
		{"pppoe-frame-cut", pppoe4[:len(pppoe4)-1], 0, packet.ReasonBadPPPoE},
		{"pppoe-length-inside-ipv4", pppoeLen(pppoe4, -1), 0, packet.ReasonBadTotalLength},
		{"pppoe-length-inside-ipv6", pppoeLen(pppoe6, -1), 0, packet.ReasonBadTotalLength},
		{"pppoe-length-inside-ip-header", pppoeLen(pppoe4, -20), 0, packet.ReasonTruncated},
		{"pppoe-ipv4-proto-ipv6-header", mod(pppoe6, func(b []byte) { b[21] = 0x21 }), 0, packet.ReasonBadIPVersion},
		{"pppoe-lcp", mod(pppoe4, func(b []byte) { b[20], b[21] = 0xC0, 0x21 }), 0, packet.ReasonUnknownEtherType},
		{"pppoe-ipcp", mod(pppoe4, func(b []byte) { b[20], b[21] = 0x80, 0x21 }), 0, packet.ReasonUnknownEtherType},
		{"pppoe-pfc", pfc, 0, packet.ReasonUnknownEtherType},
		{"pppoe-discovery", mod(pppoe4, func(b []byte) { b[12], b[13] = 0x88, 0x63 }), 0, packet.ReasonUnknownEtherType},
		{"pppoe-three-vlans", with(udp4(nil), func(s *craft.Spec) { s.PPPoE = true; s.VLANs = make([]craft.VLAN, 3) }).Build(), 0, packet.ReasonTooManyVLANs},
		{"null-pppoe-ethertype", mod(good4[10:], func(b []byte) { binary.LittleEndian.PutUint32(b, 0x8864) }), packet.LinkNull, packet.ReasonUnknownAddressFamily},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p packet.Parsed
			if got := p.Decode(tc.frame, tc.link); got != tc.want || p.Reason != tc.want {
				t.Errorf("Decode = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDecodePPPoEFields checks what a PPPoE frame that is not IP leaves in
// Parsed: an LCP frame has the session and the offset after the PPP protocol
// field, a bad PPPoE header only the link fields.
func TestDecodePPPoEFields(t *testing.T) {
	f := with(udp4([]byte("lcp")), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 0x18E5; s.VLANs = []craft.VLAN{{TCI: 5}} }).Build()
	f[24], f[25] = 0xC0, 0x21 // LCP
	var p packet.Parsed
	if r := p.Decode(f, packet.LinkEthernet); r != packet.ReasonUnknownEtherType ||
		!p.PPPoE || p.PPPoESession != 0x18E5 || p.EtherType != packet.EtherTypePPPoESession || p.L3Off != 14+4+8 ||
		p.Version != 0 || p.NumVLAN != 1 || p.End != 0 {
		t.Errorf("LCP: %v, %+v", r, p)
	}
	f[18] = 0x12 // PPPoE type 2
	if r := p.Decode(f, packet.LinkEthernet); r != packet.ReasonBadPPPoE || p.PPPoE || p.PPPoESession != 0 ||
		p.EtherType != packet.EtherTypePPPoESession || p.L3Off != 14+4 {
		t.Errorf("bad PPPoE: %v, %+v", r, p)
	}
}

func TestReasonStrings(t *testing.T) {
	seen := map[string]bool{}
	for r := range packet.NumReasons {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c == '_') {
				t.Errorf("Reason(%d).String() = %q is not snake_case", r, s)
			}
		}
		seen[s] = true
	}
	if packet.NumReasons.String() != "unknown" || packet.ReasonOK.String() != "ok" {
		t.Error("out-of-range or OK name wrong")
	}
}

func TestLinkTypeFromDLT(t *testing.T) {
	for dlt, want := range map[int]packet.LinkType{
		0: packet.LinkNull, 1: packet.LinkEthernet, 12: packet.LinkRaw, 14: packet.LinkRaw,
		101: packet.LinkRaw, 108: packet.LinkNull, 113: packet.LinkLinuxSLL, 276: packet.LinkLinuxSLL2,
	} {
		if got, ok := packet.LinkTypeFromDLT(dlt); !ok || got != want {
			t.Errorf("LinkTypeFromDLT(%d) = %v, %v; want %v", dlt, got, ok, want)
		}
	}
	for _, dlt := range []int{105, 127, 228, -1} {
		if _, ok := packet.LinkTypeFromDLT(dlt); ok {
			t.Errorf("LinkTypeFromDLT(%d) ok", dlt)
		}
	}
}

// TestDecodeNullBigEndian checks DLT_LOOP's network-order family.
func TestDecodeNullBigEndian(t *testing.T) {
	f := with(udp6(nil), func(s *craft.Spec) { s.Link = packet.LinkNull }).Build()
	binary.BigEndian.PutUint32(f, 28)
	var p packet.Parsed
	if r := p.Decode(f, packet.LinkNull); r != packet.ReasonOK || p.Version != 6 {
		t.Fatalf("Decode = %v, version %d", r, p.Version)
	}
}

// TestDecodeResets decodes A then B into one value and compares with a fresh
// decode of B, for every pair of a mixed set of frames.
func TestDecodeResets(t *testing.T) {
	frames := kinds()
	for _, a := range frames {
		for _, b := range frames {
			var reused, fresh packet.Parsed
			reused.Decode(a.frame, a.link)
			reused.Decode(b.frame, b.link)
			fresh.Decode(b.frame, b.link)
			if reused != fresh {
				t.Errorf("%s then %s: %+v, fresh %+v", a.name, b.name, reused, fresh)
			}
		}
	}
}

type kind struct {
	name  string
	frame []byte
	link  packet.LinkType
}

// kinds returns one frame of each kind the benchmarks and allocation tests use.
func kinds() []kind {
	callID := "a84b4c76e66710@pc33.atlanta.example.com"
	vlan := []craft.VLAN{{TPID: packet.EtherTypeQinQ, TCI: 100}, {TCI: 200}}
	frag := craft.Fragment(with(udp6(craft.SIPInvite(callID)), func(s *craft.Spec) { s.ID = 7 }), 256)
	return []kind{
		{"invite", udp4(craft.SIPInvite(callID)).Build(), 0},
		{"ack", udp4(craft.SIPAck(callID)).Build(), 0},
		{"200ok", udp4(craft.SIP200OK(callID)).Build(), 0},
		{"compact", udp4(craft.SIPCompact(callID)).Build(), 0},
		{"no-callid", udp4(craft.SIPNoCallID()).Build(), 0},
		{"ipv6", udp6(craft.SIPInvite(callID)).Build(), 0},
		{"vlan", with(udp4(craft.SIPInvite(callID)), func(s *craft.Spec) { s.VLANs = vlan }).Build(), 0},
		{"tcp", with(udp4(craft.SIPInvite(callID)), func(s *craft.Spec) { s.Proto = craft.TCP }).Build(), 0},
		{"ipv4-options", with(udp4(craft.SIPAck(callID)), func(s *craft.Spec) { s.IPOptions = []byte{0x94, 4, 0, 0} }).Build(), 0},
		{"ipv6-fragment-1", frag[0], 0},
		{"ipv6-fragment-2", frag[1], 0},
		{"sll2", with(udp4(craft.SIPAck(callID)), func(s *craft.Spec) { s.Link = packet.LinkLinuxSLL2 }).Build(), packet.LinkLinuxSLL2},
		{"truncated", udp4(craft.SIPAck(callID)).Build()[:40], 0},
		{"pppoe", with(udp4(craft.SIPInvite(callID)), func(s *craft.Spec) { s.PPPoE = true; s.PPPoESession = 0x18E5 }).Build(), 0},
		{"pppoe-vlan-ipv6", with(udp6(craft.SIPInvite(callID)), func(s *craft.Spec) { s.PPPoE = true; s.VLANs = vlan[1:] }).Build(), 0},
		{"pppoe-lcp", func() []byte {
			f := with(udp4(nil), func(s *craft.Spec) { s.PPPoE = true }).Build()
			f[20], f[21] = 0xC0, 0x21
			return f
		}(), 0},
	}
}

func TestDecodeNoAllocs(t *testing.T) {
	var p packet.Parsed
	for _, k := range kinds() {
		if n := testing.AllocsPerRun(100, func() { p.Decode(k.frame, k.link) }); n != 0 {
			t.Errorf("Decode(%s) allocates %v times", k.name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = packet.ReasonBadExtHeader.String() }); n != 0 {
		t.Errorf("Reason.String allocates %v times", n)
	}
}

// TestDecodeCaptures decodes every frame of the corpus's captures: no panic,
// offsets in order, and UDP/TCP frames with ports.
func TestDecodeCaptures(t *testing.T) {
	var total, ok int
	cs := testenv.Captures(t)
	for _, c := range cs {
		name := c.Path
		r, err := capture.Open(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var p packet.Parsed
		for {
			f, err := r.Next()
			if err != nil {
				break
			}
			link, known := packet.LinkTypeFromDLT(int(f.LinkType))
			if !known {
				continue
			}
			total++
			if p.Decode(f.Data, link) == packet.ReasonOK {
				ok++
				checkInvariants(t, &p, f.Data)
			}
		}
		r.Close()
	}
	t.Logf("%d frames in %d captures, %d decoded to ok", total, len(cs), ok)
	if total > 0 && ok == 0 {
		t.Error("no frame decoded")
	}
}

// TestDecodePPPoECapture decodes the real DSL capture, SIP over PPPoE: every
// frame is UDP in the one PPPoE session, with valid checksums, and a NAT
// rewrite keeps them valid.
func TestDecodePPPoECapture(t *testing.T) {
	r, err := capture.Open(testenv.RepoData(t, "captures", "sipnab_DTMFsipinfo.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var p packet.Parsed
	n := 0
	for ; ; n++ {
		f, err := r.Next()
		if err != nil {
			break
		}
		link, _ := packet.LinkTypeFromDLT(int(f.LinkType))
		frame := bytes.Clone(f.Data)
		if r := p.Decode(frame, link); r != packet.ReasonOK || !p.PPPoE || p.PPPoESession != 0x18E5 ||
			p.L3Off != 14+6+2 || p.End != len(frame) || p.Proto != packet.ProtoUDP || !p.VerifyChecksums(frame) {
			t.Fatalf("frame %d: %v, %+v", f.Number, r, p)
		}
		if !p.SetDst(frame, netip.MustParseAddr("10.0.0.2"), 5080) || !p.SetSrc(frame, netip.MustParseAddr("10.0.0.1"), 5060) ||
			!p.VerifyChecksums(frame) {
			t.Fatalf("frame %d: checksums after NAT", f.Number)
		}
	}
	if n != 32 {
		t.Errorf("%d frames, want 32", n)
	}
}

func checkInvariants(t *testing.T, p *packet.Parsed, frame []byte) {
	t.Helper()
	offs := []int{p.L3Off, p.L4Off, p.PayloadOff, p.End}
	prev := 0
	for _, o := range offs {
		if o == 0 {
			continue
		}
		if o < prev || o > len(frame) {
			t.Fatalf("offsets out of order or beyond %d: L3 %d L4 %d payload %d end %d (%v)", len(frame), p.L3Off, p.L4Off, p.PayloadOff, p.End, p.Reason)
		}
		prev = o
	}
	if p.PayloadOff != 0 && p.End == 0 {
		t.Fatalf("payload offset without End")
	}
}
