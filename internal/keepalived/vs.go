package keepalived

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
)

// virtualServer reads a virtual_server block, then applies keepalived's
// validate_check_config defaults.
func (in *interp) virtualServer(n *Node) {
	a1, ok1 := in.need(n, 1)
	if !ok1 {
		return
	}
	vs := &VirtualServer{Pos: n.Pos, Quorum: 1, Weight: 1, Timers: Timers{
		DelayLoop: DefaultDelayLoop, DelayBeforeRetry: -1, ConnectTimeout: DefaultConnectTimeout, Warmup: -1, Retry: -1,
	}, kw: map[string]Pos{}}
	switch a1 {
	case "group":
		name, ok := in.need(n, 2)
		if !ok {
			return
		}
		g := in.groups[name]
		if g == nil {
			in.ds.invalid(n.Pos, "virtual server group %s specified but not configured", name)
			return
		}
		for _, p := range g.fwmarks {
			in.ds.unsupported(p, "fwmark", "virtual server group %s has a fwmark entry: xvs has no firewall-mark services", name)
		}
		if g.bad {
			return
		}
		vs.Group = name
		vs.Addrs = slices.Clone(g.addrs)
	case "fwmark":
		m, ok := in.need(n, 2)
		if !ok {
			return
		}
		v, ok := parseUint(m, 0, 1<<32-1)
		if !ok {
			in.ds.invalid(n.Pos, "virtual server fwmark '%s' must be in [0, %d]", m, uint32(1<<32-1))
			return
		}
		vs.Fwmark, vs.IsFwmark = uint32(v), true
		in.ds.unsupported(n.Pos, "fwmark", "virtual_server fwmark %d: xvs has no firewall-mark services", v)
	default:
		a, ok := parseAddr(a1)
		port := uint16(0)
		if p, has := n.Arg(2); has && ok {
			port, ok = parsePort(p)
		}
		if !ok {
			in.ds.invalid(n.Pos, "invalid virtual server IP address/port %s", strings.Join(n.Words[1:], " "))
			return
		}
		vs.Addrs = []netip.AddrPort{netip.AddrPortFrom(a, port)}
	}
	if len(n.Words) > 3 {
		in.ds.invalid(n.Pos, "virtual_server has extra parameters %s", strings.Join(n.Words[3:], " "))
	}
	if !n.HasBlock {
		in.ds.invalid(n.Pos, "virtual_server needs a '{' block")
		return
	}
	for _, c := range n.Block {
		in.vsKeyword(vs, c)
	}
	in.validate(vs)
	in.cfg.VirtualServers = append(in.cfg.VirtualServers, vs)
}

