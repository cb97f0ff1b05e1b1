package syncd

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/pe"
)

func knownSIP(name []byte) (pe.ID, bool) {
	if bytes.Equal(name, []byte("sip")) {
		return 1, true
	}
	return 0, false
}

func testReceiver(t testing.TB, syncID uint8, deliver func(*Entry) bool) *Receiver {
	t.Helper()
	c, err := Config{SyncID: syncID}.Resolve(Backup, 1500)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newReceiver(ReceiverConfig{Config: c, Switches: syncpolicy.Defaults(), Deliver: deliver, KnownPE: knownSIP, Clock: func() int64 { return 42 }}, c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	tplConn = syncproto.Conn{
		Protocol: syncproto.ProtoUDP, Flags: syncproto.FlagTemplate | syncproto.FlagDRoute,
		CAddr: netip.MustParseAddr("0.0.0.0"), VAddr: netip.MustParseAddr("10.4.3.192"), DAddr: netip.MustParseAddr("192.168.1.10"),
		VPort: 5060, DPort: 5060, Timeout: 60, PEName: []byte("sip"), PEData: []byte("a84b4c76e66710"),
	}
	udpConn = syncproto.Conn{
		Protocol: syncproto.ProtoUDP, Flags: syncproto.FlagDRoute,
		CAddr: netip.MustParseAddr("10.4.3.7"), VAddr: netip.MustParseAddr("10.4.3.192"), DAddr: netip.MustParseAddr("192.168.1.10"),
		CPort: 5062, VPort: 5060, DPort: 5060, Timeout: 300,
	}
)

func msg(t testing.TB, version int, syncID uint8, conns ...syncproto.Conn) []byte {
	t.Helper()
	var b syncproto.Builder
	if err := b.Reset(make([]byte, syncproto.BufferLen(1472)), version, syncID, 1472); err != nil {
		t.Fatal(err)
	}
	for i := range conns {
		if err := b.Append(&conns[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

var master = netip.MustParseAddrPort("10.77.1.11:40000")

func TestReceiverOutcomes(t *testing.T) {
	var got []Entry
	accept := true
	r := testReceiver(t, 7, func(e *Entry) bool {
		c := *e
		c.PEName, c.PEData = slices.Clone(e.PEName), slices.Clone(e.PEData)
		got = append(got, c)
		return accept
	})
	other := tplConn
	other.PEName = []byte("xyz")
	icmp := udpConn
	icmp.Protocol = 1
	r.Process(msg(t, 1, 7, tplConn, udpConn), master)
	r.Process(msg(t, 1, 9, tplConn), master) // another syncid
	r.Process(msg(t, 0, 7, udpConn), master)
	r.Process(msg(t, 1, 7, other, icmp, udpConn), master)
	bad := msg(t, 1, 7, udpConn)
	r.Process(bad[:len(bad)-1], master) // size field says one more byte
	r.Process([]byte{1}, master)
	fatal := msg(t, 1, 7, udpConn, udpConn)
	fatal[8+36] = 2 // second entry: bad type
	r.Process(fatal, master)
	accept = false
	r.Process(msg(t, 1, 7, udpConn), netip.MustParseAddrPort("10.77.1.12:40000"))

	if len(got) != 6 {
		t.Fatalf("delivered %d entries", len(got))
	}
	if got[0].PE != 1 || string(got[0].PEData) != "a84b4c76e66710" || got[0].Version != 1 || got[0].SyncID != 7 || got[0].From != master {
		t.Errorf("template entry %+v", got[0])
	}
	if got[1].PE != 0 || got[1].CPort != 5062 || got[2].Version != 0 {
		t.Errorf("connection entries %+v %+v", got[1], got[2])
	}
	st := r.Stats()
	want := ReceiverStats{Datagrams: 8, Messages: [2]uint64{1, 4}, Entries: 5, Rejected: 1}
	want.Dropped[syncproto.SyncIDMismatch] = 1
	want.Dropped[syncproto.UnknownPE] = 1
	want.Dropped[syncproto.UnsupportedProtocol] = 1
	want.Dropped[syncproto.BadSize] = 1
	want.Dropped[syncproto.ShortHeader] = 1
	want.Dropped[syncproto.BadType] = 1
	st.Bytes = 0
	if st != want {
		t.Errorf("stats\n%+v\nwant\n%+v", st, want)
	}
	peers := r.Peers()
	if len(peers) != 2 || peers[0].Addr != master.Addr() || peers[0].Datagrams != 7 || peers[0].Last != 42 || peers[1].SyncID != 7 {
		t.Errorf("peers %+v", peers)
	}
}

func TestReceiverSyncIDZeroAcceptsAll(t *testing.T) {
	n := 0
	r := testReceiver(t, 0, func(*Entry) bool { n++; return true })
	for id := range 256 {
		r.Process(msg(t, 1, uint8(id), udpConn), master)
	}
	if n != 256 {
		t.Fatalf("accepted %d of 256 syncids", n)
	}
}

func TestReceiverTruncatedDatagram(t *testing.T) {
	// A datagram longer than the receive buffer (sync_maxlen) arrives cut,
	// and its size check drops it, as in the kernel.
	r := testReceiver(t, 0, func(*Entry) bool { return true })
	var conns []syncproto.Conn
	for range 40 {
		conns = append(conns, udpConn)
	}
	m := msg(t, 1, 0, conns...)
	r.Process(m[:1024], master)
	if st := r.Stats(); st.Dropped[syncproto.BadSize] != 1 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReceiverNoAllocs(t *testing.T) {
	r := testReceiver(t, 7, func(*Entry) bool { return true })
	m := msg(t, 1, 7, tplConn, udpConn, tplConn, udpConn)
	v0 := msg(t, 0, 7, udpConn, udpConn)
	if n := testing.AllocsPerRun(100, func() {
		r.Process(m, master)
		r.Process(v0, master)
	}); n != 0 {
		t.Errorf("%v allocs per datagram", n)
	}
}

// FuzzReceive feeds any datagram to a backup: it must not panic or
// allocate, and every datagram must be accounted for (a message accepted,
// or one drop reason for the datagram).
func FuzzReceive(f *testing.F) {
	f.Add(msg(f, 1, 7, tplConn, udpConn))
	f.Add(msg(f, 0, 7, udpConn))
	f.Add([]byte{0, 7, 0, 4})
	long := msg(f, 1, 0, tplConn)
	binary.BigEndian.PutUint16(long[2:], 65535)
	f.Add(long)
	f.Fuzz(func(t *testing.T, data []byte) {
		delivered := uint64(0)
		r := testReceiver(t, 7, func(e *Entry) bool {
			delivered++
			if len(e.PEData) > 0 && e.PE == 0 {
				t.Fatal("pe data delivered without an engine")
			}
			return true
		})
		r.Process(data, master)
		st := r.Stats()
		headerDrops := st.Dropped[syncproto.ShortHeader] + st.Dropped[syncproto.BadSize] + st.Dropped[syncproto.SyncIDMismatch]
		if st.Datagrams != 1 || st.Messages[0]+st.Messages[1]+headerDrops != 1 || st.Entries != delivered {
			t.Fatalf("stats %+v, delivered %d", st, delivered)
		}
		if n := testing.AllocsPerRun(1, func() { r.Process(data, master) }); n != 0 {
			t.Fatalf("%v allocs", n)
		}
	})
}

// TestSocketPathNoAllocs: the master's write and the backup's read of a
// datagram, with its processing, allocate nothing (loopback unicast
// stands in for the multicast sockets, which differ only in options).
func TestSocketPathNoAllocs(t *testing.T) {
	in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skip(err)
	}
	defer in.Close()
	out, err := net.DialUDP("udp4", nil, in.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := testReceiver(t, 7, func(*Entry) bool { return true })
	m := msg(t, 1, 7, tplConn, udpConn)
	buf := make([]byte, r.cfg.MaxLen)
	var sc scratch
	if n := testing.AllocsPerRun(100, func() {
		if _, err := out.Write(m); err != nil {
			t.Fatal(err)
		}
		n, _, _, from, err := in.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.process(&sc, buf[:n], from)
	}); n != 0 {
		t.Errorf("%v allocs per datagram", n)
	}
	if st := r.Stats(); st.Entries != 202 {
		t.Errorf("entries %d", st.Entries)
	}
}
