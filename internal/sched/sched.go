package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Sentinel errors. The flag messages are ipvsadm's.
var (
	// ErrUnknownScheduler reports a scheduler name that is not implemented.
	ErrUnknownScheduler = errors.New("scheduler not found")
	// ErrInvalidFlag reports a -b flag ipvsadm does not know.
	ErrInvalidFlag = errors.New("invalid scheduler flag")
	// ErrIncompatibleFlag reports sh-*/mh-* flags given to another scheduler.
	ErrIncompatibleFlag = errors.New("incompatible scheduler flag")
	// ErrTooManyDests reports more destinations than [MaxDests].
	ErrTooManyDests = errors.New("too many destinations for one scheduler")
	// ErrInvalidWeight reports a weight outside 0..[MaxWeight].
	ErrInvalidWeight = errors.New("invalid weight")
)

// Limits.
const (
	// MaxDests bounds the destinations of one service: Maglev and sh/dh
	// tables store a destination index in a uint16 and 0xffff means empty.
	MaxDests = 1<<16 - 1
	// MaxWeight is IPVS's weight range (ipvsadm -w 0..65535).
	MaxWeight = 65535
	// MaglevTableSize is the Maglev lookup table size: a prime (required for
	// the permutation to visit every entry) much larger than the kernel's
	// 4093, so that weight ratios resolve finely and a change of one
	// destination moves close to the 1/N minimum of the keys. It costs 128
	// KiB per mh service, built once per snapshot.
	MaglevTableSize = 65537
	// hashTableBits is IP_VS_SH_TAB_BITS / IP_VS_DH_TAB_BITS: sh and dh
	// use 256 buckets, like the kernel.
	hashTableBits = 8
	hashTableSize = 1 << hashTableBits
	noDest        = 0xffff
)

// Flags are the IPVS scheduler flags (-b), with the kernel's values.
type Flags uint32

// Scheduler flags. sh and mh reuse flag-1 and flag-2 under their own names,
// exactly as the kernel does.
const (
	Flag1 Flags = 0x0008 // IP_VS_SVC_F_SCHED1, "flag-1"
	Flag2 Flags = 0x0010 // IP_VS_SVC_F_SCHED2, "flag-2"
	Flag3 Flags = 0x0020 // IP_VS_SVC_F_SCHED3, "flag-3"

	SHFallback = Flag1 // "sh-fallback": try the next bucket if the dest is unavailable
	SHPort     = Flag2 // "sh-port": hash the source port too
	MHFallback = Flag1 // "mh-fallback": walk to the next eligible entry
	MHPort     = Flag2 // "mh-port": hash the source port too

	// AllFlags is the mask of valid scheduler flags.
	AllFlags = Flag1 | Flag2 | Flag3
)

// ParseFlags parses ipvsadm's -b argument (a comma list) for scheduler
// name ("" means the default, wlc), as ipvsadm's parse_sched_flags does:
// empty items are skipped (strtok), a list of none at all is invalid, and
// the sh-* and mh-* names belong to their scheduler. The errors' texts are
// ipvsadm's messages.
func ParseFlags(scheduler, list string) (Flags, error) {
	if scheduler == "" {
		scheduler = Default
	}
	var f Flags
	n := 0
	for name := range strings.SplitSeq(list, ",") {
		if name == "" {
			continue
		}
		n++
		var bit Flags
		var only string
		switch name {
		case "flag-1":
			bit = Flag1
		case "flag-2":
			bit = Flag2
		case "flag-3":
			bit = Flag3
		case "sh-fallback":
			bit, only = SHFallback, "sh"
		case "sh-port":
			bit, only = SHPort, "sh"
		case "mh-fallback":
			bit, only = MHFallback, "mh"
		case "mh-port":
			bit, only = MHPort, "mh"
		default:
			return 0, fmt.Errorf("%w `%s'", ErrInvalidFlag, name)
		}
		if only != "" && only != scheduler {
			return 0, fmt.Errorf("%w `%s'", ErrIncompatibleFlag, name)
		}
		f |= bit
	}
	if n == 0 {
		// ipvsadm passes strtok's NULL to strcmp here and crashes.
		return 0, fmt.Errorf("%w `%s'", ErrInvalidFlag, list)
	}
	return f, nil
}