// vsKeyword handles one keyword of a virtual_server block.
func (in *interp) vsKeyword(vs *VirtualServer, c *Node) {
	kw := c.Keyword()
	if kw != "real_server" {
		in.noBlock(c)
	}
	vs.kw[kw] = c.Pos
	switch kw {
	case "real_server":
		in.realServer(vs, c)
	case "ip_family":
		f, ok := in.need(c, 1)
		if ok && f != "inet" && f != "inet6" {
			in.ds.invalid(c.Pos, "unknown address family %s", f)
		}
	case "delay_loop":
		in.timer(c, &vs.Timers.DelayLoop, time.Microsecond)
	case "delay_before_retry":
		in.timer(c, &vs.Timers.DelayBeforeRetry, 0)
	case "connect_timeout":
		in.timer(c, &vs.Timers.ConnectTimeout, time.Microsecond)
	case "warmup":
		in.timer(c, &vs.Timers.Warmup, 0)
	case "retry":
		in.retry(c, &vs.Timers.Retry)
	case "inhibit_on_failure":
		vs.Inhibit = true
	case "lb_algo", "lvs_sched":
		s, ok := in.need(c, 1)
		if !ok {
			return
		}
		if !slices.Contains(lvsSchedulers, s) {
			in.ds.invalid(c.Pos, "invalid lvs_scheduler '%s'", s)
			return
		}
		vs.Scheduler = s
	case "hashed":
		vs.Hashed = true
	case "ops":
		vs.OnePacket = true
	case "flag-1":
		vs.SchedFlags |= 1
	case "flag-2":
		vs.SchedFlags |= 2
	case "flag-3":
		vs.SchedFlags |= 4
	case "sh-port", "sh-fallback", "mh-port", "mh-fallback":
		// keepalived's lbflags_handler: the flags of the scheduler set so
		// far; the other scheduler's flags are dropped without a word.
		switch vs.Scheduler {
		case "sh", "mh":
			if strings.HasPrefix(kw, vs.Scheduler+"-") {
				if strings.HasSuffix(kw, "-fallback") {
					vs.SchedFlags |= 1
				} else {
					vs.SchedFlags |= 2
				}
			} else {
				in.ds.warn(c.Pos, "%s does not apply to the %s scheduler - ignoring (as keepalived does)", kw, vs.Scheduler)
			}
		default:
			in.ds.warn(c.Pos, "%s only applies to the %s scheduler (set lvs_sched before it) - ignoring", kw, kw[:2])
		}
	case "lb_kind", "lvs_method":
		in.method(c, &vs.Method, "virtual")
	case "persistence_engine":
		s, ok := in.need(c, 1)
		if !ok {
			return
		}
		if len(s) > maxPENameLen {
			in.ds.warn(c.Pos, "persistence_name too long, truncating - %s", s)
			s = s[:maxPENameLen]
		}
		vs.PE, vs.PEPos = s, c.Pos
	case "persistence_timeout":
		if len(c.Words) < 2 {
			vs.PersistenceTimeout = DefaultPersistenceTimeout
			return
		}
		v, ok := parseUint(c.Words[1], 1, MaxPersistenceTimeout)
		if !ok {
			in.ds.invalid(c.Pos, "persistence_timeout invalid (1..%d)", MaxPersistenceTimeout)
			return
		}
		vs.PersistenceTimeout = uint32(v)
	case "persistence_granularity":
		in.granularity(vs, c)
	case "protocol":
		p, ok := in.need(c, 1)
		if !ok {
			return
		}
		switch strings.ToUpper(p) {
		case "TCP":
			vs.Protocol = ipvs.TCP
		case "UDP":
			vs.Protocol = ipvs.UDP
		case "SCTP":
			vs.Protocol = ipvs.SCTP
		default:
			in.ds.invalid(c.Pos, "unknown protocol %s", p)
		}
	case "ha_suspend":
		vs.HASuspend = true
	case "virtualhost":
		if h, ok := in.need(c, 1); ok {
			vs.Virtualhost = h
		}
	case "smtp_alert":
		in.optBool(c)
	case "snmp_name":
		in.need(c, 1)
	case "alpha":
		vs.Alpha = true
	case "omega":
		vs.Omega = true
	case "quorum_up":
		if s, ok := in.need(c, 1); ok {
			vs.QuorumUp = s
		}
	case "quorum_down":
		if s, ok := in.need(c, 1); ok {
			vs.QuorumDown = s
		}
	case "quorum":
		v, ok := parseUint(argOr(c, 1), 1, 1<<32-1)
		if !ok {
			in.ds.invalid(c.Pos, "quorum %s must be in [1, %d]", argOr(c, 1), uint32(1<<32-1))
			return
		}
		vs.Quorum = uint32(v)
	case "hysteresis":
		v, ok := parseUint(argOr(c, 1), 0, 1<<32-1)
		if !ok {
			in.ds.invalid(c.Pos, "hysteresis %s must be in [0, %d]", argOr(c, 1), uint32(1<<32-1))
			return
		}
		vs.Hysteresis = uint32(v)
	case "weight":
		v, ok := parseUint(argOr(c, 1), 1, MaxWeight)
		if !ok {
			in.ds.invalid(c.Pos, "virtual server weight %s is outside range 1-%d", argOr(c, 1), MaxWeight)
			return
		}
		vs.Weight = int(v)
	case "sorry_server":
		ip, ok := in.need(c, 1)
		if !ok {
			return
		}
		a, ok := parseAddr(ip)
		port := uint16(0)
		if p, has := c.Arg(2); has && ok {
			port, ok = parsePort(p)
		}
		if !ok {
			in.ds.invalid(c.Pos, "invalid sorry server IP address %s", strings.Join(c.Words[1:], " "))
			return
		}
		vs.Sorry = &RealServer{Pos: c.Pos, Addr: netip.AddrPortFrom(a, port), Weight: 1, Method: vs.Method}
	case "sorry_server_inhibit":
	case "sorry_server_lvs_method":
		var m Method
		in.method(c, &m, "sorry")
	default:
		in.ds.invalid(c.Pos, "unknown keyword '%s' in virtual_server", kw)
	}
}

