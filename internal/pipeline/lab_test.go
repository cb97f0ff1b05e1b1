package pipeline

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// lab is an in-memory balancer: a configuration, its published snapshot and
// a few workers sharing one cross-worker index, driven by a fake clock.
type lab struct {
	t       testing.TB
	cfg     *ipvs.Config
	ptr     atomic.Pointer[ipvs.Snapshot]
	workers []*Worker
	now     int64
}

var (
	clientMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	lbMAC     = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
)

func newLab(t testing.TB, nworkers int, rulesText string) *lab {
	t.Helper()
	return newLabSized(t, nworkers, rulesText, 1<<12)
}

func newLabSized(t testing.TB, nworkers int, rulesText string, templates int) *lab {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: nworkers, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, cfg: cfg, now: int64(1000 * time.Second)}
	l.apply(rulesText)
	var shared *table.Shared
	if nworkers > 1 {
		shared, err = table.NewShared(max(templates, 1<<16))
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range nworkers {
		w, err := NewWorker(Options{ID: i, Config: &l.ptr, Templates: templates, Conns: 1 << 12, Seed: 42, Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		l.workers = append(l.workers, w)
	}
	return l
}

// apply loads more rules and publishes the new snapshot.
func (l *lab) apply(text string) {
	l.t.Helper()
	if err := rules.Read(l.cfg, strings.NewReader(text), "test.rules"); err != nil {
		l.t.Fatal(err)
	}
	setNextHops(l)
}

// setNextHops resolves every real server's MAC, as the data plane's
// neighbour resolution does (02:aa:<last four address bytes>), and publishes
// the snapshot.
func setNextHops(l *lab) {
	for _, svc := range l.cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			if d.NextHop == ([6]byte{}) {
				a := d.Addr.Addr().As16()
				src := labSource4
				if d.Addr.Addr().Is6() {
					src = labSource6
				}
				if err := l.cfg.SetEgress(svc.Key, d.Addr, [6]byte{0x02, 0xaa, a[12], a[13], a[14], a[15]}, src, labMTU); err != nil {
					l.t.Fatal(err)
				}
			}
		}
	}
	l.publish()
}

// The lab's egress: the director's addresses (a tunnel's outer source) and
// the link MTU.
var (
	labSource4 = netip.MustParseAddr("10.4.3.1")
	labSource6 = netip.MustParseAddr("fd00:4:3::1")
)

const labMTU = 1500

func (l *lab) publish() { l.ptr.Store(l.cfg.Snapshot()) }

func (l *lab) advance(d time.Duration) { l.now += int64(d) }

// send runs one frame through worker w as a batch of one and returns the
// decision and the (possibly rewritten) frame.
func (l *lab) send(w int, frame []byte) (Decision, []byte) {
	var d Decision
	wk := l.workers[w]
	wk.BeginBatch(l.now)
	wk.Process(frame, packet.LinkEthernet, &d)
	wk.EndBatch()
	return d, frame
}

// sip builds a UDP SIP frame from src to dst.
func sip(src, dst string, payload []byte) []byte {
	return craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Payload: payload}.Build()
}

// call sends the messages of one SIP call from src to vip and returns the
// real servers they went to.
func (l *lab) call(w int, src, vip, callID string) []string {
	var reals []string
	for _, m := range [][]byte{craft.SIPInvite(callID), craft.SIPAck(callID), craft.SIPBye(callID)} {
		d, out := l.send(w, sip(src, vip, m))
		if d.Verdict() != Forward {
			l.t.Fatalf("call %s: %v (%v)", callID, d.Reason, d.Decode)
		}
		var p packet.Parsed
		if p.Decode(out, packet.LinkEthernet) != packet.ReasonOK || !p.VerifyChecksums(out) {
			l.t.Fatalf("call %s: rewritten frame invalid", callID)
		}
		reals = append(reals, d.Real.String())
	}
	return reals
}

func onlyOne(reals []string) bool {
	for _, r := range reals {
		if r != reals[0] {
			return false
		}
	}
	return true
}

func mustDest(t testing.TB, d Decision) string {
	t.Helper()
	if d.Dest == nil {
		t.Fatalf("no destination: %v", d.Reason)
	}
	return d.Dest.Addr.String()
}

// expectFrame builds, independently of the pipeline, the frame a rewrite
// must produce, so comparing bytes checks addresses, ports, MACs and every
// checksum at once.
func expectFrame(s craft.Spec) []byte { return s.Build() }

func diffFrames(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: got %#02x want %#02x (len %d/%d)", i, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("length %d, want %d", len(got), len(want))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
