package testenv

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// EnvShared names the environment variable that says where shared/ is:
// the project's shared test data beside the repository (third-party SIP
// captures and torture messages read in place; the GPL/AGPL ones among them
// are never copied into the repository). make sets it to ../shared.
const EnvShared = "XVS_SHARED"

// callIDsSuffix ends the name of a capture's tshark ground truth.
const callIDsSuffix = ".callids.tsv"

// SharedDir returns the shared/ directory: $XVS_SHARED if set (that
// directory or none), else the first "shared" directory with a testdata
// folder found beside the current directory or one of its parents. It
// returns "" when there is none.
func SharedDir() string {
	if d := os.Getenv(EnvShared); d != "" {
		if isShared(d) {
			return d
		}
		return ""
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

// RepoData returns <repository>/testdata/<rel...>: the test data a clone
// has (captures and SIP messages whose licences allow copying, with their
// attribution: testdata/captures/README.md, testdata/sip/README.md).
func RepoData(tb testing.TB, rel ...string) string {
	tb.Helper()
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(append([]string{root, "testdata"}, rel...)...)
}

// Capture is one capture of the test corpus and its tshark ground truth.
type Capture struct {
	Name    string // file name
	Path    string
	CallIDs string // <Path>.callids.tsv
	InRepo  bool   // from the repository's testdata/captures, else from ../shared
}

// Captures returns the test corpus: every capture in the repository's
// testdata/captures with a ground truth beside it, then every capture of
// ../shared/testdata/pcap whose bytes the repository does not already hold
// (under any name). Without ../shared it returns the repository's captures
// and logs what was left out — except in CI, where that fails the test.
func Captures(tb testing.TB) []Capture {
	tb.Helper()
	repo := listCaptures(tb, RepoData(tb, "captures"), true)
	if len(repo) == 0 {
		tb.Fatal("no captures with ground truth in the repository's testdata/captures")
	}
	d := SharedDir()
	if d == "" {
		if InCI() {
			tb.Fatalf("shared test data not found (set %s or put shared/ beside the repository)", EnvShared)
		}
		tb.Logf("../shared not found: tested the repository's %d captures only, not the GPL/AGPL ones it keeps (testdata/captures/README.md)", len(repo))
		return repo
	}
	have := map[[32]byte]bool{}
	for _, c := range repo {
		have[digest(tb, c.Path)] = true
	}
	all := repo
	for _, c := range listCaptures(tb, filepath.Join(d, "testdata", "pcap"), false) {
		if !have[digest(tb, c.Path)] {
			all = append(all, c)
		}
	}
	return all
}

// listCaptures returns the captures of dir that have a ground truth, by
// name.
func listCaptures(tb testing.TB, dir string, inRepo bool) []Capture {
	tb.Helper()
	tsvs, err := filepath.Glob(filepath.Join(dir, "*"+callIDsSuffix))
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(tsvs)
	var cs []Capture
	for _, tsv := range tsvs {
		path := strings.TrimSuffix(tsv, callIDsSuffix)
		if _, err := os.Stat(path); err != nil {
			tb.Fatalf("ground truth %s without its capture", tsv)
		}
		cs = append(cs, Capture{Name: filepath.Base(path), Path: path, CallIDs: tsv, InRepo: inRepo})
	}
	return cs
}

func digest(tb testing.TB, path string) [32]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}
