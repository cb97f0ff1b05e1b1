package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/internal/sysctl"
)

// Options configure a [Config].
type Options struct {
	// Workers is the number of data-plane workers, 1..MaxWorkers: the
	// number of counter and scheduler-state slots.
	Workers int
	// PEExists reports whether a persistence engine is registered under
	// name (the pe package's registry). nil means none is.
	PEExists func(name string) bool
	// Now is the clock for the destination trash; nil means time.Now.
	Now func() time.Time
	// AddrKind says what an address is to the director, for the checks of
	// a real server's address (ipvsadm -a and -e) and for Local forwarding;
	// nil treats every address as another host's (offline tools, tests).
	AddrKind func(netip.Addr) AddrKind
	// LocalNAT reports whether the kernel can translate a Local real
	// server's port (the localnat package's rules), asked when one on
	// another port than its service's is added or edited: nil, or an
	// error, refuses it (ErrLocalPort, with the error).
	LocalNAT func() error
}

// AddrKind is what an address is to the director. The kernel's
// ip_vs_new_dest accepts a real server whose address is unicast (another
// host) or local (an address of the director: Local forwarding, IPVS's
// LOCALNODE); xvs refuses the others at configuration time.
type AddrKind uint8

// Address kinds.
const (
	AddrUnicast   AddrKind = iota // another host
	AddrLocal                     // an address of this host (127.0.0.1, a VIP on its interface…)
	AddrBroadcast                 // 255.255.255.255, or a directed broadcast of one of its links
	AddrMulticast
	AddrUnusable // unspecified, or an IPv6 link-local address of another host
)

type svcEntry struct {
	cfg      ServiceConfig
	stats    *Stats
	dests    []*destEntry // IPVS list order: most recently added first
	compiled *Service     // nil when changed since the last snapshot
	check    *HealthCheck // nil: no health check (xvs extension)

	// states are the workers' scheduler states, kept from one compile to
	// the next while the service stays bound to the same scheduler (nil:
	// bind afresh at the next compile); destChanges counts destination
	// events for them (sched.Spec.DestChanges).
	states      []schedSlot
	destChanges uint64
}

type destEntry struct {
	id      DestID
	cfg     DestConfig
	stats   *Stats
	deleted time.Time // when it entered the trash
	seq     uint64    // its list entry's identity for the scheduler (sched.Dest.ID)

	down        bool // failed its health check
	draining    bool // xvsadm --drain
	drainWeight int  // the weight before the drain

	check     *HealthCheck // its own health check; nil: the service's
	hasDyn    bool         // a dynamic script check set dynWeight
	dynWeight int
}

type trashKey struct {
	svc  ServiceKey
	addr netip.AddrPort
}

// Config is the mutable IPVS configuration, owned by the control plane.
// Its methods are safe for concurrent use.
type Config struct {
	mu       sync.Mutex
	opts     Options
	services []*svcEntry
	byKey    map[ServiceKey]*svcEntry
	slotGen  []uint32 // generation of the current or last DestID per slot
	free     []int    // free slots
	trash    map[trashKey]*destEntry

	timeouts Timeouts
	sysctls  sysctl.Values

	gen  uint64    // bumped by every change
	last *Snapshot // last compiled snapshot, for gen
	seq  uint64    // last destEntry.seq given

	// candidate is set on a Clone: -Z's zeroing of the counters it shares
	// with the configuration it was cloned from waits in zero for Commit.
	candidate bool
	zero      []*Stats
}

