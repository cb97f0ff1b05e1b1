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
//
// The steps, each a function of its own: the command (the first option),
// the options by ipvsadm's groups (virtual-service, real-server, list and
// sync-daemon options, then the extension's health-check options), the
// arguments that follow them, generic_opt_check, and the command's own
// checks.
func (ps Parser) Parse(args []string) (Command, error) {
	st := parseState{ps: ps, ce: Command{
		Kind: NoCommand,
		Service: Service{
			Netmask: 0xffffffff, // the default persistent granularity /32
		},
		Dest: Dest{Weight: 1, Forward: ipvs.Route},
	}}
	if len(args) == 0 {
		st.ce.Kind = List
		return st.ce, nil
	}
	p := popt{args: args}
	d, arg, _, ok, perr := p.nextOpt()
	if perr != nil || !ok {
		return Command{}, tryHelp()
	}
	if err := st.command(d.tag, arg); err != nil {
		return Command{}, err
	}
	if st.ce.Kind == Help || st.ce.Kind == Version {
		return Command{Kind: st.ce.Kind}, nil
	}
	for {
		d, arg, hasArg, ok, perr := p.nextOpt()
		if perr != nil {
			return Command{}, perr
		}
		if !ok {
			break
		}
		if err := st.option(d.tag, arg, hasArg, p.last); err != nil {
			return Command{}, err
		}
	}
	if err := st.arguments(&p); err != nil {
		return Command{}, err
	}
	if err := genericOptCheck(st.ce.Kind, st.ce.Options); err != nil {
		return Command{}, err
	}
	if err := st.check(); err != nil {
		return Command{}, err
	}
	return st.ce, nil
}

// parseState is one command line's parse: the command so far and what
// ipvsadm keeps beside it until process_options.
type parseState struct {
	ps            Parser
	ce            Command
	svcV6         bool // ce->svc.af == AF_INET6
	destV6        bool
	schedFlagsArg string
}

// commandKinds are the commands that take no argument.
var commandKinds = map[tag]Kind{
	tagAddService: AddService, tagEditService: EditService, tagDeleteService: DeleteService,
	tagAddServer: AddServer, tagEditServer: EditServer, tagDeleteServer: DeleteServer,
	tagClear: Clear, tagList: List, tagZero: Zero, tagSet: SetTimeout, tagRestore: Restore, tagSave: Save,
	tagHelp: Help, tagVersion: Version,
	tagHealthCheck: HealthCheckCmd, tagDrain: Drain, tagUndrain: Undrain, tagReload: Reload,
	tagDrainDirector: DrainDirector, tagUndrainDirector: UndrainDirector,
}

// command sets the command from the first option (ipvsadm: a command must
// come first), with the argument of the commands that take one.
func (st *parseState) command(t tag, arg string) *UsageError {
	ce := &st.ce
	if k, ok := commandKinds[t]; ok {
		ce.Kind = k
		return nil
	}
	switch t {
	case tagStartDaemon, tagStopDaemon:
		ce.Kind = StartDaemon
		if t == tagStopDaemon {
			ce.Kind = StopDaemon
		}
		switch arg {
		case "master":
			ce.Daemon.State = Master
		case "backup":
			ce.Daemon.State = Backup
		default:
			if ce.Kind == StartDaemon {
				return failf("illegal start-daemon parameter specified")
			}
			return failf("illegal start_daemon specified")
		}
	case tagSysctl:
		ce.Kind = SysctlCmd
		if name, _, _ := strings.Cut(arg, "="); strings.Contains(arg, "=") && strings.TrimSpace(name) == "" {
			return failf("illegal sysctl setting `%s' (want NAME=VALUE)", arg)
		}
		ce.Sysctl = arg
	default:
		return tryHelp()
	}
	return nil
}

// set records option o, which may be given once.
func (st *parseState) set(o Opt) *UsageError {
	if st.ce.Options.Has(o) {
		return failf("multiple '%s' options specified", o)
	}
	st.ce.Options.add(o)
	return nil
}

