package robust

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// hostileCase is one hostile input and what the balancer must decide.
type hostileCase struct {
	name  string
	frame []byte
	// reasons the frame may get (its verdict follows from the reason).
	reasons []pipeline.Reason
	// keyed: the SIP engine must find a Call-ID (forward on the Call-ID's
	// template); otherwise a forwarded frame must have used the fallback.
	keyed bool
	// sameAs: the frame belongs to the good call with this Call-ID and,
	// when forwarded, must reach its real server.
	sameAs string
	// fragment: a non-first fragment; fragment tracking may forward it (to
	// sameAs's server) or drop it as untracked.
	fragment bool
}

var (
	forwarded = []pipeline.Reason{pipeline.ReasonScheduled, pipeline.ReasonTemplateHit}
	malformed = []pipeline.Reason{pipeline.ReasonMalformed}
	passed    = []pipeline.Reason{pipeline.ReasonNotService}
	notIP     = []pipeline.Reason{pipeline.ReasonNotIP}
)

// hostileCases is the catalogue: every hostile UDP payload to the VIP,
// every junk frame, and well-formed but unusual framings of a good call.
func hostileCases() []hostileCase {
	var cs []hostileCase
	keyed := map[string]bool{"callid-255": true, "no-blank-line": true}
	for _, p := range HostilePayloads(1) {
		cs = append(cs, hostileCase{name: "udp/" + p.Name, frame: VIPSpec(client, vip, clientMAC, lbMAC, p.Data).Build(),
			reasons: forwarded, keyed: keyed[p.Name]})
	}
	good := VIPSpec(client, vip, clientMAC, lbMAC, craft.SIPInvite("framing@robust"))
	want := map[string][]pipeline.Reason{
		"arp-ethertype": notIP, "lldp-ethertype": notIP, "tcp-to-udp-service": passed, "icmp-to-vip": passed,
	}
	for _, j := range JunkFrames(good) {
		r, ok := want[j.Name]
		if !ok {
			r = malformed
		}
		cs = append(cs, hostileCase{name: "frame/" + j.Name, frame: j.Data, reasons: r})
	}
	// Unusual but valid framings of one good call: must reach its server.
	const id = "framing@robust"
	add := func(name string, s craft.Spec) {
		cs = append(cs, hostileCase{name: "framing/" + name, frame: s.Build(), reasons: forwarded, keyed: true, sameAs: id})
	}
	s := good
	s.IPOptions = []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}
	add("ipv4-options-40-nop", s)
	s = good
	s.IPOptions = []byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0} // record route
	add("ipv4-option-record-route", s)
	s = good
	s.VLANs = []craft.VLAN{{TCI: 100}}
	add("vlan-1-tag", s)
	s = good
	s.VLANs = []craft.VLAN{{TPID: 0x88a8, TCI: 10}, {TCI: 100}}
	add("vlan-qinq", s)
	s = good
	s.Padding = 40
	add("ethernet-padding", s)
	s = good
	s.ZeroUDPChecksum = true
	add("udp-checksum-zero", s)
	s = good
	s.ID = 77
	frags := craft.Fragment(s, 512)
	cs = append(cs, hostileCase{name: "fragment/first", frame: frags[0], reasons: forwarded, keyed: true, sameAs: id})
	for i, f := range frags[1:] {
		cs = append(cs, hostileCase{name: fmt.Sprintf("fragment/non-first-%d", i+1), frame: f, fragment: true, sameAs: id})
	}
	// IPv6: a chain of 12 destination-options headers to a non-VIP; TCP to
	// the VIP; a malformed IPv6 header.
	s6 := craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("[2001:db8::7]:5060"),
		Dst: netip.MustParseAddrPort("[2001:db8::192]:5060"), Payload: craft.SIPInvite("v6@robust")}
	for range 12 {
		s6.IPv6Ext = append(s6.IPv6Ext, craft.Ext{Type: 60, Data: make([]byte, 6)})
	}
	cs = append(cs, hostileCase{name: "frame/ipv6-12-ext-headers-not-vip", frame: s6.Build(), reasons: passed})
	return cs
}

