package pipeline

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/packet"
)

// benchTemplates is the number of live templates the warm-table benchmarks
// run against (issue: "1 000 000 live templates").
const benchTemplates = 1_000_000

// benchFrame is an 800-byte-class SIP INVITE whose Call-ID is 16 hex digits
// that the benchmark rewrites in place to address any of the live calls.
type benchFrame struct {
	frame []byte
	idOff int // offset of the 16 hex digits
}

func newBenchFrame(src, dst string) benchFrame {
	f := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
		Payload: craft.SIPInvite("0000000000000000@bench.xvs.example")}.Build()
	off := bytes.Index(f, []byte("Call-ID: 0000000000000000@")) + len("Call-ID: ")
	if off < len("Call-ID: ") {
		panic("no Call-ID in the INVITE")
	}
	return benchFrame{frame: f, idOff: off}
}

const hexDigits = "0123456789abcdef"

func (b *benchFrame) setCall(n uint64) {
	for i := 15; i >= 0; i-- {
		b.frame[b.idOff+i] = hexDigits[n&15]
		n >>= 4
	}
}

// warmLab builds a one-worker balancer and fills its table with n live calls.
func warmLab(b *testing.B, fwd string, n int) (*lab, benchFrame) {
	l := newLabSized(b, 1, fmt.Sprintf(`
-A -u 10.4.3.192:5060 -s mh -p 3600 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 %[1]s
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 %[1]s
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 %[1]s
`, fwd), n+n/4)
	setNextHops(l)
	bf := newBenchFrame("10.4.3.7:5060", vip)
	w := l.workers[0]
	var d Decision
	orig := append([]byte(nil), bf.frame...)
	// Room in front, for tunnels (the benchmarks' frames have none of
	// their own: direct routing and NAT do not need it).
	room := make([]byte, 128, 128+len(bf.frame))
	warm := benchFrame{frame: append(room, bf.frame...)[128:], idOff: bf.idOff}
	w.BeginBatch(l.now)
	for i := range n {
		warm.setCall(uint64(i))
		copy(warm.frame[:bf.idOff], orig[:bf.idOff])
		w.ProcessRoom(room, warm.frame, packet.LinkEthernet, &d)
		if d.Reason != ReasonScheduled {
			b.Fatalf("warm-up call %d: %v", i, d.Reason)
		}
		if i%64 == 63 {
			w.EndBatch()
			w.BeginBatch(l.now)
		}
	}
	w.EndBatch()
	if live := w.Templates().Stats().Live; live != uint64(n) {
		b.Fatalf("%d live templates after warm-up, want %d", live, n)
	}
	copy(bf.frame, orig)
	runtime.GC()
	return l, bf
}

// callOrder is a fixed pseudo-random walk over the live calls, so that every
// lookup goes to a cold part of the table, as real traffic over a million
// calls does.
func callOrder(n, count int) []uint32 {
	out := make([]uint32, count)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = uint32(x % uint64(n))
	}
	return out
}

