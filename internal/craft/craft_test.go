package craft_test

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// TestSIPContentLength checks every canned message: a header block ended by
// an empty line, a Content-Length (or compact l:) equal to the body length,
// and the Call-ID where one is expected.
func TestSIPContentLength(t *testing.T) {
	const id = "a84b4c76e66710@pc33.atlanta.example.com"
	for name, msg := range map[string][]byte{
		"invite":  craft.SIPInvite(id),
		"200ok":   craft.SIP200OK(id),
		"ack":     craft.SIPAck(id),
		"bye":     craft.SIPBye(id),
		"compact": craft.SIPCompact(id),
		"nocid":   craft.SIPNoCallID(),
		"options": craft.SIPOptions(id),
		"ipv6":    craft.Dialog{CallID: id, FromHost: "2001:db8::10", ToHost: "2001:db8:1::1"}.Invite(),
	} {
		head, body, ok := strings.Cut(string(msg), "\r\n\r\n")
		if !ok {
			t.Fatalf("%s: no end of headers", name)
		}
		var length = -1
		var callID string
		for _, line := range strings.Split(head, "\r\n")[1:] {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch strings.ToLower(k) {
			case "content-length", "l":
				length, _ = strconv.Atoi(v)
			case "call-id", "i":
				callID = v
			}
		}
		if length != len(body) {
			t.Errorf("%s: Content-Length %d, body %d", name, length, len(body))
		}
		if want := id; name == "nocid" && callID != "" || name != "nocid" && callID != want {
			t.Errorf("%s: Call-ID %q", name, callID)
		}
	}
	if n := len(craft.SIPInvite("a84b4c76e66710@pc33.atlanta.example.com")); n < 700 || n > 1000 {
		t.Errorf("INVITE is %d bytes, want about 800", n)
	}
}

// TestBuildAgainstGopacket decodes crafted frames with gopacket, an
// independent implementation, and re-serialises them with its checksum and
// length computation: the bytes must come out the same.
func TestBuildAgainstGopacket(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.10:5060")
	dst := netip.MustParseAddrPort("198.51.100.1:5061")
	for _, s := range []craft.Spec{
		{Src: src, Dst: dst, Payload: craft.SIPAck("x"), VLANs: []craft.VLAN{{TCI: 7}}},
		{Src: src, Dst: dst, Payload: []byte("tcp"), Proto: craft.TCP, TCPFlags: craft.SYN},
		{Src: src, Dst: dst, Payload: []byte("odd")},
		{Src: netip.MustParseAddrPort("[2001:db8::1]:1"), Dst: netip.MustParseAddrPort("[2001:db8::2]:2"), Payload: []byte("v6")},
		{Src: src, Dst: dst, Payload: craft.SIPAck("x"), PPPoE: true, PPPoESession: 0x18E5},
		{Src: netip.MustParseAddrPort("[2001:db8::1]:1"), Dst: netip.MustParseAddrPort("[2001:db8::2]:2"), Payload: []byte("v6"),
			Proto: craft.TCP, VLANs: []craft.VLAN{{TCI: 7}}, PPPoE: true, PPPoESession: 1},
	} {
		frame := s.Build()
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		pppoe, _ := pkt.Layer(layers.LayerTypePPPoE).(*layers.PPPoE)
		if s.PPPoE && (pppoe == nil || pppoe.SessionId != s.PPPoESession || pppoe.Code != layers.PPPoECodeSession ||
			pkt.Layer(layers.LayerTypePPP) == nil) || !s.PPPoE && pppoe != nil {
			t.Fatalf("gopacket PPPoE layer %+v, want session %#x: %v", pppoe, s.PPPoESession, pkt)
		}
		tl := pkt.TransportLayer()
		if tl == nil || !bytes.Equal(tl.LayerPayload(), s.Payload) {
			t.Fatalf("gopacket transport layer %v", tl)
		}
		var sls []gopacket.SerializableLayer
		for _, l := range pkt.Layers() {
			switch l := l.(type) {
			case *layers.UDP:
				l.SetNetworkLayerForChecksum(pkt.NetworkLayer())
				sls = append(sls, l, gopacket.Payload(s.Payload))
			case *layers.TCP:
				l.SetNetworkLayerForChecksum(pkt.NetworkLayer())
				sls = append(sls, l, gopacket.Payload(s.Payload))
			case gopacket.SerializableLayer:
				sls = append(sls, l)
			}
			if _, ok := l.(gopacket.TransportLayer); ok {
				break
			}
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, sls...); err != nil {
			t.Fatal(err)
		}
		// gopacket pads Ethernet frames to the 60-octet minimum.
		if got := buf.Bytes(); len(got) < len(frame) || !bytes.Equal(got[:len(frame)], frame) ||
			bytes.Count(got[len(frame):], []byte{0}) != len(got)-len(frame) {
			t.Errorf("gopacket re-serialisation differs\n got %x\nwant %x", buf.Bytes(), frame)
		}
	}
}

func TestFragmentReassembles(t *testing.T) {
	for _, s := range []craft.Spec{
		{Src: netip.MustParseAddrPort("192.0.2.1:5060"), Dst: netip.MustParseAddrPort("192.0.2.2:5060"), Payload: craft.SIPInvite("f"), ID: 42},
		{Src: netip.MustParseAddrPort("[2001:db8::1]:5060"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5060"), Payload: craft.SIPInvite("f"), ID: 42},
	} {
		frags := craft.Fragment(s, 500)
		var seg []byte
		for i, f := range frags {
			var p packet.Parsed
			r := p.Decode(f, packet.LinkEthernet)
			if i == 0 {
				seg = append(seg, f[p.L4Off:p.End]...)
			} else {
				seg = append(seg, p.Payload(f)...)
			}
			if r != packet.ReasonOK && r != packet.ReasonNonFirstFragment || !p.VerifyChecksums(f) || len(f)-14-p.IPHeaderLen > 500+8 {
				t.Fatalf("fragment %d: %v", i, r)
			}
		}
		if len(frags) != 2 || !bytes.Equal(seg, s.Segment()) {
			t.Errorf("%d fragments; reassembly equal: %v", len(frags), bytes.Equal(seg, s.Segment()))
		}
	}
}
