package table

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"
)

// TemplateKey identifies a persistence template, as IPVS keys one:
// protocol, client address already AND-ed with the service's persistence
// mask (the client port is always 0 and not part of the key), virtual
// address and port, persistence engine and its data. For a fwmark service
// the caller puts the mark in Virtual as an IPv4 address with port 0 and
// Protocol 0, as IPVS does.
//
// PEData is borrowed: Insert copies it into the table, and no method retains
// it after returning, so it may point into a packet buffer.
type TemplateKey struct {
	Protocol uint8          // IP protocol number; 0 for a fwmark service
	Client   netip.Addr     // client address AND the service netmask
	Virtual  netip.AddrPort // virtual address and port
	PE       uint8          // persistence-engine id; 0 = none
	PEData   []byte         // engine data (the SIP Call-ID), exact bytes, ≤ MaxPEData
}

// Hash returns the key's seeded 64-bit hash. The pipeline computes it once
// per packet and passes it to Templates.LookupHashed, InsertHashed and to the
// Shared index, which must all be used with the same seed. The fixed-size
// fields are folded into the seed of the pe data's hash: for IPv4 both
// addresses, the port, protocol and engine take one multiply.
func (k *TemplateKey) Hash(seed uint64) uint64 {
	v := k.Virtual.Addr()
	meta := uint64(k.Virtual.Port())<<24 | uint64(k.Protocol)<<16 | uint64(k.PE)<<8
	if v.Is4() && k.Client.Is4() {
		c4, v4 := k.Client.As4(), v.As4()
		addrs := uint64(binary.LittleEndian.Uint32(c4[:]))<<32 | uint64(binary.LittleEndian.Uint32(v4[:]))
		seed = mix(seed^addrs^wyp2, meta|4^wyp3)
	} else {
		c, v16 := k.Client.As16(), v.As16()
		seed = hashAddr(hashAddr(seed^meta^wyp1, &c), &v16)
	}
	return hashBytes(seed, k.PEData)
}

// addrLen returns the key's address length (4 or 16), or 0 if the key is
// malformed: pe data too long, an invalid address, or mixed families.
func (k *TemplateKey) addrLen() int {
	v := k.Virtual.Addr()
	if len(k.PEData) > MaxPEData || !v.IsValid() || !k.Client.IsValid() || k.Client.Is4() != v.Is4() {
		return 0
	}
	if v.Is4() {
		return 4
	}
	return 16
}

// TemplateState is a template's IPVS state.
type TemplateState uint8

const (
	// TemplateNone is a template no reply has been seen for (IPVS "NONE").
	TemplateNone TemplateState = iota
	// TemplateAssured is a template a reply has passed through (NAT only).
	TemplateAssured
)

func (s TemplateState) String() string {
	if s == TemplateAssured {
		return "ASSURED"
	}
	return "NONE"
}

// TemplateInfo describes one template for listings (ipvsadm -Lcn
// --persistent-conn) and for snapshots restored with Templates.Restore.
type TemplateInfo struct {
	Protocol  uint8
	Client    netip.Addr
	Virtual   netip.AddrPort
	Dest      DestID
	State     TemplateState
	Timeout   time.Duration // the persistence timeout, restarted on each use
	Remaining time.Duration // until expiry at the time of the listing
	Held      uint32        // connections controlled by the template
	// Reused: the template has been used again since it was created (it
	// is in, or will be promoted to, the protected LRU segment). Restore
	// keeps the mark, so a restored live dialog outlives one-off templates
	// when the table must make room.
	Reused bool
	PE     uint8
	PEData []byte // a copy, owned by the caller
	// Synced: a backup created the template from a sync message
	// (Templates.Sync).
	Synced bool
}

// Config sizes a Templates table. Memory is allocated once by NewTemplates
// and never grows; see the package documentation for bytes per entry.
type Config struct {
	// Capacity is the maximum number of templates (1…MaxCapacity).
	Capacity int
	// ArenaBytes is the budget for key tails (the bytes of a key beyond
	// the entry's inlineKey), rounded down to whole 4 KiB pages. 0 means
	// Capacity × DefaultTailBytes plus one page per size class (every class
	// may hold a partly used page without starving the others). When the
	// arena is full, inserts make room exactly as when the entries are.
	ArenaBytes int
	// MinProtectedIdle is how long a protected (used more than once)
	// template must have been idle before it may be evicted to make room.
	// 0 means DefaultMinProtectedIdle; a negative value means "any idle time".
	MinProtectedIdle time.Duration
	// Seed seeds Lookup/Insert's key hash (TemplateKey.Hash(Seed)).
	Seed uint64
	// OnRemove, if set, is told about every removed template.
	OnRemove RemoveFunc
}

