// Package sched implements the IPVS schedulers: rr, wrr, lc, wlc, sh, dh,
// mh (Maglev), sed, nq, fo, ovf, twos and none, with the -b scheduler flags
// that apply to them (sh-fallback, sh-port, mh-fallback, mh-port).
//
// # Model
//
// A [Scheduler] is compiled once per virtual service and configuration
// snapshot from the service's destinations in IPVS list order ([Dest], newest
// first, because IPVS prepends new destinations; this decides where rr starts
// and who wins a wlc tie). It is immutable and shared by all workers. Each
// worker owns a small [State] (round-robin position, wrr current weight, the
// twos random generator, overload hysteresis) so scheduling takes no lock.
// [Scheduler.Schedule] returns an index into the destination list given to
// [Compile], or -1 when no destination is available; it allocates nothing.
//
// Live load is read through [LoadReader] once per considered destination;
// the caller sums its per-worker gauges there. Schedulers that need no load
// (rr, wrr, sh, dh, mh, fo without thresholds) never call it.
//
// # Faithful to the kernel
//
// Every scheduler skips destinations with weight 0 (quiesced) and
// overloaded ones. A destination is overloaded when its upper threshold is
// set and its connection count reaches it; it stays overloaded until the
// count drops below the lower threshold, or below 3/4 of the upper one when
// the lower threshold is 0 (ip_vs_conn.c). Overhead is (active<<8)+inactive
// (ip_vs_dest_conn_overhead); wlc, sed, nq and twos compare overhead/weight by
// cross-multiplying and keep the first minimum; fo and ovf keep the first
// maximum weight. wrr is a port of ip_vs_wrr.c (gcd-stepped current weight).
//
// A worker's State survives reconfiguration as the kernel's scheduler state
// does: a new Scheduler compiled for the same service takes it over
// (identifying destinations by [Dest.ID]): rr keeps its position across any
// edit and moves back to the previous server only when the current one is
// deleted (ip_vs_rr_del_dest); wrr restarts its round at the list head,
// keeping its current weight where it fits, when a destination is added,
// deleted or updated (ip_vs_wrr_dest_changed), and keeps everything across
// other changes; overload marks stay with their destination.
// sh and dh use a 256-bucket weight-tiled table as ip_vs_sh.c / ip_vs_dh.c.
//
// # Where xvs deliberately differs
//
//   - One-packet scheduling (-o): IPVS counts only connections, which are
//     about zero under -o, so lc/wlc/sed/nq/ovf/twos see equal servers and
//     the first one in the list (the most recently added) receives every new
//     Call-ID. With [Spec.OnePacket] set, xvs counts live persistence
//     templates (PersistConn) as active connections, for overhead and for
//     thresholds, so these schedulers spread new calls again.
//   - Persistence-engine data: [Input.PEHash] carries a hash of the PE data
//     (the SIP Call-ID) when there is one. mh and sh hash it instead of the
//     client address, so any number of balancers with the same configuration
//     send a Call-ID to the same real server without talking to each other.
//     dh keeps hashing the destination address: it exists for cache
//     locality by destination, and every packet of a VIP service has the same
//     destination, so PE data would only turn it into sh. Use [HashPEData] to
//     compute the hash: it is unseeded and stable across processes.
//   - Maglev (mh): the lookup table has [MaglevTableSize] = 65537 entries
//     (the kernel's default is 4093) so that weights and balance are resolved
//     to 1/65537 and the disruption on change stays near the Maglev minimum.
//     The permutation of each destination comes from two independent hashes
//     of its address:port, never its position or slot, and destinations are
//     populated in address order, so balancers build identical tables whatever
//     the order in which destinations were added. Entries are proportional to
//     weight; weight-0 destinations get none. With mh-fallback an unavailable
//     (overloaded) choice walks forward to the next eligible entry.
//   - twos draws from a per-worker xorshift generator, not get_random_u32,
//     and its weighted picks are exactly proportional to weight (the kernel
//     draws from [0, total] and so gives the first dest one extra share).
package sched
