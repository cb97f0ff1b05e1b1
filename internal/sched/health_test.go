package sched

import (
	"testing"
)

// A Down destination (failed health check) is skipped by every scheduler
// exactly as a weight-0 one, while its configured weight stays as it was.
func TestDownSkippedByEveryScheduler(t *testing.T) {
	for _, name := range Names() {
		if name == "none" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ds, _ := dests(td{w: 1}, td{w: 3}, td{w: 2}, td{w: 1})
			ds[1].Down = true
			flags := Flags(0)
			switch name {
			case "sh":
				flags = SHFallback
			case "mh":
				flags = MHFallback
			}
			s := mustCompile(t, Spec{Name: name, Flags: flags, Dests: ds})
			st := s.NewState(7)
			seen := map[int]int{}
			for i := range 2000 {
				in := src(i)
				in.HasPE, in.PEHash = true, HashPEData([]byte{byte(i), byte(i >> 8), 'x'})
				d := s.Schedule(&st, in)
				if d == 1 {
					t.Fatalf("decision %d chose the down destination", i)
				}
				seen[d]++
			}
			if seen[-1] > 0 && name != "dh" {
				t.Fatalf("no destination for %d inputs with three up: %v", seen[-1], seen)
			}
			if ds[1].Weight != 3 {
				t.Fatal("Down changed the configured weight")
			}
			// All down: nothing is available.
			for i := range ds {
				ds[i].Down = true
			}
			s = mustCompile(t, Spec{Name: name, Flags: flags, Dests: ds})
			st = s.NewState(7)
			if d := s.Schedule(&st, src(1)); d != -1 {
				t.Fatalf("all down: chose %d", d)
			}
		})
	}
}

// A server going down under mh moves only its own share of the Maglev
// table (Maglev's near-minimal disruption), and coming back restores the
// exact table: calls of healthy servers keep their server.
func TestMaglevDownMovesOnlyItsShare(t *testing.T) {
	const n = 8
	ds := maglevDests(n, one)
	before := byAddr(mustCompile(t, Spec{Name: "mh", Dests: ds}), ds)
	ds[2].Down = true
	down := byAddr(mustCompile(t, Spec{Name: "mh", Dests: ds}), ds)
	moved := 0
	for i := range before {
		if down[i] == ds[2].Addr {
			t.Fatal("down dest still has Maglev entries")
		}
		if before[i] != ds[2].Addr && before[i] != down[i] {
			moved++
		}
	}
	if float64(moved) > 0.03*MaglevTableSize {
		t.Errorf("a dest going down moved %d entries of healthy dests", moved)
	}
	ds[2].Down = false
	back := byAddr(mustCompile(t, Spec{Name: "mh", Dests: ds}), ds)
	for i := range before {
		if before[i] != back[i] {
			t.Fatal("table after recovery differs from the table before the failure")
		}
	}
}
