package keepalived

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// keepalived's defaults.
const (
	// DefaultDelayLoop is KEEPALIVED_DEFAULT_DELAY.
	DefaultDelayLoop = 60 * time.Second
	// DefaultConnectTimeout is the virtual server's connect_timeout.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultPersistenceTimeout is IPVS_SVC_PERSISTENT_TIMEOUT, what a
	// bare persistence_timeout (or persistence_granularity alone) sets.
	DefaultPersistenceTimeout = 360
	// DefaultScheduler is IPVS_DEF_SCHED.
	DefaultScheduler = "wlc"
	// MaxPersistenceTimeout is LVS_MAX_TIMEOUT (31 days).
	MaxPersistenceTimeout = 86400 * 31
	// MaxWeight is IPVS_WEIGHT_LIMIT.
	MaxWeight = 65535
	// maxPENameLen is IP_VS_PENAME_MAXLEN less the NUL.
	maxPENameLen = 15
	// maxIfNameLen is IP_VS_IFNAME_MAXLEN less the NUL.
	maxIfNameLen = 15
	// MaxGroupAddrs bounds the addresses one virtual_server_group expands
	// to: each is a service with every real server of the virtual server.
	MaxGroupAddrs = 4096
	// maxTimer is keepalived's TIMER_MAXIMUM for delay timers, in seconds.
	maxTimer = 1<<31 - 1
)

// lvsSchedulers is keepalived's list of lvs_sched names.
var lvsSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"}

// rootKeywords are keepalived's top-level keywords; the ones xvs does not
// read are skipped without a word.
var rootKeywords = map[string]bool{
	"SSL": true, "bfd_instance": true, "child_wait_time": true, "garp_group": true, "global_defs": true,
	"instance": true, "interface_up_down_delays": true, "linkbeat_interfaces": true, "linkbeat_use_polling": true,
	"namespace_with_ipsets": true, "net_namespace": true, "net_namespace_ipvs": true, "static_ipaddress": true,
	"static_routes": true, "static_rules": true, "track_file": true, "track_group": true, "use_pid_dir": true,
	"virtual_server": true, "virtual_server_group": true, "vrrp_instance": true, "vrrp_script": true,
	"vrrp_sync_group": true, "vrrp_track_file": true, "vrrp_track_process": true, "include_check": true,
}

type interp struct {
	ds     *diags
	cfg    *Config
	groups map[string]*group
}

type group struct {
	pos     Pos
	addrs   []netip.AddrPort
	fwmarks []Pos
	bad     bool
}

// interpret builds the LVS configuration from the top-level nodes.
func interpret(root []*Node, ds *diags) *Config {
	in := &interp{ds: ds, cfg: &Config{}, groups: map[string]*group{}}
	for _, n := range root {
		if n.Keyword() == "virtual_server_group" {
			in.group(n)
		}
	}
	for _, n := range root {
		switch kw := n.Keyword(); kw {
		case "virtual_server_group":
		case "virtual_server":
			in.virtualServer(n)
		case "global_defs":
			in.globalDefs(n)
		case "vrrp_instance":
			in.vrrpInstance(n)
		case "SSL":
			ds.warn(n.Pos, "SSL context ignored: xvs's SSL_GET checks present no client certificate and verify no server certificate")
		case "net_namespace", "net_namespace_ipvs":
			ds.warn(n.Pos, "%s ignored: xvs serves the interface and namespace it runs in", kw)
		default:
			if !rootKeywords[kw] {
				ds.warn(n.Pos, "unknown keyword '%s' (not keepalived's) ignored", kw)
			}
		}
	}
	in.finishSyncDaemon()
	return in.cfg
}

// need returns argument i of n, reporting it missing (keepalived exits on
// a missing parameter).
func (in *interp) need(n *Node, i int) (string, bool) {
	a, ok := n.Arg(i)
	if !ok {
		in.ds.invalid(n.Pos, "configuration line starting '%s' is missing a parameter at word position %d", n.Keyword(), i+1)
	}
	return a, ok
}

// noBlock reports a block after a keyword that takes none.
func (in *interp) noBlock(n *Node) {
	if n.HasBlock {
		in.ds.invalid(n.Pos, "unexpected block after '%s'", n.Keyword())
	}
}

func parseUint(s string, lo, hi uint64) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v >= lo && v <= hi
}

