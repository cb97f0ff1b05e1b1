package packet_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

func TestChecksumMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2100)
	for n := range len(buf) {
		for i := range buf[:n] {
			buf[i] = byte(rng.Uint32())
		}
		if got, want := packet.Checksum(buf[:n]), craft.Checksum(buf[:n]); got != want {
			t.Fatalf("len %d: Checksum = %#04x, oracle %#04x", n, got, want)
		}
	}
	// Carries: all-ones words and long runs.
	for _, n := range []int{0, 1, 2, 63, 64, 65, 1500, 9000, 65535} {
		b := bytes.Repeat([]byte{0xFF}, n)
		if got, want := packet.Checksum(b), craft.Checksum(b); got != want {
			t.Errorf("0xFF x %d: Checksum = %#04x, oracle %#04x", n, got, want)
		}
	}
	// RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	if got := packet.Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("RFC 1071 example: %#04x", got)
	}
}

// randomSpec returns a random UDP or TCP packet, IPv4 or IPv6, with or
// without VLAN tags, PPPoE, IPv4 options and IPv6 extension headers.
func randomSpec(rng *rand.Rand) craft.Spec {
	s := craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, TTL: uint8(rng.IntN(255) + 1), ID: rng.Uint32()}
	v6 := rng.IntN(2) == 0
	s.Src = netip.AddrPortFrom(randomAddr(rng, v6), uint16(rng.Uint32()))
	s.Dst = netip.AddrPortFrom(randomAddr(rng, v6), uint16(rng.Uint32()))
	if rng.IntN(2) == 0 {
		s.Proto = craft.TCP
		s.TCPFlags = uint8(rng.Uint32()) | craft.ACK
		s.Seq, s.Ack = rng.Uint32(), rng.Uint32()
	} else {
		s.ZeroUDPChecksum = !v6 && rng.IntN(4) == 0
	}
	for range rng.IntN(3) {
		s.VLANs = append(s.VLANs, craft.VLAN{TPID: []uint16{0x8100, 0x88A8}[rng.IntN(2)], TCI: uint16(rng.Uint32())})
	}
	if rng.IntN(3) == 0 {
		s.PPPoE, s.PPPoESession = true, uint16(rng.Uint32())
	}
	if !v6 && rng.IntN(3) == 0 {
		s.IPOptions = make([]byte, 4*rng.IntN(11))
		for i := range s.IPOptions {
			s.IPOptions[i] = 1 // NOP
		}
	}
	if v6 && rng.IntN(3) == 0 {
		s.IPv6Ext = []craft.Ext{{Type: 0, Data: make([]byte, 6)}, {Type: 60, Data: make([]byte, rng.IntN(30))}}
	}
	s.Payload = make([]byte, rng.IntN(1400))
	for i := range s.Payload {
		s.Payload[i] = byte(rng.Uint32())
	}
	return s
}

func randomAddr(rng *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var a [16]byte
		binary.LittleEndian.PutUint64(a[:], rng.Uint64())
		binary.LittleEndian.PutUint64(a[8:], rng.Uint64())
		return netip.AddrFrom16(a)
	}
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], rng.Uint32())
	return netip.AddrFrom4(a)
}

// TestRewriteEqualsRecomputation rewrites random packets incrementally and
// compares each result, byte for byte, with the packet built from scratch by
// craft (whose checksums are a full recomputation).
func TestRewriteEqualsRecomputation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var p packet.Parsed
	for i := range 3000 {
		s := randomSpec(rng)
		frame := s.Build()
		if r := p.Decode(frame, packet.LinkEthernet); r != packet.ReasonOK || p.PPPoE != s.PPPoE || p.PPPoESession != s.PPPoESession {
			t.Fatalf("#%d: Decode = %v, PPPoE %v %#x", i, r, p.PPPoE, p.PPPoESession)
		}
		want := s
		want.Dst = netip.AddrPortFrom(randomAddr(rng, s.Dst.Addr().Is6()), uint16(rng.Uint32()))
		want.Src = netip.AddrPortFrom(randomAddr(rng, s.Src.Addr().Is6()), uint16(rng.Uint32()))
		if rng.IntN(4) == 0 {
			want.Dst = netip.AddrPortFrom(want.Dst.Addr(), s.Dst.Port()) // address only
		}
		if !p.SetDst(frame, want.Dst.Addr(), want.Dst.Port()) || !p.SetSrc(frame, want.Src.Addr(), want.Src.Port()) {
			t.Fatalf("#%d: rewrite refused", i)
		}
		if exp := want.Build(); !bytes.Equal(frame, exp) {
			t.Fatalf("#%d (%v > %v, proto %d): incremental rewrite differs from recomputation\n got %x\nwant %x",
				i, want.Src, want.Dst, p.Proto, frame, exp)
		}
		if p.SrcAddrPort() != want.Src || p.DstAddrPort() != want.Dst || !p.VerifyChecksums(frame) {
			t.Fatalf("#%d: Parsed not updated or checksums bad: %v > %v", i, p.SrcAddrPort(), p.DstAddrPort())
		}
		var fresh packet.Parsed
		fresh.Decode(frame, packet.LinkEthernet)
		if fresh != p {
			t.Fatalf("#%d: Parsed after rewrite %+v, fresh decode %+v", i, p, fresh)
		}
	}
}

