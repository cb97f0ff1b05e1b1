package sched

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Hash seeds. They are fixed, never random, so that every balancer computes
// the same Maglev table and the same choice for the same key.
const (
	seedOffset = 0x6d61676c65762d6f // "maglev-o"
	seedSkip   = 0x6d61676c65762d73 // "maglev-s"
	seedLookup = 0x6d61676c65762d6c // "maglev-l"

	goldenRatio32 = 0x61C88647 // include/linux/hash.h GOLDEN_RATIO_32
	fnvOffset64   = 14695981039346656037
	fnvPrime64    = 1099511628211
)

// HashPEData is the hash of persistence-engine data (a SIP Call-ID) that
// [Input.PEHash] expects: FNV-1a 64 with a final avalanche. It is unseeded
// and stable across processes and versions, so independent balancers agree.
// It allocates nothing.
func HashPEData(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hashAddrPort hashes a 16-byte address form (IPv4 as v4-mapped) and a port.
func hashAddrPort(a netip.Addr, port uint16, seed uint64) uint64 {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	return mix64(mix64(mix64(hi^seed)^lo) ^ uint64(port))
}

// fold is the kernel's addr_fold: the IPv4 address, or the xor of the four
// IPv6 words, in host order.
func fold(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[0:]) ^ binary.BigEndian.Uint32(b[4:]) ^
		binary.BigEndian.Uint32(b[8:]) ^ binary.BigEndian.Uint32(b[12:])
}

// hash32 is the kernel's hash_32(val, bits).
func hash32(v uint32, bits uint) uint32 { return (v * goldenRatio32) >> (32 - bits) }

// buildBuckets fills the 256-bucket sh/dh table from the dest list, cycling
// through it; sh gives each dest weight consecutive buckets (at least one,
// as ip_vs_sh_reassign), dh one (ip_vs_dh_reassign).
func buildBuckets(dests []dest, weighted bool) *[hashTableSize]uint16 {
	var t [hashTableSize]uint16
	p, count := 0, int64(0)
	for i := range t {
		if len(dests) == 0 {
			t[i] = noDest
			continue
		}
		t[i] = uint16(p)
		count++
		if !weighted || count >= dests[p].weight {
			p, count = (p+1)%len(dests), 0
		}
	}
	return &t
}

// buildMaglev builds the Maglev lookup table (Eisenbud et al., NSDI 2016,
// §3.4) with weights: in every round each dest claims weight/gcd entries in
// its permutation order. Dests are populated in address order and their
// permutations derive from address:port only, so the table depends on the
// set of (address, port, weight) and nothing else. Weight-0 and Down dests
// get no entries. It returns nil when no dest has a weight.
func buildMaglev(in []Dest) []uint16 {
	const m = MaglevTableSize
	type perm struct {
		idx       uint16
		pos, skip uint64
		turns     int64
		addr      netip.AddrPort
	}
	var g int64
	perms := make([]perm, 0, len(in))
	for i, d := range in {
		if d.Weight <= 0 || d.Down {
			continue
		}
		g = gcd(g, int64(d.Weight))
		a := d.Addr
		perms = append(perms, perm{
			idx:  uint16(i),
			pos:  hashAddrPort(a.Addr(), a.Port(), seedOffset) % m,
			skip: hashAddrPort(a.Addr(), a.Port(), seedSkip)%(m-1) + 1,
			addr: a,
		})
		perms[len(perms)-1].turns = int64(d.Weight)
	}
	if len(perms) == 0 {
		return nil
	}
	slices.SortFunc(perms, func(a, b perm) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.idx, b.idx))
	})
	t := make([]uint16, m)
	for i := range t {
		t[i] = noDest
	}
	filled := 0
	for filled < m {
		for i := range perms {
			p := &perms[i]
			for range p.turns / g {
				for t[p.pos] != noDest {
					p.pos = (p.pos + p.skip) % m
				}
				t[p.pos] = p.idx
				p.pos = (p.pos + p.skip) % m
				if filled++; filled == m {
					return t
				}
			}
		}
	}
	return t
}
