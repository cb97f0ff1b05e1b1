package syncproto

import (
	"encoding/binary"
	"errors"
)

// Errors Builder.Append returns. None of them changes the message.
var (
	// ErrFull reports that the entry does not fit the message's length
	// limit (or the message has MaxConns entries): send the message, start
	// a new one and append the entry to it.
	ErrFull = errors.New("sync message full")
	// ErrBufferTooSmall reports a buffer shorter than BufferLen(maxLen).
	ErrBufferTooSmall = errors.New("sync message buffer too small")
	// ErrFamily reports addresses of different families, or an invalid one.
	ErrFamily = errors.New("sync entry addresses must be all IPv4 or all IPv6")
	// ErrV0IPv6 reports an IPv6 entry for a version 0 message, which
	// carries IPv4 only (the kernel does not send it).
	ErrV0IPv6 = errors.New("sync version 0 carries IPv4 entries only")
	// ErrPEDataLen reports pe data longer than MaxPEDataLen.
	ErrPEDataLen = errors.New("pe data longer than 255 bytes")
	// ErrPENameLen reports a pe name longer than MaxPENameLen.
	ErrPENameLen = errors.New("pe name longer than 16 bytes")
	// ErrPEDataWithoutName reports pe data without a pe name, which every
	// receiver drops ("BACKUP, Invalid PE parameters").
	ErrPEDataWithoutName = errors.New("pe data without a pe name")
	// ErrVersion reports a version other than 0 and 1.
	ErrVersion = errors.New("sync version must be 0 or 1")
)

// BufferLen is the buffer a Builder needs for messages of up to maxLen
// bytes: maxLen, or more when one entry alone is longer. The kernel too
// sends an entry longer than sync_maxlen alone in a longer message.
func BufferLen(maxLen int) int {
	return max(maxLen, HeaderLen+MaxConnLen)
}

// ConnLen returns the length of c's version 1 entry, without padding.
func ConnLen(c *Conn) int {
	n := ConnLen4
	if c.CAddr.Is6() {
		n = ConnLen6
	}
	if c.Flags&FlagSeqMask != 0 {
		n += OptHeaderLen + SeqLen
	}
	if len(c.PEData) > 0 {
		n += OptHeaderLen + len(c.PEData)
		if len(c.PEName) > 0 {
			n += OptHeaderLen + len(c.PEName)
		}
	}
	if c.Times != (Times{}) {
		n += OptHeaderLen + TimesLen
	}
	return n
}

// Builder builds one sync message in a caller-owned buffer, packing entries
// as the kernel's master does (ip_vs_sync_conn, ip_vs_sync_conn_v0): each
// version 1 entry starts 4-byte aligned, zero padding goes between entries,
// and an entry is refused with ErrFull when it would take the message past
// maxLen, unless it is the first. Bytes is a complete message after every
// Append. The zero Builder is unusable; call Reset.
type Builder struct {
	buf     []byte
	n       int // bytes written
	count   int
	maxLen  int
	version int
}

// Reset starts an empty message of the given version (0 or 1) with syncID
// in buf, whose length must be at least BufferLen(maxLen).
func (b *Builder) Reset(buf []byte, version int, syncID uint8, maxLen int) error {
	if version != 0 && version != 1 {
		return ErrVersion
	}
	if len(buf) < BufferLen(maxLen) {
		return ErrBufferTooSmall
	}
	*b = Builder{buf: buf, maxLen: maxLen, version: version}
	if version == 0 {
		buf[0], buf[1] = 0, syncID // count, syncid
		b.n = HeaderLenV0
	} else {
		buf[0], buf[1] = 0, syncID // reserved, syncid
		buf[4], buf[5] = 0, Version
		buf[6], buf[7] = 0, 0 // spare
		b.n = HeaderLen
	}
	b.setSize()
	return nil
}

// Len returns the message's length so far.
func (b *Builder) Len() int { return b.n }

// Count returns the number of entries in the message.
func (b *Builder) Count() int { return b.count }

// Bytes returns the message: a subslice of the buffer.
func (b *Builder) Bytes() []byte { return b.buf[:b.n] }

func (b *Builder) setSize() {
	binary.BigEndian.PutUint16(b.buf[2:], uint16(b.n))
	if b.version == 0 {
		b.buf[0] = uint8(b.count)
	} else {
		b.buf[4] = uint8(b.count)
	}
}

