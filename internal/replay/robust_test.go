package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
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

// Hand-made captures for the replay's edge cases.

const testRules = `-A -u 192.0.2.1:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 192.0.2.1:5060 -r 10.0.0.11:5060 -m
-a -u 192.0.2.1:5060 -r 10.0.0.12:5060 -m
`

var (
	clientMAC = [6]byte{0x02, 0xcc, 0, 0, 0, 1}
	lbMAC     = [6]byte{0x02, 0x1b, 0, 0, 0, 1}
	client    = netip.MustParseAddrPort("198.51.100.7:5060")
	vip       = netip.MustParseAddrPort("192.0.2.1:5060")
	t0        = time.Unix(1700000000, 0).UTC()
)

func testConfig(t *testing.T, text string) *ipvs.Config {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(text), "test.rules"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// inbound is a SIP datagram from the client to the virtual service.
func inbound(payload []byte, id uint32) craft.Spec {
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: client, Dst: vip, Payload: payload, ID: id}
}

// pcapOf writes frames as a libpcap capture, one millisecond apart; a
// frame's captured bytes may be cut to caplen[i] (0: whole).
func pcapOf(t *testing.T, frames [][]byte, caplen map[int]int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		data := f
		if n := caplen[i]; n > 0 {
			data = f[:n]
		}
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(f)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

type replayed struct {
	res  *Result
	err  error
	rows []logRow
	log  string
	out  []capture.Frame
}

func replayBytes(t *testing.T, file []byte, text string) replayed {
	t.Helper()
	in, err := capture.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var log, out bytes.Buffer
	var r replayed
	r.res, r.err = Run(in, Options{Config: testConfig(t, text), Log: &log, Out: &out})
	r.log = log.String()
	if !strings.HasSuffix(r.log, "\n") {
		t.Fatalf("the decision log ends mid-line: %q", r.log[max(0, len(r.log)-80):])
	}
	r.rows = readLog(t, log.Bytes())
	if out.Len() > 0 {
		o, err := capture.NewReader(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("output capture: %v", err)
		}
		for {
			f, err := o.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("output capture: %v", err)
				}
				break
			}
			f.Data = bytes.Clone(f.Data)
			r.out = append(r.out, f)
		}
	}
	return r
}

// calls is n calls' INVITE and ACK, each datagram a frame.
func calls(n int) [][]byte {
	var frames [][]byte
	for i := range n {
		id := fmt.Sprintf("call-%d@test", i)
		frames = append(frames, inbound(craft.SIPInvite(id), uint32(2*i)).Build(), inbound(craft.SIPAck(id), uint32(2*i+1)).Build())
	}
	return frames
}

// A capture cut short — libpcap mid-frame, pcapng mid-block — stops the
// replay with ErrTruncated naming the frame, after every frame before the
// cut was decided, logged (whole lines, none lost in a buffer), written and
// counted; a decision log longer than its 64 KiB buffer is complete too.
func TestReplayTruncatedCapture(t *testing.T) {
	frames := calls(500) // a log well over 64 KiB
	pcap := pcapOf(t, frames, nil)
	ng := ngOf(t, frames)
	n := len(frames)
	for name, file := range map[string][]byte{
		"pcap":   pcap[:len(pcap)-100],
		"pcapng": ng[:len(ng)-100],
	} {
		r := replayBytes(t, file, testRules)
		if !errors.Is(r.err, capture.ErrTruncated) || !strings.Contains(r.err.Error(), fmt.Sprintf("frame %d:", n)) {
			t.Errorf("%s: err = %v, want ErrTruncated at frame %d", name, r.err, n)
		}
		if r.res == nil || r.res.Frames != n-1 || len(r.rows) != n-1 || r.res.Verdicts[1] != n-1 || len(r.out) != n-1 {
			t.Fatalf("%s: %d frames, %d log rows, %d written; want %d each", name, r.res.Frames, len(r.rows), len(r.out), n-1)
		}
		if len(r.log) <= 1<<16 {
			t.Fatalf("%s: log of %d bytes, want more than the 64 KiB buffer", name, len(r.log))
		}
	}
}

