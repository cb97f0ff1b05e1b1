package syncproto

// Wire sizes and limits (ip_vs_sync.c, include/uapi/linux/ip_vs.h).
const (
	// HeaderLen is a version 1 message header (struct ip_vs_sync_mesg).
	HeaderLen = 8
	// HeaderLenV0 is a version 0 message header (struct ip_vs_sync_mesg_v0).
	HeaderLenV0 = 4
	// ConnLen4 and ConnLen6 are a version 1 entry without options
	// (struct ip_vs_sync_v4 and ip_vs_sync_v6).
	ConnLen4 = 36
	ConnLen6 = 72
	// ConnLenV0 is a version 0 entry (SIMPLE_CONN_SIZE); an entry with
	// sequence data is ConnLenV0+SeqLen (FULL_CONN_SIZE).
	ConnLenV0 = 24
	// SeqLen is the sequence option's data: two struct ip_vs_seq of three
	// 32-bit words (struct ip_vs_sync_conn_options).
	SeqLen = 24
	// OptHeaderLen is an option's type and length bytes.
	OptHeaderLen = 2
	// MaxPEDataLen is IP_VS_PEDATA_MAXLEN, the longest pe data.
	MaxPEDataLen = 255
	// MaxPENameLen is IP_VS_PENAME_MAXLEN: the longest pe name the option
	// carries (the sender sends strnlen(name, 16) bytes, no NUL).
	MaxPENameLen = 16
	// TimesLen is the data of xvs's times option (OptTimes).
	TimesLen = 16
	// MaxConnLen is the longest version 1 entry: IPv6 with sequence data,
	// the longest pe data and the longest pe name. It fits the 12-bit size.
	MaxConnLen = ConnLen6 + OptHeaderLen + SeqLen + OptHeaderLen + MaxPEDataLen + OptHeaderLen + MaxPENameLen +
		OptHeaderLen + TimesLen
	// MaxMessageLen is the largest message the 16-bit size field can
	// describe.
	MaxMessageLen = 65535
	// MaxConns is the most entries a message holds: the count is 8 bits.
	// (The kernel does not check it; with a sync_maxlen above about 9 KB
	// its count could wrap. Builder stops at MaxConns.)
	MaxConns = 255
	// Version is the protocol version version 1 headers carry
	// (SYNC_PROTO_VER).
	Version = 1

	// sizeMask and verShift split an entry's ver_size (SVER_MASK,
	// SVER_SHIFT).
	sizeMask = 0x0fff
	verShift = 12
	// typeIPv6 is the entry type bit for IPv6 (STYPE_F_INET6).
	typeIPv6 = 1
)

// Option types (IPVS_OPT_*).
const (
	OptSeq    = 1 // IPVS_OPT_SEQ_DATA: in_seq and out_seq
	OptPEData = 2 // IPVS_OPT_PE_DATA: the persistence engine's data
	OptPEName = 3 // IPVS_OPT_PE_NAME: the persistence engine's name
	// OptParamFlag marks an option a receiver may skip when it does not
	// know the type (IPVS_OPT_F_PARAM, 1<<(IPVS_OPT_PARAM-1)).
	OptParamFlag = 0x40
	// OptTimes is xvs's own option (Times): when the master queued the
	// entry and when it last used it, two 8-byte Unix times in nanoseconds,
	// so that a backup can measure the sync lag and give the entry the
	// master's expiry. It is an optional parameter (OptParamFlag with type
	// 0x38: 0x78, 'x'): a kernel backup skips it (ip_vs_proc_sync_conn's
	// default case), and Wireshark's dissector reads no options at all. xvs
	// sends it on templates only.
	OptTimes = OptParamFlag | 0x38
)

// Flags are IPVS connection flags (IP_VS_CONN_F_*). Only bits 0..15 were
// meant for backups; version 1 carries 32 bits and the receiver masks them
// with FlagBackupMask.
type Flags uint32

