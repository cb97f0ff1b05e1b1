package health

import (
	"testing"
	"time"
)

func TestMachineThresholds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := machine{up: true, since: t0}
	seq := func(outcomes string) (changes []int) {
		for i, c := range outcomes {
			if m.observe(c == '+', 3, 2, t0.Add(time.Duration(i)*time.Second)) {
				changes = append(changes, i)
			}
		}
		return changes
	}
	// Two failures are not enough; a success in between restarts the count.
	if ch := seq("--+--+"); len(ch) != 0 || !m.up {
		t.Fatalf("flapping below the fail threshold changed state: %v", ch)
	}
	// Three in a row take it down, on the third.
	if ch := seq("---"); len(ch) != 1 || ch[0] != 2 || m.up || m.failed != 3 {
		t.Fatalf("three failures: %v %+v", ch, m)
	}
	// More failures keep it down without further changes.
	if ch := seq("----"); len(ch) != 0 || m.up {
		t.Fatalf("more failures: %v", ch)
	}
	// Alternating success/failure never brings it back (rise 2).
	if ch := seq("+-+-+-+-"); len(ch) != 0 || m.up {
		t.Fatalf("flapping below the rise threshold: %v", ch)
	}
	// Two successes in a row do.
	if ch := seq("++"); len(ch) != 1 || ch[0] != 1 || !m.up || m.ok != 2 {
		t.Fatalf("two successes: %v %+v", ch, m)
	}
	if !m.checked || !m.since.Equal(t0.Add(time.Second)) {
		t.Fatalf("since %v", m.since)
	}
}

func TestMachineThresholdOne(t *testing.T) {
	m := machine{up: true}
	now := time.Unix(0, 0)
	if !m.observe(false, 1, 1, now) || m.up {
		t.Fatal("fail 1: one failure must take it down")
	}
	if !m.observe(true, 1, 1, now) || !m.up {
		t.Fatal("rise 1: one success must bring it up")
	}
}
