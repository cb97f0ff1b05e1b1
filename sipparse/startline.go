package sipparse

// Kind says what a start line is.
type Kind uint8

const (
	// KindInvalid: neither a well-formed request line nor a status line.
	KindInvalid Kind = iota
	// KindRequest: Method SP Request-URI SP SIP/2.0.
	KindRequest
	// KindResponse: SIP/2.0 SP Status-Code [SP Reason-Phrase].
	KindResponse
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// Method is a request method. Methods are case-sensitive (RFC 3261 §7.1):
// "invite" is MethodOther.
type Method uint8

const (
	MethodNone Method = iota // not a request
	MethodInvite
	MethodAck
	MethodBye
	MethodCancel
	MethodOptions
	MethodRegister
	MethodPrack
	MethodSubscribe
	MethodNotify
	MethodPublish
	MethodInfo
	MethodRefer
	MethodMessage
	MethodUpdate
	MethodOther // a well-formed request with any other method token

	// NumMethod is the number of Method values, to size counter arrays.
	NumMethod = iota
)

var methodNames = [NumMethod]string{
	MethodNone:      "none",
	MethodInvite:    "INVITE",
	MethodAck:       "ACK",
	MethodBye:       "BYE",
	MethodCancel:    "CANCEL",
	MethodOptions:   "OPTIONS",
	MethodRegister:  "REGISTER",
	MethodPrack:     "PRACK",
	MethodSubscribe: "SUBSCRIBE",
	MethodNotify:    "NOTIFY",
	MethodPublish:   "PUBLISH",
	MethodInfo:      "INFO",
	MethodRefer:     "REFER",
	MethodMessage:   "MESSAGE",
	MethodUpdate:    "UPDATE",
	MethodOther:     "other",
}

// String returns the method name as sent on the wire for the known methods,
// and "none" or "other" otherwise.
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "invalid"
}

// Status codes a response may carry (RFC 3261 §7.2 classes 1xx..6xx).
const (
	MinStatusCode = 100
	MaxStatusCode = 699
)

// StartLine is the classified first line of a SIP message.
type StartLine struct {
	Kind   Kind
	Method Method // for requests; MethodNone otherwise
	// MethodToken is the method as sent, a subslice of the payload; nil
	// unless Kind is KindRequest.
	MethodToken []byte
	StatusCode  uint16 // for responses, MinStatusCode..MaxStatusCode; else 0
}

// ParseStartLine classifies the first line of the SIP message in a UDP
// payload without allocating. A payload that Scan reports as StatusNotSIP or
// StatusKeepalive, or whose first line is malformed, gives KindInvalid.
func ParseStartLine(payload []byte) StartLine {
	s := newScanner(payload)
	end, _, st := s.firstLine()
	if st != StatusOK {
		return StartLine{}
	}
	return classify(payload[:end])
}

// sipVersion is the only SIP-Version in use; "SIP" is compared without
// regard to case (RFC 3261 §7.1, ABNF strings are case-insensitive).
const (
	sipVersion    = "SIP/2.0"
	sipVersionLen = len(sipVersion)
)

func isSIPVersion(b []byte) bool {
	return len(b) == sipVersionLen && b[0]|0x20 == 's' && b[1]|0x20 == 'i' && b[2]|0x20 == 'p' &&
		string(b[3:]) == sipVersion[3:]
}

// classify parses one start line, without its line end.
func classify(line []byte) StartLine {
	// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase. A missing
	// reason phrase (and its SP) is accepted, as many stacks send one.
	if len(line) > sipVersionLen && isSIPVersion(line[:sipVersionLen]) {
		d := line[sipVersionLen:]
		if len(d) < 4 || d[0] != ' ' || !isDigit(d[1]) || !isDigit(d[2]) || !isDigit(d[3]) ||
			(len(d) > 4 && d[4] != ' ') {
			return StartLine{}
		}
		code := uint16(d[1]-'0')*100 + uint16(d[2]-'0')*10 + uint16(d[3]-'0')
		if code < MinStatusCode || code > MaxStatusCode {
			return StartLine{}
		}
		return StartLine{Kind: KindResponse, StatusCode: code}
	}
	// Request-Line = Method SP Request-URI SP SIP-Version.
	m := 0
	for m < len(line) && isToken(line[m]) {
		m++
	}
	if m == 0 || m == len(line) || line[m] != ' ' {
		return StartLine{}
	}
	rest := line[m+1:]
	n := len(rest) - sipVersionLen - 1 // Request-URI length
	if n < 1 || rest[n] != ' ' || !isSIPVersion(rest[n+1:]) || !isURI(rest[:n]) {
		return StartLine{}
	}
	tok := line[:m:m]
	return StartLine{Kind: KindRequest, Method: lookupMethod(tok), MethodToken: tok}
}

// isURI reports whether b can be a Request-URI: visible ASCII only, so no
// SP, control byte or non-ASCII byte.
func isURI(b []byte) bool {
	for _, c := range b {
		if !isValue(c) {
			return false
		}
	}
	return true
}

func lookupMethod(tok []byte) Method {
	switch string(tok) {
	case "INVITE":
		return MethodInvite
	case "ACK":
		return MethodAck
	case "BYE":
		return MethodBye
	case "CANCEL":
		return MethodCancel
	case "OPTIONS":
		return MethodOptions
	case "REGISTER":
		return MethodRegister
	case "PRACK":
		return MethodPrack
	case "SUBSCRIBE":
		return MethodSubscribe
	case "NOTIFY":
		return MethodNotify
	case "PUBLISH":
		return MethodPublish
	case "INFO":
		return MethodInfo
	case "REFER":
		return MethodRefer
	case "MESSAGE":
		return MethodMessage
	case "UPDATE":
		return MethodUpdate
	}
	return MethodOther
}
