package pipeline

// Connection synchronisation (the IPVS sync daemon), the worker's part.
//
// Master: while a master daemon runs the worker has a ring to the sender
// (SetSyncMaster). For each inbound packet it asks the sync policy
// (syncpolicy.Policy.Needed, the kernel's ip_vs_sync_conn_needed) whether
// the connection — never a one-packet one — and then the template that
// controls it are due, keeping the kernel's per-entry sync state in the
// tables (a template's mark; a connection's mark, packet count and state at
// the last sync), and fills a record in place in its ring: no lock, no
// allocation, no system call; a full ring drops the record and counts it.
// With a refresh period it also walks its template table a slice per batch,
// the whole table every quarter period, and re-sends the templates that
// nothing has synced for 3/4 of a period (an idle live call;
// syncpolicy.Policy.Due), at most walkRate a second, so that a backup that
// starts late learns every live template, not only new ones, within a
// refresh period. That includes the templates the worker received from
// another director: after a failover the new active director has every
// call, its own and the ones it received, and a director that comes back
// must learn them all before it takes the traffic back. Each template
// carries the time of its last use (syncproto.Times), and a backup gives
// it the expiry that implies, so that two xvs directors re-sending each
// other's idle templates never extend their lives.
//
// Backup: while a backup daemon runs the worker has a ring from the
// receiver (SetSyncBackup), which has already resolved each entry's
// destination; at the start of each batch the worker enters up to
// syncApplyBudget of them in its own tables (table.Templates.Sync,
// table.Conns.Sync), marked as synced, and publishes templates in the
// cross-worker index, so that whichever worker sees the call's next packet
// finds its real server.

import (
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

const (
	// syncApplyBudget bounds the received entries a worker enters per
	// batch (about 100 µs of inserts), so that a burst from a master — a
	// backup that just started receives a master's whole walk — delays a
	// busy worker's packets by little; an idle worker runs an empty batch
	// every poll timeout (50 ms), 20 000 entries a second.
	syncApplyBudget = 1024
	// walkEvery is the least time between two slices of the walk: a busy
	// worker runs thousands of batches a second and needs no walk in each.
	walkEvery = int64(time.Millisecond)
	// walkMaxSlots bounds the table slots one slice visits (~50 µs).
	walkMaxSlots = 16384
	// walkRate bounds the templates a worker's walk re-sends per second:
	// 200 000 idle templates per refresh period of 10 s. A table with
	// more idle live templates takes longer than a period per pass; the
	// sync traffic stays under 2 MB/s per worker.
	walkRate = 20000
	// walkBurst bounds the walk's saved-up allowance.
	walkBurst = 1000
)

// syncWorker is a worker's sync state (owner-only).
type syncWorker struct {
	out *syncring.Ring // master: records to the sender; nil without one
	in  *syncring.Ring // backup: records from the receiver; nil without one
	pe  [table.MaxPEData]byte

	walkFrom   int
	walkAt     int64
	walkTokens int64 // in records × 1e9 (rate × ns)
	walkFn     func(table.Ref) bool
	applyFn    func(*syncring.Record)
}

// SyncCounters count a worker's part of connection synchronisation.
type SyncCounters struct {
	// Master: records queued for the sender (templates and connections),
	// of which the periodic walk's idle templates. Records the full ring
	// refused are counted by the ring (syncring.Stats.Dropped).
	Queued, Walked uint64
	// Backup: received entries entered in this worker's tables, by the
	// table's result (table.SyncResult); entries dropped because their
	// destination left the configuration after the receiver resolved it,
	// or because their remaining time had passed.
	Applied   [NumSyncResults]uint64
	StaleDest uint64
	Expired   uint64
	// Lag is the sync lag of the received templates that said when their
	// master queued them (xvs masters): from then to their entry here.
	Lag LagHistogram
}

// NumSyncResults is the number of table.SyncResult values.
const NumSyncResults = int(table.SyncInvalid) + 1

// LagBuckets are the upper bounds of the sync lag histogram.
var LagBuckets = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second,
}

// LagHistogram counts lags by bucket (LagBuckets, the last count above
// them), with their sum and maximum.
type LagHistogram struct {
	Counts [len(LagBuckets) + 1]uint64
	Sum    time.Duration
	Max    time.Duration
}

