package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
func (t *target) Snapshot() *ipvs.Snapshot                                { return t.cfg.Snapshot() }
func (t *target) Templates(context.Context) ([]table.TemplateInfo, error) { return nil, nil }
func (t *target) Conns(context.Context) ([]table.ConnInfo, error)         { return nil, nil }
func (t *target) Status() control.Status                                  { return control.Status{} }

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
