package syncd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Role is the daemon's role, with the kernel's values (IP_VS_STATE_*).
type Role uint8

// Roles.
const (
	Master Role = 1 // sends
	Backup Role = 2 // receives
)

func (r Role) String() string {
	switch r {
	case Master:
		return "master"
	case Backup:
		return "backup"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// The kernel's defaults (ip_vs_sync.c, start_sync_thread).
var (
	// DefaultGroup is IP_VS_SYNC_GROUP. There is no IPv6 default: an IPv6
	// daemon needs --mcast-group (any multicast address, typically
	// link-scope ff02::…).
	DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})
)

const (
	// DefaultPort is IP_VS_SYNC_PORT; port+i serves sync_ports thread i.
	DefaultPort = 8848
	// DefaultTTL is the multicast TTL (hop limit) when none is given.
	DefaultTTL = 1
	// DefaultMTU is what a master assumes whatever its interface (the
	// kernel uses 1500, not the device MTU, for the master) and the least
	// a backup assumes.
	DefaultMTU = 1500
	// MinBackupMaxLen is the smallest sync_maxlen a backup accepts: its
	// receive buffer must hold a whole message.
	MinBackupMaxLen = 1024
	// hlen4 and hlen6 are the IP and UDP headers sync_maxlen leaves room for.
	hlen4 = 20 + 8
	hlen6 = 40 + 8
	// maxDatagram is the longest IP datagram.
	maxDatagram = 65535
)

// Errors from Config.Resolve and from starting a daemon, with the kernel's
// errno meaning.
var (
	// ErrInterface reports an unknown --mcast-interface (ENODEV).
	ErrInterface = errors.New("unknown mcast interface")
	// ErrGroup reports a --mcast-group that is not a multicast address
	// (EINVAL).
	ErrGroup = errors.New("mcast group is not a multicast address")
	// ErrRunning reports --start-daemon of a daemon that runs (EEXIST),
	// with ipvsadm's message.
	//lint:ignore ST1005 ipvsadm's message (ipvs_strerror), byte for byte
	ErrRunning = errors.New("Daemon has already run")
	// ErrNotRunning reports --stop-daemon of a daemon that does not run
	// (ESRCH), with ipvsadm's message.
	//lint:ignore ST1005 ipvsadm's message (ipvs_strerror), byte for byte
	ErrNotRunning = errors.New("No daemon is running")
)

// Config is one sync daemon's parameters: ipvsadm's --start-daemon
// options. Zero fields take the kernel's defaults in Resolve.
type Config struct {
	Interface string     // --mcast-interface
	SyncID    uint8      // --syncid; a backup with 0 accepts every syncid
	MaxLen    int        // --sync-maxlen: the UDP payload limit; 0 = default
	Group     netip.Addr // --mcast-group; zero = DefaultGroup
	Port      uint16     // --mcast-port; 0 = DefaultPort
	TTL       uint8      // --mcast-ttl; 0 = DefaultTTL
}

// Resolve applies the kernel's defaults and clamps for role on an interface
// of the given MTU, as start_sync_thread does:
//
//   - group 224.0.0.81, port 8848, TTL 1 when not set;
//   - sync_maxlen when not set: for a master 1500 minus the IP and UDP
//     headers (1472 over IPv4, 1452 over IPv6), for a backup the interface
//     MTU clamped to 1500..65535 minus the headers;
//   - a given sync_maxlen is clamped to 1 (master) or 1024 (backup) ..
//     65535 minus the headers.
//
// The result is what ipvsadm -L --daemon shows.
func (c Config) Resolve(role Role, mtu int) (Config, error) {
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	c.Group = c.Group.Unmap()
	if !c.Group.IsMulticast() {
		return c, fmt.Errorf("%s: %w", c.Group, ErrGroup)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	hlen := hlen4
	if c.Group.Is6() {
		hlen = hlen6
	}
	lo, m := 1, DefaultMTU
	if role == Backup {
		lo, m = MinBackupMaxLen, min(max(mtu, DefaultMTU), maxDatagram)
	}
	if c.MaxLen != 0 {
		c.MaxLen = min(max(c.MaxLen, lo), maxDatagram-hlen)
	} else {
		c.MaxLen = m - hlen
	}
	return c, nil
}

// resolveOn looks the interface up and resolves c for role on it.
func resolveOn(c Config, role Role) (Config, *net.Interface, error) {
	ifi, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return c, nil, fmt.Errorf("%q: %w", c.Interface, ErrInterface)
	}
	c, err = c.Resolve(role, ifi.MTU)
	return c, ifi, err
}
