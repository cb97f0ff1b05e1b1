package ipvs

import (
	"net/netip"
	"testing"
)

// A candidate from Clone changes independently of the running
// configuration, keeps what identifies services and destinations (DestIDs,
// counters, compiled unchanged services), and holds back -Z until Commit.
func TestCloneIsACandidate(t *testing.T) {
	c, _ := newConfig(t, 2)
	must(t, c.AddService(sipService()))
	must(t, c.AddDest(vkey, DefaultDest(rs1)))
	other := ServiceConfig{Protocol: UDP, Addr: netip.MustParseAddrPort("192.0.2.11:5060"), Scheduler: "wrr"}
	must(t, c.AddService(other))
	must(t, c.AddDest(other.Key(), DefaultDest(rs2)))
	running := c.Snapshot()
	running.Services()[0].Dests[0].Stats.Worker(0).Conn()

	n := c.Clone()
	must(t, n.AddDest(vkey, DefaultDest(rs3)))
	must(t, n.DelService(other.Key()))
	n.ZeroAll()
	if s := c.Snapshot(); s != running || len(s.Services()) != 2 || len(s.Services()[0].Dests) != 1 {
		t.Fatalf("the running configuration changed with its candidate: %d services", len(s.Services()))
	}
	if got := running.Services()[0].Dests[0].Stats.Read().Conns; got != 1 {
		t.Fatalf("-Z on a candidate zeroed the running counters before Commit: conns %d", got)
	}
	ns := n.Snapshot()
	if len(ns.Services()) != 1 || len(ns.Services()[0].Dests) != 2 {
		t.Fatalf("candidate: %d services", len(ns.Services()))
	}
	old := running.Services()[0].Dests[0]
	if d := ns.Dest(old.ID); d == nil || d.Stats != old.Stats || d.Addr != rs1 {
		t.Fatalf("rs1 lost its DestID or counters in the candidate: %+v", d)
	}
	if ns.Dest(running.Services()[1].Dests[0].ID) != nil {
		t.Fatal("a destination of a deleted service is still in the candidate's snapshot")
	}
	n.Commit()
	if got := old.Stats.Read().Conns; got != 0 {
		t.Fatalf("conns %d after Commit of -Z", got)
	}
	// An untouched service is shared, not recompiled.
	n2 := n.Clone()
	must(t, n2.SetTimeouts(Timeouts{UDP: 30}))
	if n2.Snapshot().Services()[0] != ns.Services()[0] {
		t.Fatal("an unchanged service was recompiled in a clone")
	}
	// A candidate that is dropped leaves no trace: the same change can be
	// made again on the running configuration.
	must(t, c.AddDest(vkey, DefaultDest(rs3)))
}
