package ipvsadm

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

// Parser parses ipvsadm command lines. The zero Parser is ready to use: it
// knows no host names and resolves port names with the built-in table
// (ServicePort).
type Parser struct {
	// LookupHost resolves a host name that is not an address literal, as
	// ipvsadm's gethostbyname (IPv4 results only). nil: names are errors.
	LookupHost func(name string) (netip.Addr, bool)
	// LookupService resolves a port name. nil: ServicePort.
	LookupService func(proto ipvs.Protocol, name string) (uint16, bool)
}

// Parse parses one ipvsadm invocation (argv without the program name) with
// the zero Parser. See Parser.Parse.
func Parse(args []string) (Command, error) { return Parser{}.Parse(args) }

// popt emulates the parts of libpopt's poptGetNextOpt that ipvsadm relies
// on: short-option clusters (-Lcn, -p60), --long and --long=value options,
// optional arguments that are taken only when they do not start with '-',
// non-option arguments collected as leftovers anywhere on the line, and
// "--" ending the options.
type popt struct {
	args      []string
	next      int
	cluster   string // rest of a short-option cluster
	clusterOf string // the argv element of that cluster
	noMore    bool   // after "--"
	leftovers []string
	last      string // the argv element consumed last (poptBadOption)
}

// nextOpt returns the next option and its argument. ok is false at the end
// of the arguments; err is set for popt errors.
func (p *popt) nextOpt() (d optDef, arg string, hasArg bool, ok bool, err *UsageError) {
	for {
		if p.cluster != "" {
			c := p.cluster[0]
			p.cluster = p.cluster[1:]
			d, found := lookupShort(c)
			if !found {
				return d, "", false, false, poptError(p.clusterOf, poptBadOpt)
			}
			if d.arg == argNone {
				return d, "", false, true, nil
			}
			if p.cluster != "" {
				arg, p.cluster = p.cluster, ""
				return d, arg, true, true, nil
			}
			arg, hasArg, err = p.optArg(d, p.clusterOf)
			return d, arg, hasArg, err == nil, err
		}
		if p.next >= len(p.args) {
			return optDef{}, "", false, false, nil
		}
		tok := p.args[p.next]
		p.next++
		p.last = tok
		switch {
		case p.noMore || len(tok) < 2 || tok[0] != '-':
			p.leftovers = append(p.leftovers, tok)
			continue
		case tok == "--":
			p.noMore = true
			continue
		case strings.HasPrefix(tok, "--"):
			name, val, hasVal := strings.Cut(tok[2:], "=")
			d, found := lookupLong(name)
			if !found {
				return d, "", false, false, poptError(tok, poptBadOpt)
			}
			if d.arg == argNone {
				if hasVal {
					return d, "", false, false, poptError(tok, poptUnwantedArg)
				}
				return d, "", false, true, nil
			}
			if hasVal {
				return d, val, true, true, nil
			}
			arg, hasArg, err = p.optArg(d, tok)
			return d, arg, hasArg, err == nil, err
		default:
			p.cluster, p.clusterOf = tok[1:], tok
		}
	}
}

// optArg takes the argument of d from the next argv element.
func (p *popt) optArg(d optDef, optTok string) (string, bool, *UsageError) {
	if p.next >= len(p.args) || p.noMore {
		if d.arg == argOptional {
			return "", false, nil
		}
		return "", false, poptError(optTok, poptNoArg)
	}
	a := p.args[p.next]
	if d.arg == argOptional && strings.HasPrefix(a, "-") {
		return "", false, nil
	}
	p.next++
	p.last = a
	return a, true, nil
}

func (p *popt) getArg() (string, bool) {
	if len(p.leftovers) == 0 {
		return "", false
	}
	a := p.leftovers[0]
	p.leftovers = p.leftovers[1:]
	return a, true
}

// parse_service result bits.
const (
	serviceAddr = 1 << iota
	servicePort
)

