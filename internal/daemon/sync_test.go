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
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/internal/syncd"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// The backup resolves an entry's destination as ip_vs_find_dest does and
// hands a template to one worker, a connection to every worker; entries of
// unknown services or real servers are refused and counted by reason.
func TestSyncDeliver(t *testing.T) {
	cfg, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"-A -u 10.0.0.1:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o", "-a -u 10.0.0.1:5060 -r 192.168.0.1:5060 -m",
		"-A -t 10.0.0.1:0 -s rr -p 300", "-a -t 10.0.0.1:0 -r 192.168.0.2 -g"} {
		if err := applyLine(cfg, c); err != nil {
			t.Fatal(err)
		}
	}
	s, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{}
	d.snap.Store(s)
	b := &syncBackup{d: d, rings: []*syncring.Ring{syncring.New(8), syncring.New(8)}}
	_, sipID, _ := pe.Lookup("sip")
	a := netip.MustParseAddr
	tpl := syncd.Entry{PE: sipID, Conn: syncproto.Conn{Protocol: 17, Flags: syncproto.FlagTemplate | syncproto.FlagMasq,
		CAddr: a("0.0.0.0"), VAddr: a("10.0.0.1"), DAddr: a("192.168.0.1"), VPort: 5060, DPort: 5060, Timeout: 60,
		PEName: []byte("sip"), PEData: []byte("c1@x"), Times: syncproto.Times{Queued: time.Now().UnixNano() - 1e6}}}
	if !b.deliver(&tpl) {
		t.Fatal("template refused")
	}
	// A connection of a port-0 service to a port-0 real server: found by
	// the real server's address with port 0.
	conn := syncd.Entry{Conn: syncproto.Conn{Protocol: 6, Flags: syncproto.FlagDRoute, State: syncproto.TCPEstablished,
		CAddr: a("198.51.100.1"), VAddr: a("10.0.0.1"), DAddr: a("192.168.0.2"), CPort: 4000, VPort: 443, DPort: 443, Timeout: 900}}
	conn.VPort = 0 // the service's port: the kernel keys the service by it
	if !b.deliver(&conn) {
		t.Fatal("connection refused")
	}
	if n0, n1 := b.rings[0].Len(), b.rings[1].Len(); n0+n1 != 3 || min(n0, n1) != 1 {
		t.Fatalf("rings hold %d and %d records: want the template on one and the connection on both", n0, n1)
	}
	var got []syncring.Record
	for _, r := range b.rings {
		r.Drain(0, func(rec *syncring.Record) { got = append(got, *rec) })
	}
	for _, r := range got {
		dest := s.Dest(ipvs.DestID(r.Dest))
		if dest == nil {
			t.Fatalf("record %+v: no destination", r)
		}
		if r.Flags&syncproto.FlagTemplate != 0 {
			if dest.Addr.String() != "192.168.0.1:5060" || string(r.PEData[:r.PEDataLen]) != "c1@x" || r.PE != sipID {
				t.Errorf("template %+v to %v", r, dest.Addr)
			}
			if lag := Monotonic() - r.Queued; lag < int64(time.Millisecond) || lag > int64(time.Second) {
				t.Errorf("queued %v ago", time.Duration(lag))
			}
		} else if dest.Addr.String() != "192.168.0.2:0" {
			t.Errorf("connection to %v", dest.Addr)
		}
	}
	for _, e := range []struct {
		mod  func(*syncproto.Conn)
		want string
	}{
		{func(c *syncproto.Conn) { c.VPort = 5061 }, "no_service"},
		{func(c *syncproto.Conn) { c.FWMark = 5 }, "no_service"},
		{func(c *syncproto.Conn) { c.DAddr = a("192.168.0.9") }, "no_dest"},
	} {
		bad := tpl
		e.mod(&bad.Conn)
		if b.deliver(&bad) {
			t.Errorf("%s: delivered", e.want)
		}
	}
	if b.noService.Load() != 2 || b.noDest.Load() != 1 {
		t.Errorf("no service %d, no dest %d", b.noService.Load(), b.noDest.Load())
	}
}

func applyLine(cfg *ipvs.Config, line string) error {
	return rules.Read(cfg, strings.NewReader(line+"\n"), "test")
}

