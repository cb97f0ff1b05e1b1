package afxdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/filtertest"
	"github.com/xvs-lb/xvs/packet"
)

// TestFilterProgram runs the steering conformance table (which rawsock's
// classic filter passes too) through the XDP program (BPF_PROG_TEST_RUN)
// and checks its steer/pass counters.
func TestFilterProgram(t *testing.T) {
	skipUnlessRoot(t)
	p, err := loadProgram(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	k4, k6, err := matchKeys(filtertest.Filter)
	if err != nil {
		t.Fatal(err)
	}
	if err := syncMap(p.match4, map[key4]bool{}, k4); err != nil {
		t.Fatal(err)
	}
	if err := syncMap(p.match6, map[key6]bool{}, k6); err != nil {
		t.Fatal(err)
	}
	for _, f := range filtertest.Frames() {
		s0, p0, err := p.counters()
		if err != nil {
			t.Fatal(err)
		}
		ret, err := p.xdp.Program.Run(&ebpf.RunOptions{Data: f.Data})
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		s1, p1, _ := p.counters()
		// No socket in the XSKMAP: a steered frame falls back to XDP_PASS.
		if ret != xdpPass || s1-s0+p1-p0 != 1 || (s1 > s0) != f.XDPSteer {
			t.Errorf("%s: verdict %d, steered %d passed %d, want steer=%v", f.Name, ret, s1-s0, p1-p0, f.XDPSteer)
		}
	}
}

// swapFrame turns a UDP/IPv4 or UDP/IPv6 Ethernet frame around (MACs,
// addresses, ports); the checksums stay valid.
func swapFrame(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
	swap := func(a, b []byte) {
		for i := range a {
			a[i], b[i] = b[i], a[i]
		}
	}
	var l4 []byte
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ihl := int(f[14]&0xf) * 4
		swap(f[14+12:14+16], f[14+16:14+20])
		l4 = f[14+ihl:]
	case 0x86dd:
		swap(f[14+8:14+24], f[14+24:14+40])
		l4 = f[14+40:]
	default:
		return false
	}
	swap(l4[0:2], l4[2:4])
	return true
}