// ngOf writes frames as a pcapng capture (one Ethernet interface).
func ngOf(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A frame captured shorter than it was on the wire (snaplen) cannot be
// decided: it is skipped as truncated_capture, not dropped as malformed,
// and the frames around it are decided as usual. A frame that lost only
// bytes after its IP datagram (a trailer) is decided.
func TestReplayTruncatedFrame(t *testing.T) {
	frames := calls(2)
	trailer := append(bytes.Clone(frames[2]), make([]byte, 8)...) // 8 bytes after the datagram
	frames = append(frames, trailer)
	r := replayBytes(t, pcapOf(t, frames, map[int]int{1: 96, 4: len(trailer) - 8}), testRules)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []string{"forward scheduled", "skip truncated_capture", "forward scheduled", "forward template_hit", "forward template_hit"}
	for i, row := range r.rows {
		if got := row.verdict + " " + row.reason; got != want[i] {
			t.Errorf("frame %d: %s, want %s", row.frame, got, want[i])
		}
	}
	if r.rows[1].src != client.String() || r.rows[1].dst != vip.String() {
		t.Errorf("skipped frame logged %s → %s", r.rows[1].src, r.rows[1].dst)
	}
	if r.res.Skipped[SkipTruncated] != 1 || len(r.out) != 4 {
		t.Errorf("skipped %v, %d written", r.res.Skipped, len(r.out))
	}
}

// A pcapng capture whose second interface has a link type the decoder does
// not handle: its frames are skipped and counted, the others replayed.
func TestReplayUnsupportedLinkType(t *testing.T) {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	usb, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeLinuxUSB, SnapLength: 65535})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range calls(2) {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if i%2 == 1 {
			ci.InterfaceIndex = usb
		}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	r := replayBytes(t, b.Bytes(), testRules)
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := ""
	for _, row := range r.rows {
		got += row.verdict + " " + row.reason + "; "
	}
	if want := "forward scheduled; skip unsupported_link_type; forward scheduled; skip unsupported_link_type; "; got != want {
		t.Errorf("log %s, want %s", got, want)
	}
	if r.res.Skipped[SkipLinkType] != 2 || len(r.out) != 2 {
		t.Errorf("skipped %v, %d written", r.res.Skipped, len(r.out))
	}
}

// A frame over the output's snapshot length is refused by the reader with a
// clear error; the output stays a valid capture of the frames before it.
func TestReplayOversizedFrame(t *testing.T) {
	frames := calls(1)
	big := append(bytes.Clone(frames[1]), make([]byte, capture.MaxFrame)...) // padding after the datagram
	frames = append(frames, big)
	r := replayBytes(t, pcapOf(t, frames, nil), testRules)
	if !errors.Is(r.err, capture.ErrCorrupt) || !strings.Contains(r.err.Error(), "frame 3:") {
		t.Fatalf("err = %v, want ErrCorrupt at frame 3", r.err)
	}
	if len(r.out) != 2 || len(r.rows) != 2 {
		t.Fatalf("%d written, %d logged; want 2", len(r.out), len(r.rows))
	}
}

// Simple Packet Blocks (no timestamp) replay on the previous frame's time:
// the output's timestamps never go back.
func TestReplaySimplePacketBlocks(t *testing.T) {
	frames := calls(2)
	var file []byte
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		n := uint32(12 + len(body))
		file = le.AppendUint32(le.AppendUint32(file, typ), n)
		file = le.AppendUint32(append(file, body...), n)
	}
	block(0x0A0D0D0A, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, 0x1A2B3C4D), 1), ^uint64(0)))
	block(1, le.AppendUint32(le.AppendUint32(nil, 1), 0))
	us := uint64(t0.UnixMicro())
	for i, f := range frames {
		if i == 0 {
			b := le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), uint32(us>>32)), uint32(us))
			block(6, append(le.AppendUint32(le.AppendUint32(b, uint32(len(f))), uint32(len(f))), f...))
			continue
		}
		block(3, append(le.AppendUint32(nil, uint32(len(f))), f...))
	}
	r := replayBytes(t, file, testRules)
	if r.err != nil || len(r.out) != 4 {
		t.Fatalf("%d written, %v", len(r.out), r.err)
	}
	for _, f := range r.out {
		if !f.Time.Equal(t0) {
			t.Errorf("output frame %d at %v, want %v", f.Number, f.Time, t0)
		}
	}
}

