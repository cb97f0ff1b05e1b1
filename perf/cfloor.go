package perf

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// cfloorSource is the C floor (cfloor/xskfloor.c): the same forwarding as
// GoFloor, written against libxdp's xsk API, an independent reference for
// what the Go runtime and package afxdp cost.
//
//go:embed cfloor/xskfloor.c
var cfloorSource []byte

// buildCFloor compiles the C floor into dir with gcc. Without gcc or the
// libxdp and libbpf headers (Debian libxdp-dev, libbpf-dev) it returns an
// error wrapping ErrSkip that says so: the candidate is reported NOT TESTED.
func buildCFloor(dir string) (string, error) {
	src, bin := filepath.Join(dir, "xskfloor.c"), filepath.Join(dir, "xskfloor")
	if err := os.WriteFile(src, cfloorSource, 0o644); err != nil {
		return "", err
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		return "", fmt.Errorf("%w: NOT TESTED: the C floor needs gcc: %v", ErrSkip, err)
	}
	out, err := exec.Command(cc, "-O2", "-Wall", "-o", bin, src, "-lxdp", "-lbpf").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: NOT TESTED: building the C floor (needs Debian libxdp-dev and libbpf-dev): %v: %s", ErrSkip, err, firstLines(string(out), 3))
	}
	return bin, nil
}
