package syncproto

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xvs-lb/xvs/internal/craft"
)

// writeSyncPcap writes each message as one multicast datagram to
// 224.0.0.81:8848 (or ff02::1:81 when v6), from port 8848 as the kernel's
// master sends them, into an Ethernet pcap.
func writeSyncPcap(t *testing.T, msgs [][]byte, v6 bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sync.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("192.0.2.1:34567"), netip.MustParseAddrPort("224.0.0.81:8848")
	mac := [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x51}
	if v6 {
		src, dst = netip.MustParseAddrPort("[fe80::1]:34567"), netip.MustParseAddrPort("[ff02::1:81]:8848")
		mac = [6]byte{0x33, 0x33, 0x00, 0x01, 0x00, 0x81}
	}
	for i, m := range msgs {
		frame := craft.Spec{Src: src, Dst: dst, SrcMAC: craft.ClientMAC, DstMAC: mac, TTL: 1, Payload: m}.Build()
		ci := gopacketCI(time.Unix(1700000000+int64(i), 0), len(frame))
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// tshark runs tshark on path with the IPVS dissector on port 8848.
func tshark(t *testing.T, path string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tshark is required in CI (Debian package tshark): %v", err)
		}
		t.Skip("tshark not installed")
	}
	cmd := exec.Command("tshark", append([]string{"-n", "-r", path, "-d", "udp.port==8848,ipvs"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// tsharkFields are the IPVS dissector's fields the test compares, in order.
var tsharkFields = []string{
	"ipvs.syncid", "ipvs.size", "ipvs.conncount", "ipvs.version",
	"ipvs.type", "ipvs.proto", "ipvs.size.v1", "ipvs.flags.v1", "ipvs.state",
	"ipvs.cport", "ipvs.vport", "ipvs.dport", "ipvs.fwmark", "ipvs.timeout",
	"ipvs.caddr", "ipvs.vaddr", "ipvs.daddr", "ipvs.caddr6", "ipvs.vaddr6", "ipvs.daddr6",
	"ipvs.flags", "ipvs.in_seq.initial", "ipvs.out_seq.delta",
}

// expectFields renders what tshark should print for a message of the given
// version and syncid built from conns: one tab-separated line in
// tsharkFields order, computed from the entries we meant to send (not from
// our decoder), so that an encoder bug shows. Wireshark reads only an
// entry's fixed part, so entries with options must come last (see
// TestTsharkOptionsLimit).
func expectFields(version int, syncID uint8, size int, conns []Conn) string {
	col := make([][]string, len(tsharkFields))
	add := func(i int, f string, a ...any) { col[i] = append(col[i], fmt.Sprintf(f, a...)) }
	add(0, "%d", syncID)
	add(1, "%d", size)
	add(2, "%d", len(conns))
	if version == 1 {
		add(3, "1")
	}
	for _, c := range conns {
		v6 := c.CAddr.Is6()
		if version == 1 {
			typ, l := 0, 36
			if v6 {
				typ, l = 1, 72
			}
			if c.Flags&FlagSeqMask != 0 {
				l += 2 + 24
			}
			if len(c.PEData) > 0 {
				l += 2 + len(c.PEData) + 2 + len(c.PEName)
			}
			if c.Times != (Times{}) {
				l += 2 + 16 // xvs's times option
			}
			add(4, "%d", typ)
			add(6, "%d", l)
			add(7, "0x%08x", uint32(c.Flags))
			add(12, "0x%08x", c.FWMark)
			add(13, "%d", c.Timeout)
		} else {
			add(20, "0x%04x", uint16(c.Flags))
			if c.Flags&FlagSeqMask != 0 { // v0 carries host order; tshark reads big-endian
				add(21, "0x%08x", bswap32(c.InSeq.Init))
				add(22, "0x%08x", bswap32(c.OutSeq.Delta))
			}
		}
		add(5, "0x%02x", c.Protocol)
		add(8, "0x%04x", c.State)
		add(9, "%d", c.CPort)
		add(10, "%d", c.VPort)
		add(11, "%d", c.DPort)
		a := 14
		if v6 {
			a = 17
		}
		add(a, "%s", c.CAddr)
		add(a+1, "%s", c.VAddr)
		add(a+2, "%s", c.DAddr)
	}
	line := make([]string, len(col))
	for i, c := range col {
		line[i] = strings.Join(c, ",")
	}
	return strings.Join(line, "\t")
}

func bswap32(v uint32) uint32 { return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24 }

// TestTshark checks that Wireshark's IPVS dissector (tshark -d
// udp.port==8848,ipvs), an independent decoder, reads what Builder writes:
// every field of every entry, with no malformed-packet or expert reports.
func TestTshark(t *testing.T) {
	conn6 := udpConn
	conn6.CAddr = netip.MustParseAddr("2001:db8::99")
	conn6.VAddr = netip.MustParseAddr("2001:db8:1::1")
	conn6.DAddr = netip.MustParseAddr("fd00::10")
	conn6.Flags = FlagMasq | FlagInactive
	tcp := udpConn
	tcp.Protocol, tcp.State, tcp.CPort, tcp.Timeout = ProtoTCP, TCPSynRecv, 41000, 60
	fwmarkTpl := Conn{Protocol: ProtoIP, Flags: FlagTemplate | FlagTunnel, State: TplNone,
		CAddr: netip.MustParseAddr("10.9.0.0"), VAddr: netip.MustParseAddr("0.0.0.42"), DAddr: netip.MustParseAddr("192.168.2.1"),
		FWMark: 42, Timeout: 300}
	timed := sipTemplate // as xvs's master sends templates
	timed.Times = Times{Queued: 1_700_000_000_000_000_000, Used: 1_699_999_999_000_000_000}
	var full []Conn
	for i := range 40 { // 8 + 40*36 = 1448 <= 1472; a 41st does not fit
		c := udpConn
		c.CPort = uint16(10000 + i)
		full = append(full, c)
	}
	type datagram struct {
		name    string
		version int
		syncID  uint8
		conns   []Conn
	}
	byTransport := map[bool][]datagram{}
	for _, tc := range []struct {
		name string
		v6   bool // IPv6 transport (ff02::1:81)
		dgs  []datagram
	}{
		{"v4 connections", false, []datagram{{"", 1, 1, []Conn{udpConn, tcp, udpConn}}}},
		{"v6 connections", true, []datagram{{"", 1, 2, []Conn{conn6, conn6}}}},
		{"mixed families", false, []datagram{{"", 1, 3, []Conn{udpConn, conn6, tcp}}}},
		{"v4 template with pe name and data", false, []datagram{{"", 1, 4, []Conn{sipTemplate}}}},
		{"v6 template with pe name and data", true, []datagram{{"", 1, 5, []Conn{sipTemplate6}}}},
		{"connections then a template", false, []datagram{{"", 1, 6, []Conn{udpConn, conn6, sipTemplate}}}},
		{"fwmark template", false, []datagram{{"", 1, 7, []Conn{fwmarkTpl}}}},
		{"template with xvs's times option", false, []datagram{{"", 1, 12, []Conn{timed}}}},
		{"sequence option", false, []datagram{{"", 1, 8, []Conn{tcpSeqConn}}}},
		{"full message", false, []datagram{{"", 1, 9, full}}},
		{"version 0", false, []datagram{{"", 0, 10, []Conn{udpConn, tcpSeqConn, tcp}}}},
		{"several datagrams", false, []datagram{{"", 1, 11, []Conn{udpConn}}, {"", 1, 11, []Conn{sipTemplate}}, {"", 0, 11, []Conn{udpConn}}}},
	} {
		for _, d := range tc.dgs {
			d.name = tc.name
			byTransport[tc.v6] = append(byTransport[tc.v6], d)
		}
	}
	// One tshark run per transport for the fields and one for the verbose
	// dissection keeps the test to a few seconds.
	for _, v6 := range []bool{false, true} {
		dgs := byTransport[v6]
		msgs := make([][]byte, len(dgs))
		for i, d := range dgs {
			msgs[i] = build(t, d.version, d.syncID, 1472, d.conns...)
			if h, _ := (&Decoder{}).Reset(msgs[i]); h.Count != len(d.conns) {
				t.Fatalf("%s: %d of %d entries fit", d.name, h.Count, len(d.conns))
			}
		}
		p := writeSyncPcap(t, msgs, v6)
		args := []string{"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"}
		for _, f := range tsharkFields {
			args = append(args, "-e", f)
		}
		got := strings.Split(strings.TrimRight(tshark(t, p, args...), "\n"), "\n")
		if len(got) != len(dgs) {
			t.Fatalf("tshark printed %d lines for %d datagrams", len(got), len(dgs))
		}
		for i, d := range dgs {
			if want := expectFields(d.version, d.syncID, len(msgs[i]), d.conns); got[i] != want {
				t.Errorf("%s: fields (%s):\n got %q\nwant %q", d.name, strings.Join(tsharkFields, " "), got[i], want)
			}
		}
		if v := tshark(t, p, "-V"); strings.Contains(v, "Malformed") || strings.Contains(v, "Expert Info") {
			t.Errorf("tshark reports a problem:\n%s", v)
		}
	}
}

// TestTsharkOptionsLimit documents what Wireshark's dissector does not
// check: it steps over a version 1 entry by its fixed length (36 or 72) and
// never reads the size field or the options, so the entry after one with
// options (pe data, pe name, sequence) or padding is read at the wrong
// offset. The kernel (and Decoder) step by the size field. tshark still
// reads the first entry of such a message right, which this test checks.
func TestTsharkOptionsLimit(t *testing.T) {
	msg := build(t, 1, 7, 1472, sipTemplate, udpConn)
	p := writeSyncPcap(t, [][]byte{msg}, false)
	got := tshark(t, p, "-T", "fields", "-E", "occurrence=f", "-e", "ipvs.size.v1", "-e", "ipvs.flags.v1", "-e", "ipvs.vaddr", "-e", "ipvs.timeout")
	if want := "57\t0x00001003\t10.4.3.192\t60\n"; got != want {
		t.Errorf("first entry: got %q, want %q", got, want)
	}
	if v := tshark(t, p, "-V"); strings.Contains(v, "Malformed") {
		t.Logf("as expected, Wireshark mis-dissects the entry after one with options")
	}
}

func gopacketCI(ts time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: n, Length: n}
}
