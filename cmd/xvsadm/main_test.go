package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// target is a minimal control.Target: a configuration, no data plane.
type target struct {
	mu  sync.Mutex
	cfg *ipvs.Config
}

func (t *target) Apply(_ context.Context, c ipvsadm.Command) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return rules.Apply(t.cfg, c)
}

func (t *target) ApplyAll(ctx context.Context, cs []ipvsadm.Command) error {
	for i, c := range cs { // test rules never fail half way
		if err := t.Apply(ctx, c); err != nil {
			return &control.CommandError{Index: i, Err: err}
		}
	}
	return nil
}
func (t *target) Snapshot() *ipvs.Snapshot { return t.cfg.Snapshot() }
func (t *target) EachTemplate(context.Context, func([]table.TemplateInfo) error) error {
	return nil
}
func (t *target) EachConn(context.Context, func([]table.ConnInfo) error) error { return nil }
func (t *target) Status() control.Status                                       { return control.Status{} }

func daemon(t *testing.T) string {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "xvs.sock")
	s := control.NewServer(&target{cfg: cfg}, control.Options{Version: "test"})
	if err := s.Start(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path
}

func xvsadm(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"/usr/sbin/xvsadm"}, args...), strings.NewReader(stdin), &out, &errb,
		func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

func TestLocalAnswers(t *testing.T) {
	noDaemon := map[string]string{"XVS_CONTROL": filepath.Join(t.TempDir(), "none.sock")}
	for _, tc := range []struct {
		args         []string
		out, errText string
		code         int
	}{
		{[]string{"-A", "-t", "10.0.0.1:80", "-w", "1"}, "", "Illegal 'weight' option with the 'add-service' command\n", 2},
		{[]string{"-n"}, "", "Try `xvsadm -h' or 'xvsadm --help' for more information.\n", 255},
		{[]string{"-L", "--bogus"}, "", "--bogus: unknown option\n", 255},
		{[]string{"-v"}, "xvsadm dev (ipvsadm v1.31 2019/12/24 compatible, IPVS v1.2.1)\n", "", 0},
	} {
		out, errText, code := xvsadm(t, noDaemon, "", tc.args...)
		if out != tc.out || errText != tc.errText || code != tc.code {
			t.Errorf("%q: %q %q %d; want %q %q %d", tc.args, out, errText, code, tc.out, tc.errText, tc.code)
		}
	}
	if out, _, code := xvsadm(t, noDaemon, "", "-h"); code != 0 || !strings.Contains(out, "xvsadm -A|E virtual-service") {
		t.Errorf("-h: %d %q", code, out)
	}
	sock := noDaemon["XVS_CONTROL"]
	_, errText, code := xvsadm(t, noDaemon, "", "-Ln")
	if want := "xvsadm: cannot connect to xvs at " + sock + ": is `xvs run` running?\n"; errText != want || code != 2 {
		t.Errorf("no daemon: %q %d, want %q 2", errText, code, want)
	}
}

func TestThroughDaemon(t *testing.T) {
	path := daemon(t)
	env := map[string]string{"XVS_CONTROL": path}
	if _, e, code := xvsadm(t, env, "", "-A", "-u", "10.4.3.192:5060", "-s", "rr", "-p", "60", "-M", "0.0.0.0", "--pe", "sip", "-o"); code != 0 {
		t.Fatalf("-A: %q", e)
	}
	if _, e, code := xvsadm(t, env, "", "-A", "-u", "10.4.3.192:5060"); e != "Service already exists\n" || code != 255 {
		t.Errorf("second -A: %q %d", e, code)
	}
	rulesText := "-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1\n-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1\n"
	// --control overrides the environment.
	other := map[string]string{"XVS_CONTROL": "/nonexistent/xvs.sock"}
	if _, e, code := xvsadm(t, other, rulesText, "--control", path, "-R"); code != 0 {
		t.Fatalf("-R: %q", e)
	}
	out, e, code := xvsadm(t, nil, "", "--control="+path, "-Ln")
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"UDP  10.4.3.192:5060 rr persistent 60 mask 0.0.0.0 pe sip ops\n" +
		"  -> 192.168.1.10:5060            Masq    1      0          0         \n" +
		"  -> 192.168.1.11:5060            Masq    1      0          0         \n"
	if out != want || e != "" || code != 0 {
		t.Errorf("-Ln: %q %q %d\nwant\n%s", out, e, code, want)
	}
	if out, _, _ := xvsadm(t, env, "", "-S", "-n"); out != "-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n"+rulesText {
		t.Errorf("-Sn: %q", out)
	}
}

// A daemon that takes connections but never answers (stopped with SIGSTOP:
// the kernel still queues connections in its listen backlog) makes xvsadm
// give up after --control-timeout or $XVS_CONTROL_TIMEOUT (10 s by
// default) with a clear message, instead of waiting forever (issue 10 item
// 12: 200 s).
func TestStoppedDaemonTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xvs.sock")
	ln, err := net.Listen("unix", path) // never accepts: a stopped daemon
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want time.Duration
	}{
		{map[string]string{"XVS_CONTROL": path, "XVS_CONTROL_TIMEOUT": "300ms"}, []string{"-Ln"}, 300 * time.Millisecond},
		{map[string]string{"XVS_CONTROL": path, "XVS_CONTROL_TIMEOUT": "1m"}, []string{"--control-timeout", "0.4s", "-Ln"}, 400 * time.Millisecond},
		{nil, []string{"--control=" + path, "--control-timeout=1", "-R"}, time.Second},
	} {
		start := time.Now()
		_, errText, code := xvsadm(t, c.env, "-C\n", c.args...)
		took := time.Since(start)
		want := fmt.Sprintf("xvsadm: no answer from xvs at %s within %v (is it stopped?): no answer\n", path, c.want)
		if errText != want || code != 2 || took < c.want || took > c.want+2*time.Second {
			t.Errorf("%v: %q exit %d after %v; want %q exit 2 after %v", c.args, errText, code, took, want, c.want)
		}
	}
	if _, errText, code := xvsadm(t, map[string]string{"XVS_CONTROL_TIMEOUT": "soon"}, "", "-Ln"); code != 2 || !strings.Contains(errText, "XVS_CONTROL_TIMEOUT") {
		t.Errorf("bad timeout: %q %d", errText, code)
	}
}

// The default timeout is at most 10 s.
func TestDefaultTimeout(t *testing.T) {
	if control.DefaultClientTimeout > 10*time.Second || control.DefaultClientTimeout < 2*control.HeartbeatInterval {
		t.Fatalf("default client timeout %v", control.DefaultClientTimeout)
	}
}
