package ipvsadm

// Opt identifies an option of ipvsadm's option table (OPTC_*), in the
// table's order; its String is the name ipvsadm's messages use.
type Opt uint8

// Options, in ipvsadm's OPTC_* order, plus the xvs extensions after them.
const (
	OptNumeric        Opt = iota // -n
	OptConnection                // -c
	OptService                   // -t, -u, --sctp-service, -f
	OptScheduler                 // -s
	OptPersistent                // -p
	OptNetmask                   // -M
	OptServer                    // -r
	OptForward                   // -g, -i, -m
	OptWeight                    // -w
	OptUThreshold                // -x
	OptLThreshold                // -y
	OptMcastIface                // --mcast-interface
	OptTimeout                   // --timeout
	OptDaemon                    // --daemon
	OptStats                     // --stats
	OptRate                      // --rate
	OptThresholds                // --thresholds
	OptPersistentConn            // --persistent-conn
	OptNoSort                    // --nosort
	OptSyncID                    // --syncid
	OptExact                     // --exact, -X
	OptOnePacket                 // -o, --ops
	OptPE                        // --pe
	OptSchedFlags                // -b
	OptMcastGroup                // --mcast-group
	OptMcastPort                 // --mcast-port
	OptMcastTTL                  // --mcast-ttl
	OptSyncMaxLen                // --sync-maxlen
	OptTunInfo                   // --tun-info
	OptTunType                   // --tun-type
	OptTunPort                   // --tun-port
	OptTunNoCsum                 // --tun-nocsum
	OptTunCsum                   // --tun-csum
	OptTunRemCsum                // --tun-remcsum
	OptPEStrict                  // --pe-strict (xvs extension)
	OptCheck                     // --check (xvs extension)
	OptInterval                  // --interval (xvs extension)
	OptCheckTimeout              // --check-timeout (xvs extension)
	OptFail                      // --fail (xvs extension)
	OptRise                      // --rise (xvs extension)
	OptCheckPort                 // --check-port (xvs extension)
	OptCodes                     // --codes (xvs extension)
	OptOnFail                    // --on-fail (xvs extension)
	OptHealth                    // --health (xvs extension)
	OptScript                    // --script (xvs extension)
	OptScriptUser                // --script-user (xvs extension)
	OptDynamic                   // --dynamic (xvs extension)
	OptURL                       // --url (xvs extension)
	OptDigest                    // --digest (xvs extension)
	OptVirtualHost               // --virtualhost (xvs extension)
	OptRetryInterval             // --retry-interval (xvs extension)
	OptStartDown                 // --start-down (xvs extension)
	OptBGP                       // --bgp (xvs extension)
	numOpts
)

var optNames = [numOpts]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
	"pe-strict", "check", "interval", "check-timeout", "fail", "rise", "check-port",
	"codes", "on-fail", "health", "script", "script-user", "dynamic", "url", "digest",
	"virtualhost", "retry-interval", "start-down", "bgp",
}

// String returns ipvsadm's name of the option.
func (o Opt) String() string {
	if o < numOpts {
		return optNames[o]
	}
	return "unknown"
}

// OptionSet is a set of Opt.
type OptionSet uint64

// Has reports whether o is in the set.
func (s OptionSet) Has(o Opt) bool { return s&(1<<o) != 0 }

func (s *OptionSet) add(o Opt) { *s |= 1 << o }

