package pe

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSIPRegistered(t *testing.T) {
	e, id, ok := Lookup("sip")
	if !ok || id != SIPID || e.Name() != "sip" || ByID(id) != e {
		t.Fatalf("sip engine not registered: %v %v %v", e, id, ok)
	}
	if !Exists("sip") || Exists("SIP") || Exists("si") {
		t.Fatal("lookup must be exact and case-sensitive, as IPVS's strcmp")
	}
	if ByID(0) != nil || ByID(200) != nil {
		t.Fatal("ByID of an unused id must be nil")
	}
}

type fakeEngine struct{ name string }

func (f fakeEngine) Name() string                        { return f.name }
func (fakeEngine) Fill(*Packet, []byte) ([]byte, Status) { return nil, StatusNotFound }
func (fakeEngine) Hash(d []byte, seed uint64) uint64     { return HashData(d, seed) }
func (fakeEngine) Show(dst, d []byte) []byte             { return AppendEscaped(dst, d) }
func (fakeEngine) ConnOut() bool                         { return false }

func TestRegisterRules(t *testing.T) {
	if _, err := Register(fakeEngine{"sip"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: err = %v, want ErrExists", err)
	}
	if _, err := Register(fakeEngine{""}); err == nil {
		t.Fatal("empty name accepted")
	}
	if _, err := Register(fakeEngine{strings.Repeat("x", MaxNameLen+1)}); err == nil {
		t.Fatal("over-long name accepted")
	}
	id, err := Register(fakeEngine{"test-registry"})
	if err != nil || id == 0 || id == SIPID {
		t.Fatalf("Register = %v, %v", id, err)
	}
	names := Names()
	if len(names) < 2 || !contains(names, "sip") || !contains(names, "test-registry") {
		t.Fatalf("Names = %v", names)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestSIPFill(t *testing.T) {
	scratch := make([]byte, MaxDataLen)
	invite := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a\r\ni:  abc@host \r\n\r\n")
	cases := []struct {
		desc   string
		pkt    Packet
		want   string
		wantSt Status
	}{
		{"compact header, trailing space trimmed", Packet{17, invite}, "abc@host", StatusOK},
		{"TCP is not handled (IPVS: UDP only)", Packet{6, invite}, "", StatusWrongProtocol},
		{"empty datagram", Packet{17, nil}, "", StatusNoPayload},
		{"RTP-like binary", Packet{17, []byte{0x80, 0, 1, 2, 3}}, "", StatusNotFound},
		{"CRLF keep-alive", Packet{17, []byte("\r\n\r\n")}, "", StatusNotFound},
		{"no Call-ID", Packet{17, []byte("OPTIONS sip:a SIP/2.0\r\nMax-Forwards: 70\r\n\r\n")}, "", StatusNotFound},
		{"empty value", Packet{17, []byte("BYE sip:a SIP/2.0\r\nCall-ID:\r\n\r\n")}, "", StatusInvalid},
		{"internal whitespace", Packet{17, []byte("BYE sip:a SIP/2.0\r\nCall-ID: a b\r\n\r\n")}, "", StatusInvalid},
		{"unterminated", Packet{17, []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc")}, "", StatusInvalid},
		{"too long", Packet{17, []byte("BYE sip:a SIP/2.0\r\nCall-ID: " + strings.Repeat("x", 256) + "\r\n\r\n")}, "", StatusTooLong},
		{"exactly 255 bytes", Packet{17, []byte("BYE sip:a SIP/2.0\r\nCall-ID: " + strings.Repeat("x", 255) + "\r\n\r\n")}, strings.Repeat("x", 255), StatusOK},
	}
	for _, c := range cases {
		got, st := SIP{}.Fill(&c.pkt, scratch)
		if st != c.wantSt || string(got) != c.want {
			t.Errorf("%s: Fill = %q, %v; want %q, %v", c.desc, got, st, c.want, c.wantSt)
		}
	}
}

func TestHashDataStable(t *testing.T) {
	// Balancers sharing a configuration must agree on these values forever:
	// a change here moves live calls between real servers on upgrade.
	pinned := map[string]uint64{
		"":                                0x6a911325918bd8ca,
		"a":                               0x92c9df15bfb81ab8,
		"abcd":                            0x599ccc40c217619c,
		"1-4461@127.0.1.1":                0x485e450c1f125309,
		"a84b4c76e66710@pc33.atlanta.com": 0x762ab2a3efce1a62,
	}
	for in, want := range pinned {
		if got := HashData([]byte(in), 0); got != want {
			t.Errorf("HashData(%q) = %#x, want %#x", in, got, want)
		}
	}
	// Sensitivity: every length class, one-byte changes and seeds change the hash.
	seen := map[uint64]string{}
	for n := range 64 {
		b := bytes.Repeat([]byte{'x'}, n)
		for _, seed := range []uint64{0, 1} {
			h := HashData(b, seed)
			if prev, dup := seen[h]; dup {
				t.Fatalf("collision between %q and len %d seed %d", prev, n, seed)
			}
			seen[h] = string(b)
		}
		if n > 0 {
			c := bytes.Clone(b)
			c[n/2] = 'y'
			if HashData(c, 0) == HashData(b, 0) {
				t.Fatalf("len %d: flipping a byte did not change the hash", n)
			}
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	in := []byte("ab\x1b[2J c\\d\x00\xff~")
	got := string(AppendEscaped([]byte("x:"), in))
	want := `x:ab\x1b[2J\x20c\x5cd\x00\xff~`
	if got != want {
		t.Fatalf("AppendEscaped = %q, want %q", got, want)
	}
}

func TestNoAllocs(t *testing.T) {
	scratch := make([]byte, MaxDataLen)
	dst := make([]byte, 0, 4*MaxDataLen)
	pkt := Packet{17, []byte("INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: 1-4461@127.0.1.1\r\n\r\n")}
	var sink uint64
	if n := testing.AllocsPerRun(200, func() {
		id, _ := SIP{}.Fill(&pkt, scratch)
		sink += SIP{}.Hash(id, 7)
		dst = SIP{}.Show(dst[:0], id)
	}); n != 0 {
		t.Fatalf("Fill+Hash+Show allocate %v times per run", n)
	}
	_ = sink
}
