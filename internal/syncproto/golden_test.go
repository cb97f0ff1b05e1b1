package syncproto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// The expected bytes below are written out field by field from the kernel's
// structs (struct ip_vs_sync_mesg, ip_vs_sync_v4, ip_vs_sync_v6,
// ip_vs_sync_mesg_v0, ip_vs_sync_conn_v0, ip_vs_sync_conn_options), not
// produced by the encoder under test.

var (
	// A SIP persistence template, as IPVS creates it for
	// "ipvsadm -A -u 10.4.3.192:5060 -p 60 -M 0.0.0.0 -o --pe sip" with
	// real server 192.168.1.10:5060 (direct routing): client 0.0.0.0:0.
	sipTemplate = Conn{
		Protocol: ProtoUDP,
		Flags:    FlagTemplate | FlagDRoute,
		State:    TplNone,
		CAddr:    netip.MustParseAddr("0.0.0.0"),
		VAddr:    netip.MustParseAddr("10.4.3.192"),
		DAddr:    netip.MustParseAddr("192.168.1.10"),
		VPort:    5060,
		DPort:    5060,
		Timeout:  60,
		PEName:   []byte("sip"),
		PEData:   []byte("a84b4c76e66710"),
	}
	// A UDP connection of a persistent, non-OPS service.
	udpConn = Conn{
		Protocol: ProtoUDP,
		Flags:    FlagDRoute,
		State:    UDPNormal,
		CAddr:    netip.MustParseAddr("10.4.3.7"),
		VAddr:    netip.MustParseAddr("10.4.3.192"),
		DAddr:    netip.MustParseAddr("192.168.1.10"),
		CPort:    5062,
		VPort:    5060,
		DPort:    5060,
		Timeout:  300,
	}
	// An IPv6 SIP template with a fwmark and the ASSURED state.
	sipTemplate6 = Conn{
		Protocol: ProtoUDP,
		Flags:    FlagTemplate | FlagMasq,
		State:    TplAssured,
		CAddr:    netip.MustParseAddr("2001:db8::7"),
		VAddr:    netip.MustParseAddr("2001:db8:1::1"),
		DAddr:    netip.MustParseAddr("fd00::10"),
		VPort:    5060,
		DPort:    5080,
		FWMark:   0x00abcdef,
		Timeout:  3600,
		PEName:   []byte("sip"),
		PEData:   []byte("call-1@[2001:db8::7]"),
	}
	// A NAT TCP connection with sequence adjustment (an FTP control
	// connection whose PORT command was rewritten).
	tcpSeqConn = Conn{
		Protocol: ProtoTCP,
		Flags:    FlagMasq | FlagOutSeq | FlagInSeq,
		State:    TCPEstablished,
		CAddr:    netip.MustParseAddr("198.51.100.1"),
		VAddr:    netip.MustParseAddr("203.0.113.5"),
		DAddr:    netip.MustParseAddr("10.0.0.2"),
		CPort:    40000,
		VPort:    21,
		DPort:    21,
		Timeout:  900,
		InSeq:    Seq{Init: 0x01020304, Delta: 5, PrevDelta: 2},
		OutSeq:   Seq{Init: 0xa0b0c0d0, Delta: 0xfffffffe, PrevDelta: 0},
	}
)

// hexBytes joins hex fields, ignoring spaces, so that each line of an
// expected message can be one struct field.
func hexBytes(t testing.TB, fields ...string) []byte {
	t.Helper()
	var b []byte
	for _, f := range fields {
		f = string(bytes.ReplaceAll([]byte(f), []byte(" "), nil))
		x, err := hex.DecodeString(f)
		if err != nil {
			t.Fatalf("bad hex %q: %v", f, err)
		}
		b = append(b, x...)
	}
	return b
}

