package sipparse_test

import (
	"fmt"

	"github.com/xvs-lb/xvs/sipparse"
)

// CallID finds the Call-ID of a SIP datagram, in its long or compact form,
// as a subslice of the payload: no allocation.
func ExampleCallID() {
	invite := []byte("INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n" +
		"i: a84b4c76e66710@pc33.example.com\r\n" +
		"Content-Length: 0\r\n\r\n")
	id, ok := sipparse.CallID(invite)
	fmt.Printf("%s %v\n", id, ok)

	_, ok = sipparse.CallID([]byte("not SIP at all"))
	fmt.Println(ok)
	// Output:
	// a84b4c76e66710@pc33.example.com true
	// false
}

// Scan classifies the start line and finds the Call-ID in one pass, and
// says why there is no usable Call-ID when there is none.
func ExampleScan() {
	m := sipparse.Scan([]byte("SIP/2.0 180 Ringing\r\nCall-ID: 3848276298220188511@atlanta\r\n\r\n"))
	fmt.Println(m.StartLine.Kind == sipparse.KindResponse, m.StartLine.StatusCode, string(m.CallID))

	m = sipparse.Scan([]byte("OPTIONS sip:carol@chicago.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"))
	fmt.Printf("%s %v\n", m.StartLine.MethodToken, m.Status)
	// Output:
	// true 180 3848276298220188511@atlanta
	// OPTIONS no_call_id
}
