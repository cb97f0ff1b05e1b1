package sipparse_test

import (
	"bytes"
	"testing"

	"github.com/xvs-lb/xvs/sipparse"
)

// refScan is a slow, literal reading of the rules in the package doc: split
// the message into lines, unfold the Call-ID header, and read its value. The
// fuzz target checks the fast scanner against it.
func refScan(p []byte) (string, sipparse.Status) {
	if len(p) == 0 {
		return "", sipparse.StatusNotSIP
	}
	if !isTokenByte(p[0]) {
		if len(bytes.Trim(p, "\r\n")) == 0 || len(bytes.Trim(p, "\x00")) == 0 {
			return "", sipparse.StatusKeepalive
		}
		return "", sipparse.StatusNotSIP
	}
	first := bytes.IndexAny(p, "\r\n")
	if first < 0 {
		return "", sipparse.StatusNotSIP
	}
	crOnly := p[first] == '\r' && (first+1 == len(p) || p[first+1] != '\n')
	var lines [][]byte
	if crOnly {
		lines = bytes.Split(p, []byte("\r"))
		for i := 1; i < len(lines); i++ {
			lines[i] = bytes.TrimPrefix(lines[i], []byte("\n"))
		}
	} else {
		lines = bytes.Split(p, []byte("\n"))
		for i := range lines {
			lines[i] = bytes.TrimSuffix(lines[i], []byte("\r"))
		}
	}
	// The last element follows the last line end: it is unterminated.
	tail := len(lines) - 1
	for i := 1; i < len(lines); i++ {
		l := lines[i]
		if i == tail && len(l) == 0 {
			break
		}
		if len(l) == 0 || l[0] == '\r' || l[0] == '\n' {
			return "", sipparse.StatusNoCallID
		}
		var off int
		switch {
		case len(l) >= 7 && bytes.EqualFold(l[:7], []byte("call-id")):
			off = 7
		case l[0] == 'i' || l[0] == 'I':
			off = 1
		default:
			continue
		}
		segs := [][]byte{l}
		for j := i + 1; j < len(lines) && len(lines[j]) > 0 && isWSPByte(lines[j][0]); j++ {
			segs = append(segs, lines[j])
		}
		terminated := i+len(segs)-1 < tail
		si := 0
		skip := func() {
			for {
				for off < len(segs[si]) && isWSPByte(segs[si][off]) {
					off++
				}
				if off < len(segs[si]) || si+1 == len(segs) {
					return
				}
				si, off = si+1, 0
			}
		}
		skip()
		if off == len(segs[si]) || segs[si][off] != ':' {
			continue // not a Call-ID header
		}
		off++
		skip()
		seg := segs[si]
		v := off
		for off < len(seg) && seg[off] > 0x20 && seg[off] < 0x7f {
			off++
		}
		value := seg[v:off]
		if len(value) > sipparse.MaxCallIDLen {
			return "", sipparse.StatusTooLong
		}
		for off < len(seg) && isWSPByte(seg[off]) {
			off++
		}
		switch {
		case off < len(seg):
			return "", sipparse.StatusBadChar
		case len(value) == 0:
			return "", sipparse.StatusEmpty
		case si == len(segs)-1 && !terminated:
			return "", sipparse.StatusUnterminated
		}
		for _, rest := range segs[si+1:] {
			if len(bytes.Trim(rest, " \t")) != 0 {
				return "", sipparse.StatusBadChar
			}
		}
		return string(value), sipparse.StatusOK
	}
	return "", sipparse.StatusNoCallID
}

func isWSPByte(c byte) bool { return c == ' ' || c == '\t' }

func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		bytes.IndexByte([]byte("-.!%*_+`'~"), c) >= 0
}

// checkScan asserts the properties every result must have, and agreement
// with refScan for payloads within MaxScan.
func checkScan(t *testing.T, p []byte) {
	orig := bytes.Clone(p)
	id, ok := sipparse.CallID(p)
	m := sipparse.Scan(p)
	if ok != (m.Status == sipparse.StatusOK) || !bytes.Equal(id, m.CallID) {
		t.Fatalf("CallID = %q, %v; Scan = %q, %v", id, ok, m.CallID, m.Status)
	}
	if m.Status >= sipparse.NumStatus {
		t.Fatalf("status %d out of range", m.Status)
	}
	if fid, fst := sipparse.FindCallID(p); fst != m.Status || !bytes.Equal(fid, m.CallID) {
		t.Fatalf("FindCallID = %q, %v; Scan = %q, %v", fid, fst, m.CallID, m.Status)
	}
	if !ok && id != nil {
		t.Fatalf("not ok but id %q", id)
	}
	if ok {
		if len(id) == 0 || len(id) > sipparse.MaxCallIDLen || !within(p, id) || cap(id) != len(id) {
			t.Fatalf("bad id %q (len %d) for %q", id, len(id), p)
		}
		for _, c := range id {
			if c <= 0x20 || c >= 0x7f {
				t.Fatalf("id %q holds byte %#x", id, c)
			}
		}
		if lo := int(offsetIn(p, id)); lo+len(id) > sipparse.MaxScan {
			t.Fatalf("id beyond MaxScan")
		}
	}
	if id2, ok2 := sipparse.CallID(p); ok2 != ok || !bytes.Equal(id2, id) {
		t.Fatalf("unstable: %q, %v then %q, %v", id, ok, id2, ok2)
	}
	sl := sipparse.ParseStartLine(p)
	if sl.Kind != m.StartLine.Kind || sl.Method != m.StartLine.Method || sl.StatusCode != m.StartLine.StatusCode ||
		!bytes.Equal(sl.MethodToken, m.StartLine.MethodToken) {
		t.Fatalf("ParseStartLine %+v, Scan %+v", sl, m.StartLine)
	}
	switch sl.Kind {
	case sipparse.KindRequest:
		if sl.Method == sipparse.MethodNone || len(sl.MethodToken) == 0 || sl.StatusCode != 0 {
			t.Fatalf("request %+v", sl)
		}
	case sipparse.KindResponse:
		if sl.StatusCode < 100 || sl.StatusCode > 699 || sl.MethodToken != nil {
			t.Fatalf("response %+v", sl)
		}
	}
	if !bytes.Equal(p, orig) {
		t.Fatalf("payload modified")
	}
	if len(p) <= sipparse.MaxScan {
		if want, st := refScan(p); st != m.Status || want != string(m.CallID) {
			t.Fatalf("Scan(%q) = %q, %v; reference %q, %v", p, m.CallID, m.Status, want, st)
		}
	}
}

func offsetIn(b, sub []byte) int {
	for i := range len(b) - len(sub) + 1 {
		if &b[i] == &sub[0] {
			return i
		}
	}
	return -1
}

func FuzzCallID(f *testing.F) {
	for _, p := range payloads {
		f.Add(p.data)
	}
	f.Fuzz(func(t *testing.T, p []byte) { checkScan(t, p) })
}

// TestReference runs the fuzz properties, and so the reference, over the
// table tests' and benchmarks' payloads.
func TestReference(t *testing.T) {
	for _, p := range payloads {
		checkScan(t, p.data)
	}
	for _, p := range rulePayloads() {
		checkScan(t, p)
	}
}
