package ipvsadm

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the Go output (check the diff by eye against testdata/golden.py)")

// fixture is the configuration of testdata/golden.py. Destinations are
// given out of order to exercise sorting.
func fixture() Table {
	a := netip.MustParseAddr
	return Table{Services: []ServiceView{
		{Protocol: ipvs.UDP, Addr: a("10.4.3.192"), Port: 5060, Scheduler: "rr", Persistent: true, Timeout: 60,
			Netmask: 0, PE: "sip", OnePacket: true,
			Stats: Stats{12, 123456789, 0, 98765432101, 123456789012345}, Rates: rates(1, 2, 0, 1000, 0),
			Dests: []DestView{
				{Addr: a("192.168.1.11"), Port: 5060, Forward: ipvs.Masq, Weight: 1, InactConns: 3, PersistConns: 2,
					Stats: Stats{5, 5, 0, 2500, 0}, Rates: rates(0, 1, 0, 500, 0)},
				{Addr: a("192.168.1.10"), Port: 5060, Forward: ipvs.Masq, Weight: 1, InactConns: 5, PersistConns: 4,
					Stats: Stats{7, 7, 0, 3500, 0}, Rates: rates(1, 1, 0, 500, 0)},
			}},
		{Protocol: ipvs.UDP, Addr: a("2001:db8::53"), Port: 53, Scheduler: "sh", SchedFlags: sched.SHFallback | sched.SHPort, Netmask: 128,
			Dests: []DestView{{Addr: a("2001:db8::10"), Port: 53, Forward: ipvs.Masq, Weight: 0}}},
		{Protocol: ipvs.UDP, Addr: a("10.4.3.193"), Port: 5060, Scheduler: "wlc", Netmask: 0xffffffff, PE: "sip"},
		{Protocol: ipvs.TCP, Addr: a("10.4.3.192"), Port: 80, Scheduler: "wlc", Netmask: 0xffffffff,
			Stats: Stats{1000, 2000, 1500, 100000000, 999999999}, Rates: rates(5, 6, 7, 800, 900),
			Dests: []DestView{
				{Addr: a("192.168.1.10"), Port: 80, Forward: ipvs.Route, Weight: 3, ActiveConns: 12, InactConns: 40,
					UThreshold: 100, LThreshold: 50, Stats: Stats{700, 1400, 1000, 70000, 60000}, Rates: rates(3, 4, 5, 600, 700)},
				{Addr: a("10.1.0.5"), Port: 80, Forward: ipvs.Tunnel, Weight: 2, ActiveConns: 1, InactConns: 2,
					Tunnel: ipvs.TunnelConfig{Type: ipvs.GUE, Port: 6080, Csum: ipvs.TunCsum},
					Stats:  Stats{300, 600, 500, 30000, 40000}, Rates: rates(2, 2, 2, 200, 200)},
			}},
	}}
}

