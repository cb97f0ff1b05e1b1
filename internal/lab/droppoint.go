package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// DropMode is where a DropPoint runs on its interface.
type DropMode int

const (
	// DropTC is a BPF program on the interface's TCX ingress hook (Linux
	// 6.6): it sees the socket buffer the sender built, as it is, after the
	// receive backlog.
	DropTC DropMode = iota
	// DropXDP is a native XDP program. On a veth it runs in the peer's
	// NAPI poll, and the kernel converts (and may copy) each socket buffer
	// into an XDP frame with 256 octets of headroom first.
	DropXDP
)

func (m DropMode) String() string {
	if m == DropXDP {
		return "xdp"
	}
	return "tc"
}

// ParseDropMode parses "tc" or "xdp".
func ParseDropMode(s string) (DropMode, error) {
	switch s {
	case "tc":
		return DropTC, nil
	case "xdp":
		return DropXDP, nil
	}
	return 0, fmt.Errorf("lab: drop point %q: want tc or xdp", s)
}

// DropPoint counts and drops the IPv4 UDP datagrams to one port that arrive
// on an interface, per destination MAC address: the cheap, fixed end of the
// benchmark's path, where every candidate's output stops at the same cost
// (perf). Other frames (ARP, neighbour discovery, other ports) pass. It
// counts frames whose MAC is none of the given ones separately.
type DropPoint struct {
	prog  *ebpf.Program
	macs  *ebpf.Map
	count *ebpf.Map
	link  link.Link
	n     int // MACs; counter n is "other"
}

// Program return codes.
const (
	xdpDrop  = 1
	xdpPass  = 2
	tcActOK  = 0
	tcActDrp = 2
	// Offsets of data and data_end in struct xdp_md and struct __sk_buff.
	xdpData, xdpDataEnd = 0, 4
	skbData, skbDataEnd = 76, 80
)

// NewDropPoint attaches a drop point to iface in namespace ns for UDP
// destination port port, with one counter per MAC of macs (at most 64).
func NewDropPoint(ns, iface string, port uint16, macs [][6]byte, mode DropMode) (_ *DropPoint, err error) {
	if len(macs) > 64 {
		return nil, fmt.Errorf("lab: drop point: %d MACs, at most 64", len(macs))
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("lab: drop point: %w", err)
	}
	d := &DropPoint{n: len(macs)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.macs, err = ebpf.NewMap(&ebpf.MapSpec{Name: "lab_drop_macs", Type: ebpf.Hash, KeySize: 8, ValueSize: 4, MaxEntries: 64}); err != nil {
		return nil, fmt.Errorf("lab: drop point map: %w", err)
	}
	if d.count, err = ebpf.NewMap(&ebpf.MapSpec{Name: "lab_drop_count", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 65}); err != nil {
		return nil, fmt.Errorf("lab: drop point map: %w", err)
	}
	for i, m := range macs {
		var k [8]byte
		copy(k[:], m[:])
		if err := d.macs.Put(k, uint32(i)); err != nil {
			return nil, fmt.Errorf("lab: drop point map: %w", err)
		}
	}
	typ, data, end, drop, pass := ebpf.XDP, int16(xdpData), int16(xdpDataEnd), int32(xdpDrop), int32(xdpPass)
	if mode == DropTC {
		typ, data, end, drop, pass = ebpf.SchedCLS, skbData, skbDataEnd, tcActDrp, tcActOK
	}
	d.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "lab_drop", Type: typ, License: "Dual BSD/GPL",
		Instructions: dropInstructions(d.macs.FD(), d.count.FD(), len(macs), port, data, end, drop, pass)})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("lab: loading the drop point: %+v", ve)
		}
		return nil, fmt.Errorf("lab: loading the drop point: %w", err)
	}
	err = Do(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if mode == DropTC {
			d.link, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: d.prog, Attach: ebpf.AttachTCXIngress})
		} else {
			d.link, err = link.AttachXDP(link.XDPOptions{Interface: ifi.Index, Program: d.prog, Flags: link.XDPDriverMode})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: attaching the %v drop point to %s in %s: %w", mode, iface, ns, err)
	}
	return d, nil
}

// Counts returns the frames dropped so far per MAC, in the order given, and
// those to any other MAC.
func (d *DropPoint) Counts() (perMAC []uint64, other uint64, err error) {
	perMAC = make([]uint64, d.n)
	vals := make([]uint64, runtime.NumCPU())
	for i := 0; i <= d.n; i++ {
		if err := d.count.Lookup(uint32(i), &vals); err != nil {
			return nil, 0, fmt.Errorf("lab: drop point counters: %w", err)
		}
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		if i < d.n {
			perMAC[i] = sum
		} else {
			other = sum
		}
	}
	return perMAC, other, nil
}

// Close detaches the program and frees it and its maps.
func (d *DropPoint) Close() error {
	var errs []error
	if d.link != nil {
		errs = append(errs, d.link.Close())
	}
	if d.prog != nil {
		errs = append(errs, d.prog.Close())
	}
	for _, m := range []*ebpf.Map{d.macs, d.count} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// dropInstructions: if the frame is Ethernet, IPv4 with a 20-octet header,
// UDP to port: look its destination MAC up in macs (8-octet key, the MAC
// and two zero octets; value the counter index, else n), add one to that
// per-CPU counter and drop; otherwise pass.
func dropInstructions(macs, count, n int, port uint16, data, end int16, drop, pass int32) asm.Instructions {
	const (
		stKey = -8  // the MAC key
		stIdx = -12 // counter index
	)
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], port)
	portBE := int32(binary.NativeEndian.Uint16(p[:]))
	binary.BigEndian.PutUint16(p[:], 0x0800)
	ipv4BE := int32(binary.NativeEndian.Uint16(p[:]))
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, data, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, end, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R4, ipv4BE, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 14, asm.Byte),
		asm.JNE.Imm(asm.R4, 0x45, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 14+9, asm.Byte),
		asm.JNE.Imm(asm.R4, 17, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 14+20+2, asm.Half),
		asm.JNE.Imm(asm.R4, portBE, "pass"),
		// Key: the destination MAC, two zero octets.
		asm.LoadMem(asm.R4, asm.R2, 0, asm.Word),
		asm.StoreMem(asm.RFP, stKey, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R2, 4, asm.Half),
		asm.StoreMem(asm.RFP, stKey+4, asm.R4, asm.Half),
		asm.StoreImm(asm.RFP, stKey+6, 0, asm.Half),
		asm.StoreImm(asm.RFP, stIdx, int64(n), asm.Word),
		asm.LoadMapPtr(asm.R1, macs),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "count"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, stIdx, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, count).WithSymbol("count"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stIdx),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, drop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, pass).WithSymbol("pass"),
		asm.Return(),
	}
}
