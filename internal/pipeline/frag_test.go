package pipeline

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// fragCase is one family × forwarding method for the fragment tests.
type fragCase struct {
	name   string
	rules  string
	client string
	vip    string
	nat    bool
}

var fragCases = []fragCase{
	{"IPv4 NAT", sipRules, "10.4.3.7:5060", vip, true},
	{"IPv4 DR", strings.ReplaceAll(sipRules, " -m", " -g"), "10.4.3.7:5060", vip, false},
	{"IPv6 NAT", "-A -u [2001:db8::1]:5060 -s rr -p 60 --pe sip -o\n-a -u [2001:db8::1]:5060 -r [2001:db8:1::10]:5070 -m\n-a -u [2001:db8::1]:5060 -r [2001:db8:1::11]:5070 -m\n",
		"[2001:db8:99::7]:5062", "[2001:db8::1]:5060", true},
	{"IPv6 DR", "-A -u [2001:db8::1]:5060 -s rr -p 60 --pe sip -o\n-a -u [2001:db8::1]:5060 -r 2001:db8:1::10 -g\n-a -u [2001:db8::1]:5060 -r 2001:db8:1::11 -g\n",
		"[2001:db8:99::7]:5062", "[2001:db8::1]:5060", false},
}

// lateInvite is an INVITE whose Call-ID header comes after `pad` bytes of
// other headers, so that it lies in a later fragment.
func lateInvite(callID string, pad int) []byte {
	inv := string(craft.SIPInvite(callID))
	i := strings.Index(inv, "Call-ID:")
	j := strings.Index(inv[i:], "\r\n") + i + 2
	line := inv[i:j]
	inv = inv[:i] + inv[j:] // remove it
	k := strings.Index(inv, "\r\n") + 2
	return []byte(inv[:k] + "X-Pad: " + strings.Repeat("p", pad) + "\r\n" + line + inv[k:])
}

// sized pads a message with SDP-like lines (or cuts it) to n bytes.
func sized(m []byte, n int) []byte {
	for len(m) < n {
		m = append(m, "a=x\r\n"...)
	}
	return m[:n]
}

func (c fragCase) spec(payload []byte, id uint32) craft.Spec {
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(c.client), Dst: netip.MustParseAddrPort(c.vip), Payload: payload, ID: id}
}

// want returns the fragments a balancer must send for spec to real server
// real (built by craft, independently of the pipeline).
func (c fragCase) want(s craft.Spec, real netip.AddrPort, mtu int) [][]byte {
	s.SrcMAC = lbMAC
	a := real.Addr().As16()
	s.DstMAC = [6]byte{0x02, 0xaa, a[12], a[13], a[14], a[15]}
	if c.nat {
		s.Dst = real
	}
	return craft.Fragment(s, mtu)
}

// out collects what one frame produced: the frame itself when forwarded,
// and the copies the worker emitted.
type fragOut struct {
	d       Decision
	sent    [][]byte
	emitted int
}

func (l *lab) sendFrag(w int, frame []byte) fragOut {
	d, f := l.send(w, frame)
	var o fragOut
	o.d = d
	if d.Verdict() == Forward {
		o.sent = append(o.sent, f)
	}
	for _, e := range l.workers[w].Emitted() {
		o.sent = append(o.sent, bytes.Clone(e))
		o.emitted++
	}
	return o
}

// sameFrames reports whether got and want hold the same frames, in any order.
func sameFrames(got, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	g := slices.Clone(got)
	w := slices.Clone(want)
	slices.SortFunc(g, bytes.Compare)
	slices.SortFunc(w, bytes.Compare)
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			return false
		}
	}
	return true
}