// commandsVOptions is ipvsadm's commands_v_options table, extended by the
// xvs column pe-strict: '+' compulsory, 'x' illegal, '1' exclusive (only one
// '1' option can be supplied), ' ' optional. Rows are indexed by Kind-1.
var commandsVOptions = [Zero][numOpts]byte{
	/*             -n   -c   svc  -s   -p   -M   -r   fwd  -w   -x   -y   -mc  tot  dmn  -st  -rt  thr  -pc  srt  sid  -ex  ops  -pe  -b   grp  port ttl  size tinf type tprt nocs csum remc strict */
	/*ADD*/ {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' '},
	/*EDIT*/ {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' '},
	/*DEL*/ {'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*FLUSH*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*LIST*/ {' ', '1', '1', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '1', '1', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*ADDSRV*/ {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' ', 'x'},
	/*DELSRV*/ {'x', 'x', '+', 'x', 'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*EDITSRV*/ {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' ', 'x'},
	/*TIMEOUT*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*STARTD*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*STOPD*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*RESTORE*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*SAVE*/ {' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
	/*ZERO*/ {'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
}

// tunnelTypesVOptions is ipvsadm's tunnel_types_v_options table over the
// columns tun-port, tun-nocsum, tun-csum, tun-remcsum.
var tunnelTypesVOptions = [3][4]byte{
	/* ipip */ {'x', 'x', 'x', 'x'},
	/* gue */ {'+', '1', '1', '1'},
	/* gre */ {'x', '1', '1', 'x'},
}

var tunnelOpts = [4]Opt{OptTunPort, OptTunNoCsum, OptTunCsum, OptTunRemCsum}

// argKind says whether a popt option takes an argument.
type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional // POPT_ARGFLAG_OPTIONAL: taken only if it does not start with '-'
)

// tag identifies an entry of the popt option table.
type tag uint8

const (
	tagNone tag = iota
	tagAddService
	tagEditService
	tagDeleteService
	tagClear
	tagList
	tagZero
	tagAddServer
	tagEditServer
	tagDeleteServer
	tagSet
	tagHelp
	tagVersion
	tagRestore
	tagSave
	tagStartDaemon
	tagStopDaemon
	tagTCP
	tagUDP
	tagSCTP
	tagFwmark
	tagScheduler
	tagPersistent
	tagNetmask
	tagRealServer
	tagMasq
	tagIPIP
	tagGate
	tagWeight
	tagUThreshold
	tagLThreshold
	tagNumeric
	tagConnection
	tagMcastIface
	tagSyncID
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagNoSort
	tagSort
	tagExact
	tagIPv6
	tagOPS
	tagPE
	tagSchedFlags
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxLen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagPEStrict
	tagHealthCheck
	tagDrain
	tagUndrain
	tagSysctl
	tagCheck
	tagInterval
	tagCheckTimeout
	tagFail
	tagRise
	tagCheckPort
	tagCodes
	tagOnFail
	tagHealth
	tagScript
	tagScriptUser
	tagDynamic
	tagURL
	tagDigest
	tagVirtualHost
	tagRetryInterval
	tagStartDown
	tagReload
	tagDrainDirector
	tagUndrainDirector
	tagBGP
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   tag
}

// poptTable is ipvsadm's popt options_table, plus --pe-strict and the
// health-check and drain extensions.
var poptTable = []optDef{
	{"add-service", 'A', argNone, tagAddService},
	{"edit-service", 'E', argNone, tagEditService},
	{"delete-service", 'D', argNone, tagDeleteService},
	{"clear", 'C', argNone, tagClear},
	{"list", 'L', argNone, tagList},
	{"list", 'l', argNone, tagList},
	{"zero", 'Z', argNone, tagZero},
	{"add-server", 'a', argNone, tagAddServer},
	{"edit-server", 'e', argNone, tagEditServer},
	{"delete-server", 'd', argNone, tagDeleteServer},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, tagHelp},
	{"version", 'v', argNone, tagVersion},
	{"restore", 'R', argNone, tagRestore},
	{"save", 'S', argNone, tagSave},
	{"start-daemon", 0, argRequired, tagStartDaemon},
	{"stop-daemon", 0, argRequired, tagStopDaemon},
	{"tcp-service", 't', argRequired, tagTCP},
	{"udp-service", 'u', argRequired, tagUDP},
	{"sctp-service", 0, argRequired, tagSCTP},
	{"fwmark-service", 'f', argRequired, tagFwmark},
	{"scheduler", 's', argRequired, tagScheduler},
	{"persistent", 'p', argOptional, tagPersistent},
	{"netmask", 'M', argRequired, tagNetmask},
	{"real-server", 'r', argRequired, tagRealServer},
	{"masquerading", 'm', argNone, tagMasq},
	{"ipip", 'i', argNone, tagIPIP},
	{"gatewaying", 'g', argNone, tagGate},
	{"weight", 'w', argRequired, tagWeight},
	{"u-threshold", 'x', argRequired, tagUThreshold},
	{"l-threshold", 'y', argRequired, tagLThreshold},
	{"numeric", 'n', argNone, tagNumeric},
	{"connection", 'c', argNone, tagConnection},
	{"mcast-interface", 0, argRequired, tagMcastIface},
	{"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, tagExact},
	{"ipv6", '6', argNone, tagIPv6},
	{"ops", 'o', argNone, tagOPS},
	{"pe", 0, argRequired, tagPE},
	{"sched-flags", 'b', argRequired, tagSchedFlags},
	{"mcast-group", 0, argRequired, tagMcastGroup},
	{"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL},
	{"sync-maxlen", 0, argRequired, tagSyncMaxLen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemCsum},
	{"pe-strict", 0, argNone, tagPEStrict},
	{"health-check", 0, argNone, tagHealthCheck},
	{"drain", 0, argNone, tagDrain},
	{"undrain", 0, argNone, tagUndrain},
	{"sysctl", 0, argOptional, tagSysctl},
	{"check", 0, argRequired, tagCheck},
	{"interval", 0, argRequired, tagInterval},
	{"check-timeout", 0, argRequired, tagCheckTimeout},
	{"fail", 0, argRequired, tagFail},
	{"rise", 0, argRequired, tagRise},
	{"check-port", 0, argRequired, tagCheckPort},
	{"codes", 0, argRequired, tagCodes},
	{"on-fail", 0, argRequired, tagOnFail},
	{"health", 0, argNone, tagHealth},
	{"script", 0, argRequired, tagScript},
	{"script-user", 0, argRequired, tagScriptUser},
	{"dynamic", 0, argNone, tagDynamic},
	{"url", 0, argRequired, tagURL},
	{"digest", 0, argRequired, tagDigest},
	{"virtualhost", 0, argRequired, tagVirtualHost},
	{"retry-interval", 0, argRequired, tagRetryInterval},
	{"start-down", 0, argNone, tagStartDown},
	{"reload", 0, argNone, tagReload},
	{"drain-director", 0, argNone, tagDrainDirector},
	{"undrain-director", 0, argNone, tagUndrainDirector},
	{"bgp", 0, argNone, tagBGP},
}

func lookupLong(name string) (optDef, bool) {
	for _, d := range poptTable {
		if d.long == name {
			return d, true
		}
	}
	return optDef{}, false
}

func lookupShort(c byte) (optDef, bool) {
	for _, d := range poptTable {
		if d.short == c && c != 0 {
			return d, true
		}
	}
	return optDef{}, false
}
