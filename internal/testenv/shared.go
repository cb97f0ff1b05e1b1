package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvShared names the environment variable that says where shared/ is:
// the project's shared test data (third-party SIP captures and torture
// messages, read in place and never copied into the repository, because
// some carry GPL/AGPL licences).
const EnvShared = "XVS_SHARED"

// SharedDir returns the shared/ directory: $XVS_SHARED if set, else the
// first "shared" directory with a testdata folder found beside the current
// directory or one of its parents. It returns "" when there is none.
func SharedDir() string {
	if d := os.Getenv(EnvShared); d != "" {
		if isShared(d) {
			return d
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if c := filepath.Join(d, "shared"); isShared(c) {
			return c
		}
		if c := filepath.Join(filepath.Dir(d), "shared"); isShared(c) {
			return c
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func isShared(d string) bool {
	st, err := os.Stat(filepath.Join(d, "testdata"))
	return err == nil && st.IsDir()
}

// SharedData returns shared/testdata/<rel...>. When shared/ is absent the
// test is skipped, or failed in CI ([Require]).
func SharedData(tb testing.TB, rel ...string) string {
	tb.Helper()
	d := SharedDir()
	if d == "" {
		if InCI() {
			tb.Fatalf("shared test data not found (set %s or put shared/ beside the repository)", EnvShared)
		}
		tb.Skipf("shared test data not found (set %s or put shared/ beside the repository)", EnvShared)
	}
	return filepath.Join(append([]string{d, "testdata"}, rel...)...)
}
