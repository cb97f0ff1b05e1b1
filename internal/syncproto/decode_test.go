package syncproto

import (
	"encoding/binary"
	"slices"
	"testing"
)

// v4Entry returns a version 1 IPv4 UDP connection entry (36 bytes) of the
// given total size field, followed by opts (which the size must cover).
func v4Entry(t testing.TB, typ, proto byte, flags uint32, state uint16, opts ...string) []byte {
	t.Helper()
	e := hexBytes(t,
		"00", "00", "0000", // type, protocol, ver_size: patched below
		"00000000", "0000", // flags, state: patched
		"13c6", "13c4", "13c4", "00000000", "0000012c",
		"0a040307", "0a0403c0", "c0a8010a",
	)
	e[0], e[1] = typ, proto
	binary.BigEndian.PutUint32(e[4:], flags)
	binary.BigEndian.PutUint16(e[8:], state)
	e = append(e, hexBytes(t, opts...)...)
	binary.BigEndian.PutUint16(e[2:], uint16(len(e)))
	return e
}

// message joins a version 1 header announcing count entries with the
// entries, each padded to 4 bytes but the last, and sets the size.
func message(count int, entries ...[]byte) []byte {
	m := []byte{0, 9, 0, 0, byte(count), 1, 0, 0}
	for i, e := range entries {
		m = append(m, e...)
		if i < len(entries)-1 {
			for len(m)%4 != 0 {
				m = append(m, 0)
			}
		}
	}
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	return m
}

func withSize(e []byte, size int) []byte {
	e = slices.Clone(e)
	binary.BigEndian.PutUint16(e[2:], uint16(size))
	return e
}

