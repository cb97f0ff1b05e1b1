package control

import (
	"context"
	"fmt"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/syncd"
)

// syncFake adds sync daemons to the fake: it resolves the options as the
// daemon does (syncd.Config.Resolve) without opening sockets.
type syncFake struct {
	*fake
	running map[ipvsadm.DaemonState]ipvsadm.Daemon
}

func (f *syncFake) StartSync(_ context.Context, d ipvsadm.Daemon) error {
	if _, ok := f.running[d.State]; ok {
		return syncd.ErrRunning
	}
	if d.McastIface != "eth0" && d.McastIface != "eth1" {
		return fmt.Errorf("%q: %w", d.McastIface, syncd.ErrInterface)
	}
	role := syncd.Master
	if d.State == ipvsadm.Backup {
		role = syncd.Backup
	}
	c, err := syncd.Config{Interface: d.McastIface, SyncID: d.SyncID, MaxLen: int(d.SyncMaxLen), Group: d.McastGroup,
		Port: d.McastPort, TTL: d.McastTTL}.Resolve(role, 9000)
	if err != nil {
		return err
	}
	f.running[d.State] = ipvsadm.Daemon{State: d.State, McastIface: c.Interface, SyncID: c.SyncID, SyncMaxLen: uint16(c.MaxLen),
		McastGroup: c.Group, McastPort: c.Port, McastTTL: c.TTL}
	return nil
}

func (f *syncFake) StopSync(_ context.Context, s ipvsadm.DaemonState) error {
	if _, ok := f.running[s]; !ok {
		return syncd.ErrNotRunning
	}
	delete(f.running, s)
	return nil
}

func (f *syncFake) SyncDaemons() []ipvsadm.Daemon {
	var out []ipvsadm.Daemon
	for _, s := range []ipvsadm.DaemonState{ipvsadm.Master, ipvsadm.Backup} {
		if d, ok := f.running[s]; ok {
			out = append(out, d)
		}
	}
	return out
}

func (f *syncFake) SyncStatus() SyncStatus { return SyncStatus{} }

// --start-daemon, --stop-daemon and -L --daemon with ipvsadm's output and
// messages: the kernel reports every parameter a daemon runs with, so
// ipvsadm prints them all; master first; both at once.
func TestSyncDaemonCommands(t *testing.T) {
	f := &syncFake{fake: newFake(t, 1, ""), running: map[ipvsadm.DaemonState]ipvsadm.Daemon{}}
	s := NewServer(f, Options{})
	if out := string(mustRun(t, s, "-L", "--daemon")); out != "" {
		t.Errorf("no daemon: %q", out)
	}
	mustRun(t, s, "--start-daemon", "backup", "--mcast-interface", "eth1", "--syncid", "7")
	mustRun(t, s, "--start-daemon", "master")
	want := "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth1, syncid=7, maxlen=8972, group=224.0.0.81, port=8848, ttl=1)\n"
	if out := string(mustRun(t, s, "-L", "--daemon")); out != want {
		t.Errorf("-L --daemon\n%s\nwant\n%s", out, want)
	}
	for _, tc := range []struct {
		argv   []string
		stderr string
	}{
		{[]string{"--start-daemon", "master", "--mcast-interface", "eth1"}, "Daemon has already run\n"},
		{[]string{"--start-daemon", "backup", "--mcast-interface", "nosuch0"}, "Daemon has already run\n"},
		{[]string{"--stop-daemon", "master"}, ""},
		{[]string{"--stop-daemon", "master"}, "No daemon is running\n"},
		{[]string{"--start-daemon", "master", "--mcast-interface", "nosuch0"}, "No such device\n"},
		{[]string{"--start-daemon", "master", "--mcast-group", "ff02::81", "--mcast-port", "9000", "--mcast-ttl", "3", "--sync-maxlen", "1000"}, ""},
	} {
		r := run(t, s, tc.argv...)
		if string(r.Stderr) != tc.stderr || (r.Code == 0) != (tc.stderr == "") {
			t.Errorf("%v: %q, code %d; want %q", tc.argv, r.Stderr, r.Code, tc.stderr)
		}
	}
	want = "master sync daemon (mcast=eth0, syncid=0, maxlen=1000, group=ff02::81, port=9000, ttl=3)\n" +
		"backup sync daemon (mcast=eth1, syncid=7, maxlen=8972, group=224.0.0.81, port=8848, ttl=1)\n"
	if out := string(mustRun(t, s, "-L", "--daemon")); out != want {
		t.Errorf("-L --daemon\n%s\nwant\n%s", out, want)
	}
	// The sync daemons are not configuration: -S does not save them,
	// as ipvsadm's does not.
	if out := string(mustRun(t, s, "-S")); out != "" {
		t.Errorf("-S: %q", out)
	}
}