// FormatFlags renders f as ipvsadm's print_sched_flags does for scheduler:
// comma-separated, with sh-*/mh-* names for sh and mh (and flag-3 for
// theirs, which ipvsadm prints as nothing, so that -S keeps it).
func FormatFlags(scheduler string, f Flags) string {
	names := [3]string{"flag-1", "flag-2", "flag-3"}
	switch scheduler {
	case "sh":
		names[0], names[1] = "sh-fallback", "sh-port"
	case "mh":
		names[0], names[1] = "mh-fallback", "mh-port"
	}
	var out []string
	for i, bit := range [3]Flags{Flag1, Flag2, Flag3} {
		if f&bit != 0 {
			out = append(out, names[i])
		}
	}
	return strings.Join(out, ",")
}

// Default is the scheduler ipvsadm and the kernel use when none is given.
const Default = "wlc"

type kind uint8

const (
	kNone kind = iota
	kRR
	kWRR
	kLC
	kWLC
	kSH
	kDH
	kMH
	kSED
	kNQ
	kFO
	kOVF
	kTwoS
)

var kinds = map[string]kind{
	"none": kNone, "rr": kRR, "wrr": kWRR, "lc": kLC, "wlc": kWLC, "sh": kSH,
	"dh": kDH, "mh": kMH, "sed": kSED, "nq": kNQ, "fo": kFO, "ovf": kOVF, "twos": kTwoS,
}

// Known reports whether name is an implemented scheduler ("none" included).
func Known(name string) bool {
	_, ok := kinds[name]
	return ok
}

