package metrics

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/syncd"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/table"
)

type syncSource struct {
	*source
	st control.SyncStatus
}

func (s *syncSource) StartSync(context.Context, ipvsadm.Daemon) error     { return nil }
func (s *syncSource) StopSync(context.Context, ipvsadm.DaemonState) error { return nil }
func (s *syncSource) SyncDaemons() []ipvsadm.Daemon                       { return nil }
func (s *syncSource) SyncStatus() control.SyncStatus                      { return s.st }

// The sync daemons' metrics: what runs, peers heard from, messages and
// entries sent, received, dropped and rejected by reason, ring drops, the
// workers' records and the sync lag histogram.
func TestSyncMetrics(t *testing.T) {
	src := &syncSource{source: newSource(t)}
	w := &src.status.Workers[0]
	w.Sync.Queued, w.Sync.Walked, w.Sync.StaleDest = 10, 4, 1
	w.Sync.Applied[table.SyncInserted] = 7
	src.status.Templates[0].Synced = 5
	for _, d := range []time.Duration{3 * time.Millisecond, 40 * time.Millisecond, 2 * time.Second} {
		w.Sync.Lag.Counts[bucketOf(d)]++
		w.Sync.Lag.Sum += d
		w.Sync.Lag.Max = max(w.Sync.Lag.Max, d)
	}
	group := netip.MustParseAddr("224.0.0.81")
	var dropped [syncproto.NumReasons]uint64
	dropped[syncproto.SyncIDMismatch] = 5
	src.st = control.SyncStatus{
		Master: &control.MasterStatus{Config: ipvsadm.Daemon{State: ipvsadm.Master, McastIface: "eth1", SyncID: 51, SyncMaxLen: 1472, McastGroup: group, McastPort: 8848, McastTTL: 1},
			Stats: syncd.SenderStats{Records: 12, Entries: 11, Messages: 3, Bytes: 900, RingDrops: 2, LagSum: 30e6, LagCount: 11, LagMax: 9e6}},
		Backup: &control.BackupStatus{Config: ipvsadm.Daemon{State: ipvsadm.Backup, McastIface: "eth1", SyncID: 51, SyncMaxLen: 1500, McastGroup: group, McastPort: 8848, McastTTL: 1},
			Stats:    syncd.ReceiverStats{Datagrams: 8, Messages: [2]uint64{1, 6}, Entries: 40, Dropped: dropped},
			Peers:    []control.SyncPeer{{Addr: netip.MustParseAddr("10.77.1.3"), SyncID: 51, Datagrams: 8, Age: 1500 * time.Millisecond}},
			Rejected: map[string]uint64{"no_service": 1, "no_dest": 2, "ring_full": 0}},
	}
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
		{"xvs_sync_daemon_info", map[string]string{"state": "master", "mcast_interface": "eth1", "syncid": "51", "group": "224.0.0.81", "port": "8848", "maxlen": "1472"}, 1},
		{"xvs_sync_daemon_info", map[string]string{"state": "backup", "maxlen": "1500"}, 1},
		{"xvs_sync_master_messages_total", nil, 3},
		{"xvs_sync_master_ring_drops_total", nil, 2},
		{"xvs_sync_master_send_lag_max_seconds", nil, 0.009},
		{"xvs_sync_backup_entries_total", nil, 40},
		{"xvs_sync_backup_messages_total", map[string]string{"version": "1"}, 6},
		{"xvs_sync_backup_dropped_total", map[string]string{"reason": "syncid mismatch"}, 5},
		{"xvs_sync_backup_rejected_total", map[string]string{"reason": "no_dest"}, 2},
		{"xvs_sync_peer_datagrams_total", map[string]string{"peer": "10.77.1.3"}, 8},
		{"xvs_sync_peer_last_heard_seconds", map[string]string{"peer": "10.77.1.3"}, 1.5},
		{"xvs_sync_queued_total", map[string]string{"worker": "0"}, 10},
		{"xvs_sync_walked_total", map[string]string{"worker": "0"}, 4},
		{"xvs_sync_applied_total", map[string]string{"worker": "0", "result": "inserted"}, 7},
		{"xvs_sync_stale_total", map[string]string{"worker": "0"}, 1},
		{"xvs_sync_lag_max_seconds", nil, 2},
		{"xvs_templates_synced", map[string]string{"worker": "0"}, 5},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := fams["xvs_sync_lag_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 {
		t.Fatalf("lag histogram %v", h)
	}
	for _, b := range h.GetBucket() {
		want := map[float64]uint64{0.005: 1, 0.05: 2, 1: 2, 2: 3, 5: 3}[b.GetUpperBound()]
		if want != 0 && b.GetCumulativeCount() != want {
			t.Errorf("bucket %v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	// Stopped daemons have no daemon metrics.
	src.st = control.SyncStatus{}
	if fams := scrape(t, "http://"+s.Addr().String()+"/metrics"); fams["xvs_sync_daemon_info"] != nil {
		t.Error("daemon metrics without a daemon")
	}
}

func bucketOf(d time.Duration) int {
	for i, b := range pipeline.LagBuckets {
		if d <= b {
			return i
		}
	}
	return len(pipeline.LagBuckets)
}
