package ipvs

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/sched"
)

var (
	vip   = netip.MustParseAddrPort("192.0.2.10:5060")
	vkey  = ServiceKey{UDP, vip.Addr(), 5060}
	vip6  = netip.MustParseAddrPort("[2001:db8::10]:5060")
	rs1   = netip.MustParseAddrPort("10.0.0.1:5060")
	rs2   = netip.MustParseAddrPort("10.0.0.2:5060")
	rs3   = netip.MustParseAddrPort("10.0.0.3:5080")
	sipPE = func(name string) bool { return name == "sip" }
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newConfig(t testing.TB, workers int) (*Config, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c, err := New(Options{Workers: workers, PEExists: sipPE, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func sipService() ServiceConfig {
	return ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr", Persistent: true, Timeout: 60,
		Netmask: Mask4(netip.MustParseAddr("0.0.0.0")), PE: "sip", OnePacket: true}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAddServiceValidation(t *testing.T) {
	for _, c := range []struct {
		desc string
		svc  ServiceConfig
		err  error
	}{
		{desc: "the SIP service of the design", svc: sipService()},
		{desc: "zero port on a non-persistent service",
			svc: ServiceConfig{Protocol: UDP, Addr: netip.AddrPortFrom(vip.Addr(), 0)}, err: ErrZeroPort},
		{desc: "zero port on a persistent service",
			svc: ServiceConfig{Protocol: UDP, Addr: netip.AddrPortFrom(vip.Addr(), 0), Persistent: true}},
		{desc: "one-packet scheduling on TCP",
			svc: ServiceConfig{Protocol: TCP, Addr: vip, OnePacket: true}, err: ErrOnePacketUDP},
		{desc: "unknown scheduler", svc: ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "lblc"}, err: ErrNotFound},
		{desc: "unknown persistence engine", svc: ServiceConfig{Protocol: UDP, Addr: vip, PE: "rtsp"}, err: ErrNotFound},
		{desc: "PE on a non-persistent service is accepted", svc: ServiceConfig{Protocol: UDP, Addr: vip, PE: "sip"}},
		{desc: "persistence timeout above 31 days",
			svc: ServiceConfig{Protocol: UDP, Addr: vip, Persistent: true, Timeout: MaxTimeout + 1}, err: ErrInvalid},
		{desc: "IPv6 prefix netmask on an IPv4 service",
			svc: ServiceConfig{Protocol: UDP, Addr: vip, Persistent: true, Netmask: Mask6(64)}, err: ErrInvalid},
		{desc: "IPv6 prefix 0 is rejected as by the kernel",
			svc: ServiceConfig{Protocol: UDP, Addr: vip6, Persistent: true, Netmask: Mask6(0)}, err: ErrInvalid},
		{desc: "IPv6 prefix 129", svc: ServiceConfig{Protocol: UDP, Addr: vip6, Persistent: true, Netmask: Mask6(129)}, err: ErrInvalid},
		{desc: "IPv6 prefix 64", svc: ServiceConfig{Protocol: UDP, Addr: vip6, Persistent: true, Netmask: Mask6(64)}},
		{desc: "unknown protocol", svc: ServiceConfig{Protocol: 132, Addr: vip}, err: ErrInvalid},
		{desc: "invalid scheduler flag bit", svc: ServiceConfig{Protocol: UDP, Addr: vip, SchedFlags: 0x4}, err: ErrInvalid},
		{desc: "SCTP (named for ipvsadm, not balanced)", svc: ServiceConfig{Protocol: SCTP, Addr: vip}, err: ErrInvalid},
		{desc: "PE name longer than IP_VS_PENAME_MAXLEN", svc: ServiceConfig{Protocol: UDP, Addr: vip, PE: "sipsipsipsipsipsip"}, err: ErrInvalid},
	} {
		t.Run(c.desc, func(t *testing.T) {
			cfg, _ := newConfig(t, 1)
			err := cfg.AddService(c.svc)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if n := len(cfg.Snapshot().Services()); (n == 1) != (c.err == nil) {
				t.Errorf("%d services after the command", n)
			}
		})
	}
}

func TestServiceDefaultsAndEdit(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Persistent: true}))
	svc := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	if svc.Scheduler != "wlc" || svc.Timeout != DefaultPersistentTimeout {
		t.Errorf("defaults: scheduler %q timeout %d, want wlc 360", svc.Scheduler, svc.Timeout)
	}
	if err := cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip}); !errors.Is(err, ErrServiceExists) {
		t.Errorf("re-add: %v", err)
	}
	if err := cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip}); err.Error() != "UDP 192.0.2.10:5060: Service already exists" {
		t.Errorf("message %q", err)
	}
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	svc = cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	must(t, cfg.EditService(sipService()))
	svc2 := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	if svc2.PE != "sip" || !svc2.OnePacket || svc2.Timeout != 60 || svc2.Scheduler != "rr" {
		t.Errorf("after -E: %+v", svc2.ServiceConfig)
	}
	if svc2.Stats != svc.Stats || svc2.Dests[0].ID != svc.Dests[0].ID {
		t.Error("-E lost the service counters or the DestIDs")
	}
	// -E without --pe removes the engine; -p without timeout resets to 360.
	must(t, cfg.EditService(ServiceConfig{Protocol: UDP, Addr: vip, Persistent: true}))
	if s := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060); s.PE != "" || s.OnePacket || s.Timeout != 360 || s.Scheduler != "wlc" {
		t.Errorf("-E replaces wholesale: %+v", s.ServiceConfig)
	}
	if err := cfg.EditService(ServiceConfig{Protocol: TCP, Addr: vip}); !errors.Is(err, ErrNoService) {
		t.Errorf("-E of a missing service: %v", err)
	}
}

