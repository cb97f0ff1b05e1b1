package craft

import (
	"fmt"
	"strings"
)

// Dialog parameterises the canned SIP messages: who calls whom, over which
// hosts and ports. The zero value of a field takes the DefaultDialog value.
type Dialog struct {
	CallID   string
	FromHost string // caller's host, also the Via and Contact host
	FromPort int
	ToHost   string // callee's (the virtual service's) host
	ToPort   int
	FromTag  string
	ToTag    string
	Branch   string // Via branch of the request
}

// DefaultDialog returns a dialog between a caller at 192.0.2.10:5060 and
// the virtual service at 198.51.100.1:5060 with the given Call-ID.
func DefaultDialog(callID string) Dialog {
	return Dialog{
		CallID:   callID,
		FromHost: "192.0.2.10",
		FromPort: 5060,
		ToHost:   "198.51.100.1",
		ToPort:   5060,
		FromTag:  "9fxced76sl",
		ToTag:    "8321234356",
		Branch:   "z9hG4bK776asdhds",
	}
}

func (d Dialog) withDefaults() Dialog {
	def := DefaultDialog(d.CallID)
	if d.FromHost == "" {
		d.FromHost = def.FromHost
	}
	if d.FromPort == 0 {
		d.FromPort = def.FromPort
	}
	if d.ToHost == "" {
		d.ToHost = def.ToHost
	}
	if d.ToPort == 0 {
		d.ToPort = def.ToPort
	}
	if d.FromTag == "" {
		d.FromTag = def.FromTag
	}
	if d.ToTag == "" {
		d.ToTag = def.ToTag
	}
	if d.Branch == "" {
		d.Branch = def.Branch
	}
	return d
}

// hostport formats host:port, bracketing IPv6 literals.
func hostport(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

func ipVersion(host string) string {
	if strings.Contains(host, ":") {
		return "IP6"
	}
	return "IP4"
}

// message joins a start line, headers and body, adding a correct
// Content-Length (header name given, "Content-Length" or compact "l").
func message(start string, headers []string, lengthName, body string) []byte {
	var b strings.Builder
	b.WriteString(start + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "%s: %d\r\n\r\n%s", lengthName, len(body), body)
	return []byte(b.String())
}

func (d Dialog) sdp(host string, port int, session string) string {
	v := ipVersion(host)
	return "v=0\r\n" +
		"o=" + session + " 2890844526 2890844526 IN " + v + " " + host + "\r\n" +
		"s=-\r\n" +
		"c=IN " + v + " " + host + "\r\n" +
		"t=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 9 18 101\r\n", port) +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:9 G722/8000\r\n" +
		"a=rtpmap:18 G729/8000\r\n" +
		"a=fmtp:18 annexb=no\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n"
}

func (d Dialog) requestHeaders(method string, cseq int, toTag bool) []string {
	to := "To: <sip:bob@" + d.ToHost + ">"
	if toTag {
		to += ";tag=" + d.ToTag
	}
	return []string{
		"Via: SIP/2.0/UDP " + hostport(d.FromHost, d.FromPort) + ";branch=" + d.Branch + ";rport",
		"Max-Forwards: 70",
		"From: \"Alice\" <sip:alice@" + d.FromHost + ">;tag=" + d.FromTag,
		to,
		"Call-ID: " + d.CallID,
		fmt.Sprintf("CSeq: %d %s", cseq, method),
		"Contact: <sip:alice@" + hostport(d.FromHost, d.FromPort) + ";transport=udp>",
		"User-Agent: xvs-craft/1.0",
	}
}

// Invite returns an INVITE with an SDP offer (about 800 octets).
func (d Dialog) Invite() []byte {
	d = d.withDefaults()
	h := append(d.requestHeaders("INVITE", 1, false),
		"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
		"Supported: replaces, timer, 100rel",
		"Session-Expires: 1800;refresher=uac",
		"Content-Type: application/sdp",
	)
	return message("INVITE sip:bob@"+d.ToHost+" SIP/2.0", h, "Content-Length",
		d.sdp(d.FromHost, 49170, "alice"))
}