// New returns an empty configuration.
func New(opts Options) (*Config, error) {
	if opts.Workers < 1 || opts.Workers > MaxWorkers {
		return nil, fmt.Errorf("%d workers (1..%d): %w", opts.Workers, MaxWorkers, ErrInvalid)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Config{
		opts:     opts,
		byKey:    make(map[ServiceKey]*svcEntry),
		trash:    make(map[trashKey]*destEntry),
		timeouts: DefaultTimeouts,
	}, nil
}

func (c *Config) changed() { c.gen++ }

// Clone returns a candidate copy of the configuration, for a change that is
// validated completely (commands, compile, the data plane's limits) before
// it replaces the running one. The copy shares what identifies services and
// destinations across snapshots (DestIDs, counters, scheduler state, the
// compiled services it does not change), so swapping it in is exactly as if
// its commands had been applied to c. Changing it never changes c; its
// zeroing of counters (-Z), which are shared, waits for [Config.Commit].
// Clone a configuration whose snapshot is in use only: its compiled
// services are shared, not recompiled.
func (c *Config) Clone() *Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := &Config{
		opts:      c.opts,
		services:  make([]*svcEntry, 0, len(c.services)),
		byKey:     make(map[ServiceKey]*svcEntry, len(c.byKey)),
		slotGen:   slices.Clone(c.slotGen),
		free:      slices.Clone(c.free),
		trash:     make(map[trashKey]*destEntry, len(c.trash)),
		timeouts:  c.timeouts,
		sysctls:   c.sysctls,
		gen:       c.gen,
		last:      c.last,
		seq:       c.seq,
		candidate: true,
	}
	for _, e := range c.services {
		ne := *e
		ne.dests = make([]*destEntry, len(e.dests))
		for i, d := range e.dests {
			nd := *d
			ne.dests[i] = &nd
		}
		n.services = append(n.services, &ne)
		n.byKey[ne.cfg.Key()] = &ne
	}
	for k, d := range c.trash {
		nd := *d
		n.trash[k] = &nd
	}
	return n
}

// Commit carries out what a candidate from [Config.Clone] held back until
// it replaces the running configuration: the zeroing of counters (-Z).
func (c *Config) Commit() {
	c.mu.Lock()
	zero := c.zero
	c.zero, c.candidate = nil, false
	c.mu.Unlock()
	for _, s := range zero {
		s.Zero()
	}
}

// normService validates s and fills its defaults.
func (c *Config) normService(s ServiceConfig) (ServiceConfig, error) {
	k := s.Key()
	fail := func(err error) (ServiceConfig, error) { return ServiceConfig{}, fmt.Errorf("%v: %w", k, err) }
	if s.Protocol != TCP && s.Protocol != UDP {
		return fail(ErrInvalid)
	}
	if !k.Addr.IsValid() || k.Addr.Zone() != "" || k.Addr.IsUnspecified() {
		return fail(ErrInvalid)
	}
	s.Addr = netip.AddrPortFrom(k.Addr, k.Port)
	if k.Port == 0 && !s.Persistent {
		return fail(ErrZeroPort)
	}
	if s.Scheduler == "" {
		s.Scheduler = sched.Default
	}
	if !sched.Known(s.Scheduler) {
		// The kernel logs "Scheduler module ip_vs_%s not found".
		return fail(fmt.Errorf("scheduler %q not found: %w", s.Scheduler, ErrNotFound))
	}
	if s.SchedFlags&^sched.AllFlags != 0 {
		return fail(ErrInvalid)
	}
	if s.Persistent {
		if s.Timeout == 0 {
			s.Timeout = DefaultPersistentTimeout
		}
		if s.Timeout > MaxTimeout {
			return fail(ErrInvalid)
		}
	} else {
		s.Timeout = 0
	}
	if _, ok := s.Netmask.bytes(k.Addr.Is6()); !ok {
		return fail(ErrInvalid)
	}
	if s.OnePacket && s.Protocol != UDP {
		return fail(ErrOnePacketUDP)
	}
	if len(s.PE) > MaxPENameLen {
		return fail(ErrInvalid)
	}
	if s.PE != "" && (c.opts.PEExists == nil || !c.opts.PEExists(s.PE)) {
		// The kernel logs "persistence engine module ip_vs_pe_%s not found".
		return fail(fmt.Errorf("persistence engine %q not found: %w", s.PE, ErrNotFound))
	}
	return s, nil
}

