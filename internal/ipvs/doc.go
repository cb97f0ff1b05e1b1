// Package ipvs is the xvs virtual-server model: the IPVS configuration of
// virtual services and their real servers (destinations), its validation
// with ipvsadm's semantics and messages, the immutable [Snapshot] the data
// plane reads, the per-service and per-destination counters, and IPVS's
// rate estimator over them ([Estimator], ip_vs_est.c's arithmetic, for
// ipvsadm -L --rate).
//
// # Control plane and data plane
//
// A [Config] is owned by the control plane. Its commands mirror ipvsadm:
// AddService (-A), EditService (-E), DelService (-D), Clear (-C), AddDest
// (-a), EditDest (-e), DelDest (-d), ZeroAll/ZeroService (-Z), SetTimeouts
// (--set) and the expire_nodest_conn / expire_quiescent_template switches.
// A command is validated completely before anything changes, so a failed
// command changes nothing; errors wrap exported sentinels whose messages are
// ipvsadm's ("Service already exists", "No such destination", …).
//
// [Config.Snapshot] compiles an immutable [Snapshot], which the caller
// publishes with an atomic.Pointer[Snapshot]. Workers look services up with
// [Snapshot.Lookup] (exact port first, then the port-0 service of the
// address), schedule with [Service.Schedule] and validate a stored [DestID]
// with [Snapshot.Dest] or [Snapshot.TemplateDest], all without allocation or
// locks. The only mutable parts a snapshot reaches are per-worker slots
// (scheduler state, counters), each written by its own worker only.
//
// # Identity across reconfiguration
//
// A destination's [DestID] is its slot (below [MaxDests]) plus a generation,
// so a template can store it in 4 bytes and the data plane can check it in
// O(1). DestIDs, counters and scheduler state of services and destinations
// that a command does not touch are kept by every new snapshot; an
// unchanged service is not even recompiled. As in IPVS, a deleted
// destination waits in a trash list for [DestTrashPeriod]; adding the same
// address:port to the same service within that time revives it with its
// old DestID and counters, so the templates that still point to it become
// valid again. After the period its slot is reused with a new generation.
//
// # Counters
//
// Every [Stats] holds one cache-line-padded [Counter] per worker (at most
// [MaxWorkers]). A worker writes only its own Counter, with atomic load and
// store of its own slot (no read-modify-write, no lock); readers sum the
// slots. Conns/packets/bytes are IPVS's cumulative counters; active,
// inactive and persistent-template counts are live gauges that the
// schedulers read (sched.LoadReader). Zeroing (-Z) records a baseline that
// readers subtract, because the control plane must not write workers' slots.
//
// # Where xvs differs from IPVS
//
//   - PEStrict (xvs extension): drop packets the persistence engine cannot
//     key, as current kernels do. The default (false) falls back to normal
//     persistence, which the data plane counts.
//   - A destination must have the service's address family (IPVS allows
//     mixed families for tunnels; xvs does not forward tunnels yet).
//   - NextHop (xvs extension) carries the MAC of a direct-routing
//     destination, from configuration or neighbour resolution.
//   - Services are listed in the order they were added, not hash order.
package ipvs