const (
	// MaxCapacity is the largest table: entry numbers live in the index's
	// 24-bit reference field.
	MaxCapacity = maxIndexRefs
	// DefaultTailBytes is the default arena budget per template. An IPv4
	// key spills a tail only for a Call-ID longer than 46 bytes — in the
	// realistic mix one key in four (UUID@address, 47–50 bytes), taking a
	// 16-byte slot — so the mean need is about 4 bytes; 8 leaves twice that,
	// and the pages are shared by all classes, so the mean tail must fit,
	// not every tail. Size Config.ArenaBytes up for IPv6 (32 address bytes:
	// any Call-ID over 22 bytes spills) or for longer Call-IDs.
	DefaultTailBytes = 8
	// makeRoomTries bounds the evictions one insert performs to find an
	// arena slot of its size class before it gives up as an overflow.
	makeRoomTries = 8
)

// Template entry flags.
const (
	flagLive uint8 = 1 << iota
	flagV6
	flagAssured
	flagUsed
	// flagSync (sync.go) is the next bit.
)

// tmpl is one template. It holds no pointers, so the garbage collector
// never scans the entry array. 96 bytes: the hot fields a lookup hit and Touch
// read and write, then the first inlineKey bytes of the key (client address ‖
// virtual address ‖ pe data), so that an IPv4 key with a Call-ID of up to 46
// bytes is compared without leaving the entry. Only the bytes beyond
// inlineKey (the tail) live in the arena.
type tmpl struct {
	expires int64  // monotonic ns
	hash    uint32 // hashHome of the key hash
	dest    DestID
	gen     uint32
	timeout uint32 // milliseconds
	control uint32 // connections held (IPVS n_control)
	mark    uint32 // the caller's value (SwapMark, Mark)
	tail    uint32 // arena offset of key[inlineKey:], if the key is longer
	vport   uint16
	peLen   uint8
	proto   uint8
	pe      uint8
	flags   uint8
	key     [inlineKey]byte
}

// inlineKey is how many key bytes the entry holds: what is left of 96 bytes
// after the fields. 96 rather than 64 because an IPv4 key with a realistic
// Call-ID (mean 37 bytes, 8 address bytes) needs 45 bytes; 96 rather than 128
// because the table must stay within 2× the raw key and value bytes
// (TestTemplateMemoryPerEntry).
const inlineKey = 54

func (e *tmpl) alen() int {
	if e.flags&flagV6 != 0 {
		return 16
	}
	return 4
}

func (e *tmpl) keyLen() int { return 2*e.alen() + int(e.peLen) }

// tailLen is the length of the key's arena part (0: the key is all inline).
func tailLen(klen int) int { return max(klen-inlineKey, 0) }

// TemplateStats are a Templates table's counters. All but Live and Capacity
// count events since construction.
type TemplateStats struct {
	Lookups          uint64
	Hits             uint64
	Misses           uint64
	Inserts          uint64
	Exists           uint64 // inserts that found a live entry with the key
	Expired          uint64
	EvictedProbation uint64
	EvictedProtected uint64
	Invalidated      uint64
	Overflow         uint64 // inserts refused: table full of protected live entries
	ArenaFull        uint64 // of Overflow: refused for want of an arena slot
	Invalid          uint64 // inserts with a malformed key
	Live             uint64
	Synced           uint64 // of Live: created by Sync (a backup's entries from a master)
	Capacity         uint64
}

// Templates is a per-worker table of persistence templates. It is owned by
// one goroutine: every method must be called from it (see package doc).
type Templates struct {
	ents    []tmpl
	lists   lists
	index   index
	arena   arena
	cursor  uint32 // next slot Sweep visits
	minIdle int64
	seed    uint64
	onRm    RemoveFunc
	stats   TemplateStats
}

