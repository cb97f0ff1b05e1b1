package syncd

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/pe"
)

const ms = int64(time.Millisecond)

func peNames(id pe.ID) string {
	if id == 1 {
		return "sip"
	}
	return ""
}

// template returns the record of SIP template i (a 57-byte entry, 60 with
// padding: Call-ID "call-NNNN@h" is 11 bytes... padded to the same length).
func template(i int) syncring.Record {
	var r syncring.Record
	r.SetAddrs(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.4.3.192"), netip.MustParseAddr("192.168.1.10"))
	r.Protocol, r.Flags, r.VPort, r.DPort, r.Timeout, r.PE = syncproto.ProtoUDP, syncproto.FlagTemplate|syncproto.FlagDRoute, 5060, 5060, 60, 1
	r.SetPEData(fmt.Appendf(nil, "call-%09d", i)) // 14 bytes: 36+16+5 = 57
	return r
}

type sent struct {
	port int
	msg  []byte
}

// testSender builds a socketless sender whose writes are recorded.
func testSender(t *testing.T, sw syncpolicy.Switches, rings ...*syncring.Ring) (*Sender, *[]sent) {
	t.Helper()
	c, err := Config{SyncID: 7}.Resolve(Master, 1500)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSender(SenderConfig{Config: c, Switches: sw, Rings: rings, PEName: peNames}, c)
	if err != nil {
		t.Fatal(err)
	}
	var out []sent
	s.write = func(port int, msg []byte) error {
		out = append(out, sent{port, slices.Clone(msg)})
		return nil
	}
	return s, &out
}

// decodeMsgs decodes every message, checking each against the limits, and
// returns the pe data of all entries in order.
func decodeMsgs(t *testing.T, msgs []sent, maxLen int, version int) []string {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		if len(m.msg) > maxLen {
			t.Errorf("message of %d bytes > maxlen %d", len(m.msg), maxLen)
		}
		var d syncproto.Decoder
		h, r := d.Reset(m.msg)
		if r != syncproto.OK || h.Version != version || h.SyncID != 7 {
			t.Fatalf("header %+v %v", h, r)
		}
		var c syncproto.Conn
		for {
			r := d.Next(&c)
			if r == syncproto.Done {
				break
			}
			if r != syncproto.OK {
				t.Fatalf("entry: %v", r)
			}
			ids = append(ids, string(c.PEData)+fmt.Sprint(c.CPort))
		}
	}
	return ids
}

func TestSenderBatchesAndFlushes(t *testing.T) {
	r1, r2 := syncring.New(256), syncring.New(256)
	s, out := testSender(t, syncpolicy.Defaults(), r1, r2)
	var want []string
	for i := range 100 {
		rec := template(i)
		ring := r1
		if i >= 50 {
			ring = r2
		}
		ring.Push(&rec)
		want = append(want, fmt.Sprintf("call-%09d0", i))
	}
	const t0 = 1000 * ms
	s.Poll(t0, false)
	// 8 + 57 + 23*60 = 1445 <= 1472: 24 entries a message; 100 = 4*24 + 4.
	if len(*out) != 4 {
		t.Fatalf("%d messages sent at once, want the 4 full ones", len(*out))
	}
	s.Poll(t0+19*ms, false)
	if len(*out) != 4 {
		t.Fatal("the partial message went out before the flush delay")
	}
	s.Poll(t0+20*ms, false)
	if len(*out) != 5 {
		t.Fatalf("%d messages after the flush delay", len(*out))
	}
	if got := decodeMsgs(t, *out, 1472, 1); !slices.Equal(got, want) {
		t.Fatalf("entries out of order or lost:\n%v", got)
	}
	st := s.Stats()
	if st.Records != 100 || st.Entries != 100 || st.Messages != 5 || st.Unencodable != 0 || st.QueueDrops != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Nothing pending: a later poll sends nothing.
	s.Poll(t0+time.Second.Nanoseconds(), false)
	if len(*out) != 5 {
		t.Fatal("an empty message was sent")
	}
}

func TestSenderQueueMax(t *testing.T) {
	sw := syncpolicy.Defaults()
	sw.QueueMax = 2
	r := syncring.New(256)
	s, out := testSender(t, sw, r)
	for i := range 100 {
		rec := template(i)
		r.Push(&rec)
	}
	s.Poll(0, true)
	// 5 messages complete in one poll (4 full, 1 flushed); 2 may wait.
	if st := s.Stats(); len(*out) != 2 || st.QueueDrops != 3 || st.Messages != 2 {
		t.Fatalf("%d sent, stats %+v", len(*out), st)
	}
}

