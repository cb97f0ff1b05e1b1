package table

import (
	"encoding/binary"
	"math/bits"
)

// The hash is the wyhash construction: 64×64→128-bit multiplies folded with
// xor. It is seeded, allocation-free and fast on short keys (a Call-ID of
// 20–60 bytes costs two to four multiplies).
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
	wyp3 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

func le32(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b)) }

// hashBytes hashes b with seed.
func hashBytes(seed uint64, b []byte) uint64 {
	n := len(b)
	seed ^= wyp0
	var x, y uint64
	switch {
	case n == 0:
	case n < 4:
		x = uint64(b[0])<<16 | uint64(b[n>>1])<<8 | uint64(b[n-1])
	case n <= 8:
		x, y = le32(b), le32(b[n-4:])
	case n <= 16:
		x, y = le64(b), le64(b[n-8:])
	default:
		p := b
		for len(p) > 16 {
			seed = mix(le64(p)^wyp1, le64(p[8:])^seed)
			p = p[16:]
		}
		x, y = le64(b[n-16:]), le64(b[n-8:])
	}
	return mix(wyp1^uint64(n), mix(x^wyp1, y^seed)^wyp3) ^ wyp2
}

// hashAddr folds a 16-byte address into h.
func hashAddr(h uint64, a *[16]byte) uint64 {
	return mix(h^le64(a[:8])^wyp2, le64(a[8:])^wyp3)
}