// TestTunnelDests: a tunnelling destination keeps its encapsulation, may be
// of the other address family (the only method that may), takes the
// service port, and another method drops tunnel options.
func TestTunnelDests(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(sipService()))
	gue := TunnelConfig{Type: GUE, Port: 6080, Csum: TunRemCsum}
	must(t, cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("[2001:db8::7]:9"), Fwd: Tunnel, Weight: 1, Tunnel: gue}))
	must(t, cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.7:0"), Fwd: Route, Weight: 1, Tunnel: gue}))
	must(t, cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.8:0"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Type: GRE, Csum: TunCsum}}))
	s := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	if len(s.Dests) != 3 {
		t.Fatalf("%d dests", len(s.Dests))
	}
	gre, dr, v6 := s.Dests[0], s.Dests[1], s.Dests[2]
	if v6.Addr != netip.MustParseAddrPort("[2001:db8::7]:5060") || v6.Tunnel != gue {
		t.Errorf("IPv6 GUE dest %v %+v", v6.Addr, v6.Tunnel)
	}
	if dr.Tunnel != (TunnelConfig{}) {
		t.Errorf("DR dest kept tunnel options %+v", dr.Tunnel)
	}
	if gre.Tunnel != (TunnelConfig{Type: GRE, Csum: TunCsum}) {
		t.Errorf("GRE dest %+v", gre.Tunnel)
	}
	must(t, cfg.EditDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.8:0"), Fwd: Tunnel, Weight: 1}))
	if d := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060).Dests[0]; d.Tunnel != (TunnelConfig{}) {
		t.Errorf("-e without tunnel options kept %+v (ipvsadm -e replaces them with ipip)", d.Tunnel)
	}
	for _, n := range []string{"ipip", "gue", "gre"} {
		if tt, ok := ParseTunnelType(n); !ok || tt.String() != n {
			t.Errorf("ParseTunnelType(%q) = %v, %v", n, tt, ok)
		}
	}
	if _, ok := ParseTunnelType("vxlan"); ok {
		t.Error("vxlan parsed")
	}
}

func TestDestCommands(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(sipService()))
	must(t, cfg.AddDest(vkey, DefaultDest(netip.MustParseAddrPort("10.0.0.1:9999"))))
	must(t, cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.2:0"), Fwd: Masq, Weight: 2}))
	must(t, cfg.AddDest(vkey, DestConfig{Addr: rs3, Fwd: Masq, Weight: 3}))
	s := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	var got []netip.AddrPort
	for _, d := range s.Dests {
		got = append(got, d.Addr)
	}
	// Newest first; DR forces the service port; port 0 means the service port.
	want := []netip.AddrPort{rs3, rs2, rs1}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("dest list %v, want %v", got, want)
	}

	for _, c := range []struct {
		desc string
		run  func() error
		err  error
	}{
		{"add an existing dest (DR port forced)", func() error { return cfg.AddDest(vkey, DefaultDest(rs1)) }, ErrDestExists},
		{"add to a missing service", func() error { return cfg.AddDest(ServiceKey{TCP, vip.Addr(), 5060}, DefaultDest(rs1)) }, ErrNoService},
		{"lower threshold above upper", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Weight: 1, Upper: 5, Lower: 6})
		}, ErrRange},
		{"lower threshold with no upper", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Weight: 1, Lower: 1})
		}, ErrRange},
		{"weight above 65535", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Weight: 65536})
		}, ErrRange},
		{"IPv6 dest on an IPv4 service", func() error {
			return cfg.AddDest(vkey, DefaultDest(netip.MustParseAddrPort("[2001:db8::1]:5060")))
		}, ErrInvalid},
		{"GUE tunnel without a port", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Type: GUE}})
		}, ErrInvalid},
		{"GRE tunnel with remote checksum offload", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Type: GRE, Csum: TunRemCsum}})
		}, ErrInvalid},
		{"IPIP tunnel with a port", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Port: 5555}})
		}, ErrInvalid},
		{"IPIP tunnel with a checksum", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Csum: TunCsum}})
		}, ErrInvalid},
		{"unknown tunnel type", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Tunnel, Weight: 1, Tunnel: TunnelConfig{Type: 3}})
		}, ErrInvalid},
		{"local-node forwarding", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: Local, Weight: 1})
		}, ErrInvalid},
		{"unknown forwarding method", func() error {
			return cfg.AddDest(vkey, DestConfig{Addr: netip.MustParseAddrPort("10.0.0.9:1"), Fwd: 4, Weight: 1})
		}, ErrInvalid},
		{"edit a missing dest", func() error { return cfg.EditDest(vkey, DefaultDest(netip.MustParseAddrPort("10.0.0.9:5060"))) }, ErrNoDest},
		{"delete a missing dest", func() error { return cfg.DelDest(vkey, netip.MustParseAddrPort("10.0.0.9:5060")) }, ErrNoDest},
	} {
		t.Run(c.desc, func(t *testing.T) {
			before := cfg.Snapshot()
			if err := c.run(); !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if after := cfg.Snapshot(); after != before {
				t.Error("a failed command changed the configuration")
			}
		})
	}

	// -e replaces wholesale: weight 0 given with the ipvsadm defaults turns
	// the NAT dest into a DR dest on the service port.
	id := s.Dests[1].ID
	must(t, cfg.EditDest(vkey, DestConfig{Addr: rs2, Fwd: Route, Weight: 0}))
	s2 := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	if d := s2.Dests[1]; d.ID != id || d.Fwd != Route || d.Weight != 0 || d.Stats != s.Dests[1].Stats {
		t.Errorf("after -e: %+v", d)
	}
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	must(t, cfg.SetNextHop(vkey, netip.AddrPortFrom(rs1.Addr(), 0), mac))
	if d := cfg.Snapshot().Dest(s.Dests[2].ID); d.NextHop != mac {
		t.Errorf("next hop %v", d.NextHop)
	}
}

