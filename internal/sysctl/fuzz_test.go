package sysctl

import (
	"slices"
	"testing"
)

// FuzzParse: Parse never panics; a setting it accepts is in range, and its
// Setting form parses back to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"sloppy_sctp=1", "net.ipv4.vs.sync_threshold = 3 50", "sync_threshold=3,50", "x", "=", "sloppy_sctp=9999999999999999999999", "net/ipv4/vs/sloppy_sctp=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, v, err := Parse(in)
		if err != nil {
			return
		}
		s := id.Switch()
		for _, x := range v {
			if x < s.Min || x > s.Max {
				t.Fatalf("Parse(%q) = %v, out of %d..%d", in, v, s.Min, s.Max)
			}
		}
		vals, err := Values{}.With(id, v)
		if err != nil {
			t.Fatalf("Parse(%q) accepted %v, With refused it: %v", in, v, err)
		}
		id2, v2, err := Parse(vals.Setting(id))
		if err != nil || id2 != id || !slices.Equal(v2, v) {
			t.Fatalf("Setting %q of Parse(%q) parses to %v %v %v", vals.Setting(id), in, id2, v2, err)
		}
	})
}
