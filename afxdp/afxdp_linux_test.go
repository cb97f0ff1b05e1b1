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
	"testing"
	"time"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// TestFilterProgram runs the XDP filter on crafted frames
// (BPF_PROG_TEST_RUN) and checks its steer/pass counters: VLAN tags, IPv6
// extension headers, fragments (to a VIP, and from a NAT real server's
// address), port-0 services, NAT real servers, ICMP "fragmentation needed"
// and "packet too big" to a VIP (and other ICMP, not steered).
func TestFilterProgram(t *testing.T) {
	skipUnlessRoot(t)
	p, err := loadProgram(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	vip, vip6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	f := dataplane.Filter{
		Services: []dataplane.ServiceMatch{
			{Protocol: packet.ProtoUDP, Addr: vip, Port: 5060},
			{Protocol: packet.ProtoTCP, Addr: netip.MustParseAddr("192.0.2.2"), Port: 0},
			{Protocol: packet.ProtoUDP, Addr: vip6, Port: 5060},
		},
		RealServers: []dataplane.RealServerMatch{
			{Protocol: packet.ProtoUDP, Addr: netip.MustParseAddrPort("10.1.0.5:5060")},
			{Protocol: packet.ProtoUDP, Addr: netip.MustParseAddrPort("[2001:db8:2::5]:5060")},
		},
	}
	k4, k6, err := matchKeys(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := syncMap(p.match4, map[key4]bool{}, k4); err != nil {
		t.Fatal(err)
	}
	if err := syncMap(p.match6, map[key6]bool{}, k6); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	client, client6 := ap("198.51.100.7:40000"), ap("[2001:db8:1::7]:40000")
	big := make([]byte, 3000)
	cases := []struct {
		desc  string
		frame []byte
		steer bool
	}{
		{"udp to VIP:port", craft.Spec{Src: client, Dst: ap("192.0.2.1:5060")}.Build(), true},
		{"udp to VIP other port", craft.Spec{Src: client, Dst: ap("192.0.2.1:5061")}.Build(), false},
		{"tcp to VIP:5060 (udp service)", craft.Spec{Proto: craft.TCP, Src: client, Dst: ap("192.0.2.1:5060")}.Build(), false},
		{"tcp to port-0 service", craft.Spec{Proto: craft.TCP, Src: client, Dst: ap("192.0.2.2:443")}.Build(), true},
		{"udp to port-0 tcp service", craft.Spec{Src: client, Dst: ap("192.0.2.2:443")}.Build(), false},
		{"one VLAN tag", craft.Spec{VLANs: []craft.VLAN{{TCI: 10}}, Src: client, Dst: ap("192.0.2.1:5060")}.Build(), true},
		{"QinQ", craft.Spec{VLANs: []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 20}}, Src: client, Dst: ap("192.0.2.1:5060")}.Build(), true},
		{"three VLAN tags", craft.Spec{VLANs: []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 20}, {TCI: 30}}, Src: client, Dst: ap("192.0.2.1:5060")}.Build(), false},
		{"IPv4 options", craft.Spec{IPOptions: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Src: client, Dst: ap("192.0.2.1:5060")}.Build(), true},
		{"from NAT real server", craft.Spec{Src: ap("10.1.0.5:5060"), Dst: client}.Build(), true},
		{"from NAT real server other port", craft.Spec{Src: ap("10.1.0.5:5061"), Dst: client}.Build(), false},
		{"udp IPv6 to VIP", craft.Spec{Src: client6, Dst: ap("[2001:db8::1]:5060")}.Build(), true},
		{"IPv6 with two ext headers", craft.Spec{IPv6Ext: []craft.Ext{{Type: 0, Data: make([]byte, 6)}, {Type: 60, Data: make([]byte, 14)}}, Src: client6, Dst: ap("[2001:db8::1]:5060")}.Build(), true},
		{"IPv6 to other address", craft.Spec{Src: client6, Dst: ap("[2001:db8::2]:5060")}.Build(), false},
		{"ARP", append(make([]byte, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1), false},
		{"truncated IPv4", craft.Spec{Src: client, Dst: ap("192.0.2.1:5060")}.Build()[:30], false},
	}
	for i, fr := range craft.Fragment(craft.Spec{Src: client, Dst: ap("192.0.2.1:5060"), Payload: big}, 1400) {
		cases = append(cases, struct {
			desc  string
			frame []byte
			steer bool
		}{fmt.Sprintf("IPv4 fragment %d to VIP", i), fr, true})
	}
	for i, fr := range craft.Fragment(craft.Spec{Src: client6, Dst: ap("[2001:db8::1]:9"), Payload: big}, 1400) {
		cases = append(cases, struct {
			desc  string
			frame []byte
			steer bool
		}{fmt.Sprintf("IPv6 fragment %d to VIP", i), fr, true})
	}
	for i, fr := range craft.Fragment(craft.Spec{Src: client, Dst: ap("192.0.2.9:5060"), Payload: big}, 1400) {
		cases = append(cases, struct {
			desc  string
			frame []byte
			steer bool
		}{fmt.Sprintf("IPv4 fragment %d to other address", i), fr, false})
	}
	type tc = struct {
		desc  string
		frame []byte
		steer bool
	}
	// frags adds the fragments of s's datagram; steer(i) says whether
	// fragment i is steered.
	frags := func(desc string, s craft.Spec, steer func(i int) bool) {
		fs := craft.Fragment(s, 1400)
		if len(fs) < 3 {
			t.Fatalf("%s: %d fragments", desc, len(fs))
		}
		for i, fr := range fs {
			cases = append(cases, tc{fmt.Sprintf("%s fragment %d", desc, i), fr, steer(i)})
		}
	}
	all := func(int) bool { return true }
	none := func(int) bool { return false }
	later := func(i int) bool { return i > 0 }
	vlan, qinq := []craft.VLAN{{TCI: 10}}, []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 20}}
	rs4, rs6 := ap("10.1.0.5:5060"), ap("[2001:db8:2::5]:5060")
	// NAT replies that fragment: the first fragment by its ports, the
	// later ones by the real server's address alone.
	frags("IPv4 NAT reply", craft.Spec{Src: rs4, Dst: client, Payload: big, ID: 1}, all)
	frags("IPv4 NAT reply, VLAN", craft.Spec{VLANs: vlan, Src: rs4, Dst: client, Payload: big, ID: 2}, all)
	frags("IPv4 NAT reply, QinQ", craft.Spec{VLANs: qinq, Src: rs4, Dst: client, Payload: big, ID: 3}, all)
	frags("IPv4 NAT reply with options", craft.Spec{IPOptions: []byte{0x94, 4, 0, 0}, Src: rs4, Dst: client, Payload: big, ID: 4}, all)
	frags("IPv4 from NAT real server other port", craft.Spec{Src: ap("10.1.0.5:5061"), Dst: client, Payload: big, ID: 5}, later)
	frags("IPv4 from other address", craft.Spec{Src: ap("10.1.0.6:5060"), Dst: client, Payload: big, ID: 6}, none)
	frags("IPv6 NAT reply", craft.Spec{Src: rs6, Dst: client6, Payload: big, ID: 7}, all)
	frags("IPv6 NAT reply, VLAN", craft.Spec{VLANs: vlan, Src: rs6, Dst: client6, Payload: big, ID: 8}, all)
	frags("IPv6 NAT reply, QinQ, ext header", craft.Spec{VLANs: qinq, IPv6Ext: []craft.Ext{{Type: 60, Data: make([]byte, 6)}}, Src: rs6, Dst: client6, Payload: big, ID: 9}, all)
	frags("IPv6 from NAT real server other port", craft.Spec{Src: ap("[2001:db8:2::5]:5061"), Dst: client6, Payload: big, ID: 10}, later)
	frags("IPv6 from other address", craft.Spec{Src: ap("[2001:db8:2::6]:5060"), Dst: client6, Payload: big, ID: 11}, none)
	frags("IPv6 to other address", craft.Spec{Src: client6, Dst: ap("[2001:db8::9]:5060"), Payload: big, ID: 12}, none)
	frags("IPv4 to VIP, VLAN", craft.Spec{VLANs: vlan, Src: client, Dst: ap("192.0.2.1:5060"), Payload: big, ID: 13}, all)
	frags("IPv6 to VIP, QinQ", craft.Spec{VLANs: qinq, Src: client6, Dst: ap("[2001:db8::1]:5060"), Payload: big, ID: 14}, all)

	// ICMP errors: path-MTU messages to a VIP are steered (the pipeline
	// reads the quote), every other ICMP message stays with the kernel.
	router, router6 := ap("203.0.113.1:0"), ap("[2001:db8:ff::1]:0")
	icmp := func(vlans []craft.VLAN, dst netip.AddrPort, typ, code uint8) []byte {
		body := []byte{typ, code, 0, 0, 0, 0, 0x05, 0x78} // MTU 1400
		if dst.Addr().Is4() {
			body = append(body, craft.Spec{Src: netip.AddrPortFrom(dst.Addr(), 5060), Dst: client, Payload: big[:64]}.Datagram()[:28]...)
			return craft.Spec{VLANs: vlans, Proto: 1, Src: router, Dst: dst, Payload: body}.Build()
		}
		body = append(body, craft.Spec{Src: netip.AddrPortFrom(dst.Addr(), 5060), Dst: client6, Payload: big[:64]}.Datagram()[:48]...)
		return craft.Spec{VLANs: vlans, Proto: 58, Src: router6, Dst: dst, Payload: body}.Build()
	}
	vipICMP, vipICMP2, otherICMP := ap("192.0.2.1:0"), ap("192.0.2.2:0"), ap("192.0.2.9:0")
	vip6ICMP, other6ICMP := ap("[2001:db8::1]:0"), ap("[2001:db8::9]:0")
	cases = append(cases,
		tc{"ICMPv4 frag needed to VIP", icmp(nil, vipICMP, 3, 4), true},
		tc{"ICMPv4 frag needed to port-0 VIP", icmp(nil, vipICMP2, 3, 4), true},
		tc{"ICMPv4 frag needed to VIP, VLAN", icmp(vlan, vipICMP, 3, 4), true},
		tc{"ICMPv4 frag needed to VIP, QinQ", icmp(qinq, vipICMP, 3, 4), true},
		tc{"ICMPv4 frag needed to other address", icmp(nil, otherICMP, 3, 4), false},
		tc{"ICMPv4 frag needed to other address, VLAN", icmp(vlan, otherICMP, 3, 4), false},
		tc{"ICMPv4 port unreachable to VIP", icmp(nil, vipICMP, 3, 3), false},
		tc{"ICMPv4 time exceeded to VIP", icmp(nil, vipICMP, 11, 0), false},
		tc{"ICMPv4 echo request to VIP", icmp(vlan, vipICMP, 8, 0), false},
		tc{"ICMPv4 truncated (no type)", icmp(nil, vipICMP, 3, 4)[:14+20], false},
		tc{"ICMPv6 packet too big to VIP", icmp(nil, vip6ICMP, 2, 0), true},
		tc{"ICMPv6 packet too big to VIP, VLAN", icmp(vlan, vip6ICMP, 2, 0), true},
		tc{"ICMPv6 packet too big to VIP, QinQ", icmp(qinq, vip6ICMP, 2, 0), true},
		tc{"ICMPv6 packet too big to other address", icmp(vlan, other6ICMP, 2, 0), false},
		tc{"ICMPv6 destination unreachable to VIP", icmp(nil, vip6ICMP, 1, 4), false},
		tc{"ICMPv6 echo request to VIP", icmp(nil, vip6ICMP, 128, 0), false},
		tc{"ICMPv6 neighbour solicitation to VIP", icmp(vlan, vip6ICMP, 135, 0), false},
		tc{"ICMPv6 truncated (no type)", icmp(nil, vip6ICMP, 2, 0)[:14+40], false},
		tc{"TCP from NAT real server address, service is UDP", craft.Spec{Proto: craft.TCP, Src: rs4, Dst: client}.Build(), false},
	)
	for _, c := range cases {
		s0, p0, err := p.counters()
		if err != nil {
			t.Fatal(err)
		}
		ret, err := p.xdp.Program.Run(&ebpf.RunOptions{Data: c.frame})
		if err != nil {
			t.Fatalf("%s: %v", c.desc, err)
		}
		s1, p1, _ := p.counters()
		// No socket in the XSKMAP: a steered frame falls back to XDP_PASS.
		if ret != xdpPass || s1-s0+p1-p0 != 1 || (s1 > s0) != c.steer {
			t.Errorf("%s: verdict %d, steered %d passed %d, want steer=%v", c.desc, ret, s1-s0, p1-p0, c.steer)
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
			b := l.open(dataplane.Options{XDPMode: mode})
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
