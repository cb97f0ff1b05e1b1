package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/xvs-lb/xvs/internal/testenv"
)

func TestOpenEveryCapture(t *testing.T) {
	want := map[string]struct {
		frames int
		link   layers.LinkType
	}{
		"heplify_sip_ipv6_udp.pcap":         {6, layers.LinkTypeEthernet},
		"heplify_sip_ipv4_tcp_retrans.pcap": {196, layers.LinkTypeLinuxSLL},
		"sipnab_h263-over-rtp.pcap":         {49, layers.LinkTypeNull},
		"sipnab_b2bua-asterisk.pcapng":      {416, layers.LinkTypeEthernet},
		"sipp-branch-scenario.pcapng":       {4500, layers.LinkTypeEthernet},
		"sngrep_ipv6frag.pcap":              {34, layers.LinkTypeLinuxSLL},
		"zeek_sip-junk-before-request.pcap": {2, layers.LinkTypeEthernet},
	}
	seen, known := 0, 0
	for _, c := range testenv.Captures(t) {
		f := c.Path
		if _, ok := want[c.Name]; ok {
			known++
		}
		r, err := Open(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		var link layers.LinkType
		for {
			fr, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s frame %d: %v", f, n+1, err)
			}
			n++
			if fr.Number != n || len(fr.Data) == 0 || fr.Time.IsZero() {
				t.Fatalf("%s: bad frame %+v", f, fr.Number)
			}
			link = fr.LinkType
		}
		r.Close()
		if w, ok := want[filepath.Base(f)]; ok {
			seen++
			if n != w.frames || link != w.link {
				t.Errorf("%s: %d frames link %v, want %d link %v", filepath.Base(f), n, link, w.frames, w.link)
			}
		}
	}
	if seen != known || seen < 4 {
		t.Errorf("checked %d known captures of %d", seen, known)
	}
}

func TestNotACapture(t *testing.T) {
	if _, err := NewReader(strings.NewReader("INVITE sip:a@b SIP/2.0\r\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
}

// readAll reads a capture to its end: the frames' first bytes and numbers,
// and the error that ended it (nil for a clean io.EOF).
func readAll(t *testing.T, r *Reader) (frames []Frame, err error) {
	t.Helper()
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return frames, err
		}
		f.Data = bytes.Clone(f.Data)
		frames = append(frames, f)
		if len(frames) > 1e6 {
			t.Fatal("reader does not end")
		}
	}
}

// A 60-byte pcapng whose interface has if_tsresol 0x40 (10^-64 s) made
// pcapgo divide by zero: it is an error naming the file, not a panic.
func TestTSResolDivideByZero(t *testing.T) {
	const path = "testdata/tsresol-0x40.pcapng"
	before := recovered.Load()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic: %v", p)
			}
		}()
		r, oerr := Open(path)
		if oerr != nil {
			err = oerr
			return
		}
		defer r.Close()
		_, err = readAll(t, r)
	}()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "if_tsresol 0x40") {
		t.Fatalf("err = %v; want ErrCorrupt naming %s and the option", err, path)
	}
	if recovered.Load() != before {
		t.Fatal("the check missed it: the reader panicked and was recovered")
	}
	// Every timestamp resolution pcapgo can count still reads.
	for _, res := range []byte{0, 3, 6, 9, 19, 0x80 | 10, 0x80 | 63} {
		file := append(ngSHB(), ngIDB(1, 0, ngOption(optIfTSResol, []byte{res}))...)
		file = append(file, ngEPB(0, time.Unix(1, 0), frame(1), 60)...)
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		if fs, err := readAll(t, r); err != nil || len(fs) != 1 {
			t.Errorf("if_tsresol %#x: %d frames, %v", res, len(fs), err)
		}
	}
}