// Append adds c to the message. It never allocates.
//
// Like the kernel, it clears FlagHashed, sends the sequence option when
// Flags has FlagSeqMask bits and the pe name only after pe data; then xvs's
// times option when Times is set. A version 0 message carries neither the
// timeout, the fwmark, pe data nor the times, and only the low 16 bits of
// the flags.
func (b *Builder) Append(c *Conn) error {
	v6 := c.CAddr.Is6()
	if !c.CAddr.IsValid() || c.VAddr.Is6() != v6 || c.DAddr.Is6() != v6 || !c.VAddr.IsValid() || !c.DAddr.IsValid() {
		return ErrFamily
	}
	if len(c.PEData) > MaxPEDataLen {
		return ErrPEDataLen
	}
	if len(c.PEName) > MaxPENameLen {
		return ErrPENameLen
	}
	if len(c.PEData) > 0 && len(c.PEName) == 0 {
		return ErrPEDataWithoutName
	}
	if b.version == 0 {
		return b.appendV0(c, v6)
	}
	l := ConnLen(c)
	pad := (4 - b.n) & 3
	if b.count > 0 && (b.n+pad+l > b.maxLen || b.count == MaxConns) {
		return ErrFull
	}
	if b.n+pad+l > len(b.buf) {
		return ErrBufferTooSmall
	}
	p := b.buf[b.n:]
	for i := range pad {
		p[i] = 0
	}
	p = p[pad:]
	if v6 {
		p[0] = typeIPv6
	} else {
		p[0] = 0
	}
	p[1] = c.Protocol
	binary.BigEndian.PutUint16(p[2:], uint16(l)) // version 0 in the high bits
	binary.BigEndian.PutUint32(p[4:], uint32(c.Flags&^FlagHashed))
	binary.BigEndian.PutUint16(p[8:], c.State)
	binary.BigEndian.PutUint16(p[10:], c.CPort)
	binary.BigEndian.PutUint16(p[12:], c.VPort)
	binary.BigEndian.PutUint16(p[14:], c.DPort)
	binary.BigEndian.PutUint32(p[16:], c.FWMark)
	binary.BigEndian.PutUint32(p[20:], c.Timeout)
	o := 24
	if v6 {
		a := c.CAddr.As16()
		o += copy(p[o:], a[:])
		a = c.VAddr.As16()
		o += copy(p[o:], a[:])
		a = c.DAddr.As16()
		o += copy(p[o:], a[:])
	} else {
		a := c.CAddr.As4()
		o += copy(p[o:], a[:])
		a = c.VAddr.As4()
		o += copy(p[o:], a[:])
		a = c.DAddr.As4()
		o += copy(p[o:], a[:])
	}
	if c.Flags&FlagSeqMask != 0 {
		p[o], p[o+1] = OptSeq, SeqLen
		putSeq(p[o+2:], c.InSeq, binary.BigEndian)
		putSeq(p[o+14:], c.OutSeq, binary.BigEndian)
		o += OptHeaderLen + SeqLen
	}
	if len(c.PEData) > 0 {
		p[o], p[o+1] = OptPEData, uint8(len(c.PEData))
		o += OptHeaderLen + copy(p[o+2:], c.PEData)
		if len(c.PEName) > 0 {
			p[o], p[o+1] = OptPEName, uint8(len(c.PEName))
			o += OptHeaderLen + copy(p[o+2:], c.PEName)
		}
	}
	if c.Times != (Times{}) {
		p[o], p[o+1] = OptTimes, TimesLen
		binary.BigEndian.PutUint64(p[o+2:], uint64(c.Times.Queued))
		binary.BigEndian.PutUint64(p[o+10:], uint64(c.Times.Used))
		o += OptHeaderLen + TimesLen
	}
	b.n += pad + o
	b.count++
	b.setSize()
	return nil
}

func (b *Builder) appendV0(c *Conn, v6 bool) error {
	if v6 {
		return ErrV0IPv6
	}
	l := ConnLenV0
	if c.Flags&FlagSeqMask != 0 {
		l += SeqLen
	}
	if b.count > 0 && (b.n+l > b.maxLen || b.count == MaxConns) {
		return ErrFull
	}
	if b.n+l > len(b.buf) {
		return ErrBufferTooSmall
	}
	p := b.buf[b.n:]
	p[0] = 0 // reserved
	p[1] = c.Protocol
	binary.BigEndian.PutUint16(p[2:], c.CPort)
	binary.BigEndian.PutUint16(p[4:], c.VPort)
	binary.BigEndian.PutUint16(p[6:], c.DPort)
	a := c.CAddr.As4()
	copy(p[8:], a[:])
	a = c.VAddr.As4()
	copy(p[12:], a[:])
	a = c.DAddr.As4()
	copy(p[16:], a[:])
	binary.BigEndian.PutUint16(p[20:], uint16(c.Flags&^FlagHashed))
	binary.BigEndian.PutUint16(p[22:], c.State)
	if c.Flags&FlagSeqMask != 0 {
		// The kernel copies its struct in host byte order.
		putSeq(p[24:], c.InSeq, binary.LittleEndian)
		putSeq(p[36:], c.OutSeq, binary.LittleEndian)
	}
	b.n += l
	b.count++
	b.setSize()
	return nil
}

func putSeq(p []byte, s Seq, o binary.ByteOrder) {
	o.PutUint32(p[0:], s.Init)
	o.PutUint32(p[4:], s.Delta)
	o.PutUint32(p[8:], s.PrevDelta)
}

func getSeq(p []byte, o binary.ByteOrder) Seq {
	return Seq{Init: o.Uint32(p[0:]), Delta: o.Uint32(p[4:]), PrevDelta: o.Uint32(p[8:])}
}