// Parse parses one ipvsadm invocation: argv without the program name. It
// follows ipvsadm 1.31's parse_options and process_options step by step,
// including their order of checks, so that the first error reported is
// ipvsadm's. Errors are *UsageError. No arguments at all means List.
func (ps Parser) Parse(args []string) (Command, error) {
	ce := Command{
		Kind: NoCommand,
		Service: Service{
			Netmask: 0xffffffff, // the default persistent granularity /32
		},
		Dest: Dest{Weight: 1, Forward: ipvs.Route},
	}
	if len(args) == 0 {
		ce.Kind = List
		return ce, nil
	}
	p := popt{args: args}
	svcV6 := false // ce->svc.af == AF_INET6
	destV6 := false
	schedFlagsArg := ""

	d, arg, _, ok, perr := p.nextOpt()
	if perr != nil || !ok {
		return Command{}, tryHelp()
	}
	switch d.tag {
	case tagAddService:
		ce.Kind = AddService
	case tagEditService:
		ce.Kind = EditService
	case tagDeleteService:
		ce.Kind = DeleteService
	case tagAddServer:
		ce.Kind = AddServer
	case tagEditServer:
		ce.Kind = EditServer
	case tagDeleteServer:
		ce.Kind = DeleteServer
	case tagClear:
		ce.Kind = Clear
	case tagList:
		ce.Kind = List
	case tagZero:
		ce.Kind = Zero
	case tagSet:
		ce.Kind = SetTimeout
	case tagRestore:
		ce.Kind = Restore
	case tagSave:
		ce.Kind = Save
	case tagStartDaemon, tagStopDaemon:
		ce.Kind = StartDaemon
		if d.tag == tagStopDaemon {
			ce.Kind = StopDaemon
		}
		switch arg {
		case "master":
			ce.Daemon.State = Master
		case "backup":
			ce.Daemon.State = Backup
		default:
			if ce.Kind == StartDaemon {
				return Command{}, failf("illegal start-daemon parameter specified")
			}
			return Command{}, failf("illegal start_daemon specified")
		}
	case tagHelp:
		return Command{Kind: Help}, nil
	case tagVersion:
		return Command{Kind: Version}, nil
	case tagHealthCheck:
		ce.Kind = HealthCheckCmd
	case tagDrain:
		ce.Kind = Drain
	case tagUndrain:
		ce.Kind = Undrain
	case tagReload:
		ce.Kind = Reload
	case tagSysctl:
		ce.Kind = SysctlCmd
		if name, _, _ := strings.Cut(arg, "="); strings.Contains(arg, "=") && strings.TrimSpace(name) == "" {
			return Command{}, failf("illegal sysctl setting `%s' (want NAME=VALUE)", arg)
		}
		ce.Sysctl = arg
	default:
		return Command{}, tryHelp()
	}

	set := func(o Opt) *UsageError {
		if ce.Options.Has(o) {
			return failf("multiple '%s' options specified", o)
		}
		ce.Options.add(o)
		return nil
	}

	for {
		d, arg, hasArg, ok, perr := p.nextOpt()
		if perr != nil {
			return Command{}, perr
		}
		if !ok {
			break
		}
		var err *UsageError
		switch d.tag {
		case tagTCP, tagUDP, tagSCTP, tagFwmark:
			if err = set(OptService); err != nil {
				break
			}
			switch d.tag {
			case tagFwmark:
				err = failf("fwmark services (-f) are not supported by xvs")
				err.err = ErrUnsupported
			case tagSCTP:
				err = failf("SCTP services (--sctp-service) are not supported by xvs")
				err.err = ErrUnsupported
			case tagTCP:
				ce.Service.Protocol = ipvs.TCP
			case tagUDP:
				ce.Service.Protocol = ipvs.UDP
			}
			if err != nil {
				break
			}
			r, addr, port, v6 := ps.parseService(arg, ce.Service.Protocol, ce.Service.Port)
			if r&serviceAddr == 0 {
				err = failf("illegal virtual server address[:port] specified")
				break
			}
			ce.Service.Addr, ce.Service.Port = addr, port
			svcV6 = v6
			if v6 {
				ce.Service.Netmask = 128
			}
		case tagScheduler:
			if err = set(OptScheduler); err == nil {
				ce.Service.Scheduler = truncate(arg, MaxSchedNameLen)
			}
		case tagPersistent:
			if err = set(OptPersistent); err != nil {
				break
			}
			ce.Service.Persistent = true
			ce.Service.Timeout = DefaultPersistentTimeout
			if hasArg {
				ce.Service.Timeout, err = parseTimeout(arg, 1, MaxTimeout)
			}
		case tagNetmask:
			if err = set(OptNetmask); err != nil {
				break
			}
			if !svcV6 {
				m, ok := ps.parseNetmask(arg)
				if !ok {
					err = failf("illegal virtual server persistent mask specified")
					break
				}
				ce.Service.Netmask = m
			} else {
				n := cAtoi(arg)
				if n < 1 || n > 128 {
					err = failf("illegal ipv6 netmask specified")
					break
				}
				ce.Service.Netmask = uint32(n)
			}
		case tagRealServer:
			if err = set(OptServer); err != nil {
				break
			}
			r, addr, port, v6 := ps.parseService(arg, ce.Service.Protocol, ce.Service.Port)
			if r&serviceAddr == 0 {
				// ipvsadm copies the parsed parts before the check; the
				// command fails either way.
				err = failf("illegal real server address[:port] specified")
				break
			}
			ce.Dest.Addr = netip.AddrPortFrom(addr, port)
			destV6 = v6
		case tagIPIP, tagGate, tagMasq:
			if err = set(OptForward); err == nil {
				ce.Dest.Forward = map[tag]ipvs.Forward{tagIPIP: ipvs.Tunnel, tagGate: ipvs.Route, tagMasq: ipvs.Masq}[d.tag]
			}
		case tagWeight:
			if err = set(OptWeight); err == nil {
				n, ok := stringToNumber(arg, 0, MaxWeight)
				if !ok {
					err = failf("illegal weight specified")
				}
				ce.Dest.Weight = uint32(n)
			}
		case tagUThreshold:
			if err = set(OptUThreshold); err == nil {
				n, ok := stringToNumber(arg, 0, MaxThreshold)
				if !ok {
					err = failf("illegal u_threshold specified")
				}
				ce.Dest.UThreshold = uint32(n)
			}
		case tagLThreshold:
			if err = set(OptLThreshold); err == nil {
				n, ok := stringToNumber(arg, 0, MaxThreshold)
				if !ok {
					err = failf("illegal l_threshold specified")
				}
				ce.Dest.LThreshold = uint32(n)
			}
		case tagConnection:
			if err = set(OptConnection); err == nil {
				ce.Format.Connections = true
			}
		case tagNumeric:
			if err = set(OptNumeric); err == nil {
				ce.Format.Numeric = true
			}
		case tagMcastIface:
			if err = set(OptMcastIface); err == nil {
				ce.Daemon.McastIface = truncate(arg, MaxIfaceNameLen)
			}
		case tagSyncID:
			if err = set(OptSyncID); err == nil {
				n, ok := stringToNumber(arg, 0, 255)
				if !ok {
					err = failf("illegal syncid specified")
				}
				ce.Daemon.SyncID = uint8(n)
			}
		case tagTimeout:
			if err = set(OptTimeout); err == nil {
				ce.Format.Timeout = true
			}
		case tagDaemon:
			if err = set(OptDaemon); err == nil {
				ce.Format.Daemon = true
			}
		case tagStats:
			if err = set(OptStats); err == nil {
				ce.Format.Stats = true
			}
		case tagRate:
			if err = set(OptRate); err == nil {
				ce.Format.Rate = true
			}
		case tagThresholds:
			if err = set(OptThresholds); err == nil {
				ce.Format.Thresholds = true
			}
		case tagPersistentConn:
			if err = set(OptPersistentConn); err == nil {
				ce.Format.PersistentConn = true
			}
		case tagNoSort:
			if err = set(OptNoSort); err == nil {
				ce.Format.NoSort = true
			}
		case tagSort:
			// Sorting is the default; a no-op kept for compatibility.
		case tagExact:
			if err = set(OptExact); err == nil {
				ce.Format.Exact = true
			}
		case tagIPv6:
			// Only meaningful after -f, which xvs rejects earlier.
			err = failf("-6 used before -f\n")
		case tagOPS:
			if err = set(OptOnePacket); err == nil {
				ce.Service.OnePacket = true
			}
		case tagPE:
			if err = set(OptPE); err == nil {
				ce.Service.PE = truncate(arg, MaxPENameLen)
			}
		case tagPEStrict:
			if err = set(OptPEStrict); err == nil {
				ce.Service.PEStrict = true
			}
		case tagCheck, tagInterval, tagCheckTimeout, tagFail, tagRise, tagCheckPort, tagCodes, tagOnFail,
			tagScript, tagScriptUser, tagDynamic, tagURL, tagDigest, tagVirtualHost, tagRetryInterval, tagStartDown:
			if err = set(checkOpts[d.tag]); err == nil {
				err = ce.parseCheckOption(d.tag, arg)
			}
		case tagHealth:
			if err = set(OptHealth); err == nil {
				ce.Format.Health = true
			}
		case tagSchedFlags:
			if err = set(OptSchedFlags); err == nil {
				schedFlagsArg = truncate(arg, maxSchedFlagsArg)
			}
		case tagMcastGroup:
			if err = set(OptMcastGroup); err != nil {
				break
			}
			if strings.Contains(arg, ":") {
				a, ok := parseIPv6(arg)
				if !ok || !a.IsMulticast() {
					err = failf("invalid IPv6 mcast-group `%s'", arg)
				}
				ce.Daemon.McastGroup = a
			} else {
				a, ok := inetPton4(arg)
				if !ok || !a.IsMulticast() {
					err = failf("invalid IPv4 mcast-group `%s'", arg)
				}
				ce.Daemon.McastGroup = a
			}
		case tagMcastPort:
			if err = set(OptMcastPort); err == nil {
				n, ok := stringToNumber(arg, 1, 65535)
				if !ok {
					err = failf("illegal mcast-port specified")
				}
				ce.Daemon.McastPort = uint16(n)
			}
		case tagMcastTTL:
			if err = set(OptMcastTTL); err == nil {
				n, ok := stringToNumber(arg, 1, 255)
				if !ok {
					err = failf("illegal mcast-ttl specified")
				}
				ce.Daemon.McastTTL = uint8(n)
			}
		case tagSyncMaxLen:
			if err = set(OptSyncMaxLen); err == nil {
				n, ok := stringToNumber(arg, 1, MaxSyncMaxLen)
				if !ok {
					err = failf("illegal sync-maxlen specified")
				}
				ce.Daemon.SyncMaxLen = uint16(n)
			}
		case tagTunInfo:
			if err = set(OptTunInfo); err == nil {
				ce.Format.TunInfo = true
			}
		case tagTunType:
			if err = set(OptTunType); err == nil {
				switch arg {
				case "ipip":
					ce.Dest.TunnelType = IPIP
				case "gue":
					ce.Dest.TunnelType = GUE
				case "gre":
					ce.Dest.TunnelType = GRE
				default:
					err = failf("illegal tunnel type specified")
				}
			}
		case tagTunPort:
			if err = set(OptTunPort); err == nil {
				n, ok := stringToNumber(arg, 1, 65535)
				if !ok {
					err = failf("illegal tunnel port specified")
				}
				ce.Dest.TunnelPort = uint16(n)
			}
		case tagTunNoCsum, tagTunCsum, tagTunRemCsum:
			o := map[tag]Opt{tagTunNoCsum: OptTunNoCsum, tagTunCsum: OptTunCsum, tagTunRemCsum: OptTunRemCsum}[d.tag]
			if err = set(o); err == nil {
				// ipvsadm ORs the flag bits; one is allowed per tunnel type.
				ce.Dest.TunnelCsum = map[tag]TunnelCsum{tagTunNoCsum: TunNoCsum, tagTunCsum: TunCsum, tagTunRemCsum: TunRemCsum}[d.tag]
			}
		default:
			// A second command, -h or -v after the command.
			err = failf("invalid option `%s'", p.last)
		}
		if err != nil {
			return Command{}, err
		}
	}

	if ce.Kind == SetTimeout {
		a1, ok1 := p.getArg()
		a2, ok2 := p.getArg()
		a3, ok3 := p.getArg()
		if !ok1 || !ok2 || !ok3 {
			return Command{}, failf("--set option requires 3 timeout values")
		}
		var err *UsageError
		if ce.Timeouts.TCP, err = parseTimeout(a1, 0, MaxTimeout); err != nil {
			return Command{}, err
		}
		if ce.Timeouts.TCPFin, err = parseTimeout(a2, 0, MaxTimeout); err != nil {
			return Command{}, err
		}
		if ce.Timeouts.UDP, err = parseTimeout(a3, 0, MaxTimeout); err != nil {
			return Command{}, err
		}
	}
	if a, ok := p.getArg(); ok {
		return Command{}, failf("unexpected argument %s", a)
	}
	if schedFlagsArg != "" {
		f, err := parseSchedFlags(ce.Service.Scheduler, schedFlagsArg)
		if err != nil {
			return Command{}, err
		}
		ce.Service.SchedFlags = f
	}

	if err := genericOptCheck(ce.Kind, ce.Options); err != nil {
		return Command{}, err
	}

	switch ce.Kind {
	case AddService, EditService:
		if ce.Service.Port == 0 && !ce.Service.Persistent {
			return Command{}, failf("Zero port specified for non-persistent service")
		}
		if ce.Service.OnePacket && ce.Service.Protocol != ipvs.UDP {
			return Command{}, failf("One-Packet Scheduling is only for UDP virtual services")
		}
		if ce.Service.Scheduler == "" {
			ce.Service.Scheduler = DefaultScheduler
		}
		if ce.Service.PEStrict && ce.Service.PE == "" {
			return Command{}, failf("--pe-strict needs a persistence engine (--pe)")
		}
	case StartDaemon:
		if ce.Daemon.McastIface == "" {
			ce.Daemon.McastIface = DefaultMcastIface
		}
	case AddServer, EditServer:
		if ce.Dest.Forward == ipvs.Tunnel || ce.Dest.Forward == ipvs.Route {
			ce.Dest.Addr = netip.AddrPortFrom(ce.Dest.Addr.Addr(), ce.Service.Port)
		}
		if destV6 != svcV6 && ce.Dest.Forward != ipvs.Tunnel {
			return Command{}, failf("Different address family is allowed only for tunneling servers")
		}
		tunOpts := ce.Options.Has(OptTunType) || ce.Options.Has(OptTunPort) ||
			ce.Options.Has(OptTunNoCsum) || ce.Options.Has(OptTunCsum) || ce.Options.Has(OptTunRemCsum)
		if tunOpts && ce.Dest.Forward != ipvs.Tunnel {
			return Command{}, failf("Tunnel options conflict with forward method")
		}
		if err := tunnelOptCheck(ce.Dest.TunnelType, ce.Options); err != nil {
			return Command{}, err
		}
	case List:
		o := ce.Options
		if (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon)) &&
			(o.Has(OptStats) || o.Has(OptRate) || o.Has(OptThresholds)) ||
			(o.Has(OptTimeout) || o.Has(OptDaemon)) && o.Has(OptPersistentConn) {
			return Command{}, failf("options conflicts in the list command")
		}
		if o.Has(OptHealth) && (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon) || o.Has(OptStats) ||
			o.Has(OptRate) || o.Has(OptThresholds) || o.Has(OptPersistentConn) || o.Has(OptTunInfo)) {
			return Command{}, failf("options conflicts in the list command")
		}
	case HealthCheckCmd:
		if err := ce.checkCommand(); err != nil {
			return Command{}, err
		}
	}
	return ce, nil
}

