package sipparse_test

import "strings"

// payloads are SIP datagrams of the shapes a SIP proxy farm sees, written
// for these tests; they feed the allocation test and the parser benchmarks.
var payloads = []struct {
	name string
	data []byte
	want string // Call-ID, "" when there is none
}{
	{"invite", []byte(crlf(`INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com:5060>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, UPDATE, PRACK
Supported: replaces, timer, 100rel
User-Agent: xvs-test/1.0
Content-Type: application/sdp
Content-Length: 262

v=0
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com
s=-
c=IN IP4 192.0.2.101
t=0 0
m=audio 49172 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
`)), "a84b4c76e66710@pc33.atlanta.example.com"},
	{"ack", []byte(crlf(`ACK sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds9
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 ACK
Content-Length: 0

`)), "a84b4c76e66710@pc33.atlanta.example.com"},
	{"200ok", []byte(crlf(`SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
Content-Length: 0

`)), "a84b4c76e66710@pc33.atlanta.example.com"},
	{"compact", []byte(crlf(`BYE sip:alice@pc33.atlanta.example.com SIP/2.0
v: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10
t: Alice <sip:alice@atlanta.example.com>;tag=1928301774
f: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
i: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 231 BYE
l: 0

`)), "a84b4c76e66710@pc33.atlanta.example.com"},
	{"nocallid", []byte(crlf(`OPTIONS sip:carol@chicago.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877
Max-Forwards: 70
To: <sip:carol@chicago.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
CSeq: 63104 OPTIONS
Accept: application/sdp
Content-Length: 0

`)), ""},
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
