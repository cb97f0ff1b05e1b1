package dataplane

import (
	"errors"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/packet"
)

func TestParseModes(t *testing.T) {
	for m := range XDPMode(len(xdpModeNames)) {
		got, err := ParseXDPMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseXDPMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for z := range ZeroCopy(len(zeroCopyNames)) {
		got, err := ParseZeroCopy(z.String())
		if err != nil || got != z {
			t.Errorf("ParseZeroCopy(%q) = %v, %v", z.String(), got, err)
		}
	}
	if m, err := ParseXDPMode(""); m != XDPAuto || err != nil {
		t.Errorf(`ParseXDPMode("") = %v, %v`, m, err)
	}
	if z, err := ParseZeroCopy(""); z != ZeroCopyAuto || err != nil {
		t.Errorf(`ParseZeroCopy("") = %v, %v`, z, err)
	}
	if _, err := ParseXDPMode("sideways"); !errors.Is(err, ErrOption) || err.Error() != `XDP mode "sideways" (want auto, native or generic): invalid data-plane option` {
		t.Errorf("bad XDP mode: %v", err)
	}
	if _, err := ParseZeroCopy("maybe"); !errors.Is(err, ErrOption) || err.Error() != `zero-copy "maybe" (want auto, on or off): invalid data-plane option` {
		t.Errorf("bad zero-copy: %v", err)
	}
	if s := XDPMode(7).String(); s != "XDPMode(7)" {
		t.Errorf("unknown mode %q", s)
	}
}

// TestMemQueue: frames are received in batches of at most the batch's
// capacity, those marked Send are sent and the rest recycled, copies are
// sent as copies, and a closed queue says so.
func TestMemQueue(t *testing.T) {
	q := NewMemQueue(packet.LinkRaw)
	frames := make([][]byte, MaxBatch+3)
	for i := range frames {
		frames[i] = []byte{byte(i)}
	}
	q.Inject(frames...)
	b := NewBatch(packet.LinkEthernet)
	if err := q.Receive(b, time.Second); err != nil || b.N != MaxBatch || b.Link != packet.LinkRaw {
		t.Fatalf("first batch: %d frames, link %v, %v", b.N, b.Link, err)
	}
	for i := range b.N {
		b.Send[i] = i%2 == 0
	}
	if err := q.Transmit(b); err != nil || b.N != 0 {
		t.Fatalf("Transmit: %v, %d left", err, b.N)
	}
	if err := q.Receive(b, time.Second); err != nil || b.N != 3 || q.Pending() != 0 {
		t.Fatalf("second batch: %d frames, %d pending, %v", b.N, q.Pending(), err)
	}
	q.Transmit(b) // all recycled
	copies := [][]byte{{0xaa}}
	if n, err := q.TransmitCopies(1, copies); n != 1 || err != nil {
		t.Fatalf("TransmitCopies: %d, %v", n, err)
	}
	copies[0][0] = 0 // the queue kept its own copy
	sent, ports := q.SentPorts()
	if len(sent) != MaxBatch/2+1 || sent[1][0] != 2 || sent[len(sent)-1][0] != 0xaa || ports[len(ports)-1] != 1 || ports[0] != 0 {
		t.Fatalf("sent %v on %v", sent, ports)
	}
	if s := q.Stats(); s.RxFrames != MaxBatch+3 || s.TxFrames != MaxBatch/2+1 || s.Recycled != MaxBatch/2+3 {
		t.Fatalf("stats %+v", s)
	}
	if o := (Options{Iface: "eth0"}); len(o.Interfaces()) != 1 || (Options{Iface: "x", Ifaces: []string{"a", "b"}}).Interfaces()[1] != "b" {
		t.Error("Options.Interfaces")
	}
	if err := q.Receive(b, time.Millisecond); err != nil || b.N != 0 {
		t.Fatalf("empty queue: %d frames, %v", b.N, err)
	}
	// A frame from another interface keeps its port; Wake interrupts a wait.
	q.InjectOn(1, []byte{7})
	if err := q.Receive(b, time.Second); err != nil || b.N != 1 || b.Port[0] != 1 {
		t.Fatalf("port: %d frames, port %d, %v", b.N, b.Port[0], err)
	}
	q.Transmit(b)
	q.Wake()
	start := time.Now()
	if err := q.Receive(b, time.Minute); err != nil || b.N != 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("woken receive: %d, %v after %v", b.N, err, time.Since(start))
	}
	q.Close()
	if err := q.Receive(b, time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed queue: %v", err)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{
		{Backend: "raw"}:                                   "raw",
		{Backend: "afxdp", XDP: XDPGeneric}:                "afxdp-generic",
		{Backend: "afxdp", XDP: XDPNative}:                 "afxdp-native-copy",
		{Backend: "afxdp", XDP: XDPNative, ZeroCopy: true}: "afxdp-native-zerocopy",
	} {
		if m.String() != want {
			t.Errorf("%#v: %q, want %q", m, m.String(), want)
		}
	}
}