// genericOptCheck is ipvsadm's generic_opt_check over commandsVOptions
// (and the extension's rows and columns, see optRule).
func genericOptCheck(k Kind, opts OptionSet) *UsageError {
	count, last := 0, Opt(0)
	for j := range numOpts {
		rule := optRule(k, j)
		if !opts.Has(j) {
			if rule == '+' {
				return failf("You need to supply the '%s' option for the '%s' command", j, k)
			}
			continue
		}
		if rule == 'x' {
			return failf("Illegal '%s' option with the '%s' command", j, k)
		}
		if rule == '1' {
			count++
			if count == 1 {
				last = j
				continue
			}
			return failf("The option '%s' conflicts with the '%s' option in the '%s' command", j, last, k)
		}
	}
	return nil
}

// tunnelOptCheck is ipvsadm's tunnel_opt_check over tunnelTypesVOptions.
func tunnelOptCheck(t TunnelType, opts OptionSet) *UsageError {
	row := &tunnelTypesVOptions[t]
	count, last := 0, Opt(0)
	for j, k := range tunnelOpts {
		if !opts.Has(k) {
			if row[j] == '+' {
				return failf("You need to supply the '%s' option for the '%s' tunnel type", k, t)
			}
			continue
		}
		if row[j] == 'x' {
			return failf("Illegal '%s' option with the '%s' tunnel type", k, t)
		}
		if row[j] == '1' {
			count++
			if count == 1 {
				last = k
				continue
			}
			return failf("The option '%s' conflicts with the '%s' option in the '%s' tunnel type", k, last, t)
		}
	}
	return nil
}

