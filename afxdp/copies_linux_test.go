package afxdp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// TestTransmitCopies sends thousands of copies (more than the UMEM has
// frames, so frames must come back through the completion ring) from
// buffers the test reuses and scribbles over after each call: they arrive
// at the peer intact, the ownership tracker stays exact throughout and
// quiescent at the end, frames that cannot be sent are counted, and the
// call does not allocate.
func TestTransmitCopies(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
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
				n, err := q.TransmitCopies(bufs[:k])
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
			if n, err := q.TransmitCopies([][]byte{{}, make([]byte, q.frameSize+1)}); n != 0 || err != nil {
				t.Fatalf("empty and oversized copies: %d sent, %v", n, err)
			}
			if s := q.Stats(); s.TxDropped-before.TxDropped != 2 || s.TxFrames != before.TxFrames {
				t.Fatalf("empty and oversized copies: stats %+v, before %+v", s, before)
			}

			// No allocation per call (to a port nobody listens on).
			frames := [][]byte{spec(0, 9), spec(1, 9), spec(2, 9)}
			if a := testing.AllocsPerRun(200, func() { q.TransmitCopies(frames) }); a != 0 {
				t.Errorf("TransmitCopies allocates %.1f times per call", a)
			}
			quiesce(t, q)
			if s := q.Stats(); s.TxDropped != 2 {
				t.Errorf("stats %+v: want 2 dropped", s)
			}
			b.Close()
			if n, err := q.TransmitCopies(frames); n != 0 || err != dataplane.ErrClosed {
				t.Errorf("TransmitCopies after Close: %d, %v", n, err)
			}
		})
	}
}

