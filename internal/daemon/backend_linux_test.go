package daemon

// The Runner with the real pipeline on the real backends, in a lab. These
// tests live here, beside the Runner, rather than in the backends' packages,
// so that afxdp and internal/rawsock build and test without the engine.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/afxdp"
	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rawsock"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// backendCase is a backend to run the pipeline on.
type backendCase struct {
	name   string
	queues int
	open   func(dataplane.Options) (dataplane.Backend, error)
}

func openAFXDP(o dataplane.Options) (dataplane.Backend, error) { return afxdp.Open(o) }

func openRaw(o dataplane.Options) (dataplane.Backend, error) { return rawsock.Open(o) }

var labBackends = []backendCase{
	{"raw", 2, openRaw},
	{"afxdp-native", 1, func(o dataplane.Options) (dataplane.Backend, error) {
		o.XDPMode = dataplane.XDPNative
		return openAFXDP(o)
	}},
	{"afxdp-generic", 1, func(o dataplane.Options) (dataplane.Backend, error) {
		o.XDPMode = dataplane.XDPGeneric
		return openAFXDP(o)
	}},
}

// newLab builds a lab with two real servers, skipping only without root.
func newLab(t testing.TB) *lab.Lab {
	t.Helper()
	return testenv.Lab(t, lab.Spec{RealServers: 2})
}

// natSIP is a SIP service (-o, rr, Call-ID persistence) on the lab's IPv4
// VIP, NAT to every real server: its VIP and rules.
func natSIP(l *lab.Lab) (netip.AddrPort, string) {
	vip := netip.AddrPortFrom(l.VIP4, 5060)
	var r strings.Builder
	fmt.Fprintf(&r, "-A -u %v -s rr -p 60 -M 0.0.0.0 --pe sip -o\n", vip)
	for _, h := range l.Reals {
		fmt.Fprintf(&r, "-a -u %v -r %v:5060 -m\n", vip, h.Addr4)
	}
	return vip, r.String()
}

