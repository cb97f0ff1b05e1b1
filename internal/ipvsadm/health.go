package ipvsadm

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The xvs health-check, drain and reload extensions. They add commands and
// options that ipvsadm does not have and leave every ipvsadm command line,
// message and output byte for byte as it was:
//
//	--health-check virtual-service [-r server-address]
//	               --check sip-options|udp|tcp|script|http|https|none
//	               [--interval secs] [--check-timeout secs] [--fail n] [--rise n]
//	               [--retry-interval secs] [--start-down] [--check-port port]
//	               [--codes list] [--on-fail expire|keep]
//	               [--script command-line] [--script-user user[:group]] [--dynamic]
//	               [--url path] [--digest md5-hex] [--virtualhost name]
//	--drain   virtual-service -r server-address [-w weight-to-restore]
//	--undrain virtual-service -r server-address
//	--reload
//	-L|l [virtual-service] --health [-n]
//
// With -r, --health-check sets the check of one real server, which then
// overrides the service's (keepalived attaches checkers to real servers);
// "--check none" with -r removes that override.
//
// -S saves a service's check as a --health-check line, a real server's own
// check as a --health-check line with -r, and a draining real server as a
// --drain line (with the weight --undrain will restore), after the
// service's -a lines, so that -S output restores the same state with -R.
// An argument with a blank, a quote, a backslash or a '#' (a --script
// command line) is saved in double quotes, which rules files accept (an
// xvs extension, like '#' comments).

// Check is the --health-check specification. Zero numbers mean the
// defaults of the model (internal/ipvs); Codes and OnFail are kept as text
// and checked here.
type Check struct {
	Type     string        // --check: one of CheckTypes
	Interval time.Duration // --interval
	Timeout  time.Duration // --check-timeout
	Fail     int           // --fail
	Rise     int           // --rise
	Port     uint16        // --check-port; 0: the real server's port
	Codes    string        // --codes, e.g. "200-299,404"; "" = the type's default
	OnFail   string        // --on-fail: "expire" or "keep"; "" = expire
	// RetryInterval is --retry-interval: after a failed probe of a server
	// that is still up, the next probe comes this soon (keepalived's
	// delay_before_retry); 0 = Interval.
	RetryInterval time.Duration
	// StartDown is --start-down: servers start down until their probes
	// pass (keepalived's alpha).
	StartDown bool
	// Script is --script: the command line a script check runs, split into
	// arguments by SplitCommand (keepalived's misc_path).
	Script string
	// ScriptUser is --script-user: "user" or "user:group" to run the
	// script as; "" = the daemon's own user.
	ScriptUser string
	// Dynamic is --dynamic: a script's exit status 2..255 sets the server's
	// weight to status-2 (keepalived's misc_dynamic).
	Dynamic bool
	// URL, Digest and VirtualHost are the http/https check's --url (path,
	// "/" by default), --digest (MD5 of the body, hex) and --virtualhost
	// (the Host header and TLS server name).
	URL         string
	Digest      string
	VirtualHost string
}

// CheckTypes are the --check names.
var CheckTypes = []string{"sip-options", "udp", "tcp", "script", "http", "https", "none"}

// checkOpts maps the check options' tags to their options.
var checkOpts = map[tag]Opt{tagCheck: OptCheck, tagInterval: OptInterval, tagCheckTimeout: OptCheckTimeout,
	tagFail: OptFail, tagRise: OptRise, tagCheckPort: OptCheckPort, tagCodes: OptCodes, tagOnFail: OptOnFail,
	tagScript: OptScript, tagScriptUser: OptScriptUser, tagDynamic: OptDynamic, tagURL: OptURL, tagDigest: OptDigest,
	tagVirtualHost: OptVirtualHost, tagRetryInterval: OptRetryInterval, tagStartDown: OptStartDown}

