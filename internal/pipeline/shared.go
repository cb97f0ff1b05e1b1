package pipeline

// The shared index: cross-worker persistence. Each worker keeps its own
// template table; the shared index (table.Shared) maps a template key's hash
// to the destination some worker chose, so that a call whose packets land on
// several workers (RSS hashes addresses and ports, not Call-IDs) still
// reaches one real server. A worker reads it on a miss in its own table,
// publishes the destination of every template it creates, and republishes
// a template's expiry a few times per timeout while it uses the template.

import (
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/table"
)

const (
	// sharedRefreshFraction: a worker republishes a template's expiry to the
	// shared index when a quarter of the persistence timeout has passed since
	// it last did, so the shared line is written ~4 times per timeout, not per
	// packet, and never lapses while any worker uses the template.
	sharedRefreshFraction = 4
	// refreshFilterSize is the number of slots of the worker's direct-mapped
	// "published recently" filter for shared-index refreshes.
	refreshFilterSize = 1 << 14
)

// sharedDest looks s's template key up in the shared index: found reports
// that another worker published it. Its destination comes back with
// ReasonSharedHit; when it is no longer valid anywhere, the packet is
// scheduled afresh and the entry replaced, converging with any other worker
// doing the same (ReasonScheduled; a nil destination when none is
// available). The worker must have a shared index.
func (w *Worker) sharedDest(s *slot, d *Decision, timeout time.Duration) (dest *ipvs.Dest, r Reason, found bool) {
	id, ok := w.shared.Get(s.h, w.now)
	if !ok {
		return nil, 0, false
	}
	snap := w.v.snap
	if dest = snap.TemplateDest(ipvs.DestID(id)); dest != nil {
		return dest, ReasonSharedHit, true
	}
	if nd := s.svc.Schedule(w.id, w.schedInput(s, d)); nd != nil {
		won, _ := w.shared.Replace(s.h, id, table.DestID(nd.ID), w.now+int64(timeout), w.now)
		if dest = snap.TemplateDest(ipvs.DestID(won)); dest == nil {
			dest = nd
		}
	}
	return dest, ReasonScheduled, true
}

// claimShared publishes a newly scheduled destination for hash h unless
// another worker published one first: then other is set and that worker's
// destination returned, so that every worker sends the call to one real
// server. A full index is counted (Counters.SharedFull) and dest kept. The
// worker must have a shared index.
func (w *Worker) claimShared(h uint64, dest *ipvs.Dest, timeout time.Duration) (_ *ipvs.Dest, other bool) {
	won, _, ok := w.shared.InsertIfAbsent(h, table.DestID(dest.ID), w.now+int64(timeout), w.now)
	if !ok {
		w.local.SharedFull++
		return dest, false
	}
	if won != table.DestID(dest.ID) {
		if wd := w.v.snap.TemplateDest(ipvs.DestID(won)); wd != nil {
			return wd, true
		}
	}
	return dest, false
}

// setShared makes id the destination of hash h in the shared index,
// replacing another worker's (a real server's own request re-homes its
// call, see serverOut).
func (w *Worker) setShared(h uint64, id table.DestID, timeout time.Duration) {
	if w.shared == nil {
		return
	}
	if old, live := w.shared.Get(h, w.now); live && old != id {
		w.shared.Replace(h, old, id, w.now+int64(timeout), w.now)
	} else if !live {
		w.shared.InsertIfAbsent(h, id, w.now+int64(timeout), w.now)
	}
}

// newTemplate enters s's template key in this worker's table, pointing at
// dest, counts it in dest's PersistConn gauge, and notes that the shared
// index was just written for it (the callers publish it: claimShared,
// setShared). It returns the template, or the zero Ref when the table kept
// none (full of live dialogs: counted by the table).
func (w *Worker) newTemplate(s *slot, dest *ipvs.Dest, timeout time.Duration) table.Ref {
	ref, res := w.tmpl.InsertHashed(&s.key, s.h, table.DestID(dest.ID), timeout, w.now)
	switch res {
	case table.Inserted:
		dest.Stats.Worker(w.id).AddPersist(1)
		w.markShared(s.h, timeout)
		return ref
	case table.InsertExists:
		return ref // cannot happen after a miss on the same worker; keep going
	}
	return table.Ref{}
}

// refreshShared republishes a template's expiry to the shared index at most
// sharedRefreshFraction times per timeout (see markShared).
func (w *Worker) refreshShared(h uint64, id table.DestID, timeout time.Duration) {
	if w.shared == nil {
		return
	}
	tag := h ^ uint64(w.now/refreshPeriod(timeout))
	slot := &w.refr[h&(refreshFilterSize-1)]
	if *slot == tag {
		return
	}
	*slot = tag
	if !w.shared.Refresh(h, w.now+int64(timeout), w.now) {
		// The shared entry lapsed (or was never published): publish ours.
		w.shared.InsertIfAbsent(h, id, w.now+int64(timeout), w.now)
	}
}

// markShared records in the refresh filter that h was published now.
func (w *Worker) markShared(h uint64, timeout time.Duration) {
	if w.shared == nil {
		return
	}
	w.refr[h&(refreshFilterSize-1)] = h ^ uint64(w.now/refreshPeriod(timeout))
}

// refreshPeriod is how often a template's shared entry is republished.
func refreshPeriod(timeout time.Duration) int64 {
	return max(int64(timeout)/sharedRefreshFraction, 1)
}
