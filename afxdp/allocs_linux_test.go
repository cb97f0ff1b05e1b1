package afxdp

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// The worker's side of the queue allocates nothing: a receive, the
// rewrite and a transmit of real frames, and the timed wait on an empty
// ring, interrupt-driven and busy polling. The frames are sent before the measurement (the
// sender's own allocations would count: AllocsPerRun counts the process).
func TestWorkerLoopAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    dataplane.Options
	}{
		{"native", dataplane.Options{XDPMode: dataplane.XDPNative}},
		{"generic", dataplane.Options{XDPMode: dataplane.XDPGeneric}},
		{"native-busy-poll", dataplane.Options{XDPMode: dataplane.XDPNative, BusyPoll: 50 * time.Microsecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			be := l.open(tc.o)
			if err := be.BusyPollErr(); tc.o.BusyPoll > 0 && err != nil {
				t.Fatalf("busy polling refused: %v", err)
			}
			if err := be.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: 17, Addr: l.vip, Port: 5060}}}); err != nil {
				t.Fatal(err)
			}
			q := be.Queues()[0]
			server := netip.AddrPortFrom(l.rs1, 5060)
			sinkConn := l.udp(l.nsB, server)
			sinkConn.SetReadBuffer(4 << 20) // holds all of them until read
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
			var mac, peer [6]byte
			copy(mac[:], l.aMAC)
			copy(peer[:], l.bMAC)
			b := dataplane.NewBatch(0)
			var p packet.Parsed
			forwarded := 0
			step := func() {
				if err := q.Receive(b, 20*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				for i := range b.N {
					f := b.Frames[i]
					b.Send[i] = p.Decode(f, packet.LinkEthernet) == packet.ReasonOK && p.Dst == l.vip && p.SetDst(f, server.Addr(), server.Port())
					packet.SetSrcMAC(f, mac)
					packet.SetDstMAC(f, peer)
					b.Port[i] = 0
				}
				forwarded += b.N
				q.Transmit(b)
			}
			const runs, perRun = 50, 16
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.vip, 5060))
			for i := range (runs + 1) * perRun {
				if _, err := c.WriteTo(craft.SIPInvite("allocs-"+strconv.Itoa(i)+"@xvs"), to); err != nil {
					t.Fatal(err)
				}
			}
			// Once everything sent is forwarded, the remaining runs wait
			// on the empty ring.
			if a := testing.AllocsPerRun(runs, step); a != 0 {
				t.Errorf("%v allocations per receive, rewrite and transmit", a)
			}
			if forwarded == 0 {
				t.Fatal("nothing received: the measurement saw no frames")
			}
			got := 0
			sinkConn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 2048)
			for got < forwarded {
				if _, err := sinkConn.Read(buf); err != nil {
					break
				}
				got++
			}
			if got != forwarded {
				t.Fatalf("forwarded %d frames, the real server received %d", forwarded, got)
			}
			t.Logf("%d frames forwarded in %d runs, %d received", forwarded, runs+1, got)
		})
	}
}