// AddrError refuses a real server's address: the kernel's EINVAL (ipvsadm
// prints "Invalid argument"), with why. It wraps ErrInvalid.
type AddrError struct{ Why string }

func (e *AddrError) Error() string { return ErrInvalid.Error() + ": " + e.Why }

// Unwrap returns ErrInvalid.
func (e *AddrError) Unwrap() error { return ErrInvalid }

// Refusals of a real server's address.
var (
	ErrBroadcastDest = &AddrError{"a broadcast address cannot be a real server"}
	ErrMulticastDest = &AddrError{"a multicast address cannot be a real server"}
	ErrUnusableDest  = &AddrError{"not a unicast address of a host"}
	ErrVIPNotLocal   = &AddrError{"the virtual address is not an address of this director, so it cannot be its own real server (its packets would come straight back)"}
	ErrLocalPort     = &AddrError{"a real server on this director (Local forwarding) on another port than the service's needs the kernel's NAT (nftables), which is not available: give it the service's port"}
)

// addrKind classifies a with the configured classifier.
func (c *Config) addrKind(a netip.Addr) AddrKind {
	if c.opts.AddrKind == nil {
		return AddrUnicast
	}
	return c.opts.AddrKind(a)
}

// normDest validates d for service s and fills its port.
func (c *Config) normDest(s ServiceConfig, d DestConfig) (DestConfig, error) {
	d, err := normDest(s, d)
	if err != nil || c.opts.AddrKind == nil {
		return d, err // without a classifier nothing is known of the director's addresses
	}
	fail := func(err error) (DestConfig, error) {
		return DestConfig{}, fmt.Errorf("%v -> %v: %w", s.Key(), d.Addr, err)
	}
	a := d.Addr.Addr()
	kind := c.addrKind(a)
	switch {
	case kind == AddrBroadcast:
		return fail(ErrBroadcastDest)
	case kind == AddrMulticast:
		return fail(ErrMulticastDest)
	case kind == AddrUnusable:
		return fail(ErrUnusableDest)
	case a == s.Key().Addr && kind != AddrLocal:
		return fail(ErrVIPNotLocal)
	case kind == AddrLocal && s.Addr.Port() != 0 && d.Addr.Port() != s.Addr.Port():
		if c.opts.LocalNAT == nil {
			return fail(ErrLocalPort)
		}
		if err := c.opts.LocalNAT(); err != nil {
			return fail(fmt.Errorf("%w (%v)", ErrLocalPort, err))
		}
	}
	return d, nil
}

// Reclassify marks every service for recompilation, so that the next
// snapshot classifies every real server's address again (the director's
// own addresses changed: a real server became Local, or stopped being).
func (c *Config) Reclassify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.services {
		e.compiled = nil
	}
	c.changed()
}

// normDest validates d for service s and fills its port.
func normDest(s ServiceConfig, d DestConfig) (DestConfig, error) {
	a := d.Addr.Addr().Unmap()
	fail := func(err error) (DestConfig, error) {
		return DestConfig{}, fmt.Errorf("%v -> %v: %w", s.Key(), d.Addr, err)
	}
	if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() || d.Fwd > Route {
		return fail(ErrInvalid)
	}
	if d.Fwd == Local {
		// Local forwarding is not a method one configures: as the kernel
		// does, xvs picks it for a real server whose address is the
		// director's own, whatever its method (Dest.Local, shown as Local
		// by -L); no command sends it (ipvsadm has -g, -i, -m).
		return fail(fmt.Errorf("local-node forwarding is not configurable: %w", ErrInvalid))
	}
	if a.Is4() != s.Addr.Addr().Is4() && d.Fwd != Tunnel {
		// ip_vs_genl_set_cmd: a destination of the other family is
		// forwarded only by encapsulation.
		return fail(fmt.Errorf("different address family is allowed only for tunneling servers: %w", ErrInvalid))
	}
	if d.Fwd != Tunnel {
		d.Tunnel = TunnelConfig{}
	} else if err := d.Tunnel.validate(); err != nil {
		return fail(err)
	}
	if d.Weight < 0 || d.Weight > sched.MaxWeight || d.Lower > d.Upper {
		return fail(ErrRange)
	}
	port := d.Addr.Port()
	if d.Fwd == Route || d.Fwd == Tunnel || port == 0 {
		port = s.Addr.Port()
	}
	d.Addr = netip.AddrPortFrom(a, port)
	return d, nil
}

