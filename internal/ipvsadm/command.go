package ipvsadm

import (
	"net/netip"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

// Kind is the command of one ipvsadm invocation. The order and the names
// returned by String follow ipvsadm's cmdnames[] table, which its error
// messages quote ("Illegal 'weight' option with the 'add-service' command").
type Kind uint8

// Commands, in ipvsadm's CMD_* order.
const (
	NoCommand     Kind = iota
	AddService         // -A, --add-service
	EditService        // -E, --edit-service
	DeleteService      // -D, --delete-service
	Clear              // -C, --clear ("flush")
	List               // -L, -l, --list (also: no arguments at all)
	AddServer          // -a, --add-server
	DeleteServer       // -d, --delete-server
	EditServer         // -e, --edit-server
	SetTimeout         // --set tcp tcpfin udp
	StartDaemon        // --start-daemon master|backup
	StopDaemon         // --stop-daemon master|backup
	Restore            // -R, --restore
	Save               // -S, --save
	Zero               // -Z, --zero
	Help               // -h, --help: print Usage on stdout, exit 0
	Version            // -v, --version: print VersionText on stdout, exit 0

	// xvs extensions (no ipvsadm counterpart).
	HealthCheckCmd // --health-check virtual-service --check type [check options]
	Drain          // --drain virtual-service -r server-address
	Undrain        // --undrain virtual-service -r server-address
	Reload         // --reload: re-read the configuration files that support it (keepalived.conf)
	SysctlCmd      // --sysctl [NAME[=VALUE]]: list, show or set IPVS sysctls
)

var kindNames = [...]string{
	NoCommand:      "none",
	AddService:     "add-service",
	EditService:    "edit-service",
	DeleteService:  "delete-service",
	Clear:          "flush",
	List:           "list",
	AddServer:      "add-server",
	DeleteServer:   "delete-server",
	EditServer:     "edit-server",
	SetTimeout:     "set",
	StartDaemon:    "start-daemon",
	StopDaemon:     "stop-daemon",
	Restore:        "restore",
	Save:           "save",
	Zero:           "zero",
	Help:           "help",
	Version:        "version",
	HealthCheckCmd: "health-check",
	Drain:          "drain",
	Undrain:        "undrain",
	Reload:         "reload",
	SysctlCmd:      "sysctl",
}

// String returns ipvsadm's name for the command, as used in its messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// protoFlag returns the ipvsadm option that names a service of protocol p
// ("-t", "-u", "--sctp-service"); "--xxx-service" for anything else, as
// ipvsadm -S prints it.
func protoFlag(p ipvs.Protocol) string {
	switch p {
	case ipvs.TCP:
		return "-t"
	case ipvs.UDP:
		return "-u"
	case ipvs.SCTP:
		return "--sctp-service"
	}
	return "--xxx-service"
}

// forwardFlag returns the option ipvsadm -S writes for a forwarding
// method: -m, -i, or -g (also for the kernel's local-node method).
func forwardFlag(f ipvs.Forward) string {
	switch f {
	case ipvs.Tunnel:
		return "-i"
	case ipvs.Masq:
		return "-m"
	}
	return "-g"
}

// Service is a virtual service as ipvsadm's -A/-E/-D/-a/-e/-d/-L/-Z
// commands specify it. For -A and -E every field holds the value ipvsadm
// sends to the kernel: unset options carry ipvsadm's defaults, because an
// edit replaces the whole service (scheduler wlc, not persistent, no PE).
type Service struct {
	Protocol ipvs.Protocol
	Addr     netip.Addr // IPv4 or IPv6 virtual address
	Port     uint16     // 0 only for persistent services

	Scheduler  string      // -s, at most MaxSchedNameLen bytes; "wlc" by default
	SchedFlags sched.Flags // -b, with the kernel's values

	Persistent bool   // -p
	Timeout    uint32 // -p value in seconds; DefaultPersistentTimeout for a bare -p

	// Netmask is the persistence granularity (-M) exactly as IPVS keeps it:
	// for IPv4 a mask in host byte order (0xffffffff, i.e. /32, by default;
	// it need not be contiguous), for IPv6 a prefix length 1..128 (128 by
	// default). See MaskAddr.
	Netmask uint32

	PE        string // --pe persistence engine name; "" = none
	OnePacket bool   // -o, --ops: one-packet scheduling

	// PEStrict is the xvs extension --pe-strict: drop packets the persistence
	// engine cannot key instead of falling back to client-address persistence.
	PEStrict bool
}

// MaskAddr returns an IPv4 service's persistence netmask as an address
// (255.255.255.255 for /32). It returns the zero Addr for IPv6 services,
// whose Netmask is a prefix length.
func (s Service) MaskAddr() netip.Addr {
	if !s.Addr.Is4() {
		return netip.Addr{}
	}
	m := s.Netmask
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
}

// Dest is a real server (destination) of a virtual service as -a/-e/-d
// specify it. For -a and -e every field is filled: an edit replaces the
// forwarding method, weight and thresholds wholesale (-g, 1 and 0 when
// omitted), as with ipvsadm.
type Dest struct {
	// Addr is the real server. Its port is the service port when -r gave
	// none, and is forced to the service port for Route and Tunnel.
	Addr       netip.AddrPort
	Forward    ipvs.Forward // -g (the default), -i, -m
	Weight     uint32       // -w, 0..MaxWeight; default 1
	UThreshold uint32       // -x, upper connection threshold; 0 = none
	LThreshold uint32       // -y, lower connection threshold; 0 = none

	// Tunnel is --tun-type, --tun-port and --tun-nocsum|--tun-csum|
	// --tun-remcsum (Tunnel only; zero, plain ipip, by default).
	Tunnel ipvs.TunnelConfig
}

// Timeouts are the connection timeouts of --set and -L --timeout, in
// seconds. In --set a zero value means "keep the current value".
type Timeouts struct {
	TCP    uint32
	TCPFin uint32
	UDP    uint32
}

// DaemonState selects the master or backup connection-sync daemon.
type DaemonState uint8

// Sync daemon states, with the kernel's bit values.
const (
	Master DaemonState = 1
	Backup DaemonState = 2
)

// String is the state's name on ipvsadm's command line.
func (s DaemonState) String() string {
	switch s {
	case Master:
		return "master"
	case Backup:
		return "backup"
	}
	return "none"
}

// Daemon is the sync-daemon part of --start-daemon/--stop-daemon, and a
// line of -L --daemon.
type Daemon struct {
	State      DaemonState
	McastIface string     // --mcast-interface; "eth0" by default for --start-daemon
	SyncID     uint8      // --syncid
	SyncMaxLen uint16     // --sync-maxlen; 0 = kernel default
	McastGroup netip.Addr // --mcast-group; zero = kernel default
	McastPort  uint16     // --mcast-port; 0 = kernel default
	McastTTL   uint8      // --mcast-ttl; 0 = kernel default
}

// Command is one parsed ipvsadm invocation.
type Command struct {
	Kind Kind

	// Options records which options were given (an OptionSet of the Opt*
	// constants); for example List with OptService lists one service.
	Options OptionSet

	Service  Service  // AddService..Zero: the virtual service
	Dest     Dest     // AddServer, EditServer, DeleteServer: the real server
	Timeouts Timeouts // SetTimeout
	Daemon   Daemon   // StartDaemon, StopDaemon
	Check    Check    // HealthCheckCmd (xvs extension)
	// Sysctl is SysctlCmd's argument (xvs extension): "" to list every
	// switch, NAME to show one, NAME=VALUE to set one.
	Sysctl string

	// Format holds the listing options of List and Save (-n, -c, --stats…).
	Format Format
}

// Format is the set of listing options (-n, --stats, …) of List and Save.
type Format struct {
	Numeric        bool // -n
	Connections    bool // -c (List only)
	Exact          bool // --exact, -X
	Stats          bool // --stats
	Rate           bool // --rate
	Thresholds     bool // --thresholds
	PersistentConn bool // --persistent-conn
	TunInfo        bool // --tun-info
	NoSort         bool // --nosort
	Timeout        bool // --timeout (List only)
	Daemon         bool // --daemon (List only)
	Health         bool // --health (List only; xvs extension)
}
