package rawsock

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

func vm(t *testing.T, f dataplane.Filter) *bpf.VM {
	t.Helper()
	raw, err := compileFilter(f)
	if err != nil {
		t.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insns[i] = r.Disassemble()
	}
	v, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var testFilter = dataplane.Filter{
	Services: []dataplane.ServiceMatch{
		{Protocol: packet.ProtoUDP, Addr: netip.MustParseAddr("10.77.2.1"), Port: 5060},
		{Protocol: packet.ProtoTCP, Addr: netip.MustParseAddr("10.77.2.2")}, // any port
		{Protocol: packet.ProtoUDP, Addr: netip.MustParseAddr("fd77:2::1"), Port: 5060},
		{Protocol: packet.ProtoTCP, Addr: netip.MustParseAddr("fd77:2::2"), Port: 443},
	},
	RealServers: []dataplane.RealServerMatch{
		{Protocol: packet.ProtoUDP, Addr: ap("10.77.1.11:5060")},
		{Protocol: packet.ProtoUDP, Addr: ap("[fd77:1::11]:5070")},
	},
}

func TestFilterMatches(t *testing.T) {
	v := vm(t, testFilter)
	cases := []struct {
		name string
		spec craft.Spec
		want bool
	}{
		{"udp to vip4:5060", craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap("10.77.2.1:5060")}, true},
		{"udp to vip4 other port", craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap("10.77.2.1:5061")}, false},
		{"tcp to vip4:5060 (service is udp)", craft.Spec{Proto: craft.TCP, Src: ap("10.77.0.10:5060"), Dst: ap("10.77.2.1:5060")}, false},
		{"tcp to port-0 service", craft.Spec{Proto: craft.TCP, Src: ap("10.77.0.10:40000"), Dst: ap("10.77.2.2:8080")}, true},
		{"udp to port-0 tcp service", craft.Spec{Src: ap("10.77.0.10:40000"), Dst: ap("10.77.2.2:8080")}, false},
		{"ipv4 options shift the ports", craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap("10.77.2.1:5060"), IPOptions: []byte{1, 1, 1, 1, 1, 1, 1, 1}}, true},
		{"other address", craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap("10.77.1.2:5060")}, false},
		{"nat real server reply", craft.Spec{Src: ap("10.77.1.11:5060"), Dst: ap("10.77.0.10:5060")}, true},
		{"real server other port", craft.Spec{Src: ap("10.77.1.11:22"), Dst: ap("10.77.0.10:5060")}, false},
		{"udp to vip6:5060", craft.Spec{Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::1]:5060")}, true},
		{"udp to vip6 other port", craft.Spec{Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::1]:53")}, false},
		{"tcp to vip6:443", craft.Spec{Proto: craft.TCP, Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::2]:443")}, true},
		{"tcp to vip6:80", craft.Spec{Proto: craft.TCP, Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::2]:80")}, false},
		{"nat real server reply v6", craft.Spec{Src: ap("[fd77:1::11]:5070"), Dst: ap("[fd77::10]:5060")}, true},
		{"v6 near miss (last word)", craft.Spec{Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::3]:5060")}, false},
		{"v6 ext header to vip", craft.Spec{Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:2::1]:5060"), IPv6Ext: []craft.Ext{{Type: 60, Data: make([]byte, 6)}}}, true},
		{"v6 ext header elsewhere", craft.Spec{Src: ap("[fd77::10]:5060"), Dst: ap("[fd77:1::2]:5060"), IPv6Ext: []craft.Ext{{Type: 60, Data: make([]byte, 6)}}}, false},
		{"vlan tagged", craft.Spec{VLANs: []craft.VLAN{{TCI: 7}}, Src: ap("10.77.0.10:5060"), Dst: ap("10.77.1.2:22")}, true},
	}
	for _, c := range cases {
		got, err := v.Run(c.spec.Build())
		if err != nil {
			t.Fatal(err)
		}
		if (got > 0) != c.want {
			t.Errorf("%s: accept=%v, want %v", c.name, got > 0, c.want)
		}
	}
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	if got, _ := v.Run(arp); got != 0 {
		t.Error("ARP accepted")
	}
}

func TestFilterFragments(t *testing.T) {
	v := vm(t, testFilter)
	payload := []byte(strings.Repeat("x", 3000))
	for _, tc := range []struct {
		dst  string
		want bool
	}{{"10.77.2.1:5060", true}, {"[fd77:2::1]:5060", true}, {"10.77.1.2:5060", false}, {"[fd77:1::2]:5060", false}} {
		s := craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap(tc.dst), Payload: payload}
		if ap(tc.dst).Addr().Is6() {
			s.Src = ap("[fd77::10]:5060")
		}
		frags := craft.Fragment(s, 1400)
		if len(frags) < 2 {
			t.Fatal("no fragments")
		}
		for i, fr := range frags {
			got, _ := v.Run(fr)
			if (got > 0) != tc.want {
				t.Errorf("fragment %d to %s: accept=%v, want %v", i, tc.dst, got > 0, tc.want)
			}
		}
	}
}

func TestFilterEmptyAndLarge(t *testing.T) {
	v := vm(t, dataplane.Filter{})
	if got, _ := v.Run(craft.Spec{Src: ap("10.77.0.10:5060"), Dst: ap("10.77.2.1:5060")}.Build()); got != 0 {
		t.Fatal("empty filter accepted a frame")
	}
	// Many services: long jumps must still land right.
	var f dataplane.Filter
	for i := range 120 {
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: packet.ProtoUDP, Addr: netip.AddrFrom16([16]byte{0xfd, 0x77, 0, 2, 15: byte(i)}), Port: 5060})
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: packet.ProtoUDP, Addr: netip.AddrFrom4([4]byte{10, 77, 2, byte(i)}), Port: 5060})
	}
	v = vm(t, f)
	for _, dst := range []string{"10.77.2.119:5060", "[fd77:2::77]:5060", "10.77.2.0:5060"} {
		src := "10.77.0.10:1"
		if ap(dst).Addr().Is6() {
			src = "[fd77::10]:1"
		}
		if got, _ := v.Run(craft.Spec{Src: ap(src), Dst: ap(dst)}.Build()); got == 0 {
			t.Errorf("%s not accepted among 240 services", dst)
		}
	}
	if got, _ := v.Run(craft.Spec{Src: ap("[fd77::10]:1"), Dst: ap("[fd77:2::1:77]:5060")}.Build()); got != 0 {
		t.Error("a near-miss IPv6 address accepted")
	}
	for i := range 300 {
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: packet.ProtoUDP, Addr: netip.AddrFrom16([16]byte{0xfd, 0x77, 0, 3, 14: byte(i >> 8), 15: byte(i)}), Port: 5060})
	}
	if _, err := compileFilter(f); err == nil {
		t.Fatal("a filter past the kernel's limits compiled")
	}
}

