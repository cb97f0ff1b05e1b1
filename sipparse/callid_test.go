package sipparse_test

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/sipparse"
)

// msg builds a request with the given header lines, joined and ended by eol,
// followed by an empty line and a body.
func msg(eol string, headers ...string) []byte {
	var b strings.Builder
	b.WriteString("INVITE sip:bob@example.com SIP/2.0" + eol)
	for _, h := range headers {
		b.WriteString(h + eol)
	}
	b.WriteString(eol + "v=0" + eol)
	return []byte(b.String())
}

const via = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds"

type ruleTest struct {
	name    string
	payload []byte
	want    string // Call-ID when status is OK
	status  sipparse.Status
}

func rulePayloads() (ps [][]byte) {
	for _, tt := range ruleTests() {
		ps = append(ps, tt.payload)
	}
	return ps
}

func TestCallIDRules(t *testing.T) {
	for _, tt := range ruleTests() {
		t.Run(tt.name, func(t *testing.T) {
			m := sipparse.Scan(tt.payload)
			if m.Status != tt.status || string(m.CallID) != tt.want {
				t.Fatalf("Scan(%q) = %q, %v; want %q, %v", tt.payload, m.CallID, m.Status, tt.want, tt.status)
			}
			id, ok := sipparse.CallID(tt.payload)
			if ok != (tt.status == sipparse.StatusOK) || string(id) != tt.want {
				t.Fatalf("CallID(%q) = %q, %v; want %q", tt.payload, id, ok, tt.want)
			}
			if ok && (cap(id) != len(id) || !within(tt.payload, id)) {
				t.Fatalf("CallID is not a capped subslice of the payload")
			}
		})
	}
}