func argOr(n *Node, i int) string {
	a, _ := n.Arg(i)
	return a
}

// timer reads a <TIMER> argument at least lo.
func (in *interp) timer(c *Node, dst *time.Duration, lo time.Duration) {
	s, ok := in.need(c, 1)
	if !ok {
		return
	}
	d, ok := parseTimer(s, lo, maxTimer*time.Second)
	if !ok {
		in.ds.invalid(c.Pos, "%s '%s' invalid", c.Keyword(), s)
		return
	}
	*dst = d
}

func (in *interp) retry(c *Node, dst *int) {
	s, ok := in.need(c, 1)
	if !ok {
		return
	}
	v, ok := parseUint(s, 1, 1<<32-1)
	if !ok {
		in.ds.invalid(c.Pos, "retry value invalid - %s", s)
		return
	}
	*dst = int(min(v, 1<<31-1))
}

// method reads lvs_method/lb_kind: NAT|DR|TUN [type ipip|gue|gre] [port N]
// [nocsum|csum|remcsum]. On error m is left as it was (keepalived keeps
// the previous setting).
func (in *interp) method(c *Node, m *Method, who string) {
	s, ok := in.need(c, 1)
	if !ok {
		return
	}
	var out Method
	switch s {
	case "NAT":
		out.Fwd = FwdNAT
	case "DR":
		out.Fwd = FwdDR
	case "TUN":
		out.Fwd = FwdTUN
	default:
		in.ds.invalid(c.Pos, "unknown [%s] routing method for %s server", s, who)
		return
	}
	out.TunType, out.TunCsum = "ipip", "nocsum"
	for i := 2; i < len(c.Words); i++ {
		switch w := c.Words[i]; w {
		case "type":
			t, ok := c.Arg(i + 1)
			if !ok {
				in.ds.invalid(c.Pos, "missing tunnel type for %s server", who)
				return
			}
			if t != "ipip" && t != "gue" && t != "gre" {
				in.ds.invalid(c.Pos, "unknown tunnel type %s for %s server", t, who)
				return
			}
			out.TunType = t
			i++
		case "port":
			p, ok := c.Arg(i + 1)
			v, ok2 := parseUint(p, 1, 65535)
			if !ok || !ok2 {
				in.ds.invalid(c.Pos, "invalid gue tunnel port %s for %s server", p, who)
				return
			}
			out.TunPort = uint16(v)
			i++
		case "nocsum", "csum", "remcsum":
			out.TunCsum = w
		default:
			in.ds.invalid(c.Pos, "invalid tunnel option %s for %s server", w, who)
			return
		}
	}
	if (out.TunType == "gue") != (out.TunPort != 0) {
		in.ds.invalid(c.Pos, "gue tunnels require port, otherwise cannot have port")
		return
	}
	if out.TunType == "ipip" && out.TunCsum != "nocsum" {
		in.ds.invalid(c.Pos, "ipip tunnels do not support checksum option")
		return
	}
	if out.TunType == "gre" && out.TunCsum == "remcsum" {
		in.ds.invalid(c.Pos, "gre tunnels do not support remote checksum option")
		return
	}
	if out.Fwd != FwdTUN && len(c.Words) > 2 {
		in.ds.invalid(c.Pos, "tunnel options for a %s %s server", s, who)
		return
	}
	*m = out
}

// granularity is pgr_handler: an IPv4 mask (any, as ipvsadm and the
// kernel accept) or an IPv6 prefix length; it makes the service
// persistent (360 s) if it is not yet.
func (in *interp) granularity(vs *VirtualServer, c *Node) {
	s, ok := in.need(c, 1)
	if !ok {
		return
	}
	is6 := !strings.Contains(s, ".")
	if len(vs.Addrs) > 0 {
		is6 = vs.Addrs[0].Addr().Is6()
	}
	if is6 {
		v, ok := parseUint(s, 1, 128)
		if !ok {
			in.ds.invalid(c.Pos, "invalid IPv6 persistence_granularity specified - %s", s)
			return
		}
		vs.Granularity6 = int(v)
	} else {
		a, ok := parseAddr(s)
		if !ok || !a.Is4() {
			in.ds.invalid(c.Pos, "invalid IPv4 persistence_granularity specified - %s", s)
			return
		}
		vs.Granularity4 = a
	}
	vs.GranularitySet = true
	if vs.PersistenceTimeout == 0 {
		vs.PersistenceTimeout = DefaultPersistenceTimeout
	}
}

