package lab

import (
	"net"
	"time"

	"golang.org/x/net/ipv4"
)

// Flood pacing.
const (
	// floodBackoff is the pause after a failed sendmmsg (ENOBUFS: the
	// veth queue is full): long enough for it to drain a little, short
	// enough not to leave it idle.
	floodBackoff = 50 * time.Microsecond
	// floodMinWait is the shortest pause of a paced flood that is ahead
	// of its rate (shorter sleeps cost more than they pace).
	floodMinWait = 20 * time.Microsecond
)

// Flood sends UDP datagrams in sendmmsg batches: the traffic generator of
// the lab benchmark (perf) and of the robustness floods. One Flood value
// serves one sending goroutine.
type Flood struct {
	// Batch is how many datagrams one sendmmsg carries (a paced flood
	// sends fewer when fewer are due).
	Batch int
	// Rate is datagrams per second; 0 sends as fast as the sockets take
	// them.
	Rate float64
	// To is the destination for unconnected sockets; nil for connected
	// ones.
	To net.Addr
	// Fill sets the Buffers of the next batch, msgs, which leaves from
	// socket conns[sock]; seq numbers its first datagram (the count of
	// datagrams filled before it). msgs keep what Fill put there from one
	// batch to the next.
	Fill func(msgs []ipv4.Message, sock int, seq uint64)
}

// Send sends from conns, in turn, until d has passed since start. It
// returns how many datagrams the kernel took and how many sendmmsg calls
// failed (after a failure it pauses briefly and goes on).
func (f Flood) Send(conns []*ipv4.PacketConn, start time.Time, d time.Duration) (sent, errs uint64) {
	msgs := make([]ipv4.Message, f.Batch)
	for i := range msgs {
		msgs[i].Addr = f.To
	}
	var seq uint64
	for sock := 0; ; {
		el := time.Since(start)
		if el >= d {
			return sent, errs
		}
		n := f.Batch
		if f.Rate > 0 {
			due := int64(el.Seconds() * f.Rate)
			if int64(sent) >= due {
				wait := time.Duration(float64(time.Second) * float64(min(int64(f.Batch), 1+int64(sent)-due)) / f.Rate)
				time.Sleep(max(wait, floodMinWait))
				continue
			}
			n = int(min(int64(f.Batch), due-int64(sent)))
		}
		f.Fill(msgs[:n], sock, seq)
		seq += uint64(n)
		w, err := conns[sock].WriteBatch(msgs[:n], 0)
		sent += uint64(max(w, 0))
		if err != nil {
			errs++
			time.Sleep(floodBackoff)
		}
		sock = (sock + 1) % len(conns)
	}
}