// Limits of the extension's numbers.
const (
	// MaxCheckSeconds bounds --interval and --check-timeout (one hour).
	MaxCheckSeconds = 3600
	// MaxCheckCount bounds --fail and --rise.
	MaxCheckCount = 100
	// MaxCheckCodesLen bounds the --codes argument.
	MaxCheckCodesLen = 256
	// MaxScriptLen bounds a --script command line (keepalived's line
	// buffer is 1024 bytes).
	MaxScriptLen = 1024
	// MaxURLLen bounds --url and --virtualhost.
	MaxURLLen = 1024
)

// xvsVOptions extends commandsVOptions with the extension's columns, for
// ipvsadm's commands (rows by Kind-1, columns from OptCheck on): every
// extension option is illegal with them except --health with -L.
var xvsVOptions = func() (t [Zero][numOpts - OptCheck]byte) {
	for k := range t {
		for j := range t[k] {
			t[k][j] = 'x'
		}
	}
	t[List-1][OptHealth-OptCheck] = ' '
	t[List-1][OptBGP-OptCheck] = ' '
	return t
}()

// xvsCommandVOptions are the rows of the extension's commands over every
// option, with commands_v_options' letters.
var xvsCommandVOptions = func() (t [UndrainDirector - HealthCheckCmd + 1][numOpts]byte) {
	for k := range t {
		for j := range t[k] {
			t[k][j] = 'x'
		}
		if HealthCheckCmd+Kind(k) != Reload {
			t[k][OptService] = '+'
		}
	}
	for _, k := range []Kind{SysctlCmd, DrainDirector, UndrainDirector} { // no option at all
		t[k-HealthCheckCmd][OptService] = 'x'
	}
	// Row 0 is HealthCheckCmd's.
	hc := &t[0]
	hc[OptCheck] = '+'
	for _, o := range []Opt{OptServer, OptInterval, OptCheckTimeout, OptFail, OptRise, OptCheckPort, OptCodes, OptOnFail,
		OptScript, OptScriptUser, OptDynamic, OptURL, OptDigest, OptVirtualHost, OptRetryInterval, OptStartDown} {
		hc[o] = ' '
	}
	for _, k := range []Kind{Drain, Undrain} {
		t[k-HealthCheckCmd][OptServer] = '+'
	}
	t[Drain-HealthCheckCmd][OptWeight] = ' '
	return t
}()

// optRule returns the commands_v_options letter of option o for command k.
func optRule(k Kind, o Opt) byte {
	if k >= HealthCheckCmd {
		return xvsCommandVOptions[k-HealthCheckCmd][o]
	}
	if o >= OptCheck {
		return xvsVOptions[k-1][o-OptCheck]
	}
	return commandsVOptions[k-1][o]
}

// parseSeconds parses a duration in seconds with up to three decimals
// ("5", "0.5", "1.25"), within (0, MaxCheckSeconds].
func parseSeconds(s string) (time.Duration, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && !hasFrac || len(frac) > 3 || hasFrac && frac == "" {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	w := 0
	if whole != "" {
		n, err := strconv.Atoi(whole)
		if err != nil || n > MaxCheckSeconds {
			return 0, false
		}
		w = n
	}
	ms := 0
	if hasFrac {
		ms, _ = strconv.Atoi((frac + "00")[:3])
	}
	d := time.Duration(w)*time.Second + time.Duration(ms)*time.Millisecond
	if d <= 0 || d > MaxCheckSeconds*time.Second {
		return 0, false
	}
	return d, true
}

// FormatSeconds renders a duration as --interval takes it: seconds with up
// to three decimals and no trailing zeros ("5", "0.5").
func FormatSeconds(d time.Duration) string {
	ms := d.Milliseconds()
	s := strconv.FormatInt(ms/1000, 10)
	if f := ms % 1000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", f), "0")
	}
	return s
}

// ParseCodes parses a --codes list: comma-separated SIP status codes and
// inclusive ranges ("200", "200-299,404"), each within 100..699.
func ParseCodes(s string) ([][2]uint16, bool) {
	if s == "" || len(s) > MaxCheckCodesLen {
		return nil, false
	}
	var out [][2]uint16
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		a, ok1 := stringToNumber(lo, 100, 699)
		b, ok2 := stringToNumber(hi, 100, 699)
		if !ok1 || !ok2 || a > b {
			return nil, false
		}
		out = append(out, [2]uint16{uint16(a), uint16(b)})
	}
	return out, true
}

