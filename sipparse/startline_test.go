package sipparse_test

import (
	"testing"

	"github.com/xvs-lb/xvs/sipparse"
)

func TestParseStartLine(t *testing.T) {
	tests := []struct {
		line   string
		kind   sipparse.Kind
		method sipparse.Method
		token  string
		code   uint16
	}{
		{"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodInvite, "INVITE", 0},
		{"ACK sip:bob@192.0.2.4 SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodAck, "ACK", 0},
		{"BYE sip:a SIP/2.0\n", sipparse.KindRequest, sipparse.MethodBye, "BYE", 0},
		{"CANCEL sip:a SIP/2.0\r", sipparse.KindRequest, sipparse.MethodCancel, "CANCEL", 0},
		{"OPTIONS sip:a sip/2.0\r\n", sipparse.KindRequest, sipparse.MethodOptions, "OPTIONS", 0},
		{"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodRegister, "REGISTER", 0},
		{"PRACK sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodPrack, "PRACK", 0},
		{"SUBSCRIBE sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodSubscribe, "SUBSCRIBE", 0},
		{"NOTIFY sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodNotify, "NOTIFY", 0},
		{"PUBLISH sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodPublish, "PUBLISH", 0},
		{"INFO sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodInfo, "INFO", 0},
		{"REFER sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodRefer, "REFER", 0},
		{"MESSAGE sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodMessage, "MESSAGE", 0},
		{"UPDATE sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodUpdate, "UPDATE", 0},
		{"invite sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodOther, "invite", 0},
		{"RE%47IST%45R sip:a SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodOther, "RE%47IST%45R", 0},
		{"DBREGISTER sip:1.1.1.1:5060 SIP/2.0\r\n", sipparse.KindRequest, sipparse.MethodOther, "DBREGISTER", 0},
		{"SIP/2.0 200 OK\r\n", sipparse.KindResponse, sipparse.MethodNone, "", 200},
		{"SIP/2.0 100 Giving a try\r\n", sipparse.KindResponse, sipparse.MethodNone, "", 100},
		{"SIP/2.0 699 \r\n", sipparse.KindResponse, sipparse.MethodNone, "", 699},
		{"SIP/2.0 488\r\n", sipparse.KindResponse, sipparse.MethodNone, "", 488},
		{"sip/2.0 180 Ringing\n", sipparse.KindResponse, sipparse.MethodNone, "", 180},
		// Malformed.
		{"SIP/2.0 099 Low\r\n", sipparse.KindInvalid, 0, "", 0},
		{"SIP/2.0 700 High\r\n", sipparse.KindInvalid, 0, "", 0},
		{"SIP/2.0 20 OK\r\n", sipparse.KindInvalid, 0, "", 0},
		{"SIP/2.0 2000 OK\r\n", sipparse.KindInvalid, 0, "", 0},
		{"SIP/2.0  200 OK\r\n", sipparse.KindInvalid, 0, "", 0},
		{"SIP/3.0 200 OK\r\n", sipparse.KindInvalid, 0, "", 0},
		{"HTTP/1.1 200 OK\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:alan@jasomi.com\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE  sip:a SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:a  SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:a b SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:\x01 SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:a SIP/2.0 \r\n", sipparse.KindInvalid, 0, "", 0},
		{"INV@TE sip:a SIP/2.0\r\n", sipparse.KindInvalid, 0, "", 0},
		{"INVITE sip:a SIP/2.0", sipparse.KindInvalid, 0, "", 0}, // no line end
		{"\r\n\r\n", sipparse.KindInvalid, 0, "", 0},
		{"", sipparse.KindInvalid, 0, "", 0},
	}
	for _, tt := range tests {
		p := []byte(tt.line)
		got := sipparse.ParseStartLine(p)
		if got.Kind != tt.kind || got.Method != tt.method || string(got.MethodToken) != tt.token || got.StatusCode != tt.code {
			t.Errorf("ParseStartLine(%q) = %v %v %q %d; want %v %v %q %d", tt.line,
				got.Kind, got.Method, got.MethodToken, got.StatusCode, tt.kind, tt.method, tt.token, tt.code)
		}
		if got.Kind == sipparse.KindRequest && (&got.MethodToken[0] != &p[0] || cap(got.MethodToken) != len(got.MethodToken)) {
			t.Errorf("ParseStartLine(%q): MethodToken is not a capped prefix of the payload", tt.line)
		}
		if m := sipparse.Scan(p); m.StartLine.Kind != got.Kind || m.StartLine.Method != got.Method || m.StartLine.StatusCode != got.StatusCode {
			t.Errorf("Scan(%q).StartLine = %+v, ParseStartLine = %+v", tt.line, m.StartLine, got)
		}
	}
}

func TestEnumNames(t *testing.T) {
	for m := range sipparse.Method(sipparse.NumMethod) {
		if m > sipparse.MethodNone && m < sipparse.MethodOther {
			line := []byte(m.String() + " sip:a SIP/2.0\r\n")
			if got := sipparse.ParseStartLine(line).Method; got != m {
				t.Errorf("%s parses as %v", m, got)
			}
		}
	}
	if sipparse.Method(sipparse.NumMethod).String() != "invalid" || sipparse.MethodOther.String() != "other" {
		t.Error("method names")
	}
	if sipparse.KindRequest.String() != "request" || sipparse.KindResponse.String() != "response" || sipparse.KindInvalid.String() != "invalid" {
		t.Error("kind names")
	}
}
