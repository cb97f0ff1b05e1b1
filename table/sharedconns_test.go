package table

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSharedConns(t *testing.T) {
	s, err := NewSharedConns(64)
	if err != nil {
		t.Fatal(err)
	}
	real := netip.MustParseAddrPort("172.16.0.2:8080")
	client := netip.MustParseAddrPort("10.0.0.2:40000")
	vip := netip.MustParseAddrPort("207.175.44.110:8080")
	h := ReplyHash(1, 6, real, client)
	if h == ReplyHash(1, 6, client, real) || h == ReplyHash(1, 17, real, client) || h == ReplyHash(2, 6, real, client) {
		t.Error("reply hash ignores direction, protocol or seed")
	}
	if _, ok := s.Get(h, 0); ok {
		t.Fatal("hit in an empty index")
	}
	if !s.Publish(h, SharedConn{Virtual: vip, Dest: 7}, 100, 0) {
		t.Fatal("publish")
	}
	if c, ok := s.Get(h, 50); !ok || c != (SharedConn{Virtual: vip, Dest: 7}) {
		t.Fatalf("get: %+v %v", c, ok)
	}
	v6 := netip.MustParseAddrPort("[fd00::1]:5060")
	h6 := ReplyHash(1, 17, netip.MustParseAddrPort("[fd00:1::2]:5060"), netip.MustParseAddrPort("[fd00:2::9]:5060"))
	s.Publish(h6, SharedConn{Virtual: v6, Dest: 9}, 100, 0)
	if c, ok := s.Get(h6, 50); !ok || c.Virtual != v6 || c.Dest != 9 {
		t.Fatalf("IPv6: %+v %v", c, ok)
	}
	// Expiry, refresh (never shorter), republish.
	if _, ok := s.Get(h, 100); ok {
		t.Error("expired entry found")
	}
	s.Publish(h, SharedConn{Virtual: vip, Dest: 8}, 200, 150)
	if !s.Refresh(h, 300, 160) || s.Refresh(h, 250, 160) != true {
		t.Error("refresh")
	}
	if c, ok := s.Get(h, 299); !ok || c.Dest != 8 {
		t.Errorf("after refresh: %+v %v", c, ok)
	}
	if s.Refresh(ReplyHash(1, 6, client, real), 400, 0) {
		t.Error("refresh of an absent key")
	}
}

func TestSharedConnsFullWindow(t *testing.T) {
	s, _ := NewSharedConns(4) // 8 slots: one probe window
	var hs []uint64
	for i := range 12 {
		h := ReplyHash(1, 17, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 5060), netip.MustParseAddrPort("10.9.9.9:5060"))
		hs = append(hs, h)
		if !s.Publish(h, SharedConn{Virtual: netip.MustParseAddrPort("10.1.1.1:5060"), Dest: DestID(i + 1)}, int64(1000+i), 0) {
			t.Fatalf("publish %d", i)
		}
	}
	if s.Evictions() != 4 {
		t.Errorf("evictions %d, want 4", s.Evictions())
	}
	for i, h := range hs {
		c, ok := s.Get(h, 0)
		if ok != (i >= 4) || ok && c.Dest != DestID(i+1) {
			t.Errorf("entry %d: %+v %v (the four that expire first are evicted)", i, c, ok)
		}
	}
}

// TestSharedConnsConcurrent: writers republish keys with changing values
// while readers read them; a reader must never see a torn entry (each
// value's address encodes its DestID).
func TestSharedConnsConcurrent(t *testing.T) {
	s, _ := NewSharedConns(256)
	const keys = 64
	hs := make([]uint64, keys)
	for i := range hs {
		hs[i] = ReplyHash(3, 6, netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}), 80), netip.MustParseAddrPort("10.0.0.2:1234"))
	}
	val := func(d uint32) SharedConn {
		return SharedConn{Virtual: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)}), uint16(d)), Dest: DestID(d)}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var torn, hits atomic.Int64
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c, ok := s.Get(hs[i%keys], 1); ok {
					hits.Add(1)
					if c != val(uint32(c.Dest)) {
						torn.Add(1)
					}
				}
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 20000 {
				d := uint32(i*2+w) | 1<<20
				s.Publish(hs[i%keys], val(d), 1<<40, 0)
				s.Refresh(hs[(i+7)%keys], 1<<41, 0)
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if torn.Load() != 0 {
		t.Errorf("%d torn reads of %d", torn.Load(), hits.Load())
	}
	if hits.Load() == 0 {
		t.Error("readers found nothing")
	}
}

func TestSharedConnsNoAllocs(t *testing.T) {
	s, _ := NewSharedConns(64)
	h := ReplyHash(1, 6, netip.MustParseAddrPort("172.16.0.2:80"), netip.MustParseAddrPort("10.0.0.2:1"))
	c := SharedConn{Virtual: netip.MustParseAddrPort("10.1.1.1:80"), Dest: 3}
	if n := testing.AllocsPerRun(100, func() {
		s.Publish(h, c, 10, 0)
		s.Get(h, 1)
		s.Refresh(h, 20, 1)
		ReplyHash(1, 6, c.Virtual, c.Virtual)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
