package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestBuilderPacksLikeTheKernel(t *testing.T) {
	// sync_maxlen 1472 (1500 - IPv4 - UDP). The SIP template is 57 bytes,
	// 60 with padding: 8 + 57 + 23*60 = 1445 <= 1472, and a 25th would
	// need 1445 + 3 + 57 = 1505.
	var b Builder
	if err := b.Reset(make([]byte, BufferLen(1472)), 1, 0, 1472); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		err := b.Append(&sipTemplate)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 24 || b.Len() != 1445 || b.Count() != 24 {
		t.Fatalf("%d entries, %d bytes; want 24, 1445", n, b.Len())
	}
	_, conns, reasons := decodeAll(t, b.Bytes())
	if len(conns) != 24 {
		t.Fatalf("decoded %v", reasons)
	}

	// The first entry goes in even when it is longer than maxLen.
	if err := b.Reset(make([]byte, BufferLen(40)), 1, 0, 40); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(&sipTemplate); err != nil {
		t.Fatalf("first entry: %v", err)
	}
	if err := b.Append(&udpConn); !errors.Is(err, ErrFull) {
		t.Fatalf("second entry: %v, want ErrFull", err)
	}
	if b.Len() != HeaderLen+57 {
		t.Fatalf("len %d", b.Len())
	}

	// At most 255 entries, whatever maxLen.
	if err := b.Reset(make([]byte, 65535), 1, 0, 65535); err != nil {
		t.Fatal(err)
	}
	for range MaxConns {
		if err := b.Append(&udpConn); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Append(&udpConn); !errors.Is(err, ErrFull) {
		t.Fatalf("entry 256: %v", err)
	}
	if h, conns, _ := decodeAll(t, b.Bytes()); h.Count != 255 || len(conns) != 255 {
		t.Fatalf("count %d, decoded %d", h.Count, len(conns))
	}

	// Version 0: 24-byte entries, no padding: (1472-4)/24 = 61.
	if err := b.Reset(make([]byte, BufferLen(1472)), 0, 0, 1472); err != nil {
		t.Fatal(err)
	}
	for n = 0; b.Append(&udpConn) == nil; n++ {
	}
	if n != 61 || b.Len() != 4+61*24 {
		t.Fatalf("v0: %d entries, %d bytes", n, b.Len())
	}
}

func TestBuilderRefuses(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1")
	long := bytes.Repeat([]byte("x"), 256)
	for _, tc := range []struct {
		name    string
		version int
		mod     func(*Conn)
		want    error
	}{
		{"mixed families", 1, func(c *Conn) { c.DAddr = v6 }, ErrFamily},
		{"no address", 1, func(c *Conn) { c.CAddr = netip.Addr{} }, ErrFamily},
		{"pe data 256 bytes", 1, func(c *Conn) { c.PEData = long }, ErrPEDataLen},
		{"pe name 17 bytes", 1, func(c *Conn) { c.PEName = long[:17] }, ErrPENameLen},
		{"pe data without name", 1, func(c *Conn) { c.PEName = nil }, ErrPEDataWithoutName},
		{"v0 IPv6", 0, func(c *Conn) { c.CAddr, c.VAddr, c.DAddr = v6, v6, v6 }, ErrV0IPv6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Builder
			if err := b.Reset(make([]byte, BufferLen(1472)), tc.version, 0, 1472); err != nil {
				t.Fatal(err)
			}
			c := sipTemplate
			tc.mod(&c)
			if err := b.Append(&c); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if b.Count() != 0 || b.Len() != len(b.Bytes()) {
				t.Fatal("a refused entry changed the message")
			}
		})
	}
	var b Builder
	if err := b.Reset(make([]byte, 100), 1, 0, 1472); !errors.Is(err, ErrBufferTooSmall) {
		t.Errorf("short buffer: %v", err)
	}
	if err := b.Reset(make([]byte, 2000), 2, 0, 1472); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: %v", err)
	}
}