// Connection flags.
const (
	FlagFwdMask   Flags = 0x0007 // forwarding method
	FlagMasq      Flags = 0x0000 // NAT
	FlagLocalNode Flags = 0x0001 // local node
	FlagTunnel    Flags = 0x0002 // IP-in-IP
	FlagDRoute    Flags = 0x0003 // direct routing
	FlagBypass    Flags = 0x0004 // cache bypass
	FlagSync      Flags = 0x0020 // entry created by sync
	FlagHashed    Flags = 0x0040 // hashed entry (never sent)
	FlagNoOutput  Flags = 0x0080 // no output packets
	FlagInactive  Flags = 0x0100 // not established
	FlagOutSeq    Flags = 0x0200 // must do output sequence adjust
	FlagInSeq     Flags = 0x0400 // must do input sequence adjust
	FlagSeqMask   Flags = 0x0600 // either sequence flag: the entry carries sequence data
	FlagNoCPort   Flags = 0x0800 // no client port set yet
	FlagTemplate  Flags = 0x1000 // persistence template, not a connection
	FlagOnePacket Flags = 0x2000 // one-packet scheduling (never synced)
	FlagNFCT      Flags = 1 << 16

	// FlagBackupMask is what a version 1 receiver keeps of an entry's flags
	// (IP_VS_CONN_F_BACKUP_MASK); it then adds FlagSync.
	FlagBackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCPort | FlagTemplate
	// FlagBackupUpdMask is what a received entry may change in a connection
	// the backup already has (IP_VS_CONN_F_BACKUP_UPD_MASK).
	FlagBackupUpdMask = FlagInactive | FlagSeqMask
)

// ForBackup returns the flags a kernel backup gives the connection it
// creates from an entry with wire flags f in a message of the given version:
// version 1 keeps FlagBackupMask, version 0 keeps all 16 bits but
// FlagHashed; both add FlagSync.
func (f Flags) ForBackup(version int) Flags {
	if version == 0 {
		return (f | FlagSync) &^ FlagHashed
	}
	return f&FlagBackupMask | FlagSync
}

// IP protocol numbers the kernel's sync receiver knows (ip_vs_proto_get),
// and IPPROTO_IP, which fwmark templates carry.
const (
	ProtoIP   = 0
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoESP  = 50
	ProtoAH   = 51
	ProtoSCTP = 132
)

// TCP states (IP_VS_TCP_S_*).
const (
	TCPNone uint16 = iota
	TCPEstablished
	TCPSynSent
	TCPSynRecv
	TCPFinWait
	TCPTimeWait
	TCPClose
	TCPCloseWait
	TCPLastAck
	TCPListen
	TCPSynAck
	tcpLast
)

// UDPNormal is the one UDP state (IP_VS_UDP_S_NORMAL); AH and ESP also
// have one state.
const UDPNormal uint16 = 0

// SCTP states (enum ip_vs_sctp_states).
const (
	SCTPNone uint16 = iota
	SCTPInit1
	SCTPInit
	SCTPCookieSent
	SCTPCookieReplied
	SCTPCookieWait
	SCTPCookie
	SCTPCookieEchoed
	SCTPEstablished
	SCTPShutdownSent
	SCTPShutdownReceived
	SCTPShutdownAckSent
	SCTPRejected
	SCTPClosed
	sctpLast
)

// Template states (IP_VS_CTPL_S_*): a template's state is NONE or ASSURED
// (a reply has been seen).
const (
	TplNone    uint16 = 0
	TplAssured uint16 = 1
	tplLast    uint16 = 2
)

// NumStates returns how many states a connection of protocol proto has
// (struct ip_vs_protocol's num_states), and false for a protocol the
// kernel's sync receiver does not know.
func NumStates(proto uint8) (int, bool) {
	switch proto {
	case ProtoTCP:
		return int(tcpLast), true
	case ProtoUDP, ProtoAH, ProtoESP:
		return 1, true
	case ProtoSCTP:
		return int(sctpLast), true
	}
	return 0, false
}