// parseTimeout is ipvsadm's parse_timeout for a given value.
func parseTimeout(s string, lo, hi int64) (uint32, *UsageError) {
	n, ok := stringToNumber(s, lo, hi)
	if !ok {
		return 0, failf("invalid timeout value `%s' specified", s)
	}
	return uint32(n), nil
}

// parseSchedFlags is ipvsadm's parse_sched_flags (sched.ParseFlags)
// against the scheduler, which is wlc when -s was not given.
func parseSchedFlags(scheduler, arg string) (sched.Flags, *UsageError) {
	f, err := sched.ParseFlags(scheduler, arg)
	if err != nil {
		return 0, failf("%s", err)
	}
	return f, nil
}

// parseService is ipvsadm's parse_service: host[:port], [ipv6][:port] or a
// bare IPv6 address; it returns serviceAddr|servicePort bits like ipvsadm.
// port is returned unchanged when the argument has none.
func (ps Parser) parseService(buf string, proto ipvs.Protocol, port uint16) (r int, addr netip.Addr, outPort uint16, v6 bool) {
	outPort = port
	if strIsDigit(buf) {
		return 0, addr, port, false
	}
	portp := -1 // index of the ':' before the port in buf, or -1
	if strings.HasPrefix(buf, "[") {
		buf = buf[1:]
		i := strings.IndexByte(buf, ']')
		if i < 0 {
			return 0, addr, port, false
		}
		rest := buf[i+1:]
		buf = buf[:i]
		if !strings.HasPrefix(rest, ":") {
			return 0, addr, port, false
		}
		// ipvsadm NUL-terminates at ']' and keeps a pointer to the port
		// text; model that as host and port strings.
		if a, ok := parseIPv6(buf); ok {
			return ps.finishService(a, true, rest[1:], true, proto, port)
		}
		// Not IPv6: ipvsadm looks for ':' again inside the brackets only,
		// so "[1.2.3.4]:80" loses its port.
		if j := strings.LastIndexByte(buf, ':'); j >= 0 {
			return ps.finishService4(buf[:j], buf[j+1:], true, proto, port)
		}
		return ps.finishService4(buf, "", false, proto, port)
	}
	if a, ok := parseIPv6(buf); ok {
		return ps.finishService(a, true, "", false, proto, port)
	}
	portp = strings.LastIndexByte(buf, ':')
	if portp >= 0 {
		return ps.finishService4(buf[:portp], buf[portp+1:], true, proto, port)
	}
	return ps.finishService4(buf, "", false, proto, port)
}

