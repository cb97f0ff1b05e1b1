package afxdp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// TestTwoLegs is a director with two legs: va towards the client namespace
// B (10.77.0.0/24, as in the other tests) and vc towards a server namespace
// C (10.78.0.0/24). A worker loop NATs what the filters steer: a client's
// datagram to the VIP, received on va, leaves on vc to the server
// 10.78.0.2; the server's answer, received on vc, leaves on va from the VIP.
// Every frame crosses interfaces. With the sockets sharing one UMEM
// (XDP_SHARED_UMEM with another device) nothing is copied; with the
// fallback (a UMEM per socket) every crossing frame is, and counted. Either
// way every datagram comes back and the frame-ownership invariant holds
// across the interfaces, strictly once quiet.
func TestTwoLegs(t *testing.T) {
	for _, share := range []bool{true, false} {
		for _, mode := range []dataplane.XDPMode{dataplane.XDPNative, dataplane.XDPGeneric} {
			name := fmt.Sprintf("%s/shared=%v", mode, share)
			t.Run(name, func(t *testing.T) {
				shareUMEM = share
				defer func() { shareUMEM = true }()
				l := newLab(t)
				nsC := fmt.Sprintf("xvsafxC%d-%d", os.Getpid(), labSeq.Add(1))
				run(t, "ip", "netns", "add", nsC)
				t.Cleanup(func() { exec.Command("ip", "netns", "del", nsC).Run() })
				cMAC, dMAC := net.HardwareAddr{0x02, 0x78, 0, 0, 0, 0x01}, net.HardwareAddr{0x02, 0x78, 0, 0, 0, 0x02}
				run(t, "ip", "-n", l.nsA, "link", "add", "vc", "address", cMAC.String(), "type", "veth", "peer", "name", "vd", "address", dMAC.String(), "netns", nsC)
				run(t, "ip", "-n", l.nsA, "addr", "add", "10.78.0.1/24", "dev", "vc")
				run(t, "ip", "-n", nsC, "addr", "add", "10.78.0.2/24", "dev", "vd")
				run(t, "ip", "-n", l.nsA, "link", "set", "vc", "up")
				run(t, "ip", "-n", nsC, "link", "set", "vd", "up")
				run(t, "ip", "-n", nsC, "link", "set", "lo", "up")
				run(t, "ip", "-n", nsC, "route", "add", "default", "via", "10.78.0.1")
				if _, err := exec.LookPath("ethtool"); err == nil {
					run(t, "ip", "netns", "exec", nsC, "ethtool", "-K", "vd", "tx", "off", "txvlan", "off")
					run(t, "ip", "netns", "exec", l.nsA, "ethtool", "-K", "vc", "tx", "off", "txvlan", "off")
				}
				var b *Backend
				var err error
				l.in(l.nsA, func() { b, err = Open(dataplane.Options{Ifaces: []string{l.a, "vc"}, XDPMode: mode}) })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				server := netip.MustParseAddrPort("10.78.0.2:5060")
				if err := b.Update(dataplane.Filter{
					Services:    []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 5060}},
					RealServers: []dataplane.RealServerMatch{{Protocol: packet.ProtoUDP, Addr: server}},
				}); err != nil {
					t.Fatal(err)
				}
				q := b.AFXDPQueues()[0]
				if q.SharedUMEM() != share {
					t.Fatalf("shared UMEM %v, want %v", q.SharedUMEM(), share)
				}
				if len(b.InterfaceModes()) != 2 {
					t.Fatalf("interface modes %v", b.InterfaceModes())
				}
				var aMAC [6]byte
				copy(aMAC[:], l.aMAC)
				stop := nat(q, l.vip, server, [2][6]byte{aMAC, [6]byte(cMAC)}, [2][6]byte{[6]byte(l.bMAC), [6]byte(dMAC)})
				srv := l.udp(nsC, server)
				go func() {
					buf := make([]byte, 2048)
					for {
						n, from, err := srv.ReadFromUDPAddrPort(buf)
						if err != nil {
							return
						}
						srv.WriteToUDPAddrPort(buf[:n], from)
					}
				}()
				c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40000))
				const n = 3000 // wraps the rings and the UMEM
				if got := exchange(t, c, netip.AddrPortFrom(l.vip, 5060), payloads("leg", n)); len(got) != n {
					t.Fatalf("%d of %d came back across the legs; queue %+v", len(got), n, q.Stats())
				}
				stop()
				quiesce(t, q)
				st := q.Stats()
				if share && st.CrossPortCopies != 0 {
					t.Errorf("shared UMEM but %d copies", st.CrossPortCopies)
				}
				if !share && st.CrossPortCopies < 2*n {
					t.Errorf("separate UMEMs: %d copies for %d crossings", st.CrossPortCopies, 2*n)
				}
				if st.TxDropped != 0 {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

// nat runs a worker loop that translates between the VIP and the server:
// frames to the VIP from port 0 go to the server on port 1, frames from the
// server on port 1 go back from the VIP on port 0. mac[p] is port p's own
// MAC, peer[p] the peer's on that link.
func nat(q dataplane.Queue, vip netip.Addr, server netip.AddrPort, mac, peer [2][6]byte) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := dataplane.NewBatch(0)
		var p packet.Parsed
		for ctx.Err() == nil {
			if err := q.Receive(b, 5*time.Millisecond); err != nil {
				return
			}
			for i := range b.N {
				f := b.Frames[i]
				b.Send[i] = false
				if p.Decode(f, packet.LinkEthernet) != packet.ReasonOK {
					continue
				}
				var out uint8
				switch {
				case b.Port[i] == 0 && p.Dst == vip:
					b.Send[i] = p.SetDst(f, server.Addr(), server.Port())
					out = 1
				case b.Port[i] == 1 && p.Src == server.Addr():
					b.Send[i] = p.SetSrc(f, vip, p.SrcPort)
					out = 0
				}
				packet.SetSrcMAC(f, mac[out])
				packet.SetDstMAC(f, peer[out])
				b.Port[i] = out
			}
			q.Transmit(b)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// BenchmarkLegs measures SIP datagrams per second through a two-legged
// director, in one run: the worker NATs each datagram to the VIP to a real
// server either on the client's leg (same-leg: out of va again, to B's
// 10.77.0.3) or on the other leg (cross-leg: out of vc to C, from the same
// UMEM: shared across the two devices), and the sink counts what arrives.
// Both directions of a frame's life are in the kernel's copy-mode AF_XDP
// on veth, so the ratio cross-leg / same-leg is what crossing costs.
//
//	go test -run '^$' -bench Legs -benchtime 200000x -count 5 ./afxdp
func BenchmarkLegs(b *testing.B) {
	for _, mode := range []dataplane.XDPMode{dataplane.XDPNative, dataplane.XDPGeneric} {
		for _, cross := range []bool{false, true} {
			name := map[bool]string{false: "same-leg", true: "cross-leg"}[cross] + "/" + mode.String()
			b.Run(name, func(b *testing.B) {
				// allocs/op counts the whole process: the worker, and the
				// sender's and the sink's batched socket calls.
				b.ReportAllocs()
				l := newLab(b)
				nsC := fmt.Sprintf("xvsafxC%d-%d", os.Getpid(), labSeq.Add(1))
				run(b, "ip", "netns", "add", nsC)
				b.Cleanup(func() { exec.Command("ip", "netns", "del", nsC).Run() })
				cMAC, dMAC := net.HardwareAddr{0x02, 0x78, 0, 0, 0, 0x01}, net.HardwareAddr{0x02, 0x78, 0, 0, 0, 0x02}
				run(b, "ip", "-n", l.nsA, "link", "add", "vc", "address", cMAC.String(), "type", "veth", "peer", "name", "vd", "address", dMAC.String(), "netns", nsC)
				run(b, "ip", "-n", l.nsA, "addr", "add", "10.78.0.1/24", "dev", "vc")
				run(b, "ip", "-n", nsC, "addr", "add", "10.78.0.2/24", "dev", "vd")
				run(b, "ip", "-n", l.nsA, "link", "set", "vc", "up")
				run(b, "ip", "-n", nsC, "link", "set", "vd", "up")
				run(b, "ip", "netns", "exec", nsC, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.vd.rp_filter=0")
				if _, err := exec.LookPath("ethtool"); err == nil {
					run(b, "ip", "netns", "exec", l.nsA, "ethtool", "-K", "vc", "tx", "off", "txvlan", "off")
				}
				var be *Backend
				var err error
				l.in(l.nsA, func() { be, err = Open(dataplane.Options{Ifaces: []string{l.a, "vc"}, XDPMode: mode}) })
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { be.Close() })
				if err := be.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: 17, Addr: l.vip, Port: 5060}}}); err != nil {
					b.Fatal(err)
				}
				var aMAC [6]byte
				copy(aMAC[:], l.aMAC)
				server := netip.AddrPortFrom(l.rs1, 5060)
				var sinkConn *net.UDPConn
				port := uint8(0)
				mac, peer := aMAC, [6]byte(l.bMAC)
				if cross {
					server, port, mac, peer = netip.MustParseAddrPort("10.78.0.2:5060"), 1, [6]byte(cMAC), [6]byte(dMAC)
					sinkConn = l.udp(nsC, server)
				} else {
					sinkConn = l.udp(l.nsB, server)
				}
				var cpu time.Duration
				stop := forward(be.Queues()[0], l.vip, server, port, mac, peer, &cpu)
				c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 5060))
				var s sink
				s.start(sinkConn)
				measure(b, &s, func(n int) { blast(b, c, netip.AddrPortFrom(l.vip, 5060), n) })
				stop()
				q := be.AFXDPQueues()[0]
				if q.Stats().CrossPortCopies != 0 {
					b.Errorf("%d frames copied across legs", q.Stats().CrossPortCopies)
				}
				// The worker thread's CPU time per frame it forwarded: its
				// own work and the kernel's copy-mode transmission, which
				// runs in its sendto.
				if tx := q.Stats().TxFrames; tx > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(tx), "worker-ns/pkt")
				}
			})
		}
	}
}

// forward runs a worker loop that NATs frames to the VIP to server and sends
// them out of port with the given MACs; stop stores the loop's thread CPU
// time in cpu.
func forward(q dataplane.Queue, vip netip.Addr, server netip.AddrPort, port uint8, mac, peer [6]byte, cpu *time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var r0, r1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_THREAD, &r0)
		defer func() {
			unix.Getrusage(unix.RUSAGE_THREAD, &r1)
			*cpu = time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
		}()
		b := dataplane.NewBatch(0)
		var p packet.Parsed
		for ctx.Err() == nil {
			if err := q.Receive(b, 5*time.Millisecond); err != nil {
				return
			}
			for i := range b.N {
				f := b.Frames[i]
				b.Send[i] = p.Decode(f, packet.LinkEthernet) == packet.ReasonOK && p.Dst == vip && p.SetDst(f, server.Addr(), server.Port())
				packet.SetSrcMAC(f, mac)
				packet.SetDstMAC(f, peer)
				b.Port[i] = port
			}
			q.Transmit(b)
		}
	}()
	return func() { cancel(); wg.Wait() }
}
