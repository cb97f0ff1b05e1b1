package sipparse_test

import (
	"testing"

	"github.com/xvs-lb/xvs/sipparse"
)

var (
	sinkID   []byte
	sinkOK   bool
	sinkMsg  sipparse.Message
	sinkLine sipparse.StartLine
)

func TestNoAllocs(t *testing.T) {
	for _, p := range payloads {
		t.Run(p.name, func(t *testing.T) {
			if id, ok := sipparse.CallID(p.data); string(id) != p.want || ok != (p.want != "") {
				t.Fatalf("CallID = %q, %v; want %q", id, ok, p.want)
			}
			if n := testing.AllocsPerRun(100, func() { sinkID, sinkOK = sipparse.CallID(p.data) }); n != 0 {
				t.Errorf("CallID: %v allocs", n)
			}
			if n := testing.AllocsPerRun(100, func() { sinkID, _ = sipparse.FindCallID(p.data) }); n != 0 {
				t.Errorf("%s: FindCallID allocates %v times", p.name, n)
			}
			if n := testing.AllocsPerRun(100, func() { sinkMsg = sipparse.Scan(p.data) }); n != 0 {
				t.Errorf("Scan: %v allocs", n)
			}
			if n := testing.AllocsPerRun(100, func() { sinkLine = sipparse.ParseStartLine(p.data) }); n != 0 {
				t.Errorf("ParseStartLine: %v allocs", n)
			}
		})
	}
}
