package packet_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/xvs-lb/xvs/packet"
)

// sipFrame is an Ethernet frame: a SIP OPTIONS request by UDP from
// 198.51.100.7:5060 to 192.0.2.1:5060.
var sipFrame, _ = hex.DecodeString("" +
	"02000000000202000000000108004500005b0000000040118e56c6336407c000" +
	"020113c413c40047b1864f5054494f4e53207369703a3139322e302e322e3120" +
	"5349502f322e300d0a43616c6c2d49443a206138346234633736653636373130" +
	"40706333330d0a0d0a")

// Decode a frame into a reusable Parsed: offsets into the frame and the
// fields a balancer decides on. It does not allocate.
func ExampleParsed_Decode() {
	var p packet.Parsed
	if r := p.Decode(sipFrame, packet.LinkEthernet); r != packet.ReasonOK {
		fmt.Println("dropped:", r)
		return
	}
	fmt.Println(p.Proto == packet.ProtoUDP, p.SrcAddrPort(), "->", p.DstAddrPort())
	fmt.Printf("%.29s\n", p.Payload(sipFrame))
	// Output:
	// true 198.51.100.7:5060 -> 192.0.2.1:5060
	// OPTIONS sip:192.0.2.1 SIP/2.0
}

// NAT forwarding rewrites the destination in place; the IP and UDP
// checksums are updated incrementally, and the MACs are swapped for the
// next hop's.
func ExampleParsed_SetDst() {
	frame := append([]byte(nil), sipFrame...) // frames are rewritten in place
	var p packet.Parsed
	p.Decode(frame, packet.LinkEthernet)
	p.SetDst(frame, netip.MustParseAddr("10.1.0.5"), 5060)
	packet.ForwardMAC(frame, [6]byte{0x02, 0, 0, 0, 0, 0x05})

	p.Decode(frame, packet.LinkEthernet)
	fmt.Println(p.DstAddrPort(), p.VerifyChecksums(frame))
	fmt.Println(hex.EncodeToString(frame[:12]))
	// Output:
	// 10.1.0.5:5060 true
	// 020000000005020000000002
}