// realServer reads a real_server block. Like keepalived's alloc_rs, it
// takes the virtual server's forwarding method as it is at this point.
func (in *interp) realServer(vs *VirtualServer, n *Node) {
	ip, ok := in.need(n, 1)
	if !ok {
		return
	}
	a, ok := parseAddr(ip)
	port := uint16(0)
	if p, has := n.Arg(2); has && ok {
		port, ok = parsePort(p)
	}
	if !ok {
		in.ds.invalid(n.Pos, "invalid real server ip address/port %s", strings.Join(n.Words[1:], " "))
		return
	}
	if len(n.Words) > 3 {
		in.ds.invalid(n.Pos, "real_server has extra parameters %s", strings.Join(n.Words[3:], " "))
	}
	rs := &RealServer{Pos: n.Pos, Addr: netip.AddrPortFrom(a, port), Method: vs.Method, Timers: unsetTimers()}
	for _, c := range n.Block {
		kw := c.Keyword()
		if isChecker(kw) {
			in.checker(rs, c)
			continue
		}
		in.noBlock(c)
		switch kw {
		case "weight":
			v, ok := parseUint(argOr(c, 1), 0, MaxWeight)
			if !ok {
				in.ds.invalid(c.Pos, "real server weight %s is outside range 0-%d", argOr(c, 1), MaxWeight)
				continue
			}
			rs.Weight, rs.weightSet = int(v), true
		case "lvs_method":
			in.method(c, &rs.Method, "real")
		case "uthreshold", "lthreshold":
			v, ok := parseUint(argOr(c, 1), 0, 1<<32-1)
			if !ok {
				in.ds.invalid(c.Pos, "invalid real_server %s '%s'", kw, argOr(c, 1))
				continue
			}
			if kw == "uthreshold" {
				rs.UThreshold = uint32(v)
			} else {
				rs.LThreshold = uint32(v)
			}
		case "inhibit_on_failure":
			if v, ok := in.optBool(c); ok {
				rs.Inhibit, rs.inhibitSet = v, true
			}
		case "alpha":
			if v, ok := in.optBool(c); ok {
				rs.Alpha, rs.alphaSet = v, true
			}
		case "notify_up":
			rs.NotifyUp = argOr(c, 1)
			in.ds.warn(c.Pos, "notify_up script not run: xvs logs health state changes and exports them as metrics")
		case "notify_down":
			rs.NotifyDown = argOr(c, 1)
			in.ds.warn(c.Pos, "notify_down script not run: xvs logs health state changes and exports them as metrics")
		case "retry":
			in.retry(c, &rs.Timers.Retry)
		case "delay_before_retry":
			in.timer(c, &rs.Timers.DelayBeforeRetry, 0)
		case "warmup":
			in.timer(c, &rs.Timers.Warmup, 0)
		case "connect_timeout":
			in.timer(c, &rs.Timers.ConnectTimeout, time.Microsecond)
		case "delay_loop":
			in.timer(c, &rs.Timers.DelayLoop, time.Microsecond)
		case "smtp_alert":
			in.optBool(c)
		case "virtualhost":
			if h, ok := in.need(c, 1); ok {
				rs.Virtualhost = h
			}
		case "snmp_name":
			in.need(c, 1)
		default:
			in.ds.invalid(c.Pos, "unknown keyword '%s' in real_server", kw)
		}
	}
	vs.RealServers = append(vs.RealServers, rs)
}

func isChecker(kw string) bool {
	switch CheckerType(kw) {
	case TCPCheck, UDPCheck, MiscCheck, HTTPGet, SSLGet, SMTPCheck, DNSCheck, PingCheck, FileCheck, BFDCheck:
		return true
	}
	return false
}

