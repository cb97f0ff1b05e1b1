package replay

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// The affinity check that docs/replay.md gives runs, as written, with every
// awk on the machine — Debian's default is mawk, which has no arrays of
// arrays — and finds no split Call-ID in the demo capture's log, and finds
// one that the test plants.
func TestDocsAffinityOneLiner(t *testing.T) {
	doc, err := os.ReadFile("../../docs/replay.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i := strings.Index(text, "## Checking affinity from the log")
	if i < 0 {
		t.Fatal("docs/replay.md has no affinity section")
	}
	block := text[i:]
	block = block[strings.Index(block, "```sh\n")+6:]
	block = block[:strings.Index(block, "```")]
	j := strings.Index(block, "\nawk ")
	if j < 0 {
		t.Fatalf("no awk command in %q", block)
	}
	script := strings.TrimSpace(block[j+1:])
	if !strings.HasSuffix(script, " /tmp/d.tsv") {
		t.Fatalf("the awk command does not read /tmp/d.tsv: %q", script)
	}
	script = strings.TrimSuffix(script, " /tmp/d.tsv")

	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Load(cfg, "../../examples/sipp-demo.rules"); err != nil {
		t.Fatal(err)
	}
	in, err := capture.Open("../../testdata/captures/sipp-branch-scenario.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var log bytes.Buffer
	if _, err := Run(in, Options{Config: cfg, Log: &log}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tsv")
	bad := filepath.Join(dir, "bad.tsv")
	os.WriteFile(good, log.Bytes(), 0o644)
	os.WriteFile(bad, append(bytes.Clone(log.Bytes()), "9999\t1.2.3.4:5060\t127.0.0.1:5060\t1-4461@127.0.1.1\tforward\t10.9.9.9:5060\tscheduled\n"...), 0o644)
	ran := 0
	// The documented command with its awk replaced by each one found.
	shell := strings.Replace(script, "awk ", `"$AWK" `, 1) + ` "$1"`
	for _, awk := range []string{"awk", "mawk", "gawk", "original-awk"} {
		path, err := exec.LookPath(awk)
		if err != nil {
			continue
		}
		ran++
		run := func(file string) string {
			cmd := exec.Command("sh", "-c", shell, "sh", file)
			cmd.Env = append(os.Environ(), "AWK="+path)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", awk, err, out)
			}
			return string(out)
		}
		if got := run(good); got != "0 split Call-IDs\n" {
			t.Errorf("%s on the demo log: %q", awk, got)
		}
		if got := run(bad); got != "split: 1-4461@127.0.1.1\n1 split Call-IDs\n" {
			t.Errorf("%s with a split call: %q", awk, got)
		}
	}
	if ran == 0 {
		t.Skip("no awk on this machine")
	}
}
