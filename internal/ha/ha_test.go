package ha

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB = [6]byte{2, 0, 0, 0, 0, 0xb}
)

func frame(from [6]byte, port uint16, payload []byte) []byte {
	return craft.Spec{SrcMAC: from, DstMAC: [6]byte{2, 1, 1, 1, 1, 1}, Src: netip.MustParseAddrPort("10.77.0.10:5060"),
		Dst: netip.AddrPortFrom(netip.MustParseAddr("10.77.2.1"), port), Payload: payload}.Build()
}

func info(id string) []byte {
	return []byte(strings.Replace(string(craft.SIPBye(id)), "BYE sip:", "INFO sip:", 1))
}

// The counter counts requests by Call-ID, server and method (not
// responses), and probes by the director that forwarded them; a call is
// split when two servers saw it, incomplete when its server lacks a request.
func TestCounter(t *testing.T) {
	c := &Counter{calls: map[string]map[string]map[string]int{}}
	t0 := time.Unix(1000, 0)
	for _, m := range [][]byte{craft.SIPInvite("c1"), craft.SIPAck("c1"), info("c1"), craft.SIPBye("c1"), craft.SIP200OK("c1")} {
		c.frame(frame(macA, SIPPort, m), "real0", t0)
	}
	c.frame(frame(macA, SIPPort, craft.SIPInvite("c2")), "real0", t0)
	c.frame(frame(macB, SIPPort, craft.SIPBye("c2")), "real1", t0)
	c.frame(frame(macA, SIPPort, craft.SIPInvite("c3")), "real2", t0)
	c.frame(frame(macA, ProbePort, []byte("probe 1")), "real0", t0.Add(time.Second))
	c.frame(frame(macB, ProbePort, []byte("probe 2")), "real1", t0.Add(2*time.Second))
	c.frame(frame(macB, 9999, []byte("other")), "real1", t0)
	calls := c.Calls("")
	if len(calls) != 3 || calls["c1"]["real0"]["INVITE"] != 1 || calls["c1"]["real0"]["INFO"] != 1 || len(calls["c1"]["real0"]) != 4 {
		t.Fatalf("calls %v", calls)
	}
	split, incomplete := calls.Split()
	if len(split) != 1 || !strings.HasPrefix(split[0], "c2 ") || len(incomplete) != 1 || !strings.HasPrefix(incomplete[0], "c3:") {
		t.Errorf("split %v, incomplete %v", split, incomplete)
	}
	p := c.Probes()
	if len(p) != 2 || p[0].From != macA || p[1].Server != "real1" {
		t.Fatalf("probes %+v", p)
	}
	s, ok := SwitchAfter(p, t0)
	if !ok || s.From != macA || s.To != macB || s.Interrupt != time.Second {
		t.Errorf("switch %+v %v", s, ok)
	}
	if _, ok := SwitchAfter(p, t0.Add(2500*time.Millisecond)); ok {
		t.Error("a switch after the last change")
	}
}

// The sync lag read from a backup's metrics, as a difference of two
// scrapes.
func TestSyncLag(t *testing.T) {
	m := func(n1, n2, n3 float64, sum, maxv float64) map[string]float64 {
		return map[string]float64{
			`xvs_sync_lag_seconds_bucket{le="0.01"}`: n1, `xvs_sync_lag_seconds_bucket{le="0.05"}`: n2,
			`xvs_sync_lag_seconds_bucket{le="0.1"}`: n3, `xvs_sync_lag_seconds_bucket{le="+Inf"}`: n3,
			"xvs_sync_lag_seconds_count": n3, "xvs_sync_lag_seconds_sum": sum, "xvs_sync_lag_max_seconds": maxv,
		}
	}
	before := m(10, 10, 10, 0.05, 0.004)
	after := m(10, 100, 110, 3.05, 0.08)
	l := SyncLag(after, SyncLagCounts(before))
	if l.Count != 100 || l.Median != 50*time.Millisecond || l.P99 != 80*time.Millisecond || l.Mean != 30*time.Millisecond || l.Max != 80*time.Millisecond {
		t.Errorf("%+v", l)
	}
}

// Each director's keepalived.conf is one keepalived accepts.
func TestKeepalivedConf(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	track := filepath.Join(dir, "track.sh")
	os.WriteFile(track, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	for _, preempt := range []bool{true, false} {
		conf := filepath.Join(dir, "keepalived.conf")
		text := KeepalivedConf("A", 150, DefaultTimers, track, preempt)
		os.WriteFile(conf, []byte(text), 0o644)
		if out, err := exec.Command("keepalived", "--config-test", "--use-file", conf).CombinedOutput(); err != nil {
			t.Errorf("keepalived -t (preempt %v): %v\n%s\n%s", preempt, err, out, text)
		}
	}
}
