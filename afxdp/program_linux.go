package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/xvs-lb/xvs/dataplane"
)

// MaxFilterEntries bounds each of the two match maps (IPv4, IPv6): one entry
// per virtual service, per NAT real server, per VIP address (fragments and
// ICMP errors) and per NAT real-server address (their non-first fragments).
// Hash maps are preallocated, so the bound is also the memory cost: about
// 100 bytes per entry, 1.6 MiB per map — far more services than a balancer
// configuration holds, and small enough to allocate on every start.
const MaxFilterEntries = 1 << 14

// Match kinds, the last byte of a match key.
const (
	kindService  = 0 // destination protocol, VIP and port (port 0: any port)
	kindReal     = 1 // source protocol, address and port of a NAT real server
	kindVIP      = 2 // destination VIP of an IP fragment or of an ICMP "fragmentation needed" / "packet too big" (protocol and port 0)
	kindRealAddr = 3 // source address of a NAT real server, for its non-first fragments (protocol and port 0)
)

// Match keys are laid out as the program builds them on its stack: the
// address in network order, the port in network order, the IP protocol, the
// kind.
const (
	key4Len = 4 + 2 + 1 + 1
	key6Len = 16 + 2 + 1 + 1
)

type key4 [key4Len]byte
type key6 [key6Len]byte

// Counters of the filter program (a per-CPU array).
const (
	statSteered = 0 // redirected to the queue's AF_XDP socket
	statPassed  = 1 // given to the kernel
	numStats    = 2
)

// Stack layout of the program (offsets from the frame pointer R10).
const (
	stKey4     = -8  // key4: addr -8, port -4, proto -2, kind -1
	stSrc4     = -16 // saved IPv4 source address
	stSport    = -12 // saved source port
	stKey6     = -40 // key6: addr -40..-25, port -24, proto -22, kind -21
	stSrc6     = -64 // saved IPv6 source address (16 bytes)
	stStatsKey = -68
)

// Ethernet and IP constants the program compares with values it loads from
// the frame: a 16-bit load yields the bytes in host order, so constants are
// converted the same way.
const (
	ethHdrLen   = 14
	vlanHdrLen  = 4
	maxVLANTags = 2 // 802.1ad service tag + 802.1Q customer tag (QinQ)
	ipv4HdrLen  = 20
	ipv6HdrLen  = 40
	// maxIPv6Ext is how many IPv6 extension headers (hop-by-hop, routing,
	// destination options) the program skips before the L4 or fragment
	// header; packets with more go to the kernel.
	maxIPv6Ext = 2

	xdpPass = 2

	xdpMDData        = 0
	xdpMDDataEnd     = 4
	xdpMDRxQueueIndx = 16
)

func be16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// program is the loaded filter: the XDP program and its maps. The program
// and the XSKMAP are held in an asavie/xdp Program, whose Register and
// Unregister put a socket into the XSKMAP for its queue.
type program struct {
	xdp    *xdp.Program
	match4 *ebpf.Map
	match6 *ebpf.Map
	stats  *ebpf.Map
}

func newMap(name string, typ ebpf.MapType, keySize, valueSize, maxEntries uint32) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: typ, KeySize: keySize, ValueSize: valueSize, MaxEntries: maxEntries})
	if err != nil {
		return nil, fmt.Errorf("creating map %s: %w", name, err)
	}
	return m, nil
}

// loadProgram creates the maps and loads the filter program for an
// interface with nqueues RX queues.
func loadProgram(nqueues int) (p *program, err error) {
	p = &program{xdp: &xdp.Program{}}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	u32 := uint32(unsafe.Sizeof(uint32(0)))
	if p.xdp.Sockets, err = newMap("xvs_xsks", ebpf.XSKMap, u32, u32, uint32(nqueues)); err != nil {
		return nil, err
	}
	// asavie/xdp's Register also marks the queue in a "qidconf" array;
	// our program does not read it (bpf_redirect_map's XDP_PASS fallback
	// covers a queue without a socket) but Register needs it.
	if p.xdp.Queues, err = newMap("xvs_qidconf", ebpf.Array, u32, u32, uint32(nqueues)); err != nil {
		return nil, err
	}
	if p.match4, err = newMap("xvs_match4", ebpf.Hash, key4Len, u32, MaxFilterEntries); err != nil {
		return nil, err
	}
	if p.match6, err = newMap("xvs_match6", ebpf.Hash, key6Len, u32, MaxFilterEntries); err != nil {
		return nil, err
	}
	if p.stats, err = newMap("xvs_stats", ebpf.PerCPUArray, u32, 8, numStats); err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xvs_filter",
		Type:         ebpf.XDP,
		Instructions: filterInstructions(p.xdp.Sockets.FD(), p.match4.FD(), p.match6.FD(), p.stats.FD()),
		License:      "Dual BSD/GPL",
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading XDP filter: %+v", ve)
		}
		return nil, fmt.Errorf("loading XDP filter: %w", err)
	}
	p.xdp.Program = prog
	return p, nil
}