func ruleTests() []ruleTest {
	long255 := strings.Repeat("a", 254) + "@"
	long256 := strings.Repeat("b", 256)
	return []ruleTest{
		// Names: long and compact form, any case.
		{"long form", msg("\r\n", via, "Call-ID: a84b4c76e66710@pc33.example.com"), "a84b4c76e66710@pc33.example.com", sipparse.StatusOK},
		{"long form odd case", msg("\r\n", via, "cALL-iD: abc"), "abc", sipparse.StatusOK},
		{"long form kernel spelling", msg("\r\n", via, "Call-Id: abc"), "abc", sipparse.StatusOK},
		{"compact lower", msg("\r\n", via, "i: abc"), "abc", sipparse.StatusOK},
		{"compact upper", msg("\r\n", via, "I:abc"), "abc", sipparse.StatusOK},
		// Whitespace and folding around the colon and before the value.
		{"space before colon", msg("\r\n", "Call-ID   : abc"), "abc", sipparse.StatusOK},
		{"tab around colon", msg("\r\n", "Call-ID\t:\tabc"), "abc", sipparse.StatusOK},
		{"compact space before colon", msg("\r\n", "i :abc"), "abc", sipparse.StatusOK},
		{"no space after colon", msg("\r\n", "Call-ID:abc"), "abc", sipparse.StatusOK},
		{"folded before value", msg("\r\n", "Call-ID:\r\n   abc"), "abc", sipparse.StatusOK},
		{"folded twice before value", msg("\r\n", "Call-ID: \r\n \r\n\tabc"), "abc", sipparse.StatusOK},
		{"folded before colon", msg("\r\n", "Call-ID\r\n : abc"), "abc", sipparse.StatusOK},
		{"folded before colon LF", msg("\n", "i\n\t:\n abc"), "abc", sipparse.StatusOK},
		// Line ends.
		{"LF only", msg("\n", via, "Call-ID: abc"), "abc", sipparse.StatusOK},
		{"CR only", msg("\r", via, "Call-ID: abc"), "abc", sipparse.StatusOK},
		{"CR only folded", msg("\r", via, "Call-ID:\r abc"), "abc", sipparse.StatusOK},
		{"CR only message with CRLF later", []byte("OPTIONS sip:a SIP/2.0\rVia: x\r\ni: abc\r\r"), "abc", sipparse.StatusOK},
		{"LF and CRLF mixed", []byte("OPTIONS sip:a SIP/2.0\nVia: x\r\ni: abc\r\n\n"), "abc", sipparse.StatusOK},
		{"no blank line, ends after header", []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc\r\n"), "abc", sipparse.StatusOK},
		{"ends in LF", []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc\n"), "abc", sipparse.StatusOK},
		// Trailing whitespace is not part of the value (kernel: rejected).
		{"trailing space", msg("\r\n", "Call-ID: abc  "), "abc", sipparse.StatusOK},
		{"trailing tab", msg("\r\n", "Call-ID: abc\t"), "abc", sipparse.StatusOK},
		{"trailing whitespace-only continuation", msg("\r\n", "Call-ID: abc\r\n  \r\n\t"), "abc", sipparse.StatusOK},
		// The start line is not a header.
		{"start line is not a header", []byte("Call-ID: abc\r\nVia: x\r\n\r\n"), "", sipparse.StatusNoCallID},
		{"response", []byte("SIP/2.0 200 OK\r\nVia: x\r\ni: r1\r\n\r\n"), "r1", sipparse.StatusOK},
		// The search stops at the end of the header section.
		{"call-id in body", []byte("MESSAGE sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: body\r\n"), "", sipparse.StatusNoCallID},
		{"sdp i= line", []byte("INVITE sip:a SIP/2.0\r\nVia: x\r\n\r\nv=0\r\ni=A session\r\n"), "", sipparse.StatusNoCallID},
		{"no call-id, no body", []byte("ACK sip:a SIP/2.0\r\nVia: x\r\n"), "", sipparse.StatusNoCallID},
		{"LF blank line", []byte("ACK sip:a SIP/2.0\nVia: x\n\ni: late\n"), "", sipparse.StatusNoCallID},
		// Names that only look like Call-ID (kernel: the search stops).
		{"longer name first", msg("\r\n", "Call-ID-Ext: x", "Call-ID: real"), "real", sipparse.StatusOK},
		{"prefix name first", msg("\r\n", "Call-IDx: x", "Call-ID: real"), "real", sipparse.StatusOK},
		{"compact-like name first", msg("\r\n", "i-foo: x", "Identity: y", "If-Match: z", "i: real"), "real", sipparse.StatusOK},
		{"name without colon first", msg("\r\n", "Call-ID junk", "Call-ID: real"), "real", sipparse.StatusOK},
		{"name alone on a line", msg("\r\n", "Call-ID", "i: real"), "real", sipparse.StatusOK},
		{"folded line is not a header", msg("\r\n", "Subject: hi", " Call-ID: fake", "i: real"), "real", sipparse.StatusOK},
		// The first Call-ID header decides (kernel: first well-formed one).
		{"duplicate, first wins", msg("\r\n", "Call-ID: one", "i: two"), "one", sipparse.StatusOK},
		{"duplicate, first empty", msg("\r\n", "Call-ID:", "i: two"), "", sipparse.StatusEmpty},
		// Values.
		{"visible ascii beyond the RFC word set", msg("\r\n", "i: a,b;c=d#e$f&g^h|i@j@k"), "a,b;c=d#e$f&g^h|i@j@k", sipparse.StatusOK},
		{"quote and backslash", msg("\r\n", `i: "a'\b"`), `"a'\b"`, sipparse.StatusOK},
		{"bare x@", msg("\r\n", "Call-ID: x@"), "x@", sipparse.StatusOK},
		{"bare @x", msg("\r\n", "Call-ID: @x"), "@x", sipparse.StatusOK},
		{"colon in value", msg("\r\n", "i: c3e@fe80:0:0:0:21a:a0ff:fe07:32e0"), "c3e@fe80:0:0:0:21a:a0ff:fe07:32e0", sipparse.StatusOK},
		{"255 bytes", msg("\r\n", "Call-ID: "+long255), long255, sipparse.StatusOK},
		{"256 bytes", msg("\r\n", "Call-ID: "+long256), "", sipparse.StatusTooLong},
		{"256 bytes then space", msg("\r\n", "Call-ID: "+long256+" x"), "", sipparse.StatusTooLong},
		{"empty", msg("\r\n", "Call-ID:"), "", sipparse.StatusEmpty},
		{"empty with spaces", msg("\r\n", "Call-ID:   "), "", sipparse.StatusEmpty},
		{"empty folded", msg("\r\n", "Call-ID:\r\n "), "", sipparse.StatusEmpty},
		{"internal space", msg("\r\n", "Call-ID: abc def"), "", sipparse.StatusBadChar},
		{"internal tab", msg("\r\n", "Call-ID: abc\tdef"), "", sipparse.StatusBadChar},
		{"folded value", msg("\r\n", "Call-ID: abc\r\n def"), "", sipparse.StatusBadChar},
		{"folded value LF", msg("\n", "Call-ID: abc\n\tdef"), "", sipparse.StatusBadChar},
		{"NUL byte", msg("\r\n", "Call-ID: abc\x00def"), "", sipparse.StatusBadChar},
		{"escape byte", msg("\r\n", "Call-ID: \x1b[2Jabc"), "", sipparse.StatusBadChar},
		{"DEL byte", msg("\r\n", "Call-ID: abc\x7f"), "", sipparse.StatusBadChar},
		{"UTF-8", msg("\r\n", "Call-ID: caf\xc3\xa9"), "", sipparse.StatusBadChar},
		{"C1 CSI", msg("\r\n", "Call-ID: a\x9b2J"), "", sipparse.StatusBadChar},
		{"bare CR in CRLF message", msg("\r\n", "Call-ID: abc\rdef"), "", sipparse.StatusBadChar},
		{"unterminated", []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc"), "", sipparse.StatusUnterminated},
		{"unterminated after spaces", []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc  "), "", sipparse.StatusUnterminated},
		{"unterminated half CRLF", []byte("BYE sip:a SIP/2.0\r\nCall-ID: abc\r"), "", sipparse.StatusUnterminated},
		{"empty at end", []byte("BYE sip:a SIP/2.0\r\nCall-ID:"), "", sipparse.StatusEmpty},
		// Not SIP.
		{"empty payload", nil, "", sipparse.StatusNotSIP},
		{"rtp", []byte{0x80, 0x00, 0x12, 0x34, '\n', 'i', ':', 'x', '\n'}, "", sipparse.StatusNotSIP},
		{"stun", []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, "", sipparse.StatusNotSIP},
		{"no line end", []byte("OPTIONS sip:a SIP/2.0"), "", sipparse.StatusNotSIP},
		{"leading space", []byte(" INVITE sip:a SIP/2.0\r\ni: x\r\n\r\n"), "", sipparse.StatusNotSIP},
		{"crlf keepalive", []byte("\r\n\r\n"), "", sipparse.StatusKeepalive},
		{"lf keepalive", []byte("\n"), "", sipparse.StatusKeepalive},
		{"nul keepalive", []byte{0, 0, 0, 0}, "", sipparse.StatusKeepalive},
		// Malformed start lines still give the Call-ID.
		{"start line without version", []byte("INVITE sip:a\r\ni: x\r\n\r\n"), "x", sipparse.StatusOK},
		{"junk method", []byte("DBREGISTER sip:1.1.1.1:5060 SIP/2.0\r\nExpires: 0\r\n\r\n"), "", sipparse.StatusNoCallID},
	}
}

// within reports whether sub is a subslice of b.
func within(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	for i := range len(b) - len(sub) + 1 {
		if &b[i] == &sub[0] {
			return true
		}
	}
	return false
}

func TestScanLimit(t *testing.T) {
	pad := "X-Pad: " + strings.Repeat("p", 70)
	var hs []string
	for range sipparse.MaxScan/80 + 10 {
		hs = append(hs, pad)
	}
	late := msg("\r\n", append(hs, "Call-ID: late")...)
	if len(late) <= sipparse.MaxScan {
		t.Fatalf("test payload too short: %d", len(late))
	}
	if m := sipparse.Scan(late); m.Status != sipparse.StatusScanLimit {
		t.Errorf("Call-ID beyond MaxScan: status %v, want scan-limit", m.Status)
	}
	// The same header section ending before the limit but a long body: the
	// blank line decides.
	short := msg("\r\n", "Via: x")
	long := append(short, bytes.Repeat([]byte("a=x\r\n"), sipparse.MaxScan)...)
	if m := sipparse.Scan(long); m.Status != sipparse.StatusNoCallID {
		t.Errorf("long body: status %v, want no-call-id", m.Status)
	}
	// A value cut by the limit is scan-limit, not unterminated.
	p := []byte("BYE sip:a SIP/2.0\r\n" + strings.Join(hs[:sipparse.MaxScan/80-1], "\r\n") + "\r\nCall-ID: ")
	p = append(p, bytes.Repeat([]byte("c"), sipparse.MaxScan-len(p)-3)...)
	p = append(p, "cccccc\r\n\r\n"...) // value crosses MaxScan
	if m := sipparse.Scan(p); m.Status != sipparse.StatusScanLimit {
		t.Errorf("value across the limit: status %v, want scan-limit", m.Status)
	}
	if m := sipparse.Scan(p[:sipparse.MaxScan]); m.Status != sipparse.StatusUnterminated {
		t.Errorf("value at the end of a datagram: status %v, want unterminated", m.Status)
	}
	// Everything inside the window: found even when the datagram is longer.
	ok := append(msg("\r\n", "i: early"), bytes.Repeat([]byte{0}, 2*sipparse.MaxScan)...)
	if id, found := sipparse.CallID(ok); !found || string(id) != "early" {
		t.Errorf("early Call-ID in a long datagram: %q, %v", id, found)
	}
}

func TestStatusNames(t *testing.T) {
	seen := map[string]bool{}
	for s := range sipparse.Status(sipparse.NumStatus) {
		n := s.String()
		if n == "" || n == "invalid" || seen[n] || strings.ContainsAny(n, " \t\"") {
			t.Errorf("Status(%d).String() = %q: not a unique metric label", s, n)
		}
		seen[n] = true
	}
	if got := sipparse.Status(sipparse.NumStatus).String(); got != "invalid" {
		t.Errorf("out-of-range status = %q", got)
	}
	if sipparse.StatusOK.String() != "ok" || sipparse.StatusNoCallID.String() != "no_call_id" {
		t.Error("metric labels changed")
	}
}

// TestTortureMessages checks every RFC 4475 / RFC 5118 message against
// expected-callids.tsv.
func TestTortureMessages(t *testing.T) {
	tsv := testenv.RepoData(t, "sip", "expected-callids.tsv")
	f, err := os.Open(tsv)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) < 3 {
			t.Fatalf("bad TSV line %q", line)
		}
		name, status, want := fields[0], fields[1], fields[2]
		payload, err := os.ReadFile(testenv.RepoData(t, "sip", name))
		if err != nil {
			t.Fatal(err)
		}
		n++
		m := sipparse.Scan(payload)
		id, ok := sipparse.CallID(payload)
		if ok != (m.Status == sipparse.StatusOK) || !bytes.Equal(id, m.CallID) {
			t.Errorf("%s: CallID %q, %v disagrees with Scan %q, %v", name, id, ok, m.CallID, m.Status)
		}
		switch status {
		case "ok":
			if !ok || string(id) != want {
				t.Errorf("%s: Call-ID %q, %v (%v); want %q", name, id, ok, m.Status, want)
			}
		case "none":
			if ok {
				t.Errorf("%s: Call-ID %q; want none", name, id)
			}
		default:
			t.Fatalf("%s: unknown status %q", name, status)
		}
		// Only test.dat has a malformed start line; every other one is a
		// well-formed request.
		wantKind := sipparse.KindRequest
		if strings.HasSuffix(name, "/test.dat") {
			wantKind = sipparse.KindInvalid
		}
		if m.StartLine.Kind != wantKind {
			t.Errorf("%s: start line %v, want %v", name, m.StartLine.Kind, wantKind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 37 {
		t.Errorf("read %d messages, want 37", n)
	}
}

// TestValueBytes puts every byte value at every position of a 20-byte
// Call-ID, covering both the eight-byte and the byte-by-byte checks.
func TestValueBytes(t *testing.T) {
	for c := range 256 {
		for pos := range 20 {
			v := []byte(strings.Repeat("k", 20))
			v[pos] = byte(c)
			p := append([]byte("BYE sip:a SIP/2.0\r\nCall-ID: "), v...)
			p = append(p, "\r\n\r\n"...)
			id, ok := sipparse.CallID(p)
			visible := c >= 0x21 && c <= 0x7e
			if (c == ' ' || c == '\t') && (pos == 0 || pos == len(v)-1) {
				// Leading and trailing whitespace is LWS, not value.
				if want := bytes.Trim(v, " \t"); !ok || !bytes.Equal(id, want) {
					t.Fatalf("byte %#x at %d: %q, %v; want %q", c, pos, id, ok, want)
				}
				continue
			}
			if c == '\n' {
				// LF ends the line (and the value) in a CRLF message.
				if ok != (pos > 0) || !bytes.Equal(id, v[:pos]) {
					t.Fatalf("LF at %d: %q, %v; want %q", pos, id, ok, v[:pos])
				}
				continue
			}
			switch {
			case visible && (!ok || !bytes.Equal(id, v)):
				t.Fatalf("byte %#x at %d: %q, %v; want the value", c, pos, id, ok)
			case !visible && ok:
				t.Fatalf("byte %#x at %d: accepted %q", c, pos, id)
			}
		}
	}
}
