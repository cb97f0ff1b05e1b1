package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// fakeLoad is a settable LoadReader.
type fakeLoad struct{ l Load }

func (f *fakeLoad) Load() Load { return f.l }

type td struct {
	w      int
	upper  uint32
	lower  uint32
	act    int64
	inact  int64
	persis int64
}

func dests(ds ...td) ([]Dest, []*fakeLoad) {
	out := make([]Dest, len(ds))
	loads := make([]*fakeLoad, len(ds))
	for i, d := range ds {
		loads[i] = &fakeLoad{Load{Active: d.act, Inactive: d.inact, Persist: d.persis}}
		out[i] = Dest{
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 5060),
			Weight: d.w, Upper: d.upper, Lower: d.lower, Load: loads[i],
		}
	}
	return out, loads
}

func mustCompile(t testing.TB, spec Spec) *Scheduler {
	t.Helper()
	s, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func src(i int) *Input {
	return &Input{
		Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), uint16(1024+i)),
		Dst: netip.MustParseAddrPort("10.1.1.1:5060"),
	}
}

// sequence runs n decisions and returns the chosen indices.
func sequence(s *Scheduler, st *State, n int) []int {
	out := make([]int, n)
	for i := range n {
		out[i] = s.Schedule(st, src(i))
	}
	return out
}