func fixtureConns() []ConnView {
	ap := netip.MustParseAddrPort
	return []ConnView{
		{Protocol: ipvs.UDP, Client: ap("10.4.3.0:0"), Virtual: ap("10.4.3.192:5060"), Dest: ap("192.168.1.10:5060"),
			State: "NONE", Expires: 38, PEName: "sip", PEData: []byte("a84b4c76e66710@pc33.example.com")},
		{Protocol: ipvs.UDP, Client: ap("10.4.3.7:5062"), Virtual: ap("10.4.3.192:5060"), Dest: ap("192.168.1.10:5060"),
			State: "UDP", Expires: 299},
		{Protocol: ipvs.UDP, Client: ap("10.4.3.0:0"), Virtual: ap("10.4.3.192:5060"), Dest: ap("192.168.1.11:5060"),
			State: "ASSURED", Expires: 3599, PEName: "sip", PEData: []byte("evil\x1b[2J id\\")},
		{Protocol: ipvs.TCP, Client: ap("[2001:db8::7]:40000"), Virtual: ap("[2001:db8::53]:53"), Dest: ap("[2001:db8::10]:53"),
			State: "ESTABLISHED", Expires: 900},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestListGolden(t *testing.T) {
	names := Names{Host: func(a netip.Addr) (string, bool) {
		if a == netip.MustParseAddr("10.4.3.192") {
			return "lb.example.com", true
		}
		return "", false
	}}
	for _, tc := range []struct {
		desc, golden string
		f            Format
		names        Names
	}{
		{"-Ln", "list_numeric", Format{Numeric: true}, Names{}},
		{"-L resolves names", "list_names", Format{}, names},
		{"-Ln --stats", "list_stats", Format{Numeric: true, Stats: true}, Names{}},
		{"-Ln --stats --exact", "list_stats_exact", Format{Numeric: true, Stats: true, Exact: true}, Names{}},
		{"-Ln --rate", "list_rate", Format{Numeric: true, Rate: true}, Names{}},
		{"-Ln --thresholds", "list_thresholds", Format{Numeric: true, Thresholds: true}, Names{}},
		{"-Ln --persistent-conn", "list_persistent_conn", Format{Numeric: true, PersistentConn: true}, Names{}},
		{"-Ln --tun-info", "list_tun_info", Format{Numeric: true, TunInfo: true}, Names{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			checkGolden(t, tc.golden, AppendList(nil, fixture(), tc.f, tc.names))
		})
	}
}

func TestConnsGolden(t *testing.T) {
	checkGolden(t, "conns", AppendConns(nil, fixtureConns(), Format{Numeric: true, Connections: true}, Names{}))
	checkGolden(t, "conns_persistent", AppendConns(nil, fixtureConns(), Format{Numeric: true, Connections: true, PersistentConn: true}, Names{}))
}

// TestConnsReferenceExample checks the template row of DESIGN.md and
// reference/ipvs.md §4.2 byte for byte.
func TestConnsReferenceExample(t *testing.T) {
	got := AppendConns(nil, fixtureConns()[:2], Format{Numeric: true, PersistentConn: true}, Names{})
	want := "IPVS connection entries\n" +
		"pro expire state       source             virtual            destination        pe name          pe_data\n" +
		"UDP 00:38  NONE        10.4.3.0:0         10.4.3.192:5060    192.168.1.10:5060 sip                a84b4c76e66710@pc33.example.com\n" +
		"UDP 04:59  UDP         10.4.3.7:5062      10.4.3.192:5060    192.168.1.10:5060\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSave(t *testing.T) {
	want := "-A -t 10.4.3.192:80 -s wlc\n" +
		"-a -t 10.4.3.192:80 -r 192.168.1.10:80 -g -w 3\n" + // signed-difference order
		"-a -t 10.4.3.192:80 -r 10.1.0.5:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum\n" +
		"-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n" +
		"-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1\n" +
		"-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1\n" +
		"-A -u 10.4.3.193:5060 -s wlc --pe sip\n" +
		"-A -u [2001:db8::53]:53 -s sh -b sh-fallback,sh-port\n" +
		"-a -u [2001:db8::53]:53 -r [2001:db8::10]:53 -m -w 0\n"
	if got := string(AppendSave(nil, fixture().Services, Format{Numeric: true}, Names{})); got != want {
		t.Errorf("-Sn:\ngot\n%s\nwant\n%s", got, want)
	}
	// Without -n, ports are named from the built-in table.
	wantNames := "-A -u 10.4.3.193:sip -s wlc --pe sip\n"
	if got := string(AppendSave(nil, fixture().Services[2:3], Format{}, Names{})); got != wantNames {
		t.Errorf("-S: got %q, want %q", got, wantNames)
	}
	// --pe-strict and IPv6 masks.
	s := ServiceView{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 5060, Scheduler: "wlc",
		Persistent: true, Timeout: 360, Netmask: 64, PE: "sip", PEStrict: true, OnePacket: true}
	if got, want := string(AppendSave(nil, []ServiceView{s}, Format{Numeric: true}, Names{})),
		"-A -u [2001:db8::1]:5060 -s wlc -p 360 -M 64 --pe sip --pe-strict -o\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := string(AppendListService(nil, s, Format{Numeric: true}, Names{})),
		"Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
			"UDP  [2001:db8::1]:5060 wlc persistent 360 mask 64 pe sip ops\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLargeNum(t *testing.T) {
	for _, tc := range []struct {
		n     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99999999, false, " 99999999"},
		{100000000, false, "  100000K"},
		{999999999, false, "  999999K"},
		{1000000000, false, "    1000M"},
		{99999999999, false, "   99999M"},
		{100000000000, false, "     100G"},
		{99999999999999, false, "   99999G"},
		{100000000000000, false, "     100T"},
		{12345678, true, " 12345678"},
		{123456789, true, " 123456789"},
		{18446744073709551615, true, " 18446744073709551615"},
	} {
		if got := string(appendLargeNum(nil, tc.n, tc.exact)); got != tc.want {
			t.Errorf("largenum(%d, exact=%v) = %q, want %q", tc.n, tc.exact, got, tc.want)
		}
	}
}

func TestSortQuirk(t *testing.T) {
	a := netip.MustParseAddr
	// 1.0.0.1 - 192.168.0.1 overflows int32 to a positive number, so
	// ipvsadm lists 1.0.0.1 after 192.168.0.1; 10.0.0.1 stays first.
	got := SortServices([]ServiceView{
		{Protocol: ipvs.UDP, Addr: a("1.0.0.1"), Port: 1},
		{Protocol: ipvs.UDP, Addr: a("192.168.0.1"), Port: 1},
	})
	if got[0].Addr != a("192.168.0.1") {
		t.Errorf("order %v %v, want 192.168.0.1 first (signed-difference quirk)", got[0].Addr, got[1].Addr)
	}
	got = SortServices([]ServiceView{
		{Protocol: ipvs.UDP, Addr: a("2001:db8::1"), Port: 1},
		{Protocol: ipvs.UDP, Addr: a("10.0.0.2"), Port: 2},
		{Protocol: ipvs.TCP, Addr: a("10.0.0.2"), Port: 9},
		{Protocol: ipvs.UDP, Addr: a("10.0.0.2"), Port: 1},
	})
	want := []string{"TCP 10.0.0.2 9", "UDP 10.0.0.2 1", "UDP 10.0.0.2 2", "UDP 2001:db8::1 1"}
	for i, s := range got {
		if g := s.Protocol.String() + " " + s.Addr.String() + " " + utoa(uint64(s.Port)); g != want[i] {
			t.Errorf("position %d: %s, want %s", i, g, want[i])
		}
	}
	d := SortDests([]DestView{{Addr: a("10.0.0.2"), Port: 2}, {Addr: a("10.0.0.2"), Port: 1}})
	if d[0].Port != 1 {
		t.Errorf("dests not sorted by port: %v", d)
	}
}

func TestTimeoutDaemonBanner(t *testing.T) {
	if got, want := string(AppendTimeout(nil, Timeouts{900, 120, 300})), "Timeout (tcp tcpfin udp): 900 120 300\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got := string(AppendDaemon(nil, []Daemon{
		{State: Master, McastIface: "eth0", SyncID: 0, SyncMaxLen: 1472, McastGroup: netip.MustParseAddr("224.0.0.81"), McastPort: 8848, McastTTL: 1},
		{State: Backup, McastIface: "eth1", SyncID: 7},
	}))
	want := "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth1, syncid=7)\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := string(AppendBanner(nil, 1<<20)), "IP Virtual Server version 1.2.1 (size=1048576)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNtop(t *testing.T) {
	for in, want := range map[string]string{
		"::1.2.3.4": "::1.2.3.4", "::ffff:1.2.3.4": "::ffff:1.2.3.4", "::1": "::1", "::": "::",
		"2001:db8:0:0:1:0:0:1": "2001:db8::1:0:0:1", "::0.0.1.2": "::102",
	} {
		if got := ntop(netip.MustParseAddr(in)); got != want {
			t.Errorf("ntop(%s) = %s, want %s", in, got, want)
		}
	}
}