// NewTemplates allocates a table for cfg.Capacity templates.
func NewTemplates(cfg Config) (*Templates, error) {
	if cfg.Capacity < 1 || cfg.Capacity > MaxCapacity {
		return nil, fmt.Errorf("templates: %d not in 1…%d: %w", cfg.Capacity, MaxCapacity, ErrCapacity)
	}
	ab := cfg.ArenaBytes
	if ab == 0 {
		ab = cfg.Capacity*DefaultTailBytes + arenaClasses*arenaPage
	}
	if ab < arenaPage || ab > maxArenaBytes {
		return nil, fmt.Errorf("templates: arena %d bytes not in %d…%d: %w", ab, arenaPage, maxArenaBytes, ErrArenaBudget)
	}
	minIdle := cfg.MinProtectedIdle
	if minIdle == 0 {
		minIdle = DefaultMinProtectedIdle
	}
	t := &Templates{
		ents:    make([]tmpl, cfg.Capacity),
		lists:   newLists(cfg.Capacity),
		index:   newIndex(cfg.Capacity),
		arena:   newArena(ab),
		minIdle: max(int64(minIdle), 0),
		seed:    cfg.Seed,
		onRm:    cfg.OnRemove,
	}
	t.stats.Capacity = uint64(cfg.Capacity)
	adviseHuge(t.ents)
	adviseHuge(t.index.slots)
	adviseHuge(t.arena.mem)
	for i := range t.ents {
		t.ents[i].gen = 1
	}
	return t, nil
}

// MemoryBytes is the table's total memory, fixed at construction: entries,
// list links, index and arena.
func (t *Templates) MemoryBytes() int {
	return len(t.ents)*int(sizeofTmpl) + t.lists.bytes() + t.index.bytes() + t.arena.bytes()
}

// Stats returns the counters.
func (t *Templates) Stats() TemplateStats { return t.stats }

// Seed returns the hash seed Lookup and Insert use.
func (t *Templates) Seed() uint64 { return t.seed }

// refHome implements homer.
func (t *Templates) refHome(ref uint32) uint32 { return t.ents[ref].hash }

// find returns the entry holding k, if any.
func (t *Templates) find(k *TemplateKey, h uint64, alen int) (uint32, bool) {
	h32, tag := hashHome(h), hashTag(h)
	x := &t.index
	for pos := x.home(h32); ; pos = x.next(pos) {
		s := x.slots[pos]
		if s == 0 {
			return 0, false
		}
		if s&^indexRefMask != tag {
			continue
		}
		i := s&indexRefMask - 1
		if e := &t.ents[i]; e.hash == h32 && t.match(e, k, alen) {
			return i, true
		}
	}
}

func (t *Templates) match(e *tmpl, k *TemplateKey, alen int) bool {
	if e.vport != k.Virtual.Port() || e.proto != k.Protocol || e.pe != k.PE ||
		int(e.peLen) != len(k.PEData) || e.alen() != alen {
		return false
	}
	pe := k.PEData
	if alen == 4 {
		c, v := k.Client.As4(), k.Virtual.Addr().As4()
		if [4]byte(e.key[0:4]) != c || [4]byte(e.key[4:8]) != v {
			return false
		}
	} else {
		c, v := k.Client.As16(), k.Virtual.Addr().As16()
		if [16]byte(e.key[0:16]) != c || [16]byte(e.key[16:32]) != v {
			return false
		}
	}
	in := min(len(pe), inlineKey-2*alen)
	if string(e.key[2*alen:2*alen+in]) != string(pe[:in]) {
		return false
	}
	if in == len(pe) {
		return true
	}
	return string(t.arena.mem[e.tail:e.tail+uint32(len(pe)-in)]) == string(pe[in:])
}

// Lookup finds the live template for k. An expired template is removed and
// reported as a miss. A hit does not count as a use: call Touch once the
// destination has been validated (IPVS restarts a template's timer only when
// it is used for a connection), or Invalidate it.
func (t *Templates) Lookup(k *TemplateKey, now int64) (Ref, DestID, bool) {
	return t.LookupHashed(k, k.Hash(t.seed), now)
}

// LookupHashed is Lookup with h = k.Hash(t.Seed()) computed by the caller.
func (t *Templates) LookupHashed(k *TemplateKey, h uint64, now int64) (Ref, DestID, bool) {
	t.stats.Lookups++
	alen := k.addrLen()
	if alen != 0 {
		if i, ok := t.find(k, h, alen); ok {
			if !t.expired(i, now) {
				t.stats.Hits++
				e := &t.ents[i]
				return Ref{i, e.gen}, e.dest, true
			}
			t.drop(i, RemoveExpired)
		}
	}
	t.stats.Misses++
	return Ref{}, 0, false
}

