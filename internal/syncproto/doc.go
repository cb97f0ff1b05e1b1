// Package syncproto is the wire format of the Linux IPVS connection
// synchronisation protocol (net/netfilter/ipvs/ip_vs_sync.c): the UDP
// messages a master director multicasts so that its backups hold the same
// connections and persistence templates. It encodes version 1 messages
// (IPv4 and IPv6 entries, timeouts, firewall marks, sequence options, and the
// persistence engine's name and data) and version 0 messages (IPv4 only, as
// sync_version=0 sends them), and decodes both with the kernel's validation
// rules, so that xvs and a kernel IPVS director can back each other up.
//
// # Layout (all integers big-endian)
//
// A version 1 message is an 8-byte header followed by count entries, each
// padded to a multiple of 4 bytes except the last:
//
//	offset size  header field
//	0      1     reserved, 0 (a version 0 receiver reads it as "no entries")
//	1      1     syncid
//	2      2     size: the whole message in bytes, header included
//	4      1     count of entries
//	5      1     version, 1
//	6      2     spare, 0
//
//	offset size  entry field                       IPv6 entry
//	0      1     type: bit 0 set = IPv6            same
//	1      1     protocol (IPPROTO_*)              same
//	2      2     version (high 4 bits, 0) | size   same
//	4      4     flags (IP_VS_CONN_F_*)            same
//	8      2     state                             same
//	10     2     cport                             same
//	12     2     vport                             same
//	14     2     dport                             same
//	16     4     fwmark                            same
//	20     4     timeout in seconds                same
//	24     4     caddr                             24 16 caddr
//	28     4     vaddr                             40 16 vaddr
//	32     4     daddr                             56 16 daddr
//	36     …     options                           72 … options
//
// An entry's size counts the entry and its options, not the padding that
// follows it. Options are {type u8, length u8, data}: [OptSeq] (24 bytes,
// two struct ip_vs_seq), [OptPEData] (1..255 bytes) and [OptPEName]
// (1..16 bytes, no NUL). A type with [OptParamFlag] set is optional: a
// receiver that does not know it skips it; an unknown type without the flag
// drops the entry.
//
// A version 0 message is a 4-byte header {count u8, syncid u8, size u16}
// followed by 24-byte entries {reserved u8, protocol u8, cport, vport, dport
// u16, caddr, vaddr, daddr u32, flags u16, state u16}, each followed by the
// 24-byte sequence option when its flags have [FlagSeqMask] bits. The v0
// sequence option is the sender's struct in host byte order (little-endian
// on every platform that runs directors today).
//
// # Validation
//
// [Decoder] applies exactly the checks of the kernel's ip_vs_process_message,
// ip_vs_process_message_v0 and ip_vs_proc_sync_conn, in the same order, and
// reports each outcome as a [Reason]. Some faults drop one entry and decoding
// goes on ([Reason.Fatal] is false); others drop the rest of the message
// (Fatal is true). Like the kernel, the decoder hands out the entries before
// a fatal fault: a backup applies them as they come. The one check it leaves
// to its caller is the persistence-engine lookup by name ("BACKUP, no %s
// engine found/loaded"), because which engines exist is the caller's
// knowledge; the entry's [Conn.PEName] is there for it.
//
// # Allocation
//
// [Builder] writes into a caller-owned buffer; [Decoder] fills a
// caller-owned [Conn] whose PEName, PEData and seq fields are subslices of
// the message. Neither allocates, so a receiver can run them on every
// datagram.
package syncproto