func TestSequences(t *testing.T) {
	cases := []struct {
		desc  string
		name  string
		ops   bool
		dests []td
		n     int
		want  []int
	}{
		{desc: "rr starts at the newest dest (list head) and cycles", name: "rr",
			dests: []td{{w: 1}, {w: 1}, {w: 1}}, n: 7, want: []int{0, 1, 2, 0, 1, 2, 0}},
		{desc: "rr skips quiesced dests", name: "rr",
			dests: []td{{w: 1}, {w: 0}, {w: 5}}, n: 4, want: []int{0, 2, 0, 2}},
		{desc: "rr skips overloaded dests", name: "rr",
			dests: []td{{w: 1, upper: 2, inact: 2}, {w: 1}}, n: 3, want: []int{1, 1, 1}},
		{desc: "rr with every dest quiesced has no dest", name: "rr",
			dests: []td{{w: 0}, {w: 0}}, n: 2, want: []int{-1, -1}},
		{desc: "wrr 4:3:2 follows ip_vs_wrr's gcd-stepped current weight", name: "wrr",
			dests: []td{{w: 4}, {w: 3}, {w: 2}}, n: 12, want: []int{0, 0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1}},
		{desc: "wrr with gcd 2 behaves as 2:1", name: "wrr",
			dests: []td{{w: 4}, {w: 2}}, n: 6, want: []int{0, 0, 1, 0, 0, 1}},
		{desc: "wrr skips weight 0", name: "wrr",
			dests: []td{{w: 0}, {w: 1}, {w: 1}}, n: 4, want: []int{1, 2, 1, 2}},
		{desc: "wrr all quiesced", name: "wrr",
			dests: []td{{w: 0}}, n: 1, want: []int{-1}},
		{desc: "wrr skips an overloaded heavy dest", name: "wrr",
			dests: []td{{w: 3, upper: 1, inact: 1}, {w: 1}}, n: 3, want: []int{1, 1, 1}},
		{desc: "lc picks least overhead (active<<8 + inactive)", name: "lc",
			dests: []td{{w: 1, act: 1}, {w: 1, inact: 255}, {w: 1, inact: 256}}, n: 1, want: []int{1}},
		{desc: "lc ties keep the first (newest) dest", name: "lc",
			dests: []td{{w: 1}, {w: 1}}, n: 3, want: []int{0, 0, 0}},
		{desc: "lc ignores weight except 0", name: "lc",
			dests: []td{{w: 0}, {w: 1, inact: 3}, {w: 100, inact: 4}}, n: 1, want: []int{1}},
		{desc: "wlc cross-multiplies overhead/weight", name: "wlc",
			dests: []td{{w: 1, inact: 1}, {w: 3, inact: 2}}, n: 1, want: []int{1}},
		{desc: "wlc keeps the first minimum on equal ratios", name: "wlc",
			dests: []td{{w: 1, inact: 1}, {w: 2, inact: 2}}, n: 1, want: []int{0}},
		{desc: "wlc without -o: templates are not load, every call to the head", name: "wlc",
			dests: []td{{w: 1, persis: 50}, {w: 1}}, n: 2, want: []int{0, 0}},
		{desc: "wlc with -o counts live templates as active load", name: "wlc", ops: true,
			dests: []td{{w: 1, persis: 50}, {w: 1, persis: 10}}, n: 1, want: []int{1}},
		{desc: "wlc skips overloaded", name: "wlc",
			dests: []td{{w: 1, upper: 3, inact: 3}, {w: 1, inact: 5}}, n: 1, want: []int{1}},
		{desc: "wlc with -o: thresholds count templates", name: "wlc", ops: true,
			dests: []td{{w: 1, upper: 3, persis: 3}, {w: 1, act: 4}}, n: 1, want: []int{1}},
		{desc: "sed uses (active+1)/weight", name: "sed",
			dests: []td{{w: 1}, {w: 3, act: 1}}, n: 1, want: []int{1}},
		{desc: "sed ignores inactive (UDP) load", name: "sed",
			dests: []td{{w: 1, inact: 1000}, {w: 1}}, n: 1, want: []int{0}},
		{desc: "nq returns the first idle server", name: "nq",
			dests: []td{{w: 9, act: 1}, {w: 1}, {w: 1}}, n: 1, want: []int{1}},
		{desc: "nq falls back to sed when none is idle", name: "nq",
			dests: []td{{w: 1, act: 1}, {w: 3, act: 2}}, n: 1, want: []int{1}},
		{desc: "nq with -o: a server holding templates is not idle", name: "nq", ops: true,
			dests: []td{{w: 1, persis: 1}, {w: 1}}, n: 1, want: []int{1}},
		{desc: "fo picks the highest weight, first on ties", name: "fo",
			dests: []td{{w: 2}, {w: 5}, {w: 5}}, n: 2, want: []int{1, 1}},
		{desc: "fo fails over past an overloaded dest", name: "fo",
			dests: []td{{w: 2}, {w: 5, upper: 1, act: 1}}, n: 1, want: []int{0}},
		{desc: "ovf takes the highest weight until active > weight", name: "ovf",
			dests: []td{{w: 1}, {w: 2, act: 3}, {w: 2, act: 2}}, n: 1, want: []int{2}},
		{desc: "ovf all over capacity", name: "ovf",
			dests: []td{{w: 1, act: 2}}, n: 1, want: []int{-1}},
		{desc: "none never schedules", name: "none",
			dests: []td{{w: 1}}, n: 1, want: []int{-1}},
		{desc: "empty service", name: "wlc", n: 1, want: []int{-1}},
		{desc: "twos with one eligible dest", name: "twos",
			dests: []td{{w: 0}, {w: 2}}, n: 3, want: []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			ds, _ := dests(c.dests...)
			s := mustCompile(t, Spec{Name: c.name, OnePacket: c.ops, Dests: ds})
			st := s.NewState(1)
			got := sequence(s, &st, c.n)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestThresholdHysteresis(t *testing.T) {
	for _, c := range []struct {
		desc         string
		upper, lower uint32
		clearBelow   int64 // first count at which overload clears
	}{
		{desc: "explicit lower threshold", upper: 10, lower: 4, clearBelow: 3},
		{desc: "lower 0 means 3/4 of upper (4*c < 3*u)", upper: 10, clearBelow: 7},
		{desc: "lower 0, upper 4", upper: 4, clearBelow: 2},
		{desc: "lower 0, upper 1", upper: 1, clearBelow: 0},
	} {
		t.Run(c.desc, func(t *testing.T) {
			ds, loads := dests(td{w: 1, upper: c.upper, lower: c.lower}, td{w: 1})
			s := mustCompile(t, Spec{Name: "lc", Dests: ds})
			st := s.NewState(0)
			loads[1].l.Inactive = 1 << 20 // dest 1 is heavily loaded but never overloaded
			for n := range int64(c.upper) {
				loads[0].l.Inactive = n
				if got := s.Schedule(&st, src(0)); got != 0 {
					t.Fatalf("count %d below upper: got %d, want 0", n, got)
				}
			}
			// Reach the upper threshold, then come down one by one.
			for n := int64(c.upper); n >= 0; n-- {
				loads[0].l.Inactive = n
				want := 1
				if n <= c.clearBelow {
					want = 0
				}
				if got := s.Schedule(&st, src(0)); got != want {
					t.Fatalf("count %d on the way down: got %d, want %d", n, got, want)
				}
			}
		})
	}
}

func TestDistribution(t *testing.T) {
	for _, c := range []struct {
		desc  string
		name  string
		ws    []int
		tol   float64 // relative tolerance of each share
		pehas bool
	}{
		{desc: "rr equal", name: "rr", ws: []int{1, 1, 1, 1}, tol: 0.001},
		{desc: "wrr 5:3:1:0", name: "wrr", ws: []int{5, 3, 1, 0}, tol: 0.001},
		{desc: "twos follows weights with zero load", name: "twos", ws: []int{1, 2, 3}, tol: 0.05},
		{desc: "sh by source address spreads", name: "sh", ws: []int{1, 1, 1, 1}, tol: 0.1},
		{desc: "sh by Call-ID hash spreads", name: "sh", ws: []int{1, 1, 1, 1}, tol: 0.1, pehas: true},
		{desc: "sh weight-tiled 3:1", name: "sh", ws: []int{3, 1}, tol: 0.1, pehas: true},
		{desc: "mh by Call-ID equal", name: "mh", ws: []int{1, 1, 1, 1, 1}, tol: 0.05, pehas: true},
		{desc: "mh by Call-ID weighted 1:2:3:0", name: "mh", ws: []int{1, 2, 3, 0}, tol: 0.05, pehas: true},
		{desc: "mh by source address", name: "mh", ws: []int{1, 1, 1}, tol: 0.05},
	} {
		t.Run(c.desc, func(t *testing.T) {
			tds := make([]td, len(c.ws))
			total := 0
			for i, w := range c.ws {
				tds[i] = td{w: w}
				total += w
			}
			ds, _ := dests(tds...)
			s := mustCompile(t, Spec{Name: c.name, Dests: ds})
			st := s.NewState(7)
			const n = 60000
			hits := make([]int, len(ds))
			for i := range n {
				in := src(i)
				if c.pehas {
					in.HasPE, in.PEHash = true, HashPEData(fmt.Appendf(nil, "call-%d@host", i))
				}
				d := s.Schedule(&st, in)
				if d < 0 {
					t.Fatalf("no dest at %d", i)
				}
				hits[d]++
			}
			for i, w := range c.ws {
				want := float64(n) * float64(w) / float64(total)
				if got := float64(hits[i]); got < want*(1-c.tol)-1 || got > want*(1+c.tol)+1 {
					t.Errorf("dest %d weight %d: %d hits, want %.0f ±%.0f%% (all %v)", i, w, hits[i], want, c.tol*100, hits)
				}
			}
		})
	}
}

func TestTwosPrefersLowerLoad(t *testing.T) {
	ds, _ := dests(td{w: 1, inact: 100}, td{w: 1})
	s := mustCompile(t, Spec{Name: "twos", Dests: ds})
	st := s.NewState(3)
	hits := [2]int{}
	for i := range 10000 {
		hits[s.Schedule(&st, src(i))]++
	}
	// dest 0 wins only when both picks land on it: about 1/4 of the time.
	if hits[0] < 1500 || hits[0] > 3500 {
		t.Errorf("loaded dest got %d of 10000, want about 2500", hits[0])
	}
}

func TestHashSchedulers(t *testing.T) {
	ds, loads := dests(td{w: 1}, td{w: 1}, td{w: 1}, td{w: 1})
	t.Run("sh is sticky per source address, port ignored without sh-port", func(t *testing.T) {
		s := mustCompile(t, Spec{Name: "sh", Dests: ds})
		st := s.NewState(0)
		a := &Input{Src: netip.MustParseAddrPort("192.0.2.7:5060")}
		b := &Input{Src: netip.MustParseAddrPort("192.0.2.7:5099")}
		if s.Schedule(&st, a) != s.Schedule(&st, b) {
			t.Error("same source address, different dests")
		}
	})
	t.Run("sh-port spreads ports of one address", func(t *testing.T) {
		s := mustCompile(t, Spec{Name: "sh", Flags: SHPort, Dests: ds})
		st := s.NewState(0)
		seen := map[int]bool{}
		for p := range 64 {
			seen[s.Schedule(&st, &Input{Src: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), uint16(5000+p))})] = true
		}
		if len(seen) < 3 {
			t.Errorf("64 ports reached %d dests", len(seen))
		}
	})
	t.Run("sh quiesced target: no dest without fallback, next with sh-fallback", func(t *testing.T) {
		ds2, _ := dests(td{w: 1}, td{w: 1}, td{w: 1}, td{w: 1})
		in := &Input{Src: netip.MustParseAddrPort("192.0.2.7:1")}
		s := mustCompile(t, Spec{Name: "sh", Dests: ds2})
		st := s.NewState(0)
		d := s.Schedule(&st, in)
		ds2[d].Weight = 0
		s = mustCompile(t, Spec{Name: "sh", Dests: ds2})
		st = s.NewState(0)
		if got := s.Schedule(&st, in); got != -1 {
			t.Errorf("without fallback got %d, want -1", got)
		}
		s = mustCompile(t, Spec{Name: "sh", Flags: SHFallback, Dests: ds2})
		st = s.NewState(0)
		if got := s.Schedule(&st, in); got < 0 || got == d {
			t.Errorf("with fallback got %d, want another dest than %d", got, d)
		}
	})
	t.Run("dh hashes the destination address only", func(t *testing.T) {
		s := mustCompile(t, Spec{Name: "dh", Dests: ds})
		st := s.NewState(0)
		want := s.Schedule(&st, src(0))
		for i := range 100 {
			in := src(i)
			in.HasPE, in.PEHash = true, uint64(i)
			if got := s.Schedule(&st, in); got != want {
				t.Fatalf("source %d got %d, want %d", i, got, want)
			}
		}
	})
	t.Run("mh overloaded target: -1, or the next eligible entry with mh-fallback", func(t *testing.T) {
		in := &Input{HasPE: true, PEHash: HashPEData([]byte("a84b4c76e66710@pc33.atlanta.com"))}
		s := mustCompile(t, Spec{Name: "mh", Dests: ds})
		st := s.NewState(0)
		d := s.Schedule(&st, in)
		ds3 := append([]Dest(nil), ds...)
		ds3[d].Upper = 1
		loads[d].l.Inactive = 1
		defer func() { loads[d].l.Inactive = 0 }()
		s = mustCompile(t, Spec{Name: "mh", Dests: ds3})
		st = s.NewState(0)
		if got := s.Schedule(&st, in); got != -1 {
			t.Errorf("without fallback got %d, want -1", got)
		}
		s = mustCompile(t, Spec{Name: "mh", Flags: MHFallback, Dests: ds3})
		st = s.NewState(0)
		if got := s.Schedule(&st, in); got < 0 || got == d {
			t.Errorf("with fallback got %d, want another dest than %d", got, d)
		}
		for i := range ds3 {
			ds3[i].Upper, loads[i].l.Inactive = 1, 1
		}
		s = mustCompile(t, Spec{Name: "mh", Flags: MHFallback, Dests: ds3})
		st = s.NewState(0)
		if got := s.Schedule(&st, in); got != -1 {
			t.Errorf("all overloaded: got %d, want -1", got)
		}
		for i := range ds3 {
			loads[i].l.Inactive = 0
		}
	})
}

func maglevDests(n int, w func(i int) int) []Dest {
	ds := make([]Dest, n)
	for i := range n {
		ds[i] = Dest{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 5060), Weight: w(i)}
	}
	return ds
}

