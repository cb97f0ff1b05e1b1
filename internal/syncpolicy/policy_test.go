package syncpolicy

import (
	"errors"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/sysctl"
)

const sec = int64(time.Second)

// t0 is an arbitrary monotonic time far from zero and from tick boundaries.
const t0 = 1000*sec + 3*int64(time.Millisecond)

func compile(t *testing.T, s Switches) Policy {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s.Compile()
}

// run feeds packets at the given offsets from t0 (seconds) to e and
// returns which were synced, updating e as the caller must.
func run(p *Policy, e *Entry, at ...float64) []bool {
	var out []bool
	for i, s := range at {
		now := t0 + int64(s*float64(sec))
		send, mark := p.Needed(e, uint32(i+1), now)
		if send {
			e.Mark, e.OldState = mark, e.State
		} else if mark != e.Mark {
			panic("mark changed without a sync")
		}
		out = append(out, send)
	}
	return out
}

func eq(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKernelDefaults(t *testing.T) {
	p := compile(t, KernelDefaults())
	// A UDP connection: packets 3, 53, 103 (count % 50 == 3).
	conn := Entry{Protocol: syncproto.ProtoUDP, Timeout: 300 * time.Second, Mark: InitialMark(t0)}
	for pkts := uint32(1); pkts <= 110; pkts++ {
		send, _ := p.Needed(&conn, pkts, t0)
		if want := pkts == 3 || pkts == 53 || pkts == 103; send != want {
			t.Fatalf("connection packet %d: %v", pkts, send)
		}
	}
	// A template: every use (ipvs.md: every packet under OPS).
	tpl := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
	if got := run(&p, &tpl, 0, 0.001, 0.5, 1, 1, 2); !eq(got, []bool{true, true, true, true, true, true}) {
		t.Fatalf("template: %v", got)
	}
}

func TestPeriodZero(t *testing.T) {
	s := KernelDefaults()
	s.Period = 0
	p := compile(t, s)
	for _, e := range []Entry{
		{Protocol: syncproto.ProtoUDP, Timeout: 300 * time.Second},
		{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second},
	} {
		e.Mark = InitialMark(t0)
		var synced []uint32
		for pkts := uint32(1); pkts <= 200; pkts++ {
			if send, _ := p.Needed(&e, pkts, t0+int64(pkts)*sec); send {
				synced = append(synced, pkts)
			}
		}
		if len(synced) != 1 || synced[0] != 3 {
			t.Errorf("template=%v: synced at %v, want only packet 3", e.Template, synced)
		}
	}
}

func TestRefreshPeriod(t *testing.T) {
	s := KernelDefaults()
	s.RefreshPeriod = 10
	p := compile(t, s)
	tpl := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
	// New template: sent (its expiry moved by 60 s). Then not again until
	// 10 s later.
	got := run(&p, &tpl, 0, 0.5, 1.3, 5, 9.9, 10.1, 11, 19, 20.2)
	want := []bool{true, false, false, false, false, true, false, false, true}
	if !eq(got, want) {
		t.Errorf("refresh 10: %v, want %v", got, want)
	}

	// One retry, no sooner than refresh/8 = 1.25 s after the sync. The
	// retry moves the mark (the kernel stores the current expiry with the
	// retry count), so the next refresh is 10 s after the retry.
	s.Retries = 1
	p = compile(t, s)
	tpl.Mark = InitialMark(t0)
	got = run(&p, &tpl, 0, 0.5, 1.3)
	if want := []bool{true, false, true}; !eq(got, want) {
		t.Errorf("refresh 10, 1 retry: %v, want %v", got, want)
	}
	if tpl.Mark&3 != 1 {
		t.Errorf("mark %#x: want retry count 1 in the low bits", tpl.Mark)
	}
	got = run(&p, &tpl, 2, 5, 10.1, 11.2, 11.4, 12, 12.5, 12.7)
	want = []bool{false, false, false, false, true, false, false, true}
	if !eq(got, want) {
		t.Errorf("refresh 10, 1 retry, later: %v, want %v", got, want)
	}

	// A new template whose timeout is below the 10 s floor is not synced
	// at once when refresh is on: its expiry has moved by less than
	// min(refresh, max(timeout/2, 10 s)). It is synced once the expiry
	// has moved by 10 s.
	s.RefreshPeriod, s.Retries = 60, 0
	p = compile(t, s)
	tiny := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 8 * time.Second, Mark: InitialMark(t0)}
	got = run(&p, &tiny, 0, 1.9, 2.1, 5)
	want = []bool{false, false, true, false}
	if !eq(got, want) {
		t.Errorf("8 s template, refresh 60, from creation: %v, want %v", got, want)
	}

	// The gap is at most half the timeout, but at least 10 s: a 8 s
	// template with refresh 60 is re-sent every 10 s.
	got = run(&p, &tiny, 11.9, 12.2, 20, 22.3)
	want = []bool{false, true, false, true}
	if !eq(got, want) {
		t.Errorf("8 s template, refresh 60: %v, want %v", got, want)
	}
	// A 600 s template with refresh 60: every 60 s (half the timeout is
	// more).
	long := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 600 * time.Second, Mark: InitialMark(t0)}
	got = run(&p, &long, 0, 30, 59.9, 60.1, 100, 120.3)
	want = []bool{true, false, false, true, false, true}
	if !eq(got, want) {
		t.Errorf("600 s template, refresh 60: %v, want %v", got, want)
	}
	// A timeout change moves the expiry: sent at once.
	long.Timeout = 300 * time.Second
	if got := run(&p, &long, 121); !got[0] {
		t.Error("timeout change not synced")
	}
}

