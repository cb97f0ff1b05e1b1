package metrics

import (
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
)

type snapshotSource struct {
	*source
	st control.SnapshotStatus
}

func (s *snapshotSource) SnapshotStatus() control.SnapshotStatus { return s.st }

// The template snapshot's health is visible before a shutdown needs it:
// failed saves, the last success, and what the start restored.
func TestSnapshotMetrics(t *testing.T) {
	last := time.Unix(1700000000, 500_000_000)
	src := &snapshotSource{source: newSource(t), st: control.SnapshotStatus{File: "/var/lib/xvs/t.json", Saves: 4, Errors: 2,
		LastSuccess: last, Saved: 1234, Restored: map[string]int{"restored": 1024, "evicted": 1976}}}
	s, err := Serve("127.0.0.1:0", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fams := scrape(t, "http://"+s.Addr().String()+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"xvs_snapshot_saves_total", nil, 4},
		{"xvs_snapshot_errors_total", nil, 2},
		{"xvs_snapshot_last_success_timestamp_seconds", nil, 1700000000.5},
		{"xvs_snapshot_templates", nil, 1234},
		{"xvs_snapshot_restored_templates", map[string]string{"result": "restored"}, 1024},
		{"xvs_snapshot_restored_templates", map[string]string{"result": "evicted"}, 1976},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Without a snapshot file there are no snapshot metrics.
	src.st = control.SnapshotStatus{}
	if fams := scrape(t, "http://"+s.Addr().String()+"/metrics"); fams["xvs_snapshot_errors_total"] != nil {
		t.Error("snapshot metrics without --snapshot")
	}
}
