package packet

// LinkType is the framing in front of the IP datagram. The zero value is
// Ethernet, the framing of the AF_XDP data plane.
type LinkType uint8

const (
	LinkEthernet  LinkType = iota // Ethernet II, optionally 802.1Q/802.1ad tagged
	LinkLinuxSLL                  // Linux cooked capture v1 (DLT_LINUX_SLL, 113), 16-byte header
	LinkLinuxSLL2                 // Linux cooked capture v2 (DLT_LINUX_SLL2, 276), 20-byte header
	LinkNull                      // BSD loopback (DLT_NULL 0, DLT_LOOP 108): 4-byte address family
	LinkRaw                       // raw IP (DLT_RAW 101, and the historic 12 and 14): version nibble
	numLinkTypes
)

var linkNames = [numLinkTypes]string{"ethernet", "linux_sll", "linux_sll2", "null", "raw"}

// String returns a stable lowercase name.
func (l LinkType) String() string {
	if l < numLinkTypes {
		return linkNames[l]
	}
	return "unknown"
}

// DLT numbers from https://www.tcpdump.org/linktypes.html (LINKTYPE_ values as
// written in pcap and pcapng files).
const (
	dltNull      = 0
	dltEthernet  = 1
	dltRawOld    = 12 // DLT_RAW on most BSDs
	dltRawOpen   = 14 // DLT_RAW on OpenBSD
	dltRaw       = 101
	dltLoop      = 108 // like NULL, family in network byte order
	dltLinuxSLL  = 113
	dltLinuxSLL2 = 276
)

// LinkTypeFromDLT maps a capture file's link-layer header type (DLT or
// LINKTYPE number) to a LinkType. It reports false for link types this package
// does not decode.
func LinkTypeFromDLT(dlt int) (LinkType, bool) {
	switch dlt {
	case dltEthernet:
		return LinkEthernet, true
	case dltLinuxSLL:
		return LinkLinuxSLL, true
	case dltLinuxSLL2:
		return LinkLinuxSLL2, true
	case dltNull, dltLoop:
		return LinkNull, true
	case dltRaw, dltRawOld, dltRawOpen:
		return LinkRaw, true
	}
	return 0, false
}
