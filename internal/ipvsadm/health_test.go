package ipvsadm

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseHealthCommands(t *testing.T) {
	c, err := Parse(strings.Fields("--health-check -u 10.4.3.192:5060 --check sip-options --interval 0.5 --check-timeout 0.25 --fail 3 --rise 2 --codes 200-299,404 --on-fail keep --check-port 5070"))
	if err != nil {
		t.Fatal(err)
	}
	want := Check{Type: "sip-options", Interval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Fail: 3, Rise: 2,
		Port: 5070, Codes: "200-299,404", OnFail: "keep"}
	if c.Kind != HealthCheckCmd || c.Check != want || c.Service.Addr != netip.MustParseAddr("10.4.3.192") || c.Service.Port != 5060 || !c.Mutates() {
		t.Fatalf("parsed %+v", c)
	}
	c, err = Parse(strings.Fields("--drain -u 10.4.3.192:5060 -r 192.168.1.10"))
	if err != nil || c.Kind != Drain || c.Dest.Addr != netip.MustParseAddrPort("192.168.1.10:5060") || !c.Mutates() {
		t.Fatalf("--drain: %+v %v", c, err)
	}
	c, err = Parse(strings.Fields("--undrain -u 10.4.3.192:5060 -r 192.168.1.10:5070"))
	if err != nil || c.Kind != Undrain || c.Dest.Addr.Port() != 5070 {
		t.Fatalf("--undrain: %+v %v", c, err)
	}
	c, err = Parse(strings.Fields("-Ln --health"))
	if err != nil || c.Kind != List || !c.Format.Health || !c.Format.Numeric {
		t.Fatalf("-Ln --health: %+v %v", c, err)
	}
	if c, err = Parse(strings.Fields("-L -u 10.4.3.192:5060 --health")); err != nil || !c.Format.Health {
		t.Fatalf("-L -u --health: %v", err)
	}
	for _, tc := range []struct{ args, msg string }{
		{"--health-check -u 10.4.3.192:5060", "You need to supply the 'check' option for the 'health-check' command\n"},
		{"--health-check --check udp", "You need to supply the 'service-address' option for the 'health-check' command\n"},
		{"--health-check -u 10.4.3.192:5060 --check icmp", "illegal check type specified (one of sip-options, udp, tcp, script, http, https, none)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --interval 0", "illegal interval specified (seconds, 0.001..3600)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --interval 1.0001", "illegal interval specified (seconds, 0.001..3600)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --check-timeout 3601", "illegal check-timeout specified (seconds, 0.001..3600)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --fail 0", "illegal fail count specified (1..100)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --rise x", "illegal rise count specified (1..100)\n"},
		{"--health-check -u 10.4.3.192:5060 --check sip-options --codes 200-100", "illegal status codes specified (e.g. 200-299,404; 100..699)\n"},
		{"--health-check -u 10.4.3.192:5060 --check udp --codes 200", "--codes is only for sip-options, http and https checks\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --on-fail drop", "illegal on-fail policy specified (expire or keep)\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --interval 1 --check-timeout 2", "--check-timeout must not exceed --interval\n"},
		{"--health-check -u 10.4.3.192:5060 --check none --fail 2", "--check none takes no other check option\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --url /", "--url, --digest and --virtualhost are only for http and https checks\n"},
		{"--health-check -u 10.4.3.192:5060 --check script", "--script goes with --check script, and --check script needs it\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --script /bin/true", "--script goes with --check script, and --check script needs it\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --dynamic", "--script-user and --dynamic are only for script checks\n"},
		{"--health-check -u 10.4.3.192:5060 --check script --script /bin/true --check-port 80", "--check-port is not for script checks\n"},
		{"--health-check -u 10.4.3.192:5060 --check http --codes 200-650", "illegal status codes specified (HTTP: 100..599)\n"},
		{"--health-check -u 10.4.3.192:5060 --check http --url x", "illegal url path specified (it starts with '/')\n"},
		{"--health-check -u 10.4.3.192:5060 --check http --digest abc", "illegal digest specified (an MD5 digest in hex)\n"},
		{"--health-check -u 10.4.3.192:5060 --check script --script /bin/true --script-user a:b:c", "illegal script-user specified (user or user:group)\n"},
		{"--health-check -u 10.4.3.192:5060 --check tcp --retry-interval 0", "illegal retry-interval specified (seconds, 0.001..3600)\n"},
		{"--reload -u 10.4.3.192:5060", "Illegal 'service-address' option with the 'reload' command\n"},
		{"--drain -u 10.4.3.192:5060", "You need to supply the 'real-server' option for the 'drain' command\n"},
		{"--undrain -u 10.4.3.192:5060 -r 10.0.0.1 -w 0", "Illegal 'weight' option with the 'undrain' command\n"},
		{"--drain -u 10.4.3.192:5060 -r 10.0.0.1 -w 65536", "illegal weight specified\n"},
		{"-A -u 10.4.3.192:5060 --check udp", "Illegal 'check' option with the 'add-service' command\n"},
		{"-a -u 10.4.3.192:5060 -r 10.0.0.1 --health", "Illegal 'health' option with the 'add-server' command\n"},
		{"-L --health --stats", "options conflicts in the list command\n"},
		{"-L -c --health", "options conflicts in the list command\n"},
		{"-A -u 10.4.3.192:5060 --drain", "invalid option `--drain'\n"},
	} {
		_, err := Parse(strings.Fields(tc.args))
		ue, ok := err.(*UsageError)
		if !ok || ue.Stderr("ipvsadm") != tc.msg {
			t.Errorf("%s: got %v, want %q", tc.args, err, tc.msg)
		}
	}
}