func (h *LagHistogram) add(d time.Duration) {
	d = max(d, 0) // another host's clock may be a little ahead
	i := 0
	for i < len(LagBuckets) && d > LagBuckets[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += d
	h.Max = max(h.Max, d)
}

// Count is the number of lags.
func (h *LagHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Add adds b's counts to h.
func (h *LagHistogram) Add(b *LagHistogram) {
	for i := range h.Counts {
		h.Counts[i] += b.Counts[i]
	}
	h.Sum += b.Sum
	h.Max = max(h.Max, b.Max)
}

// Quantile returns the upper bound of the bucket that holds the q-th
// quantile (0 < q <= 1), or Max when that is the last bucket.
func (h *LagHistogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n) + 0.5)
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= max(want, 1) {
			if i < len(LagBuckets) {
				return min(LagBuckets[i], h.Max)
			}
			return h.Max
		}
	}
	return h.Max
}

func (c *SyncCounters) add(b *SyncCounters) {
	c.Queued += b.Queued
	c.Walked += b.Walked
	for i := range c.Applied {
		c.Applied[i] += b.Applied[i]
	}
	c.StaleDest += b.StaleDest
	c.Expired += b.Expired
	c.Lag.Add(&b.Lag)
}

// SetSyncMaster gives the worker the ring to a master sync daemon's sender
// (nil when the master stops). Like every worker method it runs on the
// worker's goroutine (Runner.Do) or before the worker runs.
func (w *Worker) SetSyncMaster(r *syncring.Ring) {
	w.sync.out = r
	w.sync.walkAt = w.now
}

// SetSyncBackup gives the worker the ring from a backup sync daemon's
// receiver (nil when the backup stops).
func (w *Worker) SetSyncBackup(r *syncring.Ring) { w.sync.in = r }

// fwdFlags are the connection flags the kernel gives an entry to dest: the
// forwarding method, and NOOUTPUT for methods whose replies bypass the
// director (ip_vs_add_dest, ip_vs_bind_dest).
func fwdFlags(dest *ipvs.Dest) syncproto.Flags {
	f := syncproto.Flags(dest.Fwd) & syncproto.FlagFwdMask
	if dest.Fwd != ipvs.Masq {
		f |= syncproto.FlagNoOutput
	}
	return f
}

// wireState is a connection state as the kernel numbers it
// (IP_VS_TCP_S_*; 0 for UDP); pipelineState is the reverse.
func wireState(proto, s uint8) uint16 {
	if proto != protoTCP || s == stateUDP {
		return syncproto.UDPNormal
	}
	return uint16(s - 1) // tcpNone.. in the kernel's order, from 0
}

func pipelineState(proto uint8, s uint16) uint8 {
	if proto != protoTCP {
		return stateUDP
	}
	switch {
	case s < uint16(numStates-1):
		return uint8(s) + 1
	case s == syncproto.TCPSynAck:
		return tcpSynRecv
	}
	return tcpNone // LISTEN
}

// syncTemplate is ip_vs_sync_conn for a template the packet used (found,
// or just created when created): queue it when the policy says so.
func (w *Worker) syncTemplate(ref table.Ref, dest *ipvs.Dest, timeout time.Duration, created bool) {
	mark, ok := w.tmpl.Mark(ref)
	if !ok {
		return
	}
	if created {
		mark = syncpolicy.InitialMark(w.now)
	}
	e := syncpolicy.Entry{Template: true, Protocol: protoUDP, Timeout: timeout, Mark: mark}
	var pkts uint32
	if w.v.syncCount {
		// The policy reads a template's packet count and never its mark:
		// the mark keeps the count.
		pkts = mark + 1
		if created {
			pkts = 1
		}
		w.tmpl.SwapMark(ref, pkts)
		e.Mark = 0
	}
	send, next := w.v.syncPol.Needed(&e, pkts, w.now)
	if !w.v.syncCount {
		if created || send {
			w.tmpl.SwapMark(ref, next)
		}
	}
	if send {
		w.queueTemplate(ref, dest)
	}
}

// adoptTemplate sets the mark of a template this worker created from
// another worker's (the shared index): that worker synced it.
func (w *Worker) adoptTemplate(ref table.Ref, timeout time.Duration) {
	if !w.v.syncCount {
		w.tmpl.SwapMark(ref, w.v.syncPol.Synced(timeout, w.now))
	}
}

// queueTemplate fills a record for template ref, to dest.
func (w *Worker) queueTemplate(ref table.Ref, dest *ipvs.Dest) {
	v, ok := w.tmpl.SyncView(ref, w.sync.pe[:])
	if !ok {
		return
	}
	r := w.sync.out.Reserve()
	if r == nil {
		return // counted by the ring
	}
	r.SetAddrs(v.Key.Client, v.Key.Virtual.Addr(), dest.Addr.Addr())
	r.Protocol = v.Key.Protocol
	r.Flags = syncproto.FlagTemplate | fwdFlags(dest) | syncproto.FlagInactive
	r.State = uint16(v.State)
	r.CPort, r.VPort, r.DPort = 0, v.Key.Virtual.Port(), dest.Addr.Port()
	r.FWMark = 0
	r.Timeout = uint32(v.Timeout / time.Second)
	r.Dest = 0
	r.PE = pe.ID(v.Key.PE)
	r.SetPEData(v.Key.PEData)
	r.Queued, r.Used = w.now, v.Expires-int64(v.Timeout)
	w.sync.out.Commit()
	w.local.Sync.Queued++
}

