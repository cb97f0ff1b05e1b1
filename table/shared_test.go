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

// A burst of new keys larger than the index must not lock new keys out for a
// whole timeout: when a key's probe window is full of live entries, an entry
// nobody republished or looked up is replaced first, so entries of live
// dialogs (republished) survive a burst of one-off keys.
func TestSharedEvictsUnusedFirst(t *testing.T) {
	const capacity = 64
	s, err := NewShared(capacity)
	if err != nil {
		t.Fatal(err)
	}
	const now, timeout = int64(1e9), int64(60e9)
	// A live dialog, republished (Refresh) as the burst goes on.
	live := uint64(0xfeedface12345678)
	if _, ins, ok := s.InsertIfAbsent(live, 7, now+timeout, now); !ins || !ok {
		t.Fatal("live key not inserted")
	}
	// A burst of one-off keys, 20× the capacity, each published once and
	// never refreshed, while the live key is refreshed every 100 keys.
	failed := 0
	for i := range 20 * capacity {
		t0 := now + int64(i)*1e6
		k := uint64(i+1)*0x9e3779b97f4a7c15 | 1
		if _, _, ok := s.InsertIfAbsent(k, DestID(1+i%3), t0+timeout, t0); !ok {
			failed++
		}
		if i%100 == 0 {
			s.Refresh(live, t0+timeout, t0)
		}
	}
	if failed != 0 {
		t.Fatalf("%d of %d new keys could not be published", failed, 20*capacity)
	}
	if s.Evictions() == 0 {
		t.Fatal("no evictions counted")
	}
	end := now + int64(20*capacity)*1e6
	if d, ok := s.Get(live, end); !ok || d != 7 {
		t.Fatalf("the republished live key was evicted by one-off keys (%v, %v)", d, ok)
	}
	// The most recent one-off key is there; the earliest ones are gone.
	n := uint64(20 * capacity)
	last := n*0x9e3779b97f4a7c15 | 1
	if _, ok := s.Get(last, end); !ok {
		t.Fatal("the newest key is missing")
	}
}
