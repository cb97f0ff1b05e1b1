package packet_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// TestCompletePartialChecksum builds random packets with the partial
// checksum a sender using TX checksum offload leaves (the pseudo-header sum)
// and checks that completing it gives exactly the packet with a full
// checksum; packets that already carry a full checksum are left unchanged.
func TestCompletePartialChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var p packet.Parsed
	completed := 0
	for i := range 3000 {
		s := randomSpec(rng)
		want := s.Build()
		s.PartialChecksum = true
		f := s.Build()
		if p.Decode(f, packet.LinkEthernet) != packet.ReasonOK {
			t.Fatalf("#%d: decode %v", i, p.Reason)
		}
		zero := s.ZeroUDPChecksum && s.Proto != craft.TCP
		if zero != bytes.Equal(f, want) {
			t.Fatalf("#%d: partial frame equals the full one (or not for a zero checksum)", i)
		}
		if got := p.CompletePartialChecksum(f); got == zero {
			t.Fatalf("#%d: CompletePartialChecksum = %v (zero UDP checksum %v)", i, got, zero)
		}
		if !zero {
			completed++
		}
		if !bytes.Equal(f, want) {
			t.Fatalf("#%d: completed frame differs\n got %x\nwant %x", i, f, want)
		}
		if !p.VerifyChecksums(f) {
			t.Fatalf("#%d: checksum bad after completion", i)
		}
		// A full checksum stays as it is (unless it happens to equal the
		// pseudo-header sum, and then completion rewrites the same value).
		g := bytes.Clone(want)
		p.Decode(g, packet.LinkEthernet)
		p.CompletePartialChecksum(g)
		if !bytes.Equal(g, want) {
			t.Fatalf("#%d: a full checksum was changed", i)
		}
	}
	if completed == 0 {
		t.Fatal("nothing completed")
	}
}

// TestCompleteCoincidingChecksum finds a packet whose full checksum equals
// its pseudo-header sum (the 1-in-65536 false positive) and checks that
// "completing" it leaves it unchanged.
func TestCompleteCoincidingChecksum(t *testing.T) {
	s := craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, Proto: craft.TCP,
		Src: udp4(nil).Src, Dst: udp4(nil).Dst, Payload: []byte("xvs!")}
	var p packet.Parsed
	for seq := range uint32(1 << 20) {
		s.Seq = seq
		full := s.Build()
		s.PartialChecksum = true
		partial := s.Build()
		s.PartialChecksum = false
		off := 14 + 20 + 16
		if binary.BigEndian.Uint16(full[off:]) != binary.BigEndian.Uint16(partial[off:]) {
			continue
		}
		p.Decode(full, 0)
		g := bytes.Clone(full)
		if !p.CompletePartialChecksum(g) || !bytes.Equal(g, full) {
			t.Fatalf("seq %d: coinciding checksum changed: %x -> %x", seq, full[off:off+2], g[off:off+2])
		}
		return
	}
	t.Fatal("no coinciding checksum found in 2^20 sequence numbers")
}

// TestCompleteLeavesOthers: fragments, other protocols and undecoded frames
// are not touched.
func TestCompleteLeavesOthers(t *testing.T) {
	s := udp4(bytes.Repeat([]byte("a"), 600))
	s.PartialChecksum = true
	var p packet.Parsed
	for _, f := range craft.Fragment(s, 256) {
		orig := bytes.Clone(f)
		p.Decode(f, 0)
		if p.CompletePartialChecksum(f) || !bytes.Equal(f, orig) {
			t.Error("a fragment was completed")
		}
	}
	f := s.Build()
	var bad packet.Parsed
	bad.Decode(f[:30], 0)
	if bad.CompletePartialChecksum(f) {
		t.Error("an undecoded frame was completed")
	}
}

func TestCompleteNoAllocs(t *testing.T) {
	var p packet.Parsed
	s := udp4(craft.SIPInvite("x"))
	s.PartialChecksum = true
	partial := s.Build()
	full := udp4(craft.SIPInvite("x")).Build()
	f := make([]byte, len(partial))
	if n := testing.AllocsPerRun(100, func() {
		copy(f, partial)
		p.Decode(f, 0)
		p.CompletePartialChecksum(f)
		p.Decode(full, 0)
		p.CompletePartialChecksum(full)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// BenchmarkCompleteChecksum measures the check on a frame with a full
// checksum (what almost every frame costs) and the completion of a partial
// one, beside the decode alone. On a shared machine sequential benchmarks
// meet different loads, so one loop runs blocks of 256 of each in turn and
// times each block; read the per-frame costs beside each other.
func BenchmarkCompleteChecksum(b *testing.B) {
	s := udp4(craft.SIPInvite("bench"))
	full := s.Build()
	s.PartialChecksum = true
	partial := s.Build()
	f := make([]byte, len(partial))
	var p packet.Parsed
	const block = 256
	var tDecode, tCheck, tComplete time.Duration
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		start := time.Now()
		for range block {
			copy(f, full)
			sinkReason = p.Decode(f, 0)
		}
		t1 := time.Now()
		for range block {
			copy(f, full)
			sinkReason = p.Decode(f, 0)
			p.CompletePartialChecksum(f)
		}
		t2 := time.Now()
		for range block {
			copy(f, partial)
			sinkReason = p.Decode(f, 0)
			p.CompletePartialChecksum(f)
		}
		t3 := time.Now()
		tDecode += t1.Sub(start)
		tCheck += t2.Sub(t1)
		tComplete += t3.Sub(t2)
		n += block
	}
	b.ReportMetric(float64(tDecode.Nanoseconds())/float64(n), "copy+decode-ns/frame")
	b.ReportMetric(float64(tCheck.Nanoseconds())/float64(n), "+check-full-ns/frame")
	b.ReportMetric(float64(tComplete.Nanoseconds())/float64(n), "+complete-partial-ns/frame")
}