func (ps Parser) finishService4(host, portStr string, hasPort bool, proto ipvs.Protocol, port uint16) (int, netip.Addr, uint16, bool) {
	a, ok := inetAton(host)
	if !ok && ps.LookupHost != nil {
		if h, found := ps.LookupHost(host); found && h.Is4() {
			a, ok = h, true
		}
	}
	if !ok {
		return 0, netip.Addr{}, port, false
	}
	return ps.finishService(a, false, portStr, hasPort, proto, port)
}

func (ps Parser) finishService(a netip.Addr, v6 bool, portStr string, hasPort bool, proto ipvs.Protocol, port uint16) (int, netip.Addr, uint16, bool) {
	r := serviceAddr
	if hasPort {
		r |= servicePort
		if n, ok := stringToNumber(portStr, 0, 65535); ok {
			port = uint16(n)
		} else if n, ok := ps.servicePort(proto, portStr); ok {
			port = n
		} else {
			return 0, a, port, v6
		}
	}
	return r, a, port, v6
}

func (ps Parser) servicePort(proto ipvs.Protocol, name string) (uint16, bool) {
	if ps.LookupService != nil {
		return ps.LookupService(proto, name)
	}
	return ServicePort(proto, name)
}

// parseNetmask is ipvsadm's parse_netmask: inet_aton, then a host name.
func (ps Parser) parseNetmask(s string) (uint32, bool) {
	a, ok := inetAton(s)
	if !ok && ps.LookupHost != nil {
		if h, found := ps.LookupHost(s); found && h.Is4() {
			a, ok = h, true
		}
	}
	if !ok {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Argv returns the arguments of a service or destination command as
// ipvsadm -S -n writes them (with -E/-e for edits, and -x/-y, which -S does
// not save, appended when set): the inverse of Parse for AddService,
// EditService, AddServer and EditServer. Like -S it omits -M for a
// non-persistent service. It returns nil for other kinds.
func (c Command) Argv() []string {
	var f []string
	svc := ServiceView{
		Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port,
		Scheduler: c.Service.Scheduler, SchedFlags: c.Service.SchedFlags,
		Persistent: c.Service.Persistent, Timeout: c.Service.Timeout,
		Netmask: c.Service.Netmask, PE: c.Service.PE, OnePacket: c.Service.OnePacket,
		PEStrict: c.Service.PEStrict,
	}
	names := Names{}
	switch c.Kind {
	case AddService, EditService:
		f = saveServiceLine(svc, names)
	case AddServer, EditServer:
		d := c.Dest
		f = saveDestLine(svc, DestView{Addr: d.Addr.Addr(), Port: d.Addr.Port(), Forward: d.Forward,
			Weight: d.Weight, TunnelType: d.TunnelType, TunnelPort: d.TunnelPort, TunnelCsum: d.TunnelCsum}, names)
	default:
		return nil
	}
	switch c.Kind {
	case EditService:
		f[0] = "-E"
	case EditServer:
		f[0] = "-e"
	}
	if c.Kind == AddServer || c.Kind == EditServer {
		// Thresholds are not saved by ipvsadm; keep them in the argv.
		if c.Dest.UThreshold != 0 {
			f = append(f, "-x", fmt.Sprint(c.Dest.UThreshold))
		}
		if c.Dest.LThreshold != 0 {
			f = append(f, "-y", fmt.Sprint(c.Dest.LThreshold))
		}
	}
	return f
}
