package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/xvs-lb/xvs/internal/sched"
)

// Limits and IPVS defaults.
const (
	// MaxWorkers bounds the per-worker counter and scheduler slots: each
	// Stats costs 128 bytes per worker, so 64 workers (RX queues) cost 8 KiB
	// per destination.
	MaxWorkers = 64
	// MaxDests bounds the destinations of all services together: a DestID
	// keeps the slot in its low destSlotBits bits.
	MaxDests = 1 << destSlotBits
	// MaxTimeout is ipvsadm's MAX_TIMEOUT (86400*31 s) for -p and --set.
	MaxTimeout = 2678400
	// DefaultPersistentTimeout is IPVS_SVC_PERSISTENT_TIMEOUT, used by a
	// bare -p (the man page's "300" is wrong).
	DefaultPersistentTimeout = 360
	// MaxPENameLen is IP_VS_PENAME_MAXLEN (16) less the terminating NUL.
	MaxPENameLen = 15
	// DestTrashPeriod is IP_VS_DEST_TRASH_PERIOD: how long a deleted
	// destination can be revived with its DestID and counters.
	DestTrashPeriod = 120 // seconds

	destSlotBits = 16
	destSlotMask = 1<<destSlotBits - 1
	destGenMask  = 1<<(32-destSlotBits) - 1
)

// Protocol is a virtual service's L4 protocol (IPPROTO_*).
type Protocol uint8

// Protocols. SCTP is named so that ipvsadm's grammar can recognise
// --sctp-service; the model refuses it (ErrInvalid): xvs balances TCP and
// UDP.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns "TCP", "UDP" or "SCTP", as ipvsadm lists them.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return "proto" + strconv.Itoa(int(p))
}

// Forward is a destination's forwarding method, with IPVS's values
// (IP_VS_CONN_F_FWD_MASK).
type Forward uint8

// Forwarding methods.
const (
	Masq   Forward = 0 // NAT, ipvsadm -m
	Local  Forward = 1 // local node
	Tunnel Forward = 2 // encapsulation (IPIP, GUE, GRE), ipvsadm -i
	Route  Forward = 3 // direct routing, ipvsadm -g, ipvsadm's default
)

// String returns the name ipvsadm -L prints.
func (f Forward) String() string {
	switch f {
	case Masq:
		return "Masq"
	case Local:
		return "Local"
	case Tunnel:
		return "Tunnel"
	case Route:
		return "Route"
	}
	return "Forward(" + strconv.Itoa(int(f)) + ")"
}

// TunnelType is a tunnelling destination's encapsulation (--tun-type), with
// the kernel's values (IP_VS_CONN_F_TUNNEL_TYPE_*).
type TunnelType uint8

// Tunnel types; IPIP is the default.
const (
	IPIP TunnelType = 0 // IP in IP (IPv4: protocol 4, IPv6: 41), no further header
	GUE  TunnelType = 1 // Generic UDP Encapsulation to TunnelConfig.Port
	GRE  TunnelType = 2 // GRE (RFC 2784), protocol 47
)

var tunnelNames = [...]string{IPIP: "ipip", GUE: "gue", GRE: "gre"}

// String returns the --tun-type name.
func (t TunnelType) String() string {
	if int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return "tuntype" + strconv.Itoa(int(t))
}

// ParseTunnelType returns the tunnel type named s ("ipip", "gue", "gre").
func ParseTunnelType(s string) (TunnelType, bool) {
	for i, n := range tunnelNames {
		if s == n {
			return TunnelType(i), true
		}
	}
	return 0, false
}

// TunnelCsum is a GUE or GRE tunnel's checksum mode
// (IP_VS_TUNNEL_ENCAP_FLAG_*: none, CSUM, REMCSUM).
type TunnelCsum uint8

// Tunnel checksum modes: --tun-nocsum (the default), --tun-csum,
// --tun-remcsum (GUE only).
const (
	TunNoCsum  TunnelCsum = 0
	TunCsum    TunnelCsum = 1
	TunRemCsum TunnelCsum = 2
)

var tunnelCsumNames = [...]string{TunNoCsum: "nocsum", TunCsum: "csum", TunRemCsum: "remcsum"}

// String returns the mode's option name without "--tun-": "nocsum", "csum"
// or "remcsum".
func (c TunnelCsum) String() string {
	if int(c) < len(tunnelCsumNames) {
		return tunnelCsumNames[c]
	}
	return "csum" + strconv.Itoa(int(c))
}

// TunnelConfig is how a tunnelling (-i) destination encapsulates: ipvsadm's
// --tun-type, --tun-port and --tun-nocsum|--tun-csum|--tun-remcsum, as the
// kernel keeps them (dest->tun_type, tun_port, tun_flags). The zero value is
// plain IPIP, ipvsadm's default. It is ignored for other forwarding methods,
// and normalised to the zero value there.
type TunnelConfig struct {
	Type TunnelType
	Port uint16     // GUE's UDP destination port (1..65535); 0 for IPIP and GRE
	Csum TunnelCsum // GUE: any; GRE: TunNoCsum or TunCsum; IPIP: TunNoCsum
}

// ServiceKey identifies a virtual service.
type ServiceKey struct {
	Protocol Protocol
	Addr     netip.Addr
	Port     uint16
}