// syncConn is ip_vs_sync_conn for a connection an inbound packet used (not
// a one-packet one): count the packet, queue the connection when the
// policy says so, then consider the template that controls it.
func (w *Worker) syncConn(ref table.Ref, k *table.ConnKey, real netip.AddrPort, dest *ipvs.Dest, state uint8, tmpl table.Ref) {
	cs, ok := w.conns.CountIn(ref)
	if !ok {
		return
	}
	if cs.Mark == 0 {
		cs.Mark = syncpolicy.InitialMark(w.now) // a new connection
	}
	timeout := w.timeout(state)
	e := syncpolicy.Entry{Protocol: k.Protocol, State: wireState(k.Protocol, state), OldState: wireState(k.Protocol, cs.OldState),
		InPersistence: !tmpl.IsZero(), Timeout: timeout, Mark: cs.Mark}
	if send, mark := w.v.syncPol.Needed(&e, cs.InPkts, w.now); send {
		cs.Mark, cs.OldState = mark, state
		w.conns.SetSync(ref, cs)
		w.queueConn(k, real, dest, state, timeout)
	}
	if !tmpl.IsZero() {
		w.syncTemplate(tmpl, dest, time.Duration(dest.Service.Timeout)*time.Second, false)
	}
}

// queueConn fills a record for a connection.
func (w *Worker) queueConn(k *table.ConnKey, real netip.AddrPort, dest *ipvs.Dest, state uint8, timeout time.Duration) {
	r := w.sync.out.Reserve()
	if r == nil {
		return
	}
	r.SetAddrs(k.Client.Addr(), k.Virtual.Addr(), real.Addr())
	r.Protocol = k.Protocol
	r.Flags = fwdFlags(dest)
	if state != tcpEstablished {
		r.Flags |= syncproto.FlagInactive
	}
	r.State = wireState(k.Protocol, state)
	r.CPort, r.VPort, r.DPort = k.Client.Port(), k.Virtual.Port(), real.Port()
	r.FWMark = 0
	r.Timeout = uint32(timeout / time.Second)
	r.Dest = 0
	r.PE, r.PEDataLen = 0, 0
	r.Queued, r.Used = w.now, 0
	w.sync.out.Commit()
	w.local.Sync.Queued++
}

// syncWalk re-sends a slice of the idle templates (see the file comment).
func (w *Worker) syncWalk() {
	refresh := int64(w.v.syncRefresh)
	if refresh <= 0 {
		return
	}
	elapsed := w.now - w.sync.walkAt
	if elapsed < walkEvery {
		return
	}
	w.sync.walkAt = w.now
	w.sync.walkTokens = min(w.sync.walkTokens+elapsed*walkRate, walkBurst*int64(time.Second))
	if w.sync.walkTokens < int64(time.Second) || w.sync.out.Len() > w.sync.out.Cap()/2 {
		return
	}
	// The whole table every quarter period (syncpolicy.WalkParts).
	capacity := int64(w.tmpl.Stats().Capacity)
	slots := int(min(capacity*elapsed*syncpolicy.WalkParts/refresh+1, walkMaxSlots))
	if w.sync.walkFn == nil {
		w.sync.walkFn = w.walkTemplate
	}
	w.sync.walkFrom = w.tmpl.Walk(w.sync.walkFrom, slots, w.now, w.sync.walkFn)
}

// walkTemplate is the walk's visit of one live template: it reports false
// to stop the walk there.
func (w *Worker) walkTemplate(ref table.Ref) bool {
	v, ok := w.tmpl.SyncView(ref, nil)
	if !ok {
		return true
	}
	e := syncpolicy.Entry{Template: true, Timeout: v.Timeout, Mark: v.Mark}
	send, mark := w.v.syncPol.Due(&e, w.now)
	if !send {
		return true
	}
	dest := w.v.snap.TemplateDest(ipvs.DestID(v.Dest))
	if dest == nil {
		return true // invalid: rescheduled at its next use
	}
	if w.sync.walkTokens < int64(time.Second) || w.sync.out.Len() > w.sync.out.Cap()/2 {
		return false
	}
	w.sync.walkTokens -= int64(time.Second)
	w.tmpl.SwapMark(ref, mark)
	w.queueTemplate(ref, dest)
	w.local.Sync.Walked++
	return true
}