// Every order of a datagram's fragments, with the Call-ID in the first
// fragment or only in a later one: all of them leave, exactly once, as
// fragments rewritten for one real server — the one the Call-ID's template
// names — byte for byte what craft builds for that server.
func TestFragmentsEveryOrder(t *testing.T) {
	const mtu = 512
	for _, c := range fragCases {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s late=%v", c.name, late), func(t *testing.T) {
				l := newLab(t, 1, c.rules)
				for n, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}, {1, 0, 2, 3}} {
					callID := fmt.Sprintf("frag-%d@x", n)
					payload := craft.SIPInvite(callID)
					if late {
						payload = lateInvite(callID, 900)
					}
					payload = sized(payload, 1900)
					s := c.spec(payload, uint32(1000+n))
					frags := craft.Fragment(s, mtu)
					if len(frags) != 4 {
						t.Fatalf("%d fragments, want 4", len(frags))
					}
					var sent [][]byte
					var real netip.AddrPort
					for _, i := range order {
						o := l.sendFrag(0, bytes.Clone(frags[i]))
						sent = append(sent, o.sent...)
						switch v := o.d.Verdict(); {
						case v == Forward && i == 0:
							real = o.d.Real
						case v == Forward && o.d.Reason != ReasonFragmentFollowed:
							t.Fatalf("order %v fragment %d: %v", order, i, o.d.Reason)
						case v != Forward && o.d.Reason != ReasonFragmentHeld:
							t.Fatalf("order %v fragment %d: %v", order, i, o.d.Reason)
						}
						if o.d.Verdict() == Forward && o.d.Real != real && i != 0 {
							t.Fatalf("fragment %d to %v, first to %v", i, o.d.Real, real)
						}
					}
					// The call's next datagram (unfragmented) names the server.
					d, _ := l.send(0, sip(c.client, c.vip, craft.SIPAck(callID)))
					if d.Reason != ReasonTemplateHit {
						t.Fatalf("ACK after the INVITE: %v", d.Reason)
					}
					if real.IsValid() && real != d.Real {
						t.Fatalf("first fragment to %v, call's template to %v", real, d.Real)
					}
					if !sameFrames(sent, c.want(s, d.Real, mtu)) {
						t.Fatalf("order %v: sent %d frames, not the %d fragments craft builds for %v", order, len(sent), len(frags), d.Real)
					}
				}
				c := l.workers[0].Counters()
				var sum uint64
				for _, n := range c.Reasons {
					sum += n
				}
				if sum != c.Frames {
					t.Fatalf("reasons sum to %d, frames %d", sum, c.Frames)
				}
				if late && c.Frag.Reassembled[ReasonScheduled] != 5 {
					t.Fatalf("reassembled %v", c.Frag.Reassembled)
				}
				if c.Frag.Timeout+c.Frag.Discarded+c.Frag.Evicted != 0 {
					t.Fatalf("frag counters %+v", c.Frag)
				}
			})
		}
	}
}

// TestReassembledAfterServiceRemoved: a datagram that waits for reassembly
// while its virtual service is deleted is decided as not the balancer's,
// and counted as a reassembled datagram, not as a frame: the reasons of the
// frames still sum to the frames.
func TestReassembledAfterServiceRemoved(t *testing.T) {
	c := fragCases[0]
	l := newLab(t, 1, c.rules)
	frags := craft.Fragment(c.spec(sized(lateInvite("gone@x", 900), 1900), 77), 512)
	for _, f := range frags[:len(frags)-1] {
		if o := l.sendFrag(0, f); o.d.Reason != ReasonFragmentHeld {
			t.Fatalf("before the last fragment: %v", o.d.Reason)
		}
	}
	l.apply("-D -u " + c.vip + "\n")
	if o := l.sendFrag(0, frags[len(frags)-1]); o.d.Reason != ReasonFragmentHeld || len(o.sent) != 0 {
		t.Fatalf("last fragment: %v, %d frames sent", o.d.Reason, len(o.sent))
	}
	cs := l.workers[0].Counters()
	var sum uint64
	for _, n := range cs.Reasons {
		sum += n
	}
	if sum != cs.Frames || cs.Frames != uint64(len(frags)) {
		t.Fatalf("reasons sum to %d, frames %d, sent %d", sum, cs.Frames, len(frags))
	}
	if cs.Frag.Reassembled[ReasonNotService] != 1 {
		t.Fatalf("frag counters %+v", cs.Frag)
	}
}

