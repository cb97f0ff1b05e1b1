package control

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// fake is a Target over a real ipvs.Config and real pipeline workers driven
// by a fake clock, as the daemon would be without packet I/O.
type fake struct {
	t       testing.TB
	mu      sync.Mutex
	cfg     *ipvs.Config
	ptr     atomic.Pointer[ipvs.Snapshot]
	workers []*pipeline.Worker
	now     int64
	queues  []dataplane.QueueStats
}

func newFake(t testing.TB, nworkers int, rulesText string) *fake {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: nworkers, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(rulesText), "fixture"); err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, cfg: cfg, now: int64(1000 * time.Second)}
	f.resolve()
	for i := range nworkers {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: &f.ptr, Templates: 256, Conns: 256, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		f.workers = append(f.workers, w)
		f.queues = append(f.queues, dataplane.QueueStats{RxFrames: uint64(10 * (i + 1)), TxFrames: uint64(9 * (i + 1))})
	}
	return f
}

// resolve gives every real server a next hop and publishes the snapshot.
func (f *fake) resolve() {
	for _, svc := range f.cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			if d.NextHop == ([6]byte{}) {
				a := d.Addr.Addr().As16()
				f.cfg.SetNextHop(svc.Key, d.Addr, [6]byte{2, 0xaa, a[12], a[13], a[14], a[15]})
			}
		}
	}
	f.ptr.Store(f.cfg.Snapshot())
}

func (f *fake) Apply(ctx context.Context, cmd ipvsadm.Command) error {
	return f.ApplyAll(ctx, []ipvsadm.Command{cmd})
}

// ApplyAll applies the commands to a candidate copy of the configuration
// and swaps it in when every one succeeded, as the daemon does.
func (f *fake) ApplyAll(ctx context.Context, cmds []ipvsadm.Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.cfg.Clone()
	for i, c := range cmds {
		if err := rules.Apply(next, c); err != nil {
			if len(cmds) == 1 {
				return err
			}
			return &CommandError{Index: i, Err: err}
		}
	}
	next.Commit()
	f.cfg = next
	f.resolve()
	return nil
}

func (f *fake) Snapshot() *ipvs.Snapshot { return f.ptr.Load() }

func (f *fake) EachTemplate(ctx context.Context, fn func([]table.TemplateInfo) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.workers {
		for from, end := 0, -1; end != from; {
			var ts []table.TemplateInfo
			from = max(end, 0)
			ts, end = w.Templates().AppendInfoFrom(nil, from, 16, f.now) // small batches: the pieces join up
			if err := fn(ts); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fake) EachConn(ctx context.Context, fn func([]table.ConnInfo) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.workers {
		for from, end := 0, -1; end != from; {
			var cs []table.ConnInfo
			from = max(end, 0)
			cs, end = w.Conns().AppendInfoFrom(nil, from, 16, f.now)
			if err := fn(cs); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fake) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Mode: dataplane.Mode{Backend: "test"}, Ifaces: []string{"veth0"}, Queues: f.queues}
	for _, w := range f.workers {
		st.Workers = append(st.Workers, w.Counters())
		st.Templates = append(st.Templates, w.Templates().Stats())
	}
	return st
}

// send runs one frame through worker w at the fake clock.
func (f *fake) send(w int, frame []byte) pipeline.Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d pipeline.Decision
	wk := f.workers[w]
	wk.BeginBatch(f.now)
	wk.Process(frame, packet.LinkEthernet, &d)
	wk.EndBatch()
	return d
}

func (f *fake) advance(d time.Duration) {
	f.mu.Lock()
	f.now += int64(d)
	f.mu.Unlock()
}

// udp builds a UDP frame with a payload.
func udp(src, dst string, payload []byte) []byte {
	return craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, Src: netip.MustParseAddrPort(src),
		Dst: netip.MustParseAddrPort(dst), Payload: payload}.Build()
}

// tcp builds a TCP segment with flags.
func tcp(src, dst string, flags uint8) []byte {
	return craft.Spec{SrcMAC: craft.ClientMAC, DstMAC: craft.LBMAC, Src: netip.MustParseAddrPort(src),
		Dst: netip.MustParseAddrPort(dst), Proto: 6, TCPFlags: flags}.Build()
}

