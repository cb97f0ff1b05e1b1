package ipvsadm

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// This file reproduces the C library conversions ipvsadm relies on, so
// that xvs accepts exactly the numbers and addresses ipvsadm accepts.

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// strIsDigit is ipvsadm's str_is_digit: true for "" and all-digit strings.
func strIsDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// stringToNumber is ipvsadm's string_to_number: strtol(s, &end, 10) must
// consume the whole string (leading white space and a sign allowed) and
// land in [lo, hi].
func stringToNumber(s string, lo, hi int64) (int64, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var n int64
	overflow := false
	for i < len(s) && isDigit(s[i]) {
		d := int64(s[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			overflow = true
		} else {
			n = n*10 + d
		}
		i++
	}
	if i == start || i != len(s) || overflow {
		return 0, false
	}
	if neg {
		n = -n
	}
	if n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// cAtoi is atoi: leading white space, a sign and digits; anything after
// is ignored and no digits give 0. Values are clamped to avoid overflow.
func cAtoi(s string) int64 {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n int64
	for ; i < len(s) && isDigit(s[i]); i++ {
		if n < math.MaxInt32 {
			n = n*10 + int64(s[i]-'0')
		}
	}
	if neg {
		return -n
	}
	return n
}

// inetAton is glibc's inet_aton: one to four parts separated by dots, each
// decimal, octal (leading 0) or hex (0x); the last part fills the remaining
// bytes ("10.1" is 10.0.0.1). Trailing white space ends the address.
func inetAton(s string) (netip.Addr, bool) {
	var parts [4]uint64
	np := 0
	i := 0
	var val uint64
	digit := false
	for {
		if i >= len(s) || !isDigit(s[i]) {
			return netip.Addr{}, false
		}
		val = 0
		base := uint64(10)
		digit = false
		if s[i] == '0' {
			i++
			if i < len(s) && (s[i] == 'x' || s[i] == 'X') {
				base = 16
				i++
			} else {
				base = 8
				digit = true
			}
		}
		for i < len(s) {
			c := s[i]
			var d uint64
			switch {
			case isDigit(c):
				if base == 8 && c >= '8' {
					return netip.Addr{}, false
				}
				d = uint64(c - '0')
			case base == 16 && 'a' <= c && c <= 'f':
				d = uint64(c-'a') + 10
			case base == 16 && 'A' <= c && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				goto endPart
			}
			val = val*base + d
			if val > math.MaxUint32 {
				return netip.Addr{}, false
			}
			digit = true
			i++
		}
	endPart:
		if i < len(s) && s[i] == '.' {
			if np >= 3 {
				return netip.Addr{}, false
			}
			parts[np] = val
			np++
			i++
			continue
		}
		break
	}
	if i < len(s) && !isCSpace(s[i]) {
		return netip.Addr{}, false
	}
	if !digit {
		return netip.Addr{}, false
	}
	for k := range np {
		if parts[k] > 0xff {
			return netip.Addr{}, false
		}
	}
	switch np {
	case 1:
		if val > 0xffffff {
			return netip.Addr{}, false
		}
		val |= parts[0] << 24
	case 2:
		if val > 0xffff {
			return netip.Addr{}, false
		}
		val |= parts[0]<<24 | parts[1]<<16
	case 3:
		if val > 0xff {
			return netip.Addr{}, false
		}
		val |= parts[0]<<24 | parts[1]<<16 | parts[2]<<8
	}
	return netip.AddrFrom4([4]byte{byte(val >> 24), byte(val >> 16), byte(val >> 8), byte(val)}), true
}

// inetPton4 is inet_pton(AF_INET): strictly four decimal parts.
func inetPton4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv6 is inet_pton(AF_INET6): an IPv6 literal without zone.
func parseIPv6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

// ntop is inet_ntop as glibc prints: like netip.Addr.String, except that
// IPv4-compatible addresses (::a.b.c.d) keep their dotted tail.
func ntop(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		b := a.As16()
		zero := true
		for _, x := range b[:12] {
			if x != 0 {
				zero = false
				break
			}
		}
		if zero && (b[12] != 0 || b[13] != 0) {
			return "::" + netip.AddrFrom4([4]byte(b[12:16])).String()
		}
	}
	return a.WithZone("").String()
}

func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
