package sipparse

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/testenv"
)

// checkOldNew asserts that FindCallID answers as the scanner before the
// rewrite (oldscan_test.go) did, with every line-start search this machine
// can run, and that those searches agree with the byte-by-byte definition.
func checkOldNew(t *testing.T, p []byte) {
	t.Helper()
	wantID, wantSt := oldFindCallID(p)
	for _, impl := range lineStartImpls() {
		restore := impl.use()
		id, st := FindCallID(p)
		restore()
		if st != wantSt || !bytes.Equal(id, wantID) {
			t.Fatalf("%s: FindCallID(%q) = %q, %v; before the rewrite %q, %v", impl.name, p, id, st, wantID, wantSt)
		}
	}
	b := p[:min(len(p), MaxScan)]
	for _, from := range []int{0, 1, len(b) / 3, len(b) / 2, len(b) - 17, len(b) - 2, len(b) - 1} {
		if from < 0 || from >= len(b) {
			continue
		}
		want := lineStartByBytes(b, from)
		for _, impl := range lineStartImpls() {
			if got := impl.fn(b, from); got != want {
				t.Fatalf("%s(%q, %d) = %d, want %d", impl.name, b, from, got, want)
			}
		}
	}
}

// lineStartByBytes is nextLineStart's definition, one byte at a time.
func lineStartByBytes(b []byte, from int) int {
	for p := from + 1; p < len(b); p++ {
		if b[p-1] == '\n' && isLineStart(b[p]) {
			return p
		}
	}
	return -1
}

// FuzzOldNew runs checkOldNew; its seeds are the package's test payloads
// and the RFC 4475/5118 corpus (FuzzCallID's corpus is also its own).
func FuzzOldNew(f *testing.F) {
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) { checkOldNew(t, p) })
}

func TestOldNew(t *testing.T) {
	ps := seedPayloads()
	if len(ps) < 40 {
		t.Fatalf("%d seed payloads: the corpus or the torture messages are missing", len(ps))
	}
	for _, p := range ps {
		checkOldNew(t, p)
	}
}

// TestLineStartEdges runs every search over every start offset of buffers
// around the vector widths, with line starts at every offset.
func TestLineStartEdges(t *testing.T) {
	for n := 1; n <= 70; n++ {
		for pos := 0; pos < n; pos++ {
			for _, c := range []byte("CcIi\r\nxX \t") {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = '\n'
				if pos+1 < n {
					b[pos+1] = c
				}
				for from := range n {
					want := lineStartByBytes(b, from)
					for _, impl := range lineStartImpls() {
						if got := impl.fn(b, from); got != want {
							t.Fatalf("%s(%q, %d) = %d, want %d", impl.name, b, from, got, want)
						}
					}
				}
			}
		}
	}
}

// seedPayloads are FuzzCallID's committed corpus, the RFC 4475/5118 torture
// messages (testdata/sip) and a few messages of every line-end style.
func seedPayloads() [][]byte {
	var ps [][]byte
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzCallID", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		_, v, ok := strings.Cut(string(b), "[]byte(")
		if !ok {
			continue
		}
		if s, err := strconv.Unquote(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ")"))); err == nil {
			ps = append(ps, []byte(s))
		}
	}
	if root, err := testenv.ModuleRoot(); err == nil {
		for _, dir := range []string{"rfc4475", "rfc5118"} {
			ms, _ := filepath.Glob(filepath.Join(root, "testdata", "sip", dir, "*"))
			for _, m := range ms {
				if b, err := os.ReadFile(m); err == nil {
					ps = append(ps, b)
				}
			}
		}
	}
	for _, eol := range []string{"\r\n", "\n", "\r"} {
		ps = append(ps, []byte(strings.ReplaceAll("INVITE sip:b@x SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCSeq: 1 INVITE\n"+
			"Contact: <sip:a@h>\ncall-id: abc@h\nContent-Length: 0\n\n", "\n", eol)))
	}
	return ps
}

// TestValueEndEdges compares valueEnd with its byte-by-byte definition for
// every window of buffers around the vector widths, with a non-value byte
// at every offset.
func TestValueEndEdges(t *testing.T) {
	byBytes := func(b []byte, i, lim int) int {
		for i < lim && b[i] > 0x20 && b[i] < 0x7f {
			i++
		}
		return i
	}
	for n := 0; n <= 40; n++ {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{0x00, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xff} {
				b := bytes.Repeat([]byte("a"), n)
				if pos >= 0 {
					b[pos] = c
				}
				for i := 0; i <= n; i++ {
					for lim := i; lim <= n; lim++ {
						want := byBytes(b, i, lim)
						if got := valueEndGeneric(b, i, lim); got != want {
							t.Fatalf("valueEndGeneric(%q, %d, %d) = %d, want %d", b, i, lim, got, want)
						}
						if got := valueEnd(b, i, lim); got != want {
							t.Fatalf("valueEnd(%q, %d, %d) = %d, want %d", b, i, lim, got, want)
						}
					}
				}
			}
		}
	}
}

// TestIndexEOLEdges compares indexEOL with its definition for buffers
// around the vector width with CR and LF at every pair of offsets.
func TestIndexEOLEdges(t *testing.T) {
	byBytes := func(b []byte) int { return bytes.IndexAny(b, "\r\n") }
	for n := 0; n <= 40; n++ {
		for x := -1; x < n; x++ {
			for y := -1; y < n; y++ {
				b := bytes.Repeat([]byte("a"), n)
				if x >= 0 {
					b[x] = '\r'
				}
				if y >= 0 {
					b[y] = '\n'
				}
				want := byBytes(b)
				if got := indexEOLGeneric(b); got != want {
					t.Fatalf("indexEOLGeneric(%q) = %d, want %d", b, got, want)
				}
				if got := indexEOL(b); got != want {
					t.Fatalf("indexEOL(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
