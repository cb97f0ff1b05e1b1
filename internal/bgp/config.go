package bgp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits.
const (
	// DefaultHoldTime is the hold time xvs offers (the session uses the
	// smaller of both sides'). A killed xvs closes its TCP sessions at once
	// (the kernel sends the FIN), so the hold timer only matters when the
	// whole host dies, freezes or loses its link: then the router keeps
	// sending 1/N of the calls into a black hole until it expires. 90 s
	// (RFC 4271's suggestion) is far too long for SIP, whose transactions
	// time out after 32 s; 9 s with a keepalive every 3 s tolerates two lost
	// keepalives and is the usual "fast" data-centre setting. Faster
	// detection belongs on the router (BFD), see docs/scale-out.md.
	DefaultHoldTime = 9 * time.Second
	// MinHoldTime is RFC 4271's smallest non-zero hold time.
	MinHoldTime = 3 * time.Second
	// MaxHoldTime is the largest the OPEN message carries.
	MaxHoldTime = 65535 * time.Second
	// DefaultDrainPeriod is how long xvs keeps forwarding after it has
	// withdrawn its routes (SIGTERM, before it exits): time for the withdraw
	// to reach the router and its FIB (milliseconds on a ToR running BIRD or
	// FRR, up to a few seconds through a second tier or a busy control
	// plane) and for datagrams already on their way to arrive. Every
	// datagram that still reaches a draining director is forwarded as
	// before, so a longer period costs only shutdown time.
	DefaultDrainPeriod = 5 * time.Second
	// MaxDrainPeriod bounds --bgp-drain-period: a stop must not hang for
	// longer than a service manager waits (systemd's default is 90 s).
	MaxDrainPeriod = time.Minute
	// MaxAnnounceDelay bounds --bgp-announce-delay: sync_refresh_period
	// is rarely more than a minute, and a director that waits longer to
	// take traffic after a restart is a configuration mistake.
	MaxAnnounceDelay = 5 * time.Minute
	// MaxPeers bounds the peers of one director (ToR pairs, a few route
	// servers; a longer list is a configuration mistake).
	MaxPeers = 64
	// MaxConfigBytes bounds a --bgp-config file.
	MaxConfigBytes = 1 << 20
	// DefaultPort is BGP's TCP port.
	DefaultPort = 179
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("bgp configuration")

// Config is the embedded speaker's configuration. The zero Config is "BGP
// off"; NewConfig returns one with the defaults set.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4
	Peers    []Peer
	// HoldTime is offered to every peer without its own.
	HoldTime time.Duration
	// Password is the TCP MD5 signature key (RFC 2385) of every peer
	// without its own; "" = none.
	Password string
	// NextHop4 and NextHop6 are the next hops announced for IPv4 and IPv6
	// VIPs; the zero Addr means the session's local address (which is only
	// right for VIPs of the session's own family).
	NextHop4, NextHop6 netip.Addr
	// Listen is where the speaker accepts sessions; the zero AddrPort means
	// it does not listen (directors dial out).
	Listen netip.AddrPort
	// DrainPeriod is how long to keep forwarding after withdrawing on
	// SIGTERM (0: exit at once).
	DrainPeriod time.Duration
	// AnnounceDelay holds the first announcement after start for this
	// long (0: announce at once): with a scheduler that is not consistent
	// and the sync daemons, one sync_refresh_period, so that a director
	// that joins has learned the live calls from its peers before the
	// routers send it their datagrams.
	AnnounceDelay time.Duration
	// Attrs are per-VIP path attributes; the entry for the zero Addr
	// applies to every VIP.
	Attrs map[netip.Addr]Attrs
}

// Peer is one BGP neighbour.
type Peer struct {
	Addr netip.Addr
	ASN  uint32
	// Port is the peer's TCP port (0 = DefaultPort).
	Port uint16
	// Password and HoldTime: "" and 0 inherit Config's.
	Password string
	HoldTime time.Duration
	// LocalAddr is the source address of the session (zero: the kernel's
	// choice, which is also the default next hop).
	LocalAddr netip.Addr
}

