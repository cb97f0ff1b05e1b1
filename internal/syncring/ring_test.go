package syncring

import (
	"net/netip"
	"sync"
	"testing"
	"unsafe"

	"github.com/xvs-lb/xvs/internal/syncproto"
)

func TestRecordLayout(t *testing.T) {
	if s := unsafe.Sizeof(Record{}); s != RecordSize {
		t.Fatalf("Record is %d bytes, RecordSize says %d", s, RecordSize)
	}
	var r Ring
	if off := unsafe.Offsetof(r.tail) - unsafe.Offsetof(r.head); off < 64 {
		t.Fatalf("head and tail share a cache line (%d bytes apart)", off)
	}
}

func TestRecordConn(t *testing.T) {
	for _, addrs := range [][3]string{
		{"10.4.3.0", "10.4.3.192", "192.168.1.10"},
		{"2001:db8::7", "2001:db8:1::1", "fd00::10"},
		{"::ffff:10.0.0.1", "::ffff:10.0.0.2", "::ffff:10.0.0.3"}, // mapped stays IPv6
	} {
		c, v, d := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1]), netip.MustParseAddr(addrs[2])
		var r Record
		r.SetAddrs(c, v, d)
		r.Protocol, r.Flags, r.VPort, r.DPort, r.Timeout = syncproto.ProtoUDP, syncproto.FlagTemplate, 5060, 5060, 60
		r.PE = 1
		r.SetPEData([]byte("call@host"))
		var conn syncproto.Conn
		r.Conn(&conn, []byte("sip"))
		if conn.CAddr != c || conn.VAddr != v || conn.DAddr != d {
			t.Errorf("%v: addresses %v %v %v", addrs, conn.CAddr, conn.VAddr, conn.DAddr)
		}
		if string(conn.PEData) != "call@host" || string(conn.PEName) != "sip" || conn.Timeout != 60 || !conn.Template() {
			t.Errorf("conn %+v", conn)
		}
		var b syncproto.Builder
		if err := b.Reset(make([]byte, syncproto.BufferLen(1472)), 1, 0, 1472); err != nil {
			t.Fatal(err)
		}
		if err := b.Append(&conn); err != nil {
			t.Errorf("%v: %v", addrs, err)
		}
	}
	var r Record
	r.SetPEData(make([]byte, 300))
	if r.PEDataLen != 255 {
		t.Errorf("pe data cut to %d", r.PEDataLen)
	}
	r.PEDataLen = 0
	var conn syncproto.Conn
	r.Conn(&conn, []byte("sip"))
	if conn.PEName != nil || conn.PEData != nil {
		t.Error("pe name without pe data")
	}
}

func TestRingFullAndDrain(t *testing.T) {
	r := New(5) // rounds to 8
	if r.Cap() != 8 {
		t.Fatalf("cap %d", r.Cap())
	}
	for i := range 10 {
		ok := r.Push(&Record{CPort: uint16(i)})
		if ok != (i < 8) {
			t.Fatalf("push %d: %v", i, ok)
		}
	}
	if s := r.Stats(); s.Pushed != 8 || s.Dropped != 2 || r.Len() != 8 {
		t.Fatalf("stats %+v len %d", s, r.Len())
	}
	var got []uint16
	if n := r.Drain(3, func(rec *Record) { got = append(got, rec.CPort) }); n != 3 {
		t.Fatalf("drained %d", n)
	}
	// Room again: the producer sees it after reloading head.
	if !r.Push(&Record{CPort: 100}) {
		t.Fatal("push after drain")
	}
	r.Drain(0, func(rec *Record) { got = append(got, rec.CPort) })
	want := []uint16{0, 1, 2, 3, 4, 5, 6, 7, 100}
	if len(got) != len(want) {
		t.Fatalf("drained %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("drained %v, want %v", got, want)
		}
	}
	// Reserve without Commit publishes nothing.
	if s := r.Reserve(); s == nil {
		t.Fatal("reserve on an empty ring")
	}
	if r.Len() != 0 {
		t.Fatal("an uncommitted slot was published")
	}
}

