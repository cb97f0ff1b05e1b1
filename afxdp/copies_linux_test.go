package afxdp

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
)

// TestTransmitCopies sends thousands of copies (more than the UMEM has
// frames, so frames must come back through the completion ring) from
// buffers the test reuses and scribbles over after each call: they arrive
// at the peer intact, the ownership tracker stays exact throughout and
// quiescent at the end, frames that cannot be sent are counted, and the
// call does not allocate.
func TestTransmitCopies(t *testing.T) {
	for _, mode := range []dataplane.XDPMode{dataplane.XDPNative, dataplane.XDPGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			b := l.open(dataplane.Options{XDPMode: mode})
			q := b.AFXDPQueues()[0]
			peer := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 9000))
			var got sync.Map
			var received atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 2048)
				for {
					peer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					n, _, err := peer.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if _, dup := got.LoadOrStore(string(buf[:n]), true); !dup {
						received.Add(1)
					}
				}
			}()
			spec := func(i int, dport uint16) []byte {
				s := craft.Spec{Src: netip.AddrPortFrom(l.aIP, 9001), Dst: netip.AddrPortFrom(l.bIP, dport), Payload: fmt.Appendf(nil, "copy-%05d", i)}
				copy(s.SrcMAC[:], l.aMAC)
				copy(s.DstMAC[:], l.bMAC)
				return s.Build()
			}
			const total, batch = 6000, 50
			bufs := make([][]byte, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 0, 128)
			}
			sent := 0
			for sent < total {
				k := min(batch, total-sent)
				for j := range k {
					bufs[j] = append(bufs[j][:0], spec(sent+j, 9000)...)
				}
				n, err := q.TransmitCopies(0, bufs[:k])
				if err != nil || n != k {
					t.Fatalf("TransmitCopies: %d of %d, %v; stats %+v", n, k, err, q.Stats())
				}
				for j := range k {
					clear(bufs[j]) // borrowed for the call only
				}
				sent += k
				if err := q.CheckFrames(false); err != nil {
					t.Fatalf("after %d copies: %v", sent, err)
				}
				// Keep the peer's socket buffer from overflowing.
				for deadline := time.Now().Add(time.Second); int(received.Load()) < sent-64 && time.Now().Before(deadline); {
					time.Sleep(100 * time.Microsecond)
				}
			}
			<-done
			// The harness tolerates the odd loss on the veth under load.
			if r := received.Load(); r < total*99/100 {
				t.Fatalf("peer got %d of %d copies; stats %+v", r, total, q.Stats())
			}
			got.Range(func(k, _ any) bool {
				if !strings.HasPrefix(k.(string), "copy-") {
					t.Fatalf("peer got %q", k)
				}
				return true
			})

			// Frames that cannot be copied are counted, not sent.
			before := q.Stats()
			if n, err := q.TransmitCopies(0, [][]byte{{}, make([]byte, q.frameSize+1)}); n != 0 || err != nil {
				t.Fatalf("empty and oversized copies: %d sent, %v", n, err)
			}
			if s := q.Stats(); s.TxDropped-before.TxDropped != 2 || s.TxFrames != before.TxFrames {
				t.Fatalf("empty and oversized copies: stats %+v, before %+v", s, before)
			}

			// No allocation per call (to a port nobody listens on).
			frames := [][]byte{spec(0, 9), spec(1, 9), spec(2, 9)}
			if a := testing.AllocsPerRun(200, func() { q.TransmitCopies(0, frames) }); a != 0 {
				t.Errorf("TransmitCopies allocates %.1f times per call", a)
			}
			quiesce(t, q)
			if s := q.Stats(); s.TxDropped != 2 {
				t.Errorf("stats %+v: want 2 dropped", s)
			}
			b.Close()
			if n, err := q.TransmitCopies(0, frames); n != 0 || err != dataplane.ErrClosed {
				t.Errorf("TransmitCopies after Close: %d, %v", n, err)
			}
		})
	}
}
