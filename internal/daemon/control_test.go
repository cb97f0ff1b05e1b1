package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/control"
)

// xvsadm's path through the real daemon: the control socket, configuration
// changes reaching the data plane, and listings of live templates.
func TestControlSocketAgainstDaemon(t *testing.T) {
	d, b := start(t, 2, "")
	defer d.Close()
	sock := filepath.Join(t.TempDir(), "run", "xvs.sock")
	s := control.NewServer(d, control.Options{Version: "test"})
	if err := s.Start(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	adm := func(stdin string, argv ...string) (string, string, int) {
		t.Helper()
		var out, errb strings.Builder
		code, err := control.Call(ctx, sock, control.Request{V: 1, Argv: argv, Stdin: stdin}, &out, &errb)
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	for i := range 6 {
		b.queues[i%2].Inject(invite("10.9.0.1:5060", fmt.Sprintf("ctl-%d@host", i)))
	}
	waitSent(t, b.queues[0], 3)
	waitSent(t, b.queues[1], 3)

	out, _, code := adm("", "-Ln")
	if code != 0 || !strings.Contains(out, "UDP  10.0.0.1:5060 rr persistent 60 mask 0.0.0.0 pe sip ops\n") || !strings.Contains(out, "  -> 192.168.0.1:5060") {
		t.Fatalf("-Ln (%d):\n%s", code, out)
	}
	out, _, _ = adm("", "-Lcn", "--persistent-conn")
	for i := range 6 {
		if !strings.Contains(out, fmt.Sprintf(" sip                ctl-%d@host\n", i)) {
			t.Fatalf("-Lcn --persistent-conn lacks ctl-%d:\n%s", i, out)
		}
	}
	// A kernel-side failure: ipvsadm's message and exit status 255; nothing changes.
	_, serr, code := adm("", "-A", "-u", "10.0.0.1:5060")
	if code != 255 || !strings.Contains(serr, "Service already exists") {
		t.Fatalf("duplicate -A: %d %q", code, serr)
	}
	// A change reaches the data plane.
	if _, serr, code := adm("", "-a", "-u", "10.0.0.1:5060", "-r", "192.168.0.3:5060", "-m", "-w", "5"); code != 0 {
		t.Fatalf("-a: %d %s", code, serr)
	}
	if n := len(d.Snapshot().Services()[0].Dests); n != 3 {
		t.Fatalf("%d real servers after -a", n)
	}
	// -R is all or nothing.
	_, serr, code = adm("-A -u 10.0.0.2:5060\n-A -u 10.0.0.1:5060\n", "-R")
	if code == 0 || len(d.Snapshot().Services()) != 1 {
		t.Fatalf("-R with a failing line applied something: %d %q", code, serr)
	}
	// -S round-trips through -C and -R.
	saved, _, _ := adm("", "-Sn")
	if _, serr, code := adm("", "-C"); code != 0 {
		t.Fatal(serr)
	}
	if _, serr, code := adm(saved, "-R"); code != 0 {
		t.Fatalf("-R of -S output: %s", serr)
	}
	again, _, _ := adm("", "-Sn")
	if again != saved || !strings.Contains(saved, "-A -u 10.0.0.1:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n") {
		t.Fatalf("-S after -C and -R:\n%s\nwant\n%s", again, saved)
	}
}
