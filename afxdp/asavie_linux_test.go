package afxdp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/asavie/xdp"
)

// TestAsavieHandsOutHeldFrames shows why xvs keeps its own frame owners
// instead of asavie/xdp's free list (issue #24, duplicate addresses):
// asavie's Receive marks a received frame free at once, so the next
// GetDescs hands the frame the worker is still reading back to the fill
// ring — the kernel may then overwrite it, or the same address ends up on
// two rings. Our tracker moves a received frame to OwnerWorker and never
// hands it out until Transmit (TestFramesOwnership, CheckFrames).
func TestAsavieHandsOutHeldFrames(t *testing.T) {
	l := newLab(t)
	c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40001))
	var held uint64
	var reissued bool
	l.in(l.nsA, func() {
		ifc, err := net.InterfaceByName(l.a)
		if err != nil {
			t.Error(err)
			return
		}
		prog, err := xdp.NewProgram(1)
		if err != nil {
			t.Error(err)
			return
		}
		defer prog.Close()
		if err := prog.Attach(ifc.Index); err != nil {
			t.Error(err)
			return
		}
		defer prog.Detach(ifc.Index)
		xsk, err := xdp.NewSocket(ifc.Index, 0, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer xsk.Close()
		if err := prog.Register(0, xsk.FD()); err != nil {
			t.Error(err)
			return
		}
		xsk.Fill(xsk.GetDescs(xsk.NumFreeFillSlots()))
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(l.vip, 5060))
			n, _, err := xsk.Poll(100)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				continue
			}
			rx := xsk.Receive(n)
			held = rx[0].Addr - rx[0].Addr%2048 // still being processed
			for _, d := range xsk.GetDescs(xdp.DefaultSocketOptions.NumFrames) {
				if d.Addr == held {
					reissued = true
				}
			}
			return
		}
		t.Error("nothing received through asavie/xdp")
	})
	if !reissued {
		t.Fatalf("asavie/xdp v0.3.3 no longer hands out the held frame %d; revisit the doc's list of fixes", held)
	}
}
