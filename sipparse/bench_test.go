package sipparse_test

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/sipparse"
)

const benchCallID = "a84b4c76e66710@pc33.atlanta.example.com"

var (
	client4 = netip.MustParseAddrPort("192.0.2.10:5060")
	vip4    = netip.MustParseAddrPort("198.51.100.1:5060")
	client6 = netip.MustParseAddrPort("[2001:db8::10]:5060")
	vip6    = netip.MustParseAddrPort("[2001:db8:1::1]:5060")
)

// benchFrames are Ethernet frames of the packet kinds a SIP farm sees, with
// the Call-ID each must yield ("" for none).
func benchFrames() []struct {
	name  string
	frame []byte
	want  string
} {
	v4 := func(p []byte) []byte { return craft.Spec{Src: client4, Dst: vip4, Payload: p}.Build() }
	return []struct {
		name  string
		frame []byte
		want  string
	}{
		{"invite", v4(craft.SIPInvite(benchCallID)), benchCallID},
		{"ack", v4(craft.SIPAck(benchCallID)), benchCallID},
		{"200ok", v4(craft.SIP200OK(benchCallID)), benchCallID},
		{"compact", v4(craft.SIPCompact(benchCallID)), benchCallID},
		{"nocallid", v4(craft.SIPNoCallID()), ""},
		{"ipv6", craft.Spec{Src: client6, Dst: vip6, Payload: craft.SIPInvite(benchCallID)}.Build(), benchCallID},
		{"vlan", craft.Spec{Src: client4, Dst: vip4, VLANs: []craft.VLAN{{TCI: 100}},
			Payload: craft.SIPInvite(benchCallID)}.Build(), benchCallID},
	}
}

func reportPPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// xvsCallID is the data-plane path under test: decode the frame, then find
// the Call-ID in the UDP payload.
func xvsCallID(p *packet.Parsed, frame []byte) ([]byte, bool) {
	if p.Decode(frame, packet.LinkEthernet) != packet.ReasonOK || p.Proto != packet.ProtoUDP {
		return nil, false
	}
	return sipparse.CallID(p.Payload(frame))
}

// gopacketParser is the comparison: gopacket's zero-copy DecodingLayerParser
// for the headers and layers.SIP for the Call-ID.
type gopacketParser struct {
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newGopacketParser() *gopacketParser {
	g := &gopacketParser{}
	g.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &g.eth, &g.dot1q, &g.ip4, &g.ip6, &g.udp)
	g.parser.IgnoreUnsupported = true
	return g
}

func (g *gopacketParser) callID(frame []byte) (string, bool) {
	if err := g.parser.DecodeLayers(frame, &g.decoded); err != nil {
		return "", false
	}
	for _, lt := range g.decoded {
		if lt == layers.LayerTypeUDP {
			sip := layers.NewSIP()
			if err := sip.DecodeFromBytes(g.udp.Payload, gopacket.NilDecodeFeedback); err != nil {
				return "", false
			}
			id := sip.GetCallID()
			return id, id != ""
		}
	}
	return "", false
}

// TestBenchFrames checks that the three benchmarked paths agree on every
// frame, so the benchmarks compare equal work, and that the xvs path does not
// allocate.
func TestBenchFrames(t *testing.T) {
	var p packet.Parsed
	g := newGopacketParser()
	for _, f := range benchFrames() {
		id, ok := xvsCallID(&p, f.frame)
		if string(id) != f.want || ok != (f.want != "") {
			t.Errorf("%s: xvs Call-ID %q, %v; want %q", f.name, id, ok, f.want)
		}
		if gid, _ := g.callID(f.frame); gid != f.want {
			t.Errorf("%s: gopacket Call-ID %q; want %q", f.name, gid, f.want)
		}
		if n := testing.AllocsPerRun(100, func() { sinkID, sinkOK = xvsCallID(&p, f.frame) }); n != 0 {
			t.Errorf("%s: decode + CallID: %v allocs", f.name, n)
		}
	}
}

var sinkSum uint16

// BenchmarkCallID compares, per packet kind, (a) packet.Decode + CallID
// against (b) the RFC 1071 checksum over the whole frame as a
// memory-bandwidth baseline and (c) gopacket's DecodingLayerParser +
// layers.SIP, all in the same run.
func BenchmarkCallID(b *testing.B) {
	for _, f := range benchFrames() {
		b.Run(f.name+"/xvs", func(b *testing.B) {
			var p packet.Parsed
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			for b.Loop() {
				sinkID, sinkOK = xvsCallID(&p, f.frame)
			}
			reportPPS(b)
		})
		b.Run(f.name+"/checksum", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			for b.Loop() {
				sinkSum = packet.Checksum(f.frame)
			}
			reportPPS(b)
		})
		b.Run(f.name+"/gopacket", func(b *testing.B) {
			g := newGopacketParser()
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			var id string
			for b.Loop() {
				id, sinkOK = g.callID(f.frame)
			}
			sinkID = []byte(id)
			reportPPS(b)
		})
	}
}

// BenchmarkScan measures the parser alone on raw payloads: CallID, the
// one-pass Scan and ParseStartLine.
func BenchmarkScan(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name+"/CallID", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			for b.Loop() {
				sinkID, sinkOK = sipparse.CallID(p.data)
			}
			reportPPS(b)
		})
		b.Run(p.name+"/Scan", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			for b.Loop() {
				sinkMsg = sipparse.Scan(p.data)
			}
			reportPPS(b)
		})
		b.Run(p.name+"/ParseStartLine", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkLine = sipparse.ParseStartLine(p.data)
			}
			reportPPS(b)
		})
	}
}

// BenchmarkWorstCase measures the bounded worst case: a datagram of MaxScan
// bytes of two-byte header lines and no Call-ID, next to the checksum of the
// same bytes.
func BenchmarkWorstCase(b *testing.B) {
	p := []byte("MESSAGE sip:a SIP/2.0\n")
	for len(p) < sipparse.MaxScan {
		p = append(p, "x\n"...)
	}
	p = append(p, make([]byte, 64<<10-len(p))...)
	b.Run("CallID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkID, sinkOK = sipparse.CallID(p)
		}
		if st := sipparse.Scan(p).Status; st != sipparse.StatusScanLimit {
			b.Fatalf("status %v", st)
		}
		reportPPS(b)
	})
	b.Run("checksum-64KiB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSum = packet.Checksum(p)
		}
		reportPPS(b)
	})
}
