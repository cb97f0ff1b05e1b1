package lab

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// A paced Flood over loopback (no namespace, no root): it keeps its rate,
// uses its sockets in turn, numbers the datagrams without a gap, and every
// datagram it counts as sent is one the kernel took.
func TestFloodPacedOverLoopback(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(4 << 20)
	var conns []*ipv4.PacketConn
	for range 2 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, ipv4.NewPacketConn(c))
	}
	const rate, d = 5000.0, 400 * time.Millisecond
	var next uint64
	perSock := make([]int, len(conns))
	f := Flood{Batch: 16, Rate: rate, To: rx.LocalAddr(), Fill: func(msgs []ipv4.Message, sock int, seq uint64) {
		if seq != next {
			t.Errorf("batch numbered %d, want %d", seq, next)
		}
		next += uint64(len(msgs))
		perSock[sock]++
		for i := range msgs {
			msgs[i].Buffers = [][]byte{[]byte("flood")}
		}
	}}
	sent, errs := f.Send(conns, time.Now(), d)
	if errs != 0 || sent != next {
		t.Fatalf("sent %d of %d filled, %d errors", sent, next, errs)
	}
	if want := rate * d.Seconds(); float64(sent) < 0.7*want || float64(sent) > 1.05*want+16 {
		t.Errorf("sent %d in %v, want about %.0f", sent, d, want)
	}
	if d := perSock[0] - perSock[1]; d < 0 || d > 1 {
		t.Errorf("batches per socket %v: not in turn", perSock)
	}
	got := 0
	rx.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	for uint64(got) < sent {
		if _, _, err := rx.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	if uint64(got) != sent {
		t.Errorf("received %d of %d", got, sent)
	}
}