// BenchmarkPipelineWarm measures the whole per-packet decision (decode →
// template lookup → SIP engine → touch → rewrite) for 800-byte INVITEs of
// random live calls against a table of a million templates, beside the
// RFC 1071 checksum of the same frame (a pass that touches every byte)
// measured in the same run.
func BenchmarkPipelineWarm(b *testing.B) {
	if testing.Short() {
		b.Skip("warm-table benchmark fills a million templates")
	}
	l, bf := warmLab(b, "-g", benchTemplates)
	w := l.workers[0]
	order := callOrder(benchTemplates, 1<<16)
	frameLen := len(bf.frame)

	b.Run("baseline-checksum", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(frameLen))
		var sink uint16
		for i := 0; b.Loop(); i++ {
			bf.setCall(uint64(order[i&(len(order)-1)]))
			sink ^= packet.Checksum(bf.frame)
		}
		_ = sink
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
	b.Run("invite-dr-1M-batch64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(frameLen * MaxBatch))
		batch := make([]benchFrame, MaxBatch)
		frames := make([][]byte, MaxBatch)
		for i := range batch {
			batch[i] = benchFrame{frame: append([]byte(nil), bf.frame...), idOff: bf.idOff}
			frames[i] = batch[i].frame
		}
		out := make([]Decision, MaxBatch)
		n := 0
		for b.Loop() {
			for i := range batch {
				batch[i].setCall(uint64(order[n&(len(order)-1)]))
				n++
			}
			w.ProcessBatch(frames, packet.LinkEthernet, l.now, out)
		}
		if out[0].Reason != ReasonTemplateHit {
			b.Fatalf("first packet of the last batch: %v", out[0].Reason)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/pkt")
	})
	b.Run("invite-dr-1M", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(frameLen))
		var d Decision
		w.BeginBatch(l.now)
		for i := 0; b.Loop(); i++ {
			bf.setCall(uint64(order[i&(len(order)-1)]))
			w.Process(bf.frame, packet.LinkEthernet, &d)
			if i&63 == 63 {
				w.EndBatch()
				w.BeginBatch(l.now)
			}
		}
		w.EndBatch()
		if d.Reason != ReasonTemplateHit {
			b.Fatalf("last packet: %v", d.Reason)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
}

// BenchmarkPipelineNAT is the same decision for a NAT service; each
// iteration restores the frame (an 850-byte copy) because NAT rewrites the
// destination in place.
func BenchmarkPipelineNAT(b *testing.B) {
	if testing.Short() {
		b.Skip("warm-table benchmark fills a million templates")
	}
	l, bf := warmLab(b, "-m", benchTemplates)
	w := l.workers[0]
	order := callOrder(benchTemplates, 1<<16)
	orig := append([]byte(nil), bf.frame...)
	work := make([]byte, len(orig))
	b.Run("baseline-copy+checksum", func(b *testing.B) {
		b.ReportAllocs()
		var sink uint16
		for i := 0; b.Loop(); i++ {
			bf.setCall(uint64(order[i&(len(order)-1)]))
			copy(work, bf.frame)
			sink ^= packet.Checksum(work)
		}
		_ = sink
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
	b.Run("invite-nat-1M", func(b *testing.B) {
		b.ReportAllocs()
		var d Decision
		w.BeginBatch(l.now)
		for i := 0; b.Loop(); i++ {
			bf.setCall(uint64(order[i&(len(order)-1)]))
			copy(work, bf.frame)
			w.Process(work, packet.LinkEthernet, &d)
			if i&63 == 63 {
				w.EndBatch()
				w.BeginBatch(l.now)
			}
		}
		w.EndBatch()
		if d.Reason != ReasonTemplateHit {
			b.Fatalf("last packet: %v", d.Reason)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	})
	_ = orig
}

// BenchmarkPipelineNewCalls measures the miss path: every packet a new
// Call-ID (schedule, insert a template), the table kept at capacity so that
// every insert also evicts.
func BenchmarkPipelineNewCalls(b *testing.B) {
	l := newLabSized(b, 1, sipRules, 1<<16)
	setNextHops(l)
	bf := newBenchFrame("10.4.3.7:5060", vip)
	w := l.workers[0]
	orig := append([]byte(nil), bf.frame...)
	work := make([]byte, len(orig))
	b.ReportAllocs()
	var d Decision
	w.BeginBatch(l.now)
	for i := 0; b.Loop(); i++ {
		bf.setCall(uint64(i))
		copy(work, bf.frame)
		w.Process(work, packet.LinkEthernet, &d)
		if i&63 == 63 {
			w.EndBatch()
			w.BeginBatch(l.now)
		}
	}
	w.EndBatch()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// benchTunnelCalls is the number of live calls of each tunnel benchmark's
// table: four tables (direct routing and the three tunnel types) of this
// size, each far beyond the last-level cache.
const benchTunnelCalls = 250_000

// BenchmarkPipelineTunnel measures tunnel forwarding (-i: IPIP, GUE, GRE
// without checksums, the ipvsadm defaults) beside direct routing, its
// same-run baseline: the whole per-packet decision of BenchmarkPipelineWarm
// for 800-byte INVITEs of random live calls, in batches of 64 with room in
// front of every frame as the backends give it. Each iteration restores the
// 14-octet Ethernet header in both cases (the encapsulation writes the
// outer header over it; direct routing rewrites the MACs).
func BenchmarkPipelineTunnel(b *testing.B) {
	if testing.Short() {
		b.Skip("warm-table benchmark fills four tables")
	}
	for _, c := range []struct{ name, fwd string }{
		{"dr", "-g"},
		{"ipip", "-i --tun-type ipip"},
		{"gue", "-i --tun-type gue --tun-port 6080"},
		{"gre", "-i --tun-type gre"},
		{"gue-csum", "-i --tun-type gue --tun-port 6080 --tun-csum"},
	} {
		b.Run(c.name+"-batch64", func(b *testing.B) {
			// b.Loop runs this once and starts timing at its first call:
			// the warm-up is not measured, and a filtered-out case costs
			// nothing.
			l, bf := warmLab(b, c.fwd, benchTunnelCalls)
			w := l.workers[0]
			order := callOrder(benchTunnelCalls, 1<<16)
			b.ReportAllocs()
			const room = 128
			bufs := make([][]byte, MaxBatch)
			frames := make([][]byte, MaxBatch)
			rooms := make([][]byte, MaxBatch)
			for i := range bufs {
				bufs[i] = make([]byte, room+len(bf.frame))
				copy(bufs[i][room:], bf.frame)
			}
			eth := append([]byte(nil), bf.frame[:14]...)
			out := make([]Decision, MaxBatch)
			n := 0
			for b.Loop() {
				for i, buf := range bufs {
					copy(buf[room:room+14], eth)
					f := benchFrame{frame: buf[room:], idOff: bf.idOff}
					f.setCall(uint64(order[n&(len(order)-1)]))
					frames[i], rooms[i] = f.frame, buf[:room]
					n++
				}
				w.ProcessFrames(frames, rooms, packet.LinkEthernet, l.now, out)
			}
			if out[0].Reason != ReasonTemplateHit {
				b.Fatalf("first packet of the last batch: %v", out[0].Reason)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/pkt")
			l.workers = nil
			runtime.GC()
		})
	}
}

// BenchmarkPipelineLegs measures the NAT decision for INVITEs of 65 536 live
// calls in 64-frame batches on a director with two legs, five ways, each
// with its own worker:
//
//	static:            no next-hop table (the real servers' MACs in their
//	                   Dests, frames leave where they came in): the
//	                   egress cost before the table;
//	same-leg:          the next-hop table, real servers on the client's leg;
//	cross-leg:         the next-hop table, real servers on the other leg;
//	cross-leg-no-csum: cross-leg without the partial-checksum check, to
//	                   show its cost on frames with full checksums;
//	cross-leg-partial: cross-leg, every frame with a partial checksum to
//	                   complete.
//
// On a shared machine sequential sub-benchmarks meet different loads, so
// one loop runs a batch of each in turn and times each batch: every variant
// sees the same interference, and the ratios (cross/same, check/no-check)
// are what to read. Each batch first restores its frames (NAT rewrites them
// in place), in every variant alike, inside the timing.
//
//	go test -run '^$' -bench PipelineLegs -benchtime 20000x -count 5 ./internal/pipeline
func BenchmarkPipelineLegs(b *testing.B) {
	const calls = 1 << 16
	rulesText := `
-A -u 10.4.3.192:5060 -s mh -p 3600 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -m
`
	order := callOrder(calls, 1<<16)
	type variant struct {
		name          string
		leg           int // -1: no table; else the real servers' port
		noCsum, parts bool
		w             *Worker
		now           int64
		orig          []byte
		frames        [][]byte
		out           []Decision
		idOff         int
		elapsed       time.Duration
	}
	vs := []*variant{
		{name: "static", leg: -1},
		{name: "same-leg", leg: 0},
		{name: "cross-leg", leg: 1},
		{name: "cross-leg-no-csum", leg: 1, noCsum: true},
		{name: "cross-leg-partial", leg: 1, parts: true},
	}
	for _, v := range vs {
		l := newLabSized(b, 1, rulesText, calls+calls/4)
		v.w, v.now = l.workers[0], l.now
		if v.leg >= 0 {
			tb := twoLegTable(b)
			if v.leg == 0 {
				tb.SetRoutes([]nexthop.Route{
					{Dst: netip.MustParsePrefix("10.4.3.0/24"), Paths: []nexthop.Path{{Ifindex: 1}}},
					{Dst: netip.MustParsePrefix("192.168.1.0/24"), Paths: []nexthop.Path{{Ifindex: 1}}},
				})
			}
			for i := range 3 {
				tb.SetNeighbour(1+v.leg, netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)}), [6]byte{2, 0xaa, 0, 0, 0, byte(i)}, nexthop.NeighReachable)
			}
			tb.Flush(false)
			useHops(l, tb)
		}
		v.w.skipCsum = v.noCsum
		bf := newBenchFrame("10.4.3.7:5060", vip)
		if v.parts {
			bf.frame = craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort(vip),
				Payload: craft.SIPInvite("0000000000000000@bench.xvs.example"), PartialChecksum: true}.Build()
		}
		v.orig, v.idOff = append([]byte(nil), bf.frame...), bf.idOff
		// Warm the table: every call scheduled once.
		var d Decision
		v.w.BeginBatch(v.now)
		for i := range calls {
			copy(bf.frame, v.orig)
			bf.setCall(uint64(i))
			v.w.Process(bf.frame, packet.LinkEthernet, &d)
			if d.Verdict() != Forward {
				b.Fatalf("%s: warm-up call %d: %v", v.name, i, d.Reason)
			}
			if i%64 == 63 {
				v.w.EndBatch()
				v.w.BeginBatch(v.now)
			}
		}
		v.w.EndBatch()
		v.frames = make([][]byte, MaxBatch)
		for i := range v.frames {
			v.frames[i] = make([]byte, len(v.orig))
		}
		v.out = make([]Decision, MaxBatch)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, v := range vs {
			start := time.Now()
			for i, f := range v.frames {
				copy(f, v.orig)
				fb := benchFrame{frame: f, idOff: v.idOff}
				fb.setCall(uint64(order[(n+i)&(len(order)-1)]))
			}
			v.w.ProcessBatch(v.frames, packet.LinkEthernet, v.now, v.out)
			v.elapsed += time.Since(start)
		}
		n += MaxBatch
	}
	b.StopTimer()
	per := map[string]float64{}
	for _, v := range vs {
		if v.out[0].Reason != ReasonTemplateHit || (v.leg >= 0 && v.out[0].Out != (Out{Port: nexthop.Port(v.leg), Routed: true})) {
			b.Fatalf("%s: first packet of the last batch: %v %+v", v.name, v.out[0].Reason, v.out[0].Out)
		}
		per[v.name] = float64(v.elapsed.Nanoseconds()) / float64(n)
		b.ReportMetric(per[v.name], v.name+"-ns/pkt")
	}
	b.ReportMetric(per["cross-leg"]/per["same-leg"], "cross/same")
	b.ReportMetric(per["cross-leg"]/per["cross-leg-no-csum"], "csum-check/none")
	b.ReportMetric(per["same-leg"]/per["static"], "table/static")
}
