package packet_test

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvs-lb/xvs/packet"
)

var (
	sinkReason packet.Reason
	sinkSum    uint16
)

func reportPPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// baseline checksums the whole frame: one pass that touches every byte, the
// yardstick the per-packet costs are measured against in the same run.
func baseline(b *testing.B, frame []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		sinkSum = packet.Checksum(frame)
	}
	reportPPS(b)
}

func BenchmarkDecode(b *testing.B) {
	for _, k := range kinds() {
		b.Run(k.name, func(b *testing.B) {
			var p packet.Parsed
			b.ReportAllocs()
			for b.Loop() {
				sinkReason = p.Decode(k.frame, k.link)
			}
			reportPPS(b)
		})
		b.Run(k.name+"-baseline-checksum", func(b *testing.B) { baseline(b, k.frame) })
	}
}

// BenchmarkRewrite measures the NAT of a full-NAT balancer (destination to
// the real server, source to the balancer's address) plus the MAC rewrite,
// after a decode.
func BenchmarkRewrite(b *testing.B) {
	for _, k := range kinds()[:8] {
		var p packet.Parsed
		p.Decode(k.frame, k.link)
		rs, lb := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
		if p.Version == 6 {
			rs, lb = netip.MustParseAddr("2001:db8:2::2"), netip.MustParseAddr("2001:db8:2::1")
		}
		mac := [6]byte{2, 0, 0, 0, 0, 9}
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkReason = p.Decode(k.frame, k.link)
				p.SetDst(k.frame, rs, 5060)
				p.SetSrc(k.frame, lb, 5060)
				packet.SetDstMAC(k.frame, mac)
				packet.SetSrcMAC(k.frame, mac)
			}
			reportPPS(b)
		})
		b.Run(k.name+"-baseline-checksum", func(b *testing.B) { baseline(b, k.frame) })
	}
}

// BenchmarkVsGopacket decodes the same frames with gopacket's
// DecodingLayerParser (Ethernet, Dot1Q, IPv4, IPv6, UDP, TCP, preallocated
// layers: its fastest mode) and with Decode.
func BenchmarkVsGopacket(b *testing.B) {
	for _, k := range kinds()[:8] {
		b.Run(k.name+"/xvs", func(b *testing.B) {
			var p packet.Parsed
			b.ReportAllocs()
			for b.Loop() {
				sinkReason = p.Decode(k.frame, k.link)
			}
			reportPPS(b)
		})
		b.Run(k.name+"/gopacket", func(b *testing.B) {
			var (
				eth     layers.Ethernet
				dot1q   layers.Dot1Q
				ip4     layers.IPv4
				ip6     layers.IPv6
				udp     layers.UDP
				tcp     layers.TCP
				payload gopacket.Payload
			)
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &dot1q, &ip4, &ip6, &udp, &tcp, &payload)
			parser.IgnoreUnsupported = true
			decoded := make([]gopacket.LayerType, 0, 8)
			b.ReportAllocs()
			for b.Loop() {
				if err := parser.DecodeLayers(k.frame, &decoded); err != nil {
					b.Fatal(err)
				}
			}
			reportPPS(b)
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 512, 1500, 9000} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sinkSum = packet.Checksum(buf)
			}
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
