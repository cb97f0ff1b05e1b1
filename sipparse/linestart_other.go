//go:build !amd64

package sipparse

// nextLineStart returns the offset of the first line of b that begins
// after b[from] with a byte of classLineStart — the smallest p > from with
// b[p-1] == '\n' and isLineStart(b[p]) — or -1 when there is none. It is
// the Call-ID search's step in LF and CRLF messages: the lines in between
// cannot hold a Call-ID header or end the header section.
func nextLineStart(b []byte, from int) int { return nextLineStartGeneric(b, from) }

// valueEnd returns the offset of the first byte of b[i:lim] that is not
// visible ASCII (0x21..0x7E), or lim.
func valueEnd(b []byte, i, lim int) int { return valueEndGeneric(b, i, lim) }

// indexEOL returns the offset of the first CR or LF in b, or -1.
func indexEOL(b []byte) int { return indexEOLGeneric(b) }
