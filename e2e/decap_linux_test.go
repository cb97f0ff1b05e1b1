package e2e

// A tunnel decapsulator for the lab's real servers. This lab's kernel has no
// ipip, gre or fou drivers, so a real server cannot decapsulate what xvs
// sends to its tunnelling (-i) servers the way a production one does
// (docs/tunnels.md); instead a small XDP program on its interface strips the
// outer headers and passes the inner datagram on to its stack, as Katran's
// decap does. It is test code: the product never loads it.
//
// What it takes off (everything else passes untouched):
//
//	Ethernet, outer IPv4 (no options) or IPv6 (no extension headers), then
//	  protocol 4 or 41 (IPIP):          nothing more;
//	  protocol 47 (GRE, version 0):     4 octets, 8 with a checksum (C bit);
//	  UDP to gueDecapPort (GUE, v0):    8 + 4 + 4×hlen octets;
//	the inner EtherType from the IPIP protocol, GRE's protocol field or
//	GUE's protocol byte. The MAC addresses are kept.
//
// Checksums are not verified: the tunnel tests check them with tshark
// (package packet) and the inner ones reach the real server's stack, which
// checks them.

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/xvs-lb/xvs/internal/lab"
)

// gueDecapPort is the GUE port the lab's tunnels use.
const gueDecapPort = 6080

// Stack slots of the decap program.
const (
	dsMAC0 = -8  // destination MAC, first 4 octets
	dsMAC1 = -12 // destination MAC, last 2 and source MAC first 2
	dsMAC2 = -16 // source MAC, last 4
	dsType = -20 // inner EtherType (network order, as a 16-bit load gives it)
)

