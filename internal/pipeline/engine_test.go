package pipeline

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xvs-lb/xvs/pe"
)

// sessionEngine is a second persistence engine, written the way a user
// would add one: a file of its own, one Register call, nothing else changed.
// It keys templates by the value of an "X-Session:" line in the datagram
// (say, a game or IoT protocol), case-sensitively, and it is UDP-only.
type sessionEngine struct{}

var sessionID = pe.MustRegister(sessionEngine{})

func (sessionEngine) Name() string { return "xsession" }

func (sessionEngine) Fill(p *pe.Packet, scratch []byte) ([]byte, pe.Status) {
	if p.Proto != 17 {
		return nil, pe.StatusWrongProtocol
	}
	i := bytes.Index(p.Payload, []byte("X-Session:"))
	if i < 0 {
		return nil, pe.StatusNotFound
	}
	v := p.Payload[i+len("X-Session:"):]
	if j := bytes.IndexByte(v, '\n'); j >= 0 {
		v = v[:j]
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, pe.StatusInvalid
	}
	if len(v) > pe.MaxDataLen {
		return nil, pe.StatusTooLong
	}
	// Canonicalise into the caller's scratch buffer: upper case, so that
	// "abc" and "ABC" share a template (an engine that wants looser matching
	// than byte equality does it here).
	out := scratch[:len(v)]
	for k, c := range v {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[k] = c
	}
	return out, pe.StatusOK
}

func (sessionEngine) Hash(d []byte, seed uint64) uint64 { return pe.HashData(d, seed) }
func (sessionEngine) Show(dst, d []byte) []byte         { return pe.AppendEscaped(dst, d) }
func (sessionEngine) ConnOut() bool                     { return false }

func TestSecondEngine(t *testing.T) {
	if e, id, ok := pe.Lookup("xsession"); !ok || id != sessionID || e.Name() != "xsession" {
		t.Fatal("engine not registered")
	}
	l := newLab(t, 1, `
-A -u 10.0.0.9:7000 -s rr -p 30 -M 0.0.0.0 --pe xsession -o
-a -u 10.0.0.9:7000 -r 192.168.7.1:7000 -m
-a -u 10.0.0.9:7000 -r 192.168.7.2:7000 -m
`)
	where := map[string]string{}
	for round := range 3 {
		for s := range 10 {
			key := fmt.Sprintf("sess%d", s)
			if round == 2 {
				key = fmt.Sprintf("SESS%d", s) // canonicalised by the engine
			}
			d, _ := l.send(0, sip("10.1.1.1:4000", "10.0.0.9:7000", []byte("HELLO\nX-Session: "+key+"\n")))
			if d.Verdict() != Forward || d.PE != pe.StatusOK {
				t.Fatalf("%s: %v %v", key, d.Reason, d.PE)
			}
			canon := fmt.Sprintf("SESS%d", s)
			if string(d.PEData) != canon {
				t.Fatalf("pe data %q, want %q", d.PEData, canon)
			}
			if prev, ok := where[canon]; ok && prev != d.Real.String() {
				t.Fatalf("session %s moved from %s to %s", canon, prev, d.Real)
			}
			where[canon] = d.Real.String()
		}
	}
	servers := map[string]bool{}
	for _, r := range where {
		servers[r] = true
	}
	if len(servers) != 2 {
		t.Fatalf("sessions on %v, want both servers", servers)
	}
	// No key: the same fallback as the SIP engine.
	if d, _ := l.send(0, sip("10.1.1.1:4000", "10.0.0.9:7000", []byte("HELLO\n"))); !d.Fallback || d.Verdict() != Forward {
		t.Fatalf("no session: %v fallback=%v", d.Reason, d.Fallback)
	}
}
