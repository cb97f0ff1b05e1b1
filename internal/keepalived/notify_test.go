package keepalived

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
)

const notifyScript = "../../scripts/keepalived/xvs-sync-notify.sh"

// runNotify runs the packaged notify script with a fake xvsadm first on
// PATH that records its arguments (and fails --stop-daemon, as when no
// daemon runs, and --start-daemon when failStart is set). It returns the
// xvsadm command lines and the script's exit status.
func runNotify(t *testing.T, failStart bool, args ...string) ([]string, int) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := "#!/bin/sh\necho \"$*\" >> " + log + "\n" +
		"[ \"$1\" = --stop-daemon ] && { echo 'No such process' >&2; exit 255; }\n"
	if failStart {
		fake += "echo 'Operation not supported' >&2; exit 255\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "xvsadm"), []byte(fake+"exit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{notifyScript}, args...)...)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: exit %d: %s", args, code, out)
	b, _ := os.ReadFile(log)
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls, code
}

// The notify script issues, for each VRRP state, the xvsadm commands that
// mirror what keepalived does to IPVS's sync daemon.
func TestSyncNotifyScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	opts := []string{"--mcast-interface", "eth1", "--syncid", "51"}
	o := " --mcast-interface eth1 --syncid 51"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{append(slices.Clone(opts), "MASTER"), []string{"--stop-daemon backup", "--start-daemon master" + o}},
		{append(slices.Clone(opts), "BACKUP"), []string{"--stop-daemon master", "--start-daemon backup" + o}},
		{append(slices.Clone(opts), "FAULT"), []string{"--stop-daemon master", "--start-daemon backup" + o}},
		{append(slices.Clone(opts), "STOP"), []string{"--stop-daemon master", "--stop-daemon backup"}},
		{append(slices.Clone(opts), "master"), []string{"--stop-daemon backup", "--start-daemon master" + o}},
		// keepalived's generic notify appends TYPE NAME STATE PRIORITY.
		{append(slices.Clone(opts), "INSTANCE", "VI_1", "MASTER", "150"), []string{"--stop-daemon backup", "--start-daemon master" + o}},
		{append(slices.Clone(opts), "GROUP", "G1", "BACKUP", "0"), []string{"--stop-daemon master", "--start-daemon backup" + o}},
	} {
		calls, code := runNotify(t, false, tc.args...)
		if code != 0 || !slices.Equal(calls, tc.want) {
			t.Errorf("%v: exit %d, calls %q, want %q", tc.args, code, calls, tc.want)
		}
		for _, c := range calls {
			if _, err := ipvsadm.Parse(strings.Fields(c)); err != nil {
				t.Errorf("%q is not an xvsadm command: %v", c, err)
			}
		}
	}
	// --both: the two daemons in every state but STOP; a daemon that runs
	// already is not a failure.
	for _, st := range []string{"MASTER", "BACKUP", "FAULT"} {
		calls, code := runNotify(t, false, append([]string{"--both", "--syncid", "51", "INSTANCE", "VI_1"}, st, "100")...)
		if want := []string{"--start-daemon master --syncid 51", "--start-daemon backup --syncid 51"}; code != 0 || !slices.Equal(calls, want) {
			t.Errorf("--both %s: exit %d, calls %q", st, code, calls)
		}
	}
	if calls, code := runNotify(t, false, "--both", "STOP"); code != 0 || !slices.Equal(calls, []string{"--stop-daemon master", "--stop-daemon backup"}) {
		t.Errorf("--both STOP: exit %d, calls %q", code, calls)
	}
	// A failed start is reported; bad arguments issue nothing.
	if calls, code := runNotify(t, true, "--syncid", "5", "MASTER"); code != 1 || len(calls) != 2 {
		t.Errorf("failed start: exit %d, calls %q", code, calls)
	}
	for _, bad := range [][]string{{"--syncid"}, {"--bogus", "1", "MASTER"}, {"--syncid", "5;reboot", "MASTER"}, {"UNKNOWN"}, {}, {"INSTANCE", "VI_1"}} {
		if calls, code := runNotify(t, false, bad...); code != 2 || len(calls) != 0 {
			t.Errorf("%q: exit %d, calls %q", bad, code, calls)
		}
	}
	// The options xvs rules suggests for lvs_sync_daemon are the script's.
	sd := &SyncDaemon{Iface: "eth1", Instance: "VI_1", SyncID: 51, MaxLen: 1400, Port: 8849, TTL: 2}
	args := append(sd.StartArgs("x")[2:], "MASTER")
	calls, code := runNotify(t, false, args...)
	if want := "--start-daemon master " + strings.Join(sd.StartArgs("master")[2:], " "); code != 0 || len(calls) != 2 || calls[1] != want {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