func one(int) int { return 1 }

// byAddr maps a Maglev table to dest addresses, independent of list order.
func byAddr(s *Scheduler, ds []Dest) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.maglev))
	for i, d := range s.maglev {
		out[i] = ds[d].Addr
	}
	return out
}

func TestMaglevDeterministic(t *testing.T) {
	ds := maglevDests(7, func(i int) int { return i%3 + 1 })
	rev := make([]Dest, len(ds))
	for i, d := range ds {
		rev[len(ds)-1-i] = d
	}
	a := byAddr(mustCompile(t, Spec{Name: "mh", Dests: ds}), ds)
	b := byAddr(mustCompile(t, Spec{Name: "mh", Dests: rev}), rev)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("entry %d: %v vs %v: tables differ with list order", i, a[i], b[i])
		}
	}
	// Same Call-ID, two independently compiled schedulers (two balancers).
	s1 := mustCompile(t, Spec{Name: "mh", Dests: ds})
	s2 := mustCompile(t, Spec{Name: "mh", Dests: rev})
	st1, st2 := s1.NewState(1), s2.NewState(2)
	for i := range 1000 {
		in := &Input{HasPE: true, PEHash: HashPEData(fmt.Appendf(nil, "%d@example.net", i))}
		if ds[s1.Schedule(&st1, in)].Addr != rev[s2.Schedule(&st2, in)].Addr {
			t.Fatalf("Call-ID %d chose different servers", i)
		}
	}
}