func TestDestIDsAcrossReconfiguration(t *testing.T) {
	cfg, clk := newConfig(t, 2)
	must(t, cfg.AddService(sipService()))
	other := ServiceConfig{Protocol: TCP, Addr: netip.MustParseAddrPort("192.0.2.20:80"), Scheduler: "mh"}
	must(t, cfg.AddService(other))
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	must(t, cfg.AddDest(vkey, DefaultDest(rs2)))
	must(t, cfg.AddDest(other.Key(), DefaultDest(netip.MustParseAddrPort("10.0.1.1:80"))))
	s1 := cfg.Snapshot()
	if s1 != cfg.Snapshot() {
		t.Error("an unchanged config compiled a new snapshot")
	}
	web := s1.Lookup(TCP, other.Addr.Addr(), 80)
	sip := s1.Lookup(UDP, vip.Addr(), 5060)
	id1, id2 := sip.Dests[1].ID, sip.Dests[0].ID // rs1, rs2
	sip.Dests[1].Stats.Worker(1).Conn()

	must(t, cfg.DelDest(vkey, rs1))
	s2 := cfg.Snapshot()
	if s2.Lookup(TCP, other.Addr.Addr(), 80) != web {
		t.Error("an untouched service was recompiled")
	}
	if s2.Dest(id1) != nil || s2.Dest(id2) == nil || s1.Dest(id1) == nil {
		t.Error("Dest(id) after delete: want nil for the deleted dest in the new snapshot only")
	}
	// Its counters stay reachable while it is in the trash, so the data
	// plane can still take its expiring entries off its gauges.
	if st := s2.DestStats(id1); st == nil || st.Read().Conns != 1 {
		t.Errorf("DestStats of a trashed dest: %v", st)
	}
	if s2.DestStats(id2) != s2.Dest(id2).Stats || s2.DestStats(0) != nil {
		t.Error("DestStats of a live dest / the zero id")
	}

	// IPVS revives a dest re-added within the trash period: same id, stats.
	clk.t = clk.t.Add(100 * time.Second)
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	d := cfg.Snapshot().Dest(id1)
	if d == nil || d.Addr != rs1 || d.Stats.Read().Conns != 1 {
		t.Fatalf("revived dest: %+v", d)
	}
	// After the trash period, a re-added dest gets a fresh slot generation.
	must(t, cfg.DelDest(vkey, rs1))
	clk.t = clk.t.Add(DestTrashPeriod * time.Second)
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	s3 := cfg.Snapshot()
	if s3.Dest(id1) != nil || s3.DestStats(id1) != nil {
		t.Error("a stale DestID is valid after its slot was reused")
	}
	fresh := s3.Lookup(UDP, vip.Addr(), 5060).Dests[0]
	if fresh.Addr != rs1 || fresh.ID == id1 || fresh.Stats.Read().Conns != 0 {
		t.Errorf("re-added dest: id %v (old %v), conns %d", fresh.ID, id1, fresh.Stats.Read().Conns)
	}

	// Deleting a service sends its dests to the trash; they revive with it.
	must(t, cfg.DelService(vkey))
	if cfg.Snapshot().Dest(id2) != nil {
		t.Error("dest of a deleted service still valid")
	}
	must(t, cfg.AddService(sipService()))
	must(t, cfg.AddDest(vkey, DefaultDest(rs2)))
	if cfg.Snapshot().Dest(id2) == nil {
		t.Error("dest not revived with its service")
	}
	cfg.Clear()
	if s := cfg.Snapshot(); len(s.Services()) != 0 || s.Dest(id2) != nil {
		t.Error("Clear left services or dests")
	}
}