// Duplicates: a duplicate of a held copy is dropped (nothing leaves twice);
// one that arrives after the decision is forwarded like the original.
func TestFragmentDuplicates(t *testing.T) {
	c := fragCases[0]
	l := newLab(t, 1, c.rules)
	s := c.spec(append(craft.SIPInvite("dup@x"), bytes.Repeat([]byte("a=x\r\n"), 100)...), 77)
	frags := craft.Fragment(s, 512)
	steps := []struct {
		i    int
		want Reason
		emit int
	}{
		{1, ReasonFragmentHeld, 0},
		{1, ReasonFragmentDuplicate, 0},
		{0, ReasonScheduled, 1},
		{1, ReasonFragmentFollowed, 0},
		{0, ReasonTemplateHit, 0},
	}
	for n, st := range steps {
		o := l.sendFrag(0, bytes.Clone(frags[st.i]))
		if o.d.Reason != st.want || o.emitted != st.emit {
			t.Fatalf("step %d: %v emitted %d, want %v and %d", n, o.d.Reason, o.emitted, st.want, st.emit)
		}
	}
	// Overlapping fragments (RFC 5722) are refused too.
	s.ID = 78
	a := craft.Fragment(s, 512)
	b := craft.Fragment(s, 256)
	if o := l.sendFrag(0, bytes.Clone(a[1])); o.d.Reason != ReasonFragmentHeld { // bytes 512..1023
		t.Fatal(o.d.Reason)
	}
	if o := l.sendFrag(0, bytes.Clone(b[3])); o.d.Reason != ReasonFragmentDuplicate { // 768..1023
		t.Fatal(o.d.Reason)
	}
}

// A datagram with a missing fragment waits no longer than the fragment
// timeout: its copies are counted and their slots come back.
func TestFragmentTimeout(t *testing.T) {
	c := fragCases[2]
	l := newLab(t, 1, c.rules)
	s := c.spec(lateInvite("lost@x", 1200), 5)
	frags := craft.Fragment(s, 512)
	for _, i := range []int{0, 1} { // the last never comes
		if o := l.sendFrag(0, bytes.Clone(frags[i])); o.d.Reason != ReasonFragmentHeld {
			t.Fatalf("fragment %d: %v", i, o.d.Reason)
		}
	}
	w := l.workers[0]
	free := func() int {
		n := 0
		for i := w.frag.free; i >= 0; i = w.frag.slots[i].next {
			n++
		}
		return n
	}
	if free() != DefaultFragHoldSlots-2 {
		t.Fatalf("%d free slots", free())
	}
	l.advance(DefaultFragTimeout + time.Millisecond)
	for range int(w.frag.mask+1)/fragSweepBuckets + 1 {
		w.BeginBatch(l.now)
		w.EndBatch()
	}
	if got := w.Counters().Frag.Timeout; got != 2 || free() != DefaultFragHoldSlots || w.frag.waiting != 0 {
		t.Fatalf("timeout %d, %d free slots, %d waiting", got, free(), w.frag.waiting)
	}
	// The retransmission (a new IP id) goes through whole.
	s.ID = 6
	var sent int
	for _, f := range craft.Fragment(s, 512) {
		sent += len(l.sendFrag(0, f).sent)
	}
	if sent != len(frags) {
		t.Fatalf("retransmission: %d of %d fragments sent", sent, len(frags))
	}
}

