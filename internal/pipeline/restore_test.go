package pipeline

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// Restoring more templates than a fresh worker's table holds makes room by
// the table's policy (issue 10 item 1: the eviction's OnRemove hook read the
// worker's not yet loaded snapshot and panicked), keeps the PersistConn
// gauges equal to the live templates, and publishes every restored template
// to the shared index, so another worker that receives the call's next
// datagram sends it to the same real server.
func TestRestoreTemplateFullTableAndSharedIndex(t *testing.T) {
	const capacity = 16
	l := newLabSized(t, 2, sipRules, capacity)
	svc := l.ptr.Load().Lookup(ipvs.UDP, netip.MustParseAddr("10.4.3.192"), 5060)
	_, sipID, _ := pe.Lookup("sip")
	w0 := l.workers[0]
	want := map[string]string{}
	for i := range 3 * capacity {
		id := fmt.Sprintf("restored-%d@proxy", i)
		d := svc.Dests[i%len(svc.Dests)]
		info := table.TemplateInfo{Protocol: 17, Client: netip.IPv4Unspecified(), Virtual: netip.MustParseAddrPort(vip),
			Dest: table.DestID(d.ID), Timeout: time.Minute, Remaining: 50 * time.Second, PE: uint8(sipID), PEData: []byte(id)}
		if res := w0.RestoreTemplate(&info, l.now); res != table.Inserted {
			t.Fatalf("restore %d: %v", i, res)
		}
		want[id] = d.Addr.String()
	}
	st := w0.Templates().Stats()
	if st.Live != capacity || st.EvictedProbation != 2*capacity {
		t.Fatalf("worker 0 after restoring %d into %d: %+v", 3*capacity, capacity, st)
	}
	var persist int64
	for _, d := range svc.Dests {
		persist += d.Stats.Read().PersistConns
	}
	if persist != capacity {
		t.Fatalf("PersistConn total %d, want %d (the live templates)", persist, capacity)
	}
	// Worker 1 never held any of them: the evicted ones and the kept ones
	// all reach their restored server through the shared index.
	for id, real := range want {
		d, _ := l.send(1, sip("10.4.3.7:5060", vip, craft.SIPInvite(id)))
		if d.Reason != ReasonSharedHit || d.Real.String() != real {
			t.Fatalf("call %s on worker 1: %v → %v, want shared_hit → %s", id, d.Reason, d.Real, real)
		}
	}
	// A Dest the configuration does not have is refused, not inserted.
	bad := table.TemplateInfo{Protocol: 17, Client: netip.IPv4Unspecified(), Virtual: netip.MustParseAddrPort(vip),
		Dest: 1 << 30, Timeout: time.Minute, Remaining: time.Second, PE: uint8(sipID), PEData: []byte("x")}
	if res := w0.RestoreTemplate(&bad, l.now); res != table.InsertInvalid {
		t.Fatalf("unknown dest: %v", res)
	}
}
