package robust

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/pipeline"
)

// floodCase is one Call-ID flood: a balancer whose template tables hold
// capacity entries per worker, live dialogs established before the flood and
// refreshed periodically during it, new calls started during it, and a flood
// of INVITEs with a new Call-ID each, at the speed the core decides them,
// for duration of wall-clock time.
type floodCase struct {
	name     string
	workers  int
	capacity int           // templates per worker
	live     int           // dialogs established before the flood
	sched    string        // scheduler
	fwd      string        // -g (direct routing) or -m (NAT)
	duration time.Duration // of the flood, wall clock (the long version: longDuration)
	long     time.Duration
	refresh  time.Duration // each live dialog sends a datagram this often
	newEvery int           // a new call starts every newEvery flood batches (0: none)
	ackGap   time.Duration // new call: INVITE → ACK (the caller answers the 200 OK)
	byeGap   time.Duration // ACK → BYE
	trying   bool          // NAT: the real server's 100 Trying passes back through the balancer at once
	// Assertions.
	keepLive bool // every live dialog keeps its real server
	keepNew  bool // every new call keeps its real server
	overflow bool // the table must refuse inserts (live dialogs beyond capacity)
}

func floodCases() []floodCase {
	base := floodCase{workers: 1, capacity: 20_000, live: 5_000, sched: "rr", fwd: "-g",
		duration: 1500 * time.Millisecond, long: 30 * time.Second, refresh: time.Second,
		newEvery: 32, ackGap: 300 * time.Millisecond, byeGap: 700 * time.Millisecond, keepLive: true}
	c1 := base
	c1.name, c1.duration, c1.long = "dr-rr", 3*time.Second, 180*time.Second
	c2 := base
	c2.name, c2.sched, c2.keepNew = "dr-mh", "mh", true
	c3 := base
	c3.name, c3.fwd, c3.trying = "nat-rr-trying", "-m", true
	c4 := base
	c4.name, c4.workers = "2workers-shared-rr", 2
	c5 := base
	c5.name, c5.live, c5.keepLive, c5.overflow, c5.newEvery = "overflow-rr-live25k", 25_000, false, true, 0
	c6 := c5
	c6.name, c6.sched, c6.keepLive = "overflow-mh-live25k", "mh", true
	return []floodCase{c1, c2, c3, c4, c5, c6}
}

// TestCallIDFlood: the first flood, in process. See floodCase and
// docs/robustness.md.
func TestCallIDFlood(t *testing.T) {
	for _, c := range floodCases() {
		t.Run(c.name, func(t *testing.T) { runFlood(t, c) })
	}
}

// event is a new call's next datagram.
type event struct {
	due  int64
	call uint64
}

// ring is a fixed-size FIFO (no allocation during the flood).
type ring struct {
	buf        []event
	head, tail int
}

func newRing(n int) *ring           { return &ring{buf: make([]event, n)} }
func (r *ring) len() int            { return r.tail - r.head }
func (r *ring) full() bool          { return r.len() == len(r.buf) }
func (r *ring) push(e event)        { r.buf[r.tail%len(r.buf)] = e; r.tail++ }
func (r *ring) peek() (event, bool) { return r.buf[r.head%len(r.buf)], r.len() > 0 }
func (r *ring) pop()                { r.head++ }

// Call-ID domains of the three kinds of traffic.
const (
	floodDomain = "flood.robust.example"
	liveDomain  = "live.robust.example"
	newDomain   = "new.robust.example"
)

type floodResult struct {
	floodPkts, livePkts, newCalls, newKept, liveKept, liveTotal int
	floodNs, liveNsBase, liveNsFlood, liveNsAfter               float64
	heapBefore, heapAfter, mallocs                              uint64
	mem                                                         int
}

