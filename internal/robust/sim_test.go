package robust

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// long reports whether the long ("minutes") versions were asked for.
var long = os.Getenv("XVS_ROBUST_LONG") == "1"

var (
	clientMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	lbMAC     = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
	vip       = netip.MustParseAddrPort("10.4.3.192:5060")
	client    = netip.MustParseAddrPort("10.4.3.7:5060")
	reals     = []netip.AddrPort{
		netip.MustParseAddrPort("192.168.1.10:5060"),
		netip.MustParseAddrPort("192.168.1.11:5060"),
		netip.MustParseAddrPort("192.168.1.12:5060"),
	}
)

// balancer is an in-memory xvs: a configuration, its snapshot and workers
// (sharing a table.Shared when several), clocked by the process's monotonic
// clock read once per batch, as the daemon's runner does.
type balancer struct {
	t       testing.TB
	cfg     *ipvs.Config
	ptr     atomic.Pointer[ipvs.Snapshot]
	workers []*pipeline.Worker
	shared  *table.Shared
	epoch   time.Time
	out     []pipeline.Decision
}

// serviceRules is one SIP service (-o, Call-ID engine, every Call-ID from
// any client on one template) with three real servers.
func serviceRules(sched, fwd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A -u %v -s %s -p 60 -M 0.0.0.0 --pe sip -o\n", vip, sched)
	for _, r := range reals {
		fmt.Fprintf(&b, "-a -u %v -r %v %s -w 1\n", vip, r, fwd)
	}
	return b.String()
}

func newBalancer(t testing.TB, workers, templates int, rulesText string) *balancer {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: workers, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{t: t, cfg: cfg, epoch: time.Now(), out: make([]pipeline.Decision, pipeline.MaxBatch)}
	if err := rules.Read(cfg, strings.NewReader(rulesText), "robust.rules"); err != nil {
		t.Fatal(err)
	}
	for _, svc := range cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			a := d.Addr.Addr().As4()
			if err := cfg.SetNextHop(svc.Key, d.Addr, [6]byte{0x02, 0xaa, a[0], a[1], a[2], a[3]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.ptr.Store(cfg.Snapshot())
	if workers > 1 {
		if b.shared, err = table.NewShared(templates); err != nil {
			t.Fatal(err)
		}
	}
	for i := range workers {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: &b.ptr, Templates: templates, Conns: 1 << 12,
			Seed: 7, Shared: b.shared})
		if err != nil {
			t.Fatal(err)
		}
		b.workers = append(b.workers, w)
	}
	return b
}

func (b *balancer) now() int64 { return int64(time.Since(b.epoch)) }

// batch runs frames (at most pipeline.MaxBatch) through worker w and
// returns the decisions (valid until the next call).
func (b *balancer) batch(w int, frames [][]byte) []pipeline.Decision {
	out := b.out[:len(frames)]
	b.workers[w].ProcessBatch(frames, packet.LinkEthernet, b.now(), out)
	return out
}

// counters totals the workers' counters.
func (b *balancer) counters() pipeline.Counters {
	var c pipeline.Counters
	for _, w := range b.workers {
		x := w.Counters()
		c.Add(&x)
	}
	return c
}

// tmplStats totals the workers' template-table counters.
func (b *balancer) tmplStats() (s table.TemplateStats, mem int) {
	for _, w := range b.workers {
		x := w.Templates().Stats()
		s.Lookups += x.Lookups
		s.Hits += x.Hits
		s.Inserts += x.Inserts
		s.Expired += x.Expired
		s.EvictedProbation += x.EvictedProbation
		s.EvictedProtected += x.EvictedProtected
		s.Overflow += x.Overflow
		s.Live += x.Live
		s.Capacity += x.Capacity
		mem += w.Templates().MemoryBytes()
	}
	return s, mem
}

// heapInUse is the live heap after a full collection.
func heapInUse() (heap, mallocs uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.Mallocs
}

// frameSet is n writable copies of a frame with a Call-ID counter, and the
// original header bytes to restore before reuse (NAT rewrites addresses).
type frameSet struct {
	orig   []byte
	frames [][]byte
	ctr    []Counter
}

func newFrameSet(t testing.TB, spec craft.Spec, n int) *frameSet {
	t.Helper()
	fs := &frameSet{orig: spec.Build()}
	for range n {
		f := append([]byte(nil), fs.orig...)
		c, err := NewCounter(f)
		if err != nil {
			t.Fatal(err)
		}
		fs.frames = append(fs.frames, f)
		fs.ctr = append(fs.ctr, c)
	}
	return fs
}

// headerBytes is what a rewrite may change: Ethernet, IPv4 and UDP headers.
const headerBytes = 14 + 20 + 8

// set prepares frame i for counter value v.
func (fs *frameSet) set(i int, v uint64) []byte {
	copy(fs.frames[i][:headerBytes], fs.orig[:headerBytes])
	fs.ctr[i].Set(v)
	return fs.frames[i]
}

func pct(a, b int) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}