func (p *program) close() {
	if p == nil {
		return
	}
	p.xdp.Close()
	for _, m := range []*ebpf.Map{p.match4, p.match6, p.stats} {
		if m != nil {
			m.Close()
		}
	}
}

// counters sums the program's per-CPU counters.
func (p *program) counters() (steered, passed uint64, err error) {
	var vals []uint64
	for i, dst := range []*uint64{&steered, &passed} {
		if err := p.stats.Lookup(uint32(i), &vals); err != nil {
			return 0, 0, fmt.Errorf("reading filter counters: %w", err)
		}
		for _, v := range vals {
			*dst += v
		}
	}
	return steered, passed, nil
}

// filterInstructions builds the XDP filter:
//
//	parse Ethernet, up to maxVLANTags 802.1Q/802.1ad tags, IPv4 or IPv6
//	(skipping up to maxIPv6Ext extension headers);
//	fragment (IPv4 MF or offset, IPv6 fragment header):
//	    steer if {kindVIP, dst} is in the match map;
//	    first fragment (offset 0) with a UDP/TCP header: as UDP or TCP below;
//	    later fragment: steer if {kindRealAddr, src} is in the match map;
//	UDP or TCP:
//	    steer if {kindService, proto, dst, dport} or {kindService, proto, dst, 0}
//	    or {kindReal, proto, src, sport} is in the match map;
//	ICMPv4 type 3 code 4, ICMPv6 type 2 (not fragmented):
//	    steer if {kindVIP, dst} is in the match map;
//	everything else: XDP_PASS.
//
// Steering is bpf_redirect_map(xsks, rx_queue_index, XDP_PASS): a queue
// without a socket passes the frame to the kernel.
func filterInstructions(xsks, match4, match6, stats int) asm.Instructions {
	const (
		rCtx  = asm.R6
		rCur  = asm.R7 // packet cursor
		rEnd  = asm.R8 // data_end
		rNext = asm.R9 // EtherType, then IP protocol / next header
	)
	var ins asm.Instructions
	emit := func(i ...asm.Instruction) { ins = append(ins, i...) }
	// need jumps to "pass" unless n bytes from rCur are in the frame.
	need := func(n int32) {
		emit(asm.Mov.Reg(asm.R2, rCur), asm.Add.Imm(asm.R2, n), asm.JGT.Reg(asm.R2, rEnd, "pass"))
	}
	// copyWords copies n 32-bit words from src+soff to the stack at doff.
	copyWords := func(src asm.Register, soff int16, doff int16, n int) {
		for i := range n {
			emit(asm.LoadMem(asm.R1, src, soff+int16(4*i), asm.Word), asm.StoreMem(asm.RFP, doff+int16(4*i), asm.R1, asm.Word))
		}
	}
	lookup := func(m int, key int16) {
		emit(asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, int32(key)),
			asm.LoadMapPtr(asm.R1, m), asm.FnMapLookupElem.Call(), asm.JNE.Imm(asm.R0, 0, "steer"))
	}
	count := func(idx int32, label string) {
		emit(asm.StoreImm(asm.RFP, stStatsKey, int64(idx), asm.Word).WithSymbol(label),
			asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, stStatsKey),
			asm.LoadMapPtr(asm.R1, stats), asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label+"_done"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord), asm.Add.Imm(asm.R1, 1), asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(label+"_done"))
	}

	// Ethernet and VLAN tags.
	emit(asm.Mov.Reg(rCtx, asm.R1),
		asm.LoadMem(rCur, rCtx, xdpMDData, asm.Word),
		asm.LoadMem(rEnd, rCtx, xdpMDDataEnd, asm.Word))
	need(ethHdrLen)
	emit(asm.LoadMem(rNext, rCur, 12, asm.Half), asm.Add.Imm(rCur, ethHdrLen))
	for i := range maxVLANTags {
		tag := fmt.Sprintf("vlan%d", i)
		emit(asm.JEq.Imm(rNext, be16(0x8100), tag), asm.JNE.Imm(rNext, be16(0x88a8), "l3"))
		emit(asm.Mov.Reg(asm.R2, rCur).WithSymbol(tag), asm.Add.Imm(asm.R2, vlanHdrLen), asm.JGT.Reg(asm.R2, rEnd, "pass"),
			asm.LoadMem(rNext, rCur, 2, asm.Half), asm.Add.Imm(rCur, vlanHdrLen))
	}
	emit(asm.JEq.Imm(rNext, be16(0x0800), "ipv4").WithSymbol("l3"), asm.JEq.Imm(rNext, be16(0x86dd), "ipv6"), asm.Ja.Label("pass"))

	// l4 looks up a UDP/TCP packet whose L4 header is at rCur, protocol in
	// rNext, destination address already in the key and source address
	// saved at src.
	l4 := func(m int, key, port, proto, kind, src int16, words int) {
		need(4)
		emit(asm.LoadMem(asm.R1, rCur, 0, asm.Half), asm.StoreMem(asm.RFP, stSport, asm.R1, asm.Half),
			asm.LoadMem(asm.R1, rCur, 2, asm.Half), asm.StoreMem(asm.RFP, port, asm.R1, asm.Half),
			asm.StoreMem(asm.RFP, proto, rNext, asm.Byte),
			asm.StoreImm(asm.RFP, kind, kindService, asm.Byte))
		lookup(m, key)
		emit(asm.StoreImm(asm.RFP, port, 0, asm.Half))
		lookup(m, key)
		copyWords(asm.RFP, src, key, words)
		emit(asm.LoadMem(asm.R1, asm.RFP, stSport, asm.Half), asm.StoreMem(asm.RFP, port, asm.R1, asm.Half),
			asm.StoreImm(asm.RFP, kind, kindReal, asm.Byte))
		lookup(m, key)
		emit(asm.Ja.Label("pass"))
	}
	// vipLookup steers if the destination (already in the key) is a VIP
	// address: {kindVIP, dst, 0, 0}.
	vipLookup := func(m int, key, port, proto, kind int16, label string) {
		emit(asm.StoreImm(asm.RFP, port, 0, asm.Half).WithSymbol(label),
			asm.StoreImm(asm.RFP, proto, 0, asm.Byte),
			asm.StoreImm(asm.RFP, kind, kindVIP, asm.Byte))
		lookup(m, key)
	}
	// realAddrLookup steers if the source address saved at src is a NAT
	// real server's: {kindRealAddr, src, 0, 0} (port and protocol are 0
	// after vipLookup).
	realAddrLookup := func(m int, key, kind, src int16, words int) {
		copyWords(asm.RFP, src, key, words)
		emit(asm.StoreImm(asm.RFP, kind, kindRealAddr, asm.Byte))
		lookup(m, key)
		emit(asm.Ja.Label("pass"))
	}

	// IPv4.
	emit(asm.Mov.Reg(asm.R2, rCur).WithSymbol("ipv4"), asm.Add.Imm(asm.R2, ipv4HdrLen), asm.JGT.Reg(asm.R2, rEnd, "pass"))
	copyWords(rCur, 16, stKey4, 1)
	copyWords(rCur, 12, stSrc4, 1)
	emit(asm.LoadMem(asm.R1, rCur, 6, asm.Half), asm.And.Imm(asm.R1, be16(0x3fff)), asm.JNE.Imm(asm.R1, 0, "frag4"),
		asm.LoadMem(rNext, rCur, 9, asm.Byte),
		asm.JEq.Imm(rNext, 17, "l4v4pre"), asm.JEq.Imm(rNext, 6, "l4v4pre"), asm.JNE.Imm(rNext, 1, "pass"),
		// ICMPv4 (not a fragment: the MF/offset test above came first).
		asm.LoadMem(asm.R2, rCur, 0, asm.Byte), asm.And.Imm(asm.R2, 0x0f), asm.LSh.Imm(asm.R2, 2),
		asm.JLT.Imm(asm.R2, ipv4HdrLen, "pass"),
		asm.Add.Reg(rCur, asm.R2))
	need(2)
	emit(asm.LoadMem(asm.R1, rCur, 0, asm.Byte), asm.JNE.Imm(asm.R1, 3, "pass"), // destination unreachable
		asm.LoadMem(asm.R1, rCur, 1, asm.Byte), asm.JNE.Imm(asm.R1, 4, "pass"), // fragmentation needed
		asm.Ja.Label("vip4"),
		asm.LoadMem(asm.R2, rCur, 0, asm.Byte).WithSymbol("l4v4pre"), asm.And.Imm(asm.R2, 0x0f), asm.LSh.Imm(asm.R2, 2),
		asm.JLT.Imm(asm.R2, ipv4HdrLen, "pass"),
		asm.Add.Reg(rCur, asm.R2))
	l4(match4, stKey4, stKey4+4, stKey4+6, stKey4+7, stSrc4, 1)
	// A fragment: to a VIP; a first fragment as UDP/TCP; a later one from
	// a NAT real server's address.
	vipLookup(match4, stKey4, stKey4+4, stKey4+6, stKey4+7, "frag4")
	emit(asm.LoadMem(asm.R1, rCur, 6, asm.Half), asm.And.Imm(asm.R1, be16(0x1fff)), asm.JEq.Imm(asm.R1, 0, "first4"))
	realAddrLookup(match4, stKey4, stKey4+7, stSrc4, 1)
	emit(asm.LoadMem(rNext, rCur, 9, asm.Byte).WithSymbol("first4"),
		asm.JEq.Imm(rNext, 17, "l4v4pre"), asm.JEq.Imm(rNext, 6, "l4v4pre"), asm.Ja.Label("pass"))
	vipLookup(match4, stKey4, stKey4+4, stKey4+6, stKey4+7, "vip4")
	emit(asm.Ja.Label("pass"))

	// IPv6.
	emit(asm.Mov.Reg(asm.R2, rCur).WithSymbol("ipv6"), asm.Add.Imm(asm.R2, ipv6HdrLen), asm.JGT.Reg(asm.R2, rEnd, "pass"))
	copyWords(rCur, 24, stKey6, 4)
	copyWords(rCur, 8, stSrc6, 4)
	emit(asm.LoadMem(rNext, rCur, 6, asm.Byte), asm.Add.Imm(rCur, ipv6HdrLen))
	for i := range maxIPv6Ext {
		ext := fmt.Sprintf("ext%d", i)
		emit(asm.JEq.Imm(rNext, 0, ext), asm.JEq.Imm(rNext, 43, ext), asm.JNE.Imm(rNext, 60, "l4v6sel"))
		emit(asm.Mov.Reg(asm.R2, rCur).WithSymbol(ext), asm.Add.Imm(asm.R2, 8), asm.JGT.Reg(asm.R2, rEnd, "pass"),
			asm.LoadMem(rNext, rCur, 0, asm.Byte),
			asm.LoadMem(asm.R2, rCur, 1, asm.Byte), asm.Add.Imm(asm.R2, 1), asm.LSh.Imm(asm.R2, 3),
			asm.Add.Reg(rCur, asm.R2))
	}
	emit(asm.JEq.Imm(rNext, 44, "frag6").WithSymbol("l4v6sel"),
		asm.JEq.Imm(rNext, 17, "l4v6"), asm.JEq.Imm(rNext, 6, "l4v6"), asm.JNE.Imm(rNext, 58, "pass"))
	// ICMPv6 packet too big.
	need(1)
	emit(asm.LoadMem(asm.R1, rCur, 0, asm.Byte), asm.JNE.Imm(asm.R1, 2, "pass"), asm.Ja.Label("vip6"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("l4v6"))
	l4(match6, stKey6, stKey6+16, stKey6+18, stKey6+19, stSrc6, 4)
	// A fragment header at rCur: as for IPv4.
	vipLookup(match6, stKey6, stKey6+16, stKey6+18, stKey6+19, "frag6")
	need(8)
	emit(asm.LoadMem(asm.R1, rCur, 2, asm.Half), asm.And.Imm(asm.R1, be16(0xfff8)), asm.JEq.Imm(asm.R1, 0, "first6"))
	realAddrLookup(match6, stKey6, stKey6+19, stSrc6, 4)
	emit(asm.LoadMem(rNext, rCur, 0, asm.Byte).WithSymbol("first6"), asm.Add.Imm(rCur, 8),
		asm.JEq.Imm(rNext, 17, "l4v6"), asm.JEq.Imm(rNext, 6, "l4v6"), asm.Ja.Label("pass"))
	vipLookup(match6, stKey6, stKey6+16, stKey6+18, stKey6+19, "vip6")
	emit(asm.Ja.Label("pass"))

	// Verdicts.
	count(statSteered, "steer")
	emit(asm.LoadMapPtr(asm.R1, xsks),
		asm.LoadMem(asm.R2, rCtx, xdpMDRxQueueIndx, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return())
	count(statPassed, "pass")
	emit(asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
	return ins
}

// matchKeys returns the match-map keys for a filter.
func matchKeys(f dataplane.Filter) (k4 map[key4]bool, k6 map[key6]bool, err error) {
	k4, k6 = map[key4]bool{}, map[key6]bool{}
	add := func(kind byte, proto uint8, addr netip.Addr, port uint16) error {
		addr = addr.Unmap()
		switch {
		case addr.Is4():
			var k key4
			a := addr.As4()
			copy(k[:4], a[:])
			binary.BigEndian.PutUint16(k[4:], port)
			k[6], k[7] = proto, kind
			k4[k] = true
		case addr.Is6():
			var k key6
			a := addr.As16()
			copy(k[:16], a[:])
			binary.BigEndian.PutUint16(k[16:], port)
			k[18], k[19] = proto, kind
			k6[k] = true
		default:
			return fmt.Errorf("invalid address %v", addr)
		}
		return nil
	}
	for _, s := range f.Services {
		if err := add(kindService, uint8(s.Protocol), s.Addr, s.Port); err != nil {
			return nil, nil, fmt.Errorf("service %v %v:%d: %w", s.Protocol, s.Addr, s.Port, err)
		}
		if err := add(kindVIP, 0, s.Addr, 0); err != nil {
			return nil, nil, err
		}
	}
	for _, r := range f.RealServers {
		if err := add(kindReal, uint8(r.Protocol), r.Addr.Addr(), r.Addr.Port()); err != nil {
			return nil, nil, fmt.Errorf("real server %v %v: %w", r.Protocol, r.Addr, err)
		}
		if err := add(kindRealAddr, 0, r.Addr.Addr(), 0); err != nil {
			return nil, nil, err
		}
	}
	if len(k4) > MaxFilterEntries || len(k6) > MaxFilterEntries {
		return nil, nil, fmt.Errorf("filter has %d IPv4 and %d IPv6 entries, more than %d: %w", len(k4), len(k6), MaxFilterEntries, ErrFilterTooLarge)
	}
	return k4, k6, nil
}

// syncMap makes m hold exactly want, given that it holds have. A key in
// both is never touched, so traffic that both filters steer is steered
// throughout. Old keys leave before new ones come in, so the map never
// holds more than max(len(have), len(want)) entries: a full filter can be
// replaced by another full one. When an operation fails, the map is put back
// to have (as far as the kernel allows) and the error returned.
func syncMap[K comparable](m *ebpf.Map, have, want map[K]bool) error {
	var removed, added []K
	undo := func() {
		for _, k := range added {
			m.Delete(k)
		}
		for _, k := range removed {
			m.Put(k, uint32(1))
		}
	}
	for k := range have {
		if !want[k] {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				undo()
				return fmt.Errorf("removing filter entry: %w", err)
			}
			removed = append(removed, k)
		}
	}
	for k := range want {
		if !have[k] {
			if err := m.Put(k, uint32(1)); err != nil {
				undo()
				return fmt.Errorf("adding filter entry: %w", err)
			}
			added = append(added, k)
		}
	}
	return nil
}
