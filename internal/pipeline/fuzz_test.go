package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// fuzzRules is the fixed configuration FuzzDecision runs against: SIP
// services with one-packet scheduling over NAT and direct routing, IPv4 and
// IPv6, rr and mh, a plain UDP service with connections, a TCP service and a
// port-0 persistent service.
const fuzzRules = `
-A -u 10.4.3.192:5060 -s rr -p 60 -M 255.255.255.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5070 -m
-A -u 10.4.3.193:5060 -s mh -p 60 --pe sip -o
-a -u 10.4.3.193:5060 -r 192.168.1.12 -g
-a -u 10.4.3.193:5060 -r 192.168.1.13 -g
-A -u [2001:db8::1]:5060 -s rr -p 60 --pe sip -o
-a -u [2001:db8::1]:5060 -r [2001:db8:1::10]:5070 -m
-a -u [2001:db8::1]:5060 -r 2001:db8:1::11 -g
-A -u 10.4.3.194:5060 -s rr
-a -u 10.4.3.194:5060 -r 192.168.1.10:5060 -m
-A -t 10.4.3.194:80 -s rr
-a -t 10.4.3.194:80 -r 192.168.1.11:8080 -m
-A -u 10.4.3.195:0 -s sh -p 30
-a -u 10.4.3.195:0 -r 192.168.1.12 -m
-A -u 10.4.3.196:5060 -s rr -p 60 --pe sip -o
-a -u 10.4.3.196:5060 -r 192.168.1.14 -i --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.4.3.196:5060 -r 2001:db8:1::14 -i --tun-type gre --tun-csum
-a -u 10.4.3.196:5060 -r 192.168.1.15 -i
`

// fuzzFrames splits a fuzz input into up to maxFuzzFrames frames: each is a
// 2-byte big-endian length and that many bytes (the last takes what is left).
const maxFuzzFrames = 8

func fuzzFrames(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 2 && len(out) < maxFuzzFrames {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		out = append(out, bytes.Clone(data[:n]))
		data = data[n:]
	}
	return out
}

func joinFuzzFrames(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// fuzzConfig is FuzzDecision's configuration, built once: building it per
// input (a Maglev table each time) would dominate the fuzzing rate. Each
// input gets two fresh workers, ids 0 and 1, whose scheduler states (rr
// positions) start equal and stay in step because both see every input;
// the schedulers used (rr, mh, sh) read no load that the workers share.
var fuzzConfig = sync.OnceValue(func() *atomic.Pointer[ipvs.Snapshot] {
	cfg, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		panic(err)
	}
	if err := rules.Read(cfg, strings.NewReader(fuzzRules), "fuzz.rules"); err != nil {
		panic(err)
	}
	for _, svc := range cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			a := d.Addr.Addr().As16()
			src := labSource4
			if d.Addr.Addr().Is6() {
				src = labSource6
			}
			cfg.SetEgress(svc.Key, d.Addr, [6]byte{0x02, 0xaa, a[12], a[13], a[14], a[15]}, src, labMTU)
		}
	}
	var ptr atomic.Pointer[ipvs.Snapshot]
	ptr.Store(cfg.Snapshot())
	return &ptr
})