func TestTooManyDests(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	cfg.slotGen = make([]uint32, MaxDests) // pretend every slot is taken
	if err := cfg.AddDest(vkey, DefaultDest(rs1)); !errors.Is(err, ErrTooManyDests) {
		t.Fatalf("err = %v", err)
	}
	if len(cfg.Snapshot().Services()[0].Dests) != 0 {
		t.Error("failed add left a dest")
	}
}

func TestLookup(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Scheduler: "rr"}))
	any := ServiceConfig{Protocol: UDP, Addr: netip.AddrPortFrom(vip.Addr(), 0), Persistent: true}
	must(t, cfg.AddService(any))
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip6, Scheduler: "rr"}))
	s := cfg.Snapshot()
	for _, c := range []struct {
		desc  string
		proto Protocol
		addr  netip.Addr
		port  uint16
		want  *ServiceKey
	}{
		{"exact port", UDP, vip.Addr(), 5060, &vkey},
		{"other port falls back to the port-0 service", UDP, vip.Addr(), 5070, &ServiceKey{UDP, vip.Addr(), 0}},
		{"other protocol", TCP, vip.Addr(), 5060, nil},
		{"other address", UDP, netip.MustParseAddr("192.0.2.11"), 5060, nil},
		{"IPv6", UDP, vip6.Addr(), 5060, &ServiceKey{UDP, vip6.Addr(), 5060}},
	} {
		got := s.Lookup(c.proto, c.addr, c.port)
		if (got == nil) != (c.want == nil) || (got != nil && got.Key != *c.want) {
			t.Errorf("%s: got %v, want %v", c.desc, got, c.want)
		}
	}
}

