package syncproto

import "net/netip"

// Seq is struct ip_vs_seq: the TCP sequence-number adjustment of a NAT
// connection whose payload an application helper (FTP) resized.
type Seq struct {
	Init      uint32 // adjust from this sequence number on
	Delta     uint32 // by this delta
	PrevDelta uint32 // delta before the last resized packet
}

// Conn is one synchronised connection or persistence template: one entry
// of a sync message. All three addresses have the same family; the entry is
// IPv6 when they are IPv6 (an IPv4-mapped IPv6 address is IPv6).
//
// A decoded Conn borrows the message: PEName and PEData are subslices of
// it, valid until the message buffer is reused.
type Conn struct {
	Protocol uint8 // IPPROTO_*; ProtoIP for a fwmark template
	// Flags are the wire flags. A backup derives its own with
	// Flags.ForBackup.
	Flags Flags
	State uint16 // TCP/SCTP/UDP state, or TplNone/TplAssured for a template
	// CAddr:CPort is the client (for a template: the client address AND
	// the persistence netmask, port 0), VAddr:VPort the virtual service
	// (for a fwmark template VAddr is the mark as an IPv4 address),
	// DAddr:DPort the real server.
	CAddr, VAddr, DAddr netip.Addr
	CPort, VPort, DPort uint16
	FWMark              uint32
	// Timeout is the connection's (for a template: the persistence)
	// timeout in seconds. Version 0 does not carry it: 0 after decoding
	// one, and a backup uses the protocol's timeout for the state or, for
	// a template, 3 minutes.
	Timeout uint32
	// InSeq and OutSeq are the sequence option. Builder sends it when Flags
	// has FlagSeqMask bits; Decoder sets HasSeq when the entry carried it.
	InSeq, OutSeq Seq
	HasSeq        bool
	// PEName and PEData are the persistence engine's name (≤ MaxPENameLen
	// bytes) and data (≤ MaxPEDataLen bytes; the SIP Call-ID). Builder
	// sends the name only with data, as the kernel does.
	PEName []byte
	PEData []byte
	// Times is xvs's times option (OptTimes); the zero Times is not sent.
	// Version 1 only.
	Times Times
}

// Times is xvs's times option: Unix times in nanoseconds, 0 = unknown.
type Times struct {
	// Queued is when the master queued the entry for sending (for a new
	// template, when it was created): the backup's sync lag runs from it.
	Queued int64
	// Used is when the master last used the entry: its expiry is Used plus
	// its timeout. (The kernel's backup counts the timeout from when the
	// entry arrives; for an entry re-sent while idle that outlives the
	// master's.)
	Used int64
}

// IPv6 reports whether c is an IPv6 entry.
func (c *Conn) IPv6() bool { return c.CAddr.Is6() }

// Template reports whether c is a persistence template.
func (c *Conn) Template() bool { return c.Flags&FlagTemplate != 0 }
