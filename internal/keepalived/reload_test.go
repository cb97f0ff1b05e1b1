package keepalived

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// live is a running configuration fed by keepalived.conf loads and
// reloads, as the daemon keeps it.
type live struct {
	t     *testing.T
	cfg   *ipvs.Config
	owned map[ipvs.ServiceKey]bool
}

func newLive(t *testing.T) *live {
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	return &live{t: t, cfg: cfg}
}

// reload loads text and applies its difference; it returns the commands.
func (lv *live) reload(text string) ([]string, error) {
	lv.t.Helper()
	l, err := Load("main.conf", memFS{"main.conf": text}.options(""))
	if err != nil {
		return nil, err
	}
	ch, err := l.Diff(lv.cfg.Snapshot(), lv.owned)
	if err != nil {
		return nil, err
	}
	var argv []string
	for _, r := range ch.Rules {
		if err := rules.Apply(lv.cfg, r.Cmd); err != nil {
			lv.t.Fatalf("%v: %v", r.Argv, err)
		}
		argv = append(argv, strings.Join(r.Argv, " "))
	}
	lv.owned = ch.Owned
	return argv, nil
}

func (lv *live) ids() map[netip.AddrPort]ipvs.DestID {
	out := map[netip.AddrPort]ipvs.DestID{}
	for _, s := range lv.cfg.Snapshot().Services() {
		for _, d := range s.Dests {
			out[d.Addr] = d.ID
		}
	}
	return out
}

const reloadBase = `virtual_server 10.0.0.1 5060 {
    protocol UDP
    lvs_sched rr
    persistence_timeout 60
    persistence_granularity 0.0.0.0
    persistence_engine sip
    ops
    real_server 10.0.1.1 5060 { weight 1 }
    real_server 10.0.1.2 5060 { weight 1 }
    real_server 10.0.1.3 5060 {
        weight 1
        TCP_CHECK { connect_timeout 1 }
    }
}
virtual_server 10.0.0.2 80 {
    protocol TCP
    real_server 10.0.1.1 80 { }
}
`

// A reload applies exactly the difference, as keepalived's does: an
// unchanged file issues nothing; a changed scheduler or persistence is an
// edit (-E), a changed weight an edit (-e); real servers and services come
// and go; DestIDs (and so templates and counters) of what stays are kept.
func TestReloadAppliesTheDifference(t *testing.T) {
	lv := newLive(t)
	if _, err := lv.reload(reloadBase); err != nil {
		t.Fatal(err)
	}
	before := lv.ids()
	if cmds, err := lv.reload(reloadBase); err != nil || len(cmds) != 0 {
		t.Fatalf("unchanged file: %q %v", cmds, err)
	}
	next := strings.NewReplacer(
		"lvs_sched rr", "lvs_sched mh",
		"persistence_timeout 60", "persistence_timeout 120",
		"real_server 10.0.1.2 5060 { weight 1 }", "real_server 10.0.1.2 5060 { weight 5 }",
		"real_server 10.0.1.1 5060 { weight 1 }\n", "real_server 10.0.1.4 5060 { weight 1 }\n",
		"TCP_CHECK { connect_timeout 1 }", "TCP_CHECK { connect_timeout 2 }",
		"virtual_server 10.0.0.2 80", "virtual_server 10.0.0.3 80",
	).Replace(reloadBase)
	cmds, err := lv.reload(next)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-E -u 10.0.0.1:5060 -s mh -p 120 -M 0.0.0.0 --pe sip -o",
		"-d -u 10.0.0.1:5060 -r 10.0.1.1:5060",
		"-a -u 10.0.0.1:5060 -r 10.0.1.4:5060 -m -w 1",
		"-e -u 10.0.0.1:5060 -r 10.0.1.2:5060 -m -w 5",
		"--health-check -u 10.0.0.1:5060 -r 10.0.1.3:5060 --check tcp --interval 60 --check-timeout 2 --fail 2 --rise 1 --retry-interval 1 --on-fail expire",
		"-A -t 10.0.0.3:80 -s wlc",
		"-a -t 10.0.0.3:80 -r 10.0.1.1:80 -m -w 1",
		"-D -t 10.0.0.2:80",
	}
	if !slices.Equal(cmds, want) {
		t.Errorf("commands\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
	after := lv.ids()
	for _, a := range []string{"10.0.1.2:5060", "10.0.1.3:5060"} {
		ap := netip.MustParseAddrPort(a)
		if before[ap] != after[ap] {
			t.Errorf("%s: DestID %v became %v", a, before[ap], after[ap])
		}
	}
	svc := lv.cfg.Snapshot().Services()[0]
	if svc.Scheduler != "mh" || svc.Timeout != 120 || svc.PE != "sip" {
		t.Errorf("service %+v", svc.ServiceConfig)
	}
	// Removing the persistence engine edits it away (EDIT replaces it).
	cmds, err = lv.reload(strings.Replace(next, "persistence_engine sip\n", "", 1))
	if err != nil || len(cmds) != 1 || cmds[0] != "-E -u 10.0.0.1:5060 -s mh -p 120 -M 0.0.0.0 -o" {
		t.Errorf("pe removal: %q %v", cmds, err)
	}
}

// A service configured outside the file (--rules, xvsadm) is left alone
// and may not be declared by a reload; a drained real server stays drained
// with its restore weight updated.
func TestReloadOwnershipAndDrains(t *testing.T) {
	lv := newLive(t)
	other, _ := ipvsadm.Parse(strings.Fields("-A -u 10.9.9.9:5060 -s rr"))
	if err := rules.Apply(lv.cfg, other); err != nil {
		t.Fatal(err)
	}
	if _, err := lv.reload(reloadBase); err != nil {
		t.Fatal(err)
	}
	_, err := lv.reload(reloadBase + "virtual_server 10.9.9.9 5060 {\nprotocol UDP\nreal_server 10.0.1.1 5060 { }\n}\n")
	if err == nil || !strings.Contains(err.Error(), "main.conf:19: error: virtual service UDP 10.9.9.9:5060 is already configured by --rules or xvsadm") {
		t.Fatalf("conflict: %v", err)
	}
	k := ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 5060}
	if err := lv.cfg.Drain(k, netip.MustParseAddrPort("10.0.1.2:5060"), -1); err != nil {
		t.Fatal(err)
	}
	cmds, err := lv.reload(strings.Replace(reloadBase, "real_server 10.0.1.2 5060 { weight 1 }", "real_server 10.0.1.2 5060 { weight 4 }", 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--drain -u 10.0.0.1:5060 -r 10.0.1.2:5060 -w 4"}; !slices.Equal(cmds, want) {
		t.Errorf("drain: %q", cmds)
	}
	for _, d := range lv.cfg.Snapshot().Services()[0].Dests {
		if d.Addr.String() == "10.0.1.2:5060" && (!d.Draining || d.Weight != 0 || d.DrainWeight != 4) {
			t.Errorf("drained server %+v", d)
		}
	}
	if !slices.ContainsFunc(lv.cfg.Snapshot().Services(), func(s *ipvs.Service) bool { return s.Key.Addr.String() == "10.9.9.9" }) {
		t.Error("the service from elsewhere was removed")
	}
	// A file that does not load is refused before anything is computed.
	if _, err := lv.reload("virtual_server 10.0.0.1 5060 {\n"); err == nil {
		t.Error("broken file accepted")
	}
}
