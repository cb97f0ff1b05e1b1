package keepalived

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// Config is the LVS part of a keepalived configuration as keepalived 2.2
// understands it, with keepalived's defaults applied: virtual servers
// (groups expanded into addresses), their real servers and checkers, and
// the global settings that concern LVS. Everything else (VRRP, BFD, most of
// global_defs) is keepalived's own business and is skipped.
type Config struct {
	// VirtualServers in file order; a virtual_server of a group appears
	// once, with every address of the group in Addrs.
	VirtualServers []*VirtualServer
	// Timeouts is global_defs' lvs_timeouts (zero fields: not set).
	Timeouts    Timeouts
	TimeoutsPos Pos
	// SyncDaemon is global_defs' lvs_sync_daemon, or vrrp_instance's
	// deprecated lvs_sync_daemon_interface; nil when neither is set.
	SyncDaemon *SyncDaemon
	// ScriptUser is global_defs' script_user ("user" or "user group"):
	// the default user of MISC_CHECK scripts. Empty: keepalived's default
	// (keepalived_script if that user exists, else root).
	ScriptUser string
	// ScriptSecurity is enable_script_security.
	ScriptSecurity bool
	// Instances are the vrrp_instance blocks (name and router id only).
	Instances []VRRPInstance
}

// Timeouts are lvs_timeouts' values in seconds (ipvsadm --set).
type Timeouts struct {
	TCP, TCPFin, UDP uint32
}

// VRRPInstance is what xvs reads of a vrrp_instance.
type VRRPInstance struct {
	Pos  Pos
	Name string
	VRID int // virtual_router_id, 0 when unset
}

// SyncDaemon is lvs_sync_daemon: the IPVS connection synchronisation
// daemon that keepalived starts as master or backup following a VRRP
// instance's state (or both at once without an instance).
type SyncDaemon struct {
	Pos      Pos
	Iface    string
	Instance string // "inst": the VRRP instance it follows; "" for none
	// SyncID is "id", defaulting to the instance's virtual_router_id (0
	// without an instance). HasID tells whether it was given.
	SyncID uint8
	HasID  bool
	MaxLen uint16     // "maxlen"; 0 = default
	Port   uint16     // "port"; 0 = default (8848)
	TTL    uint8      // "ttl"; 0 = default (1)
	Group  netip.Addr // "group"; zero = default (224.0.0.81)
	// Deprecated is set for vrrp_instance's lvs_sync_daemon_interface.
	Deprecated bool
}

// Forward is a forwarding method (lvs_method, lb_kind).
type Forward uint8

// Forwarding methods; FwdUnset is "not configured" (keepalived then uses
// the virtual server's, and in the end NAT).
const (
	FwdUnset Forward = iota
	FwdNAT
	FwdDR
	FwdTUN
)

var forwardNames = [...]string{"unset", "NAT", "DR", "TUN"}

func (f Forward) String() string {
	if int(f) < len(forwardNames) {
		return forwardNames[f]
	}
	return "?"
}

// Method is a forwarding method with its tunnel options.
type Method struct {
	Fwd     Forward
	TunType string // "ipip" (default), "gue", "gre"
	TunPort uint16 // gue only
	TunCsum string // "nocsum" (default), "csum", "remcsum"
}

// VirtualServer is a virtual_server block.
type VirtualServer struct {
	Pos Pos
	// Addrs are the service addresses: one for "virtual_server IP PORT",
	// every address of the group for "virtual_server group NAME". Port 0
	// is "any port" (persistent services only).
	Addrs []netip.AddrPort
	// Group is the group's name for "virtual_server group NAME".
	Group string
	// Fwmark is set for "virtual_server fwmark N" (unsupported by xvs).
	Fwmark    uint32
	IsFwmark  bool
	Protocol  ipvs.Protocol // TCP, UDP or SCTP (refused when mapped)
	Scheduler string
	// OnePacket is "ops"; SchedFlags are flag-1..3 (bit 0..2) with sh-*
	// and mh-* mapped onto them as keepalived does; Hashed is "hashed".
	OnePacket  bool
	SchedFlags uint8
	Hashed     bool
	Method     Method
	// PersistenceTimeout in seconds; 0 = not persistent.
	PersistenceTimeout uint32
	// Granularity is persistence_granularity: an IPv4 mask or an IPv6
	// prefix length (GranularitySet false: whole address).
	Granularity4   netip.Addr
	Granularity6   int
	GranularitySet bool
	PE             string
	PEPos          Pos

	HASuspend   bool
	Virtualhost string
	Alpha       bool
	Omega       bool
	Quorum      uint32 // default 1
	Hysteresis  uint32
	QuorumUp    string
	QuorumDown  string
	// Weight is the virtual server's "weight": the default weight of its
	// real servers (1).
	Weight  int
	Inhibit bool
	Timers  Timers

	RealServers []*RealServer
	Sorry       *RealServer

	// positions of keywords the mapping reports on
	kw map[string]Pos
}

