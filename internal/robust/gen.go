package robust

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/xvs-lb/xvs/internal/craft"
)

// CounterDigits is the width of the hexadecimal counter a Counter writes
// into a Call-ID: 2^64 unique Call-IDs from one buffer.
const CounterDigits = 16

const hexDigits = "0123456789abcdef"

// Counter rewrites, in place, CounterDigits hexadecimal digits at the start
// of the Call-ID value of a SIP message held in Buf (a UDP payload or a
// whole frame), so that one buffer yields any number of unique Call-IDs
// without allocating. A frame's UDP checksum is not updated: the balancer
// does not verify it, and a kernel socket computes its own.
type Counter struct {
	Buf []byte
	off int
}

// NewCounter finds the Call-ID in buf, which must start with CounterDigits
// zeros ("Call-ID: 0000000000000000@host").
func NewCounter(buf []byte) (Counter, error) {
	mark := []byte("Call-ID: " + strings.Repeat("0", CounterDigits))
	i := bytes.Index(buf, mark)
	if i < 0 {
		return Counter{}, fmt.Errorf("robust: no Call-ID counter in the message")
	}
	return Counter{Buf: buf, off: i + len("Call-ID: ")}, nil
}

// Set writes n as the counter.
func (c Counter) Set(n uint64) {
	b := c.Buf[c.off : c.off+CounterDigits]
	for i := CounterDigits - 1; i >= 0; i-- {
		b[i] = hexDigits[n&15]
		n >>= 4
	}
}

// CallID returns the Call-ID a counter value gives for domain (as
// CounterInvite builds it).
func CallID(n uint64, domain string) string {
	return fmt.Sprintf("%016x@%s", n, domain)
}

// CounterInvite returns an 800-byte-class INVITE whose Call-ID is a counter
// (all zeros) at domain, ready for NewCounter.
func CounterInvite(domain string) []byte {
	return craft.SIPInvite(strings.Repeat("0", CounterDigits) + "@" + domain)
}