// parseCheckOption handles one of the extension's check options.
func (ce *Command) parseCheckOption(t tag, arg string) *UsageError {
	c := &ce.Check
	switch t {
	case tagCheck:
		for _, n := range CheckTypes {
			if arg == n {
				c.Type = arg
				return nil
			}
		}
		return failf("illegal check type specified (one of %s)", strings.Join(CheckTypes, ", "))
	case tagInterval, tagCheckTimeout:
		d, ok := parseSeconds(arg)
		if !ok {
			return failf("illegal %s specified (seconds, 0.001..%d)", map[tag]string{tagInterval: "interval", tagCheckTimeout: "check-timeout"}[t], MaxCheckSeconds)
		}
		if t == tagInterval {
			c.Interval = d
		} else {
			c.Timeout = d
		}
	case tagFail, tagRise:
		n, ok := stringToNumber(arg, 1, MaxCheckCount)
		if !ok {
			return failf("illegal %s count specified (1..%d)", map[tag]string{tagFail: "fail", tagRise: "rise"}[t], MaxCheckCount)
		}
		if t == tagFail {
			c.Fail = int(n)
		} else {
			c.Rise = int(n)
		}
	case tagCheckPort:
		n, ok := stringToNumber(arg, 1, 65535)
		if !ok {
			return failf("illegal check-port specified")
		}
		c.Port = uint16(n)
	case tagCodes:
		if _, ok := ParseCodes(arg); !ok {
			return failf("illegal status codes specified (e.g. 200-299,404; 100..699)")
		}
		c.Codes = arg
	case tagOnFail:
		if arg != "expire" && arg != "keep" {
			return failf("illegal on-fail policy specified (expire or keep)")
		}
		c.OnFail = arg
	case tagRetryInterval:
		d, ok := parseSeconds(arg)
		if !ok {
			return failf("illegal retry-interval specified (seconds, 0.001..%d)", MaxCheckSeconds)
		}
		c.RetryInterval = d
	case tagStartDown:
		c.StartDown = true
	case tagScript:
		if len(arg) > MaxScriptLen {
			return failf("script command line longer than %d bytes", MaxScriptLen)
		}
		if w, ok := SplitCommand(arg); !ok || len(w) == 0 {
			return failf("illegal script command line specified")
		}
		c.Script = arg
	case tagScriptUser:
		u, g, _ := strings.Cut(arg, ":")
		if !validName(u) || (strings.Contains(arg, ":") && !validName(g)) {
			return failf("illegal script-user specified (user or user:group)")
		}
		c.ScriptUser = arg
	case tagDynamic:
		c.Dynamic = true
	case tagURL:
		if !strings.HasPrefix(arg, "/") || len(arg) > MaxURLLen || strings.ContainsAny(arg, " \t\r\n") {
			return failf("illegal url path specified (it starts with '/')")
		}
		c.URL = arg
	case tagDigest:
		if b, err := hex.DecodeString(arg); err != nil || len(b) != 16 {
			return failf("illegal digest specified (an MD5 digest in hex)")
		}
		c.Digest = strings.ToLower(arg)
	case tagVirtualHost:
		if arg == "" || len(arg) > MaxURLLen || strings.ContainsAny(arg, " \t\r\n/") {
			return failf("illegal virtualhost specified")
		}
		c.VirtualHost = arg
	}
	return nil
}

// validName reports whether s is a plausible user or group name (or id).
func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '$') {
			return false
		}
	}
	return true
}