// backendLab builds a lab (skipping only without root or without AF_XDP in
// the kernel) and opens the backend on the balancer's interface.
func backendLab(t testing.TB, bc backendCase) (*lab.Lab, dataplane.Backend) {
	t.Helper()
	l := newLab(t)
	var b dataplane.Backend
	err := l.Do(l.Balancer.NS, func() (err error) {
		b, err = bc.open(dataplane.Options{Iface: lab.HostIface, Queues: bc.queues})
		return err
	})
	if errors.Is(err, afxdp.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return l, b
}

// labRunners loads rules (NAT to the lab's real servers), resolves the real
// servers' MACs, steers the backend and starts one Runner per queue, with a
// shared template index and the router as next hop towards clients.
func labRunners(t testing.TB, l *lab.Lab, b dataplane.Backend, text string) ([]*Runner, chan error) {
	t.Helper()
	queues := b.Queues()
	cfg, err := ipvs.New(ipvs.Options{Workers: len(queues), PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(text), "test"); err != nil {
		t.Fatal(err)
	}
	hops := labHops(t, l)
	snap := new(atomic.Pointer[ipvs.Snapshot])
	snap.Store(cfg.Snapshot())
	if err := b.Update(FilterOf(snap.Load())); err != nil {
		t.Fatal(err)
	}
	shared, err := table.NewShared(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	var runners []*Runner
	done := make(chan error, len(queues))
	for i, q := range queues {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: snap, Templates: 1 << 12, Conns: 1 << 12, Seed: 1, Shared: shared, Hops: hops})
		if err != nil {
			t.Fatal(err)
		}
		run := &Runner{Queue: q, Worker: w, PollTimeout: 10 * time.Millisecond}
		run.Prepare()
		runners = append(runners, run)
		go func() { done <- run.Run() }()
	}
	return runners, done
}

// labHops is the balancer's next-hop table, filled by hand as the
// neighbour watcher would: the server LAN on-link on the balancer's
// interface (port 0), the client LAN behind the router, every real
// server's and the router's MAC.
func labHops(t testing.TB, l *lab.Lab) *nexthop.Table {
	t.Helper()
	tbl, err := nexthop.New(nexthop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ifindex int
	var mac [6]byte
	if err := l.Do(l.Balancer.NS, func() error {
		ifi, err := net.InterfaceByName(lab.HostIface)
		if err == nil {
			ifindex = ifi.Index
			copy(mac[:], ifi.HardwareAddr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.SetPorts([]nexthop.PortInfo{{Name: lab.HostIface, Ifindex: ifindex, MAC: mac}}); err != nil {
		t.Fatal(err)
	}
	tbl.SetRoutes([]nexthop.Route{
		{Dst: lab.ServerNet4, Paths: []nexthop.Path{{Ifindex: ifindex}}},
		{Dst: lab.ServerNet6, Paths: []nexthop.Path{{Ifindex: ifindex}}},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Paths: []nexthop.Path{{Ifindex: ifindex, Gateway: l.Router.Addr4}}},
		{Dst: netip.MustParsePrefix("::/0"), Paths: []nexthop.Path{{Ifindex: ifindex, Gateway: l.Router.Addr6}}},
	})
	for _, h := range append([]lab.Host{l.Router}, l.Reals...) {
		m, err := lab.MAC(h.NS, h.Iface)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{h.Addr4, h.Addr6} {
			if _, err := tbl.SetNeighbour(ifindex, a, m, nexthop.NeighReachable); err != nil {
				t.Fatal(err)
			}
		}
	}
	tbl.Flush(false)
	return tbl
}

// stopRunners closes the backend and checks that every Runner ended cleanly.
func stopRunners(t testing.TB, b dataplane.Backend, runners []*Runner, done chan error) {
	t.Helper()
	b.Close()
	for range runners {
		if err := <-done; err != nil {
			t.Fatalf("Runner: %v", err)
		}
	}
}

// TestRootRunnerForwardsSIP runs the real worker loop on each backend with
// NAT: a client's SIP datagrams to the VIP reach the real server chosen for
// their Call-ID, the calls spread over both servers, and the servers'
// answers come back from the VIP.
func TestRootRunnerForwardsSIP(t *testing.T) {
	for _, bc := range labBackends {
		t.Run(bc.name, func(t *testing.T) {
			l, b := backendLab(t, bc)
			vip, rules := natSIP(l)
			runners, done := labRunners(t, l, b, rules)

			// Real servers answer every request with a SIP response carrying
			// its Call-ID (so the engine can translate it under -o) and their
			// name.
			for _, h := range l.Reals {
				srv, err := lab.ListenUDP(h.NS, ":5060")
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				go func() {
					buf := make([]byte, 4096)
					for {
						n, from, err := srv.ReadFromUDPAddrPort(buf)
						if err != nil {
							return
						}
						_, headers, _ := strings.Cut(string(buf[:n]), "\r\n")
						srv.WriteToUDPAddrPort([]byte("SIP/2.0 200 OK\r\nX-Served-By: "+h.Role+"\r\n"+headers), from)
					}
				}()
			}
			c, err := lab.ListenUDP(l.Clients[0].NS, l.Clients[0].Addr4.String()+":5060")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const calls, perCall = 12, 3
			for round := range perCall {
				for i := range calls {
					d := craft.DefaultDialog(fmt.Sprintf("call-%d@lab", i))
					msg := [][]byte{d.Invite(), d.Ack(), d.Bye()}[round]
					if _, err := c.WriteToUDPAddrPort(msg, vip); err != nil {
						t.Fatal(err)
					}
				}
			}
			where := map[string]string{}
			servers := map[string]int{}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			for range calls * perCall {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					for i, run := range runners {
						run.Do(t.Context(), func(w *pipeline.Worker) { t.Logf("worker %d: %+v", i, w.Counters()) })
						t.Logf("queue %d: %+v", i, b.Queues()[i].Stats())
					}
					t.Fatalf("answers %d of %d: %v (where %v)", len(where), calls*perCall, err, where)
				}
				if from != vip {
					t.Fatalf("answer from %v, want the VIP %v (NAT reply not translated)", from, vip)
				}
				server, id := sipHeader(buf[:n], "X-Served-By"), sipHeader(buf[:n], "Call-ID")
				if prev, ok := where[id]; ok && prev != server {
					t.Fatalf("%s answered by %s and %s", id, prev, server)
				}
				if _, ok := where[id]; !ok {
					servers[server]++
				}
				where[id] = server
			}
			if len(where) != calls || len(servers) != len(l.Reals) {
				t.Fatalf("calls %d over servers %v: want %d calls over all %d servers", len(where), servers, calls, len(l.Reals))
			}
			stopRunners(t, b, runners, done)
		})
	}
}

// sipHeader returns the value of header name in SIP message msg ("" for none).
func sipHeader(msg []byte, name string) string {
	for _, line := range strings.Split(string(msg), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestRootRunnerFragmentsOutOfOrder runs the pipeline on each backend and
// sends SIP INVITEs as IPv4 and IPv6 fragments with the later fragments
// first: they are held as copies until the first fragment decides the
// datagram, then leave through the queue's TransmitCopies. Every datagram
// reaches one real server whole (the kernel there reassembles it), in the
// family it was sent in, and no emitted copy goes unsent.
func TestRootRunnerFragmentsOutOfOrder(t *testing.T) {
	for _, bc := range labBackends {
		t.Run(bc.name, func(t *testing.T) {
			bc.queues = 1 // every fragment on one worker (the raw backend's fanout would do that too)
			l, b := backendLab(t, bc)
			var r strings.Builder
			for _, vip := range []netip.AddrPort{netip.AddrPortFrom(l.VIP4, 5060), netip.AddrPortFrom(l.VIP6, 5060)} {
				fmt.Fprintf(&r, "-A -u %v -s rr -p 60 --pe sip -o\n", vip)
				for _, h := range l.Reals {
					real := h.Addr4
					if vip.Addr().Is6() {
						real = h.Addr6
					}
					fmt.Fprintf(&r, "-a -u %v -r %v -m\n", vip, netip.AddrPortFrom(real, 5060))
				}
			}
			runners, done := labRunners(t, l, b, r.String())

			// The real servers: whole datagrams, by Call-ID and server.
			type arrival struct{ server, msg string }
			var mu sync.Mutex
			got := map[string][]arrival{}
			var wg sync.WaitGroup
			for _, h := range l.Reals {
				for _, a := range []netip.Addr{h.Addr4, h.Addr6} {
					rs := netip.AddrPortFrom(a, 5060).String()
					c, err := lab.ListenUDP(h.NS, rs)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
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
							id := sipHeader(buf[:n], "Call-ID")
							mu.Lock()
							got[id] = append(got[id], arrival{rs, string(buf[:n])})
							mu.Unlock()
						}
					}()
				}
			}

			// The fragments leave the router's server-LAN side for the
			// balancer's MAC as crafted, in the order given.
			send := rawSender(t, l.Router.NS, l.Router.Iface)
			routerMAC, err := lab.MAC(l.Router.NS, l.Router.Iface)
			if err != nil {
				t.Fatal(err)
			}
			lbMAC, err := lab.MAC(l.Balancer.NS, lab.HostIface)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			const calls = 20
			for i := range calls {
				for _, fam := range []struct {
					name     string
					src, vip netip.AddrPort
				}{
					{"v4", netip.MustParseAddrPort("10.77.0.50:5060"), netip.AddrPortFrom(l.VIP4, 5060)},
					{"v6", netip.MustParseAddrPort("[fd77::50]:5060"), netip.AddrPortFrom(l.VIP6, 5060)},
				} {
					id := fmt.Sprintf("frag-%s-%d@xvs", fam.name, i)
					inv := craft.SIPInvite(id)
					want[id] = string(inv)
					s := craft.Spec{Src: fam.src, Dst: fam.vip, Payload: inv, ID: uint32(1000 + i), SrcMAC: routerMAC, DstMAC: lbMAC}
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
			var c pipeline.Counters
			runners[0].Do(t.Context(), func(w *pipeline.Worker) { c = w.Counters() })
			if c.Frag.Emitted == 0 || c.Unsent != 0 {
				t.Errorf("fragment counters %+v: want copies emitted, none unsent", c.Frag)
			}
			stopRunners(t, b, runners, done)
			if s := b.Queues()[0].Stats(); s.TxDropped != 0 {
				t.Errorf("queue stats %+v", s)
			}
		})
	}
}

// rawSender opens an AF_PACKET socket on iface in namespace ns, for frames
// the test crafts itself (fragments in any order).
func rawSender(t *testing.T, ns, iface string) func(frame []byte) {
	t.Helper()
	var fd int
	var sa unix.SockaddrLinklayer
	err := lab.Do(ns, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		sa = unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func(frame []byte) {
		t.Helper()
		copy(sa.Addr[:], frame[0:6])
		if err := unix.Sendto(fd, frame, 0, &sa); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkRunner measures SIP datagrams per second from a client through
// the router and the balancer to two NAT real servers, with the real
// pipeline (SIP Call-ID persistence, -o) on each backend, beside the same
// lab without the balancer in one run:
//
//	kernel-routed: the client sends to a real server directly (the lab's
//	               own cost: sender, router, switch and receiver);
//	raw, afxdp-*:  the client sends to the VIP, the Runner forwards.
//
// The sender (one datagram per system call), the router, the balancer and
// the real servers share the machine's cores, so compare the rows, not the
// absolute numbers; make bench-e2e measures the whole daemon.
//
//	go test -run '^$' -bench Runner -benchtime 100000x ./internal/daemon
func BenchmarkRunner(b *testing.B) {
	b.Run("kernel-routed", func(b *testing.B) {
		l := newLab(b)
		benchSIP(b, l, netip.AddrPortFrom(l.Reals[0].Addr4, 5060))
	})
	for _, bc := range labBackends {
		b.Run(bc.name, func(b *testing.B) {
			l, be := backendLab(b, bc)
			vip, rules := natSIP(l)
			runners, done := labRunners(b, l, be, rules)
			benchSIP(b, l, vip)
			stopRunners(b, be, runners, done)
		})
	}
}

// benchSIP sends b.N SIP INVITEs (1024 Call-IDs in turn) from the lab's
// client to dst, counts what reaches the real servers' port 5060, and
// reports the rate of arrivals (first send to last arrival) and the loss.
func benchSIP(b *testing.B, l *lab.Lab, dst netip.AddrPort) {
	var got, last atomic.Int64
	for _, h := range l.Reals {
		c, err := lab.ListenUDP(h.NS, ":5060")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetReadBuffer(4 << 20)
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				got.Add(1)
				last.Store(time.Now().UnixNano())
			}
		}()
	}
	c, err := lab.ListenUDP(l.Clients[0].NS, l.Clients[0].Addr4.String()+":5060")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msgs := make([][]byte, 1024)
	for i := range msgs {
		msgs[i] = craft.SIPInvite(fmt.Sprintf("bench-%d@xvs", i))
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := c.WriteToUDPAddrPort(msgs[i%len(msgs)], dst); err != nil {
			b.Fatal(err)
		}
	}
	for prev := int64(-1); ; prev = got.Load() {
		time.Sleep(100 * time.Millisecond)
		if n := got.Load(); n >= int64(b.N) || n == prev {
			break
		}
	}
	b.StopTimer()
	n := got.Load()
	if end := time.Unix(0, last.Load()); n > 0 && end.After(start) {
		b.ReportMetric(float64(n)/end.Sub(start).Seconds(), "pkt/s")
	}
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "loss%")
}