// Insert adds a template for k pointing at dest, with a persistence timeout
// restarted by every Touch. On InsertExists the live template's Ref is
// returned unchanged. Insert never grows the table: when it is full it
// makes room by the segmented-LRU policy or returns InsertOverflow.
func (t *Templates) Insert(k *TemplateKey, dest DestID, timeout time.Duration, now int64) (Ref, InsertResult) {
	return t.insert(k, k.Hash(t.seed), dest, TemplateNone, timeout, timeout, now)
}

// InsertHashed is Insert with h = k.Hash(t.Seed()) computed by the caller.
func (t *Templates) InsertHashed(k *TemplateKey, h uint64, dest DestID, timeout time.Duration, now int64) (Ref, InsertResult) {
	return t.insert(k, h, dest, TemplateNone, timeout, timeout, now)
}

// Restore re-creates a template from a snapshot (TemplateInfo): it expires
// after remaining, then its timeout applies again on each use. Restored
// templates start in the probation segment, like new ones; a Reused one
// carries its use mark, so the next makeRoom promotes it instead of
// evicting it. A full table makes room by the normal policy, as Insert does.
func (t *Templates) Restore(info *TemplateInfo, now int64) (Ref, InsertResult) {
	k := TemplateKey{Protocol: info.Protocol, Client: info.Client, Virtual: info.Virtual, PE: info.PE, PEData: info.PEData}
	ref, res := t.insert(&k, k.Hash(t.seed), info.Dest, info.State, info.Timeout, info.Remaining, now)
	if res == Inserted && info.Reused {
		t.ents[ref.slot].flags |= flagUsed
	}
	return ref, res
}

func (t *Templates) insert(k *TemplateKey, h uint64, dest DestID, st TemplateState, timeout, remaining time.Duration, now int64) (Ref, InsertResult) {
	alen := k.addrLen()
	if alen == 0 {
		t.stats.Invalid++
		return Ref{}, InsertInvalid
	}
	if i, ok := t.find(k, h, alen); ok {
		if !t.expired(i, now) {
			t.stats.Exists++
			return Ref{i, t.ents[i].gen}, InsertExists
		}
		t.drop(i, RemoveExpired)
	}
	klen := 2*alen + len(k.PEData)
	tl := tailLen(klen)
	var off uint32
	for try := 0; ; try++ {
		if try == makeRoomTries {
			t.stats.Overflow++
			t.stats.ArenaFull++
			return Ref{}, InsertOverflow
		}
		if t.lists.n[segFree] == 0 {
			if !t.lists.makeRoom(t, now, t.minIdle) {
				t.stats.Overflow++
				return Ref{}, InsertOverflow
			}
			continue
		}
		if tl == 0 {
			break
		}
		var ok bool
		if off, ok = t.arena.alloc(tl); ok {
			break
		}
		if !t.lists.makeRoom(t, now, t.minIdle) {
			t.stats.Overflow++
			t.stats.ArenaFull++
			return Ref{}, InsertOverflow
		}
	}
	i, _ := t.lists.back(segFree)
	t.lists.move(i, segProbation)
	e := &t.ents[i]
	flags := flagLive
	if alen == 16 {
		flags |= flagV6
	}
	if st == TemplateAssured {
		flags |= flagAssured
	}
	*e = tmpl{
		expires: now + int64(timeoutMillis(remaining))*int64(time.Millisecond),
		hash:    hashHome(h),
		dest:    dest,
		gen:     e.gen,
		timeout: timeoutMillis(timeout),
		tail:    off,
		vport:   k.Virtual.Port(),
		peLen:   uint8(len(k.PEData)),
		proto:   k.Protocol,
		pe:      k.PE,
		flags:   flags,
	}
	if alen == 4 {
		c, v := k.Client.As4(), k.Virtual.Addr().As4()
		copy(e.key[0:4], c[:])
		copy(e.key[4:8], v[:])
	} else {
		c, v := k.Client.As16(), k.Virtual.Addr().As16()
		copy(e.key[0:16], c[:])
		copy(e.key[16:32], v[:])
	}
	n := copy(e.key[2*alen:], k.PEData)
	copy(t.arena.mem[off:off+uint32(tl)], k.PEData[n:])
	t.index.add(h, i)
	t.stats.Inserts++
	t.stats.Live++
	return Ref{i, e.gen}, Inserted
}