// parseTimer is keepalived's read_timer: decimal seconds with up to six
// decimal places, within [lo, hi].
func parseTimer(s string, lo, hi time.Duration) (time.Duration, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 || hasFrac && frac == "" && whole == "" {
		return 0, false
	}
	w := uint64(0)
	if whole != "" {
		var ok bool
		if w, ok = parseUint(whole, 0, maxTimer); !ok {
			return 0, false
		}
	}
	us := uint64(0)
	if frac != "" {
		f, ok := parseUint((frac + "000000")[:6], 0, 999999)
		if !ok {
			return 0, false
		}
		us = f
	}
	d := time.Duration(w)*time.Second + time.Duration(us)*time.Microsecond
	return d, d >= lo && d <= hi
}

// parseBool is check_true_false.
func parseBool(s string) (bool, bool) {
	switch s {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	return false, false
}

// optBool reads an optional <BOOL> argument (absent means true).
func (in *interp) optBool(n *Node) (bool, bool) {
	a, ok := n.Arg(1)
	if !ok {
		return true, true
	}
	v, ok := parseBool(a)
	if !ok {
		in.ds.invalid(n.Pos, "invalid %s parameter %s", n.Keyword(), a)
	}
	return v, ok
}

// parseAddr parses an address as inet_pton does (IPv4 dotted quad or IPv6).
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// parsePort parses an optional port word: "" or all zeros is 0 (no port),
// else 1..65535.
func parsePort(s string) (uint16, bool) {
	if strings.Trim(s, "0") == "" {
		return 0, true
	}
	v, ok := parseUint(s, 1, 65535)
	return uint16(v), ok
}

// globalDefs reads the global_defs keywords that concern LVS.
func (in *interp) globalDefs(n *Node) {
	for _, c := range n.Block {
		switch c.Keyword() {
		case "lvs_timeouts":
			in.lvsTimeouts(c)
		case "lvs_sync_daemon":
			in.lvsSyncDaemon(c)
		case "script_user":
			if u, ok := in.need(c, 1); ok {
				in.cfg.ScriptUser = u
				if g, ok := c.Arg(2); ok {
					in.cfg.ScriptUser = u + " " + g
				}
			}
		case "enable_script_security":
			in.cfg.ScriptSecurity = true
		}
	}
}

func (in *interp) lvsTimeouts(n *Node) {
	if len(n.Words) < 3 {
		in.ds.invalid(n.Pos, "lvs_timeouts requires at least one option")
		return
	}
	in.cfg.TimeoutsPos = n.Pos
	for i := 1; i < len(n.Words); i++ {
		var dst *uint32
		switch n.Words[i] {
		case "tcp":
			dst = &in.cfg.Timeouts.TCP
		case "tcpfin":
			dst = &in.cfg.Timeouts.TCPFin
		case "udp":
			dst = &in.cfg.Timeouts.UDP
		default:
			in.ds.invalid(n.Pos, "unknown option %s specified for lvs_timeouts", n.Words[i])
			continue
		}
		if i+1 >= len(n.Words) {
			in.ds.invalid(n.Pos, "no value specified for lvs_timeout %s", n.Words[i])
			break
		}
		v, ok := parseUint(n.Words[i+1], 0, MaxPersistenceTimeout)
		if !ok {
			in.ds.invalid(n.Pos, "invalid lvs_timeout %s (%s)", n.Words[i], n.Words[i+1])
		}
		*dst = uint32(v)
		i++
	}
}

func (in *interp) lvsSyncDaemon(n *Node) {
	if in.cfg.SyncDaemon != nil {
		in.ds.invalid(n.Pos, "lvs_sync_daemon has already been specified as %s (%v)", in.cfg.SyncDaemon.Iface, in.cfg.SyncDaemon.Pos)
		return
	}
	ifname, ok := in.need(n, 1)
	if !ok {
		return
	}
	if len(ifname) > maxIfNameLen {
		in.ds.invalid(n.Pos, "lvs_sync_daemon interface name '%s' too long", ifname)
		return
	}
	sd := &SyncDaemon{Pos: n.Pos, Iface: ifname}
	for i := 2; i < len(n.Words); i++ {
		kw := n.Words[i]
		val, has := n.Arg(i + 1)
		switch kw {
		case "inst", "id", "maxlen", "port", "ttl", "group":
			if !has {
				in.ds.invalid(n.Pos, "no value specified for lvs_sync_daemon %s", kw)
				continue
			}
			i++
		}
		switch kw {
		case "inst":
			sd.Instance = val
		case "id":
			v, ok := parseUint(val, 0, 255)
			if !ok {
				in.ds.invalid(n.Pos, "invalid syncid (%s)", val)
			}
			sd.SyncID, sd.HasID = uint8(v), ok
		case "maxlen":
			v, ok := parseUint(val, 1, 65535-20-8)
			if !ok {
				in.ds.invalid(n.Pos, "invalid lvs_sync_daemon maxlen (%s)", val)
			}
			sd.MaxLen = uint16(v)
		case "port":
			v, ok := parseUint(val, 1, 65535)
			if !ok {
				in.ds.invalid(n.Pos, "invalid lvs_sync_daemon port (%s)", val)
			}
			sd.Port = uint16(v)
		case "ttl":
			v, ok := parseUint(val, 1, 255)
			if !ok {
				in.ds.invalid(n.Pos, "invalid lvs_sync_daemon ttl (%s)", val)
			}
			sd.TTL = uint8(v)
		case "group":
			a, ok := parseAddr(val)
			if !ok || !a.IsMulticast() {
				in.ds.invalid(n.Pos, "lvs_sync_daemon group address %s is not multicast", val)
			}
			sd.Group = a
		default:
			// keepalived's backward-compatible positional form:
			// lvs_sync_daemon IF VRRP_INSTANCE [SYNC_ID].
			switch i {
			case 2:
				sd.Instance = kw
			case 3:
				v, ok := parseUint(kw, 0, 255)
				if !ok {
					in.ds.invalid(n.Pos, "invalid syncid (%s)", kw)
				}
				sd.SyncID, sd.HasID = uint8(v), ok
				in.ds.warn(n.Pos, "please use keyword \"id\" before lvs_sync_daemon SYNCID")
			default:
				in.ds.invalid(n.Pos, "unknown option %s specified for lvs_sync_daemon", kw)
			}
		}
	}
	in.cfg.SyncDaemon = sd
}

// vrrpInstance reads a vrrp_instance's name, router id and deprecated
// lvs_sync_daemon_interface; the rest is keepalived's VRRP.
func (in *interp) vrrpInstance(n *Node) {
	inst := VRRPInstance{Pos: n.Pos}
	inst.Name, _ = n.Arg(1)
	for _, c := range n.Block {
		switch c.Keyword() {
		case "virtual_router_id":
			if a, ok := c.Arg(1); ok {
				if v, ok := parseUint(a, 1, 255); ok {
					inst.VRID = int(v)
				}
			}
		case "lvs_sync_daemon_interface":
			ifname, ok := in.need(c, 1)
			if !ok {
				continue
			}
			in.ds.warn(c.Pos, "(%s) specifying lvs_sync_daemon_interface against a vrrp is deprecated; please use global lvs_sync_daemon", inst.Name)
			if in.cfg.SyncDaemon != nil {
				in.ds.invalid(c.Pos, "(%s) lvs_sync_daemon_interface has already been specified as %s", inst.Name, in.cfg.SyncDaemon.Iface)
				continue
			}
			in.cfg.SyncDaemon = &SyncDaemon{Pos: c.Pos, Iface: ifname, Instance: inst.Name, Deprecated: true}
		}
	}
	in.cfg.Instances = append(in.cfg.Instances, inst)
}

// finishSyncDaemon resolves the sync daemon's instance and default id.
func (in *interp) finishSyncDaemon() {
	sd := in.cfg.SyncDaemon
	if sd == nil || sd.Instance == "" {
		return
	}
	i := slices.IndexFunc(in.cfg.Instances, func(v VRRPInstance) bool { return v.Name == sd.Instance })
	if i < 0 {
		in.ds.invalid(sd.Pos, "unable to find vrrp instance %s for lvs_sync_daemon", sd.Instance)
		return
	}
	if !sd.HasID {
		sd.SyncID = uint8(in.cfg.Instances[i].VRID)
	}
}

// group reads a virtual_server_group.
func (in *interp) group(n *Node) {
	name, ok := in.need(n, 1)
	if !ok {
		return
	}
	if _, dup := in.groups[name]; dup {
		in.ds.invalid(n.Pos, "virtual server group %s defined twice", name)
		return
	}
	g := &group{pos: n.Pos}
	in.groups[name] = g
	if !n.HasBlock {
		in.ds.invalid(n.Pos, "virtual_server_group %s has no block", name)
		g.bad = true
		return
	}
	for _, e := range n.Block {
		in.noBlock(e)
		if e.Keyword() == "fwmark" {
			g.fwmarks = append(g.fwmarks, e.Pos)
			continue
		}
		port := uint16(0)
		if p, ok := e.Arg(1); ok {
			v, ok := parsePort(p)
			if !ok {
				in.ds.invalid(e.Pos, "invalid virtual server group port %s", p)
				g.bad = true
				continue
			}
			port = v
		}
		addrs, ok := in.groupRange(e.Pos, e.Keyword())
		if !ok {
			g.bad = true
			continue
		}
		if len(g.addrs)+len(addrs) > MaxGroupAddrs {
			in.ds.invalid(e.Pos, "virtual server group %s expands to more than %d addresses", name, MaxGroupAddrs)
			g.bad = true
			return
		}
		for _, a := range addrs {
			g.addrs = append(g.addrs, netip.AddrPortFrom(a, port))
		}
	}
	if len(g.addrs) == 0 && len(g.fwmarks) == 0 {
		in.ds.warn(n.Pos, "virtual server group %s has no entries - removing", name)
	}
}

// groupRange expands a group entry: an address, A-B (the last byte, or
// for IPv6 the last 16-bit group in hex), A-B with full addresses, or
// A/len.
func (in *interp) groupRange(pos Pos, s string) ([]netip.Addr, bool) {
	fail := func(format string, args ...any) ([]netip.Addr, bool) {
		in.ds.invalid(pos, format, args...)
		return nil, false
	}
	if base, bits, ok := strings.Cut(s, "/"); ok {
		a, ok := parseAddr(base)
		if !ok {
			return fail("invalid virtual server group IP address %s", s)
		}
		l, ok := parseUint(bits, 1, uint64(a.BitLen()))
		if !ok {
			return fail("invalid netmask - %s", s)
		}
		p := netip.PrefixFrom(a, int(l))
		if p.Masked().Addr() != a {
			return fail("address mask bits not empty - %s", s)
		}
		if a.BitLen()-int(l) > 12 {
			return fail("virtual server group range %s has more than %d addresses", s, MaxGroupAddrs)
		}
		return expand(a, lastOf(p)), true
	}
	base, end, isRange := strings.Cut(s, "-")
	a, ok := parseAddr(base)
	if !ok {
		return fail("invalid virtual server group IP address %s", s)
	}
	if !isRange {
		return []netip.Addr{a}, true
	}
	if e, ok := parseAddr(end); ok && (a.Is4() && strings.Contains(end, ".") || a.Is6() && strings.Contains(end, ":")) {
		if e.Is4() != a.Is4() {
			return fail("range address families do not match %s", s)
		}
		if e.Less(a) {
			return fail("address range end is less than address range start - %s", s)
		}
		if span(a, e) >= MaxGroupAddrs {
			return fail("virtual server group range %s has more than %d addresses", s, MaxGroupAddrs)
		}
		return expand(a, e), true
	}
	var last netip.Addr
	if a.Is4() {
		v, ok := parseUint(end, 0, 255)
		if !ok {
			return fail("virtual server group range '%s' end '%s' invalid", s, end)
		}
		b := a.As4()
		if uint64(b[3]) >= v {
			return fail("address range end is not greater than address range start - %s", s)
		}
		b[3] = byte(v)
		last = netip.AddrFrom4(b)
	} else {
		v, err := strconv.ParseUint(end, 16, 16)
		if err != nil {
			return fail("virtual server group range '%s' end '%s' invalid", s, end)
		}
		b := a.As16()
		if uint64(binary.BigEndian.Uint16(b[14:])) >= v {
			return fail("address range end is not greater than address range start - %s", s)
		}
		binary.BigEndian.PutUint16(b[14:], uint16(v))
		last = netip.AddrFrom16(b)
	}
	if span(a, last) >= MaxGroupAddrs {
		return fail("virtual server group range %s has more than %d addresses", s, MaxGroupAddrs)
	}
	return expand(a, last), true
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// span returns last-first, saturated at MaxGroupAddrs.
func span(first, last netip.Addr) int {
	n := 0
	for a := first; a.Less(last) && n < MaxGroupAddrs; a = a.Next() {
		n++
	}
	return n
}

func expand(first, last netip.Addr) []netip.Addr {
	var out []netip.Addr
	for a := first; ; a = a.Next() {
		out = append(out, a)
		if a == last || len(out) > MaxGroupAddrs {
			return out
		}
	}
}
