package syncproto

import (
	"encoding/binary"
	"net/netip"
)

// Reason is the outcome of decoding a message header or one entry. The
// names follow the kernel's log messages (ip_vs_sync.c), quoted in each
// constant's comment.
type Reason uint8

// Outcomes. Message-level reasons ([Reason.Fatal]) drop the rest of the
// message; entry-level ones drop one entry.
const (
	// OK: the entry is valid; apply it.
	OK Reason = iota
	// Done: no entries remain.
	Done

	// ShortHeader: fewer than 4 bytes ("message header too short").
	ShortHeader
	// BadSize: the header's size is not the datagram's length ("bogus
	// message size"). A datagram longer than the receive buffer is
	// truncated to it and fails here too.
	BadSize
	// SyncIDMismatch: the backup has a syncid other than 0 and the message
	// another one ("Ignoring syncid"). Decoder does not check it; the
	// receiver does, between Reset and the first Next.
	SyncIDMismatch
	// Truncated: an entry (v1: its fixed part; v0: the entry or its
	// sequence option) extends past the message ("Dropping buffer, too
	// small", "v0, bogus conn", "v0, Dropping buffer bogus conn options").
	Truncated
	// EntryOverrun: an entry's size extends past the message ("Dropping
	// buffer, msg > buffer").
	EntryOverrun
	// BadEntryVersion: an entry's version bits are not 0 ("Dropping
	// buffer, Unknown version").
	BadEntryVersion
	// BadType: an entry type other than 0 (IPv4) or with bit 0 (IPv6)
	// (error -10 "in decoding").
	BadType
	// EntryTooShort: an entry's size is shorter than its fixed part
	// (error -20).
	EntryTooShort
	// BadOptionHeader: an option's type and length bytes extend past the
	// entry (error -30).
	BadOptionHeader
	// BadOptionLength: an option of length 0, or extending past the entry
	// (error -40).
	BadOptionLength
	// BadSeqOption: a sequence option not 24 bytes long, or a second one
	// ("bogus conn options length", "conn options found twice"; -50).
	BadSeqOption
	// BadPEDataOption: a second pe data option ("Par.data found twice";
	// -60).
	BadPEDataOption
	// BadPENameOption: a pe name longer than 16 bytes, or a second one
	// ("bogus par.data len > 16", "Par.data found twice"; -70).
	BadPENameOption

	// UnknownOption: an option type the receiver does not know, without
	// OptParamFlag ("Unknown mandatory param %d found").
	UnknownOption
	// UnsupportedProtocol: a connection (not a template) of a protocol
	// IPVS does not balance ("Unsupported protocol %u").
	UnsupportedProtocol
	// BadState: a state number the protocol (or a template) does not have
	// ("Invalid %s state %u", "Invalid tpl state %u").
	BadState
	// PEDataWithoutName: pe data but no pe name ("Invalid PE
	// parameters").
	PEDataWithoutName
	// UnknownPE: a pe name the backup has no engine for ("no %s engine
	// found/loaded"). Decoder does not check it; the receiver does.
	UnknownPE

	// NumReasons bounds Reason, for arrays of counters indexed by it.
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:                  "ok",
	Done:                "done",
	ShortHeader:         "short header",
	BadSize:             "bad size",
	SyncIDMismatch:      "syncid mismatch",
	Truncated:           "truncated",
	EntryOverrun:        "entry past message end",
	BadEntryVersion:     "bad entry version",
	BadType:             "bad entry type",
	EntryTooShort:       "entry too short",
	BadOptionHeader:     "bad option header",
	BadOptionLength:     "bad option length",
	BadSeqOption:        "bad seq option",
	BadPEDataOption:     "bad pe data option",
	BadPENameOption:     "bad pe name option",
	UnknownOption:       "unknown mandatory option",
	UnsupportedProtocol: "unsupported protocol",
	BadState:            "bad state",
	PEDataWithoutName:   "pe data without pe name",
	UnknownPE:           "unknown pe",
}