// A fragmented INVITE whose Call-ID is in a later fragment: every fragment
// waits until the datagram is reassembled and decided. The log gives each
// fragment frame its final verdict and real server (the first the
// datagram's decision, the others fragment_followed), the summary counts the
// datagram and its Call-ID for that server, and the output holds every
// fragment once.
func TestReplayHeldFragments(t *testing.T) {
	for name, order := range map[string][]int{"in order": {0, 1, 2, 3, 4}, "reversed": {4, 3, 2, 1, 0}, "shuffled": {1, 4, 0, 3, 2}} {
		t.Run(name, func(t *testing.T) {
			inv := craft.SIPInvite("frag@test")
			i := bytes.Index(inv, []byte("Call-ID:"))
			j := i + bytes.Index(inv[i:], []byte("\r\n")) + 2
			// Move the Call-ID after 1000 bytes of padding headers.
			late := append(append(append(bytes.Clone(inv[:i]), "X-Pad: "+strings.Repeat("p", 1000)+"\r\n"...), inv[i:j]...), inv[j:]...)
			frags := craft.Fragment(inbound(late, 77), 400)
			if len(frags) != 5 {
				t.Fatalf("%d fragments", len(frags))
			}
			var frames [][]byte
			for _, k := range order {
				frames = append(frames, frags[k])
			}
			frames = append(frames, inbound(craft.SIPAck("frag@test"), 78).Build())
			r := replayBytes(t, pcapOf(t, frames, nil), testRules)
			if r.err != nil {
				t.Fatal(r.err)
			}
			ack := r.rows[5]
			if ack.reason != "template_hit" {
				t.Fatalf("ACK: %s %s", ack.verdict, ack.reason)
			}
			for n, k := range order {
				row := r.rows[n]
				want := "fragment_followed"
				if k == 0 {
					want = "scheduled"
				}
				if row.verdict != "forward" || row.real != ack.real || row.reason != want || row.callID != "frag@test" || row.src != client.String() {
					t.Errorf("frame %d (fragment %d): %s %s %s %s %q", row.frame, k, row.src, row.verdict, row.real, row.reason, row.callID)
				}
			}
			s := r.res.PerReal[netip.MustParseAddrPort(ack.real)]
			if s == nil || s.Datagrams != 2 || s.Frames != 6 || len(s.CallIDs) != 1 {
				t.Fatalf("summary for %s: %+v", ack.real, s)
			}
			if r.res.Verdicts[1] != 6 || r.res.Reasons[0] != 0 || len(r.out) != 6 {
				t.Fatalf("verdicts %v, %d written", r.res.Verdicts, len(r.out))
			}
		})
	}
	// A datagram that never completes: its held fragments are dropped when
	// they time out, or are still waiting when the capture ends.
	inv := craft.SIPInvite("lost@test")
	i := bytes.Index(inv, []byte("Call-ID:"))
	late := append(append(bytes.Clone(inv[:i]), "X-Pad: "+strings.Repeat("p", 1000)+"\r\n"...), inv[i:]...)
	frags := craft.Fragment(inbound(late, 90), 400)
	frames := [][]byte{frags[0], frags[1]}
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	ts := []time.Duration{0, time.Millisecond}
	filler := calls(200)
	for k := range filler {
		frames = append(frames, filler[k])
		ts = append(ts, 5*time.Second+time.Duration(k)*time.Millisecond) // after the 3 s fragment timeout
	}
	frames = append(frames, craft.Fragment(inbound(late, 91), 400)[0])
	ts = append(ts, 10*time.Second)
	for k, f := range frames {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(ts[k]), CaptureLength: len(f), Length: len(f)}, f)
	}
	r := replayBytes(t, b.Bytes(), testRules)
	for k, want := range map[int]string{0: "fragment_held/timeout", 1: "fragment_held/timeout", len(frames) - 1: "fragment_held/capture_end"} {
		if row := r.rows[k]; row.verdict != "drop" || row.reason != want {
			t.Errorf("frame %d: %s %s, want drop %s", row.frame, row.verdict, row.reason, want)
		}
	}
	for k, row := range r.rows {
		if row.frame != k+1 {
			t.Fatalf("log row %d is frame %d: not in frame order", k+1, row.frame)
		}
	}
}

// A NAT real server's own request (IPVS conn_out) leaves from the virtual
// address with the MACs rewritten as the daemon rewrites them: the
// balancer's MAC as source, the client's next hop (offline: GatewayMAC) as
// destination. So does a NAT reply.
func TestReplayServerInitiatedMACs(t *testing.T) {
	frames := calls(1)
	real := netip.MustParseAddrPort("10.0.0.11:5060")
	serverMAC := [6]byte{0x02, 0x58, 10, 0, 0, 11}
	bye := craft.Spec{SrcMAC: serverMAC, DstMAC: lbMAC, Src: real, Dst: client, Payload: craft.SIPBye("call-0@test"), ID: 5}.Build()
	frames = append(frames, bye)
	r := replayBytes(t, pcapOf(t, frames, nil), "-A -u 192.0.2.1:5060 -s rr -p 60 --pe sip -o\n-a -u 192.0.2.1:5060 -r 10.0.0.11:5060 -m\n")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.rows[0].real != real.String() {
		t.Fatalf("the call went to %s; the test assumes %s", r.rows[0].real, real)
	}
	if row := r.rows[2]; row.reason != "server_initiated" {
		t.Fatalf("BYE from the real server: %s %s", row.verdict, row.reason)
	}
	out := r.out[2].Data
	var p packet.Parsed
	p.Decode(out, packet.LinkEthernet)
	if p.Src != vip.Addr() || [6]byte(out[6:12]) != lbMAC || [6]byte(out[0:6]) != GatewayMAC {
		t.Fatalf("server-initiated frame leaves from %v, MACs %x → %x; want %v, %x → %x", p.Src, out[6:12], out[0:6], vip.Addr(), lbMAC, GatewayMAC)
	}
}

// The summary lists reasons as "reason count" rows, not a Go slice.
func TestSummaryFormat(t *testing.T) {
	r := replayBytes(t, pcapOf(t, calls(2), nil), testRules)
	var b strings.Builder
	r.res.Summary(&b)
	s := b.String()
	if strings.ContainsAny(s, "[]") || !strings.Contains(s, "\nscheduled ") || !strings.Contains(s, "\ntemplate_hit ") {
		t.Fatalf("summary:\n%s", s)
	}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if f := strings.Fields(line); f[0] == "scheduled" && (len(f) != 2 || f[1] != "2") {
			t.Fatalf("reason row %q", line)
		}
	}
}
