package pe_test

import (
	"fmt"

	"github.com/xvs-lb/xvs/pe"
)

// A service binds its engine by name (ipvsadm --pe sip). The engine turns a
// datagram into the key that keeps a call on one real server: for SIP, the
// Call-ID. Show prints a key safely (ipvsadm -Lcn --persistent-conn).
func ExampleLookup() {
	e, id, ok := pe.Lookup("sip")
	fmt.Println(ok, id == pe.SIPID, e.Name())

	bye := []byte("BYE sip:alice@192.0.2.4 SIP/2.0\r\nCall-ID: a84b4c76e66710\r\n\r\n")
	scratch := make([]byte, pe.MaxDataLen) // for engines that build their key
	key, st := e.Fill(&pe.Packet{Proto: 17, Payload: bye}, scratch)
	fmt.Printf("%s %v\n", key, st)

	_, st = e.Fill(&pe.Packet{Proto: 17, Payload: []byte("junk")}, scratch)
	fmt.Println(st)

	fmt.Printf("%s\n", e.Show(nil, []byte("evil\x1b[2J")))
	// Output:
	// true true sip
	// a84b4c76e66710 ok
	// not_found
	// evil\x1b[2J
}

// upper is a persistence engine keyed by the first line of a UDP payload,
// in upper case: Fill builds its key in the caller's scratch buffer.
type upper struct{}

func (upper) Name() string { return "firstline" }
func (upper) Fill(p *pe.Packet, scratch []byte) ([]byte, pe.Status) {
	n := 0
	for _, c := range p.Payload {
		if c == '\n' || n == len(scratch) {
			break
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		scratch[n] = c
		n++
	}
	return scratch[:n], pe.StatusOK
}
func (upper) Hash(data []byte, seed uint64) uint64 { return pe.HashData(data, seed) }
func (upper) Show(dst, data []byte) []byte         { return pe.AppendEscaped(dst, data) }
func (upper) ConnOut() bool                        { return false }

// firstLineID is upper's id, registered once at start as the built-in
// engines are (the registry refuses a second engine of the same name).
var firstLineID = pe.MustRegister(upper{})

// A second engine is one type and one MustRegister (or Register) call.
func ExampleMustRegister() {
	e, id, ok := pe.Lookup("firstline")
	fmt.Println(ok, id == firstLineID, pe.Exists("firstline"))

	key, _ := e.Fill(&pe.Packet{Proto: 17, Payload: []byte("hello\nworld")}, make([]byte, pe.MaxDataLen))
	fmt.Printf("%s\n", key)
	// Output:
	// true true true
	// HELLO
}