func TestBuilderKernelQuirks(t *testing.T) {
	// The name goes only with data; HASHED is never sent; v0 carries no
	// timeout, fwmark or pe data and only 16 flag bits.
	c := udpConn
	c.PEName = []byte("sip")
	c.Flags |= FlagHashed | FlagNFCT
	c.FWMark = 5
	_, conns, _ := decodeAll(t, build(t, 1, 0, 1472, c))
	if len(conns) != 1 || conns[0].PEName != nil || conns[0].Flags != FlagDRoute|FlagNFCT || conns[0].FWMark != 5 {
		t.Fatalf("v1: %+v", conns)
	}
	c = sipTemplate
	c.Flags |= FlagNFCT
	c.FWMark = 5
	_, conns, _ = decodeAll(t, build(t, 0, 0, 1472, c))
	if len(conns) != 1 || conns[0].PEData != nil || conns[0].Timeout != 0 || conns[0].FWMark != 0 || conns[0].Flags != FlagTemplate|FlagDRoute {
		t.Fatalf("v0: %+v", conns)
	}
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, BufferLen(1472))
	conns := []Conn{sipTemplate, udpConn, sipTemplate6, tcpSeqConn}
	var b Builder
	if n := testing.AllocsPerRun(100, func() {
		_ = b.Reset(buf, 1, 3, 1472)
		for i := range conns {
			_ = b.Append(&conns[i])
		}
	}); n != 0 {
		t.Errorf("Builder: %v allocs", n)
	}
	msg := build(t, 1, 3, 1472, conns...)
	v0 := goldenV0(t)
	var d Decoder
	var c Conn
	if n := testing.AllocsPerRun(100, func() {
		for _, m := range [][]byte{msg, v0} {
			d.Reset(m)
			for d.Next(&c) != Done {
			}
		}
	}); n != 0 {
		t.Errorf("Decoder: %v allocs", n)
	}
}

func BenchmarkEncode(b *testing.B) {
	buf := make([]byte, BufferLen(1472))
	var m Builder
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == 0 {
			_ = m.Reset(buf, 1, 0, 1472)
		}
		if m.Append(&sipTemplate) != nil {
			_ = m.Reset(buf, 1, 0, 1472)
			_ = m.Append(&sipTemplate)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkDecode(b *testing.B) {
	var m Builder
	_ = m.Reset(make([]byte, BufferLen(1472)), 1, 0, 1472)
	for m.Append(&sipTemplate) == nil {
	}
	msg := m.Bytes()
	var d Decoder
	var c Conn
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		d.Reset(msg)
		for d.Next(&c) != Done {
		}
	}
	b.ReportMetric(float64(b.N)*float64(m.Count())/b.Elapsed().Seconds(), "entries/s")
}

// TestTimesOption: xvs's times option rides after the pe options, is read
// back, is skipped by the kernel's rule for optional parameters (a receiver
// that did not know it would decode the same entry without it), and is not
// sent in version 0.
func TestTimesOption(t *testing.T) {
	c := sipTemplate
	c.Times = Times{Queued: 1_700_000_000_123_456_789, Used: 1_700_000_000_000_000_001}
	var b Builder
	if err := b.Reset(make([]byte, BufferLen(1472)), 1, 7, 1472); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(&c); err != nil {
		t.Fatal(err)
	}
	msg := b.Bytes()
	if len(msg) != HeaderLen+57+OptHeaderLen+TimesLen || ConnLen(&c) != 57+18 {
		t.Fatalf("%d bytes: %x", len(msg), msg)
	}
	if tail := msg[len(msg)-18:]; tail[0] != 0x78 || tail[1] != 16 || binary.BigEndian.Uint64(tail[2:]) != uint64(c.Times.Queued) ||
		binary.BigEndian.Uint64(tail[10:]) != uint64(c.Times.Used) {
		t.Errorf("option bytes %x", tail)
	}
	_, conns, reasons := decodeAll(t, msg)
	if len(conns) != 1 || conns[0].Times != c.Times || string(conns[0].PEData) != string(c.PEData) {
		t.Fatalf("decoded %+v %v", conns, reasons)
	}
	// Another optional parameter in its place is skipped: the entry is
	// the same without the origin.
	other := bytes.Clone(msg)
	other[len(other)-18] = OptParamFlag | 0x3f
	if _, conns, _ := decodeAll(t, other); len(conns) != 1 || conns[0].Times != (Times{}) || string(conns[0].PEName) != "sip" {
		t.Errorf("skipped parameter: %+v", conns)
	}
	// Version 0 has no room for it.
	if err := b.Reset(make([]byte, BufferLen(1472)), 0, 7, 1472); err != nil {
		t.Fatal(err)
	}
	c.PEData, c.PEName = nil, nil
	if err := b.Append(&c); err != nil || b.Len() != HeaderLenV0+ConnLenV0 {
		t.Errorf("v0: %v, %d bytes", err, b.Len())
	}
}
