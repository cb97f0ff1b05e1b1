// Package sipparse finds the Call-ID of a SIP message carried in one UDP
// datagram, and classifies its start line, without allocating.
//
// It is the parser behind the SIP persistence engine: the Call-ID it returns
// becomes the "pe data" of an IPVS-style persistence template, so every
// datagram of a call reaches the same real server. Everything it returns is a
// subslice of the caller's payload (no copy); it is valid as long as the
// caller keeps those bytes unchanged, and must be copied before the frame
// goes back to its ring.
//
// # What it finds
//
// [CallID] and [Scan] look for the first header whose name is Call-ID (long
// form) or i (compact form), in any letter case, and return its value:
//
//   - The start line (request or status line) is never a header: the search
//     begins on the second line.
//   - Lines end in CRLF, LF or CR. The start line's terminator sets the style
//     of the message: in a CRLF or LF message (the two mix freely) every LF
//     ends a line; in a CR-only message (RFC 2543) every CR, or CRLF, does.
//   - Whitespace (SP, HT) and header folding (a line end followed by SP or HT)
//     are allowed between the name and the colon and between the colon and
//     the value.
//   - The value is a run of visible ASCII characters (0x21..0x7E), at most
//     [MaxCallIDLen] bytes. Trailing whitespace, and folded continuation lines
//     holding only whitespace, are not part of it. The value must be ended by
//     a line end inside the datagram.
//   - The search stops at the end of the header section (the first empty
//     line), at the first Call-ID header, or after [MaxScan] bytes; the body
//     (SDP's "i=" lines, say) is never examined.
//
// When no usable Call-ID is found, [Scan] says why in a [Status] whose names
// are stable metric labels; callers count them in an array indexed by Status.
//
// # Hostile values
//
// The Call-ID becomes a template key and is printed by
// "xvsadm -Lcn --persistent-conn", which separates columns with spaces and
// writes the bytes raw. So:
//
//   - internal whitespace ("a b"), including a value folded onto a second
//     line ("a\r\n b"), is rejected with [StatusBadChar]: RFC 3261 forbids it
//     (callid = word ["@" word]) and it would split the listing's columns;
//   - control bytes (0x00..0x1F, 0x7F), bytes above 0x7E (not ASCII, and
//     0x80..0x9F are C1 controls on some terminals) and a bare CR inside a
//     CRLF line are rejected with [StatusBadChar];
//   - any other visible character is accepted, including ones RFC 3261's
//     "word" lacks (, ; = # $ & ^ |) and a second "@": a Call-ID is an opaque
//     string every element of a dialog copies byte for byte (RFC 3261
//     §8.1.1.4, §12.1), so any printable value identifies the call, and
//     refusing it would only push the call off Call-ID persistence;
//   - for the same reason "x@" and "@x" are accepted as they are.
//
// # Differences from the Linux kernel
//
// The kernel's SIP persistence engine (ip_vs_pe_sip.c get_callid with
// nf_conntrack_sip.c ct_sip_get_header and callid_len; the current iswordc,
// which accepts ' and rejects ,) differs as follows. In short: when the kernel
// takes a Call-ID from the first Call-ID header of the header section,
// sipparse returns the same bytes, unless that value is ended by a bare CR
// inside a CRLF/LF message or lies beyond MaxScan; and sipparse also accepts
// well-formed messages the kernel drops (trailing whitespace, characters
// outside "word", decoy headers before the Call-ID).
//
//	case                                   kernel                        sipparse                      why
//	value charset                          iswordc: alnum and            0x21..0x7E                     opaque key; the kernel's set is RFC 3261
//	                                       !"%()*+-./:<>?[\]_`{}~'       (visible ASCII)                "word", which real UAs do not all honour
//	word ["@" word] grammar                enforced                      not enforced                  same; a grammar miss is still one call
//	"x@" / "@x"                            length 0: skipped, next       accepted as is                deterministic key for the whole dialog
//	                                       Call-ID header tried
//	trailing SP/HT before the line end     value rejected (drop)         trimmed, value accepted       RFC 3261 allows LWS there (SWS)
//	whitespace-only folded continuation    value rejected                accepted                      it is trailing LWS
//	internal whitespace / folded value     rejected (word stops early)   rejected, StatusBadChar       same outcome, counted
//	value followed by a bare CR (CRLF msg) accepted, value ends at CR    rejected, StatusBadChar       a bare CR inside a CRLF line is not a line end
//	name then no colon ("Call-ID x",       the whole search stops:       that line is skipped,         a malformed or unrelated header must not
//	"Call-ID-Ext: x", "i-x: y")            no Call-ID                    search goes on                hide the real Call-ID
//	"Call-IDx: y" (longer name)            prefix match, then the        not a Call-ID header,         header names are tokens compared whole
//	                                       missing colon stops search    search goes on
//	several Call-ID headers                first well-formed one wins    the first one decides         RFC 3261 allows one; no second look
//	Call-ID after the blank line (body)    found (whole datagram)        not searched                  headers end at the blank line
//	scan length                            whole datagram (≤ 64 KiB)     MaxScan bytes, then           bounded per-packet work
//	                                                                     StatusScanLimit
//	line ends                              any CR or LF                  start line's style            vector line search (see below)
//	value > 255 bytes / at datagram end    rejected                      rejected (StatusTooLong,      same (IP_VS_PEDATA_MAXLEN)
//	                                                                     StatusUnterminated)
//	TAB around the colon                   accepted (old kernels: no)    accepted                      RFC 3261 LWS
//	start line                             never a header                never a header                same; must start with a token
//	                                                                                                   character, else StatusNotSIP
//	no Call-ID usable                      packet dropped                caller falls back (pe)        fallback by default, --pe-strict drops (README)
//
// # Speed
//
// The search visits only the lines that can matter: one vector pass finds
// the next line starting with C, c, I, i, CR or LF, skipping the lines in
// between without a branch or a call each; the start line's end and the
// value's end are vector searches too. On amd64 they run 16 bytes per step
// (SSE2) or 32 (AVX2, for the line search, when the CPU has it); elsewhere
// bytes.IndexByte per line and eight bytes per step for the value. The
// results are the same whichever runs (FuzzOldNew checks them against the
// scanner before this search, and each search against its byte-by-byte
// definition).
//
// The start line is classified by [ParseStartLine] (also part of [Scan]): a
// request with its method ([Method], plus the method bytes as sent) or a
// response with its status code (100..699). [CallID] does not require a
// well-formed start line, only a line beginning with a token character, as a
// SIP stack that answers a slightly odd request still needs the call's
// datagrams on one server.
package sipparse