// option parses one option after the command; tok is how it was written.
func (st *parseState) option(t tag, arg string, hasArg bool, tok string) *UsageError {
	switch t {
	case tagTCP, tagUDP, tagSCTP, tagFwmark, tagScheduler, tagPersistent, tagNetmask, tagOPS, tagPE, tagPEStrict, tagSchedFlags:
		return st.serviceOption(t, arg, hasArg)
	case tagRealServer, tagIPIP, tagGate, tagMasq, tagWeight, tagUThreshold, tagLThreshold,
		tagTunType, tagTunPort, tagTunNoCsum, tagTunCsum, tagTunRemCsum:
		return st.serverOption(t, arg)
	case tagConnection, tagNumeric, tagTimeout, tagDaemon, tagStats, tagRate, tagThresholds, tagPersistentConn,
		tagNoSort, tagSort, tagExact, tagTunInfo, tagHealth, tagBGP:
		return st.listOption(t)
	case tagMcastIface, tagSyncID, tagMcastGroup, tagMcastPort, tagMcastTTL, tagSyncMaxLen:
		return st.daemonOption(t, arg)
	case tagCheck, tagInterval, tagCheckTimeout, tagFail, tagRise, tagCheckPort, tagCodes, tagOnFail,
		tagScript, tagScriptUser, tagDynamic, tagURL, tagDigest, tagVirtualHost, tagRetryInterval, tagStartDown:
		if err := st.set(checkOpts[t]); err != nil {
			return err
		}
		return st.ce.parseCheckOption(t, arg)
	case tagIPv6:
		// Only meaningful after -f, which xvs rejects earlier.
		return failf("-6 used before -f\n")
	default:
		// A second command, -h or -v after the command.
		return failf("invalid option `%s'", tok)
	}
}

// serviceOption parses a virtual-service option: -t/-u (and the refused
// --sctp-service, -f), -s, -p, -M, -o, --pe, --pe-strict, -b.
func (st *parseState) serviceOption(t tag, arg string, hasArg bool) *UsageError {
	svc := &st.ce.Service
	switch t {
	case tagTCP, tagUDP, tagSCTP, tagFwmark:
		if err := st.set(OptService); err != nil {
			return err
		}
		switch t {
		case tagFwmark:
			err := failf("fwmark services (-f) are not supported by xvs")
			err.err = ErrUnsupported
			return err
		case tagSCTP:
			err := failf("SCTP services (--sctp-service) are not supported by xvs")
			err.err = ErrUnsupported
			return err
		case tagTCP:
			svc.Protocol = ipvs.TCP
		case tagUDP:
			svc.Protocol = ipvs.UDP
		}
		r, addr, port, v6 := st.ps.parseService(arg, svc.Protocol, svc.Port)
		if r&serviceAddr == 0 {
			return failf("illegal virtual server address[:port] specified")
		}
		svc.Addr, svc.Port = addr, port
		st.svcV6 = v6
		if v6 {
			svc.Netmask = 128
		}
	case tagScheduler:
		if err := st.set(OptScheduler); err != nil {
			return err
		}
		svc.Scheduler = truncate(arg, MaxSchedNameLen)
	case tagPersistent:
		if err := st.set(OptPersistent); err != nil {
			return err
		}
		svc.Persistent = true
		svc.Timeout = DefaultPersistentTimeout
		if hasArg {
			var err *UsageError
			if svc.Timeout, err = parseTimeout(arg, 1, MaxTimeout); err != nil {
				return err
			}
		}
	case tagNetmask:
		if err := st.set(OptNetmask); err != nil {
			return err
		}
		if !st.svcV6 {
			m, ok := st.ps.parseNetmask(arg)
			if !ok {
				return failf("illegal virtual server persistent mask specified")
			}
			svc.Netmask = m
		} else {
			n := cAtoi(arg)
			if n < 1 || n > 128 {
				return failf("illegal ipv6 netmask specified")
			}
			svc.Netmask = uint32(n)
		}
	case tagOPS:
		if err := st.set(OptOnePacket); err != nil {
			return err
		}
		svc.OnePacket = true
	case tagPE:
		if err := st.set(OptPE); err != nil {
			return err
		}
		svc.PE = truncate(arg, MaxPENameLen)
	case tagPEStrict:
		if err := st.set(OptPEStrict); err != nil {
			return err
		}
		svc.PEStrict = true
	case tagSchedFlags:
		if err := st.set(OptSchedFlags); err != nil {
			return err
		}
		st.schedFlagsArg = truncate(arg, maxSchedFlagsArg)
	}
	return nil
}

