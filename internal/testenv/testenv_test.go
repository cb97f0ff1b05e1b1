package testenv

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/xvs-lb/xvs/internal/lab"
)

// Writers and a reader share a Buffer; every line arrives whole (run under
// -race by make test).
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	const writers, lines = 4, 500
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		}()
	}
	for range 100 {
		_ = b.String()
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var w, i int
		if n, err := fmt.Sscanf(l, "writer %d line %d", &w, &i); n != 2 || err != nil {
			t.Fatalf("torn line %q", l)
		}
	}
}

// verdictTB records what Require decided instead of ending the test: the
// first verdict stands, as Skip and Fatal end a real test.
type verdictTB struct {
	testing.TB
	verdict string
}

func (v *verdictTB) Helper()      {}
func (v *verdictTB) Skip(...any)  { v.decide("skip") }
func (v *verdictTB) Fatal(...any) { v.decide("fail") }
func (v *verdictTB) decide(s string) {
	if v.verdict == "" {
		v.verdict = s
	}
}

// The one rule: a missing requirement skips, except in CI, where it fails;
// missing root always skips.
func TestRequire(t *testing.T) {
	missing := errors.New("tool not found")
	for _, c := range []struct {
		ci   string
		err  error
		want string
	}{
		{"", nil, ""},
		{"true", nil, ""},
		{"", missing, "skip"},
		{"true", missing, "fail"},
		{"", lab.ErrNotRoot, "skip"},
		{"true", fmt.Errorf("demo: %w", lab.ErrNotRoot), "skip"},
	} {
		t.Setenv("CI", c.ci)
		var v verdictTB
		Require(&v, c.err)
		if v.verdict != c.want {
			t.Errorf("CI=%q, %v: %q, want %q", c.ci, c.err, v.verdict, c.want)
		}
	}
}