// checkCommand checks a parsed --health-check as a whole.
func (ce *Command) checkCommand() *UsageError {
	c := ce.Check
	o := ce.Options
	if c.Type == "none" && o&^(1<<OptService|1<<OptCheck|1<<OptServer) != 0 {
		return failf("--check none takes no other check option")
	}
	if c.Codes != "" && c.Type != "sip-options" && c.Type != "http" && c.Type != "https" {
		return failf("--codes is only for sip-options, http and https checks")
	}
	if c.Codes != "" && c.Type != "sip-options" {
		if rs, _ := ParseCodes(c.Codes); len(rs) > 0 && rs[len(rs)-1][1] > 599 {
			return failf("illegal status codes specified (HTTP: 100..599)")
		}
	}
	if c.Interval != 0 && c.Timeout != 0 && c.Timeout > c.Interval {
		return failf("--check-timeout must not exceed --interval")
	}
	if (c.Type == "script") != o.Has(OptScript) {
		return failf("--script goes with --check script, and --check script needs it")
	}
	if c.Type != "script" && (o.Has(OptScriptUser) || o.Has(OptDynamic)) {
		return failf("--script-user and --dynamic are only for script checks")
	}
	if c.Type == "script" && o.Has(OptCheckPort) {
		return failf("--check-port is not for script checks")
	}
	if c.Type != "http" && c.Type != "https" && (o.Has(OptURL) || o.Has(OptDigest) || o.Has(OptVirtualHost)) {
		return failf("--url, --digest and --virtualhost are only for http and https checks")
	}
	if (c.Type == "http" || c.Type == "https") && c.URL == "" {
		ce.Check.URL = "/"
	}
	return nil
}

// CheckView is a service's health check as -S saves it and -L --health
// shows it; every field is filled (no defaults left to apply).
type CheckView struct {
	Type          string
	Interval      time.Duration
	Timeout       time.Duration
	Fail          int
	Rise          int
	Port          uint16 // 0: the real server's port
	Codes         string // "" = the type's default
	OnFail        string // "expire" or "keep"
	RetryInterval time.Duration
	StartDown     bool
	Script        string // the command line (JoinCommand of its arguments)
	ScriptUser    string
	Dynamic       bool
	URL           string
	Digest        string
	VirtualHost   string
}

// DestHealth is the prober's view of one real server for -L --health.
type DestHealth struct {
	Checked bool          // a probe has completed
	Since   time.Duration // since the last state change (or since checking began)
	OK      int           // consecutive successes
	Failed  int           // consecutive failures
	Last    string        // the last probe's outcome ("200 OK", "timeout", …)
	RTT     time.Duration // the last successful probe's round-trip time
}

// saveCheckLine returns the --health-check arguments of -S: the service's
// check, or with d a real server's own check.
func saveCheckLine(s ServiceView, d *DestView, c *CheckView, numeric bool, n Names) []string {
	a := append([]string{"--health-check"}, saveServiceArgs(s, numeric, n)...)
	if d != nil {
		a = append(a, "-r", addrPortName(d.Addr, d.Port, s.Protocol, numeric, n))
	}
	a = append(a, "--check", c.Type, "--interval", FormatSeconds(c.Interval), "--check-timeout", FormatSeconds(c.Timeout),
		"--fail", strconv.Itoa(c.Fail), "--rise", strconv.Itoa(c.Rise))
	if c.RetryInterval != 0 {
		a = append(a, "--retry-interval", FormatSeconds(c.RetryInterval))
	}
	if c.StartDown {
		a = append(a, "--start-down")
	}
	if c.Port != 0 {
		a = append(a, "--check-port", strconv.Itoa(int(c.Port)))
	}
	if c.Codes != "" {
		a = append(a, "--codes", c.Codes)
	}
	if c.Script != "" {
		a = append(a, "--script", c.Script)
	}
	if c.ScriptUser != "" {
		a = append(a, "--script-user", c.ScriptUser)
	}
	if c.Dynamic {
		a = append(a, "--dynamic")
	}
	if c.URL != "" {
		a = append(a, "--url", c.URL)
	}
	if c.Digest != "" {
		a = append(a, "--digest", c.Digest)
	}
	if c.VirtualHost != "" {
		a = append(a, "--virtualhost", c.VirtualHost)
	}
	return append(a, "--on-fail", c.OnFail)
}