// packetSender opens an AF_PACKET socket on the lab's peer interface vb,
// for frames the test crafts itself (fragments in any order).
func (l *lab) packetSender() func(frame []byte) {
	l.t.Helper()
	var fd int
	var sa unix.SockaddrLinklayer
	var err error
	l.in(l.nsB, func() {
		var ifc *net.Interface
		if ifc, err = net.InterfaceByName(l.b); err != nil {
			return
		}
		sa = unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		copy(sa.Addr[:], l.aMAC)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { unix.Close(fd) })
	return func(frame []byte) {
		l.t.Helper()
		if err := unix.Sendto(fd, frame, 0, &sa); err != nil {
			l.t.Fatal(err)
		}
	}
}

// TestRunnerFragmentsOutOfOrder runs the pipeline on an AF_XDP queue and
// sends SIP INVITEs as IPv4 and IPv6 fragments with the later fragments
// first: they are held as copies until the first fragment decides the
// datagram, then leave through TransmitCopies. Every datagram reaches one
// real server whole (the kernel there reassembles it), and no emitted copy
// goes unsent.
func TestRunnerFragmentsOutOfOrder(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t)
			for _, a := range []string{"fd77::3/64", "fd77::4/64"} {
				run(t, "ip", "-n", l.nsB, "-6", "addr", "add", a, "dev", l.b, "nodad")
			}
			b := l.open(dataplane.Options{XDPMode: mode})
			cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
			if err != nil {
				t.Fatal(err)
			}
			text := "-A -u 10.77.0.100:5060 -s rr -p 60 --pe sip -o\n-a -u 10.77.0.100:5060 -r 10.77.0.3:5060 -m\n-a -u 10.77.0.100:5060 -r 10.77.0.4:5060 -m\n" +
				"-A -u [fd77::100]:5060 -s rr -p 60 --pe sip -o\n-a -u [fd77::100]:5060 -r [fd77::3]:5060 -m\n-a -u [fd77::100]:5060 -r [fd77::4]:5060 -m\n"
			if err := rules.Read(cfg, strings.NewReader(text), "t"); err != nil {
				t.Fatal(err)
			}
			var mac [6]byte
			copy(mac[:], l.bMAC)
			for _, svc := range cfg.Snapshot().Services() {
				for _, d := range svc.Dests {
					if err := cfg.SetNextHop(svc.Key, d.Addr, mac); err != nil {
						t.Fatal(err)
					}
				}
			}
			var snap atomic.Pointer[ipvs.Snapshot]
			snap.Store(cfg.Snapshot())
			if err := b.Update(dataplane.FilterOf(snap.Load())); err != nil {
				t.Fatal(err)
			}
			w, err := pipeline.NewWorker(pipeline.Options{Config: &snap, Templates: 1 << 12, Conns: 1 << 12})
			if err != nil {
				t.Fatal(err)
			}
			r := &dataplane.Runner{Queue: b.Queues()[0], Worker: w}
			r.Prepare()
			runErr := make(chan error, 1)
			go func() { runErr <- r.Run() }()

			// The real servers: whole datagrams, by Call-ID and server.
			type arrival struct{ server, msg string }
			var mu sync.Mutex
			got := map[string][]arrival{}
			var wg sync.WaitGroup
			for _, rs := range []string{"10.77.0.3:5060", "10.77.0.4:5060", "[fd77::3]:5060", "[fd77::4]:5060"} {
				c := l.udp(l.nsB, netip.MustParseAddrPort(rs))
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 8192)
					for {
						c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
						n, _, err := c.ReadFromUDPAddrPort(buf)
						if err != nil {
							return
						}
						msg := string(buf[:n])
						id := msg[strings.Index(msg, "Call-ID: ")+9:]
						id = id[:strings.IndexByte(id, '\r')]
						mu.Lock()
						got[id] = append(got[id], arrival{rs, msg})
						mu.Unlock()
					}
				}()
			}

			send := l.packetSender()
			want := map[string]string{}
			const calls = 20
			for i := range calls {
				for _, fam := range []struct {
					name     string
					src, vip netip.AddrPort
				}{
					{"v4", netip.MustParseAddrPort("10.77.0.50:5060"), netip.AddrPortFrom(l.vip, 5060)},
					{"v6", netip.MustParseAddrPort("[fd77::50]:5060"), netip.AddrPortFrom(l.vip6, 5060)},
				} {
					id := fmt.Sprintf("frag-%s-%d@xvs", fam.name, i)
					inv := craft.SIPInvite(id)
					want[id] = string(inv)
					s := craft.Spec{Src: fam.src, Dst: fam.vip, Payload: inv, ID: uint32(1000 + i)}
					copy(s.SrcMAC[:], l.bMAC)
					copy(s.DstMAC[:], l.aMAC)
					frags := craft.Fragment(s, 256)
					if len(frags) < 3 {
						t.Fatalf("%d fragments", len(frags))
					}
					// Later fragments first, the first last; every other
					// datagram with pauses, so that the copies are held
					// across batches as well as within one.
					for k := len(frags) - 1; k >= 0; k-- {
						send(frags[k])
						if i%2 == 1 {
							time.Sleep(2 * time.Millisecond)
						}
					}
				}
				time.Sleep(time.Millisecond)
			}
			wg.Wait()
			for id, msg := range want {
				a := got[id]
				if len(a) != 1 {
					t.Errorf("%s arrived %d times (%+v); want once", id, len(a), a)
					continue
				}
				if a[0].msg != msg {
					t.Errorf("%s arrived changed", id)
				}
				if strings.HasPrefix(id, "frag-v4") != strings.HasPrefix(a[0].server, "10.") {
					t.Errorf("%s reached %s", id, a[0].server)
				}
			}
			c := w.Counters()
			if c.Frag.Emitted == 0 || c.Frag.Unsent != 0 {
				t.Errorf("fragment counters %+v: want copies emitted, none unsent", c.Frag)
			}
			b.Close()
			if err := <-runErr; err != nil {
				t.Fatalf("Runner: %v", err)
			}
			if s := b.Queues()[0].Stats(); s.TxDropped != 0 {
				t.Errorf("queue stats %+v", s)
			}
		})
	}
}
