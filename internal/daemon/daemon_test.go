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

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
)

// memBackend is a dataplane.Backend over in-memory queues carrying raw IP
// frames (so no layer-2 next hop is involved).
type memBackend struct {
	queues  []*dataplane.MemQueue
	filters []dataplane.Filter
	// capacity bounds Services+RealServers of a filter, as the AF_XDP
	// filter's maps bound their entries (0: no bound).
	capacity int
}

func (b *memBackend) Mode() dataplane.Mode { return dataplane.Mode{Backend: "memtest"} }
func (b *memBackend) Queues() []dataplane.Queue {
	out := make([]dataplane.Queue, len(b.queues))
	for i, q := range b.queues {
		out[i] = q
	}
	return out
}
func (b *memBackend) Update(f dataplane.Filter) error {
	if b.capacity > 0 && len(f.Services)+len(f.RealServers) > b.capacity {
		return errMemFull
	}
	b.filters = append(b.filters, f)
	return nil
}

func (b *memBackend) Check(f dataplane.Filter) error {
	if b.capacity > 0 && len(f.Services)+len(f.RealServers) > b.capacity {
		return fmt.Errorf("%d entries: %w", len(f.Services)+len(f.RealServers), dataplane.ErrFilterTooLarge)
	}
	return nil
}

var errMemFull = errors.New("memtest filter full")

func (b *memBackend) Close() error {
	for _, q := range b.queues {
		q.Close()
	}
	return nil
}

var lastBackend *memBackend

func init() {
	dataplane.Register("memtest", func(o dataplane.Options) (dataplane.Backend, error) {
		n := max(o.Queues, 1)
		b := &memBackend{}
		for range n {
			b.queues = append(b.queues, dataplane.NewMemQueue(packet.LinkRaw))
		}
		lastBackend = b
		return b, nil
	})
	// A backend that fails to open and returns a typed nil, as real ones
	// do (*rawsock.Backend(nil), err).
	dataplane.Register("memfail", func(o dataplane.Options) (dataplane.Backend, error) {
		return (*memBackend)(nil), errors.New("memfail: cannot open")
	})
}

const testRules = `-A -u 10.0.0.1:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.0.0.1:5060 -r 192.168.0.1:5060 -m
-a -u 10.0.0.1:5060 -r 192.168.0.2:5060 -m
`

func start(t *testing.T, queues int, snapshot string) (*Daemon, *memBackend) {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "r.rules")
	os.WriteFile(rules, []byte(testRules), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Queues: queues, Templates: 4096, Conns: 4096, LockDir: t.TempDir(),
		SnapshotFile: snapshot, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return d, lastBackend
}

func invite(src string, id string) []byte {
	return craft.Spec{Link: packet.LinkRaw, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("10.0.0.1:5060"), Payload: craft.SIPInvite(id)}.Build()
}

