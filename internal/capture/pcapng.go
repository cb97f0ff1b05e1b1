package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// pcapng block types (draft-ietf-opsawg-pcapng §11.1).
const (
	blockSHB = 0x0A0D0D0A // section header
	blockIDB = 1          // interface description
	blockPB  = 2          // packet (obsolete)
	blockSPB = 3          // simple packet
	blockISB = 5          // interface statistics
	blockEPB = 6          // enhanced packet

	byteOrderMagic = 0x1A2B3C4D
)

// Option codes whose values pcapgo indexes without checking their length.
const (
	optIfFilter   = 11 // if_filter: pcapgo reads value[1:]
	optIfTSResol  = 9  // if_tsresol: value[0]
	optIfTSOffset = 14 // if_tsoffset: value[:8]
	optISBStart   = 2  // isb_starttime: value[:8]
	optISBEnd     = 3  // isb_endtime
	optISBRecv    = 4  // isb_ifrecv
	optISBDrop    = 5  // isb_ifdrop
)

// Limits of the pcapng checker.
const (
	// maxBlockBytes bounds one block, and so the checker's buffer: far above
	// the largest packet block (MaxFrame plus headers and options) and the
	// name-resolution or decryption-secrets blocks real captures carry, while
	// a corrupt length cannot make the reader allocate gigabytes.
	maxBlockBytes = 16 << 20
	// readChunk is how much of a block is read (and its buffer grown) at a
	// time.
	readChunk = 64 << 10
	// maxInterfaces bounds the interfaces of one section (pcapgo keeps a
	// record per interface): real captures have a handful; an interface id
	// is 32 bits in enhanced packet blocks but 16 in the obsolete ones.
	maxInterfaces = 1 << 16
	// Largest if_tsresol exponents whose divisor fits pcapgo's uint64:
	// 2^63 and 10^19. Larger ones made pcapgo divide by zero (an
	// if_tsresol of 0x40, 10^64, wraps to 0).
	maxBinaryResolution  = 63
	maxDecimalResolution = 19
)

// ngCheck sits between a pcapng file and pcapgo's reader, which trusts the
// lengths and option values it reads (a crafted file made it divide by zero,
// index out of range, allocate whatever a length field or an interface's
// snapshot length said, or stop at a block cut short as if the capture had
// ended). ngCheck reads one whole block at a time, checks it, and only then
// hands its bytes on: pcapgo never sees a block it could not read, a cut block
// ends the capture with ErrTruncated and a malformed one with ErrCorrupt,
// after every frame before it.
type ngCheck struct {
	src    io.Reader
	buf    []byte
	block  []byte // the checked block being handed on
	off    int    // bytes of block already handed on
	pos    int64  // file offset of the next block
	order  binary.ByteOrder
	snap   []uint32 // snapshot length of each interface of the section
	err    error
	header [12]byte
}

func newNgCheck(src io.Reader) *ngCheck {
	return &ngCheck{src: src, order: binary.LittleEndian}
}

func (c *ngCheck) Read(p []byte) (int, error) {
	if c.off == len(c.block) {
		if c.err != nil {
			return 0, c.err
		}
		if c.err = c.next(); c.err != nil {
			return 0, c.err
		}
	}
	n := copy(p, c.block[c.off:])
	c.off += n
	return n, nil
}

// next reads and checks the next block.
func (c *ngCheck) next() error {
	at := c.pos
	h := c.header[:8]
	if n, err := io.ReadFull(c.src, h); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("%w: block at offset %d: %d of its 8 header bytes", ErrTruncated, at, n)
	}
	typ := binary.LittleEndian.Uint32(h[0:4]) // the SHB's type reads the same in both orders
	if typ == blockSHB {
		h = c.header[:12]
		if n, err := io.ReadFull(c.src, h[8:]); err != nil {
			return fmt.Errorf("%w: section header at offset %d: %d of 12 bytes", ErrTruncated, at, 8+n)
		}
		switch {
		case binary.LittleEndian.Uint32(h[8:12]) == byteOrderMagic:
			c.order = binary.LittleEndian
		case binary.BigEndian.Uint32(h[8:12]) == byteOrderMagic:
			c.order = binary.BigEndian
		default:
			return fmt.Errorf("%w: section header at offset %d: bad byte-order magic %x", ErrCorrupt, at, h[8:12])
		}
		c.snap = c.snap[:0]
	} else {
		typ = c.order.Uint32(h[0:4])
	}
	total := c.order.Uint32(h[4:8])
	least := uint32(12)
	if typ == blockSHB {
		least = 28
	}
	switch {
	case total < least || total%4 != 0:
		return fmt.Errorf("%w: block type %#x at offset %d: length %d", ErrCorrupt, typ, at, total)
	case total > maxBlockBytes:
		return fmt.Errorf("%w: block type %#x at offset %d: length %d over the %d-byte limit", ErrCorrupt, typ, at, total, maxBlockBytes)
	}
	// Read the body in chunks, so that a length field bigger than the
	// file costs no more memory than the file has.
	b := append(c.buf[:0], h...)
	for len(b) < int(total) {
		chunk := min(int(total)-len(b), readChunk)
		b = slices.Grow(b, chunk)
		n, err := io.ReadFull(c.src, b[len(b):len(b)+chunk])
		b = b[:len(b)+n]
		if err != nil {
			c.buf = b
			return fmt.Errorf("%w: block type %#x at offset %d: %d of its %d bytes", ErrTruncated, typ, at, len(b), total)
		}
	}
	c.buf = b
	if trail := c.order.Uint32(b[total-4:]); trail != total {
		return fmt.Errorf("%w: block type %#x at offset %d: length %d, trailing length %d", ErrCorrupt, typ, at, total, trail)
	}
	if err := c.check(typ, b[8:total-4]); err != nil {
		return fmt.Errorf("%w: block type %#x at offset %d: %v", ErrCorrupt, typ, at, err)
	}
	c.pos += int64(total)
	c.block, c.off = b, 0
	return nil
}