// Two daemons on one LAN, each running master and backup (active-active):
// the templates one creates reach the other, marked SYNC, with the master's
// real server and the lag measured; a backup started late learns the
// master's live templates from the walk within a refresh period; -L
// --daemon and the metrics' status describe the daemons.
func TestRootSyncBetweenDaemons(t *testing.T) {
	l := testenv.Lab(t, lab.Spec{RealServers: 1})
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "r.rules")
	os.WriteFile(rulesFile, []byte(testRules), 0o600)
	startIn := func(ns string, queues int, daemons ...ipvsadm.DaemonState) (*Daemon, *memBackend) {
		var d *Daemon
		var sds []ipvsadm.Daemon
		for _, s := range daemons {
			sds = append(sds, ipvsadm.Daemon{State: s, SyncID: 9})
		}
		err := l.Do(ns, func() (err error) {
			d, err = Start(Options{Iface: lab.HostIface, Rules: rulesFile, Mode: "memtest", Queues: queues, Templates: 4096, Conns: 4096,
				LockDir: t.TempDir(), NoHealth: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SyncDaemons: sds,
				Sysctls: []string{"sync_refresh_period=2"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d, lastBackend
	}
	a, ab := startIn(l.Balancer.NS, 1, ipvsadm.Master, ipvsadm.Backup)
	b, _ := startIn(l.Reals[0].NS, 2, ipvsadm.Master, ipvsadm.Backup)
	want := "master sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	if got := string(ipvsadm.AppendDaemon(nil, b.SyncDaemons())); got != want {
		t.Errorf("-L --daemon:\n%s\nwant\n%s", got, want)
	}
	// Calls through a.
	const calls = 20
	for i := range calls {
		ab.queues[0].Inject(invite("10.9.0.1:5060", fmt.Sprintf("early-%d@x", i)))
	}
	waitSent(t, ab.queues[0], calls)
	where := map[string]string{} // Call-ID → real server on a
	for _, tpl := range templates(t, a) {
		where[string(tpl.PEData)] = a.Snapshot().Dest(ipvs.DestID(tpl.Dest)).Addr.String()
	}
	waitSynced := func(prefix string, n int, limit time.Duration) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			got := 0
			for _, tpl := range templates(t, b) {
				id := string(tpl.PEData)
				if len(id) < len(prefix) || id[:len(prefix)] != prefix {
					continue
				}
				if !tpl.Synced || b.Snapshot().Dest(ipvs.DestID(tpl.Dest)).Addr.String() != where[id] {
					t.Fatalf("%s on b: synced %v, server %v, a's %s", id, tpl.Synced, tpl.Dest, where[id])
				}
				got++
			}
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d %s templates on b after %v; b: %+v", got, n, prefix, limit, b.SyncStatus().Backup)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSynced("early-", calls, 2*time.Second)
	st := b.SyncStatus()
	if st.Backup == nil || st.Backup.Stats.Entries < calls || len(st.Backup.Peers) != 1 || st.Backup.Peers[0].Addr != l.Balancer.Addr4 {
		t.Errorf("b's backup status %+v", st.Backup)
	}
	if m := a.SyncStatus().Master; m == nil || m.Stats.Entries < calls || m.Stats.Messages == 0 {
		t.Errorf("a's master status %+v", m)
	}
	var lag pipeline.LagHistogram
	for _, c := range b.Workers() {
		lag.Add(&c.Sync.Lag)
	}
	if lag.Count() < calls || lag.Max > time.Second {
		t.Errorf("lag on b: %d samples, max %v", lag.Count(), lag.Max)
	}
	// a's own templates are not marked; b's copies are not sent back.
	for _, tpl := range templates(t, a) {
		if tpl.Synced {
			t.Errorf("a's template %s marked SYNC", tpl.PEData)
		}
	}
	// A backup that starts late: b's backup stops, a gets calls, b's
	// backup starts again and learns them from a's walk within the refresh
	// period (2 s here).
	if err := b.StopSync(context.Background(), ipvsadm.Backup); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		ab.queues[0].Inject(invite("10.9.0.1:5060", fmt.Sprintf("late-%d@x", i)))
	}
	waitSent(t, ab.queues[0], 2*calls)
	for _, tpl := range templates(t, a) {
		where[string(tpl.PEData)] = a.Snapshot().Dest(ipvs.DestID(tpl.Dest)).Addr.String()
	}
	time.Sleep(100 * time.Millisecond) // the new calls' first syncs go nowhere
	var restarted time.Time
	if err := l.Do(l.Reals[0].NS, func() error {
		restarted = time.Now()
		return b.StartSync(context.Background(), ipvsadm.Daemon{State: ipvsadm.Backup, SyncID: 9})
	}); err != nil {
		t.Fatal(err)
	}
	waitSynced("late-", calls, 3*time.Second)
	t.Logf("a backup started late learned %d live templates in %v (sync_refresh_period 2)", calls, time.Since(restarted).Round(time.Millisecond))
	if err := b.StartSync(context.Background(), ipvsadm.Daemon{State: ipvsadm.Backup}); !errors.Is(err, syncd.ErrRunning) {
		t.Errorf("second backup: %v", err)
	}
	if err := a.StopSync(context.Background(), ipvsadm.Master); err != nil {
		t.Fatal(err)
	}
	if err := a.StopSync(context.Background(), ipvsadm.Master); !errors.Is(err, syncd.ErrNotRunning) {
		t.Errorf("second stop: %v", err)
	}
}

func templates(t *testing.T, d *Daemon) []table.TemplateInfo {
	t.Helper()
	ts, err := d.Templates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// The sync daemons over IPv6 multicast (--mcast-group ff02::81) and two
// ports (sync_ports 2: two sockets, and two receiving goroutines handing
// entries to the workers): a master on one director, a backup on another;
// the backup learns the calls.
func TestRootSyncIPv6(t *testing.T) {
	l := testenv.Lab(t, lab.Spec{RealServers: 1})
	rulesFile := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rulesFile, []byte(testRules), 0o600)
	group := netip.MustParseAddr("ff02::81")
	var ds []*Daemon
	var backends []*memBackend
	for _, h := range []struct {
		ns    string
		state ipvsadm.DaemonState
	}{{l.Balancer.NS, ipvsadm.Master}, {l.Reals[0].NS, ipvsadm.Backup}} {
		var d *Daemon
		if err := l.Do(h.ns, func() (err error) {
			d, err = Start(Options{Iface: lab.HostIface, Rules: rulesFile, Mode: "memtest", Templates: 1024, Conns: 1024,
				LockDir: t.TempDir(), NoHealth: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Queues: 2,
				Sysctls: []string{"sync_ports=2"}, SyncDaemons: []ipvsadm.Daemon{{State: h.state, McastGroup: group, McastPort: 8849}}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds, backends = append(ds, d), append(backends, lastBackend)
	}
	if got, want := string(ipvsadm.AppendDaemon(nil, ds[1].SyncDaemons())),
		"backup sync daemon (mcast=eth0, syncid=0, maxlen=1452, group=ff02::81, port=8849, ttl=1)\n"; got != want {
		t.Errorf("-L --daemon: %q, want %q", got, want)
	}
	const calls = 40
	for i := range calls {
		backends[0].queues[i%2].Inject(invite("10.9.0.1:5060", fmt.Sprintf("v6-%d@x", i)))
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := 0
		for _, tpl := range templates(t, ds[1]) {
			if tpl.Synced {
				n++
			}
		}
		if n == calls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d templates synced over IPv6; backup %+v", n, calls, ds[1].SyncStatus().Backup)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := ds[1].SyncStatus().Backup
	if p := st.Peers; len(p) != 1 || !p[0].Addr.Is6() {
		t.Errorf("peers %+v", p)
	}
	if m := ds[0].SyncStatus().Master; m == nil || m.Stats.Messages < 2 {
		t.Errorf("master %+v: want messages on both ports", m)
	}
}

// A sync daemon that cannot start fails the start, and the start releases
// what it took (the interface lock: a second start works).
func TestStartSyncDaemonFails(t *testing.T) {
	lockDir := t.TempDir()
	o := Options{Iface: "lo", Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: lockDir, NoHealth: true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		SyncDaemons: []ipvsadm.Daemon{{State: ipvsadm.Master, McastIface: "nosuch0"}}}
	if _, err := Start(o); !errors.Is(err, syncd.ErrInterface) || !strings.Contains(err.Error(), "--start-daemon master") {
		t.Fatalf("start: %v", err)
	}
	o.SyncDaemons = nil
	d, err := Start(o)
	if err != nil {
		t.Fatalf("start after a failed one: %v", err)
	}
	d.Close()
}
