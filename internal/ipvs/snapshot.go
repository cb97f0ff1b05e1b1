package ipvs

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/internal/sysctl"
)

// Snapshot is an immutable, compiled view of a [Config] for the data plane.
// Publish it with an atomic.Pointer[Snapshot]; workers may keep using an old
// one until they load the new. Everything reachable from it is read-only,
// except the per-worker slots ([Service.Schedule] state, [Stats] counters),
// which only their own worker writes.
type Snapshot struct {
	// Gen increases with every configuration change.
	Gen      uint64
	Workers  int
	Timeouts Timeouts
	// Sysctls are the IPVS sysctls' values (see sysctls.go); the two
	// below are read per packet and copied out of it at compile time.
	Sysctls                 sysctl.Values
	ExpireNodestConn        bool
	ExpireQuiescentTemplate bool

	services []*Service
	byKey    map[ServiceKey]*Service
	dests    []*Dest // by slot
	// trashed holds the counters of deleted destinations still in the
	// trash, so that their live gauges can still be decremented as their
	// templates and connections leave the data plane's tables.
	trashed map[DestID]*Stats
}

// Service is a virtual service in a snapshot. The embedded ServiceConfig is
// normalized (scheduler, timeout and address filled in).
type Service struct {
	ServiceConfig
	Key ServiceKey
	// Dests are in IPVS list order, most recently added first. Read-only.
	Dests []*Dest
	Stats *Stats
	// Check is the service's health check (xvs extension), nil for none.
	// Read-only.
	Check *HealthCheck

	sched    *sched.Scheduler
	states   []schedSlot
	mask     [16]byte
	maskKind maskKind // the common masks, answered without arithmetic
}

// maskKind sorts a persistence netmask for MaskClient's per-packet path.
type maskKind uint8

const (
	maskSome maskKind = iota // AND the address with the mask
	maskKeep                 // all ones (the default): the address itself
	maskZero                 // -M 0.0.0.0 (every client one): IPv4's zero address
)

type schedSlot struct {
	st sched.State
	_  [128 - unsafe.Sizeof(sched.State{})%128]byte // no two workers' states share a cache line
}

// Dest is a real server in a snapshot. The embedded DestConfig is
// normalized (port filled in).
type Dest struct {
	DestConfig
	ID      DestID
	Service *Service
	Stats   *Stats
	// Down is set when the service's health check found the real server
	// dead: the scheduler skips it (its Weight is still the configured
	// one) and TemplateDest applies the check's TemplatePolicy.
	Down bool
	// Draining is set by xvsadm --drain: weight 0, and its templates stay
	// valid until idle whatever expire_quiescent_template says.
	// DrainWeight is the weight --undrain restores.
	Draining    bool
	DrainWeight int
	// Check is the health check the real server follows: its own
	// (OwnCheck) or its service's; nil when it is not checked. Read-only.
	Check    *HealthCheck
	OwnCheck bool
	// DynWeight, when HasDynWeight, is the weight a dynamic script check
	// set: the scheduler uses it instead of Weight (unless draining).
	DynWeight    int
	HasDynWeight bool
	// Local is set when the real server's address is the director's own
	// (as its classifier said at compile time): IPVS's Local forwarding.
	// The data plane hands its packets to the host's own stack; -L shows
	// "Local" and -S saves it as -g, as ipvsadm does.
	Local bool
}

// SchedWeight is the weight the scheduler uses: the dynamic weight a
// script check set, else the configured one (0 while draining).
func (d *Dest) SchedWeight() int {
	if d.HasDynWeight && !d.Draining {
		return d.DynWeight
	}
	return d.Weight
}

