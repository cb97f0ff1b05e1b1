package sipparse

// The scanner as it was before the candidate-line search (nextCandidate)
// and the word-at-a-time value end, kept verbatim (renamed) as the
// reference of FuzzOldNew: the new scanner must return the same Call-ID
// and Status for every input.

import (
	"bytes"
	"encoding/binary"
)

// oldFindCallID is FindCallID before the rewrite.
func oldFindCallID(payload []byte) (id []byte, st Status) {
	s := oldNewScanner(payload)
	_, next, st := s.firstLine()
	if st != StatusOK {
		return nil, st
	}
	lo, hi, st := s.search(next)
	if st != StatusOK {
		return nil, st
	}
	return payload[lo:hi:hi], StatusOK
}

// oldScanner walks the first MaxScan bytes of one payload. sep is the byte that
// ends a line: '\n' for CRLF and LF messages, '\r' for CR-only oldOnes.
type oldScanner struct {
	b         []byte // payload[:min(len(payload), MaxScan)]
	sep       byte
	truncated bool // payload is longer than b
	whole     []byte
}

func oldNewScanner(payload []byte) oldScanner {
	return oldScanner{
		b:         payload[:min(len(payload), MaxScan)],
		truncated: len(payload) > MaxScan,
		whole:     payload,
	}
}

// atEnd is the status for running off the end of s.b: st when the payload
// really ends there, StatusScanLimit when it was cut at MaxScan.
func (s *oldScanner) atEnd(st Status) Status {
	if s.truncated {
		return StatusScanLimit
	}
	return st
}

// firstLine finds the start line: end is its length without the line end,
// next the offset of the second line. It sets s.sep from the start line's
// terminator.
func (s *oldScanner) firstLine() (end, next int, st Status) {
	b := s.b
	if len(b) == 0 {
		return 0, 0, StatusNotSIP
	}
	if !isToken(b[0]) {
		if oldIsKeepalive(s.whole) {
			return 0, 0, StatusKeepalive
		}
		return 0, 0, StatusNotSIP
	}
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 && cr != lf-1 {
		// A CR that is not part of a CRLF ends the start line: an RFC 2543
		// CR-only message.
		s.sep = '\r'
		return cr, cr + 1, StatusOK
	}
	if lf < 0 {
		return 0, 0, s.atEnd(StatusNotSIP)
	}
	s.sep = '\n'
	end = lf
	if end > 0 && b[end-1] == '\r' {
		end--
	}
	return end, lf + 1, StatusOK
}

