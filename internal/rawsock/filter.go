package rawsock

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/xvs-lb/xvs/dataplane"
)

// Filter program limits.
const (
	// acceptBytes is the snap length an accepting filter returns: more
	// than any frame, so nothing is cut.
	acceptBytes = 1 << 18
	// maxFilterInsns is the kernel's BPF_MAXINSNS for a socket filter.
	maxFilterInsns = 4096
)

// Frame offsets (untagged Ethernet).
const (
	offEtherType = 12
	offIP        = 14
	// IPv4
	offV4Frag  = offIP + 6
	offV4Proto = offIP + 9
	offV4Src   = offIP + 12
	offV4Dst   = offIP + 16
	// IPv6 (fixed header only)
	offV6Next      = offIP + 6
	offV6Src       = offIP + 8
	offV6Dst       = offIP + 24
	offV6L4        = offIP + 40
	v6FragNext     = 44
	etherIPv4      = 0x0800
	etherIPv6      = 0x86dd
	etherVLAN      = 0x8100
	etherQinQ      = 0x88a8
	v4FragMask     = 0x3fff   // MF and the fragment offset
	v4OffMask      = 0x1fff   // the fragment offset: a later fragment
	v6OffMask      = 0xfff8   // the fragment offset in the IPv6 fragment header
	icmpFragNeeded = 3<<8 | 4 // ICMPv4 type 3 code 4, as one 16-bit load
	icmp6TooBig    = 2        // ICMPv6 type 2
	scratchDst     = 0
	scratchSrc     = 1
	scratchProt    = 2
)

// errFilterTooLong reports a filter past the kernel's instruction limit.
var errFilterTooLong = errors.New("socket filter too long")