// checker reads a checker block.
func (in *interp) checker(rs *RealServer, n *Node) {
	ck := &Checker{Pos: n.Pos, Type: CheckerType(n.Keyword()), Timers: unsetTimers()}
	if len(n.Words) > 1 {
		in.ds.invalid(n.Pos, "%s has extra parameters %s", n.Keyword(), strings.Join(n.Words[1:], " "))
	}
	if !n.HasBlock {
		in.ds.invalid(n.Pos, "%s needs a '{' block", n.Keyword())
		return
	}
	conn := ck.Type != MiscCheck && ck.Type != FileCheck && ck.Type != BFDCheck
	for _, c := range n.Block {
		kw := c.Keyword()
		if kw != "url" && kw != "host" {
			in.noBlock(c)
		}
		switch {
		case kw == "retry" || (kw == "nb_get_retry" && (ck.Type == HTTPGet || ck.Type == SSLGet)):
			in.retry(c, &ck.Timers.Retry)
		case kw == "delay_before_retry":
			in.timer(c, &ck.Timers.DelayBeforeRetry, 0)
		case kw == "warmup":
			in.timer(c, &ck.Timers.Warmup, 0)
		case kw == "delay_loop":
			in.timer(c, &ck.Timers.DelayLoop, time.Microsecond)
		case kw == "alpha":
			if v, ok := in.optBool(c); ok {
				ck.Alpha, ck.alphaSet = v, true
			}
		case kw == "log_all_failures":
			in.optBool(c)
		case conn && kw == "connect_ip":
			s, ok := in.need(c, 1)
			if !ok {
				continue
			}
			a, ok := parseAddr(s)
			if !ok {
				in.ds.invalid(c.Pos, "invalid connect_ip address %s", s)
				continue
			}
			ck.ConnectIP = a
		case conn && kw == "connect_port":
			v, ok := parseUint(argOr(c, 1), 1, 65535)
			if !ok {
				in.ds.invalid(c.Pos, "invalid checker connect_port '%s'", argOr(c, 1))
				continue
			}
			ck.ConnectPort = uint16(v)
		case conn && kw == "connect_timeout":
			in.timer(c, &ck.Timers.ConnectTimeout, time.Microsecond)
		case conn && (kw == "bindto" || kw == "bind_port" || kw == "bind_if" || kw == "fwmark"):
			in.need(c, 1)
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs's probes use the source address and port the kernel chooses", true})
		default:
			in.checkerKeyword(ck, c)
		}
	}
	switch ck.Type {
	case MiscCheck:
		if len(ck.Script) == 0 {
			in.ds.invalid(n.Pos, "no script path has been specified for MISC_CHECK")
			return
		}
	case HTTPGet, SSLGet:
		if len(ck.URLs) == 0 {
			in.ds.invalid(n.Pos, "HTTP/SSL_GET checker has no urls specified")
			return
		}
	}
	rs.Checkers = append(rs.Checkers, ck)
}

// checkerKeyword handles the keywords particular to one checker type.
func (in *interp) checkerKeyword(ck *Checker, c *Node) {
	kw := c.Keyword()
	unknown := func() { in.ds.invalid(c.Pos, "unknown keyword '%s' in %s", kw, ck.Type) }
	switch ck.Type {
	case MiscCheck:
		switch kw {
		case "misc_path":
			argv, text, ok := scriptWords(c.Text)
			if !ok || len(argv) == 0 {
				in.ds.invalid(c.Pos, "invalid misc_path %s", strings.TrimPrefix(c.Text, "misc_path"))
				return
			}
			if w, _ := ipvsadm.SplitCommand(c.Text); len(w) > 2 {
				in.ds.warn(c.Pos, "misc_path: words after the first are dropped unless the script is quoted (as keepalived does): running %s", ipvsadm.JoinCommand(argv))
			}
			ck.Script, ck.ScriptText = argv, text
		case "misc_timeout":
			v, ok := parseUint(argOr(c, 1), 0, 1<<32/1000000)
			if !ok {
				in.ds.invalid(c.Pos, "invalid misc_timeout value '%s'", argOr(c, 1))
				return
			}
			ck.Timeout = time.Duration(v) * time.Second
		case "misc_dynamic":
			ck.Dynamic = true
		case "user":
			u, ok := in.need(c, 1)
			if !ok {
				return
			}
			ck.User = u
			if g, ok := c.Arg(2); ok {
				ck.User = u + " " + g
			}
		default:
			unknown()
		}
	case HTTPGet, SSLGet:
		switch kw {
		case "url":
			in.url(ck, c)
		case "virtualhost":
			if h, ok := in.need(c, 1); ok {
				ck.Virtualhost = h
			}
		case "http_protocol":
			p, ok := in.need(c, 1)
			if ok && p != "1.0" && p != "1.1" && p != "1.0C" && p != "1.0c" {
				in.ds.invalid(c.Pos, "invalid http_protocol version %s", p)
				return
			}
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs's HTTP checks speak HTTP/1.1 with Connection: close", false})
		case "fast_recovery":
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs checks every url of a probe at once", false})
		case "enable_sni":
			if ck.Type != SSLGet {
				unknown()
				return
			}
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs's https check sends the virtualhost as SNI when one is set", false})
		default:
			unknown()
		}
	case UDPCheck:
		switch kw {
		case "payload", "require_reply", "min_reply_length", "max_reply_length":
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs's udp check sends a double CRLF and fails only on an ICMP port unreachable", true})
		default:
			unknown()
		}
	case SMTPCheck:
		switch kw {
		case "helo_name", "host":
		default:
			unknown()
		}
	case DNSCheck:
		switch kw {
		case "type", "name":
		default:
			unknown()
		}
	case FileCheck:
		switch kw {
		case "track_file", "weight", "dynamic":
		default:
			unknown()
		}
	case BFDCheck:
		switch kw {
		case "name":
		default:
			unknown()
		}
	case TCPCheck, PingCheck:
		unknown()
	}
}