// fuzzWorker is a small worker (tables of a few hundred entries) on
// fuzzConfig.
func fuzzWorker(t testing.TB, id int) *Worker {
	w, err := NewWorker(Options{ID: id, Config: fuzzConfig(), Templates: 256, Conns: 256, Seed: 3, FragDatagrams: 64, FragHoldSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fuzzSeeds are realistic inputs: SIP to each service, fragments in and out
// of order, replies, ICMP errors, TCP, garbage.
func fuzzSeeds() [][]byte {
	sp := func(s, d string, payload []byte) craft.Spec {
		return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(s), Dst: netip.MustParseAddrPort(d), Payload: payload}
	}
	inv := sp("10.4.3.7:5060", "10.4.3.192:5060", sized(craft.SIPInvite("fz@x"), 700))
	inv.ID = 7
	late := sp("10.4.3.7:5060", "10.4.3.192:5060", lateInvite("late@x", 260))
	late.ID = 8
	v6 := sp("[2001:db8:99::7]:5062", "[2001:db8::1]:5060", sized(craft.SIPInvite("v6@x"), 700))
	v6.ID = 9
	mh := sp("10.4.3.8:5060", "10.4.3.193:5060", lateInvite("mh@x", 200))
	mh.ID = 10
	f := craft.Fragment(inv, 256)
	lf := craft.Fragment(late, 256)
	vf := craft.Fragment(v6, 256)
	mf := craft.Fragment(mh, 256)
	reply := craft.Spec{Src: netip.MustParseAddrPort("10.4.3.192:5060"), Dst: netip.MustParseAddrPort("10.4.3.7:5060"), Payload: craft.SIP200OK("fz@x")}
	icmp4 := pmtuError(router4, reply.Src, reply.Datagram(), 300, 1400).Build()
	reply6 := craft.Spec{Src: netip.MustParseAddrPort("[2001:db8::1]:5060"), Dst: netip.MustParseAddrPort("[2001:db8:99::7]:5062"), Payload: craft.SIP200OK("v6@x")}
	icmp6 := pmtuError(router6, reply6.Src, reply6.Datagram(), 300, 1280).Build()
	var tun [][]byte
	for _, id := range []string{"t1@x", "t2@x", "t3@x"} {
		tun = append(tun, sp("10.4.3.7:5060", "10.4.3.196:5060", craft.SIPInvite(id)).Build())
	}
	big := sp("10.4.3.7:5060", "10.4.3.196:5060", sized(craft.SIPInvite("tb@x"), 1460))
	tunBig := big.Build()
	big.DF = true
	tunDF := big.Build()
	tfs := sp("10.4.3.7:5060", "10.4.3.196:5060", sized(craft.SIPInvite("tf@x"), 700))
	tfs.ID = 12
	tf := craft.Fragment(tfs, 256)
	return [][]byte{
		joinFuzzFrames(sp("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPInvite("a@x")).Build(), sp("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPAck("a@x")).Build()),
		joinFuzzFrames(f...),
		joinFuzzFrames(f[2], f[1], f[0]),
		joinFuzzFrames(f[1], f[1], f[0], f[2], f[0]),
		joinFuzzFrames(lf...),
		joinFuzzFrames(lf[3], lf[1], lf[0], lf[2], lf[4]),
		joinFuzzFrames(vf[2], vf[0], vf[1]),
		joinFuzzFrames(mf[len(mf)-1], mf[0], mf[1], mf[2], mf[3]),
		joinFuzzFrames(sp("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPInvite("fz@x")).Build(), icmp4),
		joinFuzzFrames(sp("[2001:db8:99::7]:5062", "[2001:db8::1]:5060", craft.SIPInvite("v6@x")).Build(), icmp6),
		joinFuzzFrames(sp("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPInvite("r@x")).Build(),
			craft.Spec{Src: netip.MustParseAddrPort("192.168.1.11:5070"), Dst: netip.MustParseAddrPort("10.4.3.7:5060"), Payload: craft.SIP200OK("r@x")}.Build()),
		joinFuzzFrames(craft.Spec{Proto: 6, TCPFlags: craft.SYN, Src: netip.MustParseAddrPort("10.4.3.9:4000"), Dst: netip.MustParseAddrPort("10.4.3.194:80")}.Build(),
			craft.Spec{Proto: 6, TCPFlags: craft.ACK, Src: netip.MustParseAddrPort("192.168.1.11:8080"), Dst: netip.MustParseAddrPort("10.4.3.9:4000")}.Build()),
		joinFuzzFrames(sp("10.4.3.9:1234", "10.4.3.194:5060", []byte("x")).Build(), sp("10.4.3.9:1234", "10.4.3.195:7777", []byte("y")).Build()),
		joinFuzzFrames(sp("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPNoCallID()).Build(), inv.Build()[:40]),
		{0, 3, 1, 2, 3},
		// Tunnels: calls, a datagram too large for the tunnel (no DF:
		// fragmented outside; DF: ICMP back), fragments out of order.
		joinFuzzFrames(tun[0], tun[1], tun[2], tunBig, tunDF),
		joinFuzzFrames(tf[2], tf[0], tf[1]),
	}
}

// FuzzDecision runs the whole per-packet decision — frames in, verdicts and
// rewritten frames out — over arbitrary sequences of up to eight frames on
// a worker with a fixed configuration, and checks:
//
//   - nothing panics; every frame gets one reason and the counters add up;
//   - a forwarded frame decodes (a fragment as a fragment, an ICMP error as
//     one) and has valid checksums when the input had; frames emitted from
//     the hold buffer decode as fragments;
//   - a dropped or passed frame is unchanged;
//   - the same input on a fresh worker, one frame per batch or all in one
//     ProcessBatch, gives the same decisions, bytes and emitted frames (the
//     template key and every table decision are deterministic).
//
// `make fuzz` runs it for FUZZTIME; `go test` runs the committed corpus in
// testdata/fuzz/FuzzDecision and the seeds above.
func FuzzDecision(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(fuzzDecision)
}

func fuzzDecision(t *testing.T, data []byte) {
	{
		frames := fuzzFrames(data)
		if len(frames) == 0 {
			return
		}
		const now = int64(5e12)
		a, b := fuzzWorker(t, 0), fuzzWorker(t, 1)

		// A: one frame per batch, checking each frame's invariants.
		outA := make([][]byte, len(frames))
		decA := make([]Decision, len(frames))
		var emitA [][]byte
		for i, in := range frames {
			room, fr := withRoom(in)
			a.BeginBatch(now)
			fr = a.ProcessRoom(room, fr, packet.LinkEthernet, &decA[i])
			a.EndBatch()
			checkFuzzFrame(t, i, in, fr, &decA[i])
			outA[i] = fr
			if len(a.EmittedOut()) != len(a.Emitted()) {
				t.Fatalf("frame %d: %d emitted frames, %d egresses", i, len(a.Emitted()), len(a.EmittedOut()))
			}
			for _, e := range a.Emitted() {
				var p packet.Parsed
				if p.Decode(e, packet.LinkEthernet) != packet.ReasonNonFirstFragment && !(p.Reason == packet.ReasonOK && p.Fragmented) && !tunnelled(&p) {
					t.Fatalf("emitted frame is neither a fragment nor tunnelled: %v", p.Reason)
				}
				emitA = append(emitA, unID(bytes.Clone(e)))
			}
		}
		c := a.Counters()
		var sum uint64
		for _, n := range c.Reasons {
			sum += n
		}
		if sum != c.Frames || c.Frames != uint64(len(frames)) {
			t.Fatalf("reasons sum to %d, frames %d, input %d", sum, c.Frames, len(frames))
		}

		// B: a fresh worker, the whole input in one ProcessBatch.
		outB := make([][]byte, len(frames))
		roomB := make([][]byte, len(frames))
		for i := range frames {
			roomB[i], outB[i] = withRoom(frames[i])
		}
		decB := make([]Decision, len(frames))
		b.ProcessFrames(outB, roomB, packet.LinkEthernet, now, decB)
		if len(b.EmittedOut()) != len(b.Emitted()) {
			t.Fatalf("one batch: %d emitted frames, %d egresses", len(b.Emitted()), len(b.EmittedOut()))
		}
		var emitB [][]byte
		for _, e := range b.Emitted() {
			emitB = append(emitB, unID(bytes.Clone(e)))
		}
		for i := range frames {
			da, db := &decA[i], &decB[i]
			if da.Reason != db.Reason || da.Real != db.Real || da.Src != db.Src || da.Dst != db.Dst ||
				da.Fallback != db.Fallback || da.PE != db.PE || !bytes.Equal(da.PEData, db.PEData) {
				t.Fatalf("frame %d: one per batch %v→%v %q, one batch %v→%v %q", i, da.Reason, da.Real, da.PEData, db.Reason, db.Real, db.PEData)
			}
			if !bytes.Equal(unID(outA[i]), unID(outB[i])) {
				t.Fatalf("frame %d: output bytes differ", i)
			}
		}
		slices.SortFunc(emitA, bytes.Compare)
		slices.SortFunc(emitB, bytes.Compare)
		if !slices.EqualFunc(emitA, emitB, bytes.Equal) {
			t.Fatalf("emitted %d frames one per batch, %d in one batch", len(emitA), len(emitB))
		}
	}
}

// tunnelled reports whether p decoded a tunnel's outer header (fuzzRules'
// tunnels: IPIP, GRE, GUE to port 6080).
func tunnelled(p *packet.Parsed) bool {
	return p.Src == labSource4 || p.Src == labSource6
}

// unID clears the IPv4 identification and header checksum of a frame the
// balancer built a header for (a tunnel's outer header, an ICMP error), and
// the fragment identification of an outer IPv6 fragment:
// workers number them from different starts, so the two runs of
// fuzzDecision (workers 0 and 1) differ there and nowhere else.
func unID(f []byte) []byte {
	var p packet.Parsed
	p.Decode(f, packet.LinkEthernet)
	if p.Version == 4 && (tunnelled(&p) || p.Proto == packet.ProtoICMP && p.TTL == packet.ICMPTTL) {
		f = bytes.Clone(f)
		f[p.L3Off+4], f[p.L3Off+5], f[p.L3Off+10], f[p.L3Off+11] = 0, 0, 0, 0
	}
	if p.Version == 6 && tunnelled(&p) && p.FragHdrOff != 0 {
		f = bytes.Clone(f)
		copy(f[p.FragHdrOff+4:p.FragHdrOff+8], []byte{0, 0, 0, 0}) // the outer fragment identification
	}
	return f
}

// checkFuzzFrame checks one frame's decision against its input and output.
func checkFuzzFrame(t *testing.T, i int, in, out []byte, d *Decision) {
	t.Helper()
	if d.Reason >= NumReasons {
		t.Fatalf("frame %d: reason %d", i, d.Reason)
	}
	if d.Verdict() != Forward {
		if !bytes.Equal(in, out) {
			t.Fatalf("frame %d: %v (%v) but the frame changed", i, d.Reason, d.Verdict())
		}
		return
	}
	if d.Reason == ReasonTunnelICMPTooBig {
		var p packet.Parsed
		var e packet.ICMPError
		if p.Decode(out, packet.LinkEthernet); !e.DecodeICMPError(out, &p) || !e.VerifyICMPChecksum(out, &p) {
			t.Fatalf("frame %d: %v but no valid ICMP error", i, d.Reason)
		}
		return
	}
	if d.Dest != nil && d.Dest.Fwd == ipvs.Tunnel {
		// The input datagram, unchanged, behind outer headers to the
		// real server (one fragment of them, when it was fragmented).
		var pin, pout packet.Parsed
		pin.Decode(in, packet.LinkEthernet)
		pout.Decode(out, packet.LinkEthernet)
		if pout.Dst != d.Dest.Addr.Addr() || pout.Src != labSource4 && pout.Src != labSource6 {
			t.Fatalf("frame %d: tunnelled %v→%v, want to %v", i, pout.Src, pout.Dst, d.Dest.Addr)
		}
		if dg := in[pin.L3Off:pin.End]; !pout.Fragmented && !bytes.HasSuffix(out, dg) {
			t.Fatalf("frame %d: the tunnelled datagram changed", i)
		}
		return
	}
	if d.Dest == nil || !d.Real.IsValid() {
		t.Fatalf("frame %d: forwarded (%v) without a destination", i, d.Reason)
	}
	var pin, pout packet.Parsed
	rin := pin.Decode(in, packet.LinkEthernet)
	rout := pout.Decode(out, packet.LinkEthernet)
	if rout != rin {
		t.Fatalf("frame %d: decodes as %v, input %v", i, rout, rin)
	}
	switch rout {
	case packet.ReasonOK, packet.ReasonNonFirstFragment:
		if pin.VerifyChecksums(in) && !pout.VerifyChecksums(out) {
			t.Fatalf("frame %d (%v): valid checksums in, invalid out", i, d.Reason)
		}
	case packet.ReasonUnsupportedProto:
		var ein, eout packet.ICMPError
		if d.Reason != ReasonICMPForwarded || !ein.DecodeICMPError(in, &pin) || !eout.DecodeICMPError(out, &pout) {
			t.Fatalf("frame %d: forwarded %v, not an ICMP error", i, d.Reason)
		}
		if ein.VerifyICMPChecksum(in, &pin) && !eout.VerifyICMPChecksum(out, &pout) {
			t.Fatalf("frame %d: ICMP checksum broken", i)
		}
		if pin.Version == 4 && packet.Checksum(in[pin.L3Off:pin.L3Off+pin.IPHeaderLen]) == 0 &&
			packet.Checksum(out[pout.L3Off:pout.L3Off+pout.IPHeaderLen]) != 0 {
			t.Fatalf("frame %d: ICMP's IPv4 header checksum broken", i)
		}
	default:
		t.Fatalf("frame %d: forwarded %v but decodes as %v", i, d.Reason, rout)
	}
}

// TestWriteFuzzCorpus writes the seeds as committed corpus files when
// XVS_WRITE_FUZZ_CORPUS is set (go test -run TestWriteFuzzCorpus).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("XVS_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set XVS_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzDecision/seed-*")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecision")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