// decapInstructions builds the program (see the file comment).
func decapInstructions() asm.Instructions {
	const (
		rCtx  = asm.R6
		rData = asm.R7
		rEnd  = asm.R8
		rL3   = asm.R9 // outer L3 header length (20 or 40)
	)
	// EtherTypes and ports as a little-endian load of network order gives them.
	const (
		etIPv4 = 0x0008
		etIPv6 = 0xdd86
	)
	var ins asm.Instructions
	emit := func(i ...asm.Instruction) { ins = append(ins, i...) }
	need := func(n int32) { // data + n <= data_end, else pass
		emit(asm.Mov.Reg(asm.R2, rData), asm.Add.Imm(asm.R2, n), asm.JGT.Reg(asm.R2, rEnd, "pass"))
	}
	emit(
		asm.Mov.Reg(rCtx, asm.R1),
		asm.LoadMem(rData, rCtx, 0, asm.Word),
		asm.LoadMem(rEnd, rCtx, 4, asm.Word),
	)
	need(14 + 40 + 8 + 12) // the most any tunnel header needs read
	emit(
		asm.LoadMem(asm.R1, rData, 12, asm.Half),
		asm.JEq.Imm(asm.R1, etIPv4, "v4"),
		asm.JEq.Imm(asm.R1, etIPv6, "v6"),
		asm.Ja.Label("pass"),
		// IPv4: no options; protocol at 14+9.
		asm.LoadMem(asm.R1, rData, 14, asm.Byte).WithSymbol("v4"),
		asm.JNE.Imm(asm.R1, 0x45, "pass"),
		asm.LoadMem(asm.R1, rData, 14+9, asm.Byte),
		asm.Mov.Imm(rL3, 20),
		asm.Ja.Label("proto"),
		// IPv6: next header at 14+6.
		asm.LoadMem(asm.R1, rData, 14+6, asm.Byte).WithSymbol("v6"),
		asm.Mov.Imm(rL3, 40),
		// R1 = outer protocol; R2 = the tunnel header, data + 14 + rL3.
		asm.Mov.Reg(asm.R2, rData).WithSymbol("proto"),
		asm.Add.Imm(asm.R2, 14),
		asm.Add.Reg(asm.R2, rL3),
		asm.JEq.Imm(asm.R1, 4, "ipip4"),
		asm.JEq.Imm(asm.R1, 41, "ipip6"),
		asm.JEq.Imm(asm.R1, 47, "gre"),
		asm.JEq.Imm(asm.R1, 17, "udp"),
		asm.Ja.Label("pass"),

		asm.StoreImm(asm.RFP, dsType, etIPv4, asm.Half).WithSymbol("ipip4"),
		asm.Mov.Reg(asm.R3, rL3),
		asm.Ja.Label("strip"),
		asm.StoreImm(asm.RFP, dsType, etIPv6, asm.Half).WithSymbol("ipip6"),
		asm.Mov.Reg(asm.R3, rL3),
		asm.Ja.Label("strip"),

		// GRE: flags (C bit 0x80 in the first octet, version 0), protocol.
		asm.LoadMem(asm.R1, asm.R2, 0, asm.Byte).WithSymbol("gre"),
		asm.LoadMem(asm.R4, asm.R2, 1, asm.Byte),
		asm.JNE.Imm(asm.R4, 0, "pass"), // version 0, no other flags
		asm.LoadMem(asm.R4, asm.R2, 2, asm.Half),
		asm.StoreMem(asm.RFP, dsType, asm.R4, asm.Half),
		asm.Mov.Reg(asm.R3, rL3),
		asm.Add.Imm(asm.R3, 4),
		asm.JEq.Imm(asm.R1, 0, "strip"),
		asm.JNE.Imm(asm.R1, 0x80, "pass"),
		asm.Add.Imm(asm.R3, 4),
		asm.Ja.Label("strip"),

		// UDP to the GUE port: GUE version 0, data (C 0), hlen words of
		// options; its protocol byte names the inner family.
		asm.LoadMem(asm.R1, asm.R2, 2, asm.Half).WithSymbol("udp"),
		asm.JNE.Imm(asm.R1, int32(gueDecapPort>>8|(gueDecapPort&0xff)<<8), "pass"),
		asm.LoadMem(asm.R1, asm.R2, 8, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.And.Imm(asm.R4, 0xe0),
		asm.JNE.Imm(asm.R4, 0, "pass"),
		asm.And.Imm(asm.R1, 0x1f),
		asm.LSh.Imm(asm.R1, 2),
		asm.LoadMem(asm.R4, asm.R2, 9, asm.Byte),
		asm.StoreImm(asm.RFP, dsType, etIPv4, asm.Half),
		asm.JEq.Imm(asm.R4, 4, "gue_len"),
		asm.StoreImm(asm.RFP, dsType, etIPv6, asm.Half),
		asm.JNE.Imm(asm.R4, 41, "pass"),
		asm.Mov.Reg(asm.R3, rL3).WithSymbol("gue_len"),
		asm.Add.Imm(asm.R3, 8+4),
		asm.Add.Reg(asm.R3, asm.R1),

		// Strip R3 octets after the Ethernet header: save the MACs, move
		// the start forward, write the Ethernet header back in front.
		asm.LoadMem(asm.R1, rData, 0, asm.Word).WithSymbol("strip"),
		asm.StoreMem(asm.RFP, dsMAC0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, rData, 4, asm.Word),
		asm.StoreMem(asm.RFP, dsMAC1, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, rData, 8, asm.Word),
		asm.StoreMem(asm.RFP, dsMAC2, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R1, rCtx),
		asm.Mov.Reg(asm.R2, asm.R3),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(rData, rCtx, 0, asm.Word),
		asm.LoadMem(rEnd, rCtx, 4, asm.Word),
	)
	need(14)
	emit(
		asm.LoadMem(asm.R1, asm.RFP, dsMAC0, asm.Word),
		asm.StoreMem(rData, 0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, dsMAC1, asm.Word),
		asm.StoreMem(rData, 4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, dsMAC2, asm.Word),
		asm.StoreMem(rData, 8, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, dsType, asm.Half),
		asm.StoreMem(rData, 12, asm.R1, asm.Half),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS
		asm.Return(),
	)
	return ins
}

// attachDecap loads the decapsulator and attaches it (generic XDP) to the
// interface of each of the namespaces; the returned function detaches it.
func attachDecap(l *lab.Lab, nss []string) (func(), error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xvs_lab_decap", Type: ebpf.XDP, Instructions: decapInstructions(), License: "Dual BSD/GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("loading the decap program: %w", err)
	}
	var links []link.Link
	done := func() {
		for _, k := range links {
			k.Close()
		}
		prog.Close()
	}
	for _, ns := range nss {
		err := l.Do(ns, func() error {
			ifc, err := netlink.LinkByName(lab.HostIface)
			if err != nil {
				return err
			}
			k, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Attrs().Index, Flags: link.XDPGenericMode})
			if err != nil {
				return err
			}
			links = append(links, k)
			return nil
		})
		if err != nil {
			done()
			return nil, fmt.Errorf("attaching the decap program in %s: %w", ns, err)
		}
	}
	return done, nil
}
