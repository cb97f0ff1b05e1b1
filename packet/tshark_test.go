package packet_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xvs-lb/xvs/packet"
)

// tsharkFields runs tshark (an independent decoder) over frames with IPv4,
// UDP, ICMP and ICMPv6 checksum validation on (GRE's is always checked)
// and returns one tab-separated line of fields per frame.
func tsharkFields(t *testing.T, frames [][]byte, fields ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tshark is required in CI (Debian package tshark): %v", err)
		}
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tunnel.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	args := []string{"-n", "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-o", "tcp.check_checksum:TRUE", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, fl := range fields {
		args = append(args, "-e", fl)
	}
	cmd := exec.Command("tshark", args...)
	cmd.Env = append(os.Environ(), "HOME="+dir) // no user profile
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, errb.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// Wireshark's checksum status values (proto_checksum_enum_e).
const (
	csumBad  = "0"
	csumGood = "1"
)

// TestTsharkDissectsTunnels: tshark dissects every IPIP and GRE
// encapsulation (both families, both ways, with and without GRE checksum),
// the outer and the inner headers, and finds every checksum valid: the
// outer IPv4 header, GRE's, the outer UDP checksum of GUE (with csum), and
// the inner IPv4 header and UDP checksum, which encapsulation must leave
// valid. GUE itself is not dissected by tshark 4.0; TestEncapsulateGUELayout
// pins its bytes.
func TestTsharkDissectsTunnels(t *testing.T) {
	var frames [][]byte
	var cases []tunCase
	for _, c := range tunCases() {
		s := innerSpec(c.inner6)
		room, frame := withRoom(s.Build())
		var p packet.Parsed
		p.Decode(frame, packet.LinkEthernet)
		e := c.e
		out, _, ok := p.Encapsulate(room, frame, &e, false)
		if !ok {
			t.Fatal(c.name)
		}
		frames = append(frames, out)
		cases = append(cases, c)
	}
	rows := tsharkFields(t, frames, "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
		"ip.checksum.status", "gre.proto", "gre.checksum.status", "udp.srcport", "udp.dstport", "udp.checksum.status")
	if len(rows) != len(frames) {
		t.Fatalf("%d rows for %d frames:\n%s", len(rows), len(frames), strings.Join(rows, "\n"))
	}
	for i, row := range rows {
		c := cases[i]
		f := strings.Split(row, "\t")
		protos, ip4src, ip4dst, ip6src, ip6dst, ipcs, greProto, grecs, sport, dport, udpcs := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
		inner := innerSpec(c.inner6)
		// Addresses, outer first.
		var src, dst []string
		if c.e.Dst.Is4() {
			src, dst = append(src, c.e.Src.String()), append(dst, c.e.Dst.String())
		}
		if !c.inner6 {
			src, dst = append(src, inner.Src.Addr().String()), append(dst, inner.Dst.Addr().String())
		}
		src6, dst6 := []string{}, []string{}
		if c.e.Dst.Is6() {
			src6, dst6 = append(src6, c.e.Src.String()), append(dst6, c.e.Dst.String())
		}
		if c.inner6 {
			src6, dst6 = append(src6, inner.Src.Addr().String()), append(dst6, inner.Dst.Addr().String())
		}
		if c.e.Type == packet.EncapGUE {
			// tshark stops at the outer UDP: the inner headers are GUE's payload.
			if c.e.Dst.Is4() {
				src, dst = src[:1], dst[:1]
				src6, dst6 = nil, nil
			} else {
				src, dst = nil, nil
				src6, dst6 = src6[:1], dst6[:1]
			}
		}
		if ip4src != strings.Join(src, ",") || ip4dst != strings.Join(dst, ",") ||
			ip6src != strings.Join(src6, ",") || ip6dst != strings.Join(dst6, ",") {
			t.Errorf("%s: addresses %q→%q %q→%q (protocols %s)", c.name, ip4src, ip4dst, ip6src, ip6dst, protos)
		}
		for _, s := range strings.Split(ipcs, ",") {
			if s != csumGood && ipcs != "" {
				t.Errorf("%s: IPv4 header checksums %q", c.name, ipcs)
			}
		}
		switch c.e.Type {
		case packet.EncapGRE:
			want := "0x0800"
			if c.inner6 {
				want = "0x86dd"
			}
			if greProto != want || !strings.Contains(protos, ":gre:") {
				t.Errorf("%s: GRE protocol %q, protocols %s", c.name, greProto, protos)
			}
			if (grecs == csumGood) != c.e.Csum || grecs == csumBad {
				t.Errorf("%s: GRE checksum status %q", c.name, grecs)
			}
			if udpcs != csumGood {
				t.Errorf("%s: inner UDP checksum %q", c.name, udpcs)
			}
		case packet.EncapIPIP:
			if udpcs != csumGood || !strings.Contains(protos, ":udp:sip") {
				t.Errorf("%s: inner UDP checksum %q, protocols %s", c.name, udpcs, protos)
			}
		case packet.EncapGUE:
			if sport != fmt.Sprint(c.e.SrcPort) || dport != fmt.Sprint(c.e.Port) {
				t.Errorf("%s: outer UDP ports %s→%s", c.name, sport, dport)
			}
			switch {
			case c.e.Csum && udpcs != csumGood:
				t.Errorf("%s: outer UDP checksum status %q", c.name, udpcs)
			case !c.e.Csum && c.e.Dst.Is4() && udpcs != "3": // not present
				t.Errorf("%s: outer UDP without checksum: status %q", c.name, udpcs)
			}
		}
	}
}

// TestTsharkDissectsTooBig: the ICMP errors and the outer fragments are
// what tshark expects: valid checksums, the MTU, the quoted datagram.
func TestTsharkDissectsTooBig(t *testing.T) {
	var frames [][]byte
	for _, v6 := range []bool{false, true} {
		s := innerSpec(v6)
		s.Payload = bytes.Repeat([]byte("x"), 1400)
		room, frame := withRoom(s.Build())
		var p packet.Parsed
		p.Decode(frame, packet.LinkEthernet)
		out, _, _ := p.TooBig(room, frame, 1480, 77)
		frames = append(frames, out)
	}
	rows := tsharkFields(t, frames, "ip.checksum.status", "icmp.type", "icmp.code", "icmp.mtu", "icmp.checksum.status",
		"icmpv6.type", "icmpv6.mtu", "icmpv6.checksum.status", "ip.src", "ipv6.src")
	if len(rows) != 2 {
		t.Fatalf("rows %q", rows)
	}
	if f := strings.Split(rows[0], "\t"); f[0] != csumGood+","+csumGood || f[1] != "3" || f[2] != "4" || f[3] != "1480" || f[4] != csumGood ||
		f[8] != "192.0.2.100,203.0.113.5" {
		t.Errorf("ICMPv4: %q", rows[0])
	}
	if f := strings.Split(rows[1], "\t"); f[5] != "2" || f[6] != "1480" || f[7] != csumGood || f[9] != "2001:db8::100,2001:db8:c::5" {
		t.Errorf("ICMPv6: %q", rows[1])
	}
}