// entry returns the live entry r refers to, or nil for a stale Ref.
func (t *Templates) entry(r Ref) *tmpl {
	if r.slot >= uint32(len(t.ents)) {
		return nil
	}
	e := &t.ents[r.slot]
	if e.gen != r.gen || e.flags&flagLive == 0 {
		return nil
	}
	return e
}

// Touch records a use of the template: its timeout restarts from now and it
// becomes eligible for the protected segment. It reports false for a stale
// Ref.
func (t *Templates) Touch(r Ref, now int64) bool {
	e := t.entry(r)
	if e == nil {
		return false
	}
	e.expires = now + int64(e.timeout)*int64(time.Millisecond)
	e.flags |= flagUsed
	return true
}

// SwapMark stores v as the template's mark and returns the previous one
// (0 after Insert, Restore or Sync). The mark belongs to the caller: the
// pipeline keeps the template's sync state in it (syncpolicy's Mark).
// It reports false for a stale Ref.
func (t *Templates) SwapMark(r Ref, v uint32) (old uint32, ok bool) {
	e := t.entry(r)
	if e == nil {
		return 0, false
	}
	old, e.mark = e.mark, v
	return old, true
}

// Prefetch starts loading the index line a lookup of hash h reads first,
// without waiting for it. A worker with a batch of packets hashes every key,
// prefetches them all, then looks them up, so that the batch's cache misses
// overlap instead of following one another (BenchmarkTemplateLookupHit,
// batched). It changes nothing and is a no-op on architectures without an
// assembly prefetch.
func (t *Templates) Prefetch(h uint64) {
	t.index.prefetch(hashHome(h))
}

// PrefetchEntry starts loading the entry a lookup of hash h will most likely
// compare: the first one whose index tag matches. It reads the index line, so
// call it in a second pass over the batch, after Prefetch has brought that
// line in; the lookups in a third pass then find index and entry cached.
func (t *Templates) PrefetchEntry(h uint64) {
	h32, tag := hashHome(h), hashTag(h)
	x := &t.index
	for pos := x.home(h32); ; pos = x.next(pos) {
		s := x.slots[pos]
		if s == 0 {
			return
		}
		if s&^indexRefMask == tag {
			p := uintptr(unsafe.Pointer(&t.ents[s&indexRefMask-1]))
			prefetch2(p, p+sizeofTmpl-1)
			return
		}
	}
}

// Dest returns the template's destination, or false for a stale Ref.
func (t *Templates) Dest(r Ref) (DestID, bool) {
	if e := t.entry(r); e != nil {
		return e.dest, true
	}
	return 0, false
}

// SetAssured marks the template ASSURED (a reply passed through a
// connection it controls).
func (t *Templates) SetAssured(r Ref) bool {
	e := t.entry(r)
	if e == nil {
		return false
	}
	e.flags |= flagAssured
	return true
}

// Hold records that a connection is controlled by the template (IPVS
// ip_vs_control_add). A held template never expires or is evicted: at its
// expiry it is re-armed for HoldRearm. It reports false for a stale Ref.
func (t *Templates) Hold(r Ref) bool {
	e := t.entry(r)
	if e == nil {
		return false
	}
	e.control++
	return true
}

// Release undoes one Hold. A stale Ref (the template was invalidated
// meanwhile) is ignored and reported false.
func (t *Templates) Release(r Ref) bool {
	e := t.entry(r)
	if e == nil || e.control == 0 {
		return false
	}
	e.control--
	return true
}

// Invalidate removes the template at once (IPVS re-keys an invalid template
// so it never matches again; here it simply leaves the table), even if held:
// the controlling connections' Refs become stale. It reports false for a
// stale Ref.
func (t *Templates) Invalidate(r Ref) bool {
	if t.entry(r) == nil {
		return false
	}
	t.drop(r.slot, RemoveInvalidated)
	return true
}

// Capacity is how many entry slots the table has (what Sweep cycles
// through).
func (t *Templates) Capacity() int { return len(t.ents) }

// Sweep visits up to budget entry slots, round-robin, and removes expired
// templates; it returns how many it removed. The worker calls it once per
// batch, so the whole table is visited every Capacity/budget batches.
func (t *Templates) Sweep(now int64, budget int) int {
	n := 0
	for range min(budget, len(t.ents)) {
		i := t.cursor
		if t.cursor++; t.cursor == uint32(len(t.ents)) {
			t.cursor = 0
		}
		if t.ents[i].flags&flagLive != 0 && t.expired(i, now) {
			t.drop(i, RemoveExpired)
			n++
		}
	}
	return n
}

