package table

// Connection synchronisation (IPVS sync daemon). A master keeps, per entry,
// the sync state the kernel keeps in struct ip_vs_conn (sync_endtime, the
// state at the last sync, in_pkts) and reads it around each packet; a backup
// enters what it receives with the SYNC mark, which listings show.

import (
	"net/netip"
	"time"
)

// flagSync marks an entry a backup created from a sync message (the
// kernel's IP_VS_CONN_F_SYNC). Templates and Conns share the bit.
const flagSync uint8 = 1 << 4

// SyncResult is the outcome of entering a received entry (Templates.Sync,
// Conns.Sync).
type SyncResult uint8

const (
	// SyncInserted: a new entry was created, marked as synced.
	SyncInserted SyncResult = iota
	// SyncRefreshed: a live entry with the key and the same real server
	// had its timeout restarted with the received one (and is marked used:
	// it is alive on the master).
	SyncRefreshed
	// SyncMoved: a live entry had another real server; it now has the
	// received one (the master rescheduled the call, or a client's port
	// went to another server).
	SyncMoved
	// SyncOverflow: no room (see InsertOverflow); nothing changed.
	SyncOverflow
	// SyncInvalid: a malformed key (see InsertInvalid).
	SyncInvalid
)

func (r SyncResult) String() string {
	switch r {
	case SyncInserted:
		return "inserted"
	case SyncRefreshed:
		return "refreshed"
	case SyncMoved:
		return "moved"
	case SyncOverflow:
		return "overflow"
	case SyncInvalid:
		return "invalid"
	}
	return "unknown"
}

// Mark returns the template's mark (see SwapMark), or false for a stale Ref.
func (t *Templates) Mark(r Ref) (uint32, bool) {
	e := t.entry(r)
	if e == nil {
		return 0, false
	}
	return e.mark, true
}

// Sync enters a template received from a master: a new one pointing at
// dest with the given timeout, expiring after remaining (the master's
// expiry, or the timeout), marked as synced; or, when a live template has
// the key, its timeout set to the received one, its expiry moved to
// now+remaining if that is later, and its destination set to dest. The kernel's backup keeps
// the destination a template had (ip_vs_proc_conn looks templates up
// without the real server), so a call the master moved stays on the old
// server on the backup; Sync follows the master instead (SyncMoved, with
// the previous destination). A template that exists locally keeps its
// origin: it is not marked as synced.
func (t *Templates) Sync(k *TemplateKey, h uint64, dest DestID, timeout, remaining time.Duration, now int64) (Ref, DestID, SyncResult) {
	alen := k.addrLen()
	if alen == 0 {
		t.stats.Invalid++
		return Ref{}, 0, SyncInvalid
	}
	if i, ok := t.find(k, h, alen); ok && !t.expired(i, now) {
		e := &t.ents[i]
		old := e.dest
		e.timeout = timeoutMillis(timeout)
		e.expires = max(e.expires, now+int64(timeoutMillis(remaining))*int64(time.Millisecond))
		e.flags |= flagUsed
		if old != dest {
			e.dest = dest
			return Ref{i, e.gen}, old, SyncMoved
		}
		return Ref{i, e.gen}, old, SyncRefreshed
	}
	ref, res := t.insert(k, h, dest, TemplateNone, timeout, remaining, now)
	switch res {
	case Inserted:
		t.ents[ref.slot].flags |= flagSync
		t.stats.Synced++
		return ref, 0, SyncInserted
	case InsertOverflow:
		return Ref{}, 0, SyncOverflow
	}
	return Ref{}, 0, SyncInvalid
}

// SyncView is what a master's sync needs of a template.
type SyncView struct {
	Key     TemplateKey // PEData in the caller's buffer
	Dest    DestID
	State   TemplateState
	Timeout time.Duration
	Expires int64  // monotonic ns; its last use was Expires-Timeout
	Mark    uint32 // see SwapMark
}

