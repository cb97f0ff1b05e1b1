package filtertest

import (
	"strings"
	"testing"
)

// The classic filter may deliver more than the XDP program, never less: a
// row where it would is a mistake in the table or in a filter. Names are
// unique, and a fragmented case has a first, a middle and a last fragment.
func TestClassicNeverLess(t *testing.T) {
	names := map[string]bool{}
	frags := map[string]int{}
	for _, f := range Frames() {
		if f.XDPSteer && !f.Classic {
			t.Errorf("%s: the XDP program steers it, the classic filter does not", f.Name)
		}
		if names[f.Name] || len(f.Data) == 0 {
			t.Errorf("%s: twice, or empty", f.Name)
		}
		names[f.Name] = true
		if base, _, ok := strings.Cut(f.Name, ", fragment "); ok {
			frags[base]++
		}
	}
	for _, c := range Cases {
		if c.Fragmented && frags[c.Name] < 3 {
			t.Errorf("%s: %d fragments", c.Name, frags[c.Name])
		}
	}
}
