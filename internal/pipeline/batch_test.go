package pipeline

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/packet"
)

// ProcessBatch must decide exactly as Process does frame by frame: same
// reasons, same real servers, same rewritten bytes, same counters, for a mix
// of new and repeated Call-IDs, fallbacks, connections, replies, passes and
// drops, across batch sizes that do and do not divide MaxBatch.
func TestBatchEqualsSequential(t *testing.T) {
	rulesText := sipRules + `
-A -u 10.4.3.200:5060 -s wlc -p 60 --pe sip
-a -u 10.4.3.200:5060 -r 192.168.2.1:5060 -m
-a -u 10.4.3.200:5060 -r 192.168.2.2:5060 -m
-A -t 10.4.3.200:80 -s rr
-a -t 10.4.3.200:80 -r 192.168.2.1:8080 -m
`
	rng := rand.New(rand.NewPCG(1, 2))
	var frames [][]byte
	for range 1000 {
		id := fmt.Sprintf("c%d@x", rng.IntN(150))
		src := fmt.Sprintf("10.4.%d.%d:%d", rng.IntN(3), 1+rng.IntN(5), 5060+rng.IntN(3))
		var f []byte
		switch rng.IntN(9) {
		case 0:
			f = sip(src, vip, craft.SIPNoCallID())
		case 1:
			f = sip(src, "10.4.3.200:5060", craft.SIPInvite(id))
		case 2:
			f = craft.Spec{Src: netip.MustParseAddrPort("192.168.2.1:5060"), Dst: netip.MustParseAddrPort(src), Payload: craft.SIP200OK(id)}.Build()
		case 3:
			f = craft.Spec{Proto: 6, TCPFlags: uint8(rng.IntN(32)), Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("10.4.3.200:80")}.Build()
		case 4:
			f = sip(src, "10.9.9.9:5060", craft.SIPInvite(id))
		case 5:
			f = sip(src, vip, craft.SIPInvite(id))[:30+rng.IntN(40)]
		case 6:
			f = craft.Spec{Src: netip.MustParseAddrPort("192.168.1.11:5060"), Dst: netip.MustParseAddrPort(src), Payload: craft.SIPBye(id)}.Build()
		default:
			f = sip(src, vip, craft.SIPAck(id))
		}
		frames = append(frames, f)
	}
	for _, size := range []int{1, 7, 64, 100} {
		seq := newLab(t, 2, rulesText)
		bat := newLab(t, 2, rulesText)
		for start := 0; start < len(frames); start += size {
			chunk := frames[start:min(start+size, len(frames))]
			a := make([][]byte, len(chunk))
			b := make([][]byte, len(chunk))
			for i, f := range chunk {
				a[i] = append([]byte(nil), f...)
				b[i] = append([]byte(nil), f...)
			}
			da := make([]Decision, len(chunk))
			db := make([]Decision, len(chunk))
			seq.workers[0].BeginBatch(seq.now)
			for i := range a {
				seq.workers[0].Process(a[i], packet.LinkEthernet, &da[i])
			}
			seq.workers[0].EndBatch()
			bat.workers[0].ProcessBatch(b, packet.LinkEthernet, bat.now, db)
			for i := range chunk {
				if da[i].Reason != db[i].Reason || da[i].Real != db[i].Real || da[i].Fallback != db[i].Fallback || !bytes.Equal(da[i].PEData, db[i].PEData) {
					t.Fatalf("batch %d frame %d: sequential %v→%v, batch %v→%v", size, start+i, da[i].Reason, da[i].Real, db[i].Reason, db[i].Real)
				}
				if !bytes.Equal(a[i], b[i]) {
					t.Fatalf("batch %d frame %d: rewritten bytes differ", size, start+i)
				}
			}
			seq.advance(1e8)
			bat.advance(1e8)
		}
		if cs, cb := seq.workers[0].Counters(), bat.workers[0].Counters(); cs != cb {
			t.Fatalf("batch %d: counters differ:\n%+v\n%+v", size, cs, cb)
		}
	}
}
