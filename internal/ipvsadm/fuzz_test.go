package ipvsadm

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParse feeds argv lists (arguments separated by NUL bytes) to Parse.
// It must not panic, every error must be a *UsageError with an ipvsadm exit
// status, and a parsed service or destination command must re-format (as
// its -S line) to arguments that parse to the same service and destination.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-A -u 10.4.3.192:5060 -p 60 -M 0.0.0.0 -o --pe sip",
		"-a -u 10.4.3.192:5060 -r 192.168.1.10 -m -w 0",
		"-Lcn --persistent-conn",
		"-A -u [2001:db8::1]:5060 -p -M 64 --pe sip --pe-strict",
		"-e -t 10.1:http -r [2001:db8::2] -i --tun-type gue --tun-port 6080 --tun-remcsum",
		"-A -t 010.0.0.1:80 -s sh -b sh-fallback,sh-port",
		"--set 900 120 300",
		"-A -t [10.0.0.1]:80 -p",
	} {
		f.Add(strings.ReplaceAll(s, " ", "\x00"))
	}
	f.Fuzz(func(t *testing.T, in string) {
		args := strings.Split(in, "\x00")
		c, err := Parse(args)
		if err != nil {
			ue, ok := err.(*UsageError)
			if !ok || (ue.Code != ExitUsage && ue.Code != ExitPopt) || (!ue.TryHelp && ue.Msg == "") {
				t.Fatalf("Parse(%q): bad error %#v", args, err)
			}
			return
		}
		argv := c.Argv()
		if argv == nil {
			return
		}
		c2, err := Parse(argv)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its -S form %q fails: %v", args, argv, err)
		}
		want := c.Service
		if !want.Persistent {
			// -S drops -M of non-persistent services, as ipvsadm does.
			want.Netmask = c2.Service.Netmask
		}
		if c2.Kind != c.Kind || c2.Service != want || c2.Dest != c.Dest {
			t.Fatalf("Parse(%q) = %+v\nits -S form %q parses to %+v", args, c, argv, c2)
		}
	})
}

// FuzzCommandLine checks the --script quoting: JoinCommand renders any
// argument list so that SplitCommand gives it back, and a -S line with it
// tokenizes back into the same arguments.
func FuzzCommandLine(f *testing.F) {
	f.Add("/usr/local/bin/check.sh", "a b", `it's "x"`)
	f.Add("", "\\", "#x\t\x01")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, s := range []string{a, b, c} {
			if strings.ContainsRune(s, 0) || strings.ContainsAny(s, "\n") {
				return
			}
		}
		args := []string{a, b, c}
		line := JoinCommand(args)
		got, ok := SplitCommand(line)
		if !ok || !slices.Equal(got, args) {
			t.Fatalf("JoinCommand %q split into %q %v, want %q", line, got, ok, args)
		}
		rule := string(appendArgs(nil, []string{"--script", line, a}))
		toks := RuleTokens(strings.TrimSuffix(rule, "\n"))
		if want := []string{"--script", line, a}; !slices.Equal(toks, want) {
			t.Fatalf("rule %q tokenized into %q, want %q", rule, toks, want)
		}
	})
}

// FuzzReadRules feeds rules files to ReadRules, the one reader of xvs run
// --rules and xvsadm -R. It must not panic; errors are *LineError (with a
// line within the input), a reader error or ErrRulesTooLarge; every command
// returned is on a line of the input, in order.
func FuzzReadRules(f *testing.F) {
	for _, s := range []string{
		"-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n-a -u 10.4.3.192:5060 -r 192.168.1.10 -m\n",
		"# comment\n\n  ipvsadm -C  # trailing\r\n--sysctl expire_nodest_conn=1\n",
		"-A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 10.0.0.1 -w 70000\n",
		"-C\n-R\n",
		"-L -n\n--sysctl",
		"#" + strings.Repeat("x", 5000) + "\n-C",
		"--health-check -u 10.0.0.1:5060 --check script --script \"/bin/check \\\"a b\\\"\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := Parser{}.ReadRules(strings.NewReader(in), "f")
		lines := strings.Count(in, "\n") + 1
		last := 0
		for _, r := range rs {
			if r.Line <= last || r.Line > lines {
				t.Fatalf("command at line %d after line %d, input of %d lines", r.Line, last, lines)
			}
			last = r.Line
		}
		if err == nil {
			return
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line < 1 || le.Line > lines || le.Name != "f" {
			t.Fatalf("error %v (%T)", err, err)
		}
	})
}