// TestHostileInputs: every input of the catalogue gets a defined verdict and
// reason, is counted, costs a bounded time, and good traffic interleaved in
// the same batches is still forwarded to its real server.
func TestHostileInputs(t *testing.T) {
	b := newBalancer(t, 1, 20_000, serviceRules("rr", "-g"))
	const B = pipeline.MaxBatch
	const live = 1000
	goodSet := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(liveDomain)), B)
	owner := make([]netip.AddrPort, live)
	frames := make([][]byte, 0, B)
	for start := 0; start < live; start += B {
		frames = frames[:0]
		for i := range min(B, live-start) {
			frames = append(frames, goodSet.set(i, uint64(start+i)))
		}
		for i, d := range b.batch(0, frames) {
			owner[start+i] = d.Real
		}
	}
	// The framing call's real server.
	framing := craft.SIPInvite("framing@robust")
	d := b.batch(0, [][]byte{VIPSpec(client, vip, clientMAC, lbMAC, framing).Build()})[0]
	framingOwner := d.Real

	const reps = 4096 // datagrams of each case
	bufs := make([][]byte, B)
	var nextGood int
	var report []string
	for _, c := range hostileCases() {
		before := b.counters()
		// Each batch's time: the median batch is the cost, robust to a loaded
		// machine preempting a few batches; unbounded work slows every one.
		var el []time.Duration
		got := map[pipeline.Reason]int{}
		var peSt map[pe.Status]int = map[pe.Status]int{}
		var failures []string
		fail := func(format string, args ...any) {
			if len(failures) < 3 {
				failures = append(failures, fmt.Sprintf(format, args...))
			}
		}
		for n := 0; n < reps; n += B / 2 {
			// A batch alternating the hostile frame and good datagrams.
			frames = frames[:0]
			for i := range B {
				if i%2 == 0 {
					bufs[i] = append(bufs[i][:0], c.frame...)
				} else {
					bufs[i] = append(bufs[i][:0], goodSet.set(i, uint64((nextGood+i)%live))...)
				}
				frames = append(frames, bufs[i])
			}
			t0 := time.Now()
			out := b.batch(0, frames)
			el = append(el, time.Since(t0))
			for i, d := range out {
				if i%2 == 1 {
					id := (nextGood + i) % live
					if d.Verdict() != pipeline.Forward || d.Real != owner[id] {
						fail("good datagram %d: %v to %v, want %v", id, d.Reason, d.Real, owner[id])
					}
					var p packet.Parsed
					if p.Decode(frames[i], packet.LinkEthernet) != packet.ReasonOK || [6]byte(frames[i][0:6]) != realMAC(owner[id]) {
						fail("good datagram %d: rewritten frame wrong", id)
					}
					continue
				}
				got[d.Reason]++
				if d.HasPE {
					peSt[d.PE]++
				}
				switch {
				case c.fragment:
					if d.Verdict() == pipeline.Forward {
						if d.Real != framingOwner {
							fail("fragment forwarded to %v, its call is on %v", d.Real, framingOwner)
						}
					} else if !strings.Contains(d.Reason.String(), "fragment") {
						fail("non-first fragment: %v", d.Reason)
					}
				case !slices.Contains(c.reasons, d.Reason):
					fail("reason %v (decode %v, pe %v), want one of %v", d.Reason, d.Decode, d.PE, c.reasons)
				case d.Verdict() == pipeline.Forward && c.keyed && (d.PE != pe.StatusOK || d.Fallback):
					fail("forwarded without its Call-ID: pe %v", d.PE)
				case d.Verdict() == pipeline.Forward && !c.keyed && !d.Fallback:
					fail("forwarded on a key (pe %v %q), want the fallback", d.PE, d.PEData)
				case c.sameAs != "" && d.Real != framingOwner:
					fail("forwarded to %v, its call is on %v", d.Real, framingOwner)
				}
			}
			nextGood += B / 2
		}
		after := b.counters()
		// Counters: every hostile frame under exactly one reason.
		for r, n := range got {
			if d := after.Reasons[r] - before.Reasons[r]; d < uint64(n) {
				fail("reason %v counted %d times, decided %d", r, d, n)
			}
		}
		if dr := decodeReason(b, c.frame); got[pipeline.ReasonMalformed] > 0 && after.Decode[dr]-before.Decode[dr] != uint64(got[pipeline.ReasonMalformed]) {
			fail("decode reason %v counted %d times, want %d", dr, after.Decode[dr]-before.Decode[dr], got[pipeline.ReasonMalformed])
		}
		if after.Frames-before.Frames != 2*uint64(reps) {
			fail("%d frames counted, sent %d", after.Frames-before.Frames, 2*reps)
		}
		slices.Sort(el)
		ns := float64(el[len(el)/2].Nanoseconds()) / float64(B)
		if ns > 20_000 {
			fail("%.0f ns per datagram (half of them good): unbounded work?", ns)
		}
		for _, f := range failures {
			t.Errorf("%s: %s", c.name, f)
		}
		var rs []string
		for r, n := range got {
			rs = append(rs, fmt.Sprintf("%s %s×%d", r.Verdict(), r, n))
		}
		slices.Sort(rs)
		var ps []string
		for s, n := range peSt {
			ps = append(ps, fmt.Sprintf("%s×%d", s, n))
		}
		slices.Sort(ps)
		dec := ""
		if d := decodeReason(b, c.frame); d != packet.ReasonOK {
			dec = " decode " + d.String()
		}
		report = append(report, fmt.Sprintf("| %s | %d | %s | %s%s | %.0f |", c.name, len(c.frame), strings.Join(rs, ", "),
			strings.Join(ps, ", "), dec, ns))
	}
	t.Logf("hostile inputs, %d datagrams each, interleaved 1:1 with good datagrams (ns: per datagram of the mixed batch)\n| input | bytes | verdict reason×count | pe / decode | ns |\n%s",
		reps, strings.Join(report, "\n"))
}

