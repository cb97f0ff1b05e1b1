package afxdp

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// sipLab configures a SIP service on the lab's VIP, NAT to the two real
// servers in namespace B, and starts a dataplane.Runner with a pipeline
// worker on the backend's queue.
func sipLab(t testing.TB, l *lab, b *Backend) (*dataplane.Runner, chan error) {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	text := "-A -u 10.77.0.100:5060 -s rr -p 60 --pe sip -o\n-a -u 10.77.0.100:5060 -r 10.77.0.3:5060 -m\n-a -u 10.77.0.100:5060 -r 10.77.0.4:5060 -m\n"
	if err := rules.Read(cfg, strings.NewReader(text), "t"); err != nil {
		t.Fatal(err)
	}
	svc := cfg.Snapshot().Services()[0]
	var mac [6]byte
	copy(mac[:], l.bMAC)
	for _, d := range svc.Dests {
		if err := cfg.SetNextHop(svc.Key, d.Addr, mac); err != nil {
			t.Fatal(err)
		}
	}
	var snap atomic.Pointer[ipvs.Snapshot]
	snap.Store(cfg.Snapshot())
	if err := b.Update(dataplane.FilterOf(snap.Load())); err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(pipeline.Options{Config: &snap, Templates: 1 << 16, Conns: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	r := &dataplane.Runner{Queue: b.Queues()[0], Worker: w}
	r.Prepare()
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	return r, done
}

// TestRunnerSIP runs the real pipeline (SIP persistence engine, NAT) on an
// AF_XDP queue: every datagram of a call reaches the same real server, the
// calls spread over both, and the frame-ownership invariant holds after.
func TestRunnerSIP(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t)
			b := l.open(dataplane.Options{XDPMode: mode})
			_, done := sipLab(t, l, b)
			rs := []*struct {
				addr netip.Addr
				got  map[string]int
			}{{addr: l.rs1, got: map[string]int{}}, {addr: l.rs2, got: map[string]int{}}}
			client := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
			conns := [2]interface {
				ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
				SetReadDeadline(time.Time) error
			}{l.udp(l.nsB, netip.AddrPortFrom(l.rs1, 5060)), l.udp(l.nsB, netip.AddrPortFrom(l.rs2, 5060))}
			const calls = 200
			var mu sync.Mutex
			total := 0
			var wg sync.WaitGroup
			for k, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 4096)
					for {
						c.SetReadDeadline(time.Now().Add(time.Second))
						n, _, err := c.ReadFromUDPAddrPort(buf)
						if err != nil {
							return
						}
						msg := string(buf[:n])
						j := strings.Index(msg, "Call-ID: ")
						if j < 0 {
							t.Errorf("no Call-ID in %q", msg)
							return
						}
						id := msg[j+9:]
						id = id[:strings.IndexByte(id, '\r')]
						mu.Lock()
						rs[k].got[id]++
						total++
						mu.Unlock()
					}
				}()
			}
			vip := netip.AddrPortFrom(l.vip, 5060)
			var sent int
			for i := range calls {
				id := "call-" + itoa(i) + "@xvs"
				for _, m := range [][]byte{craft.SIPInvite(id), craft.SIPAck(id), craft.SIPBye(id)} {
					if _, err := client.WriteToUDPAddrPort(m, vip); err != nil {
						t.Fatal(err)
					}
					sent++
				}
				if i%16 == 15 {
					time.Sleep(time.Millisecond) // keep the real servers' socket buffers from overflowing
				}
			}
			wg.Wait()
			// A datagram may be lost on the veth under load; the harness
			// accepts 1% (the product counts, it does not retry).
			if total < sent*99/100 {
				t.Fatalf("real servers got %d of %d datagrams; queue %+v", total, sent, b.Queues()[0].Stats())
			}
			for id := range rs[0].got {
				if rs[1].got[id] > 0 {
					t.Fatalf("call %s reached both real servers", id)
				}
			}
			if len(rs[0].got) < calls/4 || len(rs[1].got) < calls/4 {
				t.Fatalf("calls per real server %d and %d: not balanced", len(rs[0].got), len(rs[1].got))
			}
			b.Close()
			if err := <-done; err != nil {
				t.Fatalf("Runner: %v", err)
			}
		})
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}