// Cut captures end with ErrTruncated naming the file and the frame, after
// every whole frame before the cut; a cut between frames cannot be told from
// a shorter capture and ends cleanly.
func TestTruncatedCaptures(t *testing.T) {
	dir := t.TempDir()
	frames := [][]byte{frame(1), frame(2), frame(3)}
	pcap := pcapFile(65535, 1, frames...)
	ng := append(ngSHB(), ngIDB(1, 0)...)
	for i, f := range frames {
		ng = append(ng, ngEPB(0, time.Unix(int64(1700000000+i), 0), f, 60)...)
	}
	for _, c := range []struct {
		name  string
		file  []byte
		cut   int // bytes removed from the end
		whole int // frames before the cut
		clean bool
	}{
		{"mid-frame.pcap", pcap, 10, 2, false},
		{"mid-header.pcap", pcap, 60 + 6, 2, false},
		{"between.pcap", pcap, 60 + 16, 2, true},
		{"mid-frame.pcapng", ng, 10, 2, false},
		{"mid-length.pcapng", ng, 2, 2, false},
		{"mid-header.pcapng", ng, 92 - 4, 2, false},
		{"between.pcapng", ng, 92, 2, true},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, c.file[:len(c.file)-c.cut], 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, r)
		if _, again := r.Next(); !c.clean && again != err {
			t.Errorf("%s: Next after the error: %v", c.name, again)
		}
		r.Close()
		if len(got) != c.whole {
			t.Errorf("%s: %d frames, want %d", c.name, len(got), c.whole)
		}
		switch {
		case c.clean && err != nil:
			t.Errorf("%s: %v, want a clean end", c.name, err)
		case !c.clean && (!errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), path+": frame 3:")):
			t.Errorf("%s: err = %v; want ErrTruncated naming the file and frame 3", c.name, err)
		}
	}
}

// Simple Packet Blocks carry no timestamp: they take the previous frame's,
// or the Unix epoch, never the reader's clock or the zero time.
func TestSimplePacketBlockTime(t *testing.T) {
	t0 := time.Unix(1700000000, 123000).UTC()
	file := append(ngSHB(), ngIDB(1, 0)...)
	file = append(file, ngSPB(frame(1))...)
	file = append(file, ngEPB(0, t0, frame(2), 60)...)
	file = append(file, ngSPB(frame(3))...)
	file = append(file, ngSPB(frame(4))...)
	r, err := NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, r)
	if err != nil || len(got) != 4 {
		t.Fatalf("%d frames, %v", len(got), err)
	}
	want := []time.Time{time.Unix(0, 0).UTC(), t0, t0, t0}
	for i, f := range got {
		if !f.Time.Equal(want[i]) || f.Data[0] != byte(i+1) {
			t.Errorf("frame %d: time %v data %d, want %v", f.Number, f.Time, f.Data[0], want[i])
		}
	}
}

// Frames are bounded by MaxFrame whatever the file's lengths say, and a
// libpcap header's snapshot length neither refuses larger frames below
// MaxFrame (writers that do not truncate) nor sizes the reader's buffer.
func TestFrameLimits(t *testing.T) {
	big := make([]byte, MaxFrame+1)
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"pcap", pcapFile(0xffffffff, 1, big)},
		{"pcapng", append(append(ngSHB(), ngIDB(1, 0)...), ngEPB(0, time.Unix(1, 0), big, len(big))...)},
	} {
		r, err := NewReader(bytes.NewReader(c.file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, r); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "frame 1:") {
			t.Errorf("%s: %d-byte frame: %v, want ErrCorrupt", c.name, len(big), err)
		}
	}
	// Header snaplen 64, frames of 100 bytes; then a header snaplen of 4 GiB.
	for _, snaplen := range []uint32{64, 0xffffffff} {
		file := pcapFile(snaplen, 1, make([]byte, 100), make([]byte, 100))
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, r)
		runtime.ReadMemStats(&m1)
		if err != nil || len(got) != 2 {
			t.Errorf("snaplen %d: %d frames, %v", snaplen, len(got), err)
		}
		if a := m1.TotalAlloc - m0.TotalAlloc; a > 4<<20 {
			t.Errorf("snaplen %d: reading two frames allocated %d bytes", snaplen, a)
		}
	}
}