// The hold buffer is bounded: early fragments beyond it are dropped and
// counted; later decisions still work.
func TestFragmentHoldFull(t *testing.T) {
	c := fragCases[0]
	l := newLab(t, 1, c.rules)
	w, err := NewWorker(Options{ID: 0, Config: &l.ptr, Templates: 1 << 10, Conns: 1 << 10, Seed: 1, FragHoldSlots: 4, FragDatagrams: 16})
	if err != nil {
		t.Fatal(err)
	}
	l.workers[0] = w
	var firsts [][]byte
	for i := range 6 {
		frags := craft.Fragment(c.spec(append(craft.SIPInvite(fmt.Sprint("full", i)), bytes.Repeat([]byte("a=x\r\n"), 100)...), uint32(i)), 512)
		want := ReasonFragmentHeld
		if i >= 4 {
			want = ReasonFragmentOverflow
		}
		if o := l.sendFrag(0, frags[1]); o.d.Reason != want {
			t.Fatalf("datagram %d: %v, want %v", i, o.d.Reason, want)
		}
		firsts = append(firsts, frags[0])
	}
	for i, f := range firsts {
		o := l.sendFrag(0, f)
		if want := min(1, 4-min(i, 4)); o.d.Reason != ReasonScheduled || o.emitted != want {
			t.Fatalf("first fragment %d: %v, emitted %d, want %d", i, o.d.Reason, o.emitted, want)
		}
	}
	if c := w.Counters(); c.Reasons[ReasonFragmentOverflow] != 2 || c.Frag.Emitted != 4 {
		t.Fatalf("counters %+v", c.Frag)
	}
	// A full table reclaims its oldest entries: 40 datagrams through 16 entries.
	for i := range 40 {
		frags := craft.Fragment(c.spec(append(craft.SIPInvite(fmt.Sprint("churn", i)), bytes.Repeat([]byte("a=x\r\n"), 100)...), uint32(100+i)), 512)
		for j, f := range frags {
			if o := l.sendFrag(0, f); o.d.Verdict() != Forward {
				t.Fatalf("datagram %d fragment %d: %v", i, j, o.d.Reason)
			}
		}
	}
	if w.Counters().Frag.Replaced == 0 {
		t.Fatal("no entry was reclaimed")
	}
}

// A NAT real server's large reply (a 200 OK with SDP) fragments too: every
// fragment leaves from the virtual address.
func TestFragmentedReply(t *testing.T) {
	l := newLab(t, 1, sipRules)
	l.call(0, "10.4.3.7:5060", vip, "reply@x")
	svc := l.ptr.Load().Services()[0]
	var from netip.AddrPort
	for _, d := range svc.Dests {
		from = d.Addr
	}
	s := craft.Spec{SrcMAC: [6]byte{2, 0xaa, 1, 1, 1, 1}, DstMAC: lbMAC, Src: from, Dst: netip.MustParseAddrPort("10.4.3.7:5060"),
		Payload: append(craft.SIP200OK("reply@x"), bytes.Repeat([]byte("a=x\r\n"), 200)...), ID: 9}
	frags := craft.Fragment(s, 600)
	want := s
	want.Src = netip.MustParseAddrPort(vip)
	wantFrags := craft.Fragment(want, 600)
	var sent [][]byte
	for i := len(frags) - 1; i >= 0; i-- { // last first: all but the first wait
		o := l.sendFrag(0, bytes.Clone(frags[i]))
		sent = append(sent, o.sent...)
	}
	if len(sent) != len(frags) {
		t.Fatalf("%d of %d fragments sent", len(sent), len(frags))
	}
	for _, f := range sent {
		var p packet.Parsed
		p.Decode(f, packet.LinkEthernet)
		if p.Src != want.Src.Addr() || !p.VerifyChecksums(f) {
			t.Fatalf("reply fragment from %v", p.Src)
		}
	}
	// Offline (no next-hop table) the MACs stay as they are.
	for i := range wantFrags {
		copy(wantFrags[i][:12], frags[i][:12])
	}
	if !sameFrames(sent, wantFrags) {
		t.Fatal("reply fragments differ from craft's")
	}
}