// String returns the reason's name, for logs and metric labels.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "reason?"
}

// Fatal reports whether r drops the rest of the message (the kernel's
// "Dropping buffer" and negative decoding errors), as opposed to one entry.
func (r Reason) Fatal() bool { return r >= ShortHeader && r <= BadPENameOption }

// Header is a decoded message header.
type Header struct {
	Version int   // 0 or 1
	SyncID  uint8 // the sender's syncid
	Count   int   // entries the header announces
	Size    int   // the message length
}

// Decoder decodes one message at a time, entry by entry, with the kernel's
// rules. The zero Decoder is ready for Reset.
type Decoder struct {
	msg     []byte
	off     int // the next entry
	left    int // entries left
	version int
}

// Reset starts decoding msg, one whole datagram. It returns the header and
// OK, or ShortHeader or BadSize, in which case Next returns Done.
//
// A message is version 1 when its version byte is 1 and its reserved and
// spare fields are 0; anything else is decoded as version 0, as the kernel
// does (a version 1 message with a non-zero spare field therefore counts
// as a version 0 message of 0 entries).
func (d *Decoder) Reset(msg []byte) (Header, Reason) {
	*d = Decoder{msg: msg}
	if len(msg) < HeaderLenV0 {
		return Header{}, ShortHeader
	}
	h := Header{SyncID: msg[1], Size: int(binary.BigEndian.Uint16(msg[2:]))}
	if h.Size != len(msg) {
		return h, BadSize
	}
	if len(msg) >= HeaderLen && msg[5] == Version && msg[0] == 0 && msg[6] == 0 && msg[7] == 0 {
		h.Version, h.Count = 1, int(msg[4])
		d.off = HeaderLen
	} else {
		h.Version, h.Count = 0, int(msg[0])
		d.off = HeaderLenV0
	}
	d.version, d.left = h.Version, h.Count
	return h, OK
}

// Next decodes the next entry into c. It returns OK (apply c), an
// entry-level reason (c is dropped; call Next again), a fatal reason (the
// rest of the message is dropped; Next then returns Done) or Done. After a
// drop, c holds what was decoded before the fault. Next never allocates.
func (d *Decoder) Next(c *Conn) Reason {
	if d.left <= 0 {
		return Done
	}
	var r Reason
	if d.version == 0 {
		r = d.nextV0(c)
	} else {
		r = d.nextV1(c)
	}
	if r.Fatal() {
		d.left = 0
	}
	return r
}

func (d *Decoder) nextV1(c *Conn) Reason {
	m, p := d.msg, d.off
	if p+ConnLen4 > len(m) {
		return Truncated
	}
	vs := binary.BigEndian.Uint16(m[p+2:])
	size := int(vs & sizeMask)
	if p+size > len(m) {
		return EntryOverrun
	}
	if vs>>verShift != 0 {
		return BadEntryVersion
	}
	d.left--
	d.off = p + (size+3)&^3 // the next entry is 4-byte aligned
	return decodeEntry(c, m[p:], size)
}