// echo runs a worker that turns every frame around until the queue closes.
func echo(q dataplane.Queue) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := dataplane.NewBatch(0)
		for ctx.Err() == nil {
			if err := q.Receive(b, 5*time.Millisecond); err != nil {
				return
			}
			for i := range b.N {
				b.Send[i] = swapFrame(b.Frames[i])
			}
			q.Transmit(b)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func payloads(prefix string, n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return p
}

func TestEchoAndPassThrough(t *testing.T) {
	for _, mode := range []dataplane.XDPMode{dataplane.XDPGeneric, dataplane.XDPNative} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			b := l.open(dataplane.Options{XDPMode: mode, RingSize: 2048})
			want := map[dataplane.XDPMode]string{dataplane.XDPGeneric: "afxdp-generic", dataplane.XDPNative: "afxdp-native-copy"}[mode]
			if b.Mode().String() != want {
				t.Fatalf("mode %s, want %s (veth has native XDP but no AF_XDP zero-copy)", b.Mode(), want)
			}
			if len(b.Queues()) != 1 {
				t.Fatalf("%d queues", len(b.Queues()))
			}
			q := b.AFXDPQueues()[0]
			if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{
				{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 5060}, {Protocol: packet.ProtoUDP, Addr: l.vip6, Port: 5060},
			}}); err != nil {
				t.Fatal(err)
			}
			stop := echo(q)
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40000))
			c6 := l.udp(l.nsB, netip.AddrPortFrom(l.b6, 40000))

			// VIP traffic comes back through the queue, in both families;
			// 5000 frames wrap the 2048-entry rings and the 4096-frame UMEM.
			const n = 5000
			if got := exchange(t, c, netip.AddrPortFrom(l.vip, 5060), payloads("v4", n)); len(got) != n {
				t.Fatalf("IPv4: %d of %d echoed; queue %+v", len(got), n, q.Stats())
			}
			if got := exchange(t, c6, netip.AddrPortFrom(l.vip6, 5060), payloads("v6", 100)); len(got) != 100 {
				t.Fatalf("IPv6: %d of 100 echoed; queue %+v", len(got), q.Stats())
			}

			// The host's own traffic still works: ping, UDP, TCP to A.
			run(t, "ip", "netns", "exec", l.nsB, "ping", "-c", "1", "-W", "2", l.aIP.String())
			srv := l.udp(l.nsA, netip.AddrPortFrom(l.aIP, 7000))
			go func() {
				buf := make([]byte, 100)
				for {
					n, from, err := srv.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					srv.WriteToUDPAddrPort(buf[:n], from)
				}
			}()
			if got := exchange(t, c, netip.AddrPortFrom(l.aIP, 7000), payloads("host", 10)); len(got) != 10 {
				t.Fatalf("host UDP: %d of 10", len(got))
			}
			var ln net.Listener
			var err error
			l.in(l.nsA, func() { ln, err = net.Listen("tcp", "10.77.0.1:7001") })
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if c, err := ln.Accept(); err == nil {
					c.Write([]byte("hello"))
					c.Close()
				}
			}()
			var tc net.Conn
			l.in(l.nsB, func() { tc, err = net.DialTimeout("tcp", "10.77.0.1:7001", 5*time.Second) })
			if err != nil {
				t.Fatalf("TCP to the host: %v", err)
			}
			buf := make([]byte, 5)
			tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := tc.Read(buf); err != nil || string(buf) != "hello" {
				t.Fatalf("TCP to the host: %q %v", buf, err)
			}
			tc.Close()

			// Update changes what is steered, without detaching: a port-0
			// service takes every port of the VIP, a NAT real server's
			// traffic (B's 10.77.0.2:40000 to A's address) comes too.
			rx0 := q.Stats().RxFrames
			if !noExchange(t, c, netip.AddrPortFrom(l.vip, 7777), payloads("p0", 5)) {
				t.Fatalf("port 7777 steered before Update")
			}
			if q.Stats().RxFrames != rx0 {
				t.Fatalf("queue received frames for no service")
			}
			if err := b.Update(dataplane.Filter{
				Services:    []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 0}},
				RealServers: []dataplane.RealServerMatch{{Protocol: packet.ProtoUDP, Addr: netip.AddrPortFrom(l.bIP, 40000)}},
			}); err != nil {
				t.Fatal(err)
			}
			if got := exchange(t, c, netip.AddrPortFrom(l.vip, 7777), payloads("p0", 50)); len(got) != 50 {
				t.Fatalf("port-0 service: %d of 50", len(got))
			}
			if !noExchange(t, c6, netip.AddrPortFrom(l.vip6, 5060), payloads("gone", 3)) {
				t.Fatalf("IPv6 service still steered after Update removed it")
			}
			rx1 := q.Stats().RxFrames
			// From the "real server" to the host's UDP echo: steered to the
			// queue, which swaps it back to B (B sees A's echo port answer).
			if got := exchange(t, c, netip.AddrPortFrom(l.aIP, 7000), payloads("rs", 20)); len(got) != 20 {
				t.Fatalf("real-server traffic: %d of 20", len(got))
			}
			if q.Stats().RxFrames-rx1 < 20 {
				t.Fatalf("real-server traffic not steered: %d frames", q.Stats().RxFrames-rx1)
			}
			fs, err := b.FilterStats()
			if err != nil || fs.Steered < n || fs.Passed == 0 {
				t.Fatalf("filter stats %+v %v", fs, err)
			}

			stop()
			quiesce(t, q)
			if s := q.Stats(); s.TxDropped != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// quiesce lets the kernel complete every transmission, then checks the
// frame-ownership invariant strictly (no frame lost or duplicated).
func quiesce(t testing.TB, q *Queue) {
	t.Helper()
	b := dataplane.NewBatch(0)
	var err error
	for try := 0; try < 100; try++ {
		q.Receive(b, time.Millisecond)
		for i := range b.N {
			b.Send[i] = false
		}
		q.Transmit(b)
		if err = q.CheckFrames(true); err == nil {
			return
		}
	}
	t.Fatal(err)
}