func TestMaglevBalance(t *testing.T) {
	for _, n := range []int{2, 3, 10, 33, 100} {
		s := mustCompile(t, Spec{Name: "mh", Dests: maglevDests(n, one)})
		counts := make([]int, n)
		for _, d := range s.maglev {
			counts[d]++
		}
		lo, hi := counts[0], counts[0]
		for _, c := range counts {
			lo, hi = min(lo, c), max(hi, c)
		}
		if float64(hi) > float64(lo)*1.03+1 {
			t.Errorf("%d dests: entries between %d and %d, want within 3%%", n, lo, hi)
		}
	}
}

func TestMaglevDisruption(t *testing.T) {
	const n = 10
	base := maglevDests(n+1, one)
	before := byAddr(mustCompile(t, Spec{Name: "mh", Dests: base[:n]}), base[:n])
	after := byAddr(mustCompile(t, Spec{Name: "mh", Dests: base}), base)
	added := base[n].Addr
	moved, toNew := 0, 0
	for i := range before {
		if before[i] != after[i] {
			moved++
			if after[i] == added {
				toNew++
			}
		}
	}
	ideal := float64(MaglevTableSize) / float64(n+1)
	if float64(toNew) < 0.95*ideal {
		t.Errorf("new dest took %d entries, want about %.0f", toNew, ideal)
	}
	// Maglev is near-minimal: few entries move between old dests.
	if extra := moved - toNew; float64(extra) > 0.03*MaglevTableSize {
		t.Errorf("adding 1 of %d moved %d entries between old dests (%.2f%%), want < 3%%",
			n+1, extra, 100*float64(extra)/MaglevTableSize)
	}
	t.Logf("adding a dest to %d: %d entries moved (ideal %.0f), %d between old dests", n, moved, ideal, moved-toNew)

	// Removal is the reverse: entries of the removed dest move, others barely.
	removed := base[3].Addr
	rest := append(append([]Dest(nil), base[:3]...), base[4:n]...)
	afterDel := byAddr(mustCompile(t, Spec{Name: "mh", Dests: rest}), rest)
	moved = 0
	for i := range before {
		if before[i] != removed && before[i] != afterDel[i] {
			moved++
		}
	}
	if float64(moved) > 0.03*MaglevTableSize {
		t.Errorf("removing 1 of %d moved %d entries of surviving dests", n, moved)
	}
}

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		desc, sched, list string
		want              Flags
		err               error
	}{
		{desc: "sh flags with sh", sched: "sh", list: "sh-fallback,sh-port", want: SHFallback | SHPort},
		{desc: "mh flags with mh", sched: "mh", list: "mh-port", want: MHPort},
		{desc: "generic flags with any scheduler", sched: "", list: "flag-1,flag-3", want: Flag1 | Flag3},
		{desc: "sh flag with default wlc", sched: "", list: "sh-port", err: ErrIncompatibleFlag},
		{desc: "mh flag with sh", sched: "sh", list: "mh-fallback", err: ErrIncompatibleFlag},
		{desc: "unknown flag", sched: "sh", list: "sh-bogus", err: ErrInvalidFlag},
		{desc: "empty items skipped", sched: "", list: ",flag-2,,", want: Flag2},
		{desc: "no flag at all", sched: "", list: ",", err: ErrInvalidFlag},
	} {
		t.Run(c.desc, func(t *testing.T) {
			got, err := ParseFlags(c.sched, c.list)
			if !errors.Is(err, c.err) || got != c.want {
				t.Errorf("got %v, %v; want %v, %v", got, err, c.want, c.err)
			}
		})
	}
	if got := FormatFlags("mh", MHFallback|MHPort); got != "mh-fallback,mh-port" {
		t.Errorf("FormatFlags = %q", got)
	}
	if got := FormatFlags("sh", SHPort|Flag3); got != "sh-port,flag-3" {
		t.Errorf("FormatFlags = %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Compile(Spec{Name: "lblc"}); !errors.Is(err, ErrUnknownScheduler) {
		t.Errorf("lblc: %v", err)
	}
	if _, err := Compile(Spec{Name: "rr", Dests: []Dest{{Weight: 65536}}}); !errors.Is(err, ErrInvalidWeight) {
		t.Errorf("weight: %v", err)
	}
	if _, err := Compile(Spec{Name: "rr", Flags: 0x4}); !errors.Is(err, ErrInvalidFlag) {
		t.Errorf("flags: %v", err)
	}
	for _, n := range Names() {
		if !Known(n) {
			t.Errorf("%s not known", n)
		}
	}
}