func TestSenderVersion0AndUnencodable(t *testing.T) {
	sw := syncpolicy.Defaults()
	sw.Version = 0
	r := syncring.New(16)
	s, out := testSender(t, sw, r)
	var v4, v6, nope syncring.Record
	v4.SetAddrs(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"))
	v4.Protocol, v4.Flags, v4.CPort = syncproto.ProtoUDP, syncproto.FlagDRoute, 1
	v6 = v4
	v6.SetAddrs(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3"))
	nope = template(1)
	nope.PE = 9 // no engine of that id
	for _, rec := range []*syncring.Record{&v4, &v6, &nope, &v4} {
		r.Push(rec)
	}
	s.Poll(0, true)
	if got := decodeMsgs(t, *out, 1472, 0); len(got) != 2 {
		t.Fatalf("v0 entries %v", got)
	}
	if st := s.Stats(); st.Unencodable != 2 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSenderPorts(t *testing.T) {
	sw := syncpolicy.Defaults()
	sw.Ports = 4
	r := syncring.New(1024)
	s, out := testSender(t, sw, r)
	for round := range 2 {
		for i := range 200 {
			rec := template(i)
			r.Push(&rec)
		}
		s.Poll(int64(round)*time.Second.Nanoseconds(), true)
	}
	portOf := map[string]int{}
	used := map[int]bool{}
	for _, m := range *out {
		used[m.port] = true
		for _, id := range decodeMsgs(t, []sent{m}, 1472, 1) {
			if p, ok := portOf[id]; ok && p != m.port {
				t.Fatalf("%s sent on ports %d and %d", id, p, m.port)
			}
			portOf[id] = m.port
		}
	}
	if len(used) != 4 || len(portOf) != 200 {
		t.Fatalf("ports used %v, %d entries", used, len(portOf))
	}
}

func TestSenderLag(t *testing.T) {
	r := syncring.New(16)
	s, _ := testSender(t, syncpolicy.Defaults(), r)
	for _, q := range []int64{100 * ms, 104 * ms} {
		rec := template(int(q))
		rec.Queued = q
		r.Push(&rec)
	}
	s.Poll(110*ms, false) // drained, not yet due
	s.Poll(130*ms, false) // first entry has waited 20 ms: sent
	st := s.Stats()
	if st.LagCount != 2 || st.LagSum != uint64(30*ms+26*ms) || st.LagMax != uint64(30*ms) {
		t.Fatalf("lag %+v", st)
	}
}

func TestSenderNoAllocs(t *testing.T) {
	rings := []*syncring.Ring{syncring.New(256), syncring.New(256)}
	s, _ := testSender(t, syncpolicy.Defaults(), rings...)
	s.write = func(int, []byte) error { return nil }
	recs := make([]syncring.Record, 60)
	for i := range recs {
		recs[i] = template(i)
	}
	now := int64(0)
	round := func() {
		for i := range recs {
			rings[i%2].Push(&recs[i])
		}
		now += 25 * ms
		s.Poll(now, false)
	}
	round() // grow the message buffers to their high-water mark
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Errorf("%v allocs per poll", n)
	}
	sw := syncpolicy.Defaults()
	sw.Ports = 2
	s, _ = testSender(t, sw, rings...)
	s.write = func(int, []byte) error { return nil }
	round()
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Errorf("%v allocs per poll with 2 ports", n)
	}
}

// BenchmarkSender measures the master's cost per record: drain, encode
// into messages and hand each message to a write that discards it.
func BenchmarkSender(b *testing.B) {
	r := syncring.New(syncring.DefaultCapacity)
	c, _ := Config{}.Resolve(Master, 1500)
	s, err := newSender(SenderConfig{Config: c, Switches: syncpolicy.Defaults(), Rings: []*syncring.Ring{r}, PEName: peNames}, c)
	if err != nil {
		b.Fatal(err)
	}
	s.write = func(int, []byte) error { return nil }
	rec := template(1)
	const batch = 256
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		for range batch {
			r.Push(&rec)
		}
		now += ms
		s.Poll(now, false)
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "records/s")
}

// Switches changed while a master runs: sync_version from the next message
// (the one being filled goes out as it was), sync_qlen_max at once.
func TestSenderSetSwitches(t *testing.T) {
	r := syncring.New(64)
	s, out := testSender(t, syncpolicy.Defaults(), r)
	rec := template(1)
	r.Push(&rec)
	s.Poll(0, false)
	sw := syncpolicy.Defaults()
	sw.Version = 0
	sw.QueueMax = 7
	s.SetSwitches(sw)
	r.Push(&rec)
	s.Poll(time.Second.Nanoseconds(), true)
	if len(*out) != 2 || decodeMsgs(t, (*out)[:1], 1472, 1) == nil || decodeMsgs(t, (*out)[1:], 1472, 0) == nil || s.queueMax != 7 {
		t.Fatalf("%d messages, queue max %d", len(*out), s.queueMax)
	}
	bad := sw
	bad.Ports = 3
	s.SetSwitches(bad)
	s.Poll(2*time.Second.Nanoseconds(), true)
	if s.queueMax != 7 {
		t.Error("an invalid set was applied")
	}
}

// The times option: templates of a version 1 master that sets Times carry
// their records' queue and last-use times as Unix times; connections do not.
func TestSenderTimes(t *testing.T) {
	r := syncring.New(64)
	c, _ := Config{SyncID: 7}.Resolve(Master, 1500)
	var msgs [][]byte
	s, err := NewSenderFunc(SenderConfig{Config: c, Switches: syncpolicy.Defaults(), Rings: []*syncring.Ring{r}, PEName: peNames,
		Times: true, Clock: func() int64 { return 0 }}, func(_ int, m []byte) error { msgs = append(msgs, slices.Clone(m)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	tpl := template(1)
	tpl.Queued, tpl.Used = 5*ms, 2*ms
	conn := template(2)
	conn.Flags, conn.PE, conn.PEDataLen, conn.Queued = syncproto.FlagDRoute, 0, 0, 5*ms
	r.Push(&tpl)
	r.Push(&conn)
	before := time.Now().UnixNano()
	s.Poll(10*ms, true)
	after := time.Now().UnixNano()
	var d syncproto.Decoder
	d.Reset(msgs[0])
	var e syncproto.Conn
	if d.Next(&e) != syncproto.OK || e.Times.Queued-e.Times.Used != 3*ms ||
		e.Times.Queued < before-5*ms || e.Times.Queued > after-5*ms {
		t.Errorf("template times %+v (now %d)", e.Times, before)
	}
	if d.Next(&e) != syncproto.OK || e.Times != (syncproto.Times{}) {
		t.Errorf("connection times %+v", e.Times)
	}
}