// Fragments of traffic that is not the balancer's pass; so do the later
// fragments of a datagram to a virtual address that no service takes (the
// first fragment passed: the kernel reassembles).
func TestFragmentPass(t *testing.T) {
	l := newLab(t, 1, sipRules)
	other := craft.Fragment(craft.Spec{Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort("10.4.3.1:5060"), Payload: make([]byte, 1200)}, 512)
	port := craft.Fragment(craft.Spec{Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort("10.4.3.192:9999"), Payload: make([]byte, 1200)}, 512)
	icmp := craft.Fragment(craft.Spec{Proto: 1, Src: netip.MustParseAddrPort("10.4.3.7:0"), Dst: netip.MustParseAddrPort("10.4.3.192:0"), Payload: make([]byte, 1200)}, 512)
	for name, fs := range map[string][][]byte{"other host": other, "vip, other port": port, "ICMP to the vip": icmp} {
		for i, f := range fs {
			orig := bytes.Clone(f)
			o := l.sendFrag(0, f)
			if o.d.Reason != ReasonNotService || !bytes.Equal(f, orig) {
				t.Fatalf("%s fragment %d: %v", name, i, o.d.Reason)
			}
		}
	}
}

// TestFragmentsRandom sends many calls' fragmented INVITEs (Call-ID early or
// late), their fragments shuffled within a window and interleaved with other
// calls', through ProcessBatch in random batch sizes: every fragment leaves
// exactly once, towards the server of its Call-ID's template.
func TestFragmentsRandom(t *testing.T) {
	for _, c := range fragCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			l := newLab(t, 1, c.rules)
			type tagged struct {
				frame []byte
				call  int
			}
			var stream []tagged
			want := map[int]craft.Spec{}
			for n := range 200 {
				id := fmt.Sprintf("rnd-%d@x", n)
				payload := append(craft.SIPInvite(id), bytes.Repeat([]byte("a=x\r\n"), rng.IntN(200))...)
				if rng.IntN(2) == 0 {
					payload = lateInvite(id, 400+rng.IntN(800))
				}
				s := c.spec(payload, uint32(n))
				want[n] = s
				for _, f := range craft.Fragment(s, 400+8*rng.IntN(60)) {
					stream = append(stream, tagged{f, n})
				}
			}
			// Local shuffles: fragments move by up to 12 places.
			for i := range stream {
				j := min(len(stream)-1, i+rng.IntN(12))
				stream[i], stream[j] = stream[j], stream[i]
			}
			sent := map[int][][]byte{}
			w := l.workers[0]
			for i := 0; i < len(stream); {
				n := 1 + rng.IntN(70)
				chunk := stream[i:min(i+n, len(stream))]
				frames := make([][]byte, len(chunk))
				for k := range chunk {
					frames[k] = bytes.Clone(chunk[k].frame)
				}
				out := make([]Decision, len(frames))
				w.ProcessBatch(frames, packet.LinkEthernet, l.now, out)
				for k := range frames {
					if out[k].Verdict() == Forward {
						sent[chunk[k].call] = append(sent[chunk[k].call], frames[k])
					}
				}
				for _, e := range w.Emitted() {
					var p packet.Parsed
					p.Decode(e, packet.LinkEthernet)
					// Find the call by IP id (unique per call here).
					sent[int(p.FragID)] = append(sent[int(p.FragID)], bytes.Clone(e))
				}
				i += len(chunk)
				l.advance(time.Millisecond)
			}
			for n, s := range want {
				d, _ := l.send(0, sip(c.client, c.vip, craft.SIPAck(fmt.Sprintf("rnd-%d@x", n))))
				if d.Reason != ReasonTemplateHit {
					t.Fatalf("call %d ACK: %v", n, d.Reason)
				}
				mtu := 0
				var p packet.Parsed
				for _, f := range sent[n] {
					p.Decode(f, packet.LinkEthernet)
					if p.MoreFrags {
						mtu = p.End - p.PayloadOff
						if p.FragOff == 0 {
							mtu = p.End - p.L4Off
						}
						break
					}
				}
				if !sameFrames(sent[n], c.want(s, d.Real, mtu)) {
					t.Fatalf("call %d: %d frames sent, not craft's fragments for %v", n, len(sent[n]), d.Real)
				}
			}
			cs := w.Counters()
			if cs.Frag.Timeout+cs.Frag.Evicted+cs.Frag.Discarded != 0 || cs.Reasons[ReasonFragmentOverflow]+cs.Reasons[ReasonFragmentDuplicate] != 0 {
				t.Fatalf("counters %+v", cs.Frag)
			}
		})
	}
}

