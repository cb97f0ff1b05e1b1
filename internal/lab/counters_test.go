package lab

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Text as Linux 6.18 writes it (trimmed).
const (
	netDevText = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 593676400  951525    0    0    0     0          0         0 593676400  951525    0    0    0     0       0          0
  eth0: 42917480   49906    1 3294    0     0          0         0 42917480   46611    2    7    0     0       0          0
`
	snmpText = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 960496 0 0 12 0 0 960496 619176 0 0 0 0 0 0 0 0 0 959198
Icmp: InMsgs InErrors
Icmp: 678 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 100 1 5 200 4 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`
	softnetText = `20e6bbcd 00000000 00000058 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
214e33cf 0000000a 00000050 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000001
`
)

func TestParseCounters(t *testing.T) {
	links, err := ParseNetDev(strings.NewReader(netDevText))
	if err != nil {
		t.Fatal(err)
	}
	want := LinkCounters{RxPackets: 49906, RxErrors: 1, RxDropped: 3294, TxPackets: 46611, TxErrors: 2, TxDropped: 7}
	if links["eth0"] != want || links["lo"].RxPackets != 951525 || len(links) != 2 {
		t.Errorf("net/dev: %+v", links)
	}
	snmp, err := ParseSNMP(strings.NewReader(snmpText))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]uint64{"Ip.ForwDatagrams": 12, "Ip.Forwarding": 2, "Udp.InDatagrams": 100, "Udp.RcvbufErrors": 4, "Udp.InErrors": 5, "UdpLite.InDatagrams": 0} {
		if got, ok := snmp[k]; !ok || got != v {
			t.Errorf("snmp %s = %d (%v), want %d", k, got, ok, v)
		}
	}
	if _, ok := snmp["Icmp.InMsgs"]; ok {
		t.Error("snmp: Icmp parsed")
	}
	sn, err := ParseSoftnet(strings.NewReader(softnetText))
	if err != nil {
		t.Fatal(err)
	}
	if len(sn) != 2 || sn[1] != (Softnet{Processed: 0x214e33cf, Dropped: 10, TimeSqueeze: 0x50}) {
		t.Errorf("softnet: %+v", sn)
	}
	// The kernel's 32-bit softnet counters wrap.
	d := SubSoftnet([]Softnet{{Processed: 5, Dropped: 3}}, []Softnet{{Processed: 0xfffffffe, Dropped: 1}})
	if d[0].Processed != 7 || d[0].Dropped != 2 {
		t.Errorf("softnet wrap: %+v", d[0])
	}
	for _, bad := range []string{"a: 1 2 3\n", "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n"} {
		if _, err := ParseNetDev(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseNetDev(%q): no error", bad)
		}
	}
	if _, err := ParseSNMP(strings.NewReader("Udp: A B\nUdp: 1\n")); err == nil {
		t.Error("ParseSNMP: short value line accepted")
	}
}

// TestRootCounters sends datagrams from the client to a real server whose
// socket is never read and has a small receive buffer: the lab's counters
// see every one at the router, at the real server's interface and in its
// UDP MIB, and those the buffer could not take as Udp.RcvbufErrors — in the
// real server's namespace only.
func TestRootCounters(t *testing.T) {
	l := newLab(t, Spec{RealServers: 1})
	if err := l.UseDirectRouting(); err != nil {
		t.Fatal(err)
	}
	r := l.Reals[0]
	srv, err := ListenUDP(r.NS, r.Addr4.String()+":5060")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rc, _ := srv.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	cl, err := ListenUDP(l.Clients[0].NS, ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	before, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	payload := make([]byte, 800)
	to := &net.UDPAddr{IP: r.Addr4.AsSlice(), Port: 5060}
	for range n {
		if _, err := cl.WriteTo(payload, to); err != nil {
			t.Fatal(err)
		}
	}
	// Count what the socket queued, then read the counters.
	srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	got := 0
	for {
		if _, _, err := srv.ReadFrom(payload); err != nil {
			break
		}
		got++
	}
	after, err := l.Counters()
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]NetCounters{}
	for ns, c := range after {
		d[ns] = c.Sub(before[ns])
	}
	if f := d[l.Router.NS].SNMP["Ip.ForwDatagrams"]; f < n {
		t.Errorf("router forwarded %d, want ≥ %d", f, n)
	}
	if rx := d[r.NS].Links[HostIface].RxPackets; rx < n {
		t.Errorf("real server's eth0 received %d, want ≥ %d", rx, n)
	}
	rs := d[r.NS].SNMP
	if got == 0 || got >= n || rs["Udp.RcvbufErrors"] != uint64(n-got) || rs["Udp.InDatagrams"] != uint64(got) {
		t.Errorf("socket queued %d of %d; real server's UDP MIB: InDatagrams %d, RcvbufErrors %d, InErrors %d",
			got, n, rs["Udp.InDatagrams"], rs["Udp.RcvbufErrors"], rs["Udp.InErrors"])
	}
	if e := d[l.Clients[0].NS].SNMP["Udp.RcvbufErrors"]; e != 0 {
		t.Errorf("client's namespace counted %d RcvbufErrors: counters are not per namespace", e)
	}
	if _, err := ReadSoftnet(); err != nil {
		t.Error(err)
	}
}