// Names returns the implemented scheduler names, sorted.
func Names() []string {
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Load is a destination's live gauges, summed over workers.
type Load struct {
	Active   int64 // ActiveConn
	Inactive int64 // InActConn (every UDP connection)
	Persist  int64 // PersistConn: live persistence templates
}

// LoadReader reports a destination's current [Load]. It is called on the
// scheduling path, so it must not allocate or block.
type LoadReader interface {
	Load() Load
}

// Dest describes one destination to [Compile].
type Dest struct {
	// Addr identifies the destination for hashing (mh permutation). It must
	// be the real server's address:port, identical on every balancer.
	Addr netip.AddrPort
	// Weight is 0..MaxWeight; 0 means quiesced: never chosen.
	Weight int
	// Down marks a destination that failed its health check (xvs
	// extension): it is never chosen, exactly as if its weight were 0, and
	// it has no share of the sh, dh and mh tables' weights. The configured
	// Weight is kept, so the operator's -w is untouched.
	Down bool
	// Upper and Lower are the connection thresholds (-x, -y); 0 = none.
	Upper, Lower uint32
	// Load reads the live gauges; nil means always zero.
	Load LoadReader
	// ID identifies the destination across compiles of one service's
	// scheduler, so that a State carried over to the new Scheduler keeps
	// its position and overload marks (see State). A destination keeps its
	// ID while it stays in the list; one added again gets a new ID, as it
	// is a new list entry in IPVS. 0 matches nothing.
	ID uint64
}

// Spec is what a Scheduler is compiled from.
type Spec struct {
	Name  string // "" means Default
	Flags Flags
	// OnePacket is set for a one-packet-scheduling (-o) service: live
	// templates then count as active connections (see the package doc).
	OnePacket bool
	// Dests in IPVS list order (most recently added first). Between two
	// compiles of one service's scheduler, destinations are only added at
	// the head or removed: the others keep their order.
	Dests []Dest
	// DestChanges counts the service's destination events (added, deleted
	// or updated: ipvsadm -a, -d, -e, and xvs's health and drain changes)
	// so far. wrr restarts its round at the list head when it differs from
	// the previous compile's, as the kernel's ip_vs_wrr_dest_changed does.
	DestChanges uint64
}

// Input is what a scheduling decision may look at. The scheduler does not
// retain it.
type Input struct {
	Src netip.AddrPort // client address and port
	Dst netip.AddrPort // virtual address and port as received
	// PEHash is HashPEData(pe data) when HasPE; see the package doc.
	PEHash uint64
	HasPE  bool
}

type dest struct {
	weight       int64
	upper, lower int64 // lower already defaulted to 3/4 upper (rounded up)
	load         LoadReader
	id           uint64
}

// Scheduler is one service's compiled, immutable scheduler. It is safe for
// concurrent use by any number of workers, each with its own [State].
type Scheduler struct {
	kind       kind
	name       string
	flags      Flags
	onePacket  bool
	thresholds bool // some dest has an upper threshold
	dests      []dest

	mw, di  int64  // wrr: max weight - (gcd-1), gcd
	changes uint64 // Spec.DestChanges

	buckets *[hashTableSize]uint16 // sh, dh
	maglev  []uint16               // mh, len MaglevTableSize or nil
}

// Compile builds the scheduler described by spec.
func Compile(spec Spec) (*Scheduler, error) {
	name := spec.Name
	if name == "" {
		name = Default
	}
	k, ok := kinds[name]
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownScheduler)
	}
	if len(spec.Dests) > MaxDests {
		return nil, fmt.Errorf("%d destinations: %w", len(spec.Dests), ErrTooManyDests)
	}
	if spec.Flags&^AllFlags != 0 {
		return nil, fmt.Errorf("flags %#x: %w", uint32(spec.Flags), ErrInvalidFlag)
	}
	s := &Scheduler{kind: k, name: name, flags: spec.Flags, onePacket: spec.OnePacket,
		dests: make([]dest, len(spec.Dests)), changes: spec.DestChanges}
	for i, d := range spec.Dests {
		if d.Weight < 0 || d.Weight > MaxWeight {
			return nil, fmt.Errorf("weight %d: %w", d.Weight, ErrInvalidWeight)
		}
		w := int64(d.Weight)
		if d.Down {
			w = 0
		}
		lower := int64(d.Lower)
		if lower == 0 {
			// ip_vs_conn.c clears overload when 4*conns < 3*upper.
			lower = (3*int64(d.Upper) + 3) / 4
		}
		s.dests[i] = dest{weight: w, upper: int64(d.Upper), lower: lower, load: d.Load, id: d.ID}
		if d.Upper > 0 {
			s.thresholds = true
		}
	}
	switch k {
	case kWRR:
		var maxw, g int64
		for _, d := range s.dests {
			if d.weight > 0 {
				maxw = max(maxw, d.weight)
				g = gcd(g, d.weight)
			}
		}
		if g > 0 {
			s.di, s.mw = g, maxw-(g-1)
		}
	case kSH, kDH:
		s.buckets = buildBuckets(s.dests, k == kSH)
	case kMH:
		s.maglev = buildMaglev(spec.Dests)
	}
	return s, nil
}

// Name returns the scheduler's name.
func (s *Scheduler) Name() string { return s.name }

// Len returns the number of destinations it was compiled with.
func (s *Scheduler) Len() int { return len(s.dests) }

// State is one worker's mutable scheduling state for one service. Create it
// with [Scheduler.NewState]; only its worker may use it.
//
// A State outlives the Scheduler it was created with: when a service's
// configuration changes, the new Scheduler (compiled by the control plane)
// takes the State over at its first Schedule on the worker's own goroutine,
// keeping what the kernel keeps across the same change (see adopt). A
// service bound to another scheduler gets a new State, as the kernel runs
// the new scheduler's init_service.
type State struct {
	owner *Scheduler // the Scheduler the state is for
	pos   int        // rr/wrr: last chosen index, -1 = list head
	cw    int64      // wrr: current weight
	rnd   uint64     // twos: xorshift64* state, never 0
	over  []bool     // overload hysteresis per dest (nil when no thresholds)
	spare []bool     // adopt's second buffer for over
}

// NewState returns a fresh per-worker state. seed feeds twos' generator;
// give each worker a different one.
func (s *Scheduler) NewState(seed uint64) State {
	st := State{owner: s, pos: -1, cw: s.mw, rnd: mix64(seed + 0x9e3779b97f4a7c15)}
	if st.rnd == 0 {
		st.rnd = 1
	}
	if s.thresholds {
		st.over = make([]bool, len(s.dests))
	}
	return st
}

