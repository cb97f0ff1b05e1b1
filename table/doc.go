// Package table holds the connection and persistence-template tables of the
// data plane: fixed capacity chosen at construction, expiry on lookup plus an
// incremental sweep, a flood-resistant replacement policy, per-worker
// ownership, and a lock-free index (Shared) that keeps persistence across
// workers.
//
// # Model
//
// Templates maps an IPVS persistence template key — protocol, client
// address AND the service mask (client port 0), virtual address and port,
// persistence-engine id and pe data (the SIP Call-ID, exact bytes) — to a
// DestID, with the template's timeout (restarted by Touch), its state (NONE
// or ASSURED) and a control count (Hold/Release: a held template never
// expires; at its expiry it is re-armed for HoldRearm, as IPVS does). Conns
// maps a connection (protocol, client addr:port, virtual addr:port) to the
// real server it was sent to, a protocol state and timeout, and an optional
// controlling template Ref; it is indexed from the reply direction too (real
// addr:port → client addr:port) for NAT.
//
// For connection synchronisation (sync.go) an entry keeps the sync state
// a master needs (a template's mark, a connection's mark, packet count and
// state at the last sync), and a backup enters received entries with
// Templates.Sync and Conns.Sync, which mark them as synced.
//
// A Ref (slot and generation) names an entry stably: once the entry is gone
// the generation has moved on and every method reports the stale Ref instead
// of touching the slot's next occupant.
//
// # Memory
//
// Nothing grows after construction; MemoryBytes reports the exact total.
//
//   - Template: 96-byte entry + 9 bytes of LRU links and segment + 5⅓ bytes of
//     index (4-byte slots at load ≤ 3/4) + the key's tail in the arena. The
//     entry holds the hot fields and the first 54 key bytes (client and
//     virtual address, 8 bytes IPv4 or 32 IPv6, then the pe data), so an
//     IPv4 key with a Call-ID of up to 46 bytes never leaves it; longer keys
//     keep the rest in 16-byte size classes carved from 4 KiB pages of a
//     fixed budget (default 8 bytes per template plus 15 pages). For IPv4
//     SIP templates with realistic Call-IDs (mean 37 bytes; one in four
//     spills a tail) that is 119 bytes per template against 62 raw bytes —
//     key: family, protocol, vaddr, vport, caddr, pe id, Call-ID; value:
//     DestID and an 8-byte expiry — a ratio of 1.91
//     (TestTemplateMemoryPerEntry). IPv6 templates, with ArenaBytes at 32
//     per template, take 144 bytes against 86 raw, 1.66
//     (TestTemplateMemoryIPv6).
//   - Connection: 104-byte entry (96 bytes of connection, 8 of the sync
//     state a master keeps) + 9 bytes of links + 10⅔ bytes of index (two
//     directions) = 124 bytes, IPv4 or IPv6.
//   - Shared: 48 bytes per key of capacity (24-byte slots, at most half full).
//
// # Lookup cost and prefetching
//
// A lookup hit reads the index line at the key's home slot (an 8-bit tag per
// slot skips 255 of 256 foreign entries), then the entry, whose stored 32-bit
// hash and inline key decide the match; only a spilled tail costs a third
// access. Touch and SwapMark then write the same entry. With a million
// templates index and entries are far beyond the caches, so each of the two
// reads is a cache miss, and the second depends on the first. The big arrays
// are advised onto transparent huge pages (Linux), so the misses do not add
// page walks.
//
// A worker that handles a batch of frames hides those misses: it hashes every
// key of the batch (TemplateKey.Hash, ConnKey.Hash) and calls Prefetch on
// each, then (templates) PrefetchEntry (which reads the now cached index line
// and prefetches the candidate entry's two lines) a few keys ahead of the
// LookupHashed calls, so that the entry requests are spread over the work
// instead of issued all at once (the pipeline prefetches eight frames ahead).
// The misses of the whole batch then overlap (BenchmarkTemplateLookupHit,
// batched-prefetch2). Prefetch is a PREFETCHT0 instruction on amd64 and a
// no-op elsewhere.
//
// # Replacement policy and overflow
//
// Both tables use a segmented LRU with lazy promotion. A new entry enters
// the probation segment. A use (Touch, SetState) only sets a mark on the
// entry; when the table is full the insert first reclaims an expired entry
// at the LRU end of either segment, then scans probation from its LRU end,
// promoting marked entries to the protected segment and evicting the first
// unmarked one. Only when probation is empty does it consider the protected
// segment, giving marked entries a second chance and evicting the LRU one
// only if it has been idle for at least MinProtectedIdle. Otherwise the
// insert is refused with InsertOverflow and counted: the pipeline then
// forwards the packet without a template (or connection entry). So a flood of
// new Call-IDs, each seen once, only ever displaces other never-reused
// entries, and a live dialog — which sends more than one datagram — keeps its
// template (TestTemplateFlood). The same happens when the key arena, rather
// than the entry array, is full: up to makeRoomTries entries are evicted by
// the same policy to free a slot of the right size class.
//
// Expired entries are removed when a lookup finds them, when an insert makes
// room, and by Sweep(now, budget), which the worker calls once per batch to
// visit a bounded number of slots round-robin (a share of Capacity that
// follows the time since its last batch: each table once per
// pipeline.DefaultSweepPeriod).
//
// # Concurrency
//
// A Templates or Conns table belongs to one worker goroutine: every method,
// including Stats and AppendInfo, must be called from it (the worker
// publishes Stats to metrics once per batch; listings and snapshots are
// requested from the worker). No method locks, allocates (except AppendInfo),
// reads the clock or logs: now is the caller's monotonic nanoseconds, read
// once per batch (in replay, the capture timestamp). The OnRemove hook runs on
// the owner goroutine, synchronously.
//
// Shared is safe for concurrent use by all workers; see its documentation for
// the memory-ordering argument. The intended flow on a local template miss:
// h := key.Hash(seed); Shared.Get(h); on a miss schedule and
// Shared.InsertIfAbsent(h, dest, …), using the returned winner; if the
// destination is invalid, reschedule and Shared.Replace; refresh the shared
// expiry only when the local template is refreshed and the last shared
// refresh is older than a quarter of the timeout.
package table