// saveDrainLine returns the --drain arguments of -S for a draining server.
func saveDrainLine(s ServiceView, d DestView, numeric bool, n Names) []string {
	a := append([]string{"--drain"}, saveServiceArgs(s, numeric, n)...)
	return append(a, "-r", addrPortName(d.Addr, d.Port, s.Protocol, numeric, n), "-w", utoa(uint64(d.DrainWeight)))
}

// appendSaveExtensions appends a service's extension lines to -S output.
func appendSaveExtensions(b []byte, s ServiceView, dests []DestView, numeric bool, n Names) []byte {
	if s.Check != nil {
		b = appendArgs(b, saveCheckLine(s, nil, s.Check, numeric, n))
	}
	for _, d := range dests {
		if d.Check != nil {
			b = appendArgs(b, saveCheckLine(s, &d, d.Check, numeric, n))
		}
	}
	for _, d := range dests {
		if d.Draining {
			b = appendArgs(b, saveDrainLine(s, d, numeric, n))
		}
	}
	return b
}

// DestState names a real server's state in -L --health: "up", "down",
// "draining" (drained, live calls remain), "drained" (none remain).
func DestState(d DestView) string {
	switch {
	case d.Down:
		return "down"
	case d.Draining && d.PersistConns+d.ActiveConns+d.InactConns > 0:
		return "draining"
	case d.Draining:
		return "drained"
	}
	return "up"
}

// shortDuration renders a duration for a listing column: "850ms", "12s",
// "5m3s", "2h1m", "3d4h".
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

// rtt renders a round-trip time with a tenth of a millisecond.
func rtt(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}

// appendHealthTitle is the --health listing's title.
func appendHealthTitle(b []byte) []byte {
	return fmt.Appendf(b, "%s\n  -> %-28s %-8s %-6s %-11s %-10s %-9s %-7s %-7s %s\n",
		"Prot LocalAddress:Port Check",
		"RemoteAddress:Port", "State", "Weight", "PersistConn", "ActiveConn", "InActConn", "Checks", "Since", "LastCheck")
}

// appendCheckSummary describes a service's check on its --health line.
func appendCheckSummary(b []byte, c *CheckView) []byte {
	if c == nil {
		return append(b, "none"...)
	}
	b = fmt.Appendf(b, "%s every %ss timeout %ss fail %d rise %d", c.Type, FormatSeconds(c.Interval), FormatSeconds(c.Timeout), c.Fail, c.Rise)
	if c.RetryInterval != 0 {
		b = fmt.Appendf(b, " retry %ss", FormatSeconds(c.RetryInterval))
	}
	if c.StartDown {
		b = append(b, " start-down"...)
	}
	if c.Port != 0 {
		b = fmt.Appendf(b, " port %d", c.Port)
	}
	if c.Codes != "" {
		b = append(b, " codes "...)
		b = append(b, c.Codes...)
	}
	if c.Script != "" {
		b = fmt.Appendf(b, " script %q", c.Script)
		if c.Dynamic {
			b = append(b, " dynamic"...)
		}
	}
	if c.URL != "" {
		b = append(b, " url "...)
		b = append(b, c.URL...)
	}
	return append(b, " on-fail "+c.OnFail...)
}

