package keepalived

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/pe"
)

// loadText loads a configuration given as text and returns xvsadm -Sn of
// the result and the warnings (messages only), or the refusal.
func loadText(t *testing.T, text string) (string, []string, error) {
	t.Helper()
	return loadFiles(t, memFS{"main.conf": text}, "")
}

func loadFiles(t *testing.T, m memFS, id string) (string, []string, error) {
	t.Helper()
	l, err := Load("main.conf", m.options(id))
	if err != nil {
		return "", nil, err
	}
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Build(cfg); err != nil {
		return "", nil, err
	}
	var w []string
	for _, d := range l.Warnings {
		w = append(w, d.Pos.String()+": "+d.Msg)
	}
	return string(control.SaveRules(cfg.Snapshot(), ipvsadm.Format{Numeric: true}, ipvsadm.Names{})), w, nil
}

func mustLoad(t *testing.T, text string) (string, []string) {
	t.Helper()
	out, w, err := loadText(t, text)
	if err != nil {
		t.Fatalf("refused: %v\n%s", err, text)
	}
	return out, w
}

func hasWarning(w []string, sub string) bool {
	return slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, sub) })
}

// The SIP service of the reference (ipvs.md §7) is exactly the one
// `ipvsadm -A -u VIP:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o` makes.
const sipConf = `virtual_server 10.4.3.192 5060 {
    protocol UDP
    lvs_sched rr
    lvs_method NAT
    persistence_timeout 60
    persistence_granularity 0.0.0.0
    persistence_engine sip
    ops
    real_server 192.168.1.10 5060 { weight 1 }
    real_server 192.168.1.11 5060 { weight 1 }
}
`

const sipRules = `-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1
`