// oldIsKeepalive reports a payload made only of CR/LF bytes or only of NULs.
func oldIsKeepalive(p []byte) bool {
	if p[0] == 0 {
		for _, c := range p {
			if c != 0 {
				return false
			}
		}
		return true
	}
	for _, c := range p {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// eol returns the length of the line end at b[i] (0 if there is none): LF or
// CRLF in a '\n' message, CR or CRLF in a '\r' message.
func (s *oldScanner) eol(i int) int {
	b := s.b
	if i >= len(b) {
		return 0
	}
	switch {
	case b[i] == s.sep:
		if s.sep == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			return 2
		}
		return 1
	case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
		return 2
	}
	return 0
}

// cutEOL reports whether b[i:] is the end of the data, or a CRLF cut after
// its CR by the end of the data.
func (s *oldScanner) cutEOL(i int) bool {
	return i == len(s.b) || i == len(s.b)-1 && s.b[i] == '\r' && s.sep == '\n'
}

// skipLWS skips SP, HT and folding (a line end followed by SP or HT) from
// b[i] and returns the offset of the next other byte.
func (s *oldScanner) skipLWS(i int) int {
	b := s.b
	for {
		for i < len(b) && isWSP(b[i]) {
			i++
		}
		n := s.eol(i)
		if n == 0 || i+n >= len(b) || !isWSP(b[i+n]) {
			return i
		}
		i += n
	}
}

// oldIsCallIDName reports whether b[i:] begins with "call-id" in any case. OR-ing
// 0x20 folds only letters onto the lower-case letters compared here; the '-'
// is compared exactly.
func oldIsCallIDName(b []byte, i int) bool {
	if len(b)-i < oldCallIDLen {
		return false
	}
	w := b[i : i+oldCallIDLen]
	head := uint32(w[0]) | uint32(w[1])<<8 | uint32(w[2])<<16 | uint32(w[3])<<24
	tail := uint16(w[5]) | uint16(w[6])<<8
	return head|oldAsciiLower4 == oldCallIDHead && w[4] == '-' && tail|oldAsciiLower2 == oldCallIDTail
}

// search looks for the first Call-ID header from line start i to the end of
// the header section and returns its value as b[lo:hi].
func (s *oldScanner) search(i int) (lo, hi int, st Status) {
	b := s.b
	for i < len(b) {
		switch c := b[i]; c {
		case '\r', '\n':
			return 0, 0, StatusNoCallID // empty line: end of the header section
		case 'C', 'c':
			if oldIsCallIDName(b, i) {
				if p := s.skipLWS(i + oldCallIDLen); p < len(b) && b[p] == ':' {
					return s.value(p + 1)
				}
			}
		case 'I', 'i':
			if p := s.skipLWS(i + 1); p < len(b) && b[p] == ':' {
				return s.value(p + 1)
			}
		}
		j := bytes.IndexByte(b[i:], s.sep)
		if j < 0 {
			break
		}
		i += j + 1
		if s.sep == '\r' && i < len(b) && b[i] == '\n' {
			i++
		}
	}
	return 0, 0, s.atEnd(StatusNoCallID)
}

// value reads the Call-ID value that follows the colon at b[p-1].
func (s *oldScanner) value(p int) (lo, hi int, st Status) {
	b := s.b
	v := s.skipLWS(p)
	i := oldValueEnd(b, v, min(len(b), v+MaxCallIDLen+1))
	if i-v > MaxCallIDLen {
		return 0, 0, StatusTooLong
	}
	j := i
	for j < len(b) && isWSP(b[j]) {
		j++
	}
	n := s.eol(j)
	if n == 0 {
		if !s.cutEOL(j) {
			return 0, 0, StatusBadChar // control byte, or whitespace inside the value
		}
		if i == v {
			return 0, 0, s.atEnd(StatusEmpty)
		}
		return 0, 0, s.atEnd(StatusUnterminated)
	}
	if i == v {
		return 0, 0, StatusEmpty
	}
	// Continuation lines of this header may hold only whitespace (trailing
	// LWS); anything else would fold a second word into the value.
	for k := j + n; k < len(b) && isWSP(b[k]); k += n {
		for k < len(b) && isWSP(b[k]) {
			k++
		}
		if n = s.eol(k); n == 0 {
			if s.cutEOL(k) {
				break
			}
			return 0, 0, StatusBadChar
		}
	}
	return v, i, StatusOK
}

// oldValueEnd returns the offset of the first byte of b[i:lim] that is not
// visible ASCII (0x21..0x7E), or lim. It tests eight bytes per step: a word
// has a byte below 0x21 iff (x - 0x21…) &^ x & 0x80… is non-zero, and a byte
// above 0x7E iff ((x + 0x01…) | x) & 0x80… is (bit-twiddling "hasless" and
// "hasmore"; both are exact as booleans). A word with such a byte is then
// walked byte by byte.
func oldValueEnd(b []byte, i, lim int) int {
	for ; i+8 <= lim; i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if ((x-0x21*oldOnes)&^x|((x+oldOnes)|x))&oldHighs != 0 {
			break
		}
	}
	for i < lim && isValue(b[i]) {
		i++
	}
	return i
}

const (
	oldCallIDLen   = len("call-id")
	oldCallIDHead  = uint32('c') | uint32('a')<<8 | uint32('l')<<16 | uint32('l')<<24
	oldCallIDTail  = uint16('i') | uint16('d')<<8
	oldAsciiLower4 = 0x20202020
	oldAsciiLower2 = 0x2020
	oldOnes        = 0x0101010101010101
	oldHighs       = 0x8080808080808080
)
