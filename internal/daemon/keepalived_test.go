package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/keepalived"
	"github.com/xvs-lb/xvs/packet"
)

const kaConf = `virtual_server 10.0.0.5 5060 {
    protocol UDP
    lvs_sched rr
    persistence_timeout 60
    persistence_granularity 0.0.0.0
    persistence_engine sip
    ops
    real_server 192.168.0.11 5060 { weight 1 }
    real_server 192.168.0.12 5060 { weight 1 }
}
`

// xvs run --keepalived-conf beside --rules: both files' services are
// served; xvsadm --reload applies the file's difference in place (calls
// keep their servers) and refuses a broken file whole, the running
// configuration serving on.
func TestKeepalivedConfAndReload(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "r.rules")
	os.WriteFile(rulesFile, []byte(testRules), 0o600)
	conf := filepath.Join(dir, "keepalived.conf")
	os.WriteFile(conf, []byte(kaConf), 0o600)
	var logb syncLog
	d, err := Start(Options{Iface: "lo", Rules: rulesFile, Keepalived: conf, Mode: "memtest", Queues: 1, Templates: 4096, Conns: 4096, LockDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := lastBackend
	if n := len(d.Snapshot().Services()); n != 2 {
		t.Fatalf("%d services, want the rules file's and keepalived.conf's", n)
	}
	sock := filepath.Join(dir, "run", "xvs.sock")
	s := control.NewServer(d, control.Options{Version: "test"})
	if err := s.Start(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	adm := func(argv ...string) (string, string, int) {
		var out, errb strings.Builder
		code, err := control.Call(context.Background(), sock, control.Request{V: 1, Argv: argv}, &out, &errb)
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	// Calls through the keepalived service.
	for i := range 6 {
		b.queues[0].Inject(inviteTo("10.9.0.1:5060", "10.0.0.5:5060", fmt.Sprintf("ka-%d@host", i)))
	}
	waitSent(t, b.queues[0], 6)
	callServer := func() map[string]uint32 {
		tm, err := d.Templates(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint32{}
		for _, x := range tm {
			out[string(x.PEData)] = uint32(x.Dest)
		}
		return out
	}
	before := callServer()
	// Reload: scheduler rr → wrr, one weight changed, a server added.
	next := strings.Replace(kaConf, "lvs_sched rr", "lvs_sched wrr", 1)
	next = strings.Replace(next, "real_server 192.168.0.12 5060 { weight 1 }", "real_server 192.168.0.12 5060 { weight 3 }\n    real_server 192.168.0.13 5060 { weight 1 }", 1)
	os.WriteFile(conf, []byte(next), 0o600)
	if _, serr, code := adm("--reload"); code != 0 {
		t.Fatalf("--reload: %d %s", code, serr)
	}
	out, _, _ := adm("-Sn")
	for _, want := range []string{"-A -u 10.0.0.5:5060 -s wrr -p 60 -M 0.0.0.0 --pe sip -o\n", "-a -u 10.0.0.5:5060 -r 192.168.0.12:5060 -m -w 3\n",
		"-a -u 10.0.0.5:5060 -r 192.168.0.13:5060 -m -w 1\n", "-A -u 10.0.0.1:5060 -s rr"} {
		if !strings.Contains(out, want) {
			t.Errorf("-Sn after reload lacks %q:\n%s", want, out)
		}
	}
	for i := range 6 {
		b.queues[0].Inject(inviteTo("10.9.0.1:5060", "10.0.0.5:5060", fmt.Sprintf("ka-%d@host", i)))
	}
	waitSent(t, b.queues[0], 12)
	if after := callServer(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("calls moved across the reload: %v -> %v", before, after)
	}
	if !strings.Contains(logb.String(), `msg="keepalived configuration reloaded"`) || !strings.Contains(logb.String(), `change="services +0 ~1 -0, real servers +1 ~1 -0`) {
		t.Errorf("log:\n%s", logb.String())
	}
	// A broken file: refused with its file:line, nothing changes.
	snap := d.Snapshot()
	os.WriteFile(conf, []byte(next+"virtual_server 10.0.0.6 5060 {\n    lvs_sched fastest\n    real_server 192.168.0.11 5060 { }\n}\n"), 0o600)
	_, serr, code := adm("--reload")
	if code != 255 || !strings.Contains(serr, "keepalived.conf:13: error: invalid lvs_scheduler 'fastest'") {
		t.Fatalf("broken reload: %d %q", code, serr)
	}
	if d.Snapshot() != snap {
		t.Fatal("a refused reload changed the configuration")
	}
	// A file that declares the rules file's service is refused too.
	os.WriteFile(conf, []byte(next+"virtual_server 10.0.0.1 5060 {\n    protocol UDP\n    real_server 192.168.0.11 5060 { }\n}\n"), 0o600)
	if _, err := d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "already configured by --rules or xvsadm") || d.Snapshot() != snap {
		t.Fatalf("conflicting reload: %v", err)
	}
	// Removing the virtual server from the file deletes it; the rules
	// file's service stays.
	os.WriteFile(conf, []byte("global_defs {\n}\n"), 0o600)
	if _, err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if svcs := d.Snapshot().Services(); len(svcs) != 1 || svcs[0].Key.Addr.String() != "10.0.0.1" {
		t.Fatalf("services after emptying the file: %v", svcs)
	}
}

// A service declared both in --rules and in keepalived.conf refuses the
// start; a daemon without keepalived.conf has nothing to reload.
func TestKeepalivedStartConflicts(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "r.rules")
	os.WriteFile(rulesFile, []byte(testRules), 0o600)
	conf := filepath.Join(dir, "keepalived.conf")
	os.WriteFile(conf, []byte(strings.Replace(kaConf, "10.0.0.5", "10.0.0.1", 1)), 0o600)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := Start(Options{Iface: "lo", Rules: rulesFile, Keepalived: conf, Mode: "memtest", LockDir: t.TempDir(), Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "keepalived.conf:1: virtual service UDP 10.0.0.1:5060 is declared both in") {
		t.Fatalf("conflict: %v", err)
	}
	os.WriteFile(conf, []byte("virtual_server fwmark 1 {\nreal_server 10.0.0.9 { }\n}\n"), 0o600)
	_, err = Start(Options{Iface: "lo", Keepalived: conf, Mode: "memtest", LockDir: t.TempDir(), Logger: quiet})
	if !errors.Is(err, keepalived.ErrUnsupported) || !strings.Contains(err.Error(), "keepalived.conf:1: unsupported: virtual_server fwmark 1") {
		t.Fatalf("fwmark: %v", err)
	}
	d, err := Start(Options{Iface: "lo", Rules: rulesFile, Mode: "memtest", LockDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Reload(context.Background()); !errors.Is(err, ErrNothingToReload) {
		t.Fatalf("reload without keepalived.conf: %v", err)
	}
}

func inviteTo(src, dst, id string) []byte {
	return craft.Spec{Link: packet.LinkRaw, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Payload: craft.SIPInvite(id)}.Build()
}

// syncLog is a log sink safe for the daemon's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncLog) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