// TestRingConcurrent runs a producer and a consumer at once (also under
// the race detector): every committed record arrives once, in order, and
// pushed = drained + dropped.
func TestRingConcurrent(t *testing.T) {
	r := New(64)
	const n = 200000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if s := r.Reserve(); s != nil {
				s.Timeout = uint32(i)
				s.PEDataLen = uint8(i)
				s.PEData[0] = byte(i)
				r.Commit()
			}
		}
	}()
	var drained uint64
	last := int64(-1)
	check := func(rec *Record) {
		i := int64(rec.Timeout)
		if i <= last || rec.PEDataLen != uint8(i) || rec.PEData[0] != byte(i) {
			t.Errorf("record %d after %d (len %d, data %d)", i, last, rec.PEDataLen, rec.PEData[0])
		}
		last = i
		drained++
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			r.Drain(0, check)
			s := r.Stats()
			if s.Pushed != drained || s.Pushed+s.Dropped != n {
				t.Fatalf("pushed %d dropped %d drained %d of %d", s.Pushed, s.Dropped, drained, n)
			}
			return
		default:
			r.Drain(0, check)
		}
	}
}

func TestRingNoAllocs(t *testing.T) {
	r := New(16)
	var rec Record
	sink := 0
	if n := testing.AllocsPerRun(100, func() {
		for range 20 {
			r.Push(&rec)
		}
		if s := r.Reserve(); s != nil {
			s.CPort = 1
			r.Commit()
		}
		r.Drain(0, func(*Record) { sink++ })
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func sampleRecord() Record {
	var r Record
	r.SetAddrs(netip.MustParseAddr("10.4.3.0"), netip.MustParseAddr("10.4.3.192"), netip.MustParseAddr("192.168.1.10"))
	r.Protocol, r.Flags, r.VPort, r.DPort, r.Timeout, r.PE = syncproto.ProtoUDP, syncproto.FlagTemplate, 5060, 5060, 60, 1
	r.SetPEData([]byte("a84b4c76e66710@pc33.atlanta.example.com"))
	return r
}

// BenchmarkRing measures push and drain of records in one goroutine
// (batches of 64, as a worker pushes and the sender drains), beside the
// baseline of copying the same records into an array.
func BenchmarkRing(b *testing.B) {
	src := sampleRecord()
	const batch = 64
	b.Run("baseline-copy", func(b *testing.B) {
		dst := make([]Record, batch)
		b.ReportAllocs()
		for b.Loop() {
			for i := range dst {
				dst[i] = src
			}
		}
		b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("push-drain", func(b *testing.B) {
		r := New(DefaultCapacity)
		var ports uint64
		drain := func(rec *Record) { ports += uint64(rec.CPort) }
		b.ReportAllocs()
		for b.Loop() {
			for range batch {
				r.Push(&src)
			}
			r.Drain(0, drain)
		}
		b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("reserve-fill-drain", func(b *testing.B) {
		// The worker's way: fill the slot in place (the fields and a
		// 40-byte Call-ID) instead of copying a whole record.
		r := New(DefaultCapacity)
		callID := src.PEData[:src.PEDataLen]
		var ports uint64
		drain := func(rec *Record) { ports += uint64(rec.CPort) }
		b.ReportAllocs()
		for b.Loop() {
			for range batch {
				s := r.Reserve()
				s.Flags, s.FWMark, s.Timeout, s.State = src.Flags, 0, src.Timeout, 0
				s.CPort, s.VPort, s.DPort, s.Protocol, s.IPv6, s.PE = 0, src.VPort, src.DPort, src.Protocol, false, src.PE
				s.CAddr, s.VAddr, s.DAddr = src.CAddr, src.VAddr, src.DAddr
				s.SetPEData(callID)
				r.Commit()
			}
			r.Drain(0, drain)
		}
		b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("two-goroutines", func(b *testing.B) {
		// A producer and a consumer on separate goroutines, as in xvs.
		r := New(DefaultCapacity)
		var drained, ports uint64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				drained += uint64(r.Drain(0, func(rec *Record) { ports += uint64(rec.CPort) }))
				select {
				case <-stop:
					drained += uint64(r.Drain(0, func(*Record) {}))
					return
				default:
				}
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			for !r.Push(&src) {
			}
		}
		close(stop)
		<-done
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