// TestDecodeKernelRules checks each rule of ip_vs_process_message and
// ip_vs_proc_sync_conn, in the kernel's order: which faults drop an entry
// and which drop the rest of the message.
func TestDecodeKernelRules(t *testing.T) {
	const tpl, drt = uint32(FlagTemplate), uint32(FlagDRoute)
	udp := v4Entry(t, 0, ProtoUDP, drt, 0)
	tmpl := func(opts ...string) []byte { return v4Entry(t, 0, ProtoUDP, tpl|drt, 0, opts...) }
	pe := []string{"02 03 616263", "03 03 736970"} // pe data "abc", pe name "sip"

	for _, tc := range []struct {
		name string
		msg  []byte
		want []Reason
	}{
		{"short header", []byte{0, 0, 0}, []Reason{ShortHeader}},
		{"size larger than datagram", func() []byte { m := message(1, udp); m[3]++; return m }(), []Reason{BadSize}},
		{"size smaller than datagram", func() []byte { m := message(1, udp); m[3]--; return m }(), []Reason{BadSize}},
		{"empty v1", message(0), nil},
		{"spare set: a v0 message of 0 entries", func() []byte { m := message(1, udp); m[7] = 1; return m }(), nil},
		{"reserved set: v0 of that many entries", func() []byte { m := message(1, udp); m[0] = 1; return m }(), []Reason{UnsupportedProtocol}},
		{"fewer entries than count", message(3, udp, udp), []Reason{OK, OK, Truncated}},
		{"more entries than count", message(1, udp, udp), []Reason{OK}},
		{"entry past message end", message(2, udp, withSize(udp, 40)), []Reason{OK, EntryOverrun}},
		{"entry version 1", message(2, withSize(udp, 0x1000|36), udp), []Reason{BadEntryVersion}},
		{"type 2", message(2, v4Entry(t, 2, ProtoUDP, drt, 0), udp), []Reason{BadType}},
		{"type 3 is IPv6: too short for it", message(1, v4Entry(t, 3, ProtoUDP, drt, 0, "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000")), []Reason{EntryTooShort}},
		{"type 3 is IPv6", message(1, v4Entry(t, 3, ProtoUDP, drt, 0, "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000")), []Reason{OK}},
		{"type read beyond a size-0 entry", message(2, withSize(v4Entry(t, 2, ProtoUDP, drt, 0), 0), udp), []Reason{BadType}},
		{"entry shorter than fixed part", message(1, append(withSize(udp, 30), 0, 0)), []Reason{EntryTooShort}},
		{"size 0", message(2, withSize(udp, 0), udp), []Reason{EntryTooShort}},
		{"option header cut", message(1, withSize(append(slices.Clone(udp), 2), 37)), []Reason{BadOptionHeader}},
		{"option length 0", message(1, tmpl("02 00")), []Reason{BadOptionLength}},
		{"option past entry", message(1, withSize(tmpl("02 03 616263"), 40)), []Reason{BadOptionLength}},
		{"seq option 12 bytes", message(1, tmpl("01 0c 000000000000000000000000")), []Reason{BadSeqOption}},
		{"seq option twice", message(1, tmpl("01 18 "+zeros(24), "01 18 "+zeros(24))), []Reason{BadSeqOption}},
		{"pe data twice", message(1, tmpl("02 01 61", "02 01 62", "03 03 736970")), []Reason{BadPEDataOption}},
		{"pe name 17 bytes", message(1, tmpl("02 01 61", "03 11 "+zeros(17))), []Reason{BadPENameOption}},
		{"pe name twice", message(1, tmpl("02 01 61", "03 01 61", "03 01 61")), []Reason{BadPENameOption}},
		{"pe name 16 bytes", message(1, tmpl("02 01 61", "03 10 "+zeros(16))), []Reason{OK}},
		{"unknown mandatory option drops the entry only", message(2, tmpl("09 02 0000"), udp), []Reason{UnknownOption, OK}},
		{"type 0 option is mandatory and unknown", message(2, tmpl("00 01 00"), udp), []Reason{UnknownOption, OK}},
		{"unknown mandatory option stops parsing the entry", message(2, tmpl("09 01 00", "02 00"), udp), []Reason{UnknownOption, OK}},
		{"unknown optional option is skipped", message(1, tmpl("49 02 0000", pe[0], pe[1])), []Reason{OK}},
		{"param flag on a known option", message(1, tmpl("42 03 616263", "43 03 736970")), []Reason{OK}},
		{"udp state 1", message(2, v4Entry(t, 0, ProtoUDP, drt, 1), udp), []Reason{BadState, OK}},
		{"tcp state 10 (SYNACK)", message(1, v4Entry(t, 0, ProtoTCP, drt, 10)), []Reason{OK}},
		{"tcp state 11", message(1, v4Entry(t, 0, ProtoTCP, drt, 11)), []Reason{BadState}},
		{"sctp state 13 (CLOSED)", message(1, v4Entry(t, 0, ProtoSCTP, drt, 13)), []Reason{OK}},
		{"sctp state 14", message(1, v4Entry(t, 0, ProtoSCTP, drt, 14)), []Reason{BadState}},
		{"esp and ah", message(2, v4Entry(t, 0, ProtoESP, drt, 0), v4Entry(t, 0, ProtoAH, drt, 0)), []Reason{OK, OK}},
		{"icmp connection", message(2, v4Entry(t, 0, 1, drt, 0), udp), []Reason{UnsupportedProtocol, OK}},
		{"template state ASSURED", message(1, v4Entry(t, 0, ProtoUDP, tpl, 1)), []Reason{OK}},
		{"template state 2", message(1, v4Entry(t, 0, ProtoUDP, tpl, 2)), []Reason{BadState}},
		{"fwmark template, protocol 0", message(1, v4Entry(t, 0, ProtoIP, tpl, 0)), []Reason{OK}},
		{"template of any protocol", message(1, v4Entry(t, 0, 1, tpl, 0)), []Reason{OK}},
		{"pe data without name", message(2, tmpl(pe[0]), udp), []Reason{PEDataWithoutName, OK}},
		{"pe name without data", message(1, tmpl(pe[1])), []Reason{OK}},
		{"pe name before data", message(1, tmpl(pe[1], pe[0])), []Reason{OK}},
		{"entries before a fatal fault stand", message(3, udp, udp, v4Entry(t, 4, ProtoUDP, drt, 0)), []Reason{OK, OK, BadType}},
		{"flags beyond the backup mask", message(1, v4Entry(t, 0, ProtoUDP, drt|uint32(FlagOnePacket|FlagNFCT|FlagSync|FlagHashed), 0)), []Reason{OK}},
		{"template flag beyond 16 bits is not a template", message(1, v4Entry(t, 0, 1, 0x10000|drt, 0)), []Reason{UnsupportedProtocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, got := decodeAll(t, tc.msg)
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons %v, want %v", got, tc.want)
			}
			for _, r := range got {
				if r.Fatal() && r != got[len(got)-1] {
					t.Errorf("fatal %v before the end", r)
				}
			}
		})
	}
}