// Attrs are the optional path attributes of a VIP's route.
type Attrs struct {
	MED         uint32
	HasMED      bool
	Communities []uint32 // RFC 1997, ASN<<16 | value
}

// Enabled reports whether BGP is configured.
func (c *Config) Enabled() bool { return c.ASN != 0 || len(c.Peers) > 0 || c.RouterID.IsValid() }

// AttrsFor returns the attributes of vip's route: the VIP's own MED, else
// the global one, and the global communities followed by the VIP's.
func (c *Config) AttrsFor(vip netip.Addr) Attrs {
	g, v := c.Attrs[netip.Addr{}], c.Attrs[vip]
	a := Attrs{MED: g.MED, HasMED: g.HasMED}
	if v.HasMED {
		a.MED, a.HasMED = v.MED, true
	}
	a.Communities = append(slices.Clone(g.Communities), v.Communities...)
	return a
}

// NewConfig returns a Config with the defaults: BGP off until an AS number,
// a router id and peers are set, DefaultHoldTime, DefaultDrainPeriod.
func NewConfig() Config {
	return Config{HoldTime: DefaultHoldTime, DrainPeriod: DefaultDrainPeriod}
}

// holdTime returns p's hold time.
func (c *Config) holdTime(p Peer) time.Duration {
	if p.HoldTime != 0 {
		return p.HoldTime
	}
	if c.HoldTime != 0 {
		return c.HoldTime
	}
	return DefaultHoldTime
}

// Settings are the names of the configuration's settings: the flag of `xvs
// run` is "--bgp-" + name, the line of a --bgp-config file starts with
// name. Repeatable settings add a value each time; the others keep the last.
var Settings = []Setting{
	{"asn", "N", "this director's AS number (1..4294967295); setting it turns BGP on", false},
	{"router-id", "A.B.C.D", "BGP router id (an IPv4 address, unique per director)", false},
	{"peer", "ADDR:ASN[,port=P][,password=S][,hold-time=D][,local-address=A]", "a BGP neighbour to dial (repeatable); IPv6 in brackets: [fd00::1]:65000", true},
	{"hold-time", "DURATION", "hold time offered to peers (default 9s; 3s..65535s; a keepalive every third of it)", false},
	{"password", "SECRET", "TCP MD5 password of every peer (prefer a mode-0600 --bgp-config file: the command line is public)", false},
	{"next-hop", "ADDR", "next hop of the VIPs of ADDR's family (default: the session's local address); once per family", true},
	{"listen", "[ADDR]:PORT", "accept sessions on ADDR:PORT (default: do not listen; directors dial out)", false},
	{"drain-period", "DURATION", "keep forwarding this long after withdrawing on SIGTERM (default 5s; 0 = none)", false},
	{"announce-delay", "DURATION", "announce nothing for this long after start (default 0; with rr/wlc and the sync daemons: sync_refresh_period, to learn the live calls first)", false},
	{"community", "[VIP=]ASN:VALUE", "BGP community on every VIP's route, or on VIP's only (repeatable)", true},
	{"med", "[VIP=]N", "MULTI_EXIT_DISC of every VIP's route, or of VIP's only (repeatable)", true},
}

// Setting describes one configuration setting.
type Setting struct {
	Name, Arg, Usage string
	Repeatable       bool
}

// Set applies one setting by name (see Settings) to c.
func (c *Config) Set(name, value string) error {
	err := c.set(name, strings.TrimSpace(value))
	if err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrConfig, name, value, err)
	}
	return nil
}

