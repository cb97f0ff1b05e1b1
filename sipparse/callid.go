package sipparse

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

const (
	// MaxCallIDLen is the longest Call-ID returned, in bytes. It is IPVS's
	// IP_VS_PEDATA_MAXLEN: the kernel keeps pe data behind a __u8 length,
	// sync messages carry it in a one-byte TLV length, and templates here
	// store it in a fixed-size key. A longer value is StatusTooLong, never
	// truncated, since a truncated key could merge two calls.
	MaxCallIDLen = 255

	// MaxScan is how many leading bytes of a datagram are examined. The
	// header section of a SIP message sent over UDP is far shorter (RFC 3261
	// §18.1.1 moves requests within 200 bytes of the path MTU, about 1300
	// bytes, to TCP; carrier INVITEs with long Via/Record-Route stacks stay
	// within a few KiB), while a reassembled datagram can be 64 KiB. The bound
	// caps the work per packet, and the number of lines visited (at most
	// MaxScan/2), whatever a sender puts in the datagram. A Call-ID beyond it
	// is reported as StatusScanLimit, so an operator can see it happen.
	MaxScan = 8192
)

// Status says whether a datagram has a usable Call-ID, and if not, why. The
// String names are stable and suitable as metric label values; NumStatus
// sizes a counter array indexed by Status.
type Status uint8

const (
	// StatusOK: a usable Call-ID was found.
	StatusOK Status = iota
	// StatusNotSIP: no SIP header section: an empty payload, a first byte
	// that cannot start a SIP start line (not a token character: RTP, STUN,
	// binary junk), or a start line without a line end.
	StatusNotSIP
	// StatusKeepalive: the payload is a NAT keep-alive, only CR and LF bytes
	// (RFC 5626 §3.5.1 CRLF ping) or only NUL bytes (vendor pings).
	StatusKeepalive
	// StatusNoCallID: the header section has no Call-ID or i header.
	StatusNoCallID
	// StatusEmpty: the first Call-ID header has an empty value.
	StatusEmpty
	// StatusTooLong: the first Call-ID value exceeds MaxCallIDLen bytes.
	StatusTooLong
	// StatusUnterminated: the first Call-ID value runs to the end of the
	// datagram without a line end (a truncated message).
	StatusUnterminated
	// StatusBadChar: the first Call-ID value holds internal whitespace or
	// folding, a control byte, a non-ASCII byte or a bare CR.
	StatusBadChar
	// StatusScanLimit: the search reached MaxScan bytes of a longer datagram
	// before it could decide.
	StatusScanLimit

	// NumStatus is the number of Status values.
	NumStatus = iota
)

var statusNames = [NumStatus]string{
	StatusOK:           "ok",
	StatusNotSIP:       "not_sip",
	StatusKeepalive:    "keepalive",
	StatusNoCallID:     "no_call_id",
	StatusEmpty:        "empty",
	StatusTooLong:      "too_long",
	StatusUnterminated: "unterminated",
	StatusBadChar:      "bad_char",
	StatusScanLimit:    "scan_limit",
}

// String returns the metric label of s, e.g. "no_call_id".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "invalid"
}

// Message holds the facts one Scan finds in a datagram. CallID and
// StartLine.MethodToken alias the scanned payload.
type Message struct {
	StartLine StartLine
	// CallID is the Call-ID value, a subslice of the payload with its
	// capacity capped at its length; nil unless Status is StatusOK.
	CallID []byte
	Status Status
}

// CallID returns the Call-ID of the SIP message in a UDP payload as a
// subslice of payload (capacity capped, so an append cannot write into the
// payload), and whether there is a usable one. It never allocates. Scan gives
// the reason when there is none.
func CallID(payload []byte) (id []byte, ok bool) {
	id, st := FindCallID(payload)
	return id, st == StatusOK
}