// Following a decided datagram allocates nothing; nor does holding and
// emitting.
func TestFragmentNoAllocations(t *testing.T) {
	c := fragCases[0]
	l := newLab(t, 1, c.rules)
	frags := craft.Fragment(c.spec(append(craft.SIPInvite("alloc@x"), bytes.Repeat([]byte("a=x\r\n"), 100)...), 3), 512)
	l.send(0, bytes.Clone(frags[0]))
	w := l.workers[0]
	var d Decision
	buf := make([]byte, 2048)
	w.BeginBatch(l.now)
	if a := testing.AllocsPerRun(500, func() {
		f := buf[:copy(buf, frags[1])]
		w.Process(f, packet.LinkEthernet, &d)
	}); a != 0 || d.Reason != ReasonFragmentFollowed {
		t.Fatalf("follow: %v allocations (%v)", a, d.Reason)
	}
	late := craft.Fragment(c.spec(lateInvite("alloc2@x", 900), 4), 512)
	id := uint32(10)
	if a := testing.AllocsPerRun(200, func() {
		id++
		for i := len(late) - 1; i >= 0; i-- {
			f := buf[:copy(buf, late[i])]
			// A new IP id each round (IPv4 header checksum left stale:
			// the pipeline does not verify it).
			f[18], f[19] = byte(id>>8), byte(id)
			w.BeginBatch(l.now)
			w.Process(f, packet.LinkEthernet, &d)
			w.EndBatch()
		}
	}); a != 0 || d.Reason != ReasonFragmentHeld || len(w.Emitted()) != len(late) {
		t.Fatalf("hold and reassemble: %v allocations (%v, %d emitted)", a, d.Reason, len(w.Emitted()))
	}
}

// releases collects, frame by frame, the hold ids of frames decided
// fragment_held and the releases reported for them.
type releases struct {
	held map[uint64]int // hold id → frame index
	got  map[uint64]Release
	dups int
}

func (r *releases) send(t *testing.T, l *lab, n int, frame []byte) Decision {
	t.Helper()
	d, _ := l.send(0, frame)
	if d.Reason == ReasonFragmentHeld {
		if d.Hold == 0 || r.held[d.Hold] != 0 {
			t.Fatalf("frame %d: hold id %d not new", n, d.Hold)
		}
		r.held[d.Hold] = n + 1
	} else if d.Hold != 0 {
		t.Fatalf("frame %d: %v with hold id %d", n, d.Reason, d.Hold)
	}
	r.collect(l)
	return d
}

func (r *releases) collect(l *lab) {
	for _, rel := range l.workers[0].Released() {
		if _, ok := r.got[rel.Hold]; ok {
			r.dups++
		}
		rel.PEData = bytes.Clone(rel.PEData)
		r.got[rel.Hold] = rel
	}
}