// TestRewriteFragments rewrites every fragment of a datagram and checks that
// the reassembled datagram equals the one built with the new addresses.
func TestRewriteFragments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		s := randomSpec(rng)
		s.VLANs = nil
		s.Payload = append(s.Payload, make([]byte, 300)...)
		want := s
		want.Dst = netip.AddrPortFrom(randomAddr(rng, s.Dst.Addr().Is6()), uint16(rng.Uint32()))
		m := 64 + rng.IntN(600)
		got, exp := craft.Fragment(s, m), craft.Fragment(want, m)
		if len(exp) != len(got) {
			t.Fatalf("#%d: %d fragments, want %d", i, len(got), len(exp))
		}
		for j, f := range got {
			var p packet.Parsed
			p.Decode(f, packet.LinkEthernet)
			if !p.SetDst(f, want.Dst.Addr(), want.Dst.Port()) {
				t.Fatalf("#%d/%d: SetDst refused (%v)", i, j, p.Reason)
			}
			if !bytes.Equal(f, exp[j]) {
				t.Fatalf("#%d fragment %d differs\n got %x\nwant %x", i, j, f, exp[j])
			}
		}
	}
}

func TestRewriteUDPChecksumEdges(t *testing.T) {
	// A zero UDP checksum over IPv4 stays zero.
	s := udp4([]byte("x"))
	s.ZeroUDPChecksum = true
	f := s.Build()
	var p packet.Parsed
	p.Decode(f, 0)
	p.SetDst(f, netip.MustParseAddr("10.1.2.3"), 5080)
	if ck := binary.BigEndian.Uint16(f[p.L4Off+6:]); ck != 0 {
		t.Errorf("zero UDP checksum became %#04x", ck)
	}
	// A rewrite whose result would be 0 writes 0xFFFF: search for a
	// destination port that makes the computed checksum 0.
	s = udp4([]byte("xvs"))
	found := false
	for port := range 65536 {
		s.Dst = netip.AddrPortFrom(s.Dst.Addr(), uint16(port))
		f := s.Build()
		if binary.BigEndian.Uint16(f[14+20+6:]) != 0xFFFF {
			continue
		}
		found = true
		g := udp4([]byte("xvs")).Build()
		p.Decode(g, 0)
		p.SetDst(g, s.Dst.Addr(), s.Dst.Port())
		if !bytes.Equal(f, g) {
			t.Errorf("rewrite to a zero-sum port: got %x, want %x", g[14+20:14+28], f[14+20:14+28])
		}
		break
	}
	if !found {
		t.Fatal("no port gives a zero checksum")
	}
}

func TestRewriteRefuses(t *testing.T) {
	f := udp4([]byte("x")).Build()
	orig := bytes.Clone(f)
	var p packet.Parsed
	p.Decode(f, 0)
	if p.SetDst(f, netip.MustParseAddr("2001:db8::1"), 1) || p.SetSrc(f, netip.Addr{}, 1) {
		t.Error("rewrite with another family accepted")
	}
	var bad packet.Parsed
	bad.Decode(f[:30], 0)
	if bad.SetDst(f, netip.MustParseAddr("10.0.0.1"), 1) {
		t.Error("rewrite of an undecoded frame accepted")
	}
	if !bytes.Equal(f, orig) {
		t.Error("refused rewrite changed the frame")
	}
}

func TestSetMAC(t *testing.T) {
	f := udp4([]byte("x")).Build()
	dst, src := [6]byte{1, 2, 3, 4, 5, 6}, [6]byte{7, 8, 9, 10, 11, 12}
	packet.SetDstMAC(f, dst)
	packet.SetSrcMAC(f, src)
	if [6]byte(f[0:6]) != dst || [6]byte(f[6:12]) != src {
		t.Errorf("MACs %x %x", f[0:6], f[6:12])
	}
	packet.SetDstMAC(f[:5], dst) // must not panic

	next := [6]byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf}
	packet.ForwardMAC(f, next)
	if [6]byte(f[0:6]) != next || [6]byte(f[6:12]) != dst {
		t.Errorf("forwarded MACs %x %x, want %x %x", f[0:6], f[6:12], next, dst)
	}
	packet.ForwardMAC(f[:13], next) // must not panic
}

func TestRewriteNoAllocs(t *testing.T) {
	var p packet.Parsed
	f4 := udp4(craft.SIPInvite("x")).Build()
	f6 := with(udp6(craft.SIPInvite("x")), func(s *craft.Spec) { s.Proto = craft.TCP }).Build()
	fp := with(udp4(craft.SIPInvite("x")), func(s *craft.Spec) { s.PPPoE = true }).Build()
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	mac := [6]byte{1, 2, 3, 4, 5, 6}
	for name, f := range map[string]func(){
		"ipv4":  func() { p.Decode(f4, 0); p.SetDst(f4, a4, 5060); p.SetSrc(f4, b4, 5060) },
		"ipv6":  func() { p.Decode(f6, 0); p.SetDst(f6, a6, 5060); p.SetSrc(f6, b6, 5060) },
		"pppoe": func() { p.Decode(fp, 0); p.SetDst(fp, a4, 5060); p.SetSrc(fp, b4, 5060) },
		"mac":   func() { packet.SetDstMAC(f4, mac); packet.SetSrcMAC(f4, mac); packet.ForwardMAC(f4, mac) },
		"checksum": func() {
			if packet.Checksum(f4) == 1 {
				panic("unreachable")
			}
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}