func goldenV1TemplateAndConn(t testing.TB) []byte {
	return hexBytes(t,
		// struct ip_vs_sync_mesg
		"00",   // reserved
		"07",   // syncid 7
		"0068", // size 104 = 8 + 57 + 3 (padding) + 36
		"02",   // nr_conns 2
		"01",   // version 1
		"0000", // spare

		// entry 1: struct ip_vs_sync_v4, the template
		"00",       // type 0 = IPv4
		"11",       // protocol 17 (UDP)
		"0039",     // ver_size: version 0, size 57 = 36 + (2+14) + (2+3)
		"00001003", // flags: TEMPLATE 0x1000 | DROUTE 3
		"0000",     // state TPL NONE
		"0000",     // cport 0
		"13c4",     // vport 5060
		"13c4",     // dport 5060
		"00000000", // fwmark 0
		"0000003c", // timeout 60 s
		"00000000", // caddr 0.0.0.0
		"0a0403c0", // vaddr 10.4.3.192
		"c0a8010a", // daddr 192.168.1.10
		"02", "0e", // IPVS_OPT_PE_DATA, length 14
		"6138346234633736653636373130", // "a84b4c76e66710"
		"03", "03",                     // IPVS_OPT_PE_NAME, length 3
		"736970", // "sip"
		"000000", // padding to 4 bytes (57 -> 60)

		// entry 2: struct ip_vs_sync_v4, the connection
		"00",       // type IPv4
		"11",       // UDP
		"0024",     // size 36
		"00000003", // flags DROUTE
		"0000",     // state UDP NORMAL
		"13c6",     // cport 5062
		"13c4",     // vport 5060
		"13c4",     // dport 5060
		"00000000", // fwmark
		"0000012c", // timeout 300 s
		"0a040307", // caddr 10.4.3.7
		"0a0403c0", // vaddr
		"c0a8010a", // daddr
		// no padding after the last entry
	)
}

func goldenV1IPv6(t testing.TB) []byte {
	return hexBytes(t,
		"00", "00", "006b", "01", "01", "0000", // reserved, syncid 0, size 107 = 8 + 99, 1 entry, v1, spare
		// struct ip_vs_sync_v6
		"01",                               // type STYPE_F_INET6
		"11",                               // UDP
		"0063",                             // size 99 = 72 + (2+20) + (2+3)
		"00001000",                         // flags TEMPLATE | MASQ 0
		"0001",                             // state TPL ASSURED
		"0000",                             // cport
		"13c4",                             // vport 5060
		"13d8",                             // dport 5080
		"00abcdef",                         // fwmark
		"00000e10",                         // timeout 3600 s
		"20010db8000000000000000000000007", // caddr 2001:db8::7
		"20010db8000100000000000000000001", // vaddr 2001:db8:1::1
		"fd000000000000000000000000000010", // daddr fd00::10
		"02", "14",                         // PE_DATA, 20 bytes
		"63616c6c2d31405b323030313a6462383a3a375d", // "call-1@[2001:db8::7]"
		"03", "03", "736970", // PE_NAME "sip"
	)
}

func goldenV1Seq(t testing.TB) []byte {
	return hexBytes(t,
		"00", "ff", "0046", "01", "01", "0000", // syncid 255, size 70 = 8 + 62
		"00", "06", "003e", // IPv4, TCP, size 62 = 36 + 2 + 24
		"00000600",             // flags MASQ | OUT_SEQ | IN_SEQ
		"0001",                 // ESTABLISHED
		"9c40", "0015", "0015", // cport 40000, vport 21, dport 21
		"00000000", "00000384", // fwmark, timeout 900
		"c6336401", "cb007105", "0a000002", // 198.51.100.1, 203.0.113.5, 10.0.0.2
		"01", "18", // IPVS_OPT_SEQ_DATA, 24
		"01020304", "00000005", "00000002", // in_seq: init_seq, delta, previous_delta (network order)
		"a0b0c0d0", "fffffffe", "00000000", // out_seq
	)
}

