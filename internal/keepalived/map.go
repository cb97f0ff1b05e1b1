package keepalived

import (
	"fmt"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/rules"
)

// Rule is one xvsadm command understood from the configuration, with the
// position of the keyword it comes from.
type Rule struct {
	Pos Pos
	// Argv is the command as xvsadm takes it ("-A", "-u", "10.0.0.1:5060", …).
	Argv []string
	Cmd  ipvsadm.Command
}

// Loaded is a configuration understood for xvs.
type Loaded struct {
	// Path is the configuration file as given.
	Path   string
	Config *Config
	// Rules are the xvsadm commands that build its services from an empty
	// table: --set for lvs_timeouts, then per virtual service its -A, its
	// real servers' -a, and its health checks.
	Rules []Rule
	// Warnings are what was understood with a default, approximately, or
	// not at all (keepalived's own keywords aside).
	Warnings []Diag
}

// Health-check mapping limits: xvs's own (internal/ipvs).
const (
	minInterval = 100 * time.Millisecond
	maxInterval = time.Hour
	maxFail     = 100
	// MaxRules bounds the commands one configuration expands to (groups
	// multiply a virtual server's real servers by their addresses): twice
	// the real servers the model can hold (ipvs.MaxDests).
	MaxRules = 2 * ipvs.MaxDests
)

// Load reads the keepalived configuration at path, interprets it as
// keepalived 2.2 does and maps its LVS part to xvsadm commands. A
// configuration with an unsupported feature or an error is refused: the
// error is an *Error listing every such diagnostic with its file:line.
func Load(path string, o Options) (*Loaded, error) {
	ds := &diags{}
	root := parseTree(path, o, ds)
	cfg := interpret(root, ds)
	m := &mapper{ds: ds, cfg: cfg, userExists: o.UserExists}
	if m.userExists == nil {
		m.userExists = func(name string) bool { _, err := user.Lookup(name); return err == nil }
	}
	m.run()
	sortDiags(ds.list)
	if err := ds.err(); err != nil {
		return nil, err
	}
	return &Loaded{Path: path, Config: cfg, Rules: m.rules, Warnings: ds.warnings()}, nil
}

// sortDiags orders diagnostics by file and line, keeping the order of
// those on one line.
func sortDiags(list []Diag) {
	slices.SortStableFunc(list, func(a, b Diag) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		return a.Pos.Line - b.Pos.Line
	})
}

type mapper struct {
	ds         *diags
	cfg        *Config
	rules      []Rule
	userExists func(string) bool
}

// add parses argv as xvsadm does and records it; a command the grammar
// refuses is an error at pos.
func (m *mapper) add(pos Pos, argv ...string) bool {
	cmd, err := ipvsadm.Parse(argv)
	if err != nil {
		m.ds.invalid(pos, "%s (as xvsadm %s)", strings.TrimSpace(err.Error()), strings.Join(argv, " "))
		return false
	}
	m.rules = append(m.rules, Rule{Pos: pos, Argv: argv, Cmd: cmd})
	return true
}