func waitSent(t *testing.T, q *dataplane.MemQueue, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for q.Stats().TxFrames+q.Stats().Recycled < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue stats %+v, want %d frames handled", q.Stats(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func parse(t *testing.T, argv string) ipvsadm.Command {
	t.Helper()
	c, err := ipvsadm.Parse(strings.Fields(argv))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDaemonServesAndReconfigures(t *testing.T) {
	d, b := start(t, 2, "")
	defer d.Close()
	if d.Mode().String() != "memtest" || len(b.filters) != 1 || len(b.filters[0].Services) != 1 || len(b.filters[0].RealServers) != 2 {
		t.Fatalf("mode %s filters %+v", d.Mode(), b.filters)
	}
	for i := range 20 {
		b.queues[i%2].Inject(invite("10.9.0.1:5060", fmt.Sprintf("c%d", i%5)))
	}
	waitSent(t, b.queues[0], 10)
	waitSent(t, b.queues[1], 10)
	ctx := context.Background()
	tmpls, err := d.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Five calls, each seen by both workers: one template per worker per call,
	// all pointing at the same server per call (cross-worker persistence).
	perCall := map[string]map[uint32]bool{}
	for _, tm := range tmpls {
		k := string(tm.PEData)
		if perCall[k] == nil {
			perCall[k] = map[uint32]bool{}
		}
		perCall[k][uint32(tm.Dest)] = true
	}
	if len(perCall) != 5 {
		t.Fatalf("templates for %d calls, want 5", len(perCall))
	}
	for k, dests := range perCall {
		if len(dests) != 1 {
			t.Fatalf("call %s on %d servers", k, len(dests))
		}
	}

	// A single failing command changes nothing; a failing batch changes nothing.
	before := d.Snapshot()
	if err := d.Apply(ctx, parse(t, "-A -u 10.0.0.1:5060")); err == nil || !strings.Contains(err.Error(), "Service already exists") {
		t.Fatalf("duplicate service: %v", err)
	}
	err = d.ApplyAll(ctx, []ipvsadm.Command{parse(t, "-a -u 10.0.0.1:5060 -r 192.168.0.3:5060 -m"), parse(t, "-a -u 10.0.0.9:5060 -r 192.168.0.4")})
	if err == nil || d.Snapshot() != before {
		t.Fatalf("failed batch: err %v, snapshot changed %v", err, d.Snapshot() != before)
	}
	// A good change is published to the workers and the backend's filter.
	if err := d.Apply(ctx, parse(t, "-a -u 10.0.0.1:5060 -r 192.168.0.3:5060 -m")); err != nil {
		t.Fatal(err)
	}
	if got := len(d.Snapshot().Services()[0].Dests); got != 3 || len(b.filters[len(b.filters)-1].RealServers) != 3 {
		t.Fatalf("after -a: %d dests, filter %+v", got, b.filters[len(b.filters)-1])
	}
	// Existing calls keep their server after the change (templates survive).
	b.queues[0].Inject(invite("10.9.0.1:5060", "c1"))
	waitSent(t, b.queues[0], 11)
	after, _ := d.Templates(ctx)
	for _, tm := range after {
		if string(tm.PEData) == "c1" && !perCall["c1"][uint32(tm.Dest)] {
			t.Fatal("call c1 moved after an unrelated reconfiguration")
		}
	}
	if w := d.Workers(); w[0].Frames+w[1].Frames != 21 {
		t.Fatalf("worker frames %d+%d", w[0].Frames, w[1].Frames)
	}
}

// Templates saved on shutdown are restored at the next start, so live calls
// keep their servers across a restart.
func TestTemplateSnapshotAcrossRestart(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	d, b := start(t, 1, snap)
	for i := range 8 {
		b.queues[0].Inject(invite("10.9.0.1:5060", fmt.Sprintf("call-%d", i)))
	}
	waitSent(t, b.queues[0], 8)
	ctx := context.Background()
	before := map[string]string{}
	tm, _ := d.Templates(ctx)
	for _, x := range tm {
		before[string(x.PEData)] = d.Snapshot().Dest(ipvs.DestID(x.Dest)).Addr.String()
	}
	if !d.Forwarding() {
		t.Fatal("a started daemon does not report forwarding (BGP would withdraw its VIPs)")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Forwarding() {
		t.Fatal("a closed daemon reports forwarding")
	}
	if st, err := os.Stat(snap); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", st, err)
	}
	d2, _ := start(t, 1, snap)
	defer d2.Close()
	tm2, err := d2.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tm2) != 8 {
		t.Fatalf("%d templates restored, want 8", len(tm2))
	}
	for _, x := range tm2 {
		if got := d2.Snapshot().Dest(ipvs.DestID(x.Dest)).Addr.String(); got != before[string(x.PEData)] {
			t.Fatalf("%s restored to %s, was %s", x.PEData, got, before[string(x.PEData)])
		}
		if x.Remaining <= 50*time.Second || x.Remaining > 60*time.Second {
			t.Fatalf("restored remaining %v", x.Remaining)
		}
	}
}