func TestMaskClient(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip, Persistent: true,
		Netmask: Mask4(netip.MustParseAddr("255.0.255.0"))}))
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: vip6, Persistent: true, Netmask: Mask6(52)}))
	must(t, cfg.AddService(ServiceConfig{Protocol: TCP, Addr: vip, Persistent: true}))
	must(t, cfg.AddService(ServiceConfig{Protocol: TCP, Addr: vip6, Persistent: true, Netmask: Mask6(96)}))
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: netip.AddrPortFrom(vip.Addr(), 5070), Persistent: true, Netmask: Mask4(netip.MustParseAddr("0.0.0.0"))}))
	s := cfg.Snapshot()
	for _, c := range []struct {
		desc string
		svc  *Service
		in   string
		want string
	}{
		{"non-contiguous IPv4 mask is ANDed", s.Lookup(UDP, vip.Addr(), 5060), "10.4.3.192", "10.0.3.0"},
		{"IPv6 prefix length 52", s.Lookup(UDP, vip6.Addr(), 5060), "2001:db8:1234:5678::1", "2001:db8:1234:5000::"},
		{"default keeps the whole address", s.Lookup(TCP, vip.Addr(), 5060), "10.4.3.192", "10.4.3.192"},
		{"IPv6 prefix length 96 (its last 32 bits zero)", s.Lookup(TCP, vip6.Addr(), 5060), "2001:db8::a04:3c0", "2001:db8::"},
		{"0.0.0.0: every client one", s.Lookup(UDP, vip.Addr(), 5070), "10.4.3.192", "0.0.0.0"},
	} {
		if got := c.svc.MaskClient(netip.MustParseAddr(c.in)); got.String() != c.want {
			t.Errorf("%s: %v -> %v, want %v", c.desc, c.in, got, c.want)
		}
	}
	if got := s.Lookup(UDP, vip.Addr(), 5060).Netmask.String(); got != "255.0.255.0" {
		t.Errorf("netmask string %q", got)
	}
}

func TestScheduleThroughSnapshot(t *testing.T) {
	cfg, _ := newConfig(t, 2)
	svc := sipService()
	svc.Scheduler = "wlc"
	must(t, cfg.AddService(svc))
	for _, rs := range []netip.AddrPort{rs1, rs2, rs3} {
		must(t, cfg.AddDest(vkey, DefaultDest(rs)))
	}
	s := cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	// Under -o, live templates are load: each new Call-ID goes to the dest
	// with the fewest templates, even when they are held by other workers.
	hits := map[netip.AddrPort]int{}
	for i := range 300 {
		w := i % 2
		d := s.Schedule(w, &sched.Input{HasPE: true, PEHash: uint64(i)})
		d.Stats.Worker(w).AddPersist(1)
		hits[d.Addr]++
	}
	rs3dr := netip.AddrPortFrom(rs3.Addr(), 5060) // direct routing forces the service port
	if hits[rs1] != 100 || hits[rs2] != 100 || hits[rs3dr] != 100 {
		t.Errorf("wlc under -o spread %v, want 100 each", hits)
	}
	// Without -o, wlc (IPVS) ignores templates: all to the newest dest.
	svc.OnePacket = false
	must(t, cfg.EditService(svc))
	s = cfg.Snapshot().Lookup(UDP, vip.Addr(), 5060)
	if d := s.Schedule(0, &sched.Input{}); d.Addr != rs3dr {
		t.Errorf("wlc tie went to %v, want the newest dest %v", d.Addr, rs3dr)
	}
}

func TestTemplateDest(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(sipService()))
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	id := cfg.Snapshot().Services()[0].Dests[0].ID
	must(t, cfg.EditDest(vkey, DestConfig{Addr: rs1, Fwd: Route, Weight: 0}))
	if cfg.Snapshot().TemplateDest(id) == nil {
		t.Error("quiesced dest: template must stay valid by default")
	}
	must(t, cfg.SetSysctl(ExpireQuiescentTemplate, []int64{1}))
	if cfg.Snapshot().TemplateDest(id) != nil {
		t.Error("quiesced dest with expire_quiescent_template: template must be invalid")
	}
	if cfg.Snapshot().TemplateDest(0) != nil {
		t.Error("DestID 0 is valid")
	}
}