func zeros(n int) string {
	b := make([]byte, 2*n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

func TestDecodeV0Rules(t *testing.T) {
	conn := hexBytes(t, "00 11 13c6 13c4 13c4 0a040307 0a0403c0 c0a8010a 0003 0000")
	msg := func(count int, entries ...[]byte) []byte {
		m := []byte{byte(count), 3, 0, 0}
		for _, e := range entries {
			m = append(m, e...)
		}
		binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
		return m
	}
	set := func(e []byte, off int, v uint16) []byte {
		e = slices.Clone(e)
		binary.BigEndian.PutUint16(e[off:], v)
		return e
	}
	icmp := slices.Clone(conn)
	icmp[1] = 1
	for _, tc := range []struct {
		name string
		msg  []byte
		want []Reason
	}{
		{"two entries", msg(2, conn, conn), []Reason{OK, OK}},
		{"count past the end", msg(3, conn, conn), []Reason{OK, OK, Truncated}},
		{"seq option cut", msg(1, append(set(conn, 20, 0x0403), make([]byte, 23)...)), []Reason{Truncated}},
		{"seq option", msg(2, append(set(conn, 20, 0x0203), make([]byte, 24)...), conn), []Reason{OK, OK}},
		{"unsupported protocol", msg(2, icmp, conn), []Reason{UnsupportedProtocol, OK}},
		{"bad state", msg(2, set(conn, 22, 1), conn), []Reason{BadState, OK}},
		{"template state", msg(2, set(set(conn, 20, 0x1003), 22, 2), set(set(conn, 20, 0x1003), 22, 1)), []Reason{BadState, OK}},
		{"short v0 header message", []byte{1, 0, 0, 4}, []Reason{Truncated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, got := decodeAll(t, tc.msg)
			if h.Version != 0 && len(tc.msg) >= HeaderLenV0 {
				t.Fatalf("version %d", h.Version)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons %v, want %v", got, tc.want)
			}
		})
	}
}

func TestForBackup(t *testing.T) {
	wire := FlagDRoute | FlagTemplate | FlagOnePacket | FlagHashed | FlagNFCT | FlagInactive
	if got, want := wire.ForBackup(1), FlagDRoute|FlagTemplate|FlagInactive|FlagSync; got != want {
		t.Errorf("v1: %#x, want %#x", got, want)
	}
	if got, want := (wire & 0xffff).ForBackup(0), FlagDRoute|FlagTemplate|FlagOnePacket|FlagInactive|FlagSync; got != want {
		t.Errorf("v0: %#x, want %#x", got, want)
	}
}

func TestReasonNames(t *testing.T) {
	for r := range NumReasons {
		if r.String() == "" || r.String() == "reason?" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if !BadType.Fatal() || UnknownOption.Fatal() || OK.Fatal() || Done.Fatal() || UnknownPE.Fatal() {
		t.Error("Fatal classifies wrongly")
	}
}