// url reads an HTTP_GET/SSL_GET url block.
func (in *interp) url(ck *Checker, n *Node) {
	u := URL{Pos: n.Pos}
	if !n.HasBlock {
		in.ds.invalid(n.Pos, "url needs a '{' block")
		return
	}
	for _, c := range n.Block {
		in.noBlock(c)
		switch kw := c.Keyword(); kw {
		case "path":
			if p, ok := in.need(c, 1); ok {
				u.Path = p
			}
		case "digest":
			d, ok := in.need(c, 1)
			if !ok {
				continue
			}
			if b, err := hex.DecodeString(d); err != nil || len(b) != 16 {
				in.ds.invalid(c.Pos, "digest '%s' is not an MD5 digest in hex", d)
				continue
			}
			u.Digest = strings.ToLower(d)
		case "status_code":
			if len(c.Words) < 2 {
				in.ds.invalid(c.Pos, "status_code requires a code or range")
				continue
			}
			for _, w := range c.Words[1:] {
				lo, hi, isRange := strings.Cut(w, "-")
				if !isRange {
					hi = lo
				}
				a, ok1 := parseUint(lo, 100, 599)
				b, ok2 := parseUint(hi, 100, 599)
				if !ok1 || !ok2 || a > b {
					in.ds.invalid(c.Pos, "invalid HTTP status code %s (100..599)", w)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, w)
			}
		case "virtualhost":
			if h, ok := in.need(c, 1); ok {
				u.Virtualhost = h
			}
		case "regex", "regex_no_match", "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset":
			ck.ignored = append(ck.ignored, ignoredKw{c.Pos, kw, "xvs's HTTP check matches status codes and the digest, not regular expressions", true})
		default:
			in.ds.invalid(c.Pos, "unknown keyword '%s' in url", kw)
		}
	}
	if u.Path == "" {
		in.ds.invalid(n.Pos, "HTTP/SSL_GET checker url has no path")
		return
	}
	ck.URLs = append(ck.URLs, u)
}