// adopt takes over a State of another compile of the same service's
// scheduler (st.owner), keeping what the kernel keeps across the
// configuration change between them:
//
//   - rr: the position, the kernel's svc->sched_data pointer to the last
//     chosen destination. ip_vs_rr.c has no add_dest nor upd_dest, and
//     ip_vs_rr_del_dest moves the pointer to the previous list entry only
//     when the current destination is deleted; so the position follows its
//     destination, or the nearest surviving one before it, or the list head.
//   - wrr: ip_vs_wrr_dest_changed (ip_vs_wrr.c, the add_dest, del_dest and
//     upd_dest hook) runs when a destination was added, deleted or updated:
//     the position goes back to the list head, the gcd (di) and maximum
//     weight (mw) are recomputed, and the current weight is kept unless it
//     is above mw or 0 (then mw), rounded to the new di's step (cw/di*di+1)
//     when di > 1. Without a destination event (-E with the same scheduler,
//     a next-hop change) the state is kept as it is.
//   - the overload marks of the threshold hysteresis, the kernel's
//     per-destination IP_VS_DEST_F_OVERLOAD: kept per destination, cleared
//     when its upper threshold was removed or raised, as
//     __ip_vs_update_dest does.
//
// Several changes between two of the worker's snapshots are taken
// together: exact for rr deletions and additions separately, and for wrr
// whose rule is idempotent; when one batch both deletes rr's current
// destination at the head of the list and adds new ones, the position
// goes to the list head, where the kernel's would depend on the order of
// the commands. A State of another kind of scheduler starts afresh. It may
// allocate (only when the number of destinations with thresholds grows).
func (s *Scheduler) adopt(st *State) {
	old := st.owner
	st.owner = s
	if old == nil || old.kind != s.kind {
		*st = s.NewState(st.rnd)
		return
	}
	n := len(s.dests)
	var over []bool
	if s.thresholds {
		over = st.spare[:0]
		if cap(over) < n {
			over = make([]bool, n, n+n/4+4)
		}
		over = over[:n]
		clear(over)
	}
	// Destinations are only added at the head or removed, so walking both
	// lists from their tails pairs each surviving destination with itself.
	pos := -1
	i, j := n-1, len(old.dests)-1
	for i >= 0 && j >= 0 {
		if old.dests[j].id == 0 || old.dests[j].id != s.dests[i].id {
			j-- // deleted
			continue
		}
		if j <= st.pos && pos < 0 {
			pos = i
		}
		if over != nil && j < len(st.over) && st.over[j] && s.dests[i].upper != 0 && s.dests[i].upper <= old.dests[j].upper {
			over[i] = true
		}
		i--
		j--
	}
	if over != nil {
		st.spare, st.over = st.over, over
	} else {
		st.over = nil
	}
	switch s.kind {
	case kRR:
		st.pos = pos
	case kWRR:
		if s.changes == old.changes {
			st.pos = pos
			break
		}
		st.pos = -1
		switch {
		case st.cw > s.mw || st.cw == 0:
			st.cw = s.mw
		case s.di > 1:
			st.cw = st.cw/s.di*s.di + 1
		}
	default:
		st.pos = -1
	}
}

func (s *Scheduler) load(i int) Load {
	if l := s.dests[i].load; l != nil {
		return l.Load()
	}
	return Load{}
}

// active is the kernel's activeconns, plus live templates under -o.
func (s *Scheduler) active(l Load) int64 {
	if s.onePacket {
		return l.Active + l.Persist
	}
	return l.Active
}

// overhead is ip_vs_dest_conn_overhead.
func (s *Scheduler) overhead(l Load) int64 { return s.active(l)<<8 + l.Inactive }

// overloaded applies the upper/lower threshold hysteresis of dest i.
func (s *Scheduler) overloaded(st *State, i int) bool {
	d := &s.dests[i]
	if d.upper == 0 {
		return false
	}
	l := s.load(i)
	conns := s.active(l) + l.Inactive
	if len(st.over) != len(s.dests) { // state without hysteresis memory
		return conns >= d.upper
	}
	if st.over[i] {
		if conns < d.lower {
			st.over[i] = false
		}
	} else if conns >= d.upper {
		st.over[i] = true
	}
	return st.over[i]
}

