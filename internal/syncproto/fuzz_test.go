package syncproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzSeeds are the committed corpus of FuzzDecode (TestWriteFuzzCorpus
// writes them): version 1 and 0 messages, truncated and oversized ones, and
// each kind of bad option.
func fuzzSeeds(t testing.TB) map[string][]byte {
	v1 := goldenV1TemplateAndConn(t)
	full := func() []byte {
		var b Builder
		_ = b.Reset(make([]byte, 65535), 1, 1, 65535)
		c := sipTemplate6
		c.PEData = bytes.Repeat([]byte{'x'}, MaxPEDataLen)
		c.PEName = bytes.Repeat([]byte{'n'}, MaxPENameLen)
		c.Flags |= FlagSeqMask
		for b.Append(&c) == nil {
		}
		return b.Bytes()
	}()
	udp := v4Entry(t, 0, ProtoUDP, uint32(FlagDRoute), 0)
	tmpl := func(opts ...string) []byte {
		return message(2, v4Entry(t, 0, ProtoUDP, uint32(FlagTemplate|FlagDRoute), 0, opts...), udp)
	}
	setSize := func(m []byte, n int) []byte {
		m = slices.Clone(m)
		binary.BigEndian.PutUint16(m[2:], uint16(n))
		return m
	}
	return map[string][]byte{
		"v1-template-and-conn":  v1,
		"v1-ipv6-template":      goldenV1IPv6(t),
		"v1-seq":                goldenV1Seq(t),
		"v1-full-longest":       full,
		"v1-empty":              message(0),
		"v0":                    goldenV0(t),
		"v0-seq-truncated":      setSize(goldenV0(t)[:60], 60),
		"truncated-unfixed":     v1[:len(v1)-5],
		"truncated-size-fixed":  setSize(v1[:len(v1)-5], len(v1)-5),
		"oversized":             append(slices.Clone(v1), make([]byte, 64)...),
		"oversized-size-fixed":  setSize(append(slices.Clone(v1), make([]byte, 64)...), len(v1)+64),
		"short-header":          {0, 7, 0},
		"entry-overrun":         message(2, udp, withSize(udp, 200)),
		"entry-version":         message(1, withSize(udp, 0x2024)),
		"bad-type":              message(1, v4Entry(t, 4, ProtoUDP, 3, 0)),
		"opt-unknown-mandatory": tmpl("09 02 0000"),
		"opt-unknown-optional":  tmpl("49 02 0000", "02 03 616263", "03 03 736970"),
		"opt-zero-length":       tmpl("02 00"),
		"opt-past-entry":        message(1, withSize(v4Entry(t, 0, ProtoUDP, uint32(FlagTemplate), 0, "02 03 616263"), 40)),
		"opt-seq-twice":         tmpl("01 18 "+zeros(24), "01 18 "+zeros(24)),
		"opt-pe-name-too-long":  tmpl("02 01 61", "03 11 "+zeros(17)),
		"opt-pe-data-no-name":   tmpl("02 03 616263"),
		"bad-state":             message(1, v4Entry(t, 0, ProtoTCP, 3, 11)),
		"spare-set":             func() []byte { m := slices.Clone(v1); m[7] = 1; return m }(),
	}
}

// normalize is what a round trip through Builder keeps of a decoded entry:
// no FlagHashed, the pe name only with pe data, sequence data only when the
// flags ask for it, and version 0's 16-bit flags.
func normalize(c Conn, version int) Conn {
	c.Flags &^= FlagHashed
	if version == 0 {
		c.Flags &= 0xffff
		c.Timeout, c.FWMark, c.PEName, c.PEData = 0, 0, nil, nil
	}
	if len(c.PEData) == 0 {
		c.PEName, c.PEData = nil, nil
	}
	c.HasSeq = c.Flags&FlagSeqMask != 0
	if !c.HasSeq {
		c.InSeq, c.OutSeq = Seq{}, Seq{}
	}
	return c
}

// FuzzDecode checks that any datagram decodes without panicking or
// allocating, that every outcome is a known reason, and that a message whose
// entries are all valid survives a round trip: encoding what was decoded
// and decoding it again gives the same entries, and encoding is then
// stable. Canonical messages (what the kernel and Builder send) re-encode
// byte for byte (TestCanonicalRoundTrip).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d Decoder
		var c Conn
		h, r := d.Reset(msg)
		if r != OK && r != ShortHeader && r != BadSize {
			t.Fatalf("Reset: %v", r)
		}
		var ok []Conn
		all := r == OK
		for calls := 0; ; calls++ {
			if calls > MaxConns+1 {
				t.Fatal("Next does not end")
			}
			r := d.Next(&c)
			if r == Done {
				break
			}
			switch {
			case r == OK:
				if !c.Template() && c.Protocol == 0 || len(c.PEName) > MaxPENameLen {
					t.Fatalf("accepted an invalid entry %+v", c)
				}
				ok = append(ok, c)
			case r >= NumReasons || r == SyncIDMismatch || r == UnknownPE || r == ShortHeader || r == BadSize:
				t.Fatalf("Next: unexpected reason %v", r)
			default:
				all = false
			}
		}
		if n := testing.AllocsPerRun(1, func() {
			d.Reset(msg)
			for d.Next(&c) != Done {
			}
		}); n != 0 {
			t.Fatalf("decoding allocates (%v)", n)
		}
		if !all || len(ok) != h.Count {
			return
		}
		enc := build(t, h.Version, h.SyncID, 65535, ok...)
		h2, again, reasons := decodeAll(t, enc)
		if h2.Version != h.Version || h2.SyncID != h.SyncID || len(again) != len(ok) {
			t.Fatalf("round trip: header %+v→%+v, %d→%d entries %v", h, h2, len(ok), len(again), reasons)
		}
		for i := range ok {
			if want := normalize(ok[i], h.Version); !sameConn(again[i], want) || again[i].HasSeq != want.HasSeq {
				t.Fatalf("entry %d round trip:\n got %+v\nwant %+v", i, again[i], want)
			}
		}
		if enc2 := build(t, h.Version, h.SyncID, 65535, again...); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// TestCanonicalRoundTrip: messages as the kernel sends them decode and
// re-encode byte for byte.
func TestCanonicalRoundTrip(t *testing.T) {
	for name, msg := range map[string][]byte{
		"v1-template-and-conn": goldenV1TemplateAndConn(t),
		"v1-ipv6-template":     goldenV1IPv6(t),
		"v1-seq":               goldenV1Seq(t),
		"v0":                   goldenV0(t),
		"full":                 fuzzSeeds(t)["v1-full-longest"],
	} {
		h, conns, reasons := decodeAll(t, msg)
		if len(conns) != h.Count {
			t.Fatalf("%s: %v", name, reasons)
		}
		if enc := build(t, h.Version, h.SyncID, 65535, conns...); !bytes.Equal(enc, msg) {
			t.Errorf("%s: re-encoded\n%x\nwant\n%x", name, enc, msg)
		}
	}
}

// TestWriteFuzzCorpus writes the seeds as committed corpus files when
// XVS_WRITE_FUZZ_CORPUS is set (go test -run TestWriteFuzzCorpus).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("XVS_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set XVS_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzDecode/seed-*")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