func rates(cps, inPPS, outPPS, inBPS, outBPS uint64) ipvs.Rates {
	return ipvs.Rates{CPS: cps, InPPS: inPPS, OutPPS: outPPS, InBPS: inBPS, OutBPS: outBPS}
}

// Entries a backup received end their -Lc row with SYNC; the others are
// ipvsadm's rows byte for byte.
func TestConnRowsSynced(t *testing.T) {
	tpl := ConnView{Protocol: ipvs.UDP, Client: netip.MustParseAddrPort("0.0.0.0:0"), Virtual: netip.MustParseAddrPort("10.4.3.192:5060"),
		Dest: netip.MustParseAddrPort("192.168.1.10:5060"), State: "NONE", Expires: 38, PEName: "sip", PEData: []byte("193373839")}
	conn := ConnView{Protocol: ipvs.UDP, Client: netip.MustParseAddrPort("10.4.3.7:5062"), Virtual: netip.MustParseAddrPort("10.4.3.192:5060"),
		Dest: netip.MustParseAddrPort("192.168.1.10:5060"), State: "UDP", Expires: 299}
	f := Format{Numeric: true, PersistentConn: true}
	local := string(AppendConnRows(nil, []ConnView{tpl, conn}, f, Names{}))
	want := "UDP 00:38  NONE        0.0.0.0:0          10.4.3.192:5060    192.168.1.10:5060 sip                193373839\n" +
		"UDP 04:59  UDP         10.4.3.7:5062      10.4.3.192:5060    192.168.1.10:5060\n"
	if local != want {
		t.Fatalf("local rows\n%q\nwant\n%q", local, want)
	}
	tpl.Synced, conn.Synced = true, true
	synced := string(AppendConnRows(nil, []ConnView{tpl, conn}, f, Names{}))
	if synced != strings.ReplaceAll(want, "\n", " SYNC\n") {
		t.Errorf("synced rows\n%q", synced)
	}
}
