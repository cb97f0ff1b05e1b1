// Package filtertest is the steering conformance table: the frames a
// [dataplane.Filter] implementation must deliver to the workers and the ones
// it must leave to the kernel, as one list of cases that both filters run —
// the classic-BPF socket filter of internal/rawsock (in golang.org/x/net/bpf's
// VM) and the XDP program of afxdp (BPF_PROG_TEST_RUN, as root) — so that
// the two cannot drift apart.
//
// Each case names both verdicts. They differ only where the classic filter
// delivers more than the XDP program (it accepts every 802.1Q/802.1ad-tagged
// frame, and every IPv6 fragment from a NAT real server's address, and the
// pipeline recycles what is not its own); it never delivers less
// (TestClassicNeverLess).
package filtertest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// Verdict is what a filter does with a frame, or with each fragment of a
// fragmented case.
type Verdict uint8

// Verdicts.
const (
	Pass       Verdict = iota // left to the kernel
	Steer                     // delivered to the workers
	SteerLater                // fragments: the first is left to the kernel, the later ones are delivered
)

func (v Verdict) steers(fragment int) bool {
	return v == Steer || v == SteerLater && fragment > 0
}

// The address plan of the table.
var (
	VIP4     = netip.MustParseAddr("192.0.2.1")   // UDP 5060
	VIP4Any  = netip.MustParseAddr("192.0.2.2")   // TCP, port 0 (any port)
	VIP6     = netip.MustParseAddr("2001:db8::1") // UDP 5060
	VIP6TCP  = netip.MustParseAddr("2001:db8::2") // TCP 443
	Real4    = ap("10.1.0.5:5060")                // NAT real server, UDP
	Real6    = ap("[2001:db8:2::5]:5060")         // NAT real server, UDP
	Client4  = ap("198.51.100.7:40000")
	Client6  = ap("[2001:db8:1::7]:40000")
	router4  = ap("203.0.113.1:0")
	router6  = ap("[2001:db8:ff::1]:0")
	other4   = ap("192.0.2.9:5060") // no service, no real server
	other6   = ap("[2001:db8::9]:5060")
	vlan     = []craft.VLAN{{TCI: 10}}
	qinq     = []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 20}}
	threeTag = []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 20}, {TCI: 30}}
	options  = []byte{1, 1, 1, 1, 1, 1, 1, 1} // eight NOPs
	ext60    = []craft.Ext{{Type: 60, Data: make([]byte, 6)}}
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// Filter is the balancer configuration every case is judged against.
var Filter = dataplane.Filter{
	Services: []dataplane.ServiceMatch{
		{Protocol: packet.ProtoUDP, Addr: VIP4, Port: 5060},
		{Protocol: packet.ProtoTCP, Addr: VIP4Any},
		{Protocol: packet.ProtoUDP, Addr: VIP6, Port: 5060},
		{Protocol: packet.ProtoTCP, Addr: VIP6TCP, Port: 443},
	},
	RealServers: []dataplane.RealServerMatch{
		{Protocol: packet.ProtoUDP, Addr: Real4},
		{Protocol: packet.ProtoUDP, Addr: Real6},
	},
}

// ICMP makes a case an ICMP error (type and code) from a router to the
// case's destination address, quoting a UDP datagram that address sent.
type ICMP struct{ Type, Code uint8 }

// Case is one row of the table.
type Case struct {
	Name string
	// Spec is the frame (for an ICMP case: its VLAN tags, IP options and
	// destination address).
	Spec craft.Spec
	// Fragmented cuts Spec's datagram, given a 3000-byte payload, into IP
	// fragments of at most 1400 payload bytes, each a frame of its own.
	Fragmented bool
	ICMP       *ICMP
	// Raw, when set, is the frame (Spec is ignored).
	Raw []byte
	// Truncate, when positive, cuts the frame to that many bytes.
	Truncate int
	// XDP and Classic are what afxdp's XDP program and rawsock's socket
	// filter must do with the frame.
	XDP, Classic Verdict
}