// TestFilterNATFragmentsAndICMP: later fragments from a NAT real server's
// address (IPv6: every fragment from it) are accepted, a first IPv4
// fragment by its ports; ICMPv4 fragmentation needed and ICMPv6 packet too
// big to a virtual address are accepted, other ICMP and other addresses
// are not.
func TestFilterNATFragmentsAndICMP(t *testing.T) {
	v := vm(t, testFilter)
	payload := []byte(strings.Repeat("y", 3000))
	client, client6 := ap("10.77.0.10:5060"), ap("[fd77::10]:5060")
	all := func(int) bool { return true }
	none := func(int) bool { return false }
	later := func(i int) bool { return i > 0 }
	for _, tc := range []struct {
		name string
		spec craft.Spec
		want func(i int) bool
	}{
		{"v4 NAT reply", craft.Spec{Src: ap("10.77.1.11:5060"), Dst: client, ID: 1}, all},
		{"v4 NAT reply with options", craft.Spec{IPOptions: []byte{0x94, 4, 0, 0}, Src: ap("10.77.1.11:5060"), Dst: client, ID: 2}, all},
		{"v4 from NAT real server other port", craft.Spec{Src: ap("10.77.1.11:5061"), Dst: client, ID: 3}, later},
		{"v4 from other address", craft.Spec{Src: ap("10.77.1.12:5060"), Dst: client, ID: 4}, none},
		{"v4 tcp from NAT real server (udp service)", craft.Spec{Proto: craft.TCP, Src: ap("10.77.1.11:5060"), Dst: client, ID: 5}, later},
		{"v4 to port-0 vip", craft.Spec{Proto: craft.TCP, Src: client, Dst: ap("10.77.2.2:80"), ID: 6}, all},
		{"v6 NAT reply", craft.Spec{Src: ap("[fd77:1::11]:5070"), Dst: client6, ID: 7}, all},
		{"v6 from NAT real server other port", craft.Spec{Src: ap("[fd77:1::11]:5071"), Dst: client6, ID: 8}, all},
		{"v6 from other address", craft.Spec{Src: ap("[fd77:1::12]:5070"), Dst: client6, ID: 9}, none},
		{"v6 near miss (first word)", craft.Spec{Src: ap("[fd78:1::11]:5070"), Dst: client6, ID: 10}, none},
	} {
		tc.spec.Payload = payload
		frags := craft.Fragment(tc.spec, 1400)
		if len(frags) < 3 {
			t.Fatalf("%s: %d fragments", tc.name, len(frags))
		}
		for i, fr := range frags {
			got, err := v.Run(fr)
			if err != nil {
				t.Fatal(err)
			}
			if (got > 0) != tc.want(i) {
				t.Errorf("%s fragment %d: accept=%v, want %v", tc.name, i, got > 0, tc.want(i))
			}
		}
	}

	router, router6 := ap("203.0.113.1:0"), ap("[2001:db8:ff::1]:0")
	icmp := func(vlans []craft.VLAN, dst string, typ, code uint8) []byte {
		d := ap(dst)
		body := []byte{typ, code, 0, 0, 0, 0, 0x05, 0x78}
		if d.Addr().Is4() {
			body = append(body, craft.Spec{Src: netip.AddrPortFrom(d.Addr(), 5060), Dst: client, Payload: payload[:64]}.Datagram()[:28]...)
			return craft.Spec{VLANs: vlans, Proto: 1, Src: router, Dst: d, Payload: body}.Build()
		}
		body = append(body, craft.Spec{Src: netip.AddrPortFrom(d.Addr(), 5060), Dst: client6, Payload: payload[:64]}.Datagram()[:48]...)
		return craft.Spec{VLANs: vlans, Proto: 58, Src: router6, Dst: d, Payload: body}.Build()
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"icmp4 frag needed to vip", icmp(nil, "10.77.2.1:0", 3, 4), true},
		{"icmp4 frag needed to port-0 vip", icmp(nil, "10.77.2.2:0", 3, 4), true},
		{"icmp4 frag needed with ip options", craft.Spec{Proto: 1, IPOptions: []byte{1, 1, 1, 1}, Src: router, Dst: ap("10.77.2.1:0"), Payload: icmp(nil, "10.77.2.1:0", 3, 4)[14+20:]}.Build(), true},
		{"icmp4 frag needed to other address", icmp(nil, "10.77.1.2:0", 3, 4), false},
		{"icmp4 frag needed to a nat real server", icmp(nil, "10.77.1.11:0", 3, 4), false},
		{"icmp4 port unreachable to vip", icmp(nil, "10.77.2.1:0", 3, 3), false},
		{"icmp4 echo request to vip", icmp(nil, "10.77.2.1:0", 8, 0), false},
		{"icmp4 time exceeded to vip", icmp(nil, "10.77.2.1:0", 11, 0), false},
		{"icmp4 truncated", icmp(nil, "10.77.2.1:0", 3, 4)[:14+20+1], false},
		{"icmp6 packet too big to vip", icmp(nil, "[fd77:2::1]:0", 2, 0), true},
		{"icmp6 packet too big to other vip", icmp(nil, "[fd77:2::2]:0", 2, 0), true},
		{"icmp6 packet too big to other address", icmp(nil, "[fd77:2::3]:0", 2, 0), false},
		{"icmp6 destination unreachable to vip", icmp(nil, "[fd77:2::1]:0", 1, 4), false},
		{"icmp6 echo request to vip", icmp(nil, "[fd77:2::1]:0", 128, 0), false},
		{"icmp6 neighbour solicitation to vip", icmp(nil, "[fd77:2::1]:0", 135, 0), false},
		// Tagged frames are all delivered (the pipeline decodes the tags).
		{"vlan tagged icmp echo", icmp([]craft.VLAN{{TCI: 7}}, "10.77.1.2:0", 8, 0), true},
		{"qinq tagged icmp6 packet too big", icmp([]craft.VLAN{{TPID: 0x88a8, TCI: 7}, {TCI: 8}}, "[fd77:2::1]:0", 2, 0), true},
	} {
		got, err := v.Run(tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		if (got > 0) != tc.want {
			t.Errorf("%s: accept=%v, want %v", tc.name, got > 0, tc.want)
		}
	}
}