// validate refuses tunnel options that cannot be forwarded as given: the
// kernel refuses a GUE tunnel without a port (ip_vs_add_dest, EINVAL) and
// ignores the rest, which ipvsadm's tunnel_opt_check refuses in its own
// words before they reach the kernel; the model refuses them all, for the
// paths that do not go through ipvsadm's grammar.
func (t TunnelConfig) validate() error {
	switch {
	case t.Type > GRE:
		return fmt.Errorf("tunnel type %v: %w", t.Type, ErrInvalid)
	case t.Csum > TunRemCsum:
		return fmt.Errorf("tunnel checksum mode %v: %w", t.Csum, ErrInvalid)
	case t.Type == GUE && t.Port == 0:
		return fmt.Errorf("a gue tunnel needs a port: %w", ErrInvalid)
	case t.Type != GUE && t.Port != 0:
		return fmt.Errorf("a %v tunnel takes no port: %w", t.Type, ErrInvalid)
	case t.Type == IPIP && t.Csum != TunNoCsum:
		return fmt.Errorf("an ipip tunnel has no checksum option: %w", ErrInvalid)
	case t.Type == GRE && t.Csum == TunRemCsum:
		return fmt.Errorf("remote checksum offload is gue only: %w", ErrInvalid)
	}
	return nil
}

// AddService adds a virtual service (ipvsadm -A).
func (c *Config) AddService(s ServiceConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.normService(s)
	if err != nil {
		return err
	}
	k := s.Key()
	if c.byKey[k] != nil {
		return fmt.Errorf("%v: %w", k, ErrServiceExists)
	}
	e := &svcEntry{cfg: s, stats: newStats(c.opts.Workers)}
	c.services = append(c.services, e)
	c.byKey[k] = e
	c.changed()
	return nil
}

// EditService replaces a service's scheduler, flags, persistence, netmask,
// PE and one-packet setting wholesale (ipvsadm -E): a zero PE removes the
// engine. Destinations, their DestIDs and all counters are kept.
func (c *Config) EditService(s ServiceConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.normService(s)
	if err != nil {
		return err
	}
	e := c.byKey[s.Key()]
	if e == nil {
		return fmt.Errorf("%v: %w", s.Key(), ErrNoService)
	}
	if s.Scheduler != e.cfg.Scheduler {
		e.states = nil // ip_vs_edit_service binds the new scheduler afresh
	}
	e.cfg, e.compiled = s, nil
	c.changed()
	return nil
}

// DelService deletes a service (ipvsadm -D); its destinations go to the
// trash.
func (c *Config) DelService(k ServiceKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k.Addr = k.Addr.Unmap()
	e := c.byKey[k]
	if e == nil {
		return fmt.Errorf("%v: %w", k, ErrNoService)
	}
	c.delService(e)
	c.changed()
	return nil
}

func (c *Config) delService(e *svcEntry) {
	k := e.cfg.Key()
	now := c.opts.Now()
	for _, d := range e.dests {
		c.toTrash(k, d, now)
	}
	delete(c.byKey, k)
	c.services = slices.DeleteFunc(c.services, func(x *svcEntry) bool { return x == e })
}

// Clear deletes every service (ipvsadm -C).
func (c *Config) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range slices.Clone(c.services) {
		c.delService(e)
	}
	c.changed()
}

