package robust

import (
	"testing"

	"github.com/xvs-lb/xvs/internal/pipeline"
)

// TestSharedIndexBurst: two workers, each with room to spare in its own
// template table, see a burst of 1.5× their capacity of one-off Call-IDs.
// Afterwards new calls arrive with their INVITE on one queue and their ACK on
// the other (RSS hashes a proxy's datagrams by 5-tuple, but two proxies, or a
// NATed peer changing port, split a call across queues). DESIGN §2:
// "persistence must still hold across workers … whatever the scheduler".
//
// Bug: table.Shared replaces an entry only once it has expired, so the
// burst fills the shared index with one-off keys for a whole persistence
// timeout (60 s here); every new call in that window fails to publish
// (shared_index_full) and its ACK is scheduled afresh on the other worker.
// With rr two calls in three split before the shared index learnt to evict
// entries nobody uses (table.Shared, usedMark); now none may.
func TestSharedIndexBurst(t *testing.T) {
	const capacity = 20_000
	b := newBalancer(t, 2, capacity, serviceRules("rr", "-g"))
	const B = pipeline.MaxBatch
	flood := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(floodDomain)), B)
	calls := newFrameSet(t, VIPSpec(client, vip, clientMAC, lbMAC, CounterInvite(newDomain)), B)
	frames := make([][]byte, 0, B)
	burst := capacity * 3 / 2
	for n := 0; n < burst; n += B {
		frames = frames[:0]
		for i := range B {
			frames = append(frames, flood.set(i, uint64(n+i)))
		}
		b.batch((n/B)%2, frames)
	}
	st, _ := b.tmplStats()
	const newCalls = 3000
	split := 0
	for n := 0; n < newCalls; n += B {
		frames = frames[:0]
		for i := range B {
			frames = append(frames, calls.set(i, uint64(n+i)))
		}
		inv := append([]pipeline.Decision(nil), b.batch(0, frames)...)
		frames = frames[:0]
		for i := range B {
			frames = append(frames, calls.set(i, uint64(n+i)))
		}
		for i, d := range b.batch(1, frames) {
			if d.Real != inv[i].Real {
				split++
			}
		}
	}
	c := b.counters()
	t.Logf("burst of %d one-off Call-IDs over 2 workers × %d templates (evicted: %d; shared index full: %d); then %d new calls, INVITE on worker 0, ACK on worker 1: %d split",
		burst, capacity, st.EvictedProbation, c.SharedFull, newCalls, split)
	if split != 0 {
		t.Errorf("%d of %d new calls reached two real servers after a burst of %d one-off Call-IDs (1.5× capacity)", split, newCalls, burst)
	}
}
