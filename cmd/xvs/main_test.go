package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// runHelp is `xvs run --help`.
func runHelp(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	app := &cli.App{Name: "xvs", Commands: []*cli.Command{runCommand()}, Writer: &b, ErrWriter: &b}
	if err := app.Run([]string{"xvs", "run", "--help"}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// `xvs run --help` names every log level --log-level accepts, 9 (IPVS's
// debug_level 9, the SIP engine's events) included, and every level it
// names is accepted.
func TestRunHelpLogLevels(t *testing.T) {
	help := runHelp(t)
	i := strings.Index(help, "--log-level")
	if i < 0 {
		t.Fatal("no --log-level in xvs run --help")
	}
	line := help[i : i+strings.Index(help[i:], "\n")]
	for _, level := range []string{"debug", "info", "warn", "error", "9"} {
		if !regexp.MustCompile(`\b` + level + `\b`).MatchString(line) {
			t.Errorf("--log-level help does not name %q: %s", level, line)
		}
		if _, err := newLogger(level); err != nil {
			t.Errorf("--log-level %s: %v", level, err)
		}
	}
	if _, err := newLogger("verbose"); err == nil || !strings.Contains(err.Error(), "9") {
		t.Errorf("a bad level's message does not list 9: %v", err)
	}
}

// makeTargets lists the Makefile's targets (rules whose name is a word).
func makeTargets(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^([a-zA-Z0-9_-]+):([^=]|$)`)
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			targets = append(targets, m[1])
		}
	}
	return targets
}

// `make help` lists every target of the Makefile, each once.
func TestMakeHelp(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	out, err := exec.Command("make", "-s", "-C", "../..", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	listed := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			listed[f[0]]++
		}
	}
	targets := makeTargets(t)
	if len(targets) < 10 {
		t.Fatalf("found %d targets in the Makefile", len(targets))
	}
	for _, tg := range targets {
		if listed[tg] != 1 {
			t.Errorf("make help lists target %q %d times:\n%s", tg, listed[tg], out)
		}
	}
	for tg := range listed {
		if !strings.Contains(strings.Join(targets, " ")+" ", tg+" ") {
			t.Errorf("make help lists %q, which is not a target", tg)
		}
	}
}

// make install puts the binaries, a systemd unit and the example rules in
// place under PREFIX, DESTDIR and SYSCONFDIR; the unit starts `xvs run` with
// flags xvs has, from the rules file, restoring its snapshot; systemd accepts
// it (systemd-analyze verify, where installed); the example rules load once
// uncommented; and a second install keeps the operator's rules and settings.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	install := func(args ...string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-s", "-C", "../..", "install", "BIN=" + bin}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install %v: %v\n%s", args, err, out)
		}
	}
	// Staged for a package: DESTDIR, the default PREFIX.
	dest := filepath.Join(tmp, "dest")
	install("DESTDIR=" + dest)
	for path, mode := range map[string]os.FileMode{
		"/usr/local/bin/xvs": 0o755, "/usr/local/bin/xvsadm": 0o755,
		"/usr/local/lib/systemd/system/xvs.service": 0o644,
		"/etc/xvs/xvs.rules":                        0o644, "/etc/xvs/xvs.rules.example": 0o644, "/etc/default/xvs": 0o644,
	} {
		st, err := os.Stat(dest + path)
		if err != nil {
			t.Errorf("%s not installed: %v", path, err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	unit, err := os.ReadFile(dest + "/usr/local/lib/systemd/system/xvs.service")
	if err != nil {
		t.Fatal(err)
	}
	var exec_, envFile string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec_ = v
		}
		if v, ok := strings.CutPrefix(l, "EnvironmentFile="); ok {
			envFile = v
		}
	}
	args := strings.Fields(exec_)
	if len(args) < 2 || args[0] != "/usr/local/bin/xvs" || args[1] != "run" {
		t.Fatalf("ExecStart=%s", exec_)
	}
	if envFile != "/etc/default/xvs" {
		t.Errorf("EnvironmentFile=%s", envFile)
	}
	help := runHelp(t)
	flags := map[string]string{}
	for i := 2; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "--") {
			continue
		}
		if !strings.Contains(help, "   "+args[i]+" ") {
			t.Errorf("ExecStart uses %s, which xvs run does not have", args[i])
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			flags[args[i]] = args[i+1]
		}
	}
	if flags["--rules"] != "/etc/xvs/xvs.rules" || flags["--snapshot"] == "" || flags["--iface"] != "${XVS_IFACE}" {
		t.Errorf("ExecStart does not serve $XVS_IFACE from the rules file with a snapshot: %s", exec_)
	}

	// The example rules load once uncommented.
	example, err := os.ReadFile(dest + "/etc/xvs/xvs.rules.example")
	if err != nil {
		t.Fatal(err)
	}
	var live strings.Builder
	for _, l := range strings.Split(string(example), "\n") {
		if strings.HasPrefix(l, "#-") {
			live.WriteString(l[1:] + "\n")
		}
	}
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Read(cfg, strings.NewReader(string(example)), "xvs.rules"); err != nil {
		t.Errorf("the example as installed: %v", err)
	}
	if err := rules.Read(cfg, strings.NewReader(live.String()), "xvs.rules"); err != nil || len(cfg.Snapshot().Services()) != 1 {
		t.Errorf("the example uncommented: %v\n%s", err, live.String())
	}

	// A second install keeps what the operator edited.
	os.WriteFile(dest+"/etc/xvs/xvs.rules", []byte("-A -u 10.1.1.1:5060 -s rr\n"), 0o644)
	os.WriteFile(dest+"/etc/default/xvs", []byte("XVS_IFACE=eth9\n"), 0o644)
	install("DESTDIR=" + dest)
	if b, _ := os.ReadFile(dest + "/etc/xvs/xvs.rules"); string(b) != "-A -u 10.1.1.1:5060 -s rr\n" {
		t.Error("make install overwrote the rules file")
	}
	if b, _ := os.ReadFile(dest + "/etc/default/xvs"); string(b) != "XVS_IFACE=eth9\n" {
		t.Error("make install overwrote the settings file")
	}

	// Installed for real under a temporary PREFIX, so that systemd can
	// check the unit and the programs it names.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit's syntax was not checked by systemd")
		return
	}
	root := filepath.Join(tmp, "root")
	install("PREFIX="+root+"/usr", "SYSCONFDIR="+root+"/etc")
	out, err := exec.Command(analyze, "verify", root+"/usr/lib/systemd/system/xvs.service").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// xvs run --start-daemon without --mcast-interface runs the sync daemon on
// the first served interface (the first leg), whether the legs are given
// one --iface each or comma-separated.
func TestSyncDaemonDefaultInterface(t *testing.T) {
	for _, args := range [][]string{
		{"--iface", "eth7", "--iface", "eth8"},
		{"--iface", "eth7,eth8"},
	} {
		cmd := runCommand()
		var got []string
		cmd.Action = func(c *cli.Context) error {
			ds, err := syncDaemons(c)
			for _, d := range ds {
				got = append(got, d.McastIface)
			}
			return err
		}
		app := &cli.App{Name: "xvs", Commands: []*cli.Command{cmd}}
		if err := app.Run(append(append([]string{"xvs", "run"}, args...), "--start-daemon", "master")); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "eth7" {
			t.Errorf("%v: sync daemon on %v, want eth7", args, got)
		}
	}
}