// applySync enters up to syncApplyBudget received entries.
func (w *Worker) applySync() {
	if w.sync.applyFn == nil {
		w.sync.applyFn = w.applyRecord
	}
	w.sync.in.Drain(syncApplyBudget, w.sync.applyFn)
}

// applyRecord enters one received entry (ip_vs_proc_conn), resolved to a
// destination by the receiver.
func (w *Worker) applyRecord(r *syncring.Record) {
	if w.v.snap == nil {
		w.local.Sync.StaleDest++
		return
	}
	dest := w.v.snap.Dest(ipvs.DestID(r.Dest))
	if dest == nil {
		w.local.Sync.StaleDest++
		return
	}
	id := table.DestID(dest.ID)
	c, v, d := r.Addrs()
	if r.Flags&syncproto.FlagTemplate == 0 {
		w.applyConn(r, dest, c, v, d)
		return
	}
	// A version 0 entry has no timeout: the kernel gives a template 3
	// minutes; xvs knows the service's persistence timeout.
	timeout := time.Duration(r.Timeout) * time.Second
	if r.Timeout == 0 {
		timeout = time.Duration(dest.Service.Timeout) * time.Second
	}
	remaining := timeout
	if r.Used != 0 {
		remaining = time.Duration(r.Used + int64(timeout) - w.now) // the master's expiry
		if remaining <= 0 {
			w.local.Sync.Expired++
			return
		}
		remaining = min(remaining, timeout)
	}
	k := table.TemplateKey{Protocol: r.Protocol, Client: c, Virtual: netip.AddrPortFrom(v, r.VPort),
		PE: uint8(r.PE), PEData: r.PEData[:r.PEDataLen]}
	h := k.Hash(w.seed)
	ref, old, res := w.tmpl.Sync(&k, h, id, timeout, remaining, w.now)
	w.local.Sync.Applied[res]++
	switch res {
	case table.SyncInserted:
		dest.Stats.Worker(w.id).AddPersist(1)
	case table.SyncMoved:
		if st := w.v.snap.DestStats(ipvs.DestID(old)); st != nil {
			st.Worker(w.id).AddPersist(-1)
		}
		dest.Stats.Worker(w.id).AddPersist(1)
	case table.SyncRefreshed:
	default:
		return
	}
	// Its master just synced it: neither the walk nor a packet re-sends it
	// within the refresh period (after a failover, the next refresh comes
	// from this worker).
	if !w.v.syncCount {
		w.tmpl.SwapMark(ref, w.v.syncPol.Synced(timeout, w.now))
	}
	w.setShared(h, id, remaining)
	if r.Queued != 0 {
		w.local.Sync.Lag.add(time.Duration(w.now - r.Queued))
	}
}

// applyConn enters a received connection.
func (w *Worker) applyConn(r *syncring.Record, dest *ipvs.Dest, c, v, d netip.Addr) {
	state := pipelineState(r.Protocol, r.State)
	timeout := time.Duration(r.Timeout) * time.Second
	if r.Timeout == 0 {
		timeout = w.timeout(state) // version 0: the protocol's timeout for the state
	}
	k := table.ConnKey{Protocol: r.Protocol, Client: netip.AddrPortFrom(c, r.CPort), Virtual: netip.AddrPortFrom(v, r.VPort)}
	ref, prev, res := w.conns.Sync(&k, netip.AddrPortFrom(d, r.DPort), table.DestID(dest.ID), state, timeout, w.now)
	w.local.Sync.Applied[res]++
	st := dest.Stats.Worker(w.id)
	switch res {
	case table.SyncInserted, table.SyncMoved:
		if state == tcpEstablished {
			st.AddActive(1)
		} else {
			st.AddInactive(1)
		}
	case table.SyncRefreshed:
		if (prev == tcpEstablished) != (state == tcpEstablished) {
			if state == tcpEstablished {
				st.AddActive(1)
				st.AddInactive(-1)
			} else {
				st.AddActive(-1)
				st.AddInactive(1)
			}
		}
	default:
		return
	}
	if dest.Fwd == ipvs.Masq {
		// The replies of a received NAT connection arrive on any worker,
		// as those of one made here.
		w.publishConn(r.Protocol, netip.AddrPortFrom(d, r.DPort), k.Client, k.Virtual, dest, timeout)
	}
	// As ip_vs_proc_conn: the packet count at the threshold, the state as
	// synced, so that a backup that becomes master syncs on the kernel's
	// schedule.
	w.conns.SetSync(ref, table.ConnSync{Mark: syncpolicy.InitialMark(w.now), InPkts: uint32(w.v.syncThreshold), OldState: state})
}