// validate applies validate_check_config to one virtual server: defaults
// with keepalived's messages, duplicate real servers, ports, and
// forwarding methods.
func (in *interp) validate(vs *VirtualServer) {
	name := vs.name()
	if len(vs.RealServers) == 0 {
		in.ds.warn(vs.Pos, "virtual server %s has no real servers - ignoring (as keepalived does)", name)
		vs.Addrs = nil
		return
	}
	if !vs.IsFwmark {
		if vs.Protocol == 0 {
			in.ds.warn(vs.Pos, "virtual server %s: no protocol set - defaulting to UDP", name)
			vs.Protocol = ipvs.UDP
		}
		if vs.OnePacket && vs.Protocol != ipvs.UDP {
			in.ds.warn(vs.kw["ops"], "virtual server %s: one packet scheduling requires UDP - resetting", name)
			vs.OnePacket = false
		}
		if vs.PersistenceTimeout == 0 {
			for _, a := range vs.Addrs {
				if a.Port() == 0 {
					in.ds.warn(vs.Pos, "virtual server %s: zero port only valid for persistent services - setting", name)
					vs.PersistenceTimeout = DefaultPersistenceTimeout
					break
				}
			}
		}
	}
	if vs.Scheduler == "" {
		in.ds.warn(vs.Pos, "virtual server %s: no scheduler set, setting default '%s'", name, DefaultScheduler)
		vs.Scheduler = DefaultScheduler
	}
	var kept []*RealServer
	for _, rs := range vs.RealServers {
		dup := slices.ContainsFunc(kept, func(o *RealServer) bool { return o.Addr == rs.Addr })
		if dup {
			in.ds.warn(rs.Pos, "VS %s: real server %v is duplicated - removing second rs", name, rs.Addr)
			continue
		}
		if rs.Method.Fwd == FwdUnset {
			if vs.Method.Fwd == FwdUnset {
				in.ds.warn(vs.Pos, "virtual server %s: no forwarding method set, setting default NAT", name)
				vs.Method = Method{Fwd: FwdNAT, TunType: "ipip", TunCsum: "nocsum"}
			}
			rs.Method = vs.Method
		}
		if !rs.inhibitSet {
			rs.Inhibit = vs.Inhibit
		}
		if !rs.alphaSet {
			rs.Alpha = vs.Alpha
		}
		if !rs.weightSet {
			rs.Weight = vs.Weight
		}
		rs.Timers = rs.Timers.inherit(vs.Timers)
		if rs.Virtualhost == "" {
			rs.Virtualhost = vs.Virtualhost
		}
		if len(vs.Addrs) > 0 && rs.Addr.Addr().Is4() != vs.Addrs[0].Addr().Is4() && rs.Method.Fwd != FwdTUN {
			in.ds.invalid(rs.Pos, "address family of virtual server and real server %v don't match", rs.Addr.Addr())
			continue
		}
		kept = append(kept, rs)
	}
	vs.RealServers = kept
	// Ports: unless NAT, a real server's port is the virtual server's
	// (keepalived resets it and warns when they differ); a NAT real server
	// without a port takes the virtual server's.
	if vs.Group == "" && len(vs.Addrs) == 1 {
		vport := vs.Addrs[0].Port()
		for _, rs := range vs.RealServers {
			switch {
			case rs.Addr.Port() == 0:
				rs.Addr = netip.AddrPortFrom(rs.Addr.Addr(), vport)
			case rs.Method.Fwd != FwdNAT && rs.Addr.Port() != vport:
				in.ds.warn(rs.Pos, "virtual server %s and real server %v ports don't match - resetting", name, rs.Addr)
				rs.Addr = netip.AddrPortFrom(rs.Addr.Addr(), vport)
			}
		}
	}
	if vs.Sorry != nil && vs.Sorry.Method.Fwd == FwdUnset {
		vs.Sorry.Method = vs.Method
	}
	for _, rs := range vs.RealServers {
		for _, ck := range rs.Checkers {
			ck.Timers = ck.Timers.inherit(rs.Timers)
			if !ck.alphaSet {
				ck.Alpha = rs.Alpha
			}
			if ck.Virtualhost == "" {
				ck.Virtualhost = rs.Virtualhost
			}
		}
	}
}

// name is keepalived's FMT_VS.
func (vs *VirtualServer) name() string {
	switch {
	case vs.Group != "":
		return "[" + vs.Group + "]"
	case vs.IsFwmark:
		return "FWM " + itoa(int(vs.Fwmark))
	case len(vs.Addrs) > 0:
		return vs.Protocol.String() + " " + vs.Addrs[0].String()
	}
	return "?"
}

func itoa(i int) string { return strconv.Itoa(i) }

// scriptWords splits a misc_path line as keepalived does: the line is split
// with quotes and escapes, and its second word (the whole script when it
// is quoted) is split again into the command and its arguments. Words
// after the second are dropped, as keepalived drops them; extra reports
// that.
func scriptWords(text string) (argv []string, script string, ok bool) {
	w, ok := ipvsadm.SplitCommand(text)
	if !ok || len(w) < 2 {
		return nil, "", false
	}
	argv, ok = ipvsadm.SplitCommand(w[1])
	return argv, w[1], ok && len(argv) > 0
}
