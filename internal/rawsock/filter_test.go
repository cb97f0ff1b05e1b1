package rawsock

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/filtertest"
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

// TestFilterConformance runs the steering conformance table, which the XDP
// program of afxdp passes too.
func TestFilterConformance(t *testing.T) {
	v := vm(t, filtertest.Filter)
	for _, f := range filtertest.Frames() {
		got, err := v.Run(f.Data)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if (got > 0) != f.Classic {
			t.Errorf("%s: accept=%v, want %v", f.Name, got > 0, f.Classic)
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
