package demo

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/testenv"
)

// The live demo end to end (what make demo runs), with fewer calls, so it
// cannot rot. Root and SIPp are required; CI has both.
func TestDemo(t *testing.T) {
	testenv.Require(t, Check())
	dir := t.TempDir()
	for _, b := range []string{"xvs", "xvsadm"} {
		if _, err := testenv.Build(dir, b); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, Options{XVS: filepath.Join(dir, "xvs"), XVSAdm: filepath.Join(dir, "xvsadm"), Calls: 30, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"mode=afxdp", "SIPp: 30 calls successful, 0 failed", "UDP  10.77.2.1:5060 rr persistent 60 mask 0.0.0.0 pe sip ops",
		"30 Call-IDs seen, 0 of them on more than one real server", "10 calls"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// cancelOn is the demo's output: it cancels the demo when a line containing
// at appears (as Ctrl-C would, mid-demo).
type cancelOn struct {
	mu     sync.Mutex
	b      bytes.Buffer
	at     string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b.Write(p)
	if strings.Contains(c.b.String(), c.at) {
		c.cancel()
	}
	return len(p), nil
}

func (c *cancelOn) String() string { c.mu.Lock(); defer c.mu.Unlock(); return c.b.String() }

// Interrupted while calls are being placed (Ctrl-C in xvslab demo), the demo
// says so, tears the lab down and returns ErrInterrupted, not a SIPp error.
func TestDemoInterrupted(t *testing.T) {
	testenv.Require(t, Check())
	dir := t.TempDir()
	for _, b := range []string{"xvs", "xvsadm"} {
		if _, err := testenv.Build(dir, b); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{at: "placing 3000 calls", cancel: cancel}
	start := time.Now()
	err := Run(ctx, Options{XVS: filepath.Join(dir, "xvs"), XVSAdm: filepath.Join(dir, "xvsadm"), Calls: 3000, Out: out})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted\n%s", err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "== interrupted") || !strings.Contains(s, "== tearing the lab down") {
		t.Errorf("output does not say it was interrupted and torn down:\n%s", s)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Errorf("took %v to stop", d)
	}
}