func (c *Config) service(k ServiceKey) (*svcEntry, error) {
	k.Addr = k.Addr.Unmap()
	e := c.byKey[k]
	if e == nil {
		return nil, fmt.Errorf("%v: %w", k, ErrNoService)
	}
	return e, nil
}

func (e *svcEntry) dest(a netip.AddrPort) int {
	return slices.IndexFunc(e.dests, func(d *destEntry) bool { return d.cfg.Addr == a })
}

func (c *Config) toTrash(k ServiceKey, d *destEntry, now time.Time) {
	d.deleted = now
	c.trash[trashKey{k, d.cfg.Addr}] = d
}

// purgeTrash frees the slots of destinations deleted DestTrashPeriod ago.
func (c *Config) purgeTrash() {
	now := c.opts.Now()
	for k, d := range c.trash {
		if now.Sub(d.deleted) >= DestTrashPeriod*time.Second {
			delete(c.trash, k)
			c.free = append(c.free, d.id.Slot())
		}
	}
}

// newID allocates a slot and returns its next-generation DestID.
func (c *Config) newID() (DestID, error) {
	c.purgeTrash()
	var slot int
	switch {
	case len(c.free) > 0:
		slot = c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
	case len(c.slotGen) < MaxDests:
		slot = len(c.slotGen)
		c.slotGen = append(c.slotGen, 0)
	default:
		return 0, ErrTooManyDests
	}
	g := (c.slotGen[slot] + 1) & destGenMask
	if g == 0 {
		g = 1 // generation 0 is never used, so DestID 0 is never valid
	}
	c.slotGen[slot] = g
	return DestID(g<<destSlotBits | uint32(slot)), nil
}

// AddDest adds a real server to a service (ipvsadm -a); it becomes the head
// of the service's list, as in IPVS. A destination of this service deleted
// less than DestTrashPeriod ago is revived with its DestID and counters.
func (c *Config) AddDest(k ServiceKey, d DestConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	if d, err = c.normDest(e.cfg, d); err != nil {
		return err
	}
	if e.dest(d.Addr) >= 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), d.Addr, ErrDestExists)
	}
	if len(e.dests) >= sched.MaxDests {
		return fmt.Errorf("%v -> %v: %d real servers: %w", e.cfg.Key(), d.Addr, len(e.dests), ErrTooManyDests)
	}
	c.purgeTrash()
	tk := trashKey{e.cfg.Key(), d.Addr}
	de := c.trash[tk]
	if de != nil {
		delete(c.trash, tk)
		de.cfg = d
		de.down, de.draining, de.drainWeight = false, false, 0
		de.check, de.hasDyn = nil, false
	} else {
		id, err := c.newID()
		if err != nil {
			return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), d.Addr, err)
		}
		de = &destEntry{id: id, cfg: d, stats: newStats(c.opts.Workers)}
	}
	if e.check != nil && e.check.StartDown {
		de.down = true
	}
	c.seq++
	de.seq = c.seq
	e.dests = slices.Insert(e.dests, 0, de)
	e.destChanges++
	e.compiled = nil
	c.changed()
	return nil
}

// EditDest replaces a real server's forwarding method, weight, thresholds
// and next hop wholesale (ipvsadm -e). Its DestID, list position, counters
// and health are kept; a weight above 0 ends a drain (the operator put the
// server back), weight 0 keeps it draining.
func (c *Config) EditDest(k ServiceKey, d DestConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	if d, err = c.normDest(e.cfg, d); err != nil {
		return err
	}
	i := e.dest(d.Addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), d.Addr, ErrNoDest)
	}
	de := e.dests[i]
	de.cfg = d
	if de.draining && d.Weight > 0 {
		de.draining, de.drainWeight = false, 0
	}
	e.destChanges++
	e.compiled = nil
	c.changed()
	return nil
}