func TestOpenErrors(t *testing.T) {
	skipUnlessRoot(t)
	if _, err := Open(dataplane.Options{Iface: "xvs-no-such-if"}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("missing interface: %v", err)
	}
	l := newLab(t)
	var err error
	l.in(l.nsA, func() { _, err = Open(dataplane.Options{Iface: l.a, XDPMode: dataplane.XDPMode(9)}) })
	if !errors.Is(err, ErrBadOption) {
		t.Errorf("bad mode: %v", err)
	}
	l.in(l.nsA, func() {
		_, err = Open(dataplane.Options{Iface: l.a, XDPMode: dataplane.XDPNative, ZeroCopy: dataplane.ZeroCopyOn})
	})
	if !errors.Is(err, ErrNoZeroCopy) {
		t.Errorf("zero-copy on veth: %v", err)
	}
	run(t, "ip", "-n", l.nsA, "link", "set", l.a, "mtu", "4000")
	l.in(l.nsA, func() { _, err = Open(dataplane.Options{Iface: l.a, FrameSize: 2048}) })
	if !errors.Is(err, ErrMTU) {
		t.Errorf("MTU 4000 with 2048-byte frames: %v", err)
	}
	// A loopback has no native XDP.
	run(t, "ip", "-n", l.nsA, "link", "set", "lo", "mtu", "1500")
	l.in(l.nsA, func() { _, err = Open(dataplane.Options{Iface: "lo", XDPMode: dataplane.XDPNative}) })
	if !errors.Is(err, ErrNoNativeXDP) {
		t.Errorf("native XDP on lo: %v", err)
	}
	// Nothing stays attached after failures.
	if out := run(t, "ip", "-n", l.nsA, "link", "show", l.a); containsXDP(out) {
		t.Errorf("XDP program left attached:\n%s", out)
	}
}

func containsXDP(ipLinkShow string) bool {
	return strings.Contains(ipLinkShow, "xdpgeneric") || strings.Contains(ipLinkShow, "xdpdrv") || strings.Contains(ipLinkShow, "prog/xdp")
}