func TestSecondsAndCodes(t *testing.T) {
	for s, want := range map[string]time.Duration{"5": 5 * time.Second, "0.1": 100 * time.Millisecond, "0.25": 250 * time.Millisecond, "1.5": 1500 * time.Millisecond, "3600": time.Hour, "0.001": time.Millisecond} {
		if got, ok := parseSeconds(s); !ok || got != want {
			t.Errorf("parseSeconds(%q) = %v %v", s, got, ok)
		}
		if got := FormatSeconds(want); got != s {
			t.Errorf("FormatSeconds(%v) = %q, want %q", want, got, s)
		}
	}
	if got, ok := parseSeconds(".5"); !ok || got != 500*time.Millisecond {
		t.Errorf("parseSeconds(.5) = %v %v", got, ok)
	}
	for _, bad := range []string{"", ".", "1.", "-1", "1e3", "0", "0.0001", "3601", "1,5"} {
		if _, ok := parseSeconds(bad); ok {
			t.Errorf("parseSeconds(%q) accepted", bad)
		}
	}
	if r, ok := ParseCodes("200,300-399"); !ok || len(r) != 2 || r[1] != [2]uint16{300, 399} {
		t.Errorf("ParseCodes: %v %v", r, ok)
	}
	for _, bad := range []string{"", "99", "700", "200-", "2xx", "200,,300"} {
		if _, ok := ParseCodes(bad); ok {
			t.Errorf("ParseCodes(%q) accepted", bad)
		}
	}
}

// healthFixture is the golden fixture with a check and drains.
func healthFixture() []ServiceView {
	t := fixture()
	svcs := t.Services
	svcs[0].Check = &CheckView{Type: "sip-options", Interval: 5 * time.Second, Timeout: 2 * time.Second, Fail: 3, Rise: 2, OnFail: "expire"}
	svcs[0].Dests[0].Down = true
	svcs[0].Dests[0].Health = &DestHealth{Checked: true, Since: 75 * time.Second, Failed: 4, Last: "timeout"}
	svcs[0].Dests[1].Health = &DestHealth{Checked: true, Since: 3*time.Hour + 5*time.Minute, OK: 120, Last: "200 OK", RTT: 1234 * time.Microsecond}
	svcs[3].Check = &CheckView{Type: "tcp", Interval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Fail: 1, Rise: 5, Port: 8080, OnFail: "keep"}
	svcs[3].Dests[0].Weight, svcs[3].Dests[0].Draining, svcs[3].Dests[0].DrainWeight = 0, true, 3 // 12 active, 40 inactive left
	svcs[1].Dests[0].Draining = true                                                              // nothing left: drained
	return svcs
}