func runFlood(t *testing.T, c floodCase) {
	if long {
		c.duration = c.long
	}
	b := newBalancer(t, c.workers, c.capacity, serviceRules(c.sched, c.fwd))
	const B = pipeline.MaxBatch
	flood := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(floodDomain)), B)
	live := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(liveDomain)), B)
	newc := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(newDomain)), B)
	trying := map[netip.AddrPort]*frameSet{}
	for _, r := range reals {
		trying[r] = newFrameSet(t, VIPSpec(r, client, clientMAC, lbMAC, CounterTrying(newDomain)), B)
	}
	frames := make([][]byte, 0, B)
	owner := make([]netip.AddrPort, c.live)
	liveOK := make([]bool, c.live)

	// Establish the live dialogs: INVITE, then a second datagram (ACK). One
	// worker: both in one batch, so every dialog in the table has been used
	// twice; several: the ACK through the next worker (cross-worker
	// persistence).
	for start := 0; start < c.live; start += B / 2 {
		n := min(B/2, c.live-start)
		w := (start / (B / 2)) % c.workers
		frames = frames[:0]
		for i := range n {
			frames = append(frames, live.set(i, uint64(start+i)))
			if c.workers == 1 {
				frames = append(frames, live.set(B/2+i, uint64(start+i)))
			}
		}
		out := b.batch(w, frames)
		for i := range n {
			d := out[i]
			if c.workers == 1 {
				d = out[2*i]
			}
			if d.Verdict() != pipeline.Forward {
				t.Fatalf("live dialog %d: %v", start+i, d.Reason)
			}
			owner[start+i], liveOK[start+i] = d.Real, true
			if c.workers == 1 && out[2*i+1].Real != d.Real {
				liveOK[start+i] = false
			}
		}
		if c.workers > 1 {
			frames = frames[:0]
			for i := range n {
				frames = append(frames, live.set(i, uint64(start+i)))
			}
			for i, d := range b.batch((w+1)%c.workers, frames) {
				if d.Real != owner[start+i] {
					liveOK[start+i] = false
				}
			}
		}
	}
	// sendLive sends one datagram of each listed dialog through worker w,
	// times the batch and records whether each reached its owner.
	var liveBatch [B]int
	sendLive := func(w int, ids []int) time.Duration {
		frames = frames[:0]
		for i, id := range ids {
			frames = append(frames, live.set(i, uint64(id)))
		}
		t0 := time.Now()
		out := b.batch(w, frames)
		el := time.Since(t0)
		for i, d := range out {
			if d.Verdict() != pipeline.Forward || d.Real != owner[ids[i]] {
				liveOK[ids[i]] = false
			}
		}
		return el
	}
	var cycleBatch [B]int
	cycle := func(batches int) float64 { // good traffic alone, ns per datagram
		var el time.Duration
		n := 0
		for k := range batches {
			ids := cycleBatch[:0]
			for i := range B {
				ids = append(ids, (k*B+i)%c.live)
			}
			el += sendLive(k%c.workers, ids)
			n += len(ids)
		}
		return float64(el.Nanoseconds()) / float64(n)
	}
	var res floodResult
	res.liveNsBase = cycle(200)

	memBefore := 0
	_, memBefore = b.tmplStats()
	res.heapBefore, res.mallocs = heapInUse()
	c0 := b.counters()

	// The flood.
	acks, byes, tries := newRing(1<<15), newRing(1<<15), newRing(1<<15)
	newOwner := make([]netip.AddrPort, 1<<20)
	newOK := make([]bool, 1<<20)
	var (
		floodEl, liveEl time.Duration
		livePkts        int
		next            uint64 // flood counter
		cur, round      int    // live dialog cursor
		nNew            uint64
		pending         = liveBatch[:0]
	)
	start := time.Now()
	end := start.Add(c.duration)
	startNs := b.now()
	refresh := int64(c.refresh)
	for iter := 0; ; iter++ {
		frames = frames[:0]
		for i := range B {
			frames = append(frames, flood.set(i, next))
			next++
		}
		w := iter % c.workers
		t0 := time.Now()
		b.batch(w, frames)
		t1 := time.Now()
		floodEl += t1.Sub(t0)
		if !t1.Before(end) {
			break
		}
		now := b.now()
		// Live dialogs whose datagram is due.
		// (Sent in full batches, like the measurement before the flood.)
		for len(pending) < min(B, c.live) {
			due := startNs + int64(round)*refresh + refresh*int64(cur)/int64(c.live)
			if due > now {
				break
			}
			pending = append(pending, cur)
			if cur++; cur == c.live {
				cur, round = 0, round+1
			}
		}
		if len(pending) > 0 && len(pending) == min(B, c.live) {
			liveEl += sendLive(w, pending)
			livePkts += len(pending)
			pending = pending[:0]
		}
		// New calls: INVITE now; 100 Trying (NAT) next; ACK and BYE later.
		if c.newEvery > 0 && iter%c.newEvery == 0 && !acks.full() && int(nNew) < len(newOwner) {
			frames = frames[:0]
			frames = append(frames, newc.set(0, nNew))
			d := b.batch(w, frames)[0]
			newOwner[nNew], newOK[nNew] = d.Real, d.Verdict() == pipeline.Forward
			if c.trying {
				tries.push(event{now, nNew})
			}
			acks.push(event{now + int64(c.ackGap), nNew})
			nNew++
		}
		for e, ok := tries.peek(); ok; e, ok = tries.peek() {
			fs := trying[newOwner[e.call]]
			frames = append(frames[:0], fs.set(0, e.call))
			if d := b.batch((w+1)%c.workers, frames)[0]; d.Reason != pipeline.ReasonServerInitiated {
				newOK[e.call] = false
			}
			tries.pop()
		}
		for _, q := range []*ring{acks, byes} {
			for e, ok := q.peek(); ok && e.due <= now; e, ok = q.peek() {
				frames = append(frames[:0], newc.set(0, e.call))
				if d := b.batch((w+1)%c.workers, frames)[0]; d.Verdict() != pipeline.Forward || d.Real != newOwner[e.call] {
					newOK[e.call] = false
				}
				q.pop()
				if q == acks {
					byes.push(event{now + int64(c.byeGap), e.call})
				} else {
					res.newCalls++
					if newOK[e.call] {
						res.newKept++
					}
				}
			}
		}
	}
	wall := time.Since(start)
	var mallocsAfter uint64
	res.heapAfter, mallocsAfter = heapInUse()
	res.mallocs = mallocsAfter - res.mallocs
	st, memAfter := b.tmplStats()
	cn := b.counters()
	res.floodPkts, res.livePkts = int(next), livePkts
	res.floodNs = float64(floodEl.Nanoseconds()) / float64(next)
	if livePkts > 0 {
		res.liveNsFlood = float64(liveEl.Nanoseconds()) / float64(livePkts)
	}
	// After the flood every live dialog sends once more.
	res.liveNsAfter = cycle((c.live + B - 1) / B)
	for _, ok := range liveOK {
		res.liveTotal++
		if ok {
			res.liveKept++
		}
	}
	res.mem = memAfter

	reasons := func(r pipeline.Reason) uint64 { return cn.Reasons[r] - c0.Reasons[r] }
	t.Logf("%s: %d workers × %d templates (%.2f MiB of tables), %d live dialogs (refresh %v), flood %v wall",
		c.name, c.workers, c.capacity, float64(memAfter)/(1<<20), c.live, c.refresh, wall.Round(time.Millisecond))
	t.Logf("  flood: %d unique Call-IDs, %.0f ns/pkt (%.2f Mpps per core), %d×capacity",
		res.floodPkts, res.floodNs, 1e3/res.floodNs, res.floodPkts/(c.capacity*c.workers))
	t.Logf("  live dialogs kept their real server: %d/%d (%.3f%%); %d live datagrams during the flood",
		res.liveKept, res.liveTotal, pct(res.liveKept, res.liveTotal), res.livePkts)
	// The baseline is the better of before and after: the machine is shared,
	// and a neighbour's burst must not pass for the flood's cost.
	baseNs := min(res.liveNsBase, res.liveNsAfter)
	t.Logf("  good traffic ns/pkt: %.0f before, %.0f during, %.0f after the flood (%.2f× the better of before and after)",
		res.liveNsBase, res.liveNsFlood, res.liveNsAfter, res.liveNsFlood/baseNs)
	if c.newEvery > 0 {
		t.Logf("  new calls during the flood (INVITE, ACK +%v, BYE +%v%s): %d/%d kept their server (%.1f%%)",
			c.ackGap, c.byeGap, map[bool]string{true: ", 100 Trying through the balancer", false: ""}[c.trying],
			res.newKept, res.newCalls, pct(res.newKept, res.newCalls))
	}
	t.Logf("  heap in use %.2f → %.2f MiB, %d mallocs during the flood; templates live %d / capacity %d",
		float64(res.heapBefore)/(1<<20), float64(res.heapAfter)/(1<<20), res.mallocs, st.Live, st.Capacity)
	t.Logf("  table: evicted probation %d, protected %d, overflow %d, expired %d; reasons: scheduled %d, template_hit %d, shared_hit %d, template_overflow %d; shared index full %d",
		st.EvictedProbation, st.EvictedProtected, st.Overflow, st.Expired,
		reasons(pipeline.ReasonScheduled), reasons(pipeline.ReasonTemplateHit), reasons(pipeline.ReasonSharedHit),
		reasons(pipeline.ReasonTemplateOverflow), cn.SharedFull-c0.SharedFull)

	// What must hold.
	if memAfter != memBefore {
		t.Errorf("table memory %d → %d bytes", memBefore, memAfter)
	}
	if st.Live > st.Capacity {
		t.Errorf("%d live templates beyond capacity %d", st.Live, st.Capacity)
	}
	if int64(res.heapAfter)-int64(res.heapBefore) > 1<<20 {
		t.Errorf("heap grew by %d bytes during the flood", int64(res.heapAfter)-int64(res.heapBefore))
	}
	if res.floodPkts < 4*c.capacity*c.workers {
		t.Errorf("only %d flood datagrams: not a flood (machine too slow?)", res.floodPkts)
	}
	if !c.overflow && st.EvictedProbation == 0 {
		t.Errorf("no probationary template was evicted: the flood did not reach the table's bound")
	}
	var sum uint64
	for _, n := range cn.Reasons {
		sum += n
	}
	if sum != cn.Frames {
		t.Errorf("reasons sum to %d, %d frames", sum, cn.Frames)
	}
	if c.keepLive {
		if res.liveKept != res.liveTotal {
			t.Errorf("%d of %d live dialogs lost their real server", res.liveTotal-res.liveKept, res.liveTotal)
		}
		// Without the 100 Trying, only the live dialogs are ever used twice:
		// none of them may be evicted. (With it, new calls' templates become
		// protected too, and ended calls' are evicted after MinProtectedIdle.)
		if !c.overflow && !c.trying && st.EvictedProtected != 0 {
			t.Errorf("%d protected (live) templates evicted", st.EvictedProtected)
		}
	}
	if c.keepNew && res.newKept != res.newCalls {
		t.Errorf("%d of %d new calls lost their real server", res.newCalls-res.newKept, res.newCalls)
	}
	if c.overflow && (st.Overflow == 0 || reasons(pipeline.ReasonTemplateOverflow) == 0) {
		t.Errorf("live dialogs beyond capacity, but no overflow counted")
	}
	if c.newEvery > 0 && res.newCalls == 0 {
		t.Errorf("no new call completed during the flood")
	}
	// Good traffic must not become pathologically slow (a loose bound: the
	// machine is shared; the figure is the measurement).
	if res.liveNsFlood > 20*baseNs+5000 {
		t.Errorf("good traffic %.0f ns/pkt during the flood against %.0f alone", res.liveNsFlood, baseNs)
	}
}