// TestStaleProgramReplacedAndClose: a program left attached the old way
// (netlink, as asavie/xdp's Attach or a crashed pre-link tool leaves it) is
// replaced; Close makes a blocked Receive return ErrClosed promptly and
// leaves nothing attached.
func TestStaleProgramReplacedAndClose(t *testing.T) {
	l := newLab(t)
	l.in(l.nsA, func() {
		ifc, err := net.InterfaceByName(l.a)
		if err != nil {
			t.Error(err)
			return
		}
		stale, err := xdp.NewProgram(1)
		if err != nil {
			t.Error(err)
			return
		}
		if err := stale.Attach(ifc.Index); err != nil {
			t.Error(err)
		}
		stale.Close() // the attachment outlives the process's handles
	})
	if out := run(t, "ip", "-n", l.nsA, "link", "show", l.a); !containsXDP(out) {
		t.Fatalf("stale program not attached:\n%s", out)
	}
	b := l.open(dataplane.Options{})
	if b.Mode().String() != "afxdp-native-copy" {
		t.Fatalf("mode %s", b.Mode())
	}
	q := b.Queues()[0]
	done := make(chan error, 1)
	go func() {
		bt := dataplane.NewBatch(0)
		for {
			if err := q.Receive(bt, 10*time.Second); err != nil {
				done <- err
				return
			}
			q.Transmit(bt)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, dataplane.ErrClosed) {
			t.Fatalf("Receive after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive still blocked 2s after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if out := run(t, "ip", "-n", l.nsA, "link", "show", l.a); containsXDP(out) {
		t.Errorf("XDP program left attached after Close:\n%s", out)
	}
	if err := b.Update(dataplane.Filter{}); !errors.Is(err, dataplane.ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
}

// TestHeadroom: every received frame has the XDP headroom before it
// (Batch.Room, at least dataplane.Headroom octets, the frame's own chunk
// behind it), and a frame moved into that room — a TX descriptor that
// points before the received data, in the same chunk, as a tunnel's
// encapsulation makes — is transmitted from there, in native and generic
// mode (veth: copy mode).
func TestHeadroom(t *testing.T) {
	for _, mode := range []dataplane.XDPMode{dataplane.XDPGeneric, dataplane.XDPNative} {
		t.Run(mode.String(), func(t *testing.T) {
			l := newLab(t)
			b := l.open(dataplane.Options{XDPMode: mode})
			q := b.AFXDPQueues()[0]
			if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 5060}}}); err != nil {
				t.Fatal(err)
			}
			var minRoom atomic.Int64
			minRoom.Store(1 << 20)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				bt := dataplane.NewBatch(0)
				for ctx.Err() == nil {
					if err := q.Receive(bt, 5*time.Millisecond); err != nil {
						return
					}
					for i := range bt.N {
						room, f := bt.Room[i], bt.Frames[i]
						if int64(len(room)) < minRoom.Load() {
							minRoom.Store(int64(len(room)))
						}
						// Move the frame 64 octets into its room, turned around.
						grown, left, ok := packet.Grow(room, f, 64)
						if !ok || !swapFrame(f) {
							continue
						}
						copy(grown, f)
						bt.Frames[i], bt.Room[i] = grown[:len(f)], left
						bt.Send[i] = true
					}
					q.Transmit(bt)
				}
			}()
			c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40000))
			const n = 3000
			got := exchange(t, c, netip.AddrPortFrom(l.vip, 5060), payloads("room", n))
			cancel()
			wg.Wait()
			if len(got) != n {
				t.Fatalf("%d of %d moved frames echoed; queue %+v", len(got), n, q.Stats())
			}
			if minRoom.Load() < dataplane.Headroom {
				t.Errorf("room before the data: %d octets, want at least %d", minRoom.Load(), dataplane.Headroom)
			}
			t.Logf("%s: %d octets of room before every frame", mode, minRoom.Load())
			quiesce(t, q)
		})
	}
}

// TestRingStatistics: frames steered to a queue whose worker does not read
// are received until the fill ring runs dry, and the rest are counted by
// the kernel (XDP_STATISTICS) in the queue's statistics — every frame the
// filter program steered is either received or counted there.
func TestRingStatistics(t *testing.T) {
	l := newLab(t)
	b := l.open(dataplane.Options{XDPMode: dataplane.XDPNative, RingSize: MinRingSize})
	q := b.AFXDPQueues()[0]
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: l.vip, Port: 5060}}}); err != nil {
		t.Fatal(err)
	}
	c := l.udp(l.nsB, netip.AddrPortFrom(l.bIP, 40000))
	const n = 4 * MinRingSize
	for i := range n {
		if _, err := c.WriteToUDPAddrPort([]byte(fmt.Sprintf("ring-%d", i)), netip.AddrPortFrom(l.vip, 5060)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond) // not faster than veth's own ring drains
	}
	time.Sleep(100 * time.Millisecond)
	bt := dataplane.NewBatch(0)
	var got uint64
	for {
		if err := q.Receive(bt, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if bt.N == 0 {
			break
		}
		got += uint64(bt.N)
		for i := range bt.N {
			bt.Send[i] = false
		}
		q.Transmit(bt)
	}
	fs, err := b.FilterCounts()
	if err != nil || len(fs) != 1 || fs[0].Iface != l.a {
		t.Fatalf("filter counts %+v %v", fs, err)
	}
	s := q.Stats()
	lost := s.RxDropped + s.RxRingFull + s.RxInvalidDescs
	if got != s.RxFrames || got > MinRingSize || lost == 0 || got+lost != fs[0].Steered || s.FillRingEmpty == 0 {
		t.Fatalf("received %d of %d sent; steered %d; stats %+v", got, n, fs[0].Steered, s)
	}
	t.Logf("sent %d, steered %d, received %d, rx_dropped %d, rx_ring_full %d, fill_ring_empty %d", n, fs[0].Steered, got, s.RxDropped, s.RxRingFull, s.FillRingEmpty)
	quiesce(t, q)
}