// SetNextHop sets only the next-hop MAC of a real server, for the data
// plane's neighbour resolution. addr's port 0 means the service port.
func (c *Config) SetNextHop(k ServiceKey, addr netip.AddrPort, mac [6]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	if e.dests[i].cfg.NextHop != mac {
		e.dests[i].cfg.NextHop = mac
		e.compiled = nil
		c.changed()
	}
	return nil
}

// SetEgress sets the egress of a real server the data plane resolved: its
// next-hop MAC, the director's source address towards it and the path MTU
// (see DestConfig). addr's port 0 means the service port.
func (c *Config) SetEgress(k ServiceKey, addr netip.AddrPort, mac [6]byte, src netip.Addr, mtu int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	d := &e.dests[i].cfg
	if d.NextHop != mac || d.Source != src || d.MTU != mtu {
		d.NextHop, d.Source, d.MTU = mac, src, mtu
		e.compiled = nil
		c.changed()
	}
	return nil
}

// destIndex finds addr, where port 0 means the service port.
func (e *svcEntry) destIndex(addr netip.AddrPort) int {
	a := addr.Addr().Unmap()
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(a, e.cfg.Addr.Port())
	} else {
		addr = netip.AddrPortFrom(a, addr.Port())
	}
	return e.dest(addr)
}

// DelDest deletes a real server (ipvsadm -d); addr's port 0 means the
// service port. It waits in the trash for DestTrashPeriod.
func (c *Config) DelDest(k ServiceKey, addr netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	c.toTrash(e.cfg.Key(), e.dests[i], c.opts.Now())
	e.dests = slices.Delete(e.dests, i, i+1)
	e.destChanges++
	e.compiled = nil
	c.changed()
	return nil
}

// SetTimeouts sets the tcp, tcpfin and udp timeouts (ipvsadm --set); a zero
// field keeps the current value.
func (c *Config) SetTimeouts(t Timeouts) error {
	if t.TCP > MaxTimeout || t.TCPFin > MaxTimeout || t.UDP > MaxTimeout {
		return fmt.Errorf("timeouts %v: %w", t, ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range []struct {
		dst *uint32
		v   uint32
	}{
		{&c.timeouts.TCP, t.TCP}, {&c.timeouts.TCPFin, t.TCPFin}, {&c.timeouts.UDP, t.UDP},
	} {
		if f.v != 0 {
			*f.dst = f.v
		}
	}
	c.changed()
	return nil
}

// Timeouts returns the current --set timeouts.
func (c *Config) Timeouts() Timeouts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeouts
}

// SetSysctl sets one of the IPVS sysctls xvs honours (xvsadm --sysctl
// NAME=VALUE); a value out of the switch's range changes nothing. The
// snapshot carries the values to the data plane.
func (c *Config) SetSysctl(id sysctl.ID, v []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.sysctls.With(id, v)
	if err != nil {
		return fmt.Errorf("%w (%w)", ErrInvalid, err)
	}
	c.sysctls = n
	c.changed()
	return nil
}

// Sysctls returns the current values of the IPVS sysctls.
func (c *Config) Sysctls() sysctl.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sysctls
}

// ZeroAll zeroes the counters of every service and destination (-Z).
func (c *Config) ZeroAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.services {
		c.zeroEntry(e)
	}
}

// ZeroService zeroes the counters of one service and its destinations
// (-Z virtual-service).
func (c *Config) ZeroService(k ServiceKey) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	c.zeroEntry(e)
	return nil
}

// zeroEntry zeroes a service's counters and its destinations', or on a
// candidate records them for Commit.
func (c *Config) zeroEntry(e *svcEntry) {
	st := []*Stats{e.stats}
	for _, d := range e.dests {
		st = append(st, d.stats)
	}
	if c.candidate {
		c.zero = append(c.zero, st...)
		return
	}
	for _, s := range st {
		s.Zero()
	}
}
