package rawsock

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
)

// newLab builds a lab (skipping only without root) and opens the raw
// backend on the balancer's interface.
func newLab(t *testing.T, queues int) (*lab.Lab, *Backend) {
	t.Helper()
	l := testenv.Lab(t, lab.Spec{RealServers: 2})
	var b *Backend
	if err := l.Do(l.Balancer.NS, func() (err error) {
		b, err = Open(dataplane.Options{Iface: lab.HostIface, Queues: queues})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.Mode().String() != "raw" || len(b.Queues()) != queues {
		t.Fatalf("mode %q, %d queues", b.Mode(), len(b.Queues()))
	}
	return l, b
}

// send sends each payload as one UDP datagram from a client to dst.
func send(t *testing.T, l *lab.Lab, dst netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	c, err := lab.ListenUDP(l.Clients[0].NS, ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range payloads {
		if _, err := c.WriteToUDPAddrPort(p, dst); err != nil {
			t.Fatal(err)
		}
	}
}

// receive collects frames from all queues until want frames or timeout; it
// returns them (copied) and the largest batch seen.
func receive(t *testing.T, b *Backend, want int, timeout time.Duration) (frames [][]byte, maxBatch int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	batch := dataplane.NewBatch(0)
	for len(frames) < want && time.Now().Before(deadline) {
		for _, q := range b.Queues() {
			if err := q.Receive(batch, 20*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if batch.Link != packet.LinkEthernet {
				t.Fatalf("link type %v", batch.Link)
			}
			maxBatch = max(maxBatch, batch.N)
			for i := range batch.N {
				frames = append(frames, append([]byte(nil), batch.Frames[i]...))
			}
			if err := q.Transmit(batch); err != nil { // recycle
				t.Fatal(err)
			}
		}
	}
	return frames, maxBatch
}

func dsts(t *testing.T, frames [][]byte) map[netip.AddrPort]int {
	var p packet.Parsed
	out := map[netip.AddrPort]int{}
	for _, f := range frames {
		if r := p.Decode(f, packet.LinkEthernet); r != packet.ReasonOK {
			t.Fatalf("received frame does not decode: %v", r)
		}
		if !p.VerifyChecksums(f) {
			t.Fatal("received frame with a bad checksum")
		}
		out[netip.AddrPortFrom(p.Dst, p.DstPort)]++
	}
	return out
}

func TestRootRawReceiveFilterUpdate(t *testing.T) {
	l, b := newLab(t, 1)
	vip4 := netip.AddrPortFrom(l.VIP4, 5060)
	vip6 := netip.AddrPortFrom(l.VIP6, 5060)
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{
		{Protocol: packet.ProtoUDP, Addr: l.VIP4, Port: 5060},
		{Protocol: packet.ProtoUDP, Addr: l.VIP6, Port: 5060},
	}}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var payloads [][]byte
	for i := range n {
		payloads = append(payloads, craft.SIPInvite(fmt.Sprintf("call-%d", i)))
	}
	// Traffic the workers must not see: another port of the VIP, the
	// balancer's own address, ICMP.
	send(t, l, netip.AddrPortFrom(l.VIP4, 5061), []byte("not ours"))
	send(t, l, netip.AddrPortFrom(l.Balancer.Addr4, 5060), []byte("not ours"))
	if _, err := l.Output(l.Clients[0].NS, "ping", "-c1", "-W1", l.Balancer.Addr4.String()); err != nil {
		t.Fatal(err)
	}
	send(t, l, vip4, payloads...)
	send(t, l, vip6, payloads...)
	frames, maxBatch := receive(t, b, 2*n, 5*time.Second)
	got := dsts(t, frames)
	if len(frames) != 2*n || got[vip4] != n || got[vip6] != n {
		t.Fatalf("received %d frames %v, want %d to each of %v and %v", len(frames), got, n, vip4, vip6)
	}
	if maxBatch < 2 {
		t.Errorf("largest batch %d: frames waiting together must be received together", maxBatch)
	}
	if st := b.Queues()[0].Stats(); st.RxFrames != 2*n || st.Recycled != 2*n {
		t.Errorf("stats %+v", st)
	}

	// Update: now only port 5061 is ours.
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.VIP4, Port: 5061}}}); err != nil {
		t.Fatal(err)
	}
	send(t, l, vip4, []byte("old port"))
	send(t, l, netip.AddrPortFrom(l.VIP4, 5061), []byte("new port"))
	frames, _ = receive(t, b, 2, time.Second) // waits the full second: nothing else may come
	got = dsts(t, frames)
	if len(frames) != 1 || got[netip.AddrPortFrom(l.VIP4, 5061)] != 1 {
		t.Fatalf("after Update received %v, want one frame to port 5061", got)
	}
}

