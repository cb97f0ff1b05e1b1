package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/testenv"
)

// TestReachLogBackoff: an unreachable real server is logged once, then
// after a minute, two, four… up to an hour, while it stays unreachable.
func TestReachLogBackoff(t *testing.T) {
	var buf testenv.Buffer
	d := &Daemon{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r := &reachState{}
	start := time.Unix(1_700_000_000, 0)
	var logged []time.Duration
	for s := time.Duration(0); s <= 3*time.Hour; s += time.Second {
		before := strings.Count(buf.String(), "\n")
		d.logReach(r, start.Add(s), "real server is not reachable", "server", "10.0.0.1")
		if strings.Count(buf.String(), "\n") > before {
			logged = append(logged, s)
		}
	}
	want := []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute, 31 * time.Minute, 63 * time.Minute, 123 * time.Minute} // then every hour (183 min is past the loop)
	if len(logged) != len(want) {
		t.Fatalf("logged at %v, want %v", logged, want)
	}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged at %v, want %v", logged, want)
		}
	}
	if !strings.Contains(buf.String(), "since=") {
		t.Error("repeated lines do not say since when")
	}
}
