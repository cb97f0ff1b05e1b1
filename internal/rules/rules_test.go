package rules

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/pe"
)

func newConfig(t *testing.T) *ipvs.Config {
	t.Helper()
	c, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadSIPRules(t *testing.T) {
	cfg := newConfig(t)
	in := `# the ipvs.md example, as ipvsadm -S prints it
-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
ipvsadm -a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 2

-A -u [2001:db8::1]:5060 -s mh -b mh-port -p -M 64 --pe sip --pe-strict -o
-a -u [2001:db8::1]:5060 -r [2001:db8::10]:5060 -g -w 1
--set 100 20 30
`
	if err := Read(cfg, strings.NewReader(in), "sip.rules"); err != nil {
		t.Fatal(err)
	}
	s := cfg.Snapshot()
	svc := s.Lookup(ipvs.UDP, netip.MustParseAddr("10.4.3.192"), 5060)
	if svc == nil || svc.Scheduler != "rr" || !svc.Persistent || svc.Timeout != 60 || svc.PE != "sip" || !svc.OnePacket || svc.PEStrict {
		t.Fatalf("service = %+v", svc)
	}
	if got := svc.MaskClient(netip.MustParseAddr("10.4.3.7")); got != netip.MustParseAddr("0.0.0.0") {
		t.Fatalf("-M 0.0.0.0 masked to %v", got)
	}
	if len(svc.Dests) != 2 || svc.Dests[0].Addr.String() != "192.168.1.11:5060" || svc.Dests[0].Weight != 2 || svc.Dests[0].Fwd != ipvs.Masq {
		t.Fatalf("dests = %+v (IPVS prepends new dests)", svc.Dests)
	}
	v6 := s.Lookup(ipvs.UDP, netip.MustParseAddr("2001:db8::1"), 5060)
	if v6 == nil || v6.Timeout != 360 || !v6.PEStrict || v6.Scheduler != "mh" || v6.Dests[0].Fwd != ipvs.Route {
		t.Fatalf("v6 service = %+v", v6)
	}
	if got := v6.MaskClient(netip.MustParseAddr("2001:db8:0:0:1:2:3:4")); got != netip.MustParseAddr("2001:db8::") {
		t.Fatalf("-M 64 masked to %v", got)
	}
	if s.Timeouts != (ipvs.Timeouts{TCP: 100, TCPFin: 20, UDP: 30}) {
		t.Fatalf("timeouts = %+v", s.Timeouts)
	}
}

func TestReadErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		desc, in, want string
	}{
		{"unknown engine", "-A -u 10.0.0.1:5060 -p --pe nosuch\n", "r:1: UDP 10.0.0.1:5060: persistence engine \"nosuch\" not found: Scheduler or persistence engine not found"},
		{"duplicate service", "-A -u 10.0.0.1:5060\n\n-A -u 10.0.0.1:5060\n", "r:3: UDP 10.0.0.1:5060: Service already exists"},
		{"dest without service", "-a -u 10.0.0.1:5060 -r 10.0.0.2\n", "r:1: UDP 10.0.0.1:5060: No such service"},
		{"ops on tcp", "-A -t 10.0.0.1:80 -o\n", "r:1: One-Packet Scheduling is only for UDP virtual services"},
		{"a listing is not configuration", "-L -n\n", "r:1: list: not a configuration command"},
		{"a sysctl listing is not configuration", "--sysctl\n", "r:1: sysctl: not a configuration command"},
		{"a sysctl xvs does not honour", "--sysctl\tdrop_entry=1\n", "r:1: sysctl net.ipv4.vs.drop_entry is not supported by xvs"},
		{"a sysctl out of range", "--sysctl expire_nodest_conn=2\n", "r:1: expire_nodest_conn 2 out of range 0..1"},
	}
	for _, c := range cases {
		err := Read(newConfig(t), strings.NewReader(c.in), "r")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.desc, err, c.want)
		}
	}
	err := Read(newConfig(t), strings.NewReader("-L\n"), "r")
	if !errors.Is(err, ErrNotConfig) {
		t.Errorf("err = %v, want ErrNotConfig", err)
	}
}

