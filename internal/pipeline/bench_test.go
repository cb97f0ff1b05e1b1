package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/syncd"
	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncring"
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
	return warmLabSpread(b, fwd, n, 0, nil)
}

// warmLabSpread is warmLab with the clock advanced by spread over the
// warm-up, so that the calls' last uses are spread over it, and, with a
// ring, a sync master on during the warm-up (its records discarded) and a
// second datagram of each call half the spread after its first, so that the
// templates' syncs and their one retry (sync_retries 1) are spread too: the
// steady state.
func warmLabSpread(b *testing.B, fwd string, n int, spread time.Duration, ring *syncring.Ring) (*lab, benchFrame) {
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
	if ring != nil {
		w.SetSyncMaster(ring)
		defer w.SetSyncMaster(nil)
	}
	discard := func(*syncring.Record) {}
	// With a ring, call i's second datagram comes half the spread after its
	// first (step i+n/2): with a spread of a refresh period, past the
	// retry's delay and before the refresh.
	steps, second := n, n
	if ring != nil {
		steps, second = n+n/2, n/2
	}
	w.BeginBatch(l.now)
	for k := range steps {
		for _, c := range []struct {
			call int
			want Reason
		}{{k, ReasonScheduled}, {k - second, ReasonTemplateHit}} {
			if c.call < 0 || c.call >= n || c.want == ReasonTemplateHit && ring == nil {
				continue
			}
			warm.setCall(uint64(c.call))
			copy(warm.frame[:bf.idOff], orig[:bf.idOff])
			w.ProcessRoom(room, warm.frame, packet.LinkEthernet, &d)
			if d.Reason != c.want {
				b.Fatalf("warm-up call %d: %v, want %v", c.call, d.Reason, c.want)
			}
		}
		if k%64 == 63 {
			w.EndBatch()
			if ring != nil {
				ring.Drain(0, discard)
			}
			l.advance(spread * 64 / time.Duration(n))
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
	// Batches of 64 (a full RX batch), and of 4, as a worker sees them at
	// moderate rates (the lab's AF_XDP worker reads 4–25 frames per
	// wake-up): the per-batch work (sweeps, publishing the counters) is
	// then shared by few frames.
	for _, size := range []int{MaxBatch, 4} {
		b.Run(fmt.Sprintf("invite-dr-1M-batch%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(frameLen * size))
			batch := make([]benchFrame, size)
			frames := make([][]byte, size)
			for i := range batch {
				batch[i] = benchFrame{frame: append([]byte(nil), bf.frame...), idOff: bf.idOff}
				frames[i] = batch[i].frame
			}
			out := make([]Decision, size)
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
	}
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

// BenchmarkPipelineSync is the batched warm decision (invite-dr-1M-batch64)
// with the sync master off and on, alternating in syncRounds rounds of the
// same run, so that their ratio is the cost of sync on a shared machine: on,
// the worker checks every packet's template against the sync policy (xvs's
// defaults: sync_refresh_period 10, sync_retries 1) and queues the due ones
// in its ring, and its walk visits the table; a real sender drains the ring
// every 5 ms into messages (written nowhere). With sync on the clock
// advances 16 µs per 64-packet batch, 4 Mpps of simulated time, and the
// warm-up spread the million calls' syncs over one refresh period, so that
// the run is in the steady state: each call gets a packet every 0.25 s and
// is re-synced every 10 s, with one retry 1.25 s after each: about one
// record per 20 packets. (With sync off the clock stands still, so that the
// calls do not all fall due while the master is off.) A third case,
// sync-on-record-per-packet, runs with the kernel's defaults (every use of
// a template synced), the upper bound of the data path's cost.
func BenchmarkPipelineSync(b *testing.B) {
	if testing.Short() {
		b.Skip("warm-table benchmark fills a million templates")
	}
	const batchTime = 16 * time.Microsecond
	ring := syncring.New(0)
	var sent, bytesOut int
	snd, err := syncd.NewSenderFunc(syncd.SenderConfig{Switches: syncpolicy.Defaults(), Rings: []*syncring.Ring{ring}},
		func(_ int, msg []byte) error { sent++; bytesOut += len(msg); return nil })
	if err != nil {
		b.Fatal(err)
	}
	l, bf := warmLabSpread(b, "-g", benchTemplates, 10*time.Second, ring)
	ring.Drain(0, func(*syncring.Record) {})
	w := l.workers[0]
	order := callOrder(benchTemplates, 1<<16)
	batch := make([]benchFrame, MaxBatch)
	frames := make([][]byte, MaxBatch)
	for i := range batch {
		batch[i] = benchFrame{frame: append([]byte(nil), bf.frame...), idOff: bf.idOff}
		frames[i] = batch[i].frame
	}
	out := make([]Decision, MaxBatch)
	n := 0
	discard := func(*syncring.Record) {}
	// every: the kernel's defaults (no refresh period), a record for every
	// packet, the ring drained in the loop (no sender): the upper bound of
	// the data path's cost.
	run := func(b *testing.B, on, every bool) {
		if on && !every {
			w.SetSyncMaster(ring)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { snd.Run(ctx); close(done) }()
			defer func() { cancel(); <-done; w.SetSyncMaster(nil) }()
		}
		if every {
			setSysctl(b, l, "sync_refresh_period=0")
			setSysctl(b, l, "sync_retries=0")
			w.SetSyncMaster(ring)
			defer func() {
				w.SetSyncMaster(nil)
				setSysctl(b, l, "sync_refresh_period=10")
				setSysctl(b, l, "sync_retries=1")
			}()
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(bf.frame) * MaxBatch))
		q0, d0 := w.Counters().Sync.Queued, ring.Stats().Dropped
		start := n
		for b.Loop() {
			for i := range batch {
				batch[i].setCall(uint64(order[n&(len(order)-1)]))
				n++
			}
			if on {
				l.advance(batchTime)
			}
			w.ProcessBatch(frames, packet.LinkEthernet, l.now, out)
			if every {
				ring.Drain(0, discard)
			}
		}
		if out[0].Reason != ReasonTemplateHit {
			b.Fatalf("first packet of the last batch: %v", out[0].Reason)
		}
		pkts := n - start
		b.ReportMetric(float64(pkts)/b.Elapsed().Seconds(), "pkts/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pkts), "ns/pkt")
		if on {
			q, d := w.Counters().Sync.Queued-q0, ring.Stats().Dropped-d0
			b.ReportMetric(float64(q)/float64(pkts), "records/pkt")
			b.ReportMetric(float64(d), "ring-drops")
		}
	}
	for range syncRounds {
		b.Run("sync-off", func(b *testing.B) { run(b, false, false) })
		b.Run("sync-on", func(b *testing.B) { run(b, true, false) })
		b.Run("sync-on-record-per-packet", func(b *testing.B) { run(b, true, true) })
	}
}

// syncRounds is how many times BenchmarkPipelineSync alternates its two
// cases (go test's -count repeats each sub-benchmark in a row instead).
const syncRounds = 3