// Available reports whether the configuration lets the real server take
// new calls now: scheduling weight (SchedWeight) > 0, not down (health
// check), not draining, and for a tunnelling server the outer header's
// source address resolved. Whether its frames can leave (its next hop)
// is the data plane's next-hop table's to say: the BGP announcer, which
// asks this of every server behind a VIP, also asks the daemon that.
// Connection thresholds (-x/-y) are not considered: an overloaded server
// is busy, not gone.
func (d *Dest) Available() bool {
	return d.SchedWeight() > 0 && !d.Down && !d.Draining && (d.Fwd != Tunnel || d.Source.IsValid())
}

// Lookup returns the service for a packet to addr:port, falling back to the
// port-0 (persistent, any-port) service of addr, or nil. It allocates
// nothing.
func (s *Snapshot) Lookup(p Protocol, addr netip.Addr, port uint16) *Service {
	if svc := s.byKey[ServiceKey{p, addr, port}]; svc != nil {
		return svc
	}
	return s.byKey[ServiceKey{p, addr, 0}]
}

// Services returns the services in the order they were added. The slice is
// shared: do not modify it.
func (s *Snapshot) Services() []*Service { return s.services }

// Dest returns the destination id names, or nil when it has been deleted
// (or id is from a slot generation that no longer exists). O(1), no
// allocation.
func (s *Snapshot) Dest(id DestID) *Dest {
	slot := id.Slot()
	if slot >= len(s.dests) {
		return nil
	}
	if d := s.dests[slot]; d != nil && d.ID == id {
		return d
	}
	return nil
}

// DestStats returns the counters of the destination id names, including a
// deleted one still in the trash (DestTrashPeriod), or nil. The data plane
// uses it to keep the live gauges right when an entry of a deleted
// destination expires: a destination revived from the trash then starts with
// true counts. It allocates nothing.
func (s *Snapshot) DestStats(id DestID) *Stats {
	if d := s.Dest(id); d != nil {
		return d.Stats
	}
	return s.trashed[id]
}

// TemplateDest is ip_vs_check_template: it returns the destination of a
// persistence template, or nil when the template is invalid and the packet
// must be scheduled afresh: the destination was deleted; or it is quiesced
// (weight 0), ExpireQuiescentTemplate is set and it is not draining (a
// drain keeps live calls by definition); or it failed its health check and
// the check's policy is PolicyExpire.
func (s *Snapshot) TemplateDest(id DestID) *Dest {
	d := s.Dest(id)
	if d == nil || (s.ExpireQuiescentTemplate && d.SchedWeight() == 0 && !d.Draining) {
		return nil
	}
	if d.Down && d.Check != nil && d.Check.OnFail == PolicyExpire {
		return nil
	}
	return d
}

// Schedule runs the service's scheduler for worker (0 <= worker <
// Snapshot.Workers) and returns the chosen destination, or nil when none is
// available. It allocates nothing and takes no lock; each worker must pass
// its own index.
func (svc *Service) Schedule(worker int, in *sched.Input) *Dest {
	i := svc.sched.Schedule(&svc.states[worker].st, in)
	if i < 0 {
		return nil
	}
	return svc.Dests[i]
}

var (
	zero4   = netip.AddrFrom4([4]byte{})
	allOnes = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// MaskClient applies the persistence netmask (-M) to a client address of
// the service's family; it allocates nothing.
func (svc *Service) MaskClient(a netip.Addr) netip.Addr {
	switch svc.maskKind {
	case maskKeep:
		return a
	case maskZero:
		if a.Is4() {
			return zero4
		}
	}
	m := &svc.mask
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:]) & binary.BigEndian.Uint32(m[12:])
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8]) & binary.BigEndian.Uint64(m[:8])
	lo := binary.BigEndian.Uint64(b[8:]) & binary.BigEndian.Uint64(m[8:])
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// Snapshot compiles the current configuration (see [Config.Compile]); it
// panics when a service does not compile, which the commands' validation
// rules out.
func (c *Config) Snapshot() *Snapshot {
	s, err := c.Compile()
	if err != nil {
		panic(fmt.Sprintf("ipvs: compiling a validated configuration: %v", err))
	}
	return s
}

