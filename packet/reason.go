package packet

// Reason is the outcome of Decode: ReasonOK, or the first check a frame
// failed. Reasons are small consecutive integers so that counters can be an
// array of NumReasons elements. New reasons are added at the end, so existing
// values do not change.
type Reason uint8

const (
	ReasonOK                   Reason = iota // every header up to the L4 payload decoded
	ReasonTruncated                          // the frame ends inside a link, VLAN, PPPoE or IP header
	ReasonBadLinkType                        // the LinkType passed to Decode is not one of ours
	ReasonUnknownEtherType                   // neither IPv4 nor IPv6 after the VLAN tags, or in the PPPoE session (LCP, IPCP…)
	ReasonTooManyVLANs                       // more than MaxVLANs VLAN tags
	ReasonUnknownAddressFamily               // a NULL/loopback header with a family that is not IPv4/IPv6
	ReasonBadIPVersion                       // the version nibble disagrees with the EtherType (or is not 4/6 on raw IP)
	ReasonBadIHL                             // IPv4 header length below 20 bytes
	ReasonBadTotalLength                     // IP total/payload length below the header or beyond the frame, or an IPv6 jumbogram
	ReasonBadExtHeader                       // IPv6 extension-header chain truncated, misordered, repeated or longer than MaxIPv6ExtHeaders
	ReasonNonFirstFragment                   // a fragment with a non-zero offset: no L4 header, no ports
	ReasonBadUDPLength                       // UDP header does not fit, or its length disagrees with the IP length
	ReasonBadTCPOffset                       // TCP header does not fit, or its data offset is below 5 words
	ReasonUnsupportedProto                   // the L4 protocol is neither UDP nor TCP (L4Off is set)
	ReasonBadPPPoE                           // PPPoE version/type not 1/1, code not session data, or length below 2 or beyond the frame
	NumReasons                               // number of reasons, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonOK:                   "ok",
	ReasonTruncated:            "truncated",
	ReasonBadLinkType:          "bad_link_type",
	ReasonUnknownEtherType:     "unknown_ethertype",
	ReasonTooManyVLANs:         "too_many_vlans",
	ReasonUnknownAddressFamily: "unknown_address_family",
	ReasonBadIPVersion:         "bad_ip_version",
	ReasonBadIHL:               "bad_ihl",
	ReasonBadTotalLength:       "bad_total_length",
	ReasonBadExtHeader:         "bad_ext_header",
	ReasonNonFirstFragment:     "non_first_fragment",
	ReasonBadUDPLength:         "bad_udp_length",
	ReasonBadTCPOffset:         "bad_tcp_offset",
	ReasonUnsupportedProto:     "unsupported_proto",
	ReasonBadPPPoE:             "bad_pppoe",
}

// String returns a stable snake_case name usable as a metric label. It does
// not allocate.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
