package replay

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

var updateGoldens = flag.Bool("update", false, "rewrite testdata/tunnels.* from the output")

// tunnelGoldenRules: one virtual service per tunnel type and checksum mode
// and per inner family, each with one real server of each family: every
// type × inner family × outer family.
func tunnelGoldenRules() string {
	var b strings.Builder
	opts := []string{
		"--tun-type ipip",
		"--tun-type gue --tun-port 6080 --tun-nocsum",
		"--tun-type gue --tun-port 6080 --tun-csum",
		"--tun-type gue --tun-port 6080 --tun-remcsum",
		"--tun-type gre --tun-nocsum",
		"--tun-type gre --tun-csum",
	}
	for i, o := range opts {
		for _, vip := range []string{fmt.Sprintf("10.0.0.%d:5060", 10+i), fmt.Sprintf("[fd00::%d]:5060", 10+i)} {
			fmt.Fprintf(&b, "-A -u %s -s rr -p 60 -M %s --pe sip -o\n", vip, map[bool]string{true: "0.0.0.0", false: "64"}[vip[0] != '['])
			fmt.Fprintf(&b, "-a -u %s -r 192.168.%d.1:5060 -i -w 1 %s\n", vip, i, o)
			fmt.Fprintf(&b, "-a -u %s -r [fd00:%d::1]:5060 -i -w 1 %s\n", vip, i, o)
		}
	}
	return b.String()
}

// tunnelGoldenInput: to every service, from one client per family, two
// calls (INVITE, ACK, BYE: round robin puts one call on each server), then
// to the first services a datagram too large for the tunnel (DF and not:
// ICMP and outer fragmentation) and an INVITE in fragments.
func tunnelGoldenInput(t *testing.T) []byte {
	var frames [][]byte
	add := func(s craft.Spec) {
		s.SrcMAC, s.DstMAC = craft.ClientMAC, craft.LBMAC
		frames = append(frames, s.Build())
	}
	for i := range 6 {
		for _, v6 := range []bool{false, true} {
			src, dst := "198.51.100.7:5060", fmt.Sprintf("10.0.0.%d:5060", 10+i)
			if v6 {
				src, dst = "[2001:db8:c::7]:5060", fmt.Sprintf("[fd00::%d]:5060", 10+i)
			}
			for c := range 2 {
				id := fmt.Sprintf("call-%d-%d-%v@golden", i, c, v6)
				for _, m := range [][]byte{craft.SIPInvite(id), craft.SIPAck(id), craft.SIPBye(id)} {
					add(craft.Spec{Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Payload: m, TTL: 60, TOS: 0xb8, DF: true, ID: 0x100})
				}
			}
		}
	}
	big := append(craft.SIPInvite("big@golden"), bytes.Repeat([]byte("v=0\r\n"), 280)...)
	add(craft.Spec{Src: netip.MustParseAddrPort("198.51.100.7:5060"), Dst: netip.MustParseAddrPort("10.0.0.10:5060"), Payload: big, DF: true, ID: 7})
	add(craft.Spec{Src: netip.MustParseAddrPort("198.51.100.7:5060"), Dst: netip.MustParseAddrPort("10.0.0.14:5060"), Payload: big, ID: 8})
	add(craft.Spec{Src: netip.MustParseAddrPort("[2001:db8:c::7]:5060"), Dst: netip.MustParseAddrPort("[fd00::12]:5060"), Payload: big, ID: 9})
	for _, s := range []craft.Spec{
		{Src: netip.MustParseAddrPort("198.51.100.7:5060"), Dst: netip.MustParseAddrPort("10.0.0.11:5060"), Payload: craft.SIPInvite("frag4@golden"), ID: 10},
		{Src: netip.MustParseAddrPort("[2001:db8:c::7]:5060"), Dst: netip.MustParseAddrPort("[fd00::15]:5060"), Payload: craft.SIPInvite("frag6@golden"), ID: 11},
	} {
		s.SrcMAC, s.DstMAC = craft.ClientMAC, craft.LBMAC
		frames = append(frames, craft.Fragment(s, 400)...)
	}
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestReplayTunnelGoldens replays calls through every tunnel type × inner
// family × outer family, too-large datagrams and fragments, and compares
// the output capture and the decision log with the committed goldens
// (testdata/tunnels.out.pcap, testdata/tunnels.log; -update rewrites
// them). The goldens were checked when written: package packet's tests
// build the same headers independently and have tshark dissect them.
func TestReplayTunnelGoldens(t *testing.T) {
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(tunnelGoldenRules()), "tunnels.rules"); err != nil {
		t.Fatal(err)
	}
	in := tunnelGoldenInput(t)
	r, err := capture.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	res, err := Run(r, Options{Config: cfg, Out: &out, Log: &log, Seed: 1, MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	// Every call datagram forwarded, each call on one server, both servers
	// of each service used (each real server serves an IPv4 and an IPv6
	// service: 12 servers, two calls each).
	for real, st := range res.PerReal {
		if st.Datagrams < 6 || len(st.CallIDs) < 2 {
			t.Errorf("%v: %d datagrams, %d calls", real, st.Datagrams, len(st.CallIDs))
		}
	}
	if len(res.PerReal) != 12 || res.Verdicts[0] != 0 || res.Verdicts[2] != 0 {
		t.Errorf("%d real servers used, want 12; verdicts %v", len(res.PerReal), res.Verdicts)
	}
	for _, want := range []string{"tunnel_icmp_too_big", "fragment_followed"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no %s in the log", want)
		}
	}
	if res.Counters.Tunnel.Fragmented != 1 || res.Emitted < 1 {
		t.Errorf("tunnel counters %+v, %d emitted", res.Counters.Tunnel, res.Emitted)
	}
	// Every forwarded frame decodes, from the replay's tunnel source.
	pr, err := capture.NewReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; ; n++ {
		f, err := pr.Next()
		if err != nil {
			break
		}
		var p packet.Parsed
		p.Decode(f.Data, packet.LinkEthernet)
		if p.Version == 0 || p.Src != DefaultTunnelSource4 && p.Src != DefaultTunnelSource6 && p.Proto != packet.ProtoICMP && p.Proto != packet.ProtoICMPv6 {
			t.Errorf("output frame %d: v%d from %v", n, p.Version, p.Src)
		}
	}
	for name, got := range map[string][]byte{"tunnels.out.pcap": out.Bytes(), "tunnels.log": log.Bytes()} {
		path := filepath.Join("testdata", name)
		if *updateGoldens {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden (run with -update after checking why)", name)
		}
	}
}
