package ipvsadm

import (
	"net/netip"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

// Stats are the cumulative counters of a service or destination
// (--stats).
type Stats struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

// ServiceView is what the listing and save formats show of a virtual
// service. Fields mean what they mean in Service.
type ServiceView struct {
	Protocol   ipvs.Protocol
	Addr       netip.Addr
	Port       uint16
	Scheduler  string
	SchedFlags sched.Flags
	Persistent bool
	Timeout    uint32 // seconds
	Netmask    uint32 // IPv4 mask in host byte order, or IPv6 prefix length
	PE         string
	OnePacket  bool
	PEStrict   bool // xvs extension: shown by Save only
	// Check is the service's health check (xvs extension), nil for none:
	// saved by Save, shown by the --health listing only.
	Check *CheckView
	Stats Stats
	Rates ipvs.Rates // --rate
	Dests []DestView
}

// DestView is what the listing and save formats show of a real server.
type DestView struct {
	Addr         netip.Addr
	Port         uint16
	Forward      ipvs.Forward
	Weight       uint32
	ActiveConns  uint32
	InactConns   uint32
	PersistConns uint32 // templates pointing at this destination
	UThreshold   uint32
	LThreshold   uint32
	Tunnel       ipvs.TunnelConfig // Forward == ipvs.Tunnel: its encapsulation
	Stats        Stats
	Rates        ipvs.Rates
	// xvs extensions, shown by the --health listing only (Draining and
	// DrainWeight are also saved by Save): Down when the health check failed it, Draining
	// after --drain, Health the prober's view (nil when not checked).
	Down        bool
	Draining    bool
	DrainWeight uint32 // the weight --undrain restores
	Health      *DestHealth
	// Check is the real server's own health check (saved by Save, shown
	// by --health), nil when it follows the service's.
	Check *CheckView
	// DynWeight is the weight a --dynamic script check set (shown by
	// --health), when HasDynWeight.
	DynWeight    uint32
	HasDynWeight bool
	// NextHop, when not empty, says why frames to the real server cannot
	// leave (shown by --health): not reachable through a served interface,
	// no route, no answer to ARP/neighbour discovery, resolving.
	NextHop string
}

// ConnView is one connection or persistence template of -Lc.
type ConnView struct {
	// Protocol of the entry; zero (shown "IP") for fwmark templates.
	Protocol ipvs.Protocol
	Client   netip.AddrPort // port 0 for templates
	Virtual  netip.AddrPort
	Dest     netip.AddrPort
	State    string // e.g. "NONE", "ASSURED", "UDP", "ESTABLISHED"
	Expires  uint32 // seconds left
	PEName   string // persistence engine of a template; "" if none
	PEData   []byte // its key (the SIP Call-ID); shown escaped, see package doc
	// Synced: a backup received the entry from a master's sync daemon; the
	// row ends with SyncedMark (xvs extension).
	Synced bool
}

// Table is the whole virtual-server table as -L and -S list it.
type Table struct {
	// ConnTableSize is the connection hash size shown in the banner;
	// 0 means DefaultConnTableSize.
	ConnTableSize int
	Services      []ServiceView
}

// Names turns addresses and ports into names when listing without -n
// (ipvsadm: gethostbyaddr and getservbyport). Nil functions fall back to
// the numeric address and to the built-in ServiceName table.
type Names struct {
	Host    func(netip.Addr) (string, bool)
	Service func(ipvs.Protocol, uint16) (string, bool)
}
