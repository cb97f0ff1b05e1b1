package table

import (
	"slices"
	"sync"
	"testing"
)

func TestSharedBasics(t *testing.T) {
	s, err := NewShared(16)
	if err != nil {
		t.Fatal(err)
	}
	const h = 0x1234_5678_9abc_def0
	now := int64(sec)
	if _, ok := s.Get(h, now); ok {
		t.Fatal("hit in empty index")
	}
	if w, ins, ok := s.InsertIfAbsent(h, 3, now+10*sec, now); !ok || !ins || w != 3 {
		t.Fatal("insert")
	}
	if w, ins, _ := s.InsertIfAbsent(h, 4, now+10*sec, now); ins || w != 3 {
		t.Fatal("second insert must return the winner")
	}
	if d, ok := s.Get(h, now+9*sec); !ok || d != 3 {
		t.Fatal("get")
	}
	if !s.Refresh(h, now+20*sec, now+9*sec) || !s.Refresh(h, now+5*sec, now+9*sec) {
		t.Fatal("refresh")
	}
	if _, ok := s.Get(h, now+19*sec); !ok {
		t.Fatal("refresh shortened or did not extend the expiry")
	}
	if _, ok := s.Get(h, now+20*sec); ok {
		t.Fatal("expired entry returned")
	}
	// An expired slot is reused, by the same or another key.
	if w, ins, _ := s.InsertIfAbsent(h, 5, now+40*sec, now+30*sec); !ins || w != 5 {
		t.Fatal("reinsert after expiry")
	}
	if d, _ := s.Replace(h, 9, 6, now+40*sec, now+30*sec); d != 5 {
		t.Fatal("replace with a wrong old value must return the current one")
	}
	if d, _ := s.Replace(h, 5, 6, now+40*sec, now+30*sec); d != 6 {
		t.Fatal("replace")
	}
}

// TestSharedConcurrentAgreement: workers racing to schedule the same new
// keys, each with its own choice, must all end up with one destination per
// key; then racing replacers must converge too. Run with -race.
func TestSharedConcurrentAgreement(t *testing.T) {
	const (
		workers = 4
		keys    = 2000
	)
	s, _ := NewShared(keys)
	now := int64(sec)
	got := make([][]DestID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		got[w] = make([]DestID, keys)
		wg.Go(func() {
			for k := range keys {
				h := mix(uint64(k)+1, wyp0) // spread, never 0
				if d, ok := s.Get(h, now); ok {
					got[w][k] = d
					continue
				}
				d, _, ok := s.InsertIfAbsent(h, DestID(100+w), now+60*sec, now)
				if !ok {
					t.Errorf("key %d: no room", k)
				}
				got[w][k] = d
			}
		})
	}
	wg.Wait()
	for k := range keys {
		for w := 1; w < workers; w++ {
			if got[w][k] != got[0][k] {
				t.Fatalf("key %d: worker %d got %d, worker 0 got %d", k, w, got[w][k], got[0][k])
			}
		}
	}
	// All workers find their destination invalid and replace it at once.
	old := slices.Clone(got[0])
	for w := range workers {
		wg.Go(func() {
			for k := range keys {
				h := mix(uint64(k)+1, wyp0)
				d, _ := s.Replace(h, old[k], DestID(200+w), now+60*sec, now)
				got[w][k] = d
			}
		})
	}
	wg.Wait()
	for k := range keys {
		h := mix(uint64(k)+1, wyp0)
		final, _ := s.Get(h, now)
		for w := range workers {
			if got[w][k] != final {
				t.Fatalf("key %d: worker %d converged on %d, index holds %d", k, w, got[w][k], final)
			}
		}
	}
}

func TestSharedNoAllocs(t *testing.T) {
	s, _ := NewShared(1024)
	now := int64(sec)
	h := uint64(0)
	if a := testing.AllocsPerRun(1000, func() {
		h++
		s.InsertIfAbsent(h*wyp1, 1, now+sec, now)
		s.Get(h*wyp1, now)
		s.Refresh(h*wyp1, now+2*sec, now)
	}); a != 0 {
		t.Fatalf("%v allocs", a)
	}
}