// listRules is the configuration of internal/ipvsadm's golden fixture
// (testdata/golden.py there) as a rules file, so that the listings whose
// format and values coincide can be compared with its goldens byte for
// byte. (Its GUE tunnel shows only in --tun-info, which xvs lists as ipip.)
const listRules = `-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
-A -u [2001:db8::53]:53 -s sh -b sh-fallback,sh-port
-a -u [2001:db8::53]:53 -r [2001:db8::10]:53 -m -w 0
-A -u 10.4.3.193:5060 -s wlc --pe sip
-A -t 10.4.3.192:80 -s wlc
-a -t 10.4.3.192:80 -r 192.168.1.10:80 -g -w 3 -x 100 -y 50
-a -t 10.4.3.192:80 -r 10.1.0.5:80 -i -w 2
`

// listFixture is a fake with listRules and the fixture's gauges and counters
// written into worker 0's counter slots.
func listFixture(t testing.TB) *fake {
	f := newFake(t, 2, listRules)
	type counts struct {
		active, inactive, persist int64
		conns, inPkts, outPkts    int
		inBytes, outBytes         int
	}
	set := func(st *ipvs.Stats, c counts) {
		w := st.Worker(0)
		w.AddActive(c.active)
		w.AddInactive(c.inactive)
		w.AddPersist(c.persist)
		for range c.conns {
			w.Conn()
		}
		for i := range c.inPkts {
			w.In(c.inBytes/c.inPkts + boolInt(i < c.inBytes%c.inPkts))
		}
		for i := range c.outPkts {
			w.Out(c.outBytes/c.outPkts + boolInt(i < c.outBytes%c.outPkts))
		}
	}
	for _, svc := range f.Snapshot().Services() {
		for _, d := range svc.Dests {
			switch d.Addr.String() {
			case "192.168.1.11:5060":
				set(d.Stats, counts{inactive: 3, persist: 2, conns: 5, inPkts: 5, inBytes: 2500})
			case "192.168.1.10:5060":
				set(d.Stats, counts{inactive: 5, persist: 4, conns: 7, inPkts: 7, inBytes: 3500})
			case "192.168.1.10:80":
				set(d.Stats, counts{active: 12, inactive: 40, conns: 700, inPkts: 1400, outPkts: 1000, inBytes: 70000, outBytes: 60000})
			case "10.1.0.5:80":
				set(d.Stats, counts{active: 1, inactive: 2, conns: 300, inPkts: 600, outPkts: 500, inBytes: 30000, outBytes: 40000})
			}
		}
		switch svc.Key.String() {
		case "UDP 10.4.3.192:5060":
			set(svc.Stats, counts{conns: 12, inPkts: 12, inBytes: 6000})
		case "TCP 10.4.3.192:80":
			set(svc.Stats, counts{conns: 1000, inPkts: 2000, outPkts: 1500, inBytes: 100000, outBytes: 100000})
		}
	}
	return f
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// connRules is the fixture of the -Lc listings: the SIP service of
// reference/ipvs.md §4.2 and a NAT TCP service.
const connRules = `-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1
-A -t 10.4.3.192:80 -s rr
-a -t 10.4.3.192:80 -r 192.168.1.20:8080 -m -w 1
`

// connFixture sends two SIP calls through two workers and opens a TCP
// connection, then lets 22 seconds pass.
func connFixture(t testing.TB) *fake {
	f := newFake(t, 2, connRules)
	for _, p := range []struct {
		w     int
		frame []byte
	}{
		{0, udp("10.4.3.7:5062", "10.4.3.192:5060", craft.SIPInvite("a84b4c76e66710@pc33.example.com"))},
		{1, udp("10.4.3.8:5060", "10.4.3.192:5060", craft.SIPInvite("193373839"))},
		{1, udp("10.4.3.8:5060", "10.4.3.192:5060", craft.SIPInvite("odd call id\\"))}, // no usable Call-ID: client-address template
		{0, udp("10.4.3.9:5060", "10.4.3.192:5060", craft.SIPInvite("back\\slash@x"))}, // shown escaped
		{0, tcp("10.4.3.9:40000", "10.4.3.192:80", craft.SYN)},
	} {
		if d := f.send(p.w, p.frame); d.Verdict() != pipeline.Forward {
			t.Fatalf("fixture frame: %v", d.Reason)
		}
	}
	f.advance(22 * time.Second)
	return f
}
