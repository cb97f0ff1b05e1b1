package sipparse

import "bytes"

// nextLineStartGeneric is nextLineStart in Go: one bytes.IndexByte per line.
func nextLineStartGeneric(b []byte, from int) int {
	for from < len(b) {
		j := bytes.IndexByte(b[from:], '\n')
		if j < 0 {
			return -1
		}
		p := from + j + 1
		if p >= len(b) {
			return -1
		}
		if isLineStart(b[p]) {
			return p
		}
		from = p
	}
	return -1
}

// indexEOLGeneric is indexEOL in Go.
func indexEOLGeneric(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
