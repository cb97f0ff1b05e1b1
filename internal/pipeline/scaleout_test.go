package pipeline

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
)

// Scale-out (docs/scale-out.md): several directors behind ECMP agree on a
// new Call-ID's real server with no state exchanged, because mh over the
// Call-ID depends only on the set of (address, port, weight) of the
// available servers — not on the order of the -a lines, DestIDs, deletions
// and re-adds, or a restart.

const scaleVIP = "10.4.3.192:5060"

func mhRules(order []int, weights func(int) int) string {
	var b strings.Builder
	b.WriteString("-A -u 10.4.3.192:5060 -s mh -p 60 -M 0.0.0.0 --pe sip -o\n")
	for _, i := range order {
		fmt.Fprintf(&b, "-a -u 10.4.3.192:5060 -r 192.168.1.%d:5060 -g -w %d\n", 10+i, weights(i))
	}
	return b.String()
}

// firstServer returns where the INVITE of callID goes on l.
func firstServer(t testing.TB, l *lab, callID string) string {
	d, _ := l.send(0, sip("10.4.3.7:5060", scaleVIP, craft.SIPInvite(callID)))
	if d.Verdict() != Forward {
		t.Fatalf("%s: %v", callID, d.Reason)
	}
	return d.Real.String()
}

// TestDirectorsAgreeWithoutState builds four directors from the same
// servers in different ways and checks that 10 000 new Call-IDs go to the
// same server on every one.
func TestDirectorsAgreeWithoutState(t *testing.T) {
	const n, calls = 7, 10000
	w := func(i int) int { return i%3 + 1 }
	order := []int{0, 1, 2, 3, 4, 5, 6}
	rev := []int{6, 5, 4, 3, 2, 1, 0}
	a := newLabSized(t, 1, mhRules(order, w), 1<<15)
	// B: reverse order, after other services (different DestIDs), with a
	// server deleted and re-added (revived from the trash) and a
	// temporary server added and deleted.
	b := newLabSized(t, 1, "-A -u 10.4.3.9:5060 -s rr\n-a -u 10.4.3.9:5060 -r 192.168.2.1:5060 -m\n"+mhRules(rev, w), 1<<15)
	b.apply("-d -u 10.4.3.192:5060 -r 192.168.1.13:5060\n-a -u 10.4.3.192:5060 -r 192.168.1.99:5060 -g\n")
	b.apply("-a -u 10.4.3.192:5060 -r 192.168.1.13:5060 -g -w 1\n-d -u 10.4.3.192:5060 -r 192.168.1.99:5060\n")
	// C: shuffled order, a server added with the wrong weight and edited.
	shuf := append([]int(nil), order...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { shuf[i], shuf[j] = shuf[j], shuf[i] })
	c := newLabSized(t, 1, mhRules(shuf, func(i int) int {
		if i == 2 {
			return 9
		}
		return w(i)
	}), 1<<15)
	c.apply("-e -u 10.4.3.192:5060 -r 192.168.1.12:5060 -g -w 3\n")
	// D: a restart — a fresh director with A's rules.
	d := newLabSized(t, 1, mhRules(order, w), 1<<15)
	per := map[string]int{}
	for i := range calls {
		id := fmt.Sprintf("agree-%d@pbx.example.net", i)
		ra := firstServer(t, a, id)
		for name, l := range map[string]*lab{"reversed+readded": b, "shuffled+edited": c, "restarted": d} {
			if r := firstServer(t, l, id); r != ra {
				t.Fatalf("%s: director A → %s, %s director → %s", id, ra, name, r)
			}
		}
		per[ra]++
	}
	if len(per) != n {
		t.Fatalf("calls reached %d of %d servers: %v", len(per), n, per)
	}
}

// TestOneServerLeavesMovesOneNth: when one of N servers leaves, mh alone
// (a director without templates, e.g. one that just joined) moves about
// 1/N of the new Call-IDs — those of the server that left plus Maglev's
// small churn between survivors; a director with templates moves exactly
// the calls of the server that left and no other.
func TestOneServerLeavesMovesOneNth(t *testing.T) {
	const calls = 10000
	const tolerance = 0.02 // Maglev's churn between survivors (measured: under 0.3 %) and sampling noise (±0.5 % over 10 000 calls)
	for n := 3; n <= 10; n++ {
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		rules := mhRules(order, func(int) int { return 1 })
		live := newLabSized(t, 1, rules, 1<<15)
		ids := make([]string, calls)
		before := make([]string, calls)
		for i := range ids {
			ids[i] = fmt.Sprintf("leave-%d-%d@pbx.example.net", n, i)
			before[i] = firstServer(t, live, ids[i])
		}
		gone := "192.168.1.12:5060"
		del := "-d -u 10.4.3.192:5060 -r " + gone + "\n"
		live.apply(del)
		fresh := newLabSized(t, 1, rules, 1<<15)
		fresh.apply(del)
		var onGone, movedMH, movedLive, survivorsMoved int
		for i, id := range ids {
			if before[i] == gone {
				onGone++
			}
			if r := firstServer(t, fresh, id); r != before[i] {
				movedMH++
			}
			// A live call's next datagram (BYE) on the director holding its template.
			dd, _ := live.send(0, sip("10.4.3.7:5060", scaleVIP, craft.SIPBye(id)))
			if r := dd.Real.String(); r != before[i] {
				movedLive++
				if before[i] != gone {
					survivorsMoved++
				}
			}
		}
		frac := float64(movedMH) / calls
		t.Logf("N=%2d: server left with %.2f%% of the calls; mh alone moved %.2f%% (ideal %.2f%%); with templates %.2f%%",
			n, 100*float64(onGone)/calls, 100*frac, 100/float64(n), 100*float64(movedLive)/calls)
		if frac > 1/float64(n)+tolerance {
			t.Errorf("N=%d: mh moved %.2f%% of the calls, want ≤ 1/N + %.0f%% = %.2f%%", n, 100*frac, 100*tolerance, 100*(1/float64(n)+tolerance))
		}
		if survivorsMoved != 0 || movedLive != onGone {
			t.Errorf("N=%d: with templates %d calls moved, %d of them from surviving servers; want exactly the %d of the server that left",
				n, movedLive, survivorsMoved, onGone)
		}
	}
}