// CounterTrying returns a "100 Trying" response (a real server's first
// answer) whose Call-ID is a counter at domain.
func CounterTrying(domain string) []byte {
	id := strings.Repeat("0", CounterDigits) + "@" + domain
	return []byte("SIP/2.0 100 Trying\r\n" +
		"Via: SIP/2.0/UDP 10.4.3.7:5060;branch=z9hG4bK-robust\r\n" +
		"From: \"Alice\" <sip:alice@10.4.3.7>;tag=1\r\n" +
		"To: <sip:bob@10.4.3.192>\r\n" +
		"Call-ID: " + id + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n")
}

// Payload is a named UDP payload for a junk flood.
type Payload struct {
	Name string
	Data []byte
}

// Hostile SIP and non-SIP payload limits used by the generators.
const (
	// LongCallID exceeds sipparse.MaxCallIDLen (255).
	LongCallID = 300
	// ManyHeaders pushes the Call-ID beyond sipparse.MaxScan (8 KiB).
	ManyHeaders = 3000
	// MaxUDPPayload is the largest UDP payload over IPv4 (65535 - 20 - 8).
	MaxUDPPayload = 65507
)

// sipWith returns an INVITE whose Call-ID header line is callIDLine,
// preceded by extra header lines.
func sipWith(extra []string, callIDLine string, blank bool) []byte {
	var b strings.Builder
	b.WriteString("INVITE sip:bob@10.4.3.192 SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP 10.4.3.7:5060;branch=z9hG4bK-hostile\r\n")
	for _, e := range extra {
		b.WriteString(e)
		b.WriteString("\r\n")
	}
	b.WriteString("From: <sip:alice@10.4.3.7>;tag=1\r\nTo: <sip:bob@10.4.3.192>\r\n")
	if callIDLine != "" {
		b.WriteString(callIDLine)
		b.WriteString("\r\n")
	}
	b.WriteString("CSeq: 1 INVITE\r\nContent-Length: 0\r\n")
	if blank {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// HostilePayloads returns the junk UDP payloads of the floods: non-SIP
// datagrams (random bytes, RTP, STUN, DNS, keep-alives, empty) and SIP with
// hostile Call-IDs (too long, control bytes, internal spaces, thousands of
// headers, no blank line, 64 KiB). Random ones come from seed.
func HostilePayloads(seed uint64) []Payload {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	many := make([]string, ManyHeaders)
	for i := range many {
		many[i] = fmt.Sprintf("X-Junk-%d: %d", i, i)
	}
	big := sipWith([]string{"X-Pad: " + strings.Repeat("a", MaxUDPPayload-400)}, "Call-ID: big-64k@robust", true)
	rtp := append([]byte{0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef}, random(160)...)
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	dns := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1}
	return []Payload{
		{"empty", nil},
		{"random-16", random(16)},
		{"random-512", random(512)},
		{"random-1400", random(1400)},
		{"rtp", rtp},
		{"stun", stun},
		{"dns-query", dns},
		{"crlf-keepalive", []byte("\r\n\r\n")},
		{"nul-keepalive", make([]byte, 4)},
		{"sip-no-callid", craft.SIPNoCallID()},
		{"callid-too-long", sipWith(nil, "Call-ID: "+strings.Repeat("x", LongCallID), true)},
		{"callid-255", sipWith(nil, "Call-ID: "+strings.Repeat("y", 255), true)},
		{"callid-control-bytes", sipWith(nil, "Call-ID: abc\x01\x02\x1bdef@robust", true)},
		{"callid-internal-space", sipWith(nil, "Call-ID: abc def@robust", true)},
		{"callid-empty", sipWith(nil, "Call-ID:   ", true)},
		{"callid-unterminated", []byte("INVITE sip:bob@x SIP/2.0\r\nCall-ID: unterminated@robust")},
		{"callid-nonascii", sipWith(nil, "Call-ID: caf\xc3\xa9@robust", true)},
		{"headers-3000", sipWith(many, "Call-ID: after-3000-headers@robust", true)},
		{"no-blank-line", sipWith(nil, "Call-ID: no-blank-line@robust", false)},
		{"only-start-line", []byte("INVITE sip:bob@x SIP/2.0\r\n")},
		{"start-line-no-eol", []byte("INVITE sip:bob@x SIP/2.0")},
		{"sip-64k", big},
		{"binary-after-sip", append(sipWith(nil, "", false), random(1000)...)},
	}
}

// JunkFrames returns frames for a junk flood of the balancer's own link that
// do not decode, or decode to something other than a good SIP datagram:
// truncations of a good frame, bogus IP and UDP lengths, bad IHL, too many
// VLAN tags, non-IP EtherTypes, ICMP and TCP to the VIP. spec is a good SIP
// datagram to the virtual service (its Payload set).
func JunkFrames(spec craft.Spec) []Payload {
	good := spec.Build()
	l3 := 14 + 4*len(spec.VLANs)
	var out []Payload
	add := func(name string, f []byte) { out = append(out, Payload{name, f}) }
	set := func(f func(b []byte)) []byte { b := append([]byte(nil), good...); f(b); return b }
	for _, n := range []int{0, 1, 13, 14, l3 + 10, l3 + 20, l3 + 27, l3 + 28, l3 + 100, len(good) - 1} {
		add(fmt.Sprintf("truncated-%d", n), append([]byte(nil), good[:n]...))
	}
	add("ip-total-length-huge", set(func(b []byte) { b[l3+2], b[l3+3] = 0xff, 0xff }))
	add("ip-total-length-tiny", set(func(b []byte) { b[l3+2], b[l3+3] = 0, 10 }))
	add("ip-ihl-3", set(func(b []byte) { b[l3] = 0x43 }))
	add("ip-ihl-15", set(func(b []byte) { b[l3] = 0x4f }))
	add("ip-version-7", set(func(b []byte) { b[l3] = 0x75 }))
	add("udp-length-huge", set(func(b []byte) { b[l3+24], b[l3+25] = 0xff, 0xff }))
	add("udp-length-4", set(func(b []byte) { b[l3+24], b[l3+25] = 0, 4 }))
	add("arp-ethertype", set(func(b []byte) { b[12], b[13] = 0x08, 0x06 }))
	add("lldp-ethertype", set(func(b []byte) { b[12], b[13] = 0x88, 0xcc }))
	s := spec
	s.VLANs = []craft.VLAN{{TCI: 1}, {TCI: 2}, {TCI: 3}}
	add("vlan-3-tags", s.Build())
	s = spec
	s.Proto = craft.TCP
	add("tcp-to-udp-service", s.Build())
	s = spec
	s.Proto = 1 // ICMP
	s.Payload = []byte{8, 0, 0, 0, 0, 1, 0, 1}
	add("icmp-to-vip", s.Build())
	return out
}

// VIPSpec is a craft.Spec from client to vip over Ethernet with the given
// payload.
func VIPSpec(client, vip netip.AddrPort, clientMAC, lbMAC [6]byte, payload []byte) craft.Spec {
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: client, Dst: vip, Payload: payload}
}