func goldenV0(t testing.TB) []byte {
	return hexBytes(t,
		// struct ip_vs_sync_mesg_v0
		"02",   // nr_conns 2
		"07",   // syncid 7
		"004c", // size 76 = 4 + 24 + 48
		// struct ip_vs_sync_conn_v0: the connection
		"00", "11", // reserved, UDP
		"13c6", "13c4", "13c4", // cport, vport, dport
		"0a040307", "0a0403c0", "c0a8010a", // caddr, vaddr, daddr
		"0003", // flags DROUTE (16 bits)
		"0000", // state
		// the TCP connection with struct ip_vs_sync_conn_options (host order)
		"00", "06", "9c40", "0015", "0015",
		"c6336401", "cb007105", "0a000002",
		"0600", "0001",
		"04030201", "05000000", "02000000", // in_seq, little-endian
		"d0c0b0a0", "feffffff", "00000000", // out_seq
	)
}

func build(t testing.TB, version int, syncID uint8, maxLen int, conns ...Conn) []byte {
	t.Helper()
	var b Builder
	if err := b.Reset(make([]byte, BufferLen(maxLen)), version, syncID, maxLen); err != nil {
		t.Fatal(err)
	}
	for i := range conns {
		if err := b.Append(&conns[i]); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return b.Bytes()
}

func decodeAll(t testing.TB, msg []byte) (Header, []Conn, []Reason) {
	t.Helper()
	var d Decoder
	h, r := d.Reset(msg)
	if r != OK {
		return h, nil, []Reason{r}
	}
	var conns []Conn
	var reasons []Reason
	for {
		var c Conn
		r := d.Next(&c)
		if r == Done {
			return h, conns, reasons
		}
		reasons = append(reasons, r)
		if r == OK {
			conns = append(conns, c)
		}
	}
}

func sameConn(a, b Conn) bool {
	return a.Protocol == b.Protocol && a.Flags == b.Flags && a.State == b.State &&
		a.CAddr == b.CAddr && a.VAddr == b.VAddr && a.DAddr == b.DAddr &&
		a.CPort == b.CPort && a.VPort == b.VPort && a.DPort == b.DPort &&
		a.FWMark == b.FWMark && a.Timeout == b.Timeout &&
		a.InSeq == b.InSeq && a.OutSeq == b.OutSeq &&
		bytes.Equal(a.PEName, b.PEName) && bytes.Equal(a.PEData, b.PEData)
}

func TestGolden(t *testing.T) {
	v0conn := tcpSeqConn
	v0conn.Timeout = 0 // version 0 does not carry it
	v0udp := udpConn
	v0udp.Timeout = 0
	for _, tc := range []struct {
		name    string
		version int
		syncID  uint8
		want    []byte
		conns   []Conn
		decoded []Conn // when decoding differs from conns
	}{
		{"v1 template and connection", 1, 7, goldenV1TemplateAndConn(t), []Conn{sipTemplate, udpConn}, nil},
		{"v1 IPv6 template", 1, 0, goldenV1IPv6(t), []Conn{sipTemplate6}, nil},
		{"v1 sequence option", 1, 255, goldenV1Seq(t), []Conn{tcpSeqConn}, nil},
		{"v0", 0, 7, goldenV0(t), []Conn{udpConn, tcpSeqConn}, []Conn{v0udp, v0conn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := build(t, tc.version, tc.syncID, 1472, tc.conns...)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoded\n%s\nwant\n%s", hex.Dump(got), hex.Dump(tc.want))
			}
			h, conns, reasons := decodeAll(t, tc.want)
			if h.Version != tc.version || h.SyncID != tc.syncID || h.Count != len(tc.conns) || h.Size != len(tc.want) {
				t.Fatalf("header %+v", h)
			}
			want := tc.decoded
			if want == nil {
				want = tc.conns
			}
			if len(conns) != len(want) {
				t.Fatalf("decoded %d entries (%v), want %d", len(conns), reasons, len(want))
			}
			for i := range want {
				if !sameConn(conns[i], want[i]) {
					t.Errorf("entry %d: got %+v\nwant %+v", i, conns[i], want[i])
				}
			}
		})
	}
}