// available is !is_unavailable(): weight > 0 and not overloaded.
func (s *Scheduler) available(st *State, i int) bool {
	return s.dests[i].weight > 0 && (!s.thresholds || !s.overloaded(st, i))
}

// Schedule chooses a destination for in and returns its index in the list
// given to Compile, or -1 when none is available. It allocates nothing.
func (s *Scheduler) Schedule(st *State, in *Input) int {
	if st.owner != s {
		s.adopt(st)
	}
	switch s.kind {
	case kRR:
		return s.rr(st)
	case kWRR:
		return s.wrr(st)
	case kLC:
		return s.lc(st)
	case kWLC:
		return s.wlc(st)
	case kSED:
		return s.sed(st, false)
	case kNQ:
		return s.sed(st, true)
	case kFO:
		return s.fo(st)
	case kOVF:
		return s.ovf(st)
	case kTwoS:
		return s.twos(st)
	case kSH:
		return s.sh(st, in)
	case kDH:
		return s.dh(st, in)
	case kMH:
		return s.mh(st, in)
	}
	return -1
}

// rr is ip_vs_rr_schedule: continue after the last choice, wrapping.
func (s *Scheduler) rr(st *State) int {
	n := len(s.dests)
	for k := range n {
		j := (st.pos + 1 + k) % n
		if s.available(st, j) {
			st.pos = j
			return j
		}
	}
	return -1
}

