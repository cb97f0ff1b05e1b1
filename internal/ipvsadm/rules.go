package ipvsadm

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// MaxRuleLineLen bounds one line of a rules file. ipvsadm's
// config_stream_read has no limit; a generous bound keeps a corrupt file
// from exhausting memory (an -A line with every option is under 200 bytes).
const MaxRuleLineLen = 64 << 10

// ErrNestedRestore is the cause when a rules file contains -R (ipvsadm
// prints its "Try…" hint and exits 255).
var ErrNestedRestore = errors.New("-R inside a rules file")

// ParseRules parses a rules file with the zero Parser. See
// Parser.ParseRules.
func ParseRules(r io.Reader) ([]Command, error) { return Parser{}.ParseRules(r) }

// ParseRules parses a rules file, the input of ipvsadm -R and the output of
// ipvsadm -S / ipvsadm-save: one invocation per line. Lines are split into
// arguments at spaces, tabs and CRs, and a token "ipvsadm" is dropped, as
// config_stream_read does, so "ipvsadm -A -t …" lines load too. Unlike
// ipvsadm, a token starting with '#' starts a comment that runs to the end
// of the line, and blank or comment-only lines are skipped. A -R line is an
// error. Errors are *LineError ("rules:12: …") wrapping the *UsageError.
//
// Every command is returned, including List or Save; Command.Mutates tells
// which ones change the table.
func (ps Parser) ParseRules(r io.Reader) ([]Command, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxRuleLineLen)
	var cmds []Command
	line := 0
	for sc.Scan() {
		line++
		args := RuleTokens(sc.Text())
		if len(args) == 0 {
			continue
		}
		c, err := ps.Parse(args)
		if err == nil && c.Kind == Restore {
			ue := tryHelp()
			ue.err = ErrNestedRestore
			err = ue
		}
		if err != nil {
			return cmds, &LineError{Name: "rules", Line: line, Err: err}
		}
		cmds = append(cmds, c)
	}
	if err := sc.Err(); err != nil {
		return cmds, &LineError{Name: "rules", Line: line + 1, Err: err}
	}
	return cmds, nil
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