// OK returns the 200 OK answering Invite, with an SDP answer.
func (d Dialog) OK() []byte {
	d = d.withDefaults()
	h := []string{
		"Via: SIP/2.0/UDP " + hostport(d.FromHost, d.FromPort) + ";branch=" + d.Branch + ";rport=" +
			fmt.Sprint(d.FromPort) + ";received=" + d.FromHost,
		"From: \"Alice\" <sip:alice@" + d.FromHost + ">;tag=" + d.FromTag,
		"To: <sip:bob@" + d.ToHost + ">;tag=" + d.ToTag,
		"Call-ID: " + d.CallID,
		"CSeq: 1 INVITE",
		"Contact: <sip:bob@" + hostport(d.ToHost, d.ToPort) + ";transport=udp>",
		"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
		"Supported: replaces, timer",
		"Session-Expires: 1800;refresher=uac",
		"Server: xvs-craft/1.0",
		"Content-Type: application/sdp",
	}
	return message("SIP/2.0 200 OK", h, "Content-Length", d.sdp(d.ToHost, 3456, "bob"))
}

// Ack returns the ACK for the 200 OK (a short message without body).
func (d Dialog) Ack() []byte {
	d = d.withDefaults()
	d.Branch += "-ack"
	return message("ACK sip:bob@"+hostport(d.ToHost, d.ToPort)+" SIP/2.0",
		d.requestHeaders("ACK", 1, true), "Content-Length", "")
}

// Bye returns a BYE from the caller ending the dialog.
func (d Dialog) Bye() []byte {
	d = d.withDefaults()
	d.Branch += "-bye"
	return message("BYE sip:bob@"+hostport(d.ToHost, d.ToPort)+" SIP/2.0",
		d.requestHeaders("BYE", 2, true), "Content-Length", "")
}

// Compact returns an INVITE written with compact header names (RFC 3261
// §7.3.3: i Call-ID, v Via, f From, t To, m Contact, l Content-Length, c
// Content-Type), with an SDP body.
func (d Dialog) Compact() []byte {
	d = d.withDefaults()
	h := []string{
		"v: SIP/2.0/UDP " + hostport(d.FromHost, d.FromPort) + ";branch=" + d.Branch,
		"f: <sip:alice@" + d.FromHost + ">;tag=" + d.FromTag,
		"t: <sip:bob@" + d.ToHost + ">",
		"i: " + d.CallID,
		"CSeq: 1 INVITE",
		"m: <sip:alice@" + hostport(d.FromHost, d.FromPort) + ">",
		"c: application/sdp",
	}
	return message("INVITE sip:bob@"+d.ToHost+" SIP/2.0", h, "l", d.sdp(d.FromHost, 49170, "alice"))
}

// NoCallID returns a well-formed MESSAGE request lacking a Call-ID header
// (the persistence engine must fall back for it).
func (d Dialog) NoCallID() []byte {
	d = d.withDefaults()
	var h []string
	for _, l := range d.requestHeaders("MESSAGE", 1, false) {
		if !strings.HasPrefix(l, "Call-ID:") {
			h = append(h, l)
		}
	}
	h = append(h, "Content-Type: text/plain")
	return message("MESSAGE sip:bob@"+d.ToHost+" SIP/2.0", h, "Content-Length", "Watson, come here.")
}

// Options returns an OPTIONS request as a health checker sends it.
func (d Dialog) Options() []byte {
	d = d.withDefaults()
	d.Branch += "-opt"
	h := append(d.requestHeaders("OPTIONS", 1, false), "Accept: application/sdp")
	return message("OPTIONS sip:"+hostport(d.ToHost, d.ToPort)+" SIP/2.0", h, "Content-Length", "")
}

// SIPInvite returns DefaultDialog(callID).Invite().
func SIPInvite(callID string) []byte { return DefaultDialog(callID).Invite() }

// SIP200OK returns DefaultDialog(callID).OK().
func SIP200OK(callID string) []byte { return DefaultDialog(callID).OK() }

// SIPAck returns DefaultDialog(callID).Ack().
func SIPAck(callID string) []byte { return DefaultDialog(callID).Ack() }

// SIPBye returns DefaultDialog(callID).Bye().
func SIPBye(callID string) []byte { return DefaultDialog(callID).Bye() }

// SIPCompact returns DefaultDialog(callID).Compact().
func SIPCompact(callID string) []byte { return DefaultDialog(callID).Compact() }

// SIPNoCallID returns DefaultDialog("").NoCallID().
func SIPNoCallID() []byte { return DefaultDialog("").NoCallID() }

// SIPOptions returns DefaultDialog(callID).Options().
func SIPOptions(callID string) []byte { return DefaultDialog(callID).Options() }