func TestSIPServiceIsIpvsadms(t *testing.T) {
	out, w := mustLoad(t, sipConf)
	if out != sipRules || len(w) != 0 {
		t.Errorf("got\n%s%v\nwant\n%s", out, w, sipRules)
	}
	// The same rules through xvsadm's own path give the same -Sn.
	cfg, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	cmds, err := ipvsadm.ParseRules(strings.NewReader(sipRules))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := applyCmd(cfg, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(control.SaveRules(cfg.Snapshot(), ipvsadm.Format{Numeric: true}, ipvsadm.Names{})); got != out {
		t.Errorf("xvsadm path gives\n%s", got)
	}
}

// keepalived's defaults: NAT, wlc, UDP (with warnings), weight 1, the real
// server's port from the virtual server's; lb_algo/lb_kind are aliases.
func TestDefaults(t *testing.T) {
	out, w := mustLoad(t, `virtual_server 10.0.0.1 80 {
    real_server 10.0.1.1 { }
    real_server 10.0.1.2 8080 { weight 3 }
}
virtual_server 10.0.0.2 80 {
    lb_algo sh
    lb_kind DR
    protocol tcp
    weight 7
    real_server 10.0.1.1 81 { }
}`)
	want := `-A -t 10.0.0.2:80 -s sh
-a -t 10.0.0.2:80 -r 10.0.1.1:80 -g -w 7
-A -u 10.0.0.1:80 -s wlc
-a -u 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1
-a -u 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3
`
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	for _, s := range []string{"no protocol set - defaulting to UDP", "no scheduler set, setting default 'wlc'",
		"no forwarding method set, setting default NAT", "ports don't match - resetting"} {
		if !hasWarning(w, s) {
			t.Errorf("no warning %q in %q", s, w)
		}
	}
}

func TestPersistence(t *testing.T) {
	for _, tc := range []struct{ conf, want, warn string }{
		{"persistence_timeout", "-p 360", ""},
		{"persistence_timeout 600", "-p 600", ""},
		{"persistence_granularity 255.255.255.0", "-p 360 -M 255.255.255.0", ""},
		{"persistence_timeout 60\npersistence_granularity 0.0.0.0", "-p 60 -M 0.0.0.0", ""},
		{"persistence_granularity 0.0.0.0\npersistence_timeout 30", "-p 30 -M 0.0.0.0", ""},
		{"persistence_engine sip", "", "persistence_engine sip ignored without persistence_timeout"},
		{"persistence_engine sip\npersistence_timeout 10", "-p 10 --pe sip", ""},
		{"ops", "-o", ""},
		{"protocol TCP\nops", "", "one packet scheduling requires UDP - resetting"},
	} {
		conf := "virtual_server 10.0.0.1 5060 {\nlvs_sched rr\n" + tc.conf + "\nreal_server 10.0.1.1 5060 { }\n}\n"
		out, w := mustLoad(t, conf)
		first := strings.SplitN(out, "\n", 2)[0]
		if got := strings.TrimSpace(first[strings.Index(first, "-s rr")+5:]); got != tc.want {
			t.Errorf("%q: -A options %q, want %q", tc.conf, got, tc.want)
		}
		if tc.warn != "" && !hasWarning(w, tc.warn) {
			t.Errorf("%q: no warning %q in %q", tc.conf, tc.warn, w)
		}
	}
	// Port 0 makes the service persistent, as keepalived does.
	out, w := mustLoad(t, "virtual_server 10.0.0.1 0 {\nprotocol UDP\nlvs_sched rr\nreal_server 10.0.1.1 5060 { }\n}\n")
	if !strings.HasPrefix(out, "-A -u 10.0.0.1:0 -s rr -p 360\n") || !hasWarning(w, "zero port only valid for persistent services") {
		t.Errorf("port 0: %s %q", out, w)
	}
}

func TestSchedulerFlagsAndMethods(t *testing.T) {
	out, w := mustLoad(t, `virtual_server 10.0.0.1 80 {
    protocol TCP
    lvs_sched mh
    mh-port
    mh-fallback
    sh-port
    flag-3
    lvs_method TUN type gue port 6080 csum
    real_server 10.0.1.1 80 { }
    real_server 10.0.1.2 80 { lvs_method TUN type gre }
    real_server 10.0.1.3 80 {
        lvs_method DR
        uthreshold 100
        lthreshold 10
    }
}
virtual_server 10.0.0.2 80 {
    protocol TCP
    sh-port
    lvs_sched sh
    real_server 10.0.1.1 80 { lvs_method TUN }
}`)
	want := `-A -t 10.0.0.1:80 -s mh -b mh-fallback,mh-port,flag-3
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t 10.0.0.1:80 -r 10.0.1.3:80 -g -w 1
-A -t 10.0.0.2:80 -s sh
-a -t 10.0.0.2:80 -r 10.0.1.1:80 -i -w 1 --tun-type ipip
`
	// The model keeps each real server's encapsulation: -Sn gives it back.
	for _, l := range strings.Split(want, "\n") {
		if !strings.Contains(out, l) {
			t.Errorf("got\n%s\nwant a line %q", out, l)
		}
	}
	l, err := Load("main.conf", memFS{"main.conf": `virtual_server 10.0.0.1 80 {
    protocol TCP
    lvs_method TUN type gue port 6080 csum
    real_server 10.0.1.1 80 { }
    real_server 10.0.1.2 80 { lvs_method TUN type gre }
    real_server 10.0.1.3 80 { lvs_method TUN type gue port 7 remcsum }
}`}.options(""))
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, r := range l.Rules[1:] {
		argv = append(argv, strings.Join(r.Argv, " "))
	}
	if want := []string{
		"-a -t 10.0.0.1:80 -r 10.0.1.1:80 -i --tun-type gue --tun-port 6080 --tun-csum -w 1",
		"-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i --tun-type gre --tun-nocsum -w 1",
		"-a -t 10.0.0.1:80 -r 10.0.1.3:80 -i --tun-type gue --tun-port 7 --tun-remcsum -w 1",
	}; !slices.Equal(argv, want) {
		t.Errorf("tunnel commands %q", argv)
	}
	if !hasWarning(w, "sh-port does not apply to the mh scheduler") || !hasWarning(w, "sh-port only applies to the sh scheduler") {
		t.Errorf("warnings %q", w)
	}
	// Thresholds are not saved by -S (ipvsadm's rule) but are applied.
	l, err = Load("main.conf", memFS{"main.conf": "virtual_server 10.0.0.1 80 {\nprotocol TCP\nreal_server 10.0.1.1 80 { uthreshold 100\nlthreshold 10 }\n}\n"}.options(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err := l.Build(cfg); err != nil {
		t.Fatal(err)
	}
	if d := cfg.Snapshot().Services()[0].Dests[0]; d.Upper != 100 || d.Lower != 10 {
		t.Errorf("thresholds %d %d", d.Upper, d.Lower)
	}
}

// A real server takes the virtual server's lvs_method as it is when the
// real_server starts (keepalived's alloc_rs), else the final one.
func TestMethodInheritanceOrder(t *testing.T) {
	out, _ := mustLoad(t, `virtual_server 10.0.0.1 80 {
    protocol TCP
    lvs_sched rr
    real_server 10.0.1.1 80 { }
    lb_kind DR
    real_server 10.0.1.2 80 { }
    lb_kind NAT
}`)
	want := "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n-a -t 10.0.0.1:80 -r 10.0.1.2:80 -g -w 1\n"
	if out != want {
		t.Errorf("got\n%s", out)
	}
}

func TestGroups(t *testing.T) {
	out, w := mustLoad(t, `virtual_server_group SIP {
    10.0.0.1 5060
    10.0.0.2-3 5060
    10.0.1.0/31 5070
}
virtual_server group SIP {
    protocol UDP
    lvs_sched rr
    real_server 10.0.2.1 5060 { TCP_CHECK { connect_port 5060 } }
}`)
	want := `-A -u 10.0.0.1:5060 -s rr
-a -u 10.0.0.1:5060 -r 10.0.2.1:5060 -m -w 1
--health-check -u 10.0.0.1:5060 --check tcp --interval 60 --check-timeout 5 --fail 2 --rise 1 --retry-interval 1 --check-port 5060 --on-fail expire
-A -u 10.0.0.2:5060 -s rr
`
	if !strings.HasPrefix(out, want) || strings.Count(out, "-A ") != 5 {
		t.Errorf("got\n%s", out)
	}
	if !strings.Contains(out, "-A -u 10.0.1.1:5070") || !strings.Contains(out, "-A -u 10.0.0.3:5060") {
		t.Errorf("ranges not expanded:\n%s", out)
	}
	if !hasWarning(w, "xvs probes each real server once per service (5 services)") {
		t.Errorf("warnings %q", w)
	}
	// IPv4 real servers of an IPv6 address of a group are refused by the
	// model, naming the real server's line.
	_, _, err := loadText(t, "virtual_server_group G {\n2001:db8::1-2 5060\n}\nvirtual_server group G {\nprotocol UDP\nreal_server 10.0.2.1 5060 { }\n}\n")
	if err == nil || !strings.Contains(err.Error(), "main.conf:6: error: address family of virtual server and real server 10.0.2.1 don't match") {
		t.Errorf("mixed families: %v", err)
	}
}

func TestChecks(t *testing.T) {
	out, w := mustLoad(t, `global_defs {
    script_user nobody nogroup
}
virtual_server 10.0.0.1 5060 {
    protocol UDP
    lvs_sched rr
    delay_loop 2
    inhibit_on_failure
    alpha
    real_server 10.0.1.1 5060 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check-sip.sh 10.0.1.1 'a b'"
            misc_timeout 1
            misc_dynamic
        }
    }
    real_server 10.0.1.2 5060 {
        inhibit_on_failure off
        retry 2
        delay_before_retry 0.5
        UDP_CHECK {
            connect_timeout 3
            require_reply
        }
        TCP_CHECK { }
        SMTP_CHECK { }
    }
    real_server 10.0.1.3 5060 {
        HTTP_GET {
            url {
                path /health
                status_code 200 204-206
                virtualhost sip.example
            }
            url {
                path /other
            }
            connect_port 8080
        }
    }
}`)
	for _, s := range []string{
		"--health-check -u 10.0.0.1:5060 -r 10.0.1.1:5060 --check script --interval 2 --check-timeout 1 --fail 1 --rise 1 --start-down --script \"/usr/local/bin/check-sip.sh 10.0.1.1 'a b'\" --script-user nobody:nogroup --dynamic --on-fail keep\n",
		"--health-check -u 10.0.0.1:5060 -r 10.0.1.2:5060 --check udp --interval 2 --check-timeout 2 --fail 3 --rise 1 --retry-interval 0.5 --start-down --on-fail expire\n",
		"--health-check -u 10.0.0.1:5060 -r 10.0.1.3:5060 --check http --interval 2 --check-timeout 2 --fail 2 --rise 1 --retry-interval 3 --start-down --check-port 8080 --codes 200,204-206 --url /health --virtualhost sip.example --on-fail keep\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %s in\n%s", s, out)
		}
	}
	for _, s := range []string{"require_reply ignored", "TCP_CHECK not run: xvs runs one check per real server",
		"SMTP_CHECK is not supported by xvs", "UDP_CHECK timeout 3s longer than its interval 2s",
		"url /other not checked", "retry-interval"} {
		if s == "retry-interval" {
			continue
		}
		if !hasWarning(w, s) {
			t.Errorf("no warning %q in %q", s, w)
		}
	}
	// Identical checks on every real server become the service's check.
	out, _ = mustLoad(t, `virtual_server 10.0.0.1 5060 {
    protocol UDP
    real_server 10.0.1.1 5060 { TCP_CHECK { connect_timeout 1 } }
    real_server 10.0.1.2 5060 { TCP_CHECK { connect_timeout 1 } }
}`)
	if strings.Count(out, "--health-check") != 1 || strings.Contains(out, "-r 10.0.1.1:5060 --check") {
		t.Errorf("shared check:\n%s", out)
	}
}

// MISC_CHECK scripts run as keepalived_script when that user exists, as
// keepalived does; unquoted extra words of misc_path are dropped.
func TestScriptUserDefault(t *testing.T) {
	m := memFS{"main.conf": `virtual_server 10.0.0.1 5060 {
    protocol UDP
    real_server 10.0.1.1 5060 { MISC_CHECK { misc_path /bin/check arg } }
}`}
	o := m.options("")
	o.UserExists = func(name string) bool { return name == "keepalived_script" }
	l, err := Load("main.conf", o)
	if err != nil {
		t.Fatal(err)
	}
	var hc *Rule
	for _, r := range l.Rules {
		if r.Cmd.Kind == ipvsadm.HealthCheckCmd {
			hc = &r
		}
	}
	if hc == nil || hc.Cmd.Check.ScriptUser != "keepalived_script" || hc.Cmd.Check.Script != "/bin/check" {
		t.Errorf("check %+v", hc)
	}
	if !slices.ContainsFunc(l.Warnings, func(d Diag) bool { return strings.Contains(d.Msg, "words after the first are dropped") }) {
		t.Errorf("warnings %v", l.Warnings)
	}
}

// Unsupported features are refused by name with their file:line; errors
// (what keepalived reports as configuration errors) too.
func TestRefusals(t *testing.T) {
	base := func(body string) string {
		return "virtual_server 10.0.0.1 80 {\nprotocol TCP\n" + body + "\nreal_server 10.0.1.1 80 { }\n}\n"
	}
	for _, tc := range []struct {
		conf, feature, msg string
	}{
		{"virtual_server fwmark 1 {\nreal_server 10.0.1.1 { }\n}\n", "fwmark", "main.conf:1: unsupported: virtual_server fwmark 1"},
		{base("sorry_server 10.0.9.9 80"), "sorry_server", "main.conf:3: unsupported: sorry_server"},
		{base("quorum_up /bin/true"), "quorum", "main.conf:3: unsupported: quorum_up"},
		{base("protocol SCTP"), "SCTP", "main.conf:3: unsupported: protocol SCTP"},
		{base("lvs_sched lblc"), "lblc", "main.conf:3: unsupported: scheduler lblc"},
		{base("weight 0"), "", "main.conf:3: error: virtual server weight 0 is outside range"},
		{base("lvs_sched fastest"), "", "main.conf:3: error: invalid lvs_scheduler 'fastest'"},
		{base("lb_kind nat"), "", "main.conf:3: error: unknown [nat] routing method"},
		{base("persistence_timeout 0"), "", "main.conf:3: error: persistence_timeout invalid"},
		{base("frobnicate"), "", "main.conf:3: error: unknown keyword 'frobnicate' in virtual_server"},
		{base("persistence_engine nope\npersistence_timeout 5"), "", "Scheduler or persistence engine not found"},
		{"virtual_server 10.0.0.1 80 {\nreal_server 10.0.1.1 80 { weight 70000 }\n}\n", "", "main.conf:2: error: real server weight 70000"},
		{"virtual_server 10.0.0.1 {\n", "", "main.conf:1: error: 'virtual_server' block not closed"},
		{"virtual_server group NOPE {\nreal_server 10.0.1.1 80 { }\n}\n", "", "virtual server group NOPE specified but not configured"},
		{base("") + base(""), "", "is also declared at main.conf:1"},
		{"virtual_server 10.0.0.1 80 {\nprotocol TCP\nreal_server 2001:db8::1 80 { }\n}\n", "", "address family of virtual server and real server"},
	} {
		_, _, err := loadText(t, tc.conf)
		var ke *Error
		if !errors.As(err, &ke) {
			t.Errorf("%q: not refused (%v)", tc.conf, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %q", tc.conf, err, tc.msg)
		}
		if tc.feature != "" && (ke.Diags[0].Feature != tc.feature || !errors.Is(err, ErrUnsupported)) {
			t.Errorf("%q: feature %q, want %q", tc.conf, ke.Diags[0].Feature, tc.feature)
		}
		if tc.feature == "" && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", tc.conf, err)
		}
	}
}

// VRRP, BFD and most of global_defs are keepalived's: skipped without a
// word; lvs_timeouts becomes --set; lvs_sync_daemon is described.
func TestGlobalAndVRRPSections(t *testing.T) {
	l, err := Load("main.conf", memFS{"main.conf": `global_defs {
    router_id lb1
    lvs_timeouts tcp 7200 udp 60
    lvs_sync_daemon eth1 inst VI_1 maxlen 1400 group 224.0.0.82 port 8849 ttl 2
}
vrrp_script chk { script /bin/true }
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress { 10.0.0.1/24 }
    track_script { chk }
}
bfd_instance b1 { neighbor_ip 10.0.0.9 }
`}.options(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Msg, "lvs_sync_daemon eth1 follows VRRP instance VI_1") ||
		len(l.Rules) != 1 || strings.Join(l.Rules[0].Argv, " ") != "--set 7200 0 60" {
		t.Errorf("warnings %v rules %v", l.Warnings, l.Rules)
	}
	sd := l.Config.SyncDaemon
	if sd == nil || sd.SyncID != 51 || sd.Instance != "VI_1" {
		t.Fatalf("sync daemon %+v", sd)
	}
	if got := strings.Join(sd.StartArgs("master"), " "); got != "--start-daemon master --mcast-interface eth1 --syncid 51 --sync-maxlen 1400 --mcast-group 224.0.0.82 --mcast-port 8849 --mcast-ttl 2" {
		t.Errorf("start args %s", got)
	}
	// Those arguments are valid xvsadm commands.
	if _, err := ipvsadm.Parse(sd.StartArgs("backup")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(sd.Mapping(), "follows VRRP instance VI_1") {
		t.Error(sd.Mapping())
	}
	_, err = Load("main.conf", memFS{"main.conf": "global_defs {\nlvs_sync_daemon eth1 inst VI_9\n}\n"}.options(""))
	if err == nil || !strings.Contains(err.Error(), "unable to find vrrp instance VI_9") {
		t.Errorf("unknown instance: %v", err)
	}
}

// Conditional lines select per node, as keepalived -i does.
func TestConfigID(t *testing.T) {
	m := memFS{"main.conf": `virtual_server 10.0.0.1 5060 {
    protocol UDP
@lb1 real_server 10.0.1.1 5060 { weight 2 }
@^lb1 real_server 10.0.1.1 5060 { weight 5 }
}`}
	out, _, err := loadFiles(t, m, "lb1")
	if err != nil || !strings.Contains(out, "-w 2\n") {
		t.Errorf("lb1: %s %v", out, err)
	}
	out, _, err = loadFiles(t, m, "lb2")
	if err != nil || !strings.Contains(out, "-w 5\n") {
		t.Errorf("lb2: %s %v", out, err)
	}
}

func applyCmd(cfg *ipvs.Config, c ipvsadm.Command) error {
	l := &Loaded{Rules: []Rule{{Cmd: c}}}
	return l.Build(cfg)
}