// compileFilter turns the balancer's traffic description into a classic BPF
// socket filter over Ethernet frames. It accepts:
//
//   - IPv4/IPv6 UDP or TCP to a virtual service's address and port (any
//     port for a port-0 service);
//   - IPv4/IPv6 UDP or TCP from a NAT real server's address and port;
//   - IP fragments (IPv4 with MF or an offset, IPv6 with a fragment header)
//     and IPv6 packets with other extension headers whose destination is a
//     virtual address, whatever their ports: the pipeline decides;
//   - later IPv4 fragments (which have no ports) from a NAT real server's
//     address, and IPv6 fragments from one (the filter does not read past
//     the fragment header: a first fragment from another port costs the
//     worker a recycle, the kernel keeps its copy); a first IPv4 fragment
//     goes through the UDP/TCP entries;
//   - ICMPv4 "fragmentation needed" (type 3 code 4) and ICMPv6 "packet too
//     big" (type 2, right after the fixed header) to a virtual address;
//   - every 802.1Q/802.1ad-tagged frame (tags the NIC did not strip): the
//     pipeline decodes the tags and recycles what is not its own.
//
// Everything else is not delivered to the workers. An empty filter accepts
// nothing.
func compileFilter(f dataplane.Filter) ([]bpf.RawInstruction, error) {
	var v4, v6 []bpf.Instruction
	vip4, vip6 := map[[4]byte]bool{}, map[[16]byte]bool{}
	var vips4 [][4]byte
	var vips6 [][16]byte
	for _, s := range f.Services {
		if !s.Addr.IsValid() {
			continue // fwmark services have no address to match
		}
		a := s.Addr.Unmap()
		if a.Is4() {
			v4 = append(v4, entry(uint8(s.Protocol), scratchDst, offV4Dst, a.AsSlice(), offIP, 2, s.Port, true)...)
			if k := a.As4(); !vip4[k] {
				vip4[k] = true
				vips4 = append(vips4, k)
			}
		} else {
			v6 = append(v6, entry(uint8(s.Protocol), -1, offV6Dst, a.AsSlice(), offV6L4, 2, s.Port, false)...)
			if k := a.As16(); !vip6[k] {
				vip6[k] = true
				vips6 = append(vips6, k)
			}
		}
	}
	for _, r := range f.RealServers {
		a := r.Addr.Addr().Unmap()
		if !a.IsValid() {
			continue
		}
		if a.Is4() {
			v4 = append(v4, entry(uint8(r.Protocol), scratchSrc, offV4Src, a.AsSlice(), offIP, 0, r.Addr.Port(), true)...)
		} else {
			v6 = append(v6, entry(uint8(r.Protocol), -1, offV6Src, a.AsSlice(), offV6L4, 0, r.Addr.Port(), false)...)
		}
	}

	// NAT real-server addresses, for their later fragments.
	rs4, rs6 := map[[4]byte]bool{}, map[[16]byte]bool{}
	var raddrs4 [][4]byte
	var raddrs6 [][16]byte
	for _, r := range f.RealServers {
		a := r.Addr.Addr().Unmap()
		switch {
		case a.Is4() && !rs4[a.As4()]:
			rs4[a.As4()] = true
			raddrs4 = append(raddrs4, a.As4())
		case a.Is6() && !rs6[a.As16()]:
			rs6[a.As16()] = true
			raddrs6 = append(raddrs6, a.As16())
		}
	}
	// Classic BPF jumps only forward, conditional jumps at most 255
	// instructions: every list below is a run of short compare-and-accept
	// pairs, and blocks further away are reached through "ja".
	accept4 := func(off uint32, addrs [][4]byte) []bpf.Instruction {
		out := []bpf.Instruction{bpf.LoadAbsolute{Off: off, Size: 4}}
		for _, a := range addrs {
			out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(a[:]), SkipFalse: 1}, bpf.RetConstant{Val: acceptBytes})
		}
		return out
	}
	accept6 := func(off uint32, addrs [][16]byte) []bpf.Instruction {
		var out []bpf.Instruction
		for _, a := range addrs {
			out = append(out, addr16(off, a[:], 1)...)
			out = append(out, bpf.RetConstant{Val: acceptBytes})
		}
		return out
	}

	// IPv4 block:
	//
	//	later fragment: ja vip
	//	scratch ← protocol, addresses; ICMP: ja icmp
	//	the UDP/TCP entries (first fragments too: they have ports)
	//	a first fragment: ja vip; else drop
	//	icmp: not fragmentation needed: drop (else on to vip)
	//	vip: to a VIP: accept; not a later fragment: drop
	//	from a NAT real server's address: accept; drop
	var b4 []bpf.Instruction
	if len(v4) > 0 {
		nonfrag := []bpf.Instruction{
			bpf.LoadAbsolute{Off: offV4Proto, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: scratchProt},
			bpf.LoadAbsolute{Off: offV4Dst, Size: 4},
			bpf.StoreScratch{Src: bpf.RegA, N: scratchDst},
			bpf.LoadAbsolute{Off: offV4Src, Size: 4},
			bpf.StoreScratch{Src: bpf.RegA, N: scratchSrc},
			bpf.LoadMemShift{Off: offIP},
			bpf.LoadScratch{Dst: bpf.RegA, N: scratchProt},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipFalse: 1},
			nil, // ja icmp
		}
		nonfrag = append(nonfrag, v4...)
		nonfrag = append(nonfrag,
			bpf.LoadAbsolute{Off: offV4Frag, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v4FragMask, SkipFalse: 1},
			nil, // ja vip
			bpf.RetConstant{Val: 0},
		)
		icmp := []bpf.Instruction{
			bpf.LoadIndirect{Off: offIP, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpFragNeeded, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		}
		nonfrag[9] = bpf.Jump{Skip: uint32(len(nonfrag) - 10)}
		nonfrag[len(nonfrag)-2] = bpf.Jump{Skip: uint32(1 + len(icmp))}
		vip := accept4(offV4Dst, vips4)
		vip = append(vip,
			bpf.LoadAbsolute{Off: offV4Frag, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v4OffMask, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		)
		vip = append(vip, accept4(offV4Src, raddrs4)...)
		vip = append(vip, bpf.RetConstant{Val: 0})
		b4 = append(b4,
			bpf.LoadAbsolute{Off: offV4Frag, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v4OffMask, SkipFalse: 1},
			bpf.Jump{Skip: uint32(len(nonfrag) + len(icmp))}, // → vip
		)
		b4 = append(b4, nonfrag...)
		b4 = append(b4, icmp...)
		b4 = append(b4, vip...)
	}
	// IPv6 block: UDP/TCP right after the fixed header go through the
	// entries; ICMPv6 right after it only if a packet too big; anything
	// else (a fragment or another extension header) to a VIP is accepted,
	// and a fragment from a NAT real server's address.
	var b6 []bpf.Instruction
	if len(v6) > 0 || len(vips6) > 0 {
		icmp := []bpf.Instruction{
			bpf.LoadAbsolute{Off: offV6L4, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp6TooBig, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		}
		vip := accept6(offV6Dst, vips6)
		vip = append(vip,
			bpf.LoadScratch{Dst: bpf.RegA, N: scratchProt},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: v6FragNext, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		)
		vip = append(vip, accept6(offV6Src, raddrs6)...)
		vip = append(vip, bpf.RetConstant{Val: 0})
		b6 = append(b6,
			bpf.LoadAbsolute{Off: offV6Next, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: scratchProt},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipTrue: 4}, // → entries
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 3},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 58, SkipTrue: 1}, // → ja icmp
			bpf.Jump{Skip: uint32(len(v6) + 1 + len(icmp) + 1)},   // → vip
			bpf.Jump{Skip: uint32(len(v6) + 1)},                   // → icmp
		)
		b6 = append(b6, v6...)
		b6 = append(b6, bpf.RetConstant{Val: 0})
		b6 = append(b6, icmp...)
		b6 = append(b6, vip...)
	}

	// Dispatch on the EtherType.
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offEtherType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherVLAN, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherQinQ, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv4, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv6, SkipTrue: 3},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptBytes},
		bpf.Jump{Skip: 1},               // IPv4 →
		bpf.Jump{Skip: uint32(len(b4))}, // IPv6 →
	}
	if len(b4) == 0 {
		prog[7] = bpf.RetConstant{Val: 0}
	}
	if len(b6) == 0 {
		prog[8] = bpf.RetConstant{Val: 0}
	}
	prog = append(prog, b4...)
	prog = append(prog, b6...)
	if len(prog) > maxFilterInsns {
		return nil, fmt.Errorf("%w: %d instructions for %d services and %d real servers (limit %d)", errFilterTooLong, len(prog), len(f.Services), len(f.RealServers), maxFilterInsns)
	}
	return bpf.Assemble(prog)
}

