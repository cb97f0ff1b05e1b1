package control

import (
	"strings"
	"testing"
)

// TestErrors checks ipvsadm's messages and exit statuses: usage errors (2),
// popt errors and the "Try" hint (255), failed kernel-side commands (255),
// and -L of a missing service (1).
func TestErrors(t *testing.T) {
	s := NewServer(listFixture(t), Options{})
	for _, tc := range []struct {
		argv   []string
		stderr string
		code   int
	}{
		{[]string{"-A", "-t", "10.0.0.1:80", "-w", "5"}, "Illegal 'weight' option with the 'add-service' command\n", 2},
		{[]string{"-a", "-t", "10.4.3.192:80"}, "You need to supply the 'real-server' option for the 'add-server' command\n", 2},
		{[]string{"-L", "--foo"}, "--foo: unknown option\n", 255},
		{[]string{"-n"}, "Try `xvsadm -h' or 'xvsadm --help' for more information.\n", 255},
		{[]string{"-A", "-t", "10.4.3.192:80"}, "Service already exists\n", 255},
		{[]string{"-D", "-t", "10.9.9.9:80"}, "No such service\n", 255},
		{[]string{"-a", "-t", "10.4.3.192:80", "-r", "192.168.1.10:80"}, "Destination already exists\n", 255},
		{[]string{"-d", "-t", "10.4.3.192:80", "-r", "192.168.9.9:80"}, "No such destination\n", 255},
		{[]string{"-e", "-t", "10.4.3.192:80", "-r", "192.168.9.9"}, "No such destination\n", 255},
		{[]string{"-A", "-u", "10.0.0.1:5060", "-p", "--pe", "nosuch"}, "Scheduler or persistence engine not found\n", 255},
		{[]string{"-A", "-u", "10.0.0.1:5060", "-s", "nosuch"}, "Scheduler or persistence engine not found\n", 255},
		{[]string{"-Z", "-t", "10.9.9.9:80"}, "No such service\n", 255},
		{[]string{"-L", "-t", "10.9.9.9:80"}, "No such service\n", 1},
		{[]string{"-Lc", "--stats"}, "options conflicts in the list command\n", 2},
		{[]string{"--start-daemon", "master"}, "Operation not supported (no connection synchronisation daemon here)\n", 255},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			r := run(t, s, tc.argv...)
			if string(r.Stderr) != tc.stderr || r.Code != tc.code || len(r.Stdout) != 0 {
				t.Errorf("got stderr %q code %d stdout %q; want %q, %d", r.Stderr, r.Code, r.Stdout, tc.stderr, tc.code)
			}
		})
	}
	// A failed command changed nothing.
	checkGolden(t, "../ipvsadm/testdata/list_numeric.golden", mustRun(t, s, "-Ln"))
	// The program name the client gives is used in the hint.
	r := s.Execute(t.Context(), Request{V: 1, Argv: []string{"-n"}, Program: "ipvsadm"})
	if !strings.HasPrefix(string(r.Stderr), "Try `ipvsadm -h'") {
		t.Errorf("hint %q", r.Stderr)
	}
}

func TestCommandsApply(t *testing.T) {
	f := newFake(t, 1, "")
	s := NewServer(f, Options{})
	for _, argv := range [][]string{
		{"-A", "-u", "10.4.3.192:5060", "-s", "rr", "-p", "60", "-M", "0.0.0.0", "--pe", "sip", "-o"},
		{"-a", "-u", "10.4.3.192:5060", "-r", "192.168.1.10:5060", "-m"},
		{"-a", "-u", "10.4.3.192:5060", "-r", "192.168.1.11:5060", "-m", "-w", "2"},
		{"-e", "-u", "10.4.3.192:5060", "-r", "192.168.1.11:5060", "-m", "-w", "3"},
		{"--set", "100", "20", "30"},
		{"-A", "-t", "10.0.0.1:80"},
		{"-D", "-t", "10.0.0.1:80"},
	} {
		mustRun(t, s, argv...)
	}
	want := "-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n" +
		"-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1\n" +
		"-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 3\n"
	if got := string(mustRun(t, s, "-Sn")); got != want {
		t.Errorf("-Sn:\n%s\nwant\n%s", got, want)
	}
	if got := string(mustRun(t, s, "-L", "--timeout")); got != "Timeout (tcp tcpfin udp): 100 20 30\n" {
		t.Errorf("--timeout: %q", got)
	}
	mustRun(t, s, "-C")
	if got := mustRun(t, s, "-Sn"); len(got) != 0 {
		t.Errorf("after -C: %q", got)
	}
	// -h and -v answer on stdout with status 0.
	if out := string(mustRun(t, s, "-h")); !strings.Contains(out, "--pe-strict") || !strings.Contains(out, "sip") {
		t.Errorf("-h: %q", out)
	}
	if out := string(mustRun(t, s, "-v")); !strings.Contains(out, "ipvsadm v1.31") {
		t.Errorf("-v: %q", out)
	}
}

// TestRestoreAllOrNothing: -R applies a rules file completely or not at all.
func TestRestoreAllOrNothing(t *testing.T) {
	f := newFake(t, 1, "-A -t 10.0.0.1:80\n")
	s := NewServer(f, Options{})
	restore := func(text string) Result {
		return s.Execute(t.Context(), Request{V: 1, Argv: []string{"-R"}, Stdin: text})
	}
	before := string(mustRun(t, s, "-Sn"))

	// A kernel-side failure on line 4 (after a blank line and a comment).
	r := restore("-A -u 10.4.3.192:5060 -s rr -p 60 --pe sip -o\n\n# comment\n-A -t 10.0.0.1:80\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -m\n")
	if string(r.Stderr) != "rules:4: Service already exists\n" || r.Code != 255 {
		t.Errorf("duplicate: stderr %q code %d", r.Stderr, r.Code)
	}
	// A syntax error on line 2.
	r = restore("-A -u 10.4.3.192:5060 -s rr\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -w 70000\n")
	if string(r.Stderr) != "rules:2: illegal weight specified\n" || r.Code != 2 {
		t.Errorf("syntax: stderr %q code %d", r.Stderr, r.Code)
	}
	// A listing is not a configuration command.
	r = restore("-A -u 10.4.3.192:5060 -s rr\n-L -n\n")
	if string(r.Stderr) != "rules:2: list: not a configuration command\n" || r.Code != 2 {
		t.Errorf("list in rules: stderr %q code %d", r.Stderr, r.Code)
	}
	if after := string(mustRun(t, s, "-Sn")); after != before {
		t.Fatalf("failed restores changed the configuration:\n%s", after)
	}

	// ipvsadm-save output restores as is, "ipvsadm" tokens and all.
	text := "-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip --pe-strict -o\n" +
		"ipvsadm -a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1\n"
	if r := restore(text); r.Code != 0 || len(r.Stderr) != 0 {
		t.Fatalf("restore: %q %d", r.Stderr, r.Code)
	}
	want := "-A -t 10.0.0.1:80 -s wlc\n" + strings.ReplaceAll(text, "ipvsadm ", "")
	if got := string(mustRun(t, s, "-Sn")); got != want {
		t.Errorf("after restore:\n%s\nwant\n%s", got, want)
	}
}
