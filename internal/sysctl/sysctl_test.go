package sysctl

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Two switches of the test's own: a boolean and a vector shaped like the
// sync daemon's sync_threshold ("3 50": threshold below period).
var (
	testBool = Register(Switch{Name: "sloppy_sctp", Default: []int64{0}, Min: 0, Max: 1, Meaning: "test"})
	testVec  = Register(Switch{Name: "sync_threshold", Default: []int64{3, 50}, Min: 0, Max: 1 << 20,
		Check: func(v []int64) error {
			if v[0] >= v[1] {
				return errors.New("threshold must be below the period")
			}
			return nil
		}, Meaning: "test"})
)

func TestLookup(t *testing.T) {
	for _, name := range []string{"sloppy_sctp", "net.ipv4.vs.sloppy_sctp", "net/ipv4/vs/sloppy_sctp"} {
		if id, err := Lookup(name); err != nil || id != testBool {
			t.Errorf("Lookup(%q) = %v, %v", name, id, err)
		}
	}
	if _, err := Lookup("drop_entry"); !errors.Is(err, ErrUnsupported) || err.Error() != "sysctl net.ipv4.vs.drop_entry is not supported by xvs" {
		t.Errorf("a kernel sysctl xvs does not honour: %v", err)
	}
	if _, err := Lookup("net.ipv4.vs.nosuch"); !errors.Is(err, ErrUnknown) || err.Error() != "no such IPVS sysctl: net.ipv4.vs.nosuch" {
		t.Errorf("an unknown name: %v", err)
	}
	if ids := All(); !slices.Equal(ids, []ID{testBool, testVec}) {
		t.Errorf("All() = %v", ids)
	}
}

func TestParseAndValues(t *testing.T) {
	var v Values
	if v.Get(testBool) != 0 || !slices.Equal(v.Vector(testVec), []int64{3, 50}) || !v.IsDefault(testVec) {
		t.Fatal("the zero Values does not hold the defaults")
	}
	for _, c := range []struct {
		in   string
		want []int64
		err  error
	}{
		{"sloppy_sctp=1", []int64{1}, nil},
		{" net.ipv4.vs.sloppy_sctp = 0", []int64{0}, nil},
		{"sync_threshold=10 100", []int64{10, 100}, nil},
		{"sync_threshold=10,100", []int64{10, 100}, nil},
		{"sync_threshold=10\t100", []int64{10, 100}, nil},
		{"sync_threshold=100 10", nil, ErrValue},
		{"sync_threshold=10", nil, ErrValue},
		{"sloppy_sctp=2", nil, ErrValue},
		{"sloppy_sctp=-1", nil, ErrValue},
		{"sloppy_sctp=0x1", nil, ErrValue},
		{"sloppy_sctp", nil, ErrValue},
		{"secure_tcp=1", nil, ErrUnsupported},
		{"nosuch=1", nil, ErrUnknown},
	} {
		_, got, err := Parse(c.in)
		if !errors.Is(err, c.err) || c.err == nil && !slices.Equal(got, c.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", c.in, got, err, c.want, c.err)
		}
	}
	n, err := v.With(testVec, []int64{10, 100})
	if err != nil {
		t.Fatal(err)
	}
	if !v.IsDefault(testVec) {
		t.Fatal("With changed its receiver")
	}
	if n.Format(testVec) != "10\t100" || n.Setting(testVec) != "sync_threshold=10,100" || n.Get(testVec) != 10 {
		t.Fatalf("Format %q Setting %q Get %d", n.Format(testVec), n.Setting(testVec), n.Get(testVec))
	}
	id, val, err := Parse(n.Setting(testVec))
	if err != nil || id != testVec || !slices.Equal(val, []int64{10, 100}) {
		t.Fatalf("Parse(Setting()) = %v %v %v", id, val, err)
	}
	if _, err := n.With(testBool, []int64{7}); !errors.Is(err, ErrValue) {
		t.Fatalf("With out of range: %v", err)
	}
	back, _ := n.With(testVec, []int64{3, 50})
	if !back.IsDefault(testVec) {
		t.Fatal("setting the default back is not the default")
	}
}

func TestRegisterRefusesBadEntries(t *testing.T) {
	for _, s := range []Switch{
		{Name: "sloppy_sctp", Default: []int64{0}, Max: 1},
		{Name: "net.ipv4.vs.x", Default: []int64{0}, Max: 1},
		{Name: "x", Max: 1},
		{Name: "x", Default: []int64{2}, Max: 1},
		{Name: "x", Default: []int64{0}, Min: 1, Max: 0},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", s)
				}
			}()
			Register(s)
		}()
	}
}

func TestGetAllocatesNothing(t *testing.T) {
	v, _ := Values{}.With(testBool, []int64{1})
	var sink int64
	if n := testing.AllocsPerRun(100, func() { sink += v.Get(testBool) + v.Get(testVec) }); n != 0 {
		t.Fatalf("Get allocates %v", n)
	}
	_ = fmt.Sprint(sink)
}
