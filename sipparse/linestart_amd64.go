package sipparse

import "golang.org/x/sys/cpu"

// Vector widths of the assembly searches: a block tests the LF bytes at
// b[k:k+w] against the bytes after them, b[k+1:k+w+1], so it needs w+1
// bytes.
const (
	sse2Block = 16
	avx2Block = 32
)

// useAVX2 selects the 32-byte search; tests switch it off to run the
// 16-byte one (SSE2, part of every amd64 CPU), and useVector off to run the
// generic one.
var (
	useAVX2   = cpu.X86.HasAVX2
	useVector = true
)

// nextLineStart returns the offset of the first line of b that begins
// after b[from] with a byte of classLineStart — the smallest p > from with
// b[p-1] == '\n' and isLineStart(b[p]) — or -1 when there is none. It is
// the Call-ID search's step in LF and CRLF messages: the lines in between
// cannot hold a Call-ID header or end the header section, and one vector
// pass over them replaces a bytes.IndexByte call and a branch per line.
func nextLineStart(b []byte, from int) int {
	switch {
	case !useVector:
		return nextLineStartGeneric(b, from)
	case useAVX2 && len(b) > avx2Block:
		return lineStartAVX2(b, from)
	case len(b) > sse2Block:
		return lineStartSSE2(b, from)
	}
	return nextLineStartGeneric(b, from)
}

// lineStartSSE2 is nextLineStart for len(b) > 16, 16 positions per step.
//
//go:noescape
func lineStartSSE2(b []byte, from int) int

// lineStartAVX2 is nextLineStart for len(b) > 32, 32 positions per step.
//
//go:noescape
func lineStartAVX2(b []byte, from int) int

// valueEnd returns the offset of the first byte of b[i:lim] that is not
// visible ASCII (0x21..0x7E), or lim.
func valueEnd(b []byte, i, lim int) int {
	if !useVector || len(b) < sse2Block {
		return valueEndGeneric(b, i, lim)
	}
	return valueEndSSE2(b, i, lim)
}

// valueEndSSE2 is valueEnd for len(b) >= 16, 16 bytes per step; it may
// read bytes of b beyond lim.
//
//go:noescape
func valueEndSSE2(b []byte, i, lim int) int

// indexEOL returns the offset of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	if !useVector || len(b) < sse2Block {
		return indexEOLGeneric(b)
	}
	return indexEOLSSE2(b)
}

// indexEOLSSE2 is indexEOL for len(b) >= 16, 16 bytes per step.
//
//go:noescape
func indexEOLSSE2(b []byte) int
