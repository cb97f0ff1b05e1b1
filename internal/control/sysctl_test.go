package control

import (
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// xvsadm --sysctl lists, shows and sets the IPVS sysctls xvs honours, with
// sysctl(8)'s names and format; one xvs does not honour is refused by name;
// a change reaches the snapshot; -S saves what is not the default and -R
// restores it (issue 10 item 10: nothing could set them).
func TestSysctlThroughServer(t *testing.T) {
	f := newFake(t, 1, "-A -u 10.4.3.192:5060 -s rr -p 60\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -m\n")
	s := NewServer(f, Options{})
	all := string(mustRun(t, s, "--sysctl"))
	want := "net.ipv4.vs.conn_reuse_mode = 1\n" +
		"net.ipv4.vs.expire_nodest_conn = 0\n" +
		"net.ipv4.vs.expire_quiescent_template = 0\n" +
		"net.ipv4.vs.pmtu_disc = 1\n" +
		"net.ipv4.vs.run_estimation = 1\n" +
		"net.ipv4.vs.sloppy_tcp = 0\n" +
		"net.ipv4.vs.sync_persist_mode = 0\n" +
		"net.ipv4.vs.sync_ports = 1\n" +
		"net.ipv4.vs.sync_qlen_max = 1024\n" +
		"net.ipv4.vs.sync_refresh_period = 10\n" +
		"net.ipv4.vs.sync_retries = 1\n" +
		"net.ipv4.vs.sync_sock_size = 0\n" +
		"net.ipv4.vs.sync_threshold = 3\t50\n" +
		"net.ipv4.vs.sync_version = 1\n"
	if all != want {
		t.Fatalf("--sysctl:\n%s\nwant\n%s", all, want)
	}
	mustRun(t, s, "--sysctl", "expire_quiescent_template=1")
	mustRun(t, s, "--sysctl=net.ipv4.vs.expire_nodest_conn=1")
	if got := string(mustRun(t, s, "--sysctl", "net.ipv4.vs.expire_quiescent_template")); got != "net.ipv4.vs.expire_quiescent_template = 1\n" {
		t.Fatalf("--sysctl NAME: %q", got)
	}
	if sn := f.Snapshot(); !sn.ExpireQuiescentTemplate || !sn.ExpireNodestConn || sn.Sysctls.Get(ipvs.ExpireQuiescentTemplate) != 1 {
		t.Fatal("the setting did not reach the snapshot")
	}
	for _, c := range []struct {
		argv   []string
		stderr string
		code   int
	}{
		{[]string{"--sysctl", "drop_entry=1"}, "sysctl net.ipv4.vs.drop_entry is not supported by xvs\n", 255},
		{[]string{"--sysctl", "am_droprate"}, "sysctl net.ipv4.vs.am_droprate is not supported by xvs\n", 255},
		{[]string{"--sysctl", "sync_threshold=50,50"}, "sync_threshold [50 50]: invalid value (need threshold < period, or period 0)\n", 255},
		{[]string{"--sysctl", "sync_ports=3"}, "sync_ports [3]: invalid value (must be a power of 2)\n", 255},
		{[]string{"--sysctl", "expire_nodest=1"}, "no such IPVS sysctl: net.ipv4.vs.expire_nodest\n", 255},
		{[]string{"--sysctl", "sloppy_tcp=2"}, "sloppy_tcp 2 out of range 0..1: invalid value\n", 255},
		{[]string{"--sysctl", "sloppy_tcp=yes"}, "sloppy_tcp: \"yes\" is not a number: invalid value\n", 255},
		{[]string{"--sysctl", "sloppy_tcp=1 1"}, "sloppy_tcp wants 1 value(s), got 2: invalid value\n", 255},
		{[]string{"--sysctl", "=1"}, "illegal sysctl setting `=1' (want NAME=VALUE)\n", 2},
		{[]string{"--sysctl", "sloppy_tcp=1", "-n"}, "Illegal 'numeric' option with the 'sysctl' command\n", 2},
	} {
		r := run(t, s, c.argv...)
		if string(r.Stderr) != c.stderr || r.Code != c.code {
			t.Errorf("%s: stderr %q code %d, want %q %d", strings.Join(c.argv, " "), r.Stderr, r.Code, c.stderr, c.code)
		}
	}
	saved := string(mustRun(t, s, "-Sn"))
	if !strings.HasPrefix(saved, "--sysctl expire_nodest_conn=1\n--sysctl expire_quiescent_template=1\n-A -u 10.4.3.192:5060") {
		t.Fatalf("-S:\n%s", saved)
	}
	mustRun(t, s, "--sysctl", "expire_nodest_conn=0")
	mustRun(t, s, "--sysctl", "expire_quiescent_template=0")
	mustRun(t, s, "-C")
	if got := string(mustRun(t, s, "-Sn")); got != "" {
		t.Fatalf("-S at the defaults: %q", got)
	}
	r := s.Execute(t.Context(), Request{V: 1, Argv: []string{"-R"}, Stdin: saved})
	if r.Code != 0 {
		t.Fatalf("-R of -S: %s", r.Stderr)
	}
	if got := string(mustRun(t, s, "-Sn")); got != saved {
		t.Fatalf("-S after -R:\n%s\nwant\n%s", got, saved)
	}
}
