package syncpolicy

import (
	"time"

	"github.com/xvs-lb/xvs/internal/syncproto"
)

// Ticks are the policy's clock: monotonic nanoseconds >> TickShift, about
// 4.2 ms (the kernel counts jiffies of 1 to 10 ms). A uint32 of ticks wraps
// after 208 days, and differences stay exact up to 104 days, beyond the
// longest IPVS timeout (31 days). Like the kernel's sync_endtime, a Mark
// keeps the retry count in its two low bits.
const TickShift = 22

// Ticks converts monotonic nanoseconds (or a duration) to ticks.
func Ticks(ns int64) uint32 { return uint32(uint64(ns) >> TickShift) }

// Policy is Switches compiled for the per-packet decision. It is a value
// the caller copies into each worker; it never changes after Compile.
type Policy struct {
	threshold, period uint32
	refresh           uint32 // ticks
	retries           uint32
	persistMode       bool
	minRefresh        uint32 // 10 s in ticks: the floor of the half-timeout cap
}

// Compile prepares s for Needed. s must be valid (Switches.Validate).
func (s Switches) Compile() Policy {
	return Policy{
		threshold:   uint32(s.Threshold),
		period:      uint32(s.Period),
		refresh:     Ticks(int64(s.RefreshPeriod) * int64(time.Second)),
		retries:     uint32(s.Retries),
		persistMode: s.PersistMode != 0,
		minRefresh:  Ticks(int64(10 * time.Second)),
	}
}

// Entry is what Needed reads of a connection or template. The caller keeps
// Mark and OldState in its entry: they are the only per-entry sync state
// (8 bytes with the packet counter, see the package documentation).
type Entry struct {
	Template bool  // a persistence template
	Protocol uint8 // IPPROTO_*
	// State is the entry's current state; OldState the state it had when
	// it was last synced (both 0 for UDP and templates).
	State, OldState uint16
	// InPersistence reports a connection controlled by a template
	// (sync_persist_mode skips those).
	InPersistence bool
	// Timeout is the entry's current timeout (a template's persistence
	// timeout; a connection's timeout for its state).
	Timeout time.Duration
	// Mark is what Needed returned when it last said true, or InitialMark
	// at the entry's creation.
	Mark uint32
}

// InitialMark is the Mark of an entry created at now (ns), as
// ip_vs_conn_new sets sync_endtime.
func InitialMark(now int64) uint32 { return Ticks(now) &^ 3 }

// TCP and SCTP states in which a connection is synced at all, and the
// state whose first entry does not force a sync.
const (
	tcpSyncStates = 1<<syncproto.TCPEstablished | 1<<syncproto.TCPFinWait | 1<<syncproto.TCPClose |
		1<<syncproto.TCPCloseWait | 1<<syncproto.TCPTimeWait
	sctpSyncStates = 1<<syncproto.SCTPEstablished | 1<<syncproto.SCTPShutdownSent |
		1<<syncproto.SCTPShutdownReceived | 1<<syncproto.SCTPShutdownAckSent | 1<<syncproto.SCTPClosed
)

// Needed is the kernel's ip_vs_sync_conn_needed: whether the packet that
// just passed e, its pkts-th incoming packet, makes e due for a sync at now
// (monotonic ns). When it returns true the caller stores the returned mark
// in e.Mark, sets e.OldState = e.State and queues the entry; when false,
// mark is e.Mark. It reads no clock, takes no lock and does not allocate.
//
// The caller handles what ip_vs_sync_conn does around it: a one-packet
// (OPS) connection is never synced, and after a connection the template
// that controls it is considered too, with pkts its own incremented
// counter.
func (p *Policy) Needed(e *Entry, pkts uint32, now int64) (send bool, mark uint32) {
	orig := e.Mark
	t := Ticks(now)
	to := Ticks(int64(e.Timeout))
	n := (t + to) &^ 3
	switch {
	case e.Template:
	case p.persistMode && e.InPersistence:
		return false, orig
	case e.Protocol == syncproto.ProtoTCP:
		if e.State >= 32 || 1<<e.State&tcpSyncStates == 0 {
			return false, orig
		}
		if e.State != e.OldState && e.State != syncproto.TCPEstablished {
			return true, n
		}
	case e.Protocol == syncproto.ProtoSCTP:
		if e.State >= 32 || 1<<e.State&sctpSyncStates == 0 {
			return false, orig
		}
		if e.State != e.OldState && e.State != syncproto.SCTPEstablished {
			return true, n
		}
	}
	if p.refresh > 0 {
		diff := int32(n - orig)
		if diff < 0 {
			diff = -diff
		}
		if uint32(diff) < min(p.refresh, max(to>>1, p.minRefresh)) {
			retries := orig & 3
			if retries >= p.retries {
				return false, orig
			}
			// Not before refresh/8 after the last sync (orig - timeout).
			if int32(t-(orig-to+p.refresh>>3)) < 0 {
				return false, orig
			}
			n |= retries + 1
		}
	}
	if p.period > 0 {
		if !e.Template && pkts%p.period != p.threshold {
			return false, orig
		}
	} else if p.refresh == 0 && pkts != p.threshold {
		return false, orig
	}
	// The kernel swaps sync_endtime with cmpxchg and reports true when it
	// won (or the state changed): an entry has one writer here, which
	// always wins.
	return true, n
}

// Refresh returns sync_refresh_period as a duration (0: no time check).
func (p *Policy) Refresh() time.Duration { return time.Duration(p.refresh) << TickShift }

// CountsTemplates reports whether Needed reads a template's packet count:
// only with sync_threshold's period and sync_refresh_period both 0 (then a
// template is synced once, at its threshold-th packet). Otherwise a
// template's count is never read and need not be kept.
func (p *Policy) CountsTemplates() bool { return p.period == 0 && p.refresh == 0 }

// WalkParts is how often per refresh period a caller of Due must visit
// every live template: Due re-sends a template not synced for
// (WalkParts-1)/WalkParts of the period, so that a template is re-sent at
// most a refresh period after its last sync.
const WalkParts = 4

// Due is the decision of xvs's periodic walk over the live templates,
// which the kernel does not have: with a refresh period, a template that
// has not been synced for 3/4 of it — an idle call, which sends no packet
// to trigger Needed — is due, so that with every template visited each
// quarter period (WalkParts) a backup that started (or restarted) after a
// template's creation learns it within a refresh period. e.Mark is its
// mark; when Due returns true the caller stores the returned mark (the
// entry counts as synced at now, its retries spent) and queues the entry.
func (p *Policy) Due(e *Entry, now int64) (send bool, mark uint32) {
	if p.refresh == 0 {
		return false, e.Mark
	}
	t, to := Ticks(now), Ticks(int64(e.Timeout))
	last := e.Mark&^3 - to // when it was last synced
	if int32(t-last) < int32(p.refresh-p.refresh/WalkParts) {
		return false, e.Mark
	}
	return true, p.Synced(e.Timeout, now)
}

// Synced returns the mark of an entry counted as synced at now with its
// retries spent: for a template a worker adopts from another worker's (the
// other one synced it), and for what Due sends.
func (p *Policy) Synced(timeout time.Duration, now int64) uint32 {
	return (Ticks(now)+Ticks(int64(timeout)))&^3 | p.retries
}