func TestRefreshWithPeriodForConnections(t *testing.T) {
	// With refresh and period both set, a connection needs both the time
	// and the packet count; a template only the time.
	s := KernelDefaults()
	s.RefreshPeriod = 10
	p := compile(t, s)
	conn := Entry{Protocol: syncproto.ProtoUDP, Timeout: 300 * time.Second, Mark: InitialMark(t0)}
	if send, _ := p.Needed(&conn, 1, t0); send {
		t.Error("packet 1 synced")
	}
	send, mark := p.Needed(&conn, 3, t0)
	if !send {
		t.Fatal("packet 3 not synced")
	}
	conn.Mark = mark
	if send, _ := p.Needed(&conn, 53, t0+sec); send {
		t.Error("packet 53, 1 s later, synced")
	}
	if send, _ := p.Needed(&conn, 103, t0+11*sec); !send {
		t.Error("packet 103, 11 s later, not synced")
	}
}

func TestTCPStates(t *testing.T) {
	p := compile(t, KernelDefaults())
	e := Entry{Protocol: syncproto.ProtoTCP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
	check := func(state uint16, pkts uint32, want bool) {
		t.Helper()
		e.State = state
		send, mark := p.Needed(&e, pkts, t0)
		if send != want {
			t.Fatalf("state %d packet %d: %v, want %v", state, pkts, send, want)
		}
		if send {
			e.Mark, e.OldState = mark, e.State
		}
	}
	check(syncproto.TCPSynRecv, 3, false)     // not a synced state
	check(syncproto.TCPEstablished, 1, false) // entering ESTABLISHED still waits for the count
	check(syncproto.TCPEstablished, 3, true)
	check(syncproto.TCPEstablished, 4, false)
	check(syncproto.TCPFinWait, 5, true) // any other state change: at once
	check(syncproto.TCPFinWait, 6, false)
	check(syncproto.TCPTimeWait, 7, true)
	check(syncproto.TCPTimeWait, 53, true) // same state, count % 50 == 3
	check(syncproto.TCPListen, 3, false)
	check(99, 3, false)

	e = Entry{Protocol: syncproto.ProtoSCTP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
	check(syncproto.SCTPCookieEchoed, 3, false)
	check(syncproto.SCTPEstablished, 3, true)
	check(syncproto.SCTPShutdownSent, 4, true)
	check(syncproto.SCTPClosed, 5, true)
}

func TestPersistMode(t *testing.T) {
	s := KernelDefaults()
	s.PersistMode = 1
	p := compile(t, s)
	conn := Entry{Protocol: syncproto.ProtoUDP, Timeout: 300 * time.Second, InPersistence: true}
	if send, _ := p.Needed(&conn, 3, t0); send {
		t.Error("persist mode synced a connection of a persistent service")
	}
	conn.InPersistence = false
	if send, _ := p.Needed(&conn, 3, t0); !send {
		t.Error("persist mode skipped a connection of a non-persistent service")
	}
	tpl := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second}
	if send, _ := p.Needed(&tpl, 1, t0); !send {
		t.Error("persist mode skipped a template")
	}
}

func TestXVSDefaultsCutTemplateSyncs(t *testing.T) {
	// One OPS template used by 100 datagrams over 60 s: the kernel's
	// defaults sync it 100 times, xvs's 10 times: at 0 s and its retry at
	// 1.8 s, then each 10 s after the last one with its retry (12, 13.8,
	// 24, 25.8, 36, 37.8, 48, 49.8).
	count := func(s Switches) int {
		p := compile(t, s)
		e := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
		n := 0
		for i := range 100 {
			now := t0 + int64(i)*600*int64(time.Millisecond)
			if send, mark := p.Needed(&e, uint32(i+1), now); send {
				e.Mark = mark
				n++
			}
		}
		return n
	}
	if k, x := count(KernelDefaults()), count(Defaults()); k != 100 || x != 10 {
		t.Errorf("syncs of one busy template: kernel defaults %d, xvs %d; want 100, 10", k, x)
	}
}

func TestNeededNoAllocs(t *testing.T) {
	p := compile(t, Defaults())
	e := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second}
	if n := testing.AllocsPerRun(100, func() { p.Needed(&e, 1, t0) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func TestSwitches(t *testing.T) {
	if err := KernelDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	// The registry's defaults are xvs's, and name the kernel's where they
	// differ.
	var zero sysctl.Values
	if got := FromValues(zero); got != Defaults() {
		t.Errorf("registry defaults %+v, want %+v", got, Defaults())
	}
	k := KernelDefaults()
	kv, err := k.Values(zero)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		sw := f.id.Switch()
		if sw.Meaning == "" {
			t.Errorf("%s: no meaning", sw.Name)
		}
		if differs := !zero.IsDefault(f.id) || !kv.IsDefault(f.id); differs != (sw.Kernel != "") && sw.Name != "sync_qlen_max" {
			t.Errorf("%s: kernel default %q, xvs's %s", sw.Name, sw.Kernel, zero.Format(f.id))
		}
		if sw.Kernel != "" && sw.Name != "sync_qlen_max" && kv.Format(f.id) != sw.Kernel {
			t.Errorf("%s: KernelDefaults %s, registry says %q", sw.Name, kv.Format(f.id), sw.Kernel)
		}
	}
	if FromValues(kv) != k {
		t.Errorf("round trip %+v", FromValues(kv))
	}
	for _, tc := range []struct {
		setting string
		ok      bool
	}{
		{"sync_threshold=0 0", true},
		{"sync_threshold=5\t10", true},
		{"sync_threshold=10 10", false},
		{"sync_threshold=11 10", false},
		{"sync_threshold=5 0", true},
		{"sync_threshold=-1 50", false},
		{"sync_threshold=3", false},
		{"sync_version=0", true},
		{"sync_version=2", false},
		{"sync_retries=3", true},
		{"sync_retries=4", false},
		{"sync_ports=8", true},
		{"sync_ports=6", false},
		{"sync_ports=128", false},
		{"sync_ports=0", false},
		{"sync_refresh_period=0", true},
		{"sync_refresh_period=-1", false},
		{"sync_refresh_period=x", false},
		{"sync_persist_mode=1", true},
		{"sync_qlen_max=0", false},
		{"sync_sock_size=65536", true},
		{"sync_nothing=1", false},
	} {
		id, v, err := sysctl.Parse(tc.setting)
		if (err == nil) != tc.ok {
			t.Errorf("Parse %q: %v", tc.setting, err)
			continue
		}
		if err != nil {
			continue
		}
		vals, err := zero.With(id, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := FromValues(vals).Validate(); err != nil {
			t.Errorf("%q: parsed, but %v", tc.setting, err)
		}
	}
	bad := Defaults()
	bad.Ports = 3
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("sync_ports 3: %v", err)
	}
}

// lastSyncedBefore is the baseline: the least a per-packet time check can
// be (one subtraction and comparison on the entry), not inlined either.
//
//go:noinline
func lastSyncedBefore(last *int64, now, gap int64) bool {
	if now-*last < gap {
		return false
	}
	*last = now
	return true
}

// BenchmarkNeeded measures the per-packet decision beside the baseline of
// a bare time check, in the same run.
func BenchmarkNeeded(b *testing.B) {
	b.Run("baseline-time-check", func(b *testing.B) {
		var last int64
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now += int64(time.Millisecond)
			lastSyncedBefore(&last, now, 10*sec)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})
	for _, tc := range []struct {
		name string
		sw   Switches
		e    Entry
	}{
		{"template-xvs-defaults", Defaults(), Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second}},
		{"template-kernel-defaults", KernelDefaults(), Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second}},
		{"tcp-conn-kernel-defaults", KernelDefaults(), Entry{Protocol: syncproto.ProtoTCP, State: syncproto.TCPEstablished, OldState: syncproto.TCPEstablished, Timeout: 900 * time.Second}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.sw.Compile()
			e := tc.e
			e.Mark = InitialMark(t0)
			now := t0
			pkts := uint32(0)
			b.ReportAllocs()
			for b.Loop() {
				now += int64(time.Millisecond)
				pkts++
				if send, mark := p.Needed(&e, pkts, now); send {
					e.Mark, e.OldState = mark, e.State
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// TestDue: the walk re-sends a template not synced for 3/4 of a refresh
// period, and not one synced (by a packet, or by the walk) within it.
func TestDue(t *testing.T) {
	p := compile(t, Defaults())
	e := Entry{Template: true, Protocol: syncproto.ProtoUDP, Timeout: 60 * time.Second, Mark: InitialMark(t0)}
	// A new template is synced by its first packet.
	send, mark := p.Needed(&e, 1, t0)
	if !send {
		t.Fatal("new template not synced")
	}
	e.Mark = mark
	for _, tc := range []struct {
		at   float64
		want bool
	}{{1, false}, {7.4, false}, {7.6, true}} {
		if send, _ := p.Due(&e, t0+int64(tc.at*float64(sec))); send != tc.want {
			t.Errorf("Due after %vs: %v", tc.at, send)
		}
	}
	send, mark = p.Due(&e, t0+11*sec)
	e.Mark = mark
	if !send || mark&3 != uint32(Defaults().Retries) {
		t.Fatalf("walk: %v %x", send, mark)
	}
	if send, _ := p.Due(&e, t0+18*sec); send {
		t.Error("due again 7 s after the walk sent it")
	}
	// Its retries are spent: a packet soon after does not re-send it.
	if send, _ := p.Needed(&e, 0, t0+13*sec); send {
		t.Error("a packet after the walk re-sent it")
	}
	if send, _ := p.Due(&e, t0+19*sec); !send {
		t.Error("not due 8 s after the walk")
	}
	k := compile(t, KernelDefaults())
	if send, _ := k.Due(&e, t0+1000*sec); send || k.Refresh() != 0 || p.Refresh() < 9*time.Second || p.Refresh() > 10*time.Second {
		t.Errorf("the kernel's defaults walk nothing; refresh %v / %v", k.Refresh(), p.Refresh())
	}
	z := Defaults()
	z.Period, z.Threshold, z.RefreshPeriod = 0, 0, 0
	zp := compile(t, z)
	if !zp.CountsTemplates() || p.CountsTemplates() {
		t.Error("CountsTemplates")
	}
}