func TestHealthListingGolden(t *testing.T) {
	checkGolden(t, "list_health", AppendHealth(nil, healthFixture(), Format{Numeric: true}, Names{}))
}

// -S saves the check and the drains after each service's -a lines; the
// output parses back to the same commands; without extensions it is
// unchanged (the ipvsadm goldens above).
func TestSaveHealthGolden(t *testing.T) {
	out := AppendSave(nil, healthFixture(), Format{Numeric: true}, Names{})
	checkGolden(t, "save_health", out)
	cmds, err := ParseRules(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range cmds {
		if c.Kind >= HealthCheckCmd {
			kinds = append(kinds, c.Kind.String())
		}
	}
	if strings.Join(kinds, " ") != "health-check drain health-check drain" {
		t.Fatalf("extension lines: %v", kinds)
	}
}

// The keepalived-era check options round-trip through -S and -R: a
// real server's own check is saved with -r, a --script command line in
// double quotes.
func TestSaveChecksRoundTrip(t *testing.T) {
	svcs := fixture().Services[:1]
	svcs[0].Check = &CheckView{Type: "http", Interval: 6 * time.Second, Timeout: 3 * time.Second, Fail: 4, Rise: 1,
		RetryInterval: 3 * time.Second, StartDown: true, Port: 8080, Codes: "200-299,404", OnFail: "keep",
		URL: "/health", Digest: "ff20ad2481f97b1754ef3e12ecd3a9cc", VirtualHost: "www.example"}
	svcs[0].Dests[0].Check = &CheckView{Type: "script", Interval: 2 * time.Second, Timeout: time.Second, Fail: 1, Rise: 1,
		OnFail: "expire", Script: `/usr/local/bin/check.sh 10.0.0.1 'a "b"' \#`, ScriptUser: "nobody:nogroup", Dynamic: true}
	out := string(AppendSave(nil, svcs, Format{Numeric: true}, Names{}))
	for _, want := range []string{
		"--health-check -u 10.4.3.192:5060 --check http --interval 6 --check-timeout 3 --fail 4 --rise 1 --retry-interval 3 --start-down --check-port 8080 --codes 200-299,404 --url /health --digest ff20ad2481f97b1754ef3e12ecd3a9cc --virtualhost www.example --on-fail keep\n",
		`--check script --interval 2 --check-timeout 1 --fail 1 --rise 1 --script "/usr/local/bin/check.sh 10.0.0.1 'a \"b\"' \\#" --script-user nobody:nogroup --dynamic --on-fail expire` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-S lacks\n%s\nin\n%s", want, out)
		}
	}
	cmds, err := ParseRules(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var checks []Command
	for _, c := range cmds {
		if c.Kind == HealthCheckCmd {
			checks = append(checks, c)
		}
	}
	if len(checks) != 2 || checks[0].Check.URL != "/health" || !checks[0].Check.StartDown || checks[0].Options.Has(OptServer) {
		t.Fatalf("service check %+v", checks)
	}
	c := checks[1]
	if !c.Options.Has(OptServer) || c.Dest.Addr.Addr() != svcs[0].Dests[0].Addr || c.Check.Script != svcs[0].Dests[0].Check.Script || !c.Check.Dynamic {
		t.Fatalf("server check %+v", c)
	}
	if argv, ok := SplitCommand(c.Check.Script); !ok || len(argv) != 4 || argv[2] != `a "b"` || argv[3] != "#" {
		t.Errorf("script argv %q", argv)
	}
	if _, err := Parse([]string{"--reload"}); err != nil {
		t.Error(err)
	}
}