// xvs run --rules reads with the reader of xvsadm -R (ipvsadm.ReadRules):
// lines of any length, the file bounded by ipvsadm.MaxRulesBytes.
func TestReadSharesTheRulesReader(t *testing.T) {
	cfg := newConfig(t)
	text := "# " + strings.Repeat("long ", 30<<10) + "\n-A -u 10.0.0.1:5060 # " + strings.Repeat("x", 100<<10) + "\n"
	if err := Read(cfg, strings.NewReader(text), "r"); err != nil || len(cfg.Snapshot().Services()) != 1 {
		t.Fatalf("long lines: %v", err)
	}
	big := strings.Repeat("#\n", ipvsadm.MaxRulesBytes/2+1)
	if err := Read(newConfig(t), strings.NewReader(big), "r"); !errors.Is(err, ipvsadm.ErrRulesTooLarge) {
		t.Fatalf("a file over the limit: %v", err)
	}
}

// A rules file sets IPVS sysctls with --sysctl lines, as xvsadm does.
func TestSysctlRules(t *testing.T) {
	cfg := newConfig(t)
	if err := Read(cfg, strings.NewReader("--sysctl expire_quiescent_template=1\n--sysctl=conn_reuse_mode=2 # comment\n"), "r"); err != nil {
		t.Fatal(err)
	}
	s := cfg.Snapshot()
	if !s.ExpireQuiescentTemplate || s.Sysctls.Get(ipvs.ConnReuseMode) != 2 {
		t.Fatalf("sysctls: %s %s", s.Sysctls.Format(ipvs.ExpireQuiescentTemplate), s.Sysctls.Format(ipvs.ConnReuseMode))
	}
}

func TestHealthAndDrainRules(t *testing.T) {
	cfg := newConfig(t)
	in := `-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 3
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1
--health-check -u 10.4.3.192:5060 --check sip-options --interval 1 --fail 2 --codes 200,404 --on-fail keep
--drain -u 10.4.3.192:5060 -r 192.168.1.10:5060
`
	if err := Read(cfg, strings.NewReader(in), "h.rules"); err != nil {
		t.Fatal(err)
	}
	svc := cfg.Snapshot().Services()[0]
	c := svc.Check
	if c == nil || c.Type != ipvs.CheckSIPOptions || c.Interval != time.Second || c.Timeout != time.Second || c.Fail != 2 ||
		c.Rise != ipvs.DefaultCheckRise || c.OnFail != ipvs.PolicyKeep || len(c.Codes) != 2 || c.Codes[1] != (ipvs.CodeRange{Lo: 404, Hi: 404}) {
		t.Fatalf("check %+v", c)
	}
	if d := svc.Dests[1]; d.Addr.String() != "192.168.1.10:5060" || !d.Draining || d.Weight != 0 {
		t.Fatalf("drained dest %+v", d)
	}
	if err := Read(cfg, strings.NewReader("--undrain -u 10.4.3.192:5060 -r 192.168.1.10\n--health-check -u 10.4.3.192:5060 --check none\n"), "u.rules"); err != nil {
		t.Fatal(err)
	}
	svc = cfg.Snapshot().Services()[0]
	if svc.Check != nil || svc.Dests[1].Draining || svc.Dests[1].Weight != 3 {
		t.Fatalf("after undrain and --check none: %+v %+v", svc.Check, svc.Dests[1])
	}
	err := Read(cfg, strings.NewReader("--health-check -u 10.9.9.9:5060 --check udp\n"), "x.rules")
	if !errors.Is(err, ipvs.ErrNoService) {
		t.Fatalf("check on a missing service: %v", err)
	}
}
