package keepalived

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/pe"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// samplesDir holds the configurations Debian's keepalived package ships.
// They are third-party (GPL) files: the tests read them from there and
// never copy them; only xvs's own output about them is committed.
const samplesDir = "/usr/share/doc/keepalived/samples"

// needKeepalived skips (or under CI fails) a test when the keepalived
// package is not installed.
func needKeepalived(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(samplesDir, "keepalived.conf.*"))
	_, errBin := exec.LookPath("keepalived")
	if len(files) == 0 || errBin != nil {
		msg := "the keepalived package (samples in " + samplesDir + " and the keepalived binary) is not installed"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return files
}

// render is what `xvs rules --from-keepalived` prints for a configuration:
// the -Sn rules, then the warnings, or the refusal; paths are reduced to
// their base names.
func render(t *testing.T, path string) (string, *Loaded, error) {
	t.Helper()
	o := Options{ConfigID: "xvs-test", UserExists: func(string) bool { return false }}
	l, err := Load(path, o)
	var b strings.Builder
	if err == nil {
		var cfg *ipvs.Config
		cfg, err = ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
		if err != nil {
			t.Fatal(err)
		}
		err = l.Build(cfg)
		if err == nil {
			b.Write(control.SaveRules(cfg.Snapshot(), ipvsadm.Format{Numeric: true}, ipvsadm.Names{}))
			for _, w := range l.Warnings {
				b.WriteString("# " + w.String() + "\n")
			}
		}
	}
	if err != nil {
		b.WriteString("# refused\n# " + strings.ReplaceAll(err.Error(), "\n", "\n# ") + "\n")
	}
	return strings.ReplaceAll(b.String(), filepath.Dir(path)+"/", ""), l, err
}

func checkGolden(t *testing.T, name string, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

// Every sample Debian ships is parsed. Those keepalived itself accepts
// (keepalived -t exits 0) load, or are refused only for named unsupported
// features; those with virtual servers have a golden of xvs's -Sn rules
// (or of the refusal).
func TestDebianSamples(t *testing.T) {
	files := needKeepalived(t)
	loaded, refused := 0, 0
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("keepalived", "-t", "-f", f)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			kaErr := cmd.Run()
			accepted := kaErr == nil
			var ee *exec.ExitError
			if kaErr != nil && !errors.As(kaErr, &ee) {
				t.Fatalf("keepalived -t: %v", kaErr)
			}
			got, l, err := render(t, f)
			t.Logf("keepalived -t accepted=%v: %s", accepted, strings.TrimSpace(out.String()))
			t.Logf("xvs: %s", got)
			if err != nil {
				refused++
				var ke *Error
				if !errors.As(err, &ke) {
					t.Fatalf("refusal is not an *Error: %v", err)
				}
				if accepted {
					for _, d := range ke.Diags {
						if d.Severity != Unsupported || d.Feature == "" {
							t.Errorf("keepalived accepts %s but xvs refuses it for something other than a named unsupported feature: %v", name, d)
						}
					}
				}
			} else {
				loaded++
			}
			if strings.Contains(got, "-A ") || err != nil && hasVirtualServer(f) {
				checkGolden(t, "samples/"+name, got)
			}
			_ = l
		})
	}
	t.Logf("%d samples loaded, %d refused", loaded, refused)
}

// hasVirtualServer reports whether a sample declares a virtual server.
func hasVirtualServer(path string) bool {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "virtual_server ") {
			return true
		}
	}
	return false
}
