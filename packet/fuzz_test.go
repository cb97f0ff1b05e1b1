package packet_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/packet"
)

// FuzzDecode checks that Decode never panics, keeps its offsets inside the
// frame and in order, is deterministic, and that a NAT rewrite there and back
// restores the frame.
func FuzzDecode(f *testing.F) {
	for _, k := range kinds() {
		f.Add(k.frame, uint8(k.link))
	}
	f.Fuzz(func(t *testing.T, frame []byte, link uint8) {
		lt := packet.LinkType(link % 6) // the five link types and one invalid
		var p, q packet.Parsed
		r := p.Decode(frame, lt)
		if q.Decode(frame, lt) != r || p != q {
			t.Fatalf("two decodes differ: %+v / %+v", p, q)
		}
		if r >= packet.NumReasons || p.Reason != r {
			t.Fatalf("reason %d", r)
		}
		checkInvariants(t, &p, frame)
		if r == packet.ReasonOK && (p.L4Off == 0 || p.PayloadOff < p.L4Off || p.End < p.PayloadOff) {
			t.Fatalf("ok decode without L4 offsets: %+v", p)
		}
		if pl := p.Payload(frame); pl != nil && len(pl) != p.End-p.PayloadOff {
			t.Fatalf("payload length %d", len(pl))
		}
		if r != packet.ReasonOK && r != packet.ReasonNonFirstFragment {
			return
		}
		orig := bytes.Clone(frame)
		src, dst := p.SrcAddrPort(), p.DstAddrPort()
		x, y := netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("172.16.0.1")
		if p.Version == 6 {
			x, y = netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("fe80::1")
		}
		ok := p.SetDst(frame, x, 5080) && p.SetSrc(frame, y, 1) &&
			p.SetDst(frame, dst.Addr(), dst.Port()) && p.SetSrc(frame, src.Addr(), src.Port())
		if !ok {
			t.Fatal("rewrite refused on a decoded frame")
		}
		if p != q {
			t.Fatalf("Parsed after round trip %+v, want %+v", p, q)
		}
		// 0xFFFF is not a checksum any sender computes for an IPv4 header
		// or TCP (only UDP maps 0 to it): the update canonicalises it to 0.
		for _, off := range checksumOffsets(&p) {
			if binary.BigEndian.Uint16(orig[off:]) == 0xFFFF && binary.BigEndian.Uint16(frame[off:]) == 0 {
				frame[off], frame[off+1] = 0xFF, 0xFF
			}
		}
		if !bytes.Equal(frame, orig) {
			t.Fatalf("round trip changed the frame\n got %x\nwant %x", frame, orig)
		}
	})
}

func checksumOffsets(p *packet.Parsed) []int {
	var offs []int
	if p.Version == 4 {
		offs = append(offs, p.L3Off+10)
	}
	if p.L4Off != 0 && p.Proto == packet.ProtoTCP {
		offs = append(offs, p.L4Off+16)
	}
	return offs
}
