package pe

import (
	"encoding/binary"
	"math/bits"
)

// HashData is a fast, seeded, deterministic 64-bit hash of a key (the
// wyhash construction). Engines may use it for Hash; it is stable across
// processes, hosts and versions of xvs, because balancers that share a
// configuration rely on it to choose the same real server for a key.
func HashData(data []byte, seed uint64) uint64 {
	const (
		p0 = 0xa0761d6478bd642f
		p1 = 0xe7037ed1a0b428db
		p2 = 0x8ebc6af09c88c6e3
		p3 = 0x589965cc75374cc3
	)
	n := len(data)
	seed ^= p0
	var a, b uint64
	switch {
	case n == 0:
	case n < 4:
		a = uint64(data[0])<<16 | uint64(data[n>>1])<<8 | uint64(data[n-1])
	case n <= 8:
		a = uint64(binary.LittleEndian.Uint32(data))
		b = uint64(binary.LittleEndian.Uint32(data[n-4:]))
	case n <= 16:
		a = binary.LittleEndian.Uint64(data)
		b = binary.LittleEndian.Uint64(data[n-8:])
	default:
		p := data
		for len(p) > 16 {
			seed = mix(binary.LittleEndian.Uint64(p)^p1, binary.LittleEndian.Uint64(p[8:])^seed)
			p = p[16:]
		}
		a = binary.LittleEndian.Uint64(data[n-16:])
		b = binary.LittleEndian.Uint64(data[n-8:])
	}
	return mix(p1^uint64(n), mix(a^p1, b^seed)^p3) ^ p2
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