// Every held copy's end is reported exactly once, with its final decision:
// sent fragments with their real server and the datagram's ports and key
// (the first fragment of a datagram decided after reassembly with the
// datagram's own reason), discarded ones with why, timed-out and evicted
// ones as such. (The replay's decision log is built on this.)
func TestFragmentReleased(t *testing.T) {
	for _, c := range fragCases {
		t.Run(c.name, func(t *testing.T) {
			l := newLab(t, 1, c.rules)
			r := &releases{held: map[uint64]int{}, got: map[uint64]Release{}}
			client := netip.MustParseAddrPort(c.client)
			for n, order := range [][]int{{3, 2, 1, 0}, {1, 3, 0, 2}} {
				callID := fmt.Sprintf("rel-%d@x", n)
				frags := craft.Fragment(c.spec(sized(lateInvite(callID, 900), 1900), uint32(500+n)), 512)
				for _, i := range order {
					r.send(t, l, i, bytes.Clone(frags[i]))
				}
				d, _ := l.send(0, sip(c.client, c.vip, craft.SIPAck(callID)))
				if d.Reason != ReasonTemplateHit {
					t.Fatalf("%s ACK: %v", callID, d.Reason)
				}
				if len(r.held) != 4 || len(r.got) != 4 || r.dups != 0 {
					t.Fatalf("%s: %d held, %d released (%d twice)", callID, len(r.held), len(r.got), r.dups)
				}
				for id, frame := range r.held {
					rel := r.got[id]
					want := ReasonFragmentFollowed
					if frame == 1 { // the first fragment: the datagram's decision
						want = ReasonScheduled
					}
					if rel.Fate != FateSent || rel.Reason != want || rel.Real != d.Real || rel.Src != client ||
						rel.Dst.Port() != netip.MustParseAddrPort(c.vip).Port() || string(rel.PEData) != callID {
						t.Errorf("%s fragment %d: %v %v %v %v→%v %q", callID, frame-1, rel.Fate, rel.Reason, rel.Real, rel.Src, rel.Dst, rel.PEData)
					}
				}
				clear(r.held)
				clear(r.got)
			}
		})
	}
	c := fragCases[0]
	t.Run("discarded", func(t *testing.T) {
		l := newLab(t, 1, c.rules)
		r := &releases{held: map[uint64]int{}, got: map[uint64]Release{}}
		// A datagram to the virtual address on a port no service takes:
		// the first fragment passes, the held copy cannot.
		frags := craft.Fragment(craft.Spec{Src: netip.MustParseAddrPort("10.4.3.7:5060"), Dst: netip.MustParseAddrPort("10.4.3.192:9999"), Payload: make([]byte, 1200), ID: 3}, 512)
		r.send(t, l, 1, bytes.Clone(frags[1]))
		r.send(t, l, 0, bytes.Clone(frags[0]))
		for id := range r.held {
			if rel := r.got[id]; rel.Fate != FateDiscarded || rel.Reason != ReasonNotService {
				t.Fatalf("held copy: %v %v", rel.Fate, rel.Reason)
			}
		}
	})
	t.Run("timeout and evicted", func(t *testing.T) {
		l := newLab(t, 1, c.rules)
		w, err := NewWorker(Options{ID: 0, Config: &l.ptr, Templates: 1 << 10, Conns: 1 << 10, Seed: 1, FragDatagrams: 8})
		if err != nil {
			t.Fatal(err)
		}
		l.workers[0] = w
		r := &releases{held: map[uint64]int{}, got: map[uint64]Release{}}
		// One waiting datagram times out; then nine more fill the one
		// bucket of eight entries and evict the oldest.
		spec := func(i int) craft.Spec { return c.spec(sized(craft.SIPInvite(fmt.Sprint("lost", i)), 1200), uint32(i)) }
		r.send(t, l, 0, craft.Fragment(spec(0), 512)[1])
		l.advance(DefaultFragTimeout + time.Millisecond)
		for i := 1; i <= 9; i++ {
			r.send(t, l, i, craft.Fragment(spec(i), 512)[1])
		}
		fates := map[Fate]int{}
		for id := range r.held {
			if rel, ok := r.got[id]; ok {
				fates[rel.Fate]++
				if rel.Reason != ReasonFragmentHeld || rel.Src.Addr() != client(c) {
					t.Errorf("hold %d: %v from %v", id, rel.Reason, rel.Src)
				}
			}
		}
		if fates[FateTimeout] != 1 || fates[FateEvicted] != 1 || len(r.got) != 2 || r.dups != 0 {
			t.Fatalf("fates %v, %d released", fates, len(r.got))
		}
		if cs := w.Counters(); cs.Frag.Timeout != 1 || cs.Frag.Evicted != 1 {
			t.Fatalf("counters %+v", cs.Frag)
		}
	})
}

func client(c fragCase) netip.Addr { return netip.MustParseAddrPort(c.client).Addr() }
