package localnat

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// director classifies addresses as a director with 10.0.0.99 and
// 2001:db8::99 on its interface and the loopback addresses would.
func director(a netip.Addr) ipvs.AddrKind {
	if a.IsLoopback() || a == netip.MustParseAddr("10.0.0.99") || a == netip.MustParseAddr("2001:db8::99") {
		return ipvs.AddrLocal
	}
	return ipvs.AddrUnicast
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRules: one rule for each service and port of a Local real server on
// another port than its service's, whatever local address names it; none
// for a Local real server on the service's port, another host's real
// server, or a port-0 service; sorted and without duplicates.
func TestRules(t *testing.T) {
	c, err := ipvs.New(ipvs.Options{Workers: 1, AddrKind: director, LocalNAT: func() error { return nil }})
	mustDo(t, err)
	ap := netip.MustParseAddrPort
	add := func(p ipvs.Protocol, svc string, dests ...string) {
		t.Helper()
		s := ap(svc)
		mustDo(t, c.AddService(ipvs.ServiceConfig{Protocol: p, Addr: s, Scheduler: "rr", Persistent: s.Port() == 0}))
		for _, d := range dests {
			mustDo(t, c.AddDest(ipvs.ServiceKey{Protocol: p, Addr: s.Addr(), Port: s.Port()}, ipvs.DestConfig{Addr: ap(d), Fwd: ipvs.Masq, Weight: 1}))
		}
	}
	add(ipvs.UDP, "192.0.2.10:5060", "127.0.0.1:5080", "10.0.0.99:5080", "10.0.0.99:5070", "127.0.0.1:5060", "10.0.0.7:5090")
	add(ipvs.TCP, "192.0.2.10:5060", "127.0.0.1:5080")
	add(ipvs.UDP, "[2001:db8::10]:5060", "[::1]:5070", "[2001:db8::99]:5060")
	add(ipvs.UDP, "192.0.2.11:0", "127.0.0.1:5080") // every port: the packet's is kept
	s, err := c.Compile()
	mustDo(t, err)
	got := Rules(s)
	want := []Rule{
		{ipvs.TCP, ap("192.0.2.10:5060"), 5080},
		{ipvs.UDP, ap("192.0.2.10:5060"), 5070},
		{ipvs.UDP, ap("192.0.2.10:5060"), 5080},
		{ipvs.UDP, ap("[2001:db8::10]:5060"), 5070},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Rules:\n%v\nwant\n%v", got, want)
	}
	if Rules(nil) != nil {
		t.Error("rules without a configuration")
	}
	if Mark(5080) != 0x787613d8 {
		t.Errorf("Mark(5080) = %#x", Mark(5080))
	}
}

// TestTable: in a namespace of its own, RemoveStale removes the table a
// dead daemon left, Check creates none and changes nothing, Apply replaces
// the table's rules with exactly the given ones (as nft lists them: the
// original-direction zone, the DNAT) and removes the table when there are
// none, and Close removes it.
func TestTable(t *testing.T) {
	testenv.NeedLab(t)
	l := testenv.Lab(t, lab.Spec{Clients: 1, RealServers: 1})
	ns := l.Balancer.NS
	const name = "xvs-test"
	nft := func(args ...string) string {
		t.Helper()
		out, err := l.Output(ns, "nft", args...)
		if err != nil && !strings.Contains(out, "No such file or directory") {
			t.Fatalf("nft %v: %v %s", args, err, out)
		}
		return out
	}
	nft("add table inet " + name + "; add chain inet " + name + " stale; add rule inet " + name + " stale accept")
	tb := New(name)
	tb.nft = []string{"ip", "netns", "exec", ns, "nft"}
	mustDo(t, tb.RemoveStale())
	if out := nft("list", "tables"); strings.Contains(out, name) {
		t.Fatalf("RemoveStale left the table:\n%s", out)
	}
	mustDo(t, tb.RemoveStale()) // none: nothing to do
	mustDo(t, tb.Check())
	if out := nft("list", "tables"); strings.Contains(out, name) {
		t.Fatalf("Check left a table:\n%s", out)
	}
	ap := netip.MustParseAddrPort
	for _, step := range []struct {
		rules []Rule
		want  []string
	}{
		{[]Rule{{ipvs.UDP, ap("10.77.2.1:5060"), 5080}, {ipvs.TCP, ap("[fd77:2::1]:5060"), 5070}}, []string{
			"meta mark 0x787613d8 ip daddr 10.77.2.1 udp dport 5060 ct original zone set 5080",
			"meta mark 0x787613ce ip6 daddr fd77:2::1 tcp dport 5060 ct original zone set 5070",
			"meta mark 0x787613d8 ip daddr 10.77.2.1 udp dport 5060 dnat ip to 10.77.2.1:5080",
			"meta mark 0x787613ce ip6 daddr fd77:2::1 tcp dport 5060 dnat ip6 to [fd77:2::1]:5070",
		}},
		{[]Rule{{ipvs.TCP, ap("[fd77:2::1]:5060"), 5070}}, []string{
			"meta mark 0x787613ce ip6 daddr fd77:2::1 tcp dport 5060 ct original zone set 5070",
			"meta mark 0x787613ce ip6 daddr fd77:2::1 tcp dport 5060 dnat ip6 to [fd77:2::1]:5070",
		}},
		{nil, nil},
		{[]Rule{{ipvs.UDP, ap("10.77.2.1:5060"), 5080}}, []string{
			"meta mark 0x787613d8 ip daddr 10.77.2.1 udp dport 5060 ct original zone set 5080",
			"meta mark 0x787613d8 ip daddr 10.77.2.1 udp dport 5060 dnat ip to 10.77.2.1:5080",
		}},
	} {
		mustDo(t, tb.Apply(step.rules))
		out := nft("list", "tables")
		if len(step.want) == 0 {
			if strings.Contains(out, name) {
				t.Errorf("Apply(%v) left the table:\n%s", step.rules, out)
			}
			continue
		}
		out = nft("list", "table", "inet", name)
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "meta mark") {
				got = append(got, line)
			}
		}
		if !strings.Contains(out, "type nat hook output priority -100;") || !strings.Contains(out, "type filter hook output priority raw;") {
			t.Errorf("not a raw chain and a nat chain on the output hook:\n%s", out)
		}
		if !slices.Equal(got, step.want) {
			t.Errorf("Apply(%v):\n%s\nwant the rules %q", step.rules, out, step.want)
		}
		mustDo(t, tb.Check())
		if again := nft("list", "table", "inet", name); again != out {
			t.Errorf("Check changed the table:\n%s\nwas\n%s", again, out)
		}
	}
	mustDo(t, tb.Close())
	if out := nft("list", "tables"); strings.Contains(out, name) {
		t.Errorf("Close left the table:\n%s", out)
	}
}