func TestScheduleAllocatesNothing(t *testing.T) {
	ds, _ := dests(td{w: 1, upper: 100}, td{w: 2}, td{w: 3, inact: 4}, td{w: 0})
	for _, name := range Names() {
		for _, flags := range []Flags{0, Flag1 | Flag2} {
			if flags != 0 && name != "sh" && name != "mh" {
				continue
			}
			s := mustCompile(t, Spec{Name: name, Flags: flags, OnePacket: true, Dests: ds})
			st := s.NewState(1)
			in := src(1)
			in.HasPE, in.PEHash = true, 42
			if a := testing.AllocsPerRun(200, func() {
				in.PEHash++
				s.Schedule(&st, in)
			}); a != 0 {
				t.Errorf("%s flags %#x: %v allocs per Schedule", name, flags, a)
			}
		}
	}
	if a := testing.AllocsPerRun(100, func() { HashPEData([]byte("a84b4c76e66710@pc33.atlanta.com")) }); a != 0 {
		t.Errorf("HashPEData: %v allocs", a)
	}
}

func BenchmarkSchedule(b *testing.B) {
	tds := make([]td, 16)
	for i := range tds {
		tds[i] = td{w: i%4 + 1, inact: int64(i * 3), persis: int64(i)}
	}
	ds, _ := dests(tds...)
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			s := mustCompile(b, Spec{Name: name, OnePacket: true, Dests: ds})
			st := s.NewState(1)
			in := src(1)
			in.HasPE = true
			b.ReportAllocs()
			for i := range b.N {
				in.PEHash = uint64(i) * 0x9e3779b97f4a7c15
				s.Schedule(&st, in)
			}
		})
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	ds := maglevDests(32, one)
	b.ReportAllocs()
	for b.Loop() {
		buildMaglev(ds)
	}
}

// TestMaglevIndependentOfListOrder builds the table from 500 permutations
// of the same weighted servers (down ones included) and finds the same
// table every time: it depends on the set of (address, port, weight,
// down), never on the order of the -a lines or the list index.
func TestMaglevIndependentOfListOrder(t *testing.T) {
	ds := maglevDests(9, func(i int) int { return i%3 + 1 })
	ds[4].Down = true
	ds[7].Weight = 0
	want := byAddr(mustCompile(t, Spec{Name: "mh", Dests: ds}), ds)
	rng := rand.New(rand.NewPCG(7, 11))
	for p := range 500 {
		perm := append([]Dest(nil), ds...)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		got := byAddr(mustCompile(t, Spec{Name: "mh", Dests: perm}), perm)
		if !slices.Equal(got, want) {
			t.Fatalf("permutation %d (%v) gives another table", p, perm)
		}
	}
	for _, a := range want {
		if a == ds[4].Addr || a == ds[7].Addr {
			t.Fatalf("a down or weight-0 server (%v) has entries", a)
		}
	}
}
