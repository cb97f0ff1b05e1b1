package demo

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
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