// SyncView describes the template r refers to, its pe data copied into
// pe (which must hold MaxPEData bytes; with a nil pe the key is left out),
// or reports false for a stale Ref.
func (t *Templates) SyncView(r Ref, pe []byte) (SyncView, bool) {
	e := t.entry(r)
	if e == nil || pe != nil && len(pe) < MaxPEData {
		return SyncView{}, false
	}
	st := TemplateNone
	if e.flags&flagAssured != 0 {
		st = TemplateAssured
	}
	v := SyncView{
		Dest:    e.dest,
		State:   st,
		Timeout: time.Duration(e.timeout) * time.Millisecond,
		Expires: e.expires,
		Mark:    e.mark,
	}
	if pe == nil {
		return v, true
	}
	alen := e.alen()
	b := e.key[:min(e.keyLen(), inlineKey)]
	var c, vip netip.Addr
	if alen == 4 {
		c, vip = netip.AddrFrom4([4]byte(b[0:4])), netip.AddrFrom4([4]byte(b[4:8]))
	} else {
		c, vip = netip.AddrFrom16([16]byte(b[0:16])), netip.AddrFrom16([16]byte(b[16:32]))
	}
	n := copy(pe, b[2*alen:])
	n += copy(pe[n:], t.arena.mem[e.tail:e.tail+uint32(tailLen(e.keyLen()))])
	v.Key = TemplateKey{Protocol: e.proto, Client: c, Virtual: netip.AddrPortFrom(vip, e.vport), PE: e.pe, PEData: pe[:n]}
	return v, true
}

// Walk calls fn with each live template in up to n entry slots from slot
// from, wrapping at the end of the table, and returns the slot to continue
// from: a master's periodic re-send of idle templates walks the table a
// slice per batch. When fn returns false the walk stops there, and the
// slot returned is that template's, to visit again. fn may call SwapMark
// and read the template; it must not insert or remove templates.
func (t *Templates) Walk(from, n int, now int64, fn func(Ref) bool) int {
	if len(t.ents) == 0 {
		return 0
	}
	i := min(max(from, 0), len(t.ents)-1)
	for range min(max(n, 0), len(t.ents)) {
		if e := &t.ents[i]; e.flags&flagLive != 0 && (now < e.expires || e.control > 0) && !fn(Ref{uint32(i), e.gen}) {
			return i
		}
		if i++; i == len(t.ents) {
			i = 0
		}
	}
	return i
}

// ConnSync is a connection's sync state on a master (struct ip_vs_conn's
// sync_endtime, old_state and in_pkts): see package syncpolicy.
type ConnSync struct {
	Mark     uint32 // the policy's mark (syncpolicy.Entry.Mark)
	InPkts   uint32 // incoming packets counted while a master runs
	OldState uint8  // the protocol state at the last sync
}

// CountIn adds one incoming packet to the connection's count and returns
// its sync state, or false for a stale Ref.
func (c *Conns) CountIn(r Ref) (ConnSync, bool) {
	e := c.entry(r)
	if e == nil {
		return ConnSync{}, false
	}
	e.inPkts++
	return ConnSync{Mark: e.syncMark, InPkts: e.inPkts, OldState: e.oldState}, true
}

// SetSync stores the connection's sync state (after a sync, or when a
// backup enters it); it reports false for a stale Ref.
func (c *Conns) SetSync(r Ref, s ConnSync) bool {
	e := c.entry(r)
	if e == nil {
		return false
	}
	e.syncMark, e.inPkts, e.oldState = s.Mark, s.InPkts, s.OldState
	return true
}

// Sync enters a connection received from a master: a new one to real
// (destination dest) in the given state and timeout, marked as synced; or,
// when a live connection has the key and the same real server (address,
// port and destination), its state and timeout set from the received ones.
// A live connection to another real server is replaced (the kernel expires
// it and creates the received one: the client's port was reused towards
// another server: SyncMoved). The connection is controlled by no
// template: the backup's template, if any, is its own entry. prev is the
// state a refreshed connection had (SyncRefreshed), so that the caller can
// move it between its gauges; a replaced one left through OnRemove.
func (c *Conns) Sync(k *ConnKey, real netip.AddrPort, dest DestID, state uint8, timeout time.Duration, now int64) (_ Ref, prev uint8, _ SyncResult) {
	if !k.Client.Addr().IsValid() || !real.Addr().IsValid() || k.Client.Addr().Is4() != k.Virtual.Addr().Is4() {
		c.stats.Invalid++
		return Ref{}, 0, SyncInvalid
	}
	moved := false
	if r, ok := c.Lookup(k, now); ok {
		e := &c.ents[r.slot]
		if e.dest == dest && e.daddr == real.Addr().As16() && e.dport == real.Port() && (e.flags&flagRealV6 != 0) == v6(real.Addr()) {
			prev := e.state
			c.SetState(r, state, e.cflags, timeout, now)
			return r, prev, SyncRefreshed
		}
		moved = true
		c.drop(r.slot, RemoveInvalidated)
	}
	ref, res := c.Insert(k, real, dest, state, timeout, Ref{}, now)
	switch res {
	case Inserted:
		c.ents[ref.slot].flags |= flagSync
		if moved {
			return ref, 0, SyncMoved
		}
		return ref, 0, SyncInserted
	case InsertOverflow:
		return Ref{}, 0, SyncOverflow
	}
	return Ref{}, 0, SyncInvalid
}
