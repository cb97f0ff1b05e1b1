package rawsock

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
)

// TestRootRawTransmitCopies sends copies the test owns (more than one
// sendmmsg's worth, both families) from buffers it scribbles over after the
// call: they arrive at the real server intact; an empty frame is counted as
// dropped; the call does not allocate; after Close it reports ErrClosed.
func TestRootRawTransmitCopies(t *testing.T) {
	l, b := newLab(t, 1)
	real := l.Reals[0]
	srv, err := lab.ListenUDP(real.NS, ":5060")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lbMAC, err := lab.MAC(l.Balancer.NS, lab.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	realMAC, err := lab.MAC(real.NS, lab.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	q := b.Queues()[0].(dataplane.CopyTransmitter)
	frame := func(i, port int) []byte {
		src := netip.AddrPortFrom(l.Clients[0].Addr4, 5060)
		dst := netip.AddrPortFrom(real.Addr4, uint16(port))
		if i%2 == 1 {
			src = netip.AddrPortFrom(l.Clients[0].Addr6, 5060)
			dst = netip.AddrPortFrom(real.Addr6, uint16(port))
		}
		return craft.Spec{SrcMAC: lbMAC, DstMAC: realMAC, Src: src, Dst: dst, Payload: fmt.Appendf(nil, "copy %d", i)}.Build()
	}
	const n = dataplane.MaxBatch + 36 // two sendmmsg calls
	frames := make([][]byte, n+1)
	for i := range n {
		frames[i] = frame(i, 5060)
	}
	frames[n] = nil // empty: dropped
	sent, err := q.TransmitCopies(0, frames)
	if err != nil || sent != n {
		t.Fatalf("TransmitCopies: %d of %d sent, %v", sent, n, err)
	}
	for _, f := range frames {
		clear(f) // the kernel copied them out
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	seen := map[string]bool{}
	for len(seen) < n {
		k, _, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("real server got %d of %d copies: %v", len(seen), n, err)
		}
		seen[string(buf[:k])] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("copy %d", i)] {
			t.Fatalf("copy %d missing or changed", i)
		}
	}
	if st := b.Queues()[0].Stats(); st.TxFrames != n || st.TxDropped != 1 {
		t.Fatalf("stats %+v: want %d sent, 1 dropped", st, n)
	}
	few := [][]byte{frame(0, 9), frame(1, 9)} // to a port nobody listens on
	if a := testing.AllocsPerRun(100, func() { q.TransmitCopies(0, few) }); a != 0 {
		t.Errorf("TransmitCopies allocates %.1f times per call", a)
	}
	b.Close()
	if k, err := q.TransmitCopies(0, few); k != 0 || err != dataplane.ErrClosed {
		t.Errorf("TransmitCopies after Close: %d, %v", k, err)
	}
}