// check checks a block's body (between its length fields) against what
// pcapgo will read from it.
func (c *ngCheck) check(typ uint32, body []byte) error {
	switch typ {
	case blockSHB:
		// byte-order magic, major, minor, section length, options
		return c.options(body[16:], nil)
	case blockIDB:
		if len(body) < 8 {
			return errors.New("interface description too short")
		}
		if len(c.snap) >= maxInterfaces {
			return fmt.Errorf("more than %d interfaces in a section", maxInterfaces)
		}
		if err := c.options(body[8:], checkIDBOption); err != nil {
			return err
		}
		// The snapshot length is 32 bits and pcapgo sizes its packet
		// buffer by it (make([]byte, snaplen) for the interface's first
		// frame): 0xffffffff allocated 4 GiB per reader, and a fuzz
		// worker died out of memory. No frame over MaxFrame is handed
		// on (checkCaptured applies the length as written), so pcapgo
		// reads the interface with MaxFrame: the same frames and Simple
		// Packet Block lengths, a buffer of at most MaxFrame. 0 (no
		// limit) is kept: pcapgo then sizes the buffer by the frame.
		snap := c.order.Uint32(body[4:8])
		if snap > MaxFrame {
			c.order.PutUint32(body[4:8], MaxFrame)
		}
		c.snap = append(c.snap, snap)
	case blockEPB, blockPB:
		if len(body) < 20 {
			return errors.New("packet block too short")
		}
		var iface int
		if typ == blockEPB {
			iface = int(c.order.Uint32(body[0:4]))
		} else {
			iface = int(c.order.Uint16(body[0:2]))
		}
		if iface >= len(c.snap) {
			return fmt.Errorf("packet for interface %d, but the section describes %d", iface, len(c.snap))
		}
		return checkCaptured(int64(c.order.Uint32(body[12:16])), len(body)-20)
	case blockSPB:
		if len(body) < 4 {
			return errors.New("simple packet block too short")
		}
		if len(c.snap) == 0 {
			return errors.New("simple packet block before any interface description")
		}
		captured := int64(c.order.Uint32(body[0:4]))
		if s := c.snap[0]; s != 0 && captured > int64(s) {
			captured = int64(s)
		}
		return checkCaptured(captured, len(body)-4)
	case blockISB:
		if len(body) < 12 {
			return errors.New("interface statistics too short")
		}
		if iface := int(c.order.Uint32(body[0:4])); iface >= len(c.snap) {
			return fmt.Errorf("statistics for interface %d, but the section describes %d", iface, len(c.snap))
		}
		return c.options(body[12:], checkISBOption)
	}
	return nil // other blocks are skipped whole
}

func checkCaptured(captured int64, room int) error {
	switch {
	case captured > int64(room):
		return fmt.Errorf("captured length %d beyond the block's %d bytes", captured, room)
	case captured > MaxFrame:
		return fmt.Errorf("%d-byte frame over the %d-byte limit", captured, MaxFrame)
	}
	return nil
}

// options walks a block's options: each must fit the block, and the values
// pcapgo reads must be long enough and sane (check, if set, says so).
func (c *ngCheck) options(b []byte, check func(code uint16, v []byte) error) error {
	for len(b) >= 4 {
		code, n := c.order.Uint16(b[0:2]), int(c.order.Uint16(b[2:4]))
		if code == 0 {
			if n != 0 {
				return errors.New("end-of-options with a length")
			}
			return nil
		}
		padded := (n + 3) &^ 3
		if 4+padded > len(b) {
			return fmt.Errorf("option %d of %d bytes beyond the block", code, n)
		}
		if check != nil {
			if err := check(code, b[4:4+n]); err != nil {
				return err
			}
		}
		b = b[4+padded:]
	}
	return nil
}

func checkIDBOption(code uint16, v []byte) error {
	switch code {
	case optIfTSResol:
		if len(v) < 1 {
			return errors.New("empty if_tsresol")
		}
		exp, limit := v[0]&0x7f, maxDecimalResolution
		if v[0]&0x80 != 0 {
			limit = maxBinaryResolution
		}
		if int(exp) > limit {
			return fmt.Errorf("if_tsresol %#x: resolution finer than the reader can count", v[0])
		}
	case optIfTSOffset:
		if len(v) < 8 {
			return errors.New("if_tsoffset shorter than 8 bytes")
		}
	case optIfFilter:
		if len(v) < 1 {
			return errors.New("empty if_filter")
		}
	}
	return nil
}

func checkISBOption(code uint16, v []byte) error {
	switch code {
	case optISBStart, optISBEnd, optISBRecv, optISBDrop:
		if len(v) < 8 {
			return fmt.Errorf("statistics option %d shorter than 8 bytes", code)
		}
	}
	return nil
}