// AppendInfo appends a description of every live template to dst. It visits
// the whole table and allocates the PEData copies: a control-plane call.
func (t *Templates) AppendInfo(dst []TemplateInfo, now int64) []TemplateInfo {
	dst, _ = t.AppendInfoFrom(dst, 0, len(t.ents), now)
	return dst
}

// AppendInfoFrom is AppendInfo over at most n entry slots from slot from
// (0 ≤ from ≤ Capacity); it returns the slot to continue from, Capacity
// at the end. A caller that must not hold the owner goroutine for the whole
// table (a periodic snapshot of a million templates) walks it in steps,
// between which the table changes: a template moved meanwhile is seen once
// or not at all, never half.
func (t *Templates) AppendInfoFrom(dst []TemplateInfo, from, n int, now int64) ([]TemplateInfo, int) {
	from = min(max(from, 0), len(t.ents))
	end := from + min(max(n, 0), len(t.ents)-from)
	for i := from; i < end; i++ {
		e := &t.ents[i]
		if e.flags&flagLive == 0 || now >= e.expires && e.control == 0 {
			continue
		}
		alen := e.alen()
		b := e.key[:min(e.keyLen(), inlineKey)]
		var c, v netip.Addr
		if alen == 4 {
			c, v = netip.AddrFrom4([4]byte(b[0:4])), netip.AddrFrom4([4]byte(b[4:8]))
		} else {
			c, v = netip.AddrFrom16([16]byte(b[0:16])), netip.AddrFrom16([16]byte(b[16:32]))
		}
		st := TemplateNone
		if e.flags&flagAssured != 0 {
			st = TemplateAssured
		}
		dst = append(dst, TemplateInfo{
			Protocol:  e.proto,
			Client:    c,
			Virtual:   netip.AddrPortFrom(v, e.vport),
			Dest:      e.dest,
			State:     st,
			Timeout:   time.Duration(e.timeout) * time.Millisecond,
			Remaining: time.Duration(max(e.expires-now, 0)),
			Held:      e.control,
			Reused:    e.flags&flagUsed != 0 || t.lists.seg[i] == segProtected,
			PE:        e.pe,
			PEData:    append(bytes.Clone(b[2*alen:]), t.arena.mem[e.tail:e.tail+uint32(tailLen(e.keyLen()))]...),
			Synced:    e.flags&flagSync != 0,
		})
	}
	return dst, end
}

// expired implements victims: it reports whether live entry i is past its
// expiry, re-arming it instead when it is held.
func (t *Templates) expired(i uint32, now int64) bool {
	e := &t.ents[i]
	if now < e.expires {
		return false
	}
	if e.control > 0 {
		e.expires = now + int64(HoldRearm)
		return false
	}
	return true
}

// used implements victims.
func (t *Templates) used(i uint32) bool {
	e := &t.ents[i]
	u := e.flags&flagUsed != 0 || e.control > 0
	e.flags &^= flagUsed
	return u
}

// idle implements victims.
func (t *Templates) idle(i uint32, now int64) int64 {
	e := &t.ents[i]
	return now - (e.expires - int64(e.timeout)*int64(time.Millisecond))
}

// drop implements victims: it removes live entry i.
func (t *Templates) drop(i uint32, reason RemoveReason) {
	e := &t.ents[i]
	t.index.remove(e.hash, i, t)
	if tl := tailLen(e.keyLen()); tl != 0 {
		t.arena.free(e.tail, tl)
	}
	t.lists.move(i, segFree)
	dest := e.dest
	gen := e.gen + 1
	if gen == 0 {
		gen = 1
	}
	if e.flags&flagSync != 0 {
		t.stats.Synced--
	}
	*e = tmpl{gen: gen}
	t.stats.Live--
	switch reason {
	case RemoveExpired:
		t.stats.Expired++
	case RemoveEvictedProbation:
		t.stats.EvictedProbation++
	case RemoveEvictedProtected:
		t.stats.EvictedProtected++
	case RemoveInvalidated:
		t.stats.Invalidated++
	}
	if t.onRm != nil {
		t.onRm(dest, reason)
	}
}