// serverOption parses a real-server option: -r, -i/-g/-m, -w, -x, -y and
// the tunnel options.
func (st *parseState) serverOption(t tag, arg string) *UsageError {
	dest := &st.ce.Dest
	switch t {
	case tagRealServer:
		if err := st.set(OptServer); err != nil {
			return err
		}
		r, addr, port, v6 := st.ps.parseService(arg, st.ce.Service.Protocol, st.ce.Service.Port)
		if r&serviceAddr == 0 {
			// ipvsadm copies the parsed parts before the check; the
			// command fails either way.
			return failf("illegal real server address[:port] specified")
		}
		dest.Addr = netip.AddrPortFrom(addr, port)
		st.destV6 = v6
	case tagIPIP, tagGate, tagMasq:
		if err := st.set(OptForward); err != nil {
			return err
		}
		dest.Forward = map[tag]ipvs.Forward{tagIPIP: ipvs.Tunnel, tagGate: ipvs.Route, tagMasq: ipvs.Masq}[t]
	case tagWeight, tagUThreshold, tagLThreshold:
		n, err := st.number(t, arg)
		if err != nil {
			return err
		}
		switch t {
		case tagWeight:
			dest.Weight = uint32(n)
		case tagUThreshold:
			dest.UThreshold = uint32(n)
		case tagLThreshold:
			dest.LThreshold = uint32(n)
		}
	case tagTunType:
		if err := st.set(OptTunType); err != nil {
			return err
		}
		tt, ok := ipvs.ParseTunnelType(arg)
		if !ok {
			return failf("illegal tunnel type specified")
		}
		dest.Tunnel.Type = tt
	case tagTunPort:
		n, err := st.number(t, arg)
		if err != nil {
			return err
		}
		dest.Tunnel.Port = uint16(n)
	case tagTunNoCsum, tagTunCsum, tagTunRemCsum:
		o := map[tag]Opt{tagTunNoCsum: OptTunNoCsum, tagTunCsum: OptTunCsum, tagTunRemCsum: OptTunRemCsum}[t]
		if err := st.set(o); err != nil {
			return err
		}
		// ipvsadm ORs the flag bits; one is allowed per tunnel type.
		dest.Tunnel.Csum = map[tag]ipvs.TunnelCsum{tagTunNoCsum: ipvs.TunNoCsum, tagTunCsum: ipvs.TunCsum, tagTunRemCsum: ipvs.TunRemCsum}[t]
	}
	return nil
}

// numberOpts are the options whose argument is a number in a range, with
// the word ipvsadm's message uses for it.
var numberOpts = map[tag]struct {
	opt    Opt
	lo, hi int64
	name   string
}{
	tagWeight:     {OptWeight, 0, MaxWeight, "weight"},
	tagUThreshold: {OptUThreshold, 0, MaxThreshold, "u_threshold"},
	tagLThreshold: {OptLThreshold, 0, MaxThreshold, "l_threshold"},
	tagTunPort:    {OptTunPort, 1, 65535, "tunnel port"},
	tagSyncID:     {OptSyncID, 0, 255, "syncid"},
	tagMcastPort:  {OptMcastPort, 1, 65535, "mcast-port"},
	tagMcastTTL:   {OptMcastTTL, 1, 255, "mcast-ttl"},
	tagSyncMaxLen: {OptSyncMaxLen, 1, MaxSyncMaxLen, "sync-maxlen"},
}

