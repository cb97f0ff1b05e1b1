// Package capture reads packet captures (libpcap and pcapng, told apart by
// their magic bytes, not their file names) as a sequence of frames with their
// link type and timestamp. It is the file edge of the replay backend and of the
// tests that check the parser against real traffic.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// ErrFormat reports a file that is neither libpcap nor pcapng.
var ErrFormat = errors.New("not a pcap or pcapng capture")

// Frame is one captured frame. Data is valid until the next call to
// Reader.Next (the reader reuses its buffer).
type Frame struct {
	Number   int             // 1-based, as Wireshark counts frames
	Time     time.Time       // capture timestamp
	LinkType layers.LinkType // link-layer header type (DLT) of this frame
	Data     []byte          // captured bytes (may be shorter than the wire length)
	WireLen  int             // original length on the wire
}

type source interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader iterates over the frames of one capture.
type Reader struct {
	f      *os.File
	src    source
	link   layers.LinkType
	ng     bool
	number int
}

// Open opens a libpcap or pcapng file.
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
	r.f = f
	return r, nil
}

// NewReader reads a capture from rd. The caller closes rd.
func NewReader(rd io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(rd, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, ErrFormat
	}
	switch binary.LittleEndian.Uint32(magic) {
	case 0x0a0d0d0a: // pcapng section header block
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		return &Reader{src: ng, ng: true}, nil
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1: // libpcap µs/ns, either byte order
		p, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
		return &Reader{src: p, link: p.LinkType()}, nil
	}
	return nil, ErrFormat
}

// Next returns the next frame, or io.EOF after the last one.
func (r *Reader) Next() (Frame, error) {
	data, ci, err := r.src.ZeroCopyReadPacketData()
	if err != nil {
		return Frame{}, err
	}
	r.number++
	link := r.link
	if r.ng && len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = lt
		}
	}
	return Frame{Number: r.number, Time: ci.Timestamp, LinkType: link, Data: data, WireLen: ci.Length}, nil
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}