// A pcapng interface's snapshot length is 32 bits and pcapgo sized its
// packet buffer by it: an interface of snaplen 0xffffffff made each reader
// allocate 4 GiB, and the fuzz workers of FuzzReader died out of memory (exit
// status 2, nothing printed). Above MaxFrame it no longer sizes anything, and
// the frames read are those the snapshot length as written gives.
func TestPcapngSnapLength(t *testing.T) {
	long := make([]byte, MaxFrame+4)
	for _, c := range []struct {
		snaplen uint32
		spb     []byte // a Simple Packet Block's frame
		lens    []int  // captured lengths of the EPB's and the SPB's frames
		err     error
	}{
		{0xffffffff, frame(2), []int{60, 60}, nil},
		{0x7fffffff, frame(2), []int{60, 60}, nil},
		{MaxFrame + 1, frame(2), []int{60, 60}, nil},
		{MaxFrame, frame(2), []int{60, 60}, nil},
		{40, frame(2), []int{60, 40}, nil}, // an SPB holds snaplen bytes at most
		{0, frame(2), []int{60, 60}, nil},
		// The snapshot length as written applies: this frame is over
		// MaxFrame, not cut to it.
		{MaxFrame + 8, long, []int{60}, ErrCorrupt},
	} {
		file := append(ngSHB(), ngIDB(1, c.snaplen)...)
		file = append(file, ngEPB(0, time.Unix(1, 0), frame(1), 60)...)
		file = append(file, ngSPB(c.spb)...)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, r)
		runtime.ReadMemStats(&m1)
		var lens []int
		for _, f := range got {
			lens = append(lens, len(f.Data))
		}
		if !slices.Equal(lens, c.lens) || (c.err == nil) != (err == nil) || !errors.Is(err, c.err) {
			t.Errorf("snaplen %d: frames of %v bytes, %v; want %v, %v", c.snaplen, lens, err, c.lens, c.err)
		}
		if len(got) > 1 && got[1].WireLen != len(c.spb) {
			t.Errorf("snaplen %d: SPB frame's wire length %d, want %d", c.snaplen, got[1].WireLen, len(c.spb))
		}
		if a := m1.TotalAlloc - m0.TotalAlloc; a > uint64(2*MaxFrame+len(file)+1<<20) {
			t.Errorf("snaplen %d: reading a %d-byte capture allocated %d bytes", c.snaplen, len(file), a)
		}
	}
}

// Malformed pcapng blocks are errors (ErrCorrupt) after the frames before
// them, never a panic, a huge allocation or a silent end.
func TestCorruptBlocks(t *testing.T) {
	head := append(ngSHB(), ngIDB(1, 0)...)
	good := ngEPB(0, time.Unix(1, 0), frame(1), 60)
	bad := map[string][]byte{
		"block length below 12":   le32(le32(nil, blockEPB), 8),
		"block length not /4":     append(le32(le32(nil, 99), 14), make([]byte, 6)...),
		"block length 4 GiB":      append(le32(le32(nil, blockEPB), 0xfffffffc), make([]byte, 64)...),
		"trailing length differs": append(ngBlock(99, make([]byte, 8))[:16], le32(nil, 24)...),
		"unknown interface":       ngEPB(7, time.Unix(1, 0), frame(2), 60),
		"captured beyond block":   func() []byte { b := ngEPB(0, time.Unix(1, 0), frame(2), 60); b[20] = 200; return b }(),
		"empty if_tsresol":        ngIDB(1, 0, ngOption(optIfTSResol, nil)),
		"if_tsresol 0x80|64":      ngIDB(1, 0, ngOption(optIfTSResol, []byte{0x80 | 64})),
		"if_tsresol 10^20":        ngIDB(1, 0, ngOption(optIfTSResol, []byte{20})),
		"short if_tsoffset":       ngIDB(1, 0, ngOption(optIfTSOffset, []byte{1, 2})),
		"empty if_filter":         ngIDB(1, 0, ngOption(optIfFilter, nil)),
		"option beyond block":     ngBlock(blockIDB, append(le32(le16(le16(nil, 1), 0), 0), le16(le16(nil, 2), 200)...)),
		"short isb_starttime":     ngBlock(blockISB, append(make([]byte, 12), ngOption(optISBStart, []byte{1})...)),
		"statistics of no iface":  ngBlock(blockISB, append(le32(nil, 5), make([]byte, 8)...)),
		"simple packet too long":  ngBlock(blockSPB, append(le32(nil, 1000), frame(1)...)),
	}
	for name, b := range bad {
		file := append(append(bytes.Clone(head), good...), b...)
		file = append(file, good...)
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := readAll(t, r)
		if len(got) != 1 || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %d frames, %v; want 1 and ErrCorrupt", name, len(got), err)
		}
	}
	// A simple packet block before any interface, and a bad section header.
	for name, file := range map[string][]byte{
		"spb first":      append(ngSHB(), ngSPB(frame(1))...),
		"byte order":     append(le32(le32(nil, blockSHB), 28), make([]byte, 20)...),
		"short sections": append(le32(le32(nil, blockSHB), 16), le32(le32(nil, byteOrderMagic), 16)...),
	} {
		r, err := NewReader(bytes.NewReader(file))
		if err == nil {
			_, err = readAll(t, r)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
