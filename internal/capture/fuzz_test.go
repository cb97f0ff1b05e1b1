package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime/metrics"
	"testing"
	"time"
)

// fuzzAllocBudget is what reading any capture may allocate beyond a few
// times its size. A read allocates about 330 KiB (the bufio buffer and
// pcapgo's packet buffer of at most MaxFrame); the runtime counts small
// allocations a span at a time (at refill and at a collection), so the fuzzer
// has seen 1.1 MiB counted. A length field obeyed (32 bits) is far over it.
const fuzzAllocBudget = 16 << 20

// FuzzReader reads arbitrary bytes as a capture: the reader ends with a
// frame count and io.EOF or one of its errors, never panics (not even one
// that Next recovers: that would be a gap in ngCheck), never returns a frame
// over MaxFrame, and never allocates in proportion to a length field: at most
// fuzzAllocBudget plus a few times the input's size (an interface's snapshot
// length of 4 GiB once made pcapgo allocate that much per reader, and the
// fuzz workers died out of memory without a word).
func FuzzReader(f *testing.F) {
	head := append(ngSHB(), ngIDB(1, 0, ngOption(optIfTSResol, []byte{9}))...)
	ng := append(bytes.Clone(head), ngEPB(0, time.Unix(1, 0), frame(1), 60)...)
	ng = append(ng, ngSPB(frame(2))...)
	ng = append(ng, ngBlock(blockISB, append(make([]byte, 12), ngOption(optISBStart, make([]byte, 8))...))...)
	f.Add(ng)
	f.Add(ng[:len(ng)-7])
	f.Add(pcapFile(65535, 1, frame(1), frame(2)))
	f.Add(pcapFile(64, 113, frame(1))[:50])
	if b, err := os.ReadFile("testdata/tsresol-0x40.pcapng"); err == nil {
		f.Add(b)
	}
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		before := recovered.Load()
		metrics.Read(allocs)
		allocated := allocs[0].Value.Uint64()
		r, err := NewReader(bytes.NewReader(b))
		if err == nil {
			for n := 0; ; n++ {
				fr, err2 := r.Next()
				if err2 != nil {
					err = err2
					break
				}
				if len(fr.Data) > MaxFrame || fr.Number != n+1 || fr.WireLen < len(fr.Data) {
					t.Fatalf("frame %d: %d bytes, wire %d", fr.Number, len(fr.Data), fr.WireLen)
				}
			}
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unclassified error %v", err)
		}
		metrics.Read(allocs)
		if a := allocs[0].Value.Uint64() - allocated; a > uint64(fuzzAllocBudget+4*len(b)) {
			t.Fatalf("reading a %d-byte capture allocated %d bytes", len(b), a)
		}
		if recovered.Load() != before {
			t.Fatalf("the reader panicked (recovered): %v", err)
		}
	})
}