func TestTimeouts(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	if cfg.Timeouts() != DefaultTimeouts {
		t.Errorf("defaults %+v", cfg.Timeouts())
	}
	must(t, cfg.SetTimeouts(Timeouts{UDP: 60}))
	if got := cfg.Snapshot().Timeouts; got != (Timeouts{900, 120, 60}) {
		t.Errorf("--set 0 0 60: %+v", got)
	}
	if err := cfg.SetTimeouts(Timeouts{TCP: MaxTimeout + 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("too large: %v", err)
	}
}

func TestCounters(t *testing.T) {
	const workers = 4
	cfg, _ := newConfig(t, workers)
	must(t, cfg.AddService(sipService()))
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	d := cfg.Snapshot().Services()[0].Dests[0]
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := d.Stats.Worker(w)
			for range 1000 {
				c.Conn()
				c.In(100)
				c.AddPersist(1)
			}
			c.Out(60)
			c.AddActive(2)
			c.AddInactive(-1)
		})
	}
	for range 100 { // concurrent readers (race detector)
		d.Stats.Read()
	}
	wg.Wait()
	got := d.Stats.Read()
	want := Counters{Conns: 4000, InPkts: 4000, InBytes: 400000, OutPkts: 4, OutBytes: 240,
		ActiveConns: 8, InactConns: -4, PersistConns: 4000}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if l := d.Stats.Load(); l != (sched.Load{Active: 8, Inactive: -4, Persist: 4000}) {
		t.Errorf("load %+v", l)
	}
	cfg.ZeroAll()
	d.Stats.Worker(0).Conn()
	if got := d.Stats.Read(); got.Conns != 1 || got.InPkts != 0 || got.PersistConns != 4000 {
		t.Errorf("after -Z: %+v (gauges must survive)", got)
	}
	// Counters survive reconfiguration of the service.
	must(t, cfg.AddDest(vkey, DefaultDest(rs2)))
	if got := cfg.Snapshot().Dest(d.ID).Stats.Read().Conns; got != 1 {
		t.Errorf("after reconfiguration conns = %d", got)
	}
	if err := cfg.ZeroService(ServiceKey{TCP, vip.Addr(), 1}); !errors.Is(err, ErrNoService) {
		t.Errorf("ZeroService: %v", err)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	cfg, _ := newConfig(t, 1)
	must(t, cfg.AddService(sipService()))
	must(t, cfg.AddService(ServiceConfig{Protocol: UDP, Addr: netip.AddrPortFrom(vip.Addr(), 0), Persistent: true}))
	must(t, cfg.AddDest(vkey, DefaultDest(rs1)))
	must(t, cfg.AddDest(vkey, DefaultDest(rs2)))
	s := cfg.Snapshot()
	id := s.Services()[0].Dests[0].ID
	client := netip.MustParseAddr("10.4.3.192")
	in := &sched.Input{HasPE: true, PEHash: 7}
	for name, f := range map[string]func(){
		"Lookup exact":    func() { _ = s.Lookup(UDP, vip.Addr(), 5060) },
		"Lookup fallback": func() { _ = s.Lookup(UDP, vip.Addr(), 9) },
		"Dest":            func() { _ = s.TemplateDest(id) },
		"Schedule":        func() { _ = s.Services()[0].Schedule(0, in) },
		"MaskClient":      func() { _ = s.Services()[0].MaskClient(client) },
		"Counter": func() {
			c := s.Dest(id).Stats.Worker(0)
			c.Conn()
			c.In(100)
			c.AddPersist(1)
		},
		"Load": func() { _ = s.Dest(id).Stats.Load() },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocs", name, a)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	cfg, _ := newConfig(b, 1)
	for i := range 64 {
		must(b, cfg.AddService(ServiceConfig{Protocol: UDP, Scheduler: "rr",
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 5060)}))
	}
	s := cfg.Snapshot()
	a := netip.AddrFrom4([4]byte{192, 0, 2, 33})
	b.ReportAllocs()
	for b.Loop() {
		if s.Lookup(UDP, a, 5060) == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkScheduleWLC(b *testing.B) {
	cfg, _ := newConfig(b, 8)
	svc := sipService()
	svc.Scheduler = "wlc"
	must(b, cfg.AddService(svc))
	for i := range 16 {
		must(b, cfg.AddDest(vkey, DefaultDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 5060))))
	}
	s := cfg.Snapshot().Services()[0]
	in := &sched.Input{HasPE: true}
	b.ReportAllocs()
	for b.Loop() {
		s.Schedule(0, in).Stats.Worker(0).AddPersist(1)
	}
}

func BenchmarkCounter(b *testing.B) {
	st := newStats(8)
	c := st.Worker(3)
	b.ReportAllocs()
	for b.Loop() {
		c.Conn()
		c.In(200)
	}
}