func TestRootRawTransmit(t *testing.T) {
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
	batch := dataplane.NewBatch(packet.LinkEthernet)
	q := b.Queues()[0]
	// Frames the test owns, as a worker's rewritten frames would be.
	const n = 10
	for i := range n {
		src := netip.AddrPortFrom(l.Clients[0].Addr4, 5060)
		dst := netip.AddrPortFrom(real.Addr4, 5060)
		if i%2 == 1 {
			src = netip.AddrPortFrom(l.Clients[0].Addr6, 5060)
			dst = netip.AddrPortFrom(real.Addr6, 5060)
		}
		batch.Frames[i] = craft.Spec{SrcMAC: lbMAC, DstMAC: realMAC, Src: src, Dst: dst, Payload: []byte(fmt.Sprintf("frame %d", i))}.Build()
		batch.Send[i] = true
	}
	batch.N = n
	if err := q.Transmit(batch); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	seen := map[string]bool{}
	for len(seen) < n {
		k, _, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("real server got %d of %d frames: %v", len(seen), n, err)
		}
		seen[string(buf[:k])] = true
	}
	if st := q.Stats(); st.TxFrames != n || st.TxDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(dataplane.Options{Iface: "xvs-no-such0"}); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("unknown interface: %v", err)
	}
	if _, err := dataplane.Open("raw", dataplane.Options{Iface: "xvs-no-such0"}); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("through the registry: %v", err)
	}
	if _, err := Open(dataplane.Options{}); err == nil {
		t.Fatal("no interface: no error")
	}
}

// header returns the value of the first header called name in a SIP message.

// TestRootRawTwoLegs: the raw backend serves both legs of a two-legged
// balancer: a client's datagram to the VIP arrives on the client leg (port
// 1), and sent out of the server leg (port 0) rewritten for a real server,
// it reaches the real server.
func TestRootRawTwoLegs(t *testing.T) {
	l := testenv.Lab(t, lab.Spec{RealServers: 1, Legs: 2})
	var b *Backend
	if err := l.Do(l.Balancer.NS, func() (err error) {
		b, err = Open(dataplane.Options{Ifaces: l.Ifaces})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.VIP4, Port: 5060}}}); err != nil {
		t.Fatal(err)
	}
	real := l.Reals[0]
	srv, err := lab.ListenUDP(real.NS, ":5060")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	lbMAC, _ := lab.MAC(l.Balancer.NS, lab.HostIface)
	realMAC, _ := lab.MAC(real.NS, lab.HostIface)
	send(t, l, netip.AddrPortFrom(l.VIP4, 5060), []byte("across"))
	q := b.Queues()[0]
	batch := dataplane.NewBatch(0)
	got := false
	for deadline := time.Now().Add(5 * time.Second); !got && time.Now().Before(deadline); {
		if err := q.Receive(batch, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		var p packet.Parsed
		for i := range batch.N {
			f := batch.Frames[i]
			if p.Decode(f, packet.LinkEthernet) != packet.ReasonOK || p.Dst != l.VIP4 {
				continue
			}
			if batch.Port[i] != 1 {
				t.Errorf("the client's datagram arrived on port %d, want 1 (the client leg)", batch.Port[i])
			}
			p.SetDst(f, real.Addr4, 5060)
			packet.SetSrcMAC(f, lbMAC)
			packet.SetDstMAC(f, realMAC)
			batch.Port[i], batch.Send[i] = 0, true
			got = true
		}
		if err := q.Transmit(batch); err != nil {
			t.Fatal(err)
		}
	}
	if !got {
		t.Fatal("nothing received on the client leg")
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "across" {
		t.Fatalf("real server: %q %v", buf[:n], err)
	}
}