func (c *Config) set(name, v string) error {
	switch name {
	case "asn":
		n, err := parseASN(v)
		c.ASN = n
		return err
	case "router-id":
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return errors.New("want an IPv4 address")
		}
		c.RouterID = a
	case "peer":
		p, err := ParsePeer(v)
		if err != nil {
			return err
		}
		c.Peers = append(c.Peers, p)
	case "hold-time":
		d, err := parseHoldTime(v)
		c.HoldTime = d
		return err
	case "password":
		c.Password = v
	case "next-hop":
		a, err := netip.ParseAddr(v)
		if err != nil || a.IsUnspecified() || a.Zone() != "" {
			return errors.New("want a unicast address")
		}
		a = a.Unmap()
		if a.Is4() {
			c.NextHop4 = a
		} else {
			c.NextHop6 = a
		}
	case "listen":
		ap, err := parseListen(v)
		c.Listen = ap
		return err
	case "drain-period":
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		if d > MaxDrainPeriod {
			return fmt.Errorf("more than %v", MaxDrainPeriod)
		}
		c.DrainPeriod = d
	case "announce-delay":
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		if d > MaxAnnounceDelay {
			return fmt.Errorf("more than %v", MaxAnnounceDelay)
		}
		c.AnnounceDelay = d
	case "community":
		vip, val, err := splitVIP(v)
		if err != nil {
			return err
		}
		com, err := ParseCommunity(val)
		if err != nil {
			return err
		}
		a := c.attrs(vip)
		a.Communities = append(a.Communities, com)
		c.Attrs[vip] = a
	case "med":
		vip, val, err := splitVIP(v)
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return errors.New("want 0..4294967295")
		}
		a := c.attrs(vip)
		a.MED, a.HasMED = uint32(n), true
		c.Attrs[vip] = a
	default:
		return errors.New("unknown setting")
	}
	return nil
}

func (c *Config) attrs(vip netip.Addr) Attrs {
	if c.Attrs == nil {
		c.Attrs = map[netip.Addr]Attrs{}
	}
	return c.Attrs[vip]
}

// Validate checks a configuration that is Enabled: the AS number, the
// router id and at least one peer are required, a peer appears once, and
// next hops and peers must be usable.
func (c *Config) Validate() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.ASN == 0:
		return fail("the AS number is missing (--bgp-asn)")
	case !c.RouterID.IsValid():
		return fail("the router id is missing (--bgp-router-id)")
	case len(c.Peers) == 0:
		return fail("no peer (--bgp-peer ADDR:ASN)")
	case len(c.Peers) > MaxPeers:
		return fail("%d peers: at most %d", len(c.Peers), MaxPeers)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range c.Peers {
		if seen[p.Addr] {
			return fail("peer %v given twice", p.Addr)
		}
		seen[p.Addr] = true
		if p.LocalAddr.IsValid() && p.LocalAddr.Is4() != p.Addr.Is4() {
			return fail("peer %v: local address %v of another family", p.Addr, p.LocalAddr)
		}
	}
	return nil
}

// ParsePeer parses ADDR:ASN, [IPv6]:ASN, optionally followed by
// ,key=value options (port, password, hold-time, local-address).
func ParsePeer(s string) (Peer, error) {
	head, opts, _ := strings.Cut(s, ",")
	var host, asn string
	if strings.HasPrefix(head, "[") {
		i := strings.Index(head, "]:")
		if i < 0 {
			return Peer{}, errors.New("want [IPv6]:ASN")
		}
		host, asn = head[1:i], head[i+2:]
	} else {
		i := strings.LastIndexByte(head, ':')
		if i < 0 {
			return Peer{}, errors.New("want ADDR:ASN")
		}
		host, asn = head[:i], head[i+1:]
		if strings.Contains(host, ":") {
			return Peer{}, errors.New("put an IPv6 peer in brackets: [ADDR]:ASN")
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		return Peer{}, errors.New("want a unicast peer address")
	}
	p := Peer{Addr: a.Unmap()}
	if p.ASN, err = parseASN(asn); err != nil {
		return Peer{}, err
	}
	for o := range strings.SplitSeq(opts, ",") {
		if o == "" {
			continue
		}
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return Peer{}, fmt.Errorf("peer option %q: want key=value", o)
		}
		switch k {
		case "port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return Peer{}, errors.New("port: want 1..65535")
			}
			p.Port = uint16(n)
		case "password":
			p.Password = v
		case "hold-time":
			if p.HoldTime, err = parseHoldTime(v); err != nil {
				return Peer{}, err
			}
		case "local-address":
			la, err := netip.ParseAddr(v)
			if err != nil || la.IsUnspecified() {
				return Peer{}, errors.New("local-address: want a unicast address")
			}
			p.LocalAddr = la.Unmap()
		default:
			return Peer{}, fmt.Errorf("unknown peer option %q (port, password, hold-time, local-address)", k)
		}
	}
	return p, nil
}

