package sipparse

// charClass holds one bit per byte class; charClasses maps every byte to its
// classes so that the scanner tests a byte with one load and one AND.
type charClass uint8

const (
	// classValue: visible ASCII, 0x21..0x7E, the bytes a Call-ID may hold.
	classValue charClass = 1 << iota
	// classToken: RFC 3261 token characters (alphanum / "-" / "." / "!" /
	// "%" / "*" / "_" / "+" / "`" / "'" / "~"): method names and the first
	// byte of a SIP start line.
	classToken
	// classDigit: 0..9.
	classDigit
	// classLineStart: the first bytes of the lines the Call-ID search stops
	// at (C, c, I, i: a Call-ID or i header may begin there; CR, LF: the
	// empty line ending the header section).
	classLineStart
)

var charClasses = func() (t [256]charClass) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] |= classValue
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= classToken | classDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= classToken
		t[c-'a'+'A'] |= classToken
	}
	for _, c := range []byte("-.!%*_+`'~") {
		t[c] |= classToken
	}
	for _, c := range []byte("CcIi\r\n") {
		t[c] |= classLineStart
	}
	return t
}()

func isValue(c byte) bool { return charClasses[c]&classValue != 0 }
func isToken(c byte) bool { return charClasses[c]&classToken != 0 }
func isDigit(c byte) bool { return charClasses[c]&classDigit != 0 }
func isWSP(c byte) bool   { return c == ' ' || c == '\t' }

func isLineStart(c byte) bool { return charClasses[c]&classLineStart != 0 }
