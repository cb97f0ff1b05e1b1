package ipvsadm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxRulesBytes bounds a rules file, the same for every reader: xvs run
// --rules, xvsadm -R, xvs replay --rules. The largest configuration xvs can
// hold (65 536 real servers, and the services 16 384 filter entries allow)
// is under 8 MiB of -S output at under 100 bytes a line; twice that leaves
// room for comments, and a runaway file is refused instead of read whole.
// Lines have no limit of their own (ipvsadm's config_stream_read has none):
// a long comment is as good as a short one.
const MaxRulesBytes = 16 << 20

// Errors of the rules reader.
var (
	// ErrNestedRestore is the cause when a rules file contains -R (ipvsadm
	// prints its "Try…" hint and exits 255).
	ErrNestedRestore = errors.New("-R inside a rules file")
	// ErrRulesTooLarge: a rules file longer than MaxRulesBytes.
	ErrRulesTooLarge = errors.New("rules file too large")
)

// Rule is one command of a rules file and its 1-based line.
type Rule struct {
	Command
	Line int
}

// ParseRules parses a rules file with the zero Parser. See
// Parser.ReadRules.
func ParseRules(r io.Reader) ([]Command, error) {
	rules, err := Parser{}.ReadRules(r, "rules")
	cmds := make([]Command, len(rules))
	for i, rl := range rules {
		cmds[i] = rl.Command
	}
	return cmds, err
}

// ReadRules reads and parses a rules file, the input of ipvsadm -R and the
// output of ipvsadm -S / ipvsadm-save: one invocation per line, at most
// MaxRulesBytes in all. It is the one reader of rules files (xvs run
// --rules and xvsadm -R both use it), and it streams: its memory is the
// commands and one line, not the file. Lines are split into arguments at
// spaces, tabs and CRs, and a token "ipvsadm" is dropped, as
// config_stream_read does, so "ipvsadm -A -t …" lines load too. Unlike
// ipvsadm, a token starting with '#' starts a comment that runs to the end
// of the line, and blank or comment-only lines are skipped. A -R line is an
// error. Errors are *LineError ("name:12: …") wrapping the *UsageError,
// the reader's error, or ErrRulesTooLarge; the rules before the error are
// returned with it.
//
// Every command is returned, including List or Save; Command.Mutates tells
// which ones change the table.
func (ps Parser) ReadRules(r io.Reader, name string) ([]Rule, error) {
	if name == "" {
		name = "rules"
	}
	br := bufio.NewReader(&limitedReader{r: r, n: MaxRulesBytes})
	var rules []Rule
	var long []byte // a line longer than the reader's buffer
	line := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			chunk = append(long, chunk...)
			long = nil
		}
		if len(chunk) > 0 {
			line++
			if args := RuleTokens(strings.TrimSuffix(string(chunk), "\n")); len(args) > 0 {
				c, perr := ps.Parse(args)
				if perr == nil && c.Kind == Restore {
					ue := tryHelp()
					ue.err = ErrNestedRestore
					perr = ue
				}
				if perr != nil {
					return rules, &LineError{Name: name, Line: line, Err: perr}
				}
				rules = append(rules, Rule{Command: c, Line: line})
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return rules, nil
		case errors.Is(err, errTooLarge):
			return rules, fmt.Errorf("%s: more than %d bytes: %w", name, MaxRulesBytes, ErrRulesTooLarge)
		default:
			return rules, &LineError{Name: name, Line: line + 1, Err: err}
		}
	}
}

var errTooLarge = errors.New("too large")

// limitedReader reads at most n bytes of r and fails with errTooLarge on
// the byte after them.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n - 1, errTooLarge // the byte past the limit is not returned
	}
	return n, err
}

// RuleTokens splits one rules-file line into arguments: separators are
// space, tab and CR; a token "ipvsadm" is dropped; a token starting with
// '#' ends the line. As an xvs extension (ipvsadm has no quoting, and its
// -S never writes a quote), a double-quoted part of a token keeps its
// blanks and '#', with \" and \\ standing for '"' and '\': -S writes a
// --script command line that way.
func RuleTokens(line string) []string {
	var args []string
	isSep := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
	i := 0
	for {
		for i < len(line) && isSep(line[i]) {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			return args
		}
		var tok []byte
		quoted, wasQuoted := false, false
		for i < len(line) && (quoted || !isSep(line[i])) {
			c := line[i]
			switch {
			case c == '"':
				quoted, wasQuoted = !quoted, true
			case quoted && c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
				i++
				tok = append(tok, line[i])
			default:
				tok = append(tok, c)
			}
			i++
		}
		if t := string(tok); t != "ipvsadm" || wasQuoted {
			args = append(args, t)
		}
	}
}

// Mutates reports whether the command changes the virtual-server table, the
// timeouts or the sysctls (add, edit, delete, clear, zero, set, and the
// extensions health-check, drain, undrain and --sysctl NAME=VALUE).
func (c Command) Mutates() bool {
	switch c.Kind {
	case AddService, EditService, DeleteService, Clear, AddServer, EditServer, DeleteServer, SetTimeout, Zero,
		HealthCheckCmd, Drain, Undrain:
		return true
	case SysctlCmd:
		return strings.Contains(c.Sysctl, "=")
	}
	return false
}