// decodeReason is the decoder's verdict on a frame.
func decodeReason(_ *balancer, f []byte) packet.Reason {
	var p packet.Parsed
	return p.Decode(append([]byte(nil), f...), packet.LinkEthernet)
}

// realMAC is the MAC newBalancer resolved for a real server.
func realMAC(a netip.AddrPort) [6]byte {
	b := a.Addr().As4()
	return [6]byte{0x02, 0xaa, b[0], b[1], b[2], b[3]}
}

// TestRandomFrames: a stream of random and randomly mutated frames (bytes
// overwritten, truncated, extended) interleaved with good traffic: no panic,
// every frame a known reason, counters exact, bounded time per frame, good
// datagrams still forwarded to their real servers.
func TestRandomFrames(t *testing.T) {
	n := 200_000
	if long {
		n = 5_000_000
	}
	b := newBalancer(t, 1, 20_000, serviceRules("rr", "-g"))
	const B = pipeline.MaxBatch
	const live = 512
	goodSet := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(liveDomain)), B)
	owner := make([]netip.AddrPort, live)
	frames := make([][]byte, 0, B)
	for start := 0; start < live; start += B {
		frames = frames[:0]
		for i := range B {
			frames = append(frames, goodSet.set(i, uint64(start+i)))
		}
		for i, d := range b.batch(0, frames) {
			owner[start+i] = d.Real
		}
	}
	seeds := [][]byte{
		VIPSpec(client, vip, clientMAC, lbMAC, craft.SIPInvite("mutant@robust")).Build(),
		VIPSpec(client, vip, clientMAC, lbMAC, craft.SIPAck("mutant@robust")).Build(),
		func() []byte {
			s := VIPSpec(client, vip, clientMAC, lbMAC, craft.SIPCompact("mutant@robust"))
			s.VLANs = []craft.VLAN{{TCI: 5}}
			s.IPOptions = []byte{7, 7, 4, 0, 0, 0, 0}
			return s.Build()
		}(),
		craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("[2001:db8::7]:5060"),
			Dst: netip.MustParseAddrPort("[2001:db8::192]:5060"), Payload: craft.SIPInvite("mutant6@robust"),
			IPv6Ext: []craft.Ext{{Type: 0, Data: make([]byte, 6)}}}.Build(),
	}
	r := rand.New(rand.NewPCG(42, 4242))
	mutate := func(dst []byte) []byte {
		switch k := r.IntN(10); {
		case k == 0: // pure random bytes
			dst = dst[:0]
			for range r.IntN(1600) {
				dst = append(dst, byte(r.Uint32()))
			}
			return dst
		default:
			dst = append(dst[:0], seeds[r.IntN(len(seeds))]...)
			for range 1 + r.IntN(8) {
				// Bias towards the headers, where the decoder's decisions are.
				pos := r.IntN(min(len(dst), 80))
				if r.IntN(4) == 0 {
					pos = r.IntN(len(dst))
				}
				dst[pos] = byte(r.Uint32())
			}
			if k == 1 {
				dst = dst[:r.IntN(len(dst)+1)]
			}
			if k == 2 {
				for range r.IntN(64) {
					dst = append(dst, byte(r.Uint32()))
				}
			}
			return dst
		}
	}
	bufs := make([][]byte, B)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 2048)
	}
	before := b.counters()
	got := map[pipeline.Reason]int{}
	var el, worst time.Duration
	var each []time.Duration // per batch, for the median
	nextGood, sent, bad := 0, 0, 0
	for sent < n {
		frames = frames[:0]
		for i := range B {
			if i%4 == 3 { // one good datagram in four
				bufs[i] = append(bufs[i][:0], goodSet.set(i, uint64((nextGood+i)%live))...)
			} else {
				bufs[i] = mutate(bufs[i])
				sent++
			}
			frames = append(frames, bufs[i])
		}
		t0 := time.Now()
		out := b.batch(0, frames)
		d := time.Since(t0)
		el += d
		each = append(each, d)
		worst = max(worst, d)
		for i, d := range out {
			if d.Reason >= pipeline.NumReasons {
				t.Fatalf("unknown reason %d", d.Reason)
			}
			if i%4 == 3 {
				if id := (nextGood + i) % live; d.Verdict() != pipeline.Forward || d.Real != owner[id] {
					bad++
				}
				continue
			}
			got[d.Reason]++
		}
		nextGood += B / 4
	}
	after := b.counters()
	total := sent + sent/3
	if after.Frames-before.Frames != uint64(total) {
		t.Errorf("%d frames counted, %d sent", after.Frames-before.Frames, total)
	}
	var sum uint64
	for r := range after.Reasons {
		sum += after.Reasons[r] - before.Reasons[r]
	}
	if sum != after.Frames-before.Frames {
		t.Errorf("reasons sum to %d, frames %d", sum, after.Frames-before.Frames)
	}
	if bad != 0 {
		t.Errorf("%d good datagrams not forwarded to their real server", bad)
	}
	ns := float64(el.Nanoseconds()) / float64(total)
	// The bound is on the median batch: a loaded machine preempting a few
	// batches moves the mean, unbounded work moves every batch.
	slices.Sort(each)
	if med := float64(each[len(each)/2].Nanoseconds()) / B; med > 5_000 {
		t.Errorf("%.0f ns per frame in the median batch (mean %.0f)", med, ns)
	}
	var rs []string
	for r, n := range got {
		rs = append(rs, fmt.Sprintf("%s %s %.1f%%", r.Verdict(), r, 100*float64(n)/float64(sent)))
	}
	slices.Sort(rs)
	t.Logf("%d random/mutated frames + %d good: %.0f ns/frame, slowest batch of %d %v; verdicts: %s",
		sent, total-sent, ns, B, worst, strings.Join(rs, ", "))
}

