package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's corpus stands alone: every capture has its ground truth
// and an attribution, and with ../shared present the copies are the shared
// files byte for byte, none of them GPL/AGPL, and Captures lists each shared
// capture once (the repository's copy when it has one).
func TestCorpus(t *testing.T) {
	readme, err := os.ReadFile(RepoData(t, "captures", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var repo []Capture
	for _, c := range Captures(t) {
		if c.InRepo {
			repo = append(repo, c)
		}
	}
	if len(repo) < 10 {
		t.Fatalf("%d captures in the repository, want at least 10", len(repo))
	}
	for _, c := range repo {
		if !bytes.Contains(readme, []byte("`"+c.Name+"`")) {
			t.Errorf("%s is not attributed in testdata/captures/README.md", c.Name)
		}
	}
	d := SharedDir()
	if d == "" {
		t.Skip("no ../shared to compare with")
	}
	all := Captures(t)
	shared, _ := filepath.Glob(filepath.Join(d, "testdata", "pcap", "*.callids.tsv"))
	if len(all) != len(shared) {
		t.Errorf("%d captures listed, ../shared has %d", len(all), len(shared))
	}
	for _, c := range repo {
		name := c.Name
		if name == "sipp-branch-scenario.pcapng" {
			name = "sipnab_sipp-branch-scenario.part1.pcapng" // the same bytes, its shared name
		}
		for ours, theirs := range map[string]string{c.Path: name, c.CallIDs: name + ".callids.tsv"} {
			got, err1 := os.ReadFile(ours)
			want, err2 := os.ReadFile(filepath.Join(d, "testdata", "pcap", theirs))
			if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
				t.Errorf("%s differs from ../shared's %s (%v, %v)", filepath.Base(ours), theirs, err1, err2)
			}
		}
	}
	for _, c := range all {
		if c.InRepo && (strings.HasPrefix(c.Name, "heplify_") || strings.HasPrefix(c.Name, "sngrep_")) {
			t.Errorf("%s (GPL/AGPL) is in the repository", c.Name)
		}
	}
}