// Timers are the checker timing settings that cascade from the virtual
// server to its real servers to their checkers. Negative means unset.
type Timers struct {
	DelayLoop        time.Duration
	DelayBeforeRetry time.Duration
	ConnectTimeout   time.Duration
	Warmup           time.Duration
	Retry            int
}

func unsetTimers() Timers {
	return Timers{DelayLoop: -1, DelayBeforeRetry: -1, ConnectTimeout: -1, Warmup: -1, Retry: -1}
}

// inherit fills t's unset fields from p.
func (t Timers) inherit(p Timers) Timers {
	if t.DelayLoop < 0 {
		t.DelayLoop = p.DelayLoop
	}
	if t.DelayBeforeRetry < 0 {
		t.DelayBeforeRetry = p.DelayBeforeRetry
	}
	if t.ConnectTimeout < 0 {
		t.ConnectTimeout = p.ConnectTimeout
	}
	if t.Warmup < 0 {
		t.Warmup = p.Warmup
	}
	if t.Retry < 0 {
		t.Retry = p.Retry
	}
	return t
}

// RealServer is a real_server (or the sorry_server) of a virtual server.
type RealServer struct {
	Pos         Pos
	Addr        netip.AddrPort // port 0: not given
	Weight      int
	Method      Method
	UThreshold  uint32
	LThreshold  uint32
	Inhibit     bool
	Alpha       bool
	Virtualhost string
	Timers      Timers
	NotifyUp    string
	NotifyDown  string
	Checkers    []*Checker

	weightSet, inhibitSet, alphaSet bool
}

// CheckerType is a checker keyword: "TCP_CHECK", "MISC_CHECK", …
type CheckerType string

// Checker types.
const (
	TCPCheck  CheckerType = "TCP_CHECK"
	UDPCheck  CheckerType = "UDP_CHECK"
	MiscCheck CheckerType = "MISC_CHECK"
	HTTPGet   CheckerType = "HTTP_GET"
	SSLGet    CheckerType = "SSL_GET"
	SMTPCheck CheckerType = "SMTP_CHECK"
	DNSCheck  CheckerType = "DNS_CHECK"
	PingCheck CheckerType = "PING_CHECK"
	FileCheck CheckerType = "FILE_CHECK"
	BFDCheck  CheckerType = "BFD_CHECK"
)

// Checker is a health checker block of a real server.
type Checker struct {
	Pos         Pos
	Type        CheckerType
	ConnectIP   netip.Addr
	ConnectPort uint16
	Timers      Timers
	Alpha       bool
	alphaSet    bool

	// MISC_CHECK
	Script     []string // misc_path, split as keepalived splits it
	ScriptText string   // misc_path as written (after keepalived's unquoting)
	Timeout    time.Duration
	Dynamic    bool
	User       string // "user" or "user group"

	// HTTP_GET, SSL_GET
	URLs        []URL
	Virtualhost string

	// options xvs does not map, with their positions, for warnings
	ignored []ignoredKw
}

type ignoredKw struct {
	pos  Pos
	kw   string
	why  string
	warn bool
}

// URL is an HTTP_GET/SSL_GET url block.
type URL struct {
	Pos         Pos
	Path        string
	Digest      string   // lower-case hex MD5, "" for none
	StatusCodes []string // as written ("200", "200-299"); empty = 200-299
	Virtualhost string
}
