package afxdp

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
)

// blast sends n SIP INVITEs (1024 Call-IDs in turn) from c to dst with
// sendmmsg, 64 per call, and returns how long the sends took.
func blast(b *testing.B, c *net.UDPConn, dst netip.AddrPort, n int) {
	b.Helper()
	pc := ipv4.NewPacketConn(c)
	var msgs []ipv4.Message
	to := net.UDPAddrFromAddrPort(dst)
	for i := range 1024 {
		msgs = append(msgs, ipv4.Message{Buffers: [][]byte{craft.SIPInvite("bench-" + strconv.Itoa(i) + "@xvs")}, Addr: to})
	}
	for sent := 0; sent < n; {
		k := min(64, n-sent)
		off := sent % (1024 - 64)
		w, err := pc.WriteBatch(msgs[off:off+k], 0)
		if err != nil {
			b.Fatal(err)
		}
		sent += w
	}
}

// sink counts datagrams arriving on the sockets until stopped.
type sink struct {
	n    atomic.Int64
	last atomic.Int64
	wg   sync.WaitGroup
}

func (s *sink) start(conns ...*net.UDPConn) {
	for _, c := range conns {
		c.SetReadBuffer(4 << 20)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			pc := ipv4.NewPacketConn(c)
			ms := make([]ipv4.Message, 64)
			for i := range ms {
				ms[i].Buffers = [][]byte{make([]byte, 2048)}
			}
			for {
				n, err := pc.ReadBatch(ms, 0)
				if err != nil {
					return
				}
				s.n.Add(int64(n))
				s.last.Store(time.Now().UnixNano())
			}
		}()
	}
}

// measure sends b.N datagrams and reports the rate at which they arrived
// at the sink (packets/s over first send → last arrival) and the loss.
func measure(b *testing.B, s *sink, send func(n int)) {
	base := s.n.Load()
	b.ResetTimer()
	start := time.Now()
	send(b.N)
	for prev := int64(-1); ; {
		time.Sleep(100 * time.Millisecond)
		cur := s.n.Load()
		if cur-base >= int64(b.N) || cur == prev {
			break
		}
		prev = cur
	}
	b.StopTimer()
	got := s.n.Load() - base
	end := time.Unix(0, s.last.Load())
	if got > 0 && end.After(start) {
		b.ReportMetric(float64(got)/end.Sub(start).Seconds(), "pkt/s")
	}
	b.ReportMetric(100*float64(int64(b.N)-got)/float64(b.N), "loss%")
}

// BenchmarkVeth measures SIP datagrams per second from namespace B through
// namespace A's veth and back, two ways, in one run:
//
//	udp-socket-echo:  a plain UDP socket echo on A (the kernel's path);
//	afxdp-echo:       AF_XDP with a worker that only swaps addresses.
//
// The real pipeline on AF_XDP is measured by internal/daemon's
// BenchmarkRunner (beside the raw socket, in one run) and end to end by
// make bench-e2e.
//
// The generator (sendmmsg) and sinks (recvmmsg) share the machine's cores
// with the data plane, so compare the rows, not the absolute numbers.
//
//	go test -run '^$' -bench Veth -benchtime 200000x ./afxdp
func BenchmarkVeth(b *testing.B) {
	for _, mode := range []dataplane.XDPMode{dataplane.XDPNative, dataplane.XDPGeneric} {
		b.Run("udp-socket-echo/"+mode.String(), func(b *testing.B) {
			l := newLab(b)
			l.open(dataplane.Options{XDPMode: mode}) // attached, steering nothing
			srv := l.udp(l.nsA, netip.AddrPortFrom(l.aIP, 5060))
			srv.SetReadBuffer(4 << 20)
			go func() {
				pc := ipv4.NewPacketConn(srv)
				ms := make([]ipv4.Message, 64)
				for i := range ms {
					ms[i].Buffers = [][]byte{make([]byte, 2048)}
				}
				for {
					n, err := pc.ReadBatch(ms, 0)
					if err != nil {
						return
					}
					for i := range n {
						ms[i].Buffers[0] = ms[i].Buffers[0][:ms[i].N]
					}
					pc.WriteBatch(ms[:n], 0)
					for i := range n {
						ms[i].Buffers[0] = ms[i].Buffers[0][:2048]
					}
				}
			}()
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
			var s sink
			s.start(c)
			measure(b, &s, func(n int) { blast(b, c, netip.AddrPortFrom(l.aIP, 5060), n) })
		})
		b.Run("afxdp-echo/"+mode.String(), func(b *testing.B) {
			l := newLab(b)
			be := l.open(dataplane.Options{XDPMode: mode})
			if err := be.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: 17, Addr: l.vip, Port: 5060}}}); err != nil {
				b.Fatal(err)
			}
			stop := echo(be.Queues()[0])
			defer stop()
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
			var s sink
			s.start(c)
			measure(b, &s, func(n int) { blast(b, c, netip.AddrPortFrom(l.vip, 5060), n) })
			reportSyscalls(b, be.AFXDPQueues()[0])
		})
	}
}

func reportSyscalls(b *testing.B, q *Queue) {
	if rx := q.Stats().RxFrames; rx > 0 {
		b.ReportMetric(float64(q.Syscalls())/float64(rx), "syscalls/pkt")
	}
}

// BenchmarkWakeup counts the data path's system calls per packet with
// need_wakeup honoured (sendto only when the kernel sets the flag, ppoll
// only on an empty RX ring) against a queue that kicks after every TX batch
// the way a socket bound without XDP_USE_NEED_WAKEUP must (asavie/xdp's
// Transmit calls sendto on every call), on veth in generic mode. On a
// zero-copy driver the kernel clears the TX flag while its NAPI loop runs,
// so the gap widens; in copy mode the kernel transmits inside sendto, so
// both variants kick about once per batch.
//
//	go test -run '^$' -bench Wakeup -benchtime 100000x ./afxdp
func BenchmarkWakeup(b *testing.B) {
	for _, always := range []bool{false, true} {
		name := map[bool]string{false: "need_wakeup", true: "kick-every-batch"}[always]
		b.Run(name, func(b *testing.B) {
			l := newLab(b)
			be := l.open(dataplane.Options{XDPMode: dataplane.XDPGeneric})
			q := be.AFXDPQueues()[0]
			q.kickAlways = always
			if err := be.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: 17, Addr: l.vip, Port: 5060}}}); err != nil {
				b.Fatal(err)
			}
			stop := echo(q)
			defer stop()
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
			var s sink
			s.start(c)
			measure(b, &s, func(n int) { blast(b, c, netip.AddrPortFrom(l.vip, 5060), n) })
			reportSyscalls(b, q)
		})
	}
}
