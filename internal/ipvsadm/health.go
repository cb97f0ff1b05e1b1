package ipvsadm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The xvs health-check and drain extensions. They add commands and options
// that ipvsadm does not have and leave every ipvsadm command line, message
// and output byte for byte as it was:
//
//	--health-check virtual-service --check sip-options|udp|tcp|none
//	               [--interval secs] [--check-timeout secs] [--fail n] [--rise n]
//	               [--check-port port] [--codes list] [--on-fail expire|keep]
//	--drain   virtual-service -r server-address [-w weight-to-restore]
//	--undrain virtual-service -r server-address
//	-L|l [virtual-service] --health [-n]
//
// -S saves a service's check as a --health-check line and a draining real
// server as a --drain line (with the weight --undrain will restore), after
// the service's -a lines, so that -S output restores the same state with -R.

// Check is the --health-check specification. Zero numbers mean the
// defaults of the model (internal/ipvs); Codes and OnFail are kept as text
// and checked here.
type Check struct {
	Type     string        // --check: "sip-options", "udp", "tcp" or "none"
	Interval time.Duration // --interval
	Timeout  time.Duration // --check-timeout
	Fail     int           // --fail
	Rise     int           // --rise
	Port     uint16        // --check-port; 0: the real server's port
	Codes    string        // --codes, e.g. "200-299,404"; "" = any final response but 408
	OnFail   string        // --on-fail: "expire" or "keep"; "" = expire
}

// CheckTypes are the --check names.
var CheckTypes = []string{"sip-options", "udp", "tcp", "none"}

// Limits of the extension's numbers.
const (
	// MaxCheckSeconds bounds --interval and --check-timeout (one hour).
	MaxCheckSeconds = 3600
	// MaxCheckCount bounds --fail and --rise.
	MaxCheckCount = 100
	// MaxCheckCodesLen bounds the --codes argument.
	MaxCheckCodesLen = 256
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
	return t
}()

// xvsCommandVOptions are the rows of the extension's commands over every
// option, with commands_v_options' letters.
var xvsCommandVOptions = func() (t [Undrain - HealthCheckCmd + 1][numOpts]byte) {
	for k := range t {
		for j := range t[k] {
			t[k][j] = 'x'
		}
		t[k][OptService] = '+'
	}
	hc := &t[HealthCheckCmd-HealthCheckCmd]
	hc[OptCheck] = '+'
	for _, o := range []Opt{OptInterval, OptCheckTimeout, OptFail, OptRise, OptCheckPort, OptCodes, OptOnFail} {
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
	}
	return nil
}

// checkCommand checks a parsed --health-check as a whole.
func (ce *Command) checkCommand() *UsageError {
	c := ce.Check
	if c.Type == "none" && ce.Options&^(1<<OptService|1<<OptCheck) != 0 {
		return failf("--check none takes no other check option")
	}
	if c.Codes != "" && c.Type != "sip-options" {
		return failf("--codes is only for sip-options checks")
	}
	if c.Interval != 0 && c.Timeout != 0 && c.Timeout > c.Interval {
		return failf("--check-timeout must not exceed --interval")
	}
	return nil
}

// CheckView is a service's health check as -S saves it and -L --health
// shows it; every field is filled (no defaults left to apply).
type CheckView struct {
	Type     string
	Interval time.Duration
	Timeout  time.Duration
	Fail     int
	Rise     int
	Port     uint16 // 0: the real server's port
	Codes    string // "" = any final response but 408
	OnFail   string // "expire" or "keep"
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

// saveCheckLine returns the --health-check arguments of -S.
func saveCheckLine(s ServiceView, numeric bool, n Names) []string {
	c := s.Check
	a := append([]string{"--health-check"}, saveServiceArgs(s, numeric, n)...)
	a = append(a, "--check", c.Type, "--interval", FormatSeconds(c.Interval), "--check-timeout", FormatSeconds(c.Timeout),
		"--fail", strconv.Itoa(c.Fail), "--rise", strconv.Itoa(c.Rise))
	if c.Port != 0 {
		a = append(a, "--check-port", strconv.Itoa(int(c.Port)))
	}
	if c.Codes != "" {
		a = append(a, "--codes", c.Codes)
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
		b = appendArgs(b, saveCheckLine(s, numeric, n))
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
	if c.Port != 0 {
		b = fmt.Appendf(b, " port %d", c.Port)
	}
	if c.Codes != "" {
		b = append(b, " codes "...)
		b = append(b, c.Codes...)
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
		b = fmt.Appendf(b, "  -> %-28s %-8s %-6d %-11d %-10d %-9d %-7s %-7s %s\n", dname, DestState(d), d.Weight,
			d.PersistConns, d.ActiveConns, d.InactConns, checks, since, last)
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