// String renders the key as "UDP 10.0.0.1:5060" or "UDP [2001:db8::1]:5060".
func (k ServiceKey) String() string {
	return k.Protocol.String() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Netmask is the persistence granularity (-M). The zero value is the
// default, /32 or /128 (the whole client address).
type Netmask struct {
	kind uint8 // 0 default, 4, 6
	v4   [4]byte
	plen int
}

// Mask4 returns an IPv4 dotted netmask. It need not be contiguous: IPVS
// just ANDs the client address with it.
func Mask4(m netip.Addr) Netmask {
	if !m.Is4() {
		return Netmask{kind: 4, plen: -1}
	}
	return Netmask{kind: 4, v4: m.As4()}
}

// Mask6 returns an IPv6 prefix-length netmask (1..128).
func Mask6(bits int) Netmask { return Netmask{kind: 6, plen: bits} }

// IsDefault reports whether m is the zero (whole address) netmask.
func (m Netmask) IsDefault() bool { return m.kind == 0 }

// String renders m as ipvsadm prints it: dotted for IPv4, the prefix length
// for IPv6, "" for the default.
func (m Netmask) String() string {
	switch m.kind {
	case 4:
		return netip.AddrFrom4(m.v4).String()
	case 6:
		return strconv.Itoa(m.plen)
	}
	return ""
}

// bytes returns the mask to AND a 16-byte address form with, or false when
// m does not suit family is6.
func (m Netmask) bytes(is6 bool) (b [16]byte, ok bool) {
	switch {
	case m.kind == 0:
		for i := range b {
			b[i] = 0xff
		}
		return b, true
	case m.kind == 4 && !is6 && m.plen == 0:
		for i := range 12 {
			b[i] = 0xff
		}
		copy(b[12:], m.v4[:])
		return b, true
	case m.kind == 6 && is6 && m.plen >= 1 && m.plen <= 128:
		for i := range m.plen {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return b, true
	}
	return b, false
}

// ServiceConfig is a virtual service as ipvsadm -A/-E describes it.
type ServiceConfig struct {
	Protocol Protocol
	// Addr is the virtual address and port. Port 0 (any port) is allowed
	// only for persistent services.
	Addr netip.AddrPort
	// Scheduler is a sched name; "" means sched.Default (wlc).
	Scheduler  string
	SchedFlags sched.Flags // -b
	Persistent bool        // -p
	// Timeout is the persistence timeout in seconds, 1..MaxTimeout; 0 with
	// Persistent means DefaultPersistentTimeout. Ignored when not persistent.
	Timeout uint32
	Netmask Netmask // -M
	PE      string  // --pe; "" = none
	// PEStrict drops packets the PE cannot key instead of falling back to
	// normal persistence (xvs extension; the kernel's behaviour).
	PEStrict  bool
	OnePacket bool // -o, UDP only
}

// Key returns the service's identity.
func (c ServiceConfig) Key() ServiceKey {
	return ServiceKey{Protocol: c.Protocol, Addr: c.Addr.Addr().Unmap(), Port: c.Addr.Port()}
}

// DestConfig is a real server as ipvsadm -a/-e describes it. The zero value
// has IPVS's raw defaults (Masq, weight 0); [DefaultDest] has ipvsadm's.
type DestConfig struct {
	// Addr is the real server. Port 0 means the service port; Route and
	// Tunnel force the service port, as ipvsadm does.
	Addr netip.AddrPort
	Fwd  Forward
	// Weight is 0..65535; 0 quiesces the destination.
	Weight int
	// Upper and Lower are the connection thresholds (-x, -y); 0 = none.
	// Lower must not exceed Upper.
	Upper, Lower uint32
	// Tunnel is the encapsulation of a Tunnel destination (zero for the
	// other methods).
	Tunnel TunnelConfig
	// NextHop is the MAC to send direct-routed packets to (xvs extension);
	// zero means not resolved yet.
	NextHop [6]byte
	// Source and MTU complete the egress towards the real server (xvs
	// extension, resolved like NextHop, see Config.SetEgress): the
	// director's address there, the outer source of tunnelled packets
	// (the kernel's route source, dest_dst->dst_saddr), and the path's MTU
	// (dst_mtu), which tunnels check. Zero: not resolved yet.
	Source netip.Addr
	MTU    int
}

// DefaultDest returns ipvsadm's defaults for -a/-e: direct routing, weight 1.
func DefaultDest(addr netip.AddrPort) DestConfig {
	return DestConfig{Addr: addr, Fwd: Route, Weight: 1}
}

// DestID identifies a destination in a snapshot: slot | generation<<16.
// The zero DestID is never valid.
type DestID uint32

// Slot returns the slot part of id, below MaxDests.
func (id DestID) Slot() int { return int(id & destSlotMask) }

func (id DestID) String() string {
	return fmt.Sprintf("%d.%d", id&destSlotMask, uint32(id)>>destSlotBits)
}

// Timeouts are the --set timeouts in seconds.
type Timeouts struct {
	TCP    uint32 // established TCP
	TCPFin uint32 // TCP after FIN
	UDP    uint32
}

// DefaultTimeouts are the kernel's: tcp 900, tcpfin 120, udp 300.
var DefaultTimeouts = Timeouts{TCP: 900, TCPFin: 120, UDP: 300}