// appendHealthService appends one service of the --health listing.
func appendHealthService(b []byte, s ServiceView, f Format, n Names) []byte {
	name := fmt.Sprintf("%-4s %s", s.Protocol, addrPortName(s.Addr, s.Port, s.Protocol, f.Numeric, n))
	b = append(b, name...)
	b = append(b, ' ')
	b = appendCheckSummary(b, s.Check)
	b = append(b, '\n')
	dests := s.Dests
	if !f.NoSort {
		dests = SortDests(dests)
	}
	for _, d := range dests {
		dname := addrPortName(d.Addr, d.Port, s.Protocol, f.Numeric, n)
		checks, since, last := "-", "-", "-"
		if h := d.Health; h != nil && h.Checked {
			if h.Failed > 0 {
				checks = "fail " + strconv.Itoa(h.Failed)
			} else {
				checks = "ok " + strconv.Itoa(h.OK)
			}
			since = shortDuration(h.Since)
			last = h.Last
			if h.Failed == 0 && h.RTT > 0 {
				last += " " + rtt(h.RTT)
			}
		}
		w := d.Weight
		if d.HasDynWeight && !d.Draining {
			w = d.DynWeight // the weight a dynamic script check set
		}
		b = fmt.Appendf(b, "  -> %-28s %-8s %-6d %-11d %-10d %-9d %-7s %-7s %s", dname, DestState(d), w,
			d.PersistConns, d.ActiveConns, d.InactConns, checks, since, last)
		if d.Check != nil {
			b = append(b, " [own check: "...)
			b = appendCheckSummary(b, d.Check)
			b = append(b, ']')
		}
		if d.NextHop != "" {
			b = append(b, " [next hop: "...)
			b = append(b, d.NextHop...)
			b = append(b, ']')
		}
		b = append(b, '\n')
	}
	return b
}

// AppendHealth appends the xvs listing -L --health: every service (or the
// one given) with its health check, and every real server's state (up,
// down, draining with live templates left, drained), weight, live
// templates and connections, current run of successes or failures, time
// since the last state change, and the last probe's outcome.
func AppendHealth(b []byte, svcs []ServiceView, f Format, n Names) []byte {
	b = appendHealthTitle(b)
	if !f.NoSort {
		svcs = SortServices(svcs)
	}
	for _, s := range svcs {
		b = appendHealthService(b, s, f, n)
	}
	return b
}

// SplitCommand splits a --script command line into arguments the way
// keepalived splits misc_path: at blanks; "…" and '…' group (quotes
// removed); a backslash escapes as in C (\a \b \E \f \n \r \t \v, \nnn
// octal, \xHH hex, \cC control, \C for any other C). ok is false for an
// unterminated quote or a trailing backslash.
func SplitCommand(s string) (args []string, ok bool) {
	i := 0
	for {
		for i < len(s) && isCSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return args, true
		}
		var w []byte
		var quote byte
		for i < len(s) {
			c := s[i]
			switch {
			case c == '\\':
				i++
				if i >= len(s) {
					return args, false
				}
				var out byte
				out, i = unescape(s, i)
				w = append(w, out)
				continue
			case quote != 0 && c == quote:
				quote = 0
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote == 0 && isCSpace(c):
				goto done
			default:
				w = append(w, c)
			}
			i++
		}
	done:
		if quote != 0 {
			return args, false
		}
		args = append(args, string(w))
	}
}

// unescape decodes the escape at s[i] (just after a backslash) and returns
// the byte and the index after the escape.
func unescape(s string, i int) (byte, int) {
	c := s[i]
	switch {
	case c == 'x' && i+1 < len(s) && isHex(s[i+1]):
		var v byte
		i++
		for i < len(s) && isHex(s[i]) {
			v = v<<4 | hexVal(s[i])
			i++
		}
		return v, i
	case c == 'c' && i+1 < len(s):
		return s[i+1] & 0x1f, i + 2
	case c >= '0' && c <= '7':
		v := c - '0'
		i++
		for n := 0; n < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; n++ {
			v = v<<3 + s[i] - '0'
			i++
		}
		return v, i
	}
	if e, ok := map[byte]byte{'a': '\a', 'b': '\b', 'E': 0x1b, 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}[c]; ok {
		return e, i + 1
	}
	return c, i + 1
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// JoinCommand renders arguments as a command line that SplitCommand
// splits back into them: plain words as they are, others in single
// quotes with \' and \\ escaped.
func JoinCommand(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		plain := a != ""
		for j := 0; j < len(a) && plain; j++ {
			c := a[j]
			plain = c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '\\'
		}
		if plain {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		for j := 0; j < len(a); j++ {
			switch c := a[j]; {
			case c == '\'' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < ' ' || c == 0x7f:
				fmt.Fprintf(&b, "\\%03o", c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\'')
	}
	return b.String()
}
