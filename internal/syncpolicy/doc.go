// Package syncpolicy decides when a connection or persistence template is
// synchronised to the backups, as the kernel's ip_vs_sync_conn_needed does,
// and holds the IPVS synchronisation switches (the sync_* sysctls): it
// registers them with the registry of IPVS switches (package sysctl) with
// the kernel's names, ranges and meaning and xvs's defaults
// ([VersionSwitch] …), and reads them from a configuration's values
// ([FromValues]) into [Switches].
//
// # The decision
//
// [Switches.Compile] turns the switches into a [Policy]; [Policy.Needed] is
// a pure function of the policy, the entry's facts and sync state
// ([Entry]), the packet count and the time the caller already has (the
// batch's monotonic clock). It costs a few comparisons, reads no clock,
// takes no lock and never allocates, so a worker can call it for every
// packet.
//
// [Policy.Due] is xvs's own periodic decision, which the kernel lacks: a
// live template nothing has synced for 3/4 of the refresh period is re-sent
// by the worker's walk, so that a backup that starts late learns it.
//
// # Per-entry state the data path keeps
//
//   - Mark (uint32): the kernel's sync_endtime: the expiry the entry had
//     when it was last synced, in ticks (~4.2 ms), with the retry count in
//     its two low bits. Set it with [InitialMark] when the entry is created
//     and to Needed's result when Needed returns true.
//   - OldState (TCP and SCTP connections only): the state at the last
//     sync, so that a state change forces a sync.
//   - the incoming packet count (in_pkts): a connection's packets, or for
//     a template the packets of the connections it controls (under
//     one-packet scheduling, every packet that used it). Needed reads it
//     only when sync_threshold's period is not 0 (connections) or when both
//     period and sync_refresh_period are 0; with xvs's defaults a template
//     does not need it.
//
// # Calling it as ip_vs_sync_conn does
//
// For each incoming packet on a master: a one-packet (OPS) connection is
// never synced (its template is, below); another connection is checked with
// pkts = its incremented packet count. Then the controlling template, if
// any, is checked with pkts = its own incremented count. A backup that
// inserts a received entry sets its packet count to the threshold and its
// OldState to its state, as ip_vs_proc_conn does.
//
// # Defaults
//
// [KernelDefaults] are the kernel's. [Defaults], which xvs uses, differ in
// sync_refresh_period (10 s instead of 0) and sync_retries (1 instead of 0);
// see Defaults for why. Every switch keeps the kernel's meaning, so a
// director configured with the kernel's values behaves as a kernel one.
package syncpolicy