// wrr is a port of ip_vs_wrr_schedule (Linux ≥ 3.10).
func (s *Scheduler) wrr(st *State) int {
	if s.mw == 0 {
		return -1
	}
	n := len(s.dests)
	d := st.pos
	last, stop := d, -2
	lastPass, restarted := false, false
	for {
		for d++; d < n; d++ {
			if s.dests[d].weight >= st.cw && (!s.thresholds || !s.overloaded(st, d)) {
				st.pos = d
				return d
			}
			if d == stop {
				return -1
			}
		}
		d = -1 // back at the list head
		st.cw -= s.di
		if st.cw <= 0 {
			st.cw = s.mw
			if lastPass || last == -1 {
				return -1
			}
			restarted = true
		}
		lastPass = st.cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

// lc is ip_vs_lc_schedule: least overhead, first wins ties.
func (s *Scheduler) lc(st *State) int {
	least, loh := -1, int64(0)
	for i := range s.dests {
		if !s.available(st, i) {
			continue
		}
		if doh := s.overhead(s.load(i)); least < 0 || doh < loh {
			least, loh = i, doh
		}
	}
	return least
}

// wlc is ip_vs_wlc_schedule: least overhead/weight by cross-multiplying.
func (s *Scheduler) wlc(st *State) int {
	least, loh := -1, int64(0)
	for i := range s.dests {
		if !s.available(st, i) {
			continue
		}
		doh := s.overhead(s.load(i))
		if least < 0 || loh*s.dests[i].weight > doh*s.dests[least].weight {
			least, loh = i, doh
		}
	}
	return least
}

// sed is ip_vs_sed_schedule ((active+1)/weight); with nq set it is
// ip_vs_nq_schedule, which returns the first idle server at once.
func (s *Scheduler) sed(st *State, nq bool) int {
	least, loh := -1, int64(0)
	for i := range s.dests {
		if !s.available(st, i) {
			continue
		}
		a := s.active(s.load(i))
		if nq && a == 0 {
			return i
		}
		doh := a + 1
		if least < 0 || loh*s.dests[i].weight > doh*s.dests[least].weight {
			least, loh = i, doh
		}
	}
	return least
}

// fo is ip_vs_fo_schedule: the first available dest of highest weight.
func (s *Scheduler) fo(st *State) int {
	h, hw := -1, int64(0)
	for i := range s.dests {
		if w := s.dests[i].weight; w > hw && s.available(st, i) {
			h, hw = i, w
		}
	}
	return h
}

// ovf is ip_vs_ovf_schedule: highest weight whose active connections do not
// exceed its weight.
func (s *Scheduler) ovf(st *State) int {
	h, hw := -1, int64(0)
	for i := range s.dests {
		w := s.dests[i].weight
		if !s.available(st, i) || s.active(s.load(i)) > w {
			continue
		}
		if h < 0 || w > hw {
			h, hw = i, w
		}
	}
	return h
}

// twos is ip_vs_twos_schedule: two weighted-random picks, keep the lower
// overhead/weight.
func (s *Scheduler) twos(st *State) int {
	var total int64
	for i := range s.dests {
		if s.available(st, i) {
			total += s.dests[i].weight
		}
	}
	if total == 0 {
		return -1
	}
	// The kernel draws from [0, total] and picks at r <= 0, which gives the
	// first eligible dest one extra share; xvs draws from [0, total) and
	// picks at r < 0, so picks are exactly proportional to weight.
	r1 := int64(st.next() % uint64(total))
	r2 := int64(st.next() % uint64(total))
	c1, c2 := -1, -1
	var w1, w2, o1, o2 int64
	for i := range s.dests {
		d := &s.dests[i]
		if !s.available(st, i) {
			continue
		}
		r1 -= d.weight
		r2 -= d.weight
		if r1 < 0 && c1 < 0 {
			c1, w1, o1 = i, d.weight, s.overhead(s.load(i))
		}
		if r2 < 0 && c2 < 0 {
			c2, w2, o2 = i, d.weight, s.overhead(s.load(i))
		}
		if c1 >= 0 && c2 >= 0 {
			break
		}
	}
	if c2 >= 0 && w2*o1 > w1*o2 {
		return c2
	}
	return c1
}

// next is xorshift64*.
func (st *State) next() uint64 {
	x := st.rnd
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	st.rnd = x
	return x * 2685821657736338717
}

// sh is ip_vs_sh_schedule; with PE data it hashes the PE data instead of
// the client address.
func (s *Scheduler) sh(st *State, in *Input) int {
	var h uint32
	if in.HasPE {
		h = uint32(mix64(in.PEHash) >> (64 - hashTableBits))
	} else {
		var port uint16
		if s.flags&SHPort != 0 {
			port = in.Src.Port()
		}
		h = hash32(uint32(port)+fold(in.Src.Addr()), hashTableBits)
	}
	return s.bucketPick(st, h, s.flags&SHFallback != 0)
}

// dh is ip_vs_dh_schedule: hash of the destination address.
func (s *Scheduler) dh(st *State, in *Input) int {
	return s.bucketPick(st, hash32(fold(in.Dst.Addr()), hashTableBits), false)
}

func (s *Scheduler) bucketPick(st *State, ihash uint32, fallback bool) int {
	d := s.buckets[ihash]
	if d == noDest {
		return -1
	}
	if s.available(st, int(d)) {
		return int(d)
	}
	if !fallback {
		return -1
	}
	// ip_vs_sh_get_fallback: it rehashes with offset (offset+ihash), so
	// the walk steps from 2*ihash; every bucket is still visited once.
	for off := range uint32(hashTableSize) {
		roff := (off + ihash) % hashTableSize
		d := s.buckets[(roff+ihash)%hashTableSize]
		if s.available(st, int(d)) {
			return int(d)
		}
	}
	return -1
}

// mh is ip_vs_mh_schedule over the Maglev table; see the package doc.
func (s *Scheduler) mh(st *State, in *Input) int {
	if s.maglev == nil {
		return -1
	}
	var h uint64
	if in.HasPE {
		h = mix64(in.PEHash)
	} else {
		var port uint16
		if s.flags&MHPort != 0 {
			port = in.Src.Port()
		}
		h = hashAddrPort(in.Src.Addr(), port, seedLookup)
	}
	idx := int(h % MaglevTableSize)
	d := int(s.maglev[idx])
	if s.available(st, d) {
		return d
	}
	if s.flags&MHFallback == 0 {
		return -1
	}
	any := false
	for i := range s.dests {
		if s.available(st, i) {
			any = true
			break
		}
	}
	if !any {
		return -1
	}
	for range MaglevTableSize {
		if idx++; idx == MaglevTableSize {
			idx = 0
		}
		if d := int(s.maglev[idx]); s.available(st, d) {
			return d
		}
	}
	return -1
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