// Compile compiles the current configuration into a snapshot. Services that
// did not change since the previous snapshot are reused as they are (same
// DestIDs, scheduler state and counters); it returns the previous snapshot
// itself when nothing changed. An error (a scheduler that cannot be built)
// leaves the configuration as it was.
func (c *Config) Compile() (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && c.last.Gen == c.gen {
		return c.last, nil
	}
	s := &Snapshot{
		Gen:                     c.gen,
		Workers:                 c.opts.Workers,
		Timeouts:                c.timeouts,
		Sysctls:                 c.sysctls,
		ExpireNodestConn:        c.sysctls.Get(ExpireNodestConn) != 0,
		ExpireQuiescentTemplate: c.sysctls.Get(ExpireQuiescentTemplate) != 0,
		services:                make([]*Service, 0, len(c.services)),
		byKey:                   make(map[ServiceKey]*Service, len(c.services)),
		dests:                   make([]*Dest, len(c.slotGen)),
		trashed:                 make(map[DestID]*Stats, len(c.trash)),
	}
	for _, d := range c.trash {
		s.trashed[d.id] = d.stats
	}
	for _, e := range c.services {
		if e.compiled == nil {
			svc, err := c.compile(e)
			if err != nil {
				return nil, err
			}
			e.compiled = svc
		}
		svc := e.compiled
		s.services = append(s.services, svc)
		s.byKey[svc.Key] = svc
		for _, d := range svc.Dests {
			s.dests[d.ID.Slot()] = d
		}
	}
	c.last = s
	return s, nil
}

func (c *Config) compile(e *svcEntry) (*Service, error) {
	svc := &Service{ServiceConfig: e.cfg, Key: e.cfg.Key(), Stats: e.stats,
		Dests: make([]*Dest, len(e.dests)), Check: e.check}
	svc.mask, _ = e.cfg.Netmask.bytes(svc.Key.Addr.Is6())
	switch {
	case svc.mask == allOnes:
		svc.maskKind = maskKeep
	case [4]byte(svc.mask[12:]) == [4]byte{}:
		svc.maskKind = maskZero
	}
	sd := make([]sched.Dest, len(e.dests))
	for i, d := range e.dests {
		chk := d.effective(e)
		down := d.down && chk != nil
		dst := &Dest{DestConfig: d.cfg, ID: d.id, Service: svc, Stats: d.stats,
			Down: down, Draining: d.draining, DrainWeight: d.drainWeight, Check: chk, OwnCheck: d.check != nil,
			DynWeight: d.dynWeight, HasDynWeight: d.hasDyn, Local: c.addrKind(d.cfg.Addr.Addr()) == AddrLocal}
		svc.Dests[i] = dst
		sd[i] = sched.Dest{Addr: d.cfg.Addr, Weight: dst.SchedWeight(), Down: down,
			Upper: d.cfg.Upper, Lower: d.cfg.Lower, Load: d.stats, ID: d.seq}
	}
	sc, err := sched.Compile(sched.Spec{
		Name:        e.cfg.Scheduler,
		Flags:       e.cfg.SchedFlags,
		OnePacket:   e.cfg.OnePacket && e.cfg.Protocol == UDP,
		Dests:       sd,
		DestChanges: e.destChanges,
	})
	if err != nil {
		return nil, fmt.Errorf("%v: scheduler %s: %w", svc.Key, e.cfg.Scheduler, err)
	}
	svc.sched = sc
	if e.states == nil {
		// Bound afresh (a new service, or -E with another scheduler). Later
		// compiles share these states: each worker's Schedule carries its
		// own over to the new scheduler (sched.State).
		e.states = make([]schedSlot, c.opts.Workers)
		for w := range e.states {
			e.states[w].st = sc.NewState(uint64(w)<<32 ^ c.gen)
		}
	}
	svc.states = e.states
	return svc, nil
}