func TestStartErrors(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := Start(Options{Iface: "lo", Mode: "nosuch", LockDir: t.TempDir(), Logger: log}); err == nil || !strings.Contains(err.Error(), "unknown data-plane mode") {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := Start(Options{Iface: "nosuch0", Mode: "memtest", LockDir: t.TempDir(), Logger: log}); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("bad interface: %v", err)
	}
	// A failed open leaves nothing to close (it once closed the typed nil).
	if _, err := Start(Options{Iface: "lo", Mode: "memfail", LockDir: t.TempDir(), Logger: log}); err == nil || !strings.Contains(err.Error(), "memfail: cannot open") {
		t.Errorf("failing backend: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.rules")
	os.WriteFile(bad, []byte("-A -u 10.0.0.1:5060 --pe nosuch -p\n"), 0o600)
	if _, err := Start(Options{Iface: "lo", Mode: "memtest", Rules: bad, LockDir: t.TempDir(), Logger: log}); err == nil || !strings.Contains(err.Error(), "bad.rules:1: UDP 10.0.0.1:5060: persistence engine \"nosuch\" not found: Scheduler or persistence engine not found") {
		t.Errorf("bad rules: %v", err)
	}
}

// A start that fails after it took the interface's lock, the snapshot's
// lock and the backend releases them all: the next start on the same
// interface and snapshot file succeeds.
func TestFailedStartReleases(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lockDir, snap := t.TempDir(), filepath.Join(t.TempDir(), "templates.json")
	bad := filepath.Join(t.TempDir(), "bad.rules")
	os.WriteFile(bad, []byte("-A -u 10.0.0.1:5060 --pe nosuch -p\n"), 0o600)
	o := Options{Iface: "lo", Mode: "memtest", LockDir: lockDir, SnapshotFile: snap, Templates: 1024, Conns: 1024, Logger: log}
	bo := o
	bo.Rules = bad
	if _, err := Start(bo); err == nil {
		t.Fatal("bad rules accepted")
	}
	d, err := Start(o)
	if err != nil {
		t.Fatalf("after a failed start: %v", err)
	}
	d.Close()
}

// xvs run --sysctl sets IPVS sysctls at start, after the rules file (whose
// --sysctl lines apply too); a setting xvs does not honour is refused by
// name.
func TestStartSysctls(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rulesFile := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rulesFile, []byte("--sysctl expire_quiescent_template=1\n--sysctl sloppy_tcp=1\n"+testRules), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rulesFile, Mode: "memtest", Templates: 1024, Conns: 1024, Logger: log, LockDir: t.TempDir(),
		Sysctls: []string{"expire_nodest_conn=1", "net.ipv4.vs.sloppy_tcp=0"}})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Snapshot()
	d.Close()
	if !s.ExpireQuiescentTemplate || !s.ExpireNodestConn || s.Sysctls.Get(ipvs.SloppyTCP) != 0 {
		t.Fatalf("sysctls at start: %s %s %s", s.Sysctls.Format(ipvs.ExpireQuiescentTemplate), s.Sysctls.Format(ipvs.ExpireNodestConn), s.Sysctls.Format(ipvs.SloppyTCP))
	}
	_, err = Start(Options{Iface: "lo", Mode: "memtest", Logger: log, LockDir: t.TempDir(), Sysctls: []string{"drop_entry=1"}})
	if err == nil || err.Error() != "--sysctl drop_entry=1: sysctl net.ipv4.vs.drop_entry is not supported by xvs" {
		t.Fatalf("unsupported --sysctl: %v", err)
	}
}

// At log level 9 the SIP engine's events reach the log, as IPVS's
// debug_level 9 output does.
func TestDebugLogging(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "r.rules")
	os.WriteFile(rules, []byte(testRules), 0o600)
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: DebugLevel}))
	d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Templates: 1024, Conns: 1024, LockDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b := lastBackend
	b.queues[0].Inject(invite("10.9.0.1:5060", "debug-me@x"), invite("10.9.0.1:5060", "debug-me@x"))
	waitSent(t, b.queues[0], 2)
	time.Sleep(3 * debugDrain)
	d.Close()
	out := buf.String()
	for _, want := range []string{`msg="SIP callid" callid=debug-me@x bytes=10`, `msg="SIP template match" proto=UDP callid=debug-me@x virtual=10.0.0.1:5060 result="not hit"`, `result=hit`} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
}