// FindCallID is CallID with the reason when there is no usable Call-ID: the
// persistence engine's per-packet call, which counts the reasons but has no
// use for the start line that Scan also classifies.
func FindCallID(payload []byte) (id []byte, st Status) {
	s := newScanner(payload)
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

// Scan classifies the start line and finds the Call-ID of the SIP message in
// a UDP payload in one pass, without allocating. Its CallID equals what
// CallID returns.
func Scan(payload []byte) Message {
	s := newScanner(payload)
	end, next, st := s.firstLine()
	if st != StatusOK {
		return Message{Status: st}
	}
	m := Message{StartLine: classify(payload[:end])}
	lo, hi, st := s.search(next)
	m.Status = st
	if st == StatusOK {
		m.CallID = payload[lo:hi:hi]
	}
	return m
}

// scanner walks the first MaxScan bytes of one payload. sep is the byte that
// ends a line: '\n' for CRLF and LF messages, '\r' for CR-only ones.
type scanner struct {
	b         []byte // payload[:min(len(payload), MaxScan)]
	sep       byte
	truncated bool // payload is longer than b
	whole     []byte
}

func newScanner(payload []byte) scanner {
	return scanner{
		b:         payload[:min(len(payload), MaxScan)],
		truncated: len(payload) > MaxScan,
		whole:     payload,
	}
}

// atEnd is the status for running off the end of s.b: st when the payload
// really ends there, StatusScanLimit when it was cut at MaxScan.
func (s *scanner) atEnd(st Status) Status {
	if s.truncated {
		return StatusScanLimit
	}
	return st
}

// firstLine finds the start line: end is its length without the line end,
// next the offset of the second line. It sets s.sep from the start line's
// terminator.
func (s *scanner) firstLine() (end, next int, st Status) {
	b := s.b
	if len(b) == 0 {
		return 0, 0, StatusNotSIP
	}
	if !isToken(b[0]) {
		if isKeepalive(s.whole) {
			return 0, 0, StatusKeepalive
		}
		return 0, 0, StatusNotSIP
	}
	// The first CR or LF decides the style: LF or CRLF ends the start line
	// of an LF/CRLF message; a CR not followed by LF is an RFC 2543 CR-only
	// message.
	q := indexEOL(b)
	switch {
	case q < 0:
		return 0, 0, s.atEnd(StatusNotSIP)
	case b[q] == '\n':
		s.sep = '\n'
		return q, q + 1, StatusOK
	case q+1 < len(b) && b[q+1] == '\n':
		s.sep = '\n'
		return q, q + 2, StatusOK
	}
	s.sep = '\r'
	return q, q + 1, StatusOK
}

// isKeepalive reports a payload made only of CR/LF bytes or only of NULs.
func isKeepalive(p []byte) bool {
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
func (s *scanner) eol(i int) int {
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
func (s *scanner) cutEOL(i int) bool {
	return i == len(s.b) || i == len(s.b)-1 && s.b[i] == '\r' && s.sep == '\n'
}

// skipLWS skips SP, HT and folding (a line end followed by SP or HT) from
// b[i] and returns the offset of the next other byte. A byte above SP is
// none of those (the common case, inlined).
func (s *scanner) skipLWS(i int) int {
	if i < len(s.b) && s.b[i] > ' ' {
		return i
	}
	return s.skipLWSLoop(i)
}

func (s *scanner) skipLWSLoop(i int) int {
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

// callIDName is the long header name, lower case, as a little-endian word
// of its first four bytes and of its last two.
const (
	callIDLen   = len("call-id")
	callIDHead  = uint32('c') | uint32('a')<<8 | uint32('l')<<16 | uint32('l')<<24
	callIDTail  = uint16('i') | uint16('d')<<8
	asciiLower4 = 0x20202020
	asciiLower2 = 0x2020
)

// isCallIDName reports whether b[i:] begins with "call-id" in any case. OR-ing
// 0x20 folds only letters onto the lower-case letters compared here; the '-'
// is compared exactly.
func isCallIDName(b []byte, i int) bool {
	if len(b)-i < callIDLen {
		return false
	}
	w := b[i : i+callIDLen]
	head := uint32(w[0]) | uint32(w[1])<<8 | uint32(w[2])<<16 | uint32(w[3])<<24
	tail := uint16(w[5]) | uint16(w[6])<<8
	return head|asciiLower4 == callIDHead && w[4] == '-' && tail|asciiLower2 == callIDTail
}

// search looks for the first Call-ID header from line start i to the end of
// the header section and returns its value as b[lo:hi].
func (s *scanner) search(i int) (lo, hi int, st Status) {
	if s.sep != '\n' {
		return s.searchCR(i)
	}
	b := s.b
	for i >= 0 && i < len(b) {
		if lo, hi, st, done := s.header(i); done {
			return lo, hi, st
		}
		// The lines in between begin with other bytes: none of them is a
		// Call-ID header or the end of the header section.
		i = nextLineStart(b, i)
	}
	return 0, 0, s.atEnd(StatusNoCallID)
}

// searchCR is search in a CR-only message, line by line: a line ends at a
// CR or a CRLF.
func (s *scanner) searchCR(i int) (lo, hi int, st Status) {
	b := s.b
	for i < len(b) {
		if lo, hi, st, done := s.header(i); done {
			return lo, hi, st
		}
		j := bytes.IndexByte(b[i:], '\r')
		if j < 0 {
			break
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			i++
		}
	}
	return 0, 0, s.atEnd(StatusNoCallID)
}

// header looks at the line starting at b[i]: done is true when the search
// ends there — at the empty line ending the header section, or at a
// Call-ID header, with its value's outcome.
func (s *scanner) header(i int) (lo, hi int, st Status, done bool) {
	b := s.b
	switch b[i] {
	case '\r', '\n':
		return 0, 0, StatusNoCallID, true // empty line: end of the header section
	case 'C', 'c':
		if isCallIDName(b, i) {
			if p := s.skipLWS(i + callIDLen); p < len(b) && b[p] == ':' {
				lo, hi, st = s.value(p + 1)
				return lo, hi, st, true
			}
		}
	case 'I', 'i':
		if p := s.skipLWS(i + 1); p < len(b) && b[p] == ':' {
			lo, hi, st = s.value(p + 1)
			return lo, hi, st, true
		}
	}
	return 0, 0, StatusOK, false
}

// value reads the Call-ID value that follows the colon at b[p-1].
func (s *scanner) value(p int) (lo, hi int, st Status) {
	b := s.b
	if p < len(b) && b[p] == ' ' {
		p++ // the usual single SP after the colon (skipLWS would skip it too)
	}
	v := s.skipLWS(p)
	i := valueEnd(b, v, min(len(b), v+MaxCallIDLen+1))
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

// SWAR constants: one byte value repeated in every byte of a word.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// valueEndGeneric is valueEnd in Go. It tests eight bytes per step: a word
// has a byte below 0x21 iff (x - 0x21…) &^ x & 0x80… is non-zero, and a byte
// above 0x7E iff ((x + 0x01…) | x) & 0x80… is (bit-twiddling "hasless" and
// "hasmore"). A flag can be wrong only in a byte above one rightly flagged
// (a borrow or carry runs upwards from it), so the lowest flag is the first
// such byte. The last step re-reads the word ending at lim.
func valueEndGeneric(b []byte, i, lim int) int {
	w := b[i:lim]
	n := 0
	for ; len(w)-n >= 8; n += 8 {
		if m := notValue(binary.LittleEndian.Uint64(w[n:])); m != 0 {
			return i + n + bits.TrailingZeros64(m)>>3
		}
	}
	switch {
	case n == len(w):
		return lim
	case len(w) >= 8:
		// The bytes before n were tested already: shift their flags out.
		k := len(w) - 8
		if m := notValue(binary.LittleEndian.Uint64(w[k:])) >> ((n - k) * 8); m != 0 {
			return i + n + bits.TrailingZeros64(m)>>3
		}
		return lim
	}
	for n < len(w) && isValue(w[n]) {
		n++
	}
	return i + n
}

// notValue flags (0x80 in the byte) the bytes of x outside 0x21..0x7E; see
// valueEndGeneric for which flags are exact.
func notValue(x uint64) uint64 {
	return ((x-0x21*ones)&^x | (x + ones) | x) & highs
}