// TestJunkFloodCost: the cost of good traffic during a flood of junk (the
// hostile catalogue and random frames, all to the VIP), measured beside the
// same good traffic alone, in the same run: batches of 64 good datagrams,
// one for every four batches of junk.
func TestJunkFloodCost(t *testing.T) {
	dur := 1500 * time.Millisecond
	if long {
		dur = 60 * time.Second
	}
	b := newBalancer(t, 1, 20_000, serviceRules("rr", "-g"))
	const B = pipeline.MaxBatch
	const live = 5000
	goodSet := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(liveDomain)), B)
	owner := make([]netip.AddrPort, live)
	frames := make([][]byte, 0, B)
	next := 0
	good := func() time.Duration {
		frames = frames[:0]
		for i := range B {
			frames = append(frames, goodSet.set(i, uint64((next+i)%live)))
		}
		t0 := time.Now()
		out := b.batch(0, frames)
		el := time.Since(t0)
		for i, d := range out {
			id := (next + i) % live
			if !owner[id].IsValid() {
				owner[id] = d.Real
			} else if d.Real != owner[id] {
				t.Fatalf("good datagram %d: %v to %v, want %v", id, d.Reason, d.Real, owner[id])
			}
		}
		next += B
		return el
	}
	for range 2 * live / B {
		good()
	}
	var junk [][]byte
	for _, c := range hostileCases() {
		junk = append(junk, c.frame)
	}
	bufs := make([][]byte, B)
	// Rounds alternate good traffic alone and good traffic in the junk
	// flood, so that a neighbour's burst on the shared machine hits both.
	var base, during, junkEl time.Duration
	baseBatches, goodBatches, junkPkts, k := 0, 0, 0, 0
	c0 := b.counters()
	h0, _ := heapInUse()
	const rounds = 10
	for round := range rounds {
		for range 40 {
			base += good()
			baseBatches++
		}
		end := time.Now().Add(dur / rounds)
		for time.Now().Before(end) {
			for range 4 {
				frames = frames[:0]
				for i := range B {
					bufs[i] = append(bufs[i][:0], junk[k%len(junk)]...)
					k++
					frames = append(frames, bufs[i])
				}
				t0 := time.Now()
				b.batch(0, frames)
				junkEl += time.Since(t0)
				junkPkts += B
			}
			during += good()
			goodBatches++
		}
		_ = round
	}
	h1, _ := heapInUse()
	c1 := b.counters()
	nsBase := float64(base.Nanoseconds()) / float64(baseBatches*B)
	nsDuring := float64(during.Nanoseconds()) / float64(goodBatches*B)
	var drops uint64
	for r := range pipeline.NumReasons {
		if r.Verdict() == pipeline.Drop {
			drops += c1.Reasons[r] - c0.Reasons[r]
		}
	}
	t.Logf("junk flood %v: %d junk frames (%d kinds) at %.0f ns each (%.2f Mpps), %d dropped and counted; good traffic %.0f ns/pkt alone, %.0f during (%.2f×); heap %.2f → %.2f MiB",
		dur, junkPkts, len(junk), float64(junkEl.Nanoseconds())/float64(junkPkts), float64(junkPkts)/junkEl.Seconds()/1e6,
		drops, nsBase, nsDuring, nsDuring/nsBase, float64(h0)/(1<<20), float64(h1)/(1<<20))
	if int64(h1)-int64(h0) > 1<<20 {
		t.Errorf("heap grew by %d bytes during the junk flood", int64(h1)-int64(h0))
	}
	if nsDuring > 10*nsBase+2000 {
		t.Errorf("good traffic %.0f ns/pkt during the junk flood against %.0f alone", nsDuring, nsBase)
	}
}