// String renders the peer as ADDR:ASN or [IPv6]:ASN.
func (p Peer) String() string {
	if p.Addr.Is6() {
		return "[" + p.Addr.String() + "]:" + strconv.FormatUint(uint64(p.ASN), 10)
	}
	return p.Addr.String() + ":" + strconv.FormatUint(uint64(p.ASN), 10)
}

// ParseCommunity parses ASN:VALUE (each 0..65535) or a well-known name
// (no-export, no-advertise, no-export-subconfed, blackhole).
func ParseCommunity(s string) (uint32, error) {
	switch strings.ToLower(s) {
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	case "no-export-subconfed":
		return 0xFFFFFF03, nil
	case "blackhole":
		return 0xFFFF029A, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, errors.New("want ASN:VALUE, each 0..65535, or no-export, no-advertise")
	}
	return uint32(h)<<16 | uint32(l), nil
}

// FormatCommunity renders a community as ASN:VALUE.
func FormatCommunity(c uint32) string {
	return strconv.Itoa(int(c>>16)) + ":" + strconv.Itoa(int(c&0xffff))
}

func splitVIP(s string) (netip.Addr, string, error) {
	vip, val, ok := strings.Cut(s, "=")
	if !ok {
		return netip.Addr{}, s, nil
	}
	a, err := netip.ParseAddr(vip)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("VIP %q: want an address", vip)
	}
	return a.Unmap(), val, nil
}

func parseASN(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, errors.New("want an AS number 1..4294967295")
	}
	return uint32(n), nil
}

// parseDuration accepts a Go duration ("500ms", "3s") or whole seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want a duration (9s, 500ms) or seconds")
	}
	return d, nil
}

func parseHoldTime(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < MinHoldTime || d > MaxHoldTime || d%time.Second != 0 {
		return 0, errors.New("want whole seconds 3..65535")
	}
	return d, nil
}

func parseListen(s string) (netip.AddrPort, error) {
	if strings.HasPrefix(s, ":") {
		s = "0.0.0.0" + s
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, errors.New("want [ADDR]:PORT")
	}
	return ap, nil
}

// LoadFile reads a --bgp-config file into c: one setting per line, its
// name (as in Settings) then its value, '#' starting a comment. A file that
// holds a password must not be readable by group or others.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Load(io.LimitReader(f, MaxConfigBytes+1), path); err != nil {
		return err
	}
	if hasPassword(c) && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s holds a password but is readable by others (chmod 600)", ErrConfig, path)
	}
	return nil
}

func hasPassword(c *Config) bool {
	if c.Password != "" {
		return true
	}
	for _, p := range c.Peers {
		if p.Password != "" {
			return true
		}
	}
	return false
}

// Load reads settings in the --bgp-config format from r; name labels
// errors ("FILE:LINE: …").
func (c *Config) Load(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n, total := 0, 0
	for sc.Scan() {
		n++
		total += len(sc.Bytes()) + 1
		if total > MaxConfigBytes {
			return fmt.Errorf("%w: %s: larger than %d bytes", ErrConfig, name, MaxConfigBytes)
		}
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return fmt.Errorf("%w: %s:%d: want NAME VALUE", ErrConfig, name, n)
		}
		if err := c.Set(strings.TrimPrefix(f[0], "--bgp-"), f[1]); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfig, name, err)
	}
	return nil
}
