// Package shared locates the project's shared test data (../shared beside the
// repository: third-party SIP captures and torture messages that are read in
// place, never copied into the repository, because some carry GPL/AGPL
// licences).
package shared

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the environment variable that overrides where shared/ is.
const EnvDir = "XVS_SHARED"

// Dir returns the shared/ directory: $XVS_SHARED if set, else the first
// "shared" directory with a testdata folder found beside the current directory
// or one of its parents. It returns "" when there is none.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
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

// TestData returns shared/testdata/<rel...>. When shared/ is absent the test is
// skipped, except under CI (CI=true), where shared/ is always provided and its
// absence is a failure.
func TestData(tb testing.TB, rel ...string) string {
	tb.Helper()
	d := Dir()
	if d == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("shared test data not found (set %s or put shared/ beside the repository)", EnvDir)
		}
		tb.Skipf("shared test data not found (set %s or put shared/ beside the repository)", EnvDir)
	}
	return filepath.Join(append([]string{d, "testdata"}, rel...)...)
}