// entry matches protocol, one address and (unless port is 0) one port, and
// accepts. For IPv4 (v4) the address is compared from scratch slot slot and
// X holds the IP header length, so the port is at X+l4Base+portOff; for IPv6
// the address is loaded from the frame and the port is at l4Base+portOff.
func entry(proto uint8, slot int, off uint32, addr []byte, l4Base uint32, portOff uint32, port uint16, v4 bool) []bpf.Instruction {
	var conds []bpf.Instruction // pairs of (load, jeq) except the addr16 groups
	conds = append(conds, bpf.LoadScratch{Dst: bpf.RegA, N: scratchProt}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(proto)})
	if v4 {
		conds = append(conds, bpf.LoadScratch{Dst: bpf.RegA, N: slot}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(addr)})
	} else {
		conds = append(conds, addr16(off, addr, 0)...)
	}
	if port != 0 {
		if v4 {
			conds = append(conds, bpf.LoadIndirect{Off: l4Base + portOff, Size: 2}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port)})
		} else {
			conds = append(conds, bpf.LoadAbsolute{Off: l4Base + portOff, Size: 2}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port)})
		}
	}
	conds = append(conds, bpf.RetConstant{Val: acceptBytes})
	// Every failed compare skips to the instruction after the ret.
	for i, in := range conds {
		if j, ok := in.(bpf.JumpIf); ok {
			j.SkipTrue = 0
			j.SkipFalse = uint8(len(conds) - 1 - i)
			conds[i] = j
		}
	}
	return conds
}

// addr16 compares the 16-byte address at off with a, four words; on a
// mismatch it skips the rest of the group plus extra instructions (the
// caller fixes the skips of groups inside an entry).
func addr16(off uint32, a []byte, extra int) []bpf.Instruction {
	var out []bpf.Instruction
	for w := range 4 {
		out = append(out,
			bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(a[4*w:]), SkipFalse: uint8(6 - 2*w + extra)},
		)
	}
	return out
}

// coarseFilter accepts every IPv4, IPv6 and VLAN-tagged frame: the fallback
// when the balancer's exact filter exceeds the kernel's limits. The workers
// then see (and recycle) all IP traffic, which costs CPU but loses nothing.
func coarseFilter() []bpf.RawInstruction {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: offEtherType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv4, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv6, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherVLAN, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherQinQ, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptBytes},
	})
	if err != nil {
		panic(err) // a constant program
	}
	return raw
}