// number sets a numeric option and parses its argument (ipvsadm's
// string_to_number and "illegal … specified").
func (st *parseState) number(t tag, arg string) (int64, *UsageError) {
	o := numberOpts[t]
	if err := st.set(o.opt); err != nil {
		return 0, err
	}
	n, ok := stringToNumber(arg, o.lo, o.hi)
	if !ok {
		return n, failf("illegal %s specified", o.name)
	}
	return n, nil
}

// listFlags are the list options: each sets one Format field.
var listFlags = map[tag]struct {
	opt   Opt
	field func(*Format) *bool
}{
	tagConnection:     {OptConnection, func(f *Format) *bool { return &f.Connections }},
	tagNumeric:        {OptNumeric, func(f *Format) *bool { return &f.Numeric }},
	tagTimeout:        {OptTimeout, func(f *Format) *bool { return &f.Timeout }},
	tagDaemon:         {OptDaemon, func(f *Format) *bool { return &f.Daemon }},
	tagStats:          {OptStats, func(f *Format) *bool { return &f.Stats }},
	tagRate:           {OptRate, func(f *Format) *bool { return &f.Rate }},
	tagThresholds:     {OptThresholds, func(f *Format) *bool { return &f.Thresholds }},
	tagPersistentConn: {OptPersistentConn, func(f *Format) *bool { return &f.PersistentConn }},
	tagNoSort:         {OptNoSort, func(f *Format) *bool { return &f.NoSort }},
	tagExact:          {OptExact, func(f *Format) *bool { return &f.Exact }},
	tagTunInfo:        {OptTunInfo, func(f *Format) *bool { return &f.TunInfo }},
	tagHealth:         {OptHealth, func(f *Format) *bool { return &f.Health }},
	tagBGP:            {OptBGP, func(f *Format) *bool { return &f.BGP }},
}

// listOption parses a list option: -c, -n, --timeout, --daemon, --stats,
// --rate, --thresholds, --persistent-conn, --nosort, --sort, --exact,
// --tun-info and the extension's --health and --bgp.
func (st *parseState) listOption(t tag) *UsageError {
	if t == tagSort {
		return nil // sorting is the default; a no-op kept for compatibility
	}
	l := listFlags[t]
	if err := st.set(l.opt); err != nil {
		return err
	}
	*l.field(&st.ce.Format) = true
	return nil
}

// daemonOption parses a sync-daemon option: --mcast-interface, --syncid,
// --mcast-group, --mcast-port, --mcast-ttl, --sync-maxlen.
func (st *parseState) daemonOption(t tag, arg string) *UsageError {
	dm := &st.ce.Daemon
	switch t {
	case tagMcastIface:
		if err := st.set(OptMcastIface); err != nil {
			return err
		}
		dm.McastIface = truncate(arg, MaxIfaceNameLen)
	case tagMcastGroup:
		if err := st.set(OptMcastGroup); err != nil {
			return err
		}
		if strings.Contains(arg, ":") {
			a, ok := parseIPv6(arg)
			dm.McastGroup = a
			if !ok || !a.IsMulticast() {
				return failf("invalid IPv6 mcast-group `%s'", arg)
			}
		} else {
			a, ok := inetPton4(arg)
			dm.McastGroup = a
			if !ok || !a.IsMulticast() {
				return failf("invalid IPv4 mcast-group `%s'", arg)
			}
		}
	default:
		n, err := st.number(t, arg)
		if err != nil {
			return err
		}
		switch t {
		case tagSyncID:
			dm.SyncID = uint8(n)
		case tagMcastPort:
			dm.McastPort = uint16(n)
		case tagMcastTTL:
			dm.McastTTL = uint8(n)
		case tagSyncMaxLen:
			dm.SyncMaxLen = uint16(n)
		}
	}
	return nil
}

