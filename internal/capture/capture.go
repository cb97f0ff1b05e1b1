// Package capture reads packet captures (libpcap and pcapng, told apart by
// their magic bytes, not their file names) as a sequence of frames with their
// link type and timestamp. It is the file edge of the replay backend and of the
// tests that check the parser against real traffic.
//
// The formats are decoded by gopacket's pcapgo; this package closes the gaps
// that let a broken or hostile file crash or mislead it: pcapng blocks are
// checked whole before pcapgo reads them (see ngCheck), frames are bounded by
// MaxFrame, a capture cut short ends with ErrTruncated instead of looking
// complete, and any failure is an error naming the file and the frame, never
// a panic.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// MaxFrame is the largest frame a capture may hold: libpcap's
// MAXIMUM_SNAPLEN, which bounds what tcpdump and Wireshark write (jumbo
// frames included). Larger frames are refused as ErrCorrupt, so every frame
// read fits an output capture with this snapshot length.
const MaxFrame = 262144

// Errors of Open and Next, wrapped with the file name and frame number.
var (
	// ErrFormat reports a file that is neither libpcap nor pcapng.
	ErrFormat = errors.New("not a pcap or pcapng capture")
	// ErrTruncated reports a capture that ends inside a frame or block:
	// the file was cut short (a copy in progress, a full disk, a capture
	// killed mid-write). The frames before the cut were read.
	ErrTruncated = errors.New("capture truncated")
	// ErrCorrupt reports a record the reader cannot use: lengths that do
	// not fit, an unknown interface, a timestamp resolution it cannot
	// count, a frame over MaxFrame.
	ErrCorrupt = errors.New("corrupt capture")
)

// Frame is one captured frame. Data is valid until the next call to
// Reader.Next (the reader reuses its buffer).
type Frame struct {
	Number   int             // 1-based, as Wireshark counts frames
	Time     time.Time       // capture timestamp (see Reader.Next for Simple Packet Blocks)
	LinkType layers.LinkType // link-layer header type (DLT) of this frame
	Data     []byte          // captured bytes (may be shorter than the wire length)
	WireLen  int             // original length on the wire
}

// Truncated reports whether the capture holds fewer bytes of the frame than
// were on the wire (a snapshot length shorter than the frame).
func (f *Frame) Truncated() bool { return len(f.Data) < f.WireLen }

type source interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader iterates over the frames of one capture.
type Reader struct {
	name   string
	f      *os.File
	src    source
	link   layers.LinkType
	ng     bool
	number int
	last   time.Time // the previous frame's timestamp
	err    error     // sticky: the reader stops at its first error
}

// recovered counts panics of the underlying reader that Next and NewReader
// turned into errors: a gap in the checks, which the fuzz test reports.
var recovered atomic.Int64

// Open opens a libpcap or pcapng file. Errors of Open and of the reader's
// Next name the file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.f, r.name = f, path
	return r, nil
}

// NewReader reads a capture from rd. The caller closes rd.
func NewReader(rd io.Reader) (r *Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			recovered.Add(1)
			r, err = nil, fmt.Errorf("%w: reader failed: %v", ErrCorrupt, p)
		}
	}()
	br := bufio.NewReaderSize(rd, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, ErrFormat
	}
	switch binary.LittleEndian.Uint32(magic) {
	case blockSHB:
		ng, err := pcapgo.NewNgReader(newNgCheck(br), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", readError(err))
		}
		return &Reader{src: ng, ng: true}, nil
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1: // libpcap µs/ns, either byte order
		p, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", readError(err))
		}
		// The file header's snapshot length is advisory (tcpdump and
		// Wireshark ignore it, and writers that do not truncate set it
		// too low); pcapgo would refuse larger frames and size its
		// buffer by it, up to 4 GiB. Bound frames by MaxFrame instead.
		p.SetSnaplen(MaxFrame)
		return &Reader{src: p, link: p.LinkType()}, nil
	}
	return nil, ErrFormat
}

// readError classifies an error of pcapgo (or of ngCheck beneath it).
func readError(err error) error {
	switch {
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrCorrupt):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// Next returns the next frame, or io.EOF after the last one. Any other error
// (ErrTruncated, ErrCorrupt) names the file and the frame that could not be
// read; the frames before it were returned, and later calls return the same
// error.
//
// A pcapng Simple Packet Block has no timestamp: its frame gets the previous
// frame's (the Unix epoch for a first frame), so the replay clock stays
// monotonic and deterministic.
func (r *Reader) Next() (f Frame, err error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	defer func() {
		if p := recover(); p != nil {
			recovered.Add(1)
			f, err = Frame{}, r.fail(fmt.Errorf("%w: reader failed: %v", ErrCorrupt, p))
		}
	}()
	data, ci, err := r.src.ZeroCopyReadPacketData()
	if err == io.EOF {
		// A clean end: libpcap between records, pcapng between blocks
		// (ngCheck reports a cut block as ErrTruncated).
		r.err = io.EOF
		return Frame{}, io.EOF
	}
	if err != nil {
		return Frame{}, r.fail(readError(err))
	}
	if len(data) > MaxFrame {
		return Frame{}, r.fail(fmt.Errorf("%w: %d-byte frame over the %d-byte limit", ErrCorrupt, len(data), MaxFrame))
	}
	r.number++
	link := r.link
	if r.ng && len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = lt
		}
	}
	t := ci.Timestamp
	if r.ng && t.IsZero() { // a Simple Packet Block
		t = r.last
		if t.IsZero() {
			t = time.Unix(0, 0).UTC()
		}
	}
	r.last = t
	return Frame{Number: r.number, Time: t, LinkType: link, Data: data, WireLen: max(ci.Length, len(data))}, nil
}

// fail records the reader's error, with the file name and frame number.
func (r *Reader) fail(err error) error {
	if r.name != "" {
		r.err = fmt.Errorf("%s: frame %d: %w", r.name, r.number+1, err)
	} else {
		r.err = fmt.Errorf("frame %d: %w", r.number+1, err)
	}
	return r.err
}

// Name returns the file name given to Open ("" for NewReader).
func (r *Reader) Name() string { return r.name }

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}
