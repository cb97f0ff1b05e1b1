package ipvsadm

import (
	"net/netip"
	"slices"
)

// ipvsadm sorts services and destinations with qsort over libipvs's
// ipvs_cmp_services and ipvs_cmp_dests. Those compare addresses by the
// signed 32-bit difference of host-order words, so two addresses more than
// 2^31 apart compare "backwards" (1.0.0.1 sorts after 192.168.0.1) and the
// order is not even transitive. To give the same output for the same input,
// xvs reproduces the comparators and glibc's merge sort (msort), which is
// what qsort runs for tables of this size.

const (
	afInet  = 2  // AF_INET
	afInet6 = 10 // AF_INET6
)

func af(a netip.Addr) int32 {
	if a.Is4() {
		return afInet
	}
	return afInet6
}

// words returns the address as libipvs's union nf_inet_addr in host-order
// 32-bit words: an IPv4 address fills only the first.
func words(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

// cmpAddr compares as libipvs does: word-wise signed differences, four
// words when the first operand is IPv6, else one.
func cmpAddr(a, b netip.Addr) int32 {
	wa, wb := words(a), words(b)
	n := 1
	if !a.Is4() {
		n = 4
	}
	var r int32
	for i := 0; r == 0 && i < n; i++ {
		r = int32(wa[i] - wb[i])
	}
	return r
}

// cmpServices is ipvs_cmp_services (fwmark is always 0 in xvs).
func cmpServices(s1, s2 *ServiceView) int32 {
	if r := af(s1.Addr) - af(s2.Addr); r != 0 {
		return r
	}
	if r := int32(s1.Protocol) - int32(s2.Protocol); r != 0 {
		return r
	}
	if r := cmpAddr(s1.Addr, s2.Addr); r != 0 {
		return r
	}
	return int32(s1.Port) - int32(s2.Port)
}

// cmpDests is ipvs_cmp_dests.
func cmpDests(d1, d2 *DestView) int32 {
	if r := cmpAddr(d1.Addr, d2.Addr); r != 0 {
		return r
	}
	return int32(d1.Port) - int32(d2.Port)
}

// msort is glibc's msort_with_tmp: top-down merge sort, left half of
// n/2 elements, ties taken from the left.
func msort[T any](s, tmp []T, cmp func(a, b *T) int32) {
	n := len(s)
	if n <= 1 {
		return
	}
	n1 := n / 2
	msort(s[:n1], tmp, cmp)
	msort(s[n1:], tmp, cmp)
	i, j, k := 0, n1, 0
	for i < n1 && j < n {
		if cmp(&s[i], &s[j]) <= 0 {
			tmp[k] = s[i]
			i++
		} else {
			tmp[k] = s[j]
			j++
		}
		k++
	}
	k += copy(tmp[k:], s[i:n1])
	copy(s, tmp[:k])
}

// SortServices returns a sorted copy of svcs in ipvsadm's listing order
// (IPv4 before IPv6, TCP before UDP, then address and port with ipvsadm's
// signed-difference quirk).
func SortServices(svcs []ServiceView) []ServiceView {
	s := slices.Clone(svcs)
	msort(s, make([]ServiceView, len(s)), cmpServices)
	return s
}

// SortDests returns a sorted copy of dests in ipvsadm's listing order.
func SortDests(dests []DestView) []DestView {
	d := slices.Clone(dests)
	msort(d, make([]DestView, len(d)), cmpDests)
	return d
}