// decodeEntry is ip_vs_proc_sync_conn for the version 1 entry of the given
// size at the start of m (which holds at least ConnLen4 bytes): like the
// kernel, it reads the type even when the size is shorter.
func decodeEntry(c *Conn, m []byte, size int) Reason {
	*c = Conn{}
	fixed := ConnLen4
	switch {
	case m[0]&typeIPv6 != 0:
		fixed = ConnLen6
	case m[0] != 0:
		return BadType
	}
	if fixed > size {
		return EntryTooShort
	}
	e := m[:size]
	c.Protocol = e[1]
	c.Flags = Flags(binary.BigEndian.Uint32(e[4:]))
	c.State = binary.BigEndian.Uint16(e[8:])
	c.CPort = binary.BigEndian.Uint16(e[10:])
	c.VPort = binary.BigEndian.Uint16(e[12:])
	c.DPort = binary.BigEndian.Uint16(e[14:])
	c.FWMark = binary.BigEndian.Uint32(e[16:])
	c.Timeout = binary.BigEndian.Uint32(e[20:])
	if fixed == ConnLen6 {
		c.CAddr = netip.AddrFrom16([16]byte(e[24:40]))
		c.VAddr = netip.AddrFrom16([16]byte(e[40:56]))
		c.DAddr = netip.AddrFrom16([16]byte(e[56:72]))
	} else {
		c.CAddr = netip.AddrFrom4([4]byte(e[24:28]))
		c.VAddr = netip.AddrFrom4([4]byte(e[28:32]))
		c.DAddr = netip.AddrFrom4([4]byte(e[32:36]))
	}

	var name, data []byte
	for p := fixed; p < len(e); {
		if p+OptHeaderLen > len(e) {
			return BadOptionHeader
		}
		typ, l := e[p], int(e[p+1])
		p += OptHeaderLen
		if l == 0 || p+l > len(e) {
			return BadOptionLength
		}
		if typ == OptTimes && l == TimesLen {
			// xvs's optional parameter: the kernel skips it.
			c.Times = Times{Queued: int64(binary.BigEndian.Uint64(e[p:])), Used: int64(binary.BigEndian.Uint64(e[p+8:]))}
			p += l
			continue
		}
		switch typ &^ OptParamFlag {
		case OptSeq:
			if l != SeqLen || c.HasSeq {
				return BadSeqOption
			}
			c.InSeq = getSeq(e[p:], binary.BigEndian)
			c.OutSeq = getSeq(e[p+12:], binary.BigEndian)
			c.HasSeq = true
		case OptPEData:
			if data != nil {
				return BadPEDataOption
			}
			data = e[p : p+l]
		case OptPEName:
			if l > MaxPENameLen || name != nil {
				return BadPENameOption
			}
			name = e[p : p+l]
		default:
			if typ&OptParamFlag == 0 {
				return UnknownOption
			}
		}
		p += l
	}
	c.PEName, c.PEData = name, data
	if r := checkState(c.Protocol, c.Flags.ForBackup(1), c.State); r != OK {
		return r
	}
	if len(data) > 0 && len(name) == 0 {
		return PEDataWithoutName
	}
	return OK
}

// checkState is the protocol and state check both versions make.
func checkState(proto uint8, flags Flags, state uint16) Reason {
	if flags&FlagTemplate != 0 {
		if state >= tplLast {
			return BadState
		}
		return OK
	}
	n, ok := NumStates(proto)
	if !ok {
		return UnsupportedProtocol
	}
	if int(state) >= n {
		return BadState
	}
	return OK
}

func (d *Decoder) nextV0(c *Conn) Reason {
	m, p := d.msg, d.off
	if p+ConnLenV0 > len(m) {
		return Truncated
	}
	*c = Conn{}
	e := m[p:]
	c.Flags = Flags(binary.BigEndian.Uint16(e[20:]))
	l := ConnLenV0
	if c.Flags&FlagSeqMask != 0 {
		l += SeqLen
		if p+l > len(m) {
			return Truncated
		}
		c.InSeq = getSeq(e[24:], binary.LittleEndian)
		c.OutSeq = getSeq(e[36:], binary.LittleEndian)
		c.HasSeq = true
	}
	d.left--
	d.off = p + l
	c.Protocol = e[1]
	c.CPort = binary.BigEndian.Uint16(e[2:])
	c.VPort = binary.BigEndian.Uint16(e[4:])
	c.DPort = binary.BigEndian.Uint16(e[6:])
	c.CAddr = netip.AddrFrom4([4]byte(e[8:12]))
	c.VAddr = netip.AddrFrom4([4]byte(e[12:16]))
	c.DAddr = netip.AddrFrom4([4]byte(e[16:20]))
	c.State = binary.BigEndian.Uint16(e[22:])
	return checkState(c.Protocol, c.Flags.ForBackup(0), c.State)
}
