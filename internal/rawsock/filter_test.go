package rawsock

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
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
		{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("10.77.2.1"), Port: 5060},
		{Protocol: ipvs.TCP, Addr: netip.MustParseAddr("10.77.2.2")}, // any port
		{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("fd77:2::1"), Port: 5060},
		{Protocol: ipvs.TCP, Addr: netip.MustParseAddr("fd77:2::2"), Port: 443},
	},
	RealServers: []dataplane.RealServerMatch{
		{Protocol: ipvs.UDP, Addr: ap("10.77.1.11:5060")},
		{Protocol: ipvs.UDP, Addr: ap("[fd77:1::11]:5070")},
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
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: ipvs.UDP, Addr: netip.AddrFrom16([16]byte{0xfd, 0x77, 0, 2, 15: byte(i)}), Port: 5060})
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: ipvs.UDP, Addr: netip.AddrFrom4([4]byte{10, 77, 2, byte(i)}), Port: 5060})
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
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: ipvs.UDP, Addr: netip.AddrFrom16([16]byte{0xfd, 0x77, 0, 3, 14: byte(i >> 8), 15: byte(i)}), Port: 5060})
	}
	if _, err := compileFilter(f); err == nil {
		t.Fatal("a filter past the kernel's limits compiled")
	}
}