// arguments takes what follows the options: --set's three timeouts; any
// other argument is an error. Then the --sched-flags argument, which
// needs the scheduler.
func (st *parseState) arguments(p *popt) *UsageError {
	ce := &st.ce
	if ce.Kind == SetTimeout {
		a1, ok1 := p.getArg()
		a2, ok2 := p.getArg()
		a3, ok3 := p.getArg()
		if !ok1 || !ok2 || !ok3 {
			return failf("--set option requires 3 timeout values")
		}
		var err *UsageError
		if ce.Timeouts.TCP, err = parseTimeout(a1, 0, MaxTimeout); err != nil {
			return err
		}
		if ce.Timeouts.TCPFin, err = parseTimeout(a2, 0, MaxTimeout); err != nil {
			return err
		}
		if ce.Timeouts.UDP, err = parseTimeout(a3, 0, MaxTimeout); err != nil {
			return err
		}
	}
	if a, ok := p.getArg(); ok {
		return failf("unexpected argument %s", a)
	}
	if st.schedFlagsArg != "" {
		f, err := parseSchedFlags(ce.Service.Scheduler, st.schedFlagsArg)
		if err != nil {
			return err
		}
		ce.Service.SchedFlags = f
	}
	return nil
}

// check is process_options' per-command checks and defaults, after
// generic_opt_check.
func (st *parseState) check() *UsageError {
	ce := &st.ce
	switch ce.Kind {
	case AddService, EditService:
		if ce.Service.Port == 0 && !ce.Service.Persistent {
			return failf("Zero port specified for non-persistent service")
		}
		if ce.Service.OnePacket && ce.Service.Protocol != ipvs.UDP {
			return failf("One-Packet Scheduling is only for UDP virtual services")
		}
		if ce.Service.Scheduler == "" {
			ce.Service.Scheduler = DefaultScheduler
		}
		if ce.Service.PEStrict && ce.Service.PE == "" {
			return failf("--pe-strict needs a persistence engine (--pe)")
		}
	case StartDaemon:
		if ce.Daemon.McastIface == "" {
			ce.Daemon.McastIface = DefaultMcastIface
		}
	case AddServer, EditServer:
		if ce.Dest.Forward == ipvs.Tunnel || ce.Dest.Forward == ipvs.Route {
			ce.Dest.Addr = netip.AddrPortFrom(ce.Dest.Addr.Addr(), ce.Service.Port)
		}
		if st.destV6 != st.svcV6 && ce.Dest.Forward != ipvs.Tunnel {
			return failf("Different address family is allowed only for tunneling servers")
		}
		tunOpts := ce.Options.Has(OptTunType) || ce.Options.Has(OptTunPort) ||
			ce.Options.Has(OptTunNoCsum) || ce.Options.Has(OptTunCsum) || ce.Options.Has(OptTunRemCsum)
		if tunOpts && ce.Dest.Forward != ipvs.Tunnel {
			return failf("Tunnel options conflict with forward method")
		}
		return tunnelOptCheck(ce.Dest.Tunnel.Type, ce.Options)
	case List:
		o := ce.Options
		if (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon)) &&
			(o.Has(OptStats) || o.Has(OptRate) || o.Has(OptThresholds)) ||
			(o.Has(OptTimeout) || o.Has(OptDaemon)) && o.Has(OptPersistentConn) {
			return failf("options conflicts in the list command")
		}
		if o.Has(OptHealth) && (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon) || o.Has(OptStats) ||
			o.Has(OptRate) || o.Has(OptThresholds) || o.Has(OptPersistentConn) || o.Has(OptTunInfo)) {
			return failf("options conflicts in the list command")
		}
		if o.Has(OptBGP) && (o.Has(OptConnection) || o.Has(OptTimeout) || o.Has(OptDaemon) || o.Has(OptStats) ||
			o.Has(OptRate) || o.Has(OptThresholds) || o.Has(OptPersistentConn) || o.Has(OptTunInfo) ||
			o.Has(OptHealth) || o.Has(OptService) || o.Has(OptNoSort) || o.Has(OptExact)) {
			return failf("options conflicts in the list command")
		}
	case HealthCheckCmd:
		return ce.checkCommand()
	}
	return nil
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
func tunnelOptCheck(t ipvs.TunnelType, opts OptionSet) *UsageError {
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
			Weight: d.Weight, Tunnel: d.Tunnel}, names)
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