// Cases is the table.
var Cases = []Case{
	// Virtual services.
	{Name: "udp to VIP:port", Spec: craft.Spec{Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Steer, Classic: Steer},
	{Name: "udp to VIP other port", Spec: craft.Spec{Src: Client4, Dst: ap("192.0.2.1:5061")}, XDP: Pass, Classic: Pass},
	{Name: "tcp to VIP:5060 (udp service)", Spec: craft.Spec{Proto: craft.TCP, Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Pass, Classic: Pass},
	{Name: "tcp to port-0 service", Spec: craft.Spec{Proto: craft.TCP, Src: Client4, Dst: ap("192.0.2.2:443")}, XDP: Steer, Classic: Steer},
	{Name: "udp to port-0 tcp service", Spec: craft.Spec{Src: Client4, Dst: ap("192.0.2.2:443")}, XDP: Pass, Classic: Pass},
	{Name: "IPv4 options shift the ports", Spec: craft.Spec{IPOptions: options, Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Steer, Classic: Steer},
	{Name: "udp to other address", Spec: craft.Spec{Src: Client4, Dst: other4}, XDP: Pass, Classic: Pass},
	{Name: "udp to IPv6 VIP:port", Spec: craft.Spec{Src: Client6, Dst: ap("[2001:db8::1]:5060")}, XDP: Steer, Classic: Steer},
	{Name: "udp to IPv6 VIP other port", Spec: craft.Spec{Src: Client6, Dst: ap("[2001:db8::1]:53")}, XDP: Pass, Classic: Pass},
	{Name: "tcp to IPv6 VIP:443", Spec: craft.Spec{Proto: craft.TCP, Src: Client6, Dst: ap("[2001:db8::2]:443")}, XDP: Steer, Classic: Steer},
	{Name: "tcp to IPv6 VIP:80", Spec: craft.Spec{Proto: craft.TCP, Src: Client6, Dst: ap("[2001:db8::2]:80")}, XDP: Pass, Classic: Pass},
	{Name: "IPv6 near miss (last word)", Spec: craft.Spec{Src: Client6, Dst: ap("[2001:db8::3]:5060")}, XDP: Pass, Classic: Pass},
	{Name: "udp to other IPv6 address", Spec: craft.Spec{Src: Client6, Dst: other6}, XDP: Pass, Classic: Pass},
	{Name: "IPv6 ext header to VIP", Spec: craft.Spec{IPv6Ext: ext60, Src: Client6, Dst: ap("[2001:db8::1]:5060")}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 two ext headers to VIP", Spec: craft.Spec{IPv6Ext: []craft.Ext{{Type: 0, Data: make([]byte, 6)}, {Type: 60, Data: make([]byte, 14)}}, Src: Client6, Dst: ap("[2001:db8::1]:5060")}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 ext header elsewhere", Spec: craft.Spec{IPv6Ext: ext60, Src: Client6, Dst: other6}, XDP: Pass, Classic: Pass},

	// VLAN tags: the XDP program reads through two; the classic filter
	// delivers every tagged frame.
	{Name: "one VLAN tag to VIP", Spec: craft.Spec{VLANs: vlan, Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Steer, Classic: Steer},
	{Name: "QinQ to VIP", Spec: craft.Spec{VLANs: qinq, Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Steer, Classic: Steer},
	{Name: "QinQ to IPv6 VIP", Spec: craft.Spec{VLANs: qinq, Src: Client6, Dst: ap("[2001:db8::1]:5060")}, XDP: Steer, Classic: Steer},
	{Name: "three VLAN tags to VIP", Spec: craft.Spec{VLANs: threeTag, Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Pass, Classic: Steer},
	{Name: "one VLAN tag to other address", Spec: craft.Spec{VLANs: vlan, Src: Client4, Dst: ap("192.0.2.9:22")}, XDP: Pass, Classic: Steer},

	// NAT real servers' replies.
	{Name: "from NAT real server", Spec: craft.Spec{Src: Real4, Dst: Client4}, XDP: Steer, Classic: Steer},
	{Name: "from NAT real server other port", Spec: craft.Spec{Src: ap("10.1.0.5:22"), Dst: Client4}, XDP: Pass, Classic: Pass},
	{Name: "tcp from NAT real server (udp)", Spec: craft.Spec{Proto: craft.TCP, Src: Real4, Dst: Client4}, XDP: Pass, Classic: Pass},
	{Name: "from IPv6 NAT real server", Spec: craft.Spec{Src: Real6, Dst: Client6}, XDP: Steer, Classic: Steer},
	{Name: "from NAT real server, VLAN", Spec: craft.Spec{VLANs: vlan, Src: Real4, Dst: Client4}, XDP: Steer, Classic: Steer},

	// Fragments to a VIP (whatever their ports: the pipeline reassembles).
	{Name: "IPv4 to VIP", Fragmented: true, Spec: craft.Spec{Src: Client4, Dst: ap("192.0.2.1:5060")}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 to VIP, VLAN", Fragmented: true, Spec: craft.Spec{VLANs: vlan, Src: Client4, Dst: ap("192.0.2.1:5060"), ID: 13}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 to port-0 VIP", Fragmented: true, Spec: craft.Spec{Proto: craft.TCP, Src: Client4, Dst: ap("192.0.2.2:80"), ID: 6}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 to VIP other port", Fragmented: true, Spec: craft.Spec{Src: Client6, Dst: ap("[2001:db8::1]:9")}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 to VIP, QinQ", Fragmented: true, Spec: craft.Spec{VLANs: qinq, Src: Client6, Dst: ap("[2001:db8::1]:5060"), ID: 14}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 to other address", Fragmented: true, Spec: craft.Spec{Src: Client4, Dst: other4}, XDP: Pass, Classic: Pass},
	{Name: "IPv6 to other address", Fragmented: true, Spec: craft.Spec{Src: Client6, Dst: other6, ID: 12}, XDP: Pass, Classic: Pass},

	// NAT replies that fragment: the first fragment by its ports, the later
	// ones by the real server's address alone (IPv6, classic: every
	// fragment from the address).
	{Name: "IPv4 NAT reply", Fragmented: true, Spec: craft.Spec{Src: Real4, Dst: Client4, ID: 1}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 NAT reply, VLAN", Fragmented: true, Spec: craft.Spec{VLANs: vlan, Src: Real4, Dst: Client4, ID: 2}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 NAT reply, QinQ", Fragmented: true, Spec: craft.Spec{VLANs: qinq, Src: Real4, Dst: Client4, ID: 3}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 NAT reply with options", Fragmented: true, Spec: craft.Spec{IPOptions: []byte{0x94, 4, 0, 0}, Src: Real4, Dst: Client4, ID: 4}, XDP: Steer, Classic: Steer},
	{Name: "IPv4 from NAT real server other port", Fragmented: true, Spec: craft.Spec{Src: ap("10.1.0.5:5061"), Dst: Client4, ID: 5}, XDP: SteerLater, Classic: SteerLater},
	{Name: "IPv4 tcp from NAT real server (udp)", Fragmented: true, Spec: craft.Spec{Proto: craft.TCP, Src: Real4, Dst: Client4, ID: 5}, XDP: SteerLater, Classic: SteerLater},
	{Name: "IPv4 from other address", Fragmented: true, Spec: craft.Spec{Src: ap("10.1.0.6:5060"), Dst: Client4, ID: 6}, XDP: Pass, Classic: Pass},
	{Name: "IPv6 NAT reply", Fragmented: true, Spec: craft.Spec{Src: Real6, Dst: Client6, ID: 7}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 NAT reply, VLAN", Fragmented: true, Spec: craft.Spec{VLANs: vlan, Src: Real6, Dst: Client6, ID: 8}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 NAT reply, QinQ, ext header", Fragmented: true, Spec: craft.Spec{VLANs: qinq, IPv6Ext: ext60, Src: Real6, Dst: Client6, ID: 9}, XDP: Steer, Classic: Steer},
	{Name: "IPv6 from NAT real server other port", Fragmented: true, Spec: craft.Spec{Src: ap("[2001:db8:2::5]:5061"), Dst: Client6, ID: 10}, XDP: SteerLater, Classic: Steer},
	{Name: "IPv6 from other address", Fragmented: true, Spec: craft.Spec{Src: ap("[2001:db8:2::6]:5060"), Dst: Client6, ID: 11}, XDP: Pass, Classic: Pass},
	{Name: "IPv6 near miss (first word)", Fragmented: true, Spec: craft.Spec{Src: ap("[2101:db8:2::5]:5060"), Dst: Client6, ID: 10}, XDP: Pass, Classic: Pass},

	// ICMP errors: path-MTU messages to a VIP are delivered (the pipeline
	// reads the quote), every other ICMP message stays with the kernel.
	{Name: "ICMPv4 frag needed to VIP", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv4 frag needed to port-0 VIP", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("192.0.2.2:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv4 frag needed with IP options", ICMP: &ICMP{3, 4}, Spec: craft.Spec{IPOptions: []byte{1, 1, 1, 1}, Dst: ap("192.0.2.1:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv4 frag needed to VIP, VLAN", ICMP: &ICMP{3, 4}, Spec: craft.Spec{VLANs: vlan, Dst: ap("192.0.2.1:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv4 frag needed to VIP, QinQ", ICMP: &ICMP{3, 4}, Spec: craft.Spec{VLANs: qinq, Dst: ap("192.0.2.1:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv4 frag needed to other address", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("192.0.2.9:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 frag needed to other address, VLAN", ICMP: &ICMP{3, 4}, Spec: craft.Spec{VLANs: vlan, Dst: ap("192.0.2.9:0")}, XDP: Pass, Classic: Steer},
	{Name: "ICMPv4 frag needed to a NAT real server", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("10.1.0.5:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 port unreachable to VIP", ICMP: &ICMP{3, 3}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 time exceeded to VIP", ICMP: &ICMP{11, 0}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 echo request to VIP", ICMP: &ICMP{8, 0}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 echo request to VIP, VLAN", ICMP: &ICMP{8, 0}, Spec: craft.Spec{VLANs: vlan, Dst: ap("192.0.2.1:0")}, XDP: Pass, Classic: Steer},
	{Name: "ICMPv4 truncated (no type)", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, Truncate: 14 + 20, XDP: Pass, Classic: Pass},
	{Name: "ICMPv4 truncated (type only)", ICMP: &ICMP{3, 4}, Spec: craft.Spec{Dst: ap("192.0.2.1:0")}, Truncate: 14 + 20 + 1, XDP: Pass, Classic: Pass},
	{Name: "ICMPv6 packet too big to VIP", ICMP: &ICMP{2, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::1]:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv6 packet too big to other VIP", ICMP: &ICMP{2, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::2]:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv6 packet too big to VIP, VLAN", ICMP: &ICMP{2, 0}, Spec: craft.Spec{VLANs: vlan, Dst: ap("[2001:db8::1]:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv6 packet too big to VIP, QinQ", ICMP: &ICMP{2, 0}, Spec: craft.Spec{VLANs: qinq, Dst: ap("[2001:db8::1]:0")}, XDP: Steer, Classic: Steer},
	{Name: "ICMPv6 packet too big to other address", ICMP: &ICMP{2, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::9]:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv6 packet too big to other address, VLAN", ICMP: &ICMP{2, 0}, Spec: craft.Spec{VLANs: vlan, Dst: ap("[2001:db8::9]:0")}, XDP: Pass, Classic: Steer},
	{Name: "ICMPv6 destination unreachable to VIP", ICMP: &ICMP{1, 4}, Spec: craft.Spec{Dst: ap("[2001:db8::1]:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv6 echo request to VIP", ICMP: &ICMP{128, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::1]:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv6 neighbour solicitation to VIP", ICMP: &ICMP{135, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::1]:0")}, XDP: Pass, Classic: Pass},
	{Name: "ICMPv6 neighbour solicitation to VIP, VLAN", ICMP: &ICMP{135, 0}, Spec: craft.Spec{VLANs: vlan, Dst: ap("[2001:db8::1]:0")}, XDP: Pass, Classic: Steer},
	{Name: "ICMPv6 truncated (no type)", ICMP: &ICMP{2, 0}, Spec: craft.Spec{Dst: ap("[2001:db8::1]:0")}, Truncate: 14 + 40, XDP: Pass, Classic: Pass},

	// Neither IP nor whole.
	{Name: "ARP", Raw: append(make([]byte, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1), XDP: Pass, Classic: Pass},
	{Name: "truncated IPv4 to VIP", Spec: craft.Spec{Src: Client4, Dst: ap("192.0.2.1:5060")}, Truncate: 30, XDP: Pass, Classic: Pass},
}

// Fragmentation of the fragmented cases.
const (
	fragPayload = 3000
	fragMTU     = 1400
)

// Frame is one frame of the table and what each filter must do with it.
type Frame struct {
	Name              string
	Data              []byte
	XDPSteer, Classic bool
}

// Frames builds the table's frames: one per case, one per fragment of a
// fragmented case.
func Frames() []Frame {
	var out []Frame
	payload := []byte(strings.Repeat("x", fragPayload))
	for _, c := range Cases {
		var frames [][]byte
		switch {
		case c.Raw != nil:
			frames = [][]byte{c.Raw}
		case c.ICMP != nil:
			frames = [][]byte{icmpError(c.Spec, *c.ICMP, payload[:64])}
		case c.Fragmented:
			s := c.Spec
			s.Payload = payload
			frames = craft.Fragment(s, fragMTU)
		default:
			frames = [][]byte{c.Spec.Build()}
		}
		for i, f := range frames {
			if c.Truncate > 0 {
				f = f[:c.Truncate]
			}
			name := c.Name
			if c.Fragmented {
				name = fmt.Sprintf("%s, fragment %d of %d", c.Name, i+1, len(frames))
			}
			out = append(out, Frame{Name: name, Data: f, XDPSteer: c.XDP.steers(i), Classic: c.Classic.steers(i)})
		}
	}
	return out
}

// icmpError builds an ICMP error of type t to s.Dst's address (with s's
// VLAN tags and IP options) from a router, quoting the IP and UDP headers
// of a datagram that address sent to the client.
func icmpError(s craft.Spec, t ICMP, quoted []byte) []byte {
	body := []byte{t.Type, t.Code, 0, 0, 0, 0, 0x05, 0x78} // MTU 1400
	from := netip.AddrPortFrom(s.Dst.Addr(), 5060)
	out := craft.Spec{VLANs: s.VLANs, IPOptions: s.IPOptions, Dst: s.Dst}
	if s.Dst.Addr().Is4() {
		body = append(body, craft.Spec{Src: from, Dst: Client4, Payload: quoted}.Datagram()[:28]...)
		out.Proto, out.Src = 1, router4
	} else {
		body = append(body, craft.Spec{Src: from, Dst: Client6, Payload: quoted}.Datagram()[:48]...)
		out.Proto, out.Src = 58, router6
	}
	out.Payload = body
	return out.Build()
}