func (m *mapper) run() {
	if sd := m.cfg.SyncDaemon; sd != nil {
		m.ds.warn(sd.Pos, "%s", sd.Mapping())
	}
	if t := m.cfg.Timeouts; t != (Timeouts{}) {
		m.add(m.cfg.TimeoutsPos, "--set", u32(t.TCP), u32(t.TCPFin), u32(t.UDP))
	}
	seen := map[string]Pos{}
	for _, vs := range m.cfg.VirtualServers {
		m.virtualServer(vs, seen)
	}
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// virtualServer maps one virtual_server (every address of a group).
func (m *mapper) virtualServer(vs *VirtualServer, seen map[string]Pos) {
	if vs.IsFwmark || len(vs.Addrs) == 0 {
		return
	}
	if vs.Protocol == ipvs.SCTP {
		m.ds.unsupported(vs.kw["protocol"], "SCTP", "protocol SCTP: xvs serves TCP and UDP virtual services")
		return
	}
	if vs.Scheduler == "lblc" || vs.Scheduler == "lblcr" {
		m.ds.unsupported(firstPos(vs, "lvs_sched", "lb_algo"), vs.Scheduler, "scheduler %s is not implemented by xvs (rr wrr lc wlc sh dh mh sed nq fo ovf twos are)", vs.Scheduler)
		return
	}
	if vs.Sorry != nil {
		m.ds.unsupported(vs.Sorry.Pos, "sorry_server", "sorry_server is not supported by xvs")
	}
	for _, kw := range []string{"sorry_server_inhibit", "sorry_server_lvs_method"} {
		if p, ok := vs.kw[kw]; ok {
			m.ds.unsupported(p, "sorry_server", "%s is not supported by xvs (no sorry_server)", kw)
		}
	}
	for _, kw := range []string{"quorum_up", "quorum_down"} {
		if p, ok := vs.kw[kw]; ok {
			m.ds.unsupported(p, "quorum", "%s: xvs runs no quorum scripts", kw)
		}
	}
	if p, ok := vs.kw["quorum"]; ok && vs.QuorumUp == "" && vs.QuorumDown == "" && vs.Quorum != 1 {
		m.ds.warn(p, "quorum %d has no effect in xvs (keepalived acts on it only through quorum_up/quorum_down scripts and a sorry_server)", vs.Quorum)
	}
	if p, ok := vs.kw["hysteresis"]; ok && vs.QuorumUp == "" && vs.QuorumDown == "" {
		m.ds.warn(p, "hysteresis has no effect in xvs (no quorum scripts)")
	}
	if p, ok := vs.kw["hashed"]; ok {
		m.ds.warn(p, "hashed ignored (an IPVS-internal service flag)")
	}
	if p, ok := vs.kw["ha_suspend"]; ok {
		m.ds.warn(p, "ha_suspend ignored: xvs checks its real servers whether or not the virtual address is local")
	}
	if p, ok := vs.kw["omega"]; ok {
		m.ds.warn(p, "omega ignored: xvs runs no notify or quorum scripts at shutdown")
	}
	for _, kw := range []string{"smtp_alert", "snmp_name", "ip_family"} {
		if p, ok := vs.kw[kw]; ok && kw != "ip_family" {
			m.ds.warn(p, "%s ignored: xvs sends no mail and has no SNMP agent; it logs health changes and exports metrics", kw)
		}
	}
	if vs.PE != "" && vs.PersistenceTimeout == 0 {
		m.ds.warn(vs.PEPos, "persistence_engine %s ignored without persistence_timeout (as keepalived does)", vs.PE)
	}
	if vs.Group != "" && len(vs.Addrs) > 1 && hasChecks(vs) {
		m.ds.warn(vs.Pos, "virtual server group %s: xvs probes each real server once per service (%d services), keepalived once", vs.Group, len(vs.Addrs))
	}
	if n := len(vs.Addrs) * (2 + 2*len(vs.RealServers)); len(m.rules)+n > MaxRules {
		m.ds.invalid(vs.Pos, "virtual server %s expands to more than %d commands", vs.name(), MaxRules)
		return
	}
	checks := make([]*ipvsadm.Check, len(vs.RealServers))
	for i, rs := range vs.RealServers {
		checks[i] = m.check(vs, rs)
	}
	shared := len(checks) > 0
	for _, c := range checks {
		shared = shared && c != nil && *c == *checks[0]
	}
	for _, a := range vs.Addrs {
		svc := []string{protoFlag(vs.Protocol), addrPort(a)}
		key := strings.Join(svc, " ")
		if p, dup := seen[key]; dup {
			m.ds.invalid(vs.Pos, "virtual service %s %s is also declared at %v", vs.Protocol.String(), a, p)
			continue
		}
		seen[key] = vs.Pos
		if !m.add(vs.Pos, append(append([]string{"-A"}, svc...), m.serviceOpts(vs, a)...)...) {
			continue
		}
		for _, rs := range vs.RealServers {
			m.add(rs.Pos, append(append([]string{"-a"}, svc...), m.destOpts(rs)...)...)
		}
		if shared {
			m.add(vs.RealServers[0].Checkers[0].Pos, append(append([]string{"--health-check"}, svc...), checkArgs(checks[0])...)...)
			continue
		}
		for i, rs := range vs.RealServers {
			if checks[i] != nil {
				argv := append(append([]string{"--health-check"}, svc...), "-r", addrPort(rs.Addr))
				m.add(rs.Checkers[0].Pos, append(argv, checkArgs(checks[i])...)...)
			}
		}
	}
}

func hasChecks(vs *VirtualServer) bool {
	return slices.ContainsFunc(vs.RealServers, func(rs *RealServer) bool { return len(rs.Checkers) > 0 })
}

func firstPos(vs *VirtualServer, kws ...string) Pos {
	for _, kw := range kws {
		if p, ok := vs.kw[kw]; ok {
			return p
		}
	}
	return vs.Pos
}

func protoFlag(p ipvs.Protocol) string {
	if p == ipvs.TCP {
		return "-t"
	}
	return "-u"
}

// addrPort renders an address as ipvsadm takes it (IPv6 in brackets);
// port 0 (any port, or the service's for a real server) is left out.
func addrPort(a netip.AddrPort) string {
	if a.Port() != 0 {
		return a.String()
	}
	if a.Addr().Is6() {
		return "[" + a.Addr().String() + "]"
	}
	return a.Addr().String()
}

// serviceOpts are the -A options of a virtual server.
func (m *mapper) serviceOpts(vs *VirtualServer, a netip.AddrPort) []string {
	o := []string{"-s", vs.Scheduler}
	if vs.PersistenceTimeout != 0 {
		o = append(o, "-p", u32(vs.PersistenceTimeout))
		if vs.GranularitySet {
			if a.Addr().Is4() && vs.Granularity4.IsValid() {
				o = append(o, "-M", vs.Granularity4.String())
			} else if a.Addr().Is6() && vs.Granularity6 != 0 {
				o = append(o, "-M", strconv.Itoa(vs.Granularity6))
			}
		}
		if vs.PE != "" {
			o = append(o, "--pe", vs.PE)
		}
	}
	if vs.OnePacket {
		o = append(o, "-o")
	}
	if vs.SchedFlags != 0 {
		var f []string
		for i, name := range schedFlagNames(vs.Scheduler) {
			if vs.SchedFlags&(1<<i) != 0 {
				f = append(f, name)
			}
		}
		o = append(o, "-b", strings.Join(f, ","))
	}
	return o
}

func schedFlagNames(sched string) [3]string {
	switch sched {
	case "sh", "mh":
		return [3]string{sched + "-fallback", sched + "-port", "flag-3"}
	}
	return [3]string{"flag-1", "flag-2", "flag-3"}
}

// destOpts are the -a options of a real server.
func (m *mapper) destOpts(rs *RealServer) []string {
	o := []string{"-r", addrPort(rs.Addr)}
	switch rs.Method.Fwd {
	case FwdDR:
		o = append(o, "-g")
	case FwdTUN:
		o = append(o, "-i", "--tun-type", rs.Method.TunType)
		switch rs.Method.TunType {
		case "gue":
			o = append(o, "--tun-port", strconv.Itoa(int(rs.Method.TunPort)), "--tun-"+rs.Method.TunCsum)
		case "gre":
			o = append(o, "--tun-"+rs.Method.TunCsum)
		}
	default:
		o = append(o, "-m")
	}
	o = append(o, "-w", strconv.Itoa(rs.Weight))
	if rs.UThreshold != 0 {
		o = append(o, "-x", u32(rs.UThreshold))
	}
	if rs.LThreshold != 0 {
		o = append(o, "-y", u32(rs.LThreshold))
	}
	return o
}

// checkDefaults are keepalived's per-type retry and delay_before_retry
// defaults (checker->default_retry, default_delay_before_retry).
func checkDefaults(t CheckerType) (retry int, delayBeforeRetry time.Duration) {
	switch t {
	case MiscCheck:
		return 0, time.Second
	case HTTPGet, SSLGet:
		return 1, 3 * time.Second
	}
	return 1, time.Second
}

// check maps a real server's checkers to one xvs health check, or nil.
func (m *mapper) check(vs *VirtualServer, rs *RealServer) *ipvsadm.Check {
	var use *Checker
	for _, ck := range rs.Checkers {
		switch ck.Type {
		case TCPCheck, UDPCheck, MiscCheck, HTTPGet, SSLGet:
			if use == nil {
				use = ck
				continue
			}
			m.ds.warn(ck.Pos, "%s not run: xvs runs one check per real server (%s at %v for %v)", ck.Type, use.Type, use.Pos, rs.Addr)
		default:
			m.ds.warn(ck.Pos, "%s is not supported by xvs: real server %v stays up without it", ck.Type, rs.Addr)
		}
	}
	if use == nil {
		return nil
	}
	ck := use
	for _, ig := range ck.ignored {
		if ig.warn {
			m.ds.warn(ig.pos, "%s ignored: %s", ig.kw, ig.why)
		} else {
			m.ds.warn(ig.pos, "%s: %s", ig.kw, ig.why)
		}
	}
	c := &ipvsadm.Check{Rise: 1, OnFail: "expire"}
	if rs.Inhibit {
		c.OnFail = "keep"
	}
	c.Interval = m.clip(ck.Pos, "delay_loop", ck.Timers.DelayLoop, minInterval, maxInterval)
	retry, dbr := checkDefaults(ck.Type)
	if ck.Timers.Retry >= 0 {
		retry = ck.Timers.Retry
	}
	if retry+1 > maxFail {
		m.ds.warn(ck.Pos, "retry %d clipped to %d (xvs's --fail is at most %d)", retry, maxFail-1, maxFail)
		retry = maxFail - 1
	}
	c.Fail = retry + 1
	if ck.Timers.DelayBeforeRetry >= 0 {
		dbr = ck.Timers.DelayBeforeRetry
	}
	if retry > 0 {
		c.RetryInterval = m.clip(ck.Pos, "delay_before_retry", dbr, minInterval, maxInterval)
	}
	if ck.Timers.Warmup >= 0 && ck.Timers.Warmup != ck.Timers.DelayLoop {
		m.ds.warn(ck.Pos, "warmup ignored: xvs spreads the first probes over the interval")
	}
	c.StartDown = ck.Alpha
	timeout := ck.Timers.ConnectTimeout
	switch ck.Type {
	case TCPCheck:
		c.Type = "tcp"
	case UDPCheck:
		c.Type = "udp"
	case MiscCheck:
		c.Type = "script"
		timeout = vs.Timers.DelayLoop // keepalived: misc_timeout, else the virtual server's delay_loop
		if ck.Timeout > 0 {
			timeout = ck.Timeout
		}
		c.Script = ipvsadm.JoinCommand(ck.Script)
		c.Dynamic = ck.Dynamic
		c.ScriptUser = m.scriptUser(ck)
	case HTTPGet, SSLGet:
		c.Type = "http"
		if ck.Type == SSLGet {
			c.Type = "https"
		}
		u := ck.URLs[0]
		for _, other := range ck.URLs[1:] {
			m.ds.warn(other.Pos, "url %s not checked: xvs checks one url per real server (%s)", other.Path, u.Path)
		}
		c.URL, c.Digest = u.Path, u.Digest
		c.Codes = strings.Join(u.StatusCodes, ",")
		c.VirtualHost = u.Virtualhost
		if c.VirtualHost == "" {
			c.VirtualHost = ck.Virtualhost
		}
	}
	if timeout > c.Interval {
		m.ds.warn(ck.Pos, "%s timeout %v longer than its interval %v: xvs uses the interval", ck.Type, timeout, c.Interval)
		timeout = c.Interval
	}
	c.Timeout = m.clip(ck.Pos, "timeout", timeout, time.Millisecond, maxInterval)
	if ck.ConnectPort != 0 && ck.Type != MiscCheck {
		c.Port = ck.ConnectPort
	}
	if ck.ConnectIP.IsValid() && ck.ConnectIP != rs.Addr.Addr() {
		m.ds.warn(ck.Pos, "connect_ip %v ignored: xvs probes the real server's own address %v", ck.ConnectIP, rs.Addr.Addr())
	}
	// Durations as --interval takes them: milliseconds.
	c.Interval = c.Interval.Truncate(time.Millisecond)
	c.Timeout = max(c.Timeout.Truncate(time.Millisecond), time.Millisecond)
	c.RetryInterval = c.RetryInterval.Truncate(time.Millisecond)
	return c
}

// clip bounds a duration to xvs's range, warning when it changes it.
func (m *mapper) clip(pos Pos, what string, d, lo, hi time.Duration) time.Duration {
	if d < lo {
		m.ds.warn(pos, "%s %v raised to %v (xvs's minimum)", what, d, lo)
		return lo
	}
	if d > hi {
		m.ds.warn(pos, "%s %v lowered to %v (xvs's maximum)", what, d, hi)
		return hi
	}
	return d
}

// scriptUser is the user a MISC_CHECK script runs as: its "user", else
// global_defs' script_user, else keepalived_script when that user exists
// (keepalived's default), else the daemon's own user.
func (m *mapper) scriptUser(ck *Checker) string {
	spec := ck.User
	if spec == "" {
		spec = m.cfg.ScriptUser
	}
	if spec == "" && m.userExists("keepalived_script") {
		spec = "keepalived_script"
	}
	return strings.Replace(spec, " ", ":", 1)
}

// checkArgs renders a check as --health-check options.
func checkArgs(c *ipvsadm.Check) []string {
	a := []string{"--check", c.Type, "--interval", ipvsadm.FormatSeconds(c.Interval),
		"--check-timeout", ipvsadm.FormatSeconds(c.Timeout), "--fail", strconv.Itoa(c.Fail), "--rise", strconv.Itoa(c.Rise)}
	if c.RetryInterval != 0 {
		a = append(a, "--retry-interval", ipvsadm.FormatSeconds(c.RetryInterval))
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

// Build applies the rules to cfg, normally an empty configuration, in
// order: the model validates them as it validates xvsadm's commands. An
// error is an *Error naming the rule's file:line; cfg may then hold the
// rules before it, so build into a scratch configuration.
func (l *Loaded) Build(cfg *ipvs.Config) error {
	for _, r := range l.Rules {
		if err := rules.Apply(cfg, r.Cmd); err != nil {
			return &Error{Diags: []Diag{{Pos: r.Pos, Severity: Invalid,
				Msg: fmt.Sprintf("%v (as xvsadm %s)", err, strings.Join(r.Argv, " "))}}}
		}
	}
	return nil
}
