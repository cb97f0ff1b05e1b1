// Package afxdp is the AF_XDP data plane: on every served interface an XDP
// filter program that steers the balancer's traffic to one AF_XDP socket per
// RX queue, and those sockets as dataplane.Queues for the per-queue workers
// (queue i holding RX queue i of every interface). It is the only
// package that touches asavie/xdp, cilium/ebpf and AF_XDP system calls; it
// registers itself as the "afxdp" backend.
//
// It depends on package dataplane (the I/O seam: Options, Filter, Batch,
// Queue) and package packet, not on xvs's engine, so it builds and tests
// alone and can be used outside this module: Open a Backend, Update it with
// the Filter of what to steer, and run a loop of Receive, rewrite and
// Transmit on each of its Queues (xvs's is internal/daemon's Runner).
//
// # Filter
//
// The XDP program is built at run time with cilium/ebpf's asm (no clang, no
// object files). It parses Ethernet, up to two VLAN tags (802.1ad/802.1Q),
// IPv4 (with options) or IPv6 (skipping up to two hop-by-hop, routing or
// destination-options headers) and looks the packet up in a hash map per
// family: {UDP/TCP, VIP, port}, then {proto, VIP, 0} for port-0 services,
// then {proto, source, source port} for NAT real servers. An IP fragment
// (IPv4 MF/offset, IPv6 fragment header) to a VIP address matches {VIP}
// alone; a first fragment (offset 0) otherwise goes through the port
// lookups, so a NAT real server's fragmented reply starts by its source
// port; a later fragment, which has no ports, matches the per-family set
// of NAT real-server addresses (every address of Filter.RealServers), so
// the rest of that reply follows — and so do later fragments of anything
// else such an address sends through the balancer, which the worker cannot
// hand back: a frame redirected to AF_XDP never reaches the kernel. ICMPv4
// type 3 code 4 ("fragmentation needed") and ICMPv6 type 2 ("packet too
// big") to a VIP address are steered too (path-MTU discovery for balanced
// flows; the worker finds the owner from the quoted header). A match is
// bpf_redirect_map(xsks, rx_queue_index, XDP_PASS); everything else — ARP,
// other ICMP (echo, unreachable, neighbour discovery), SSH, the host's own
// traffic — is XDP_PASS untouched. All keys live in one hash map per
// family, tagged by kind (service, real server, VIP address, real-server
// address). Backend.Update rewrites the maps in place (additions
// before removals) with the program attached. A per-CPU array counts
// steered and passed frames (Backend.FilterStats). The program is attached
// through a BPF link, which the kernel removes when the process dies, so a
// crash leaves nothing behind; a program attached the old way (netlink,
// e.g. by asavie/xdp's Attach) is detached in both modes and replaced.
//
// # Modes
//
// Options.XDPMode dataplane.XDPAuto (the zero value) tries native (driver)
// XDP, then generic (skb); Options.ZeroCopy dataplane.ZeroCopyAuto binds
// native sockets with XDP_ZEROCOPY and falls back to XDP_COPY. Backend.Mode
// reports the outcome as a dataplane.Mode: "afxdp-native-zerocopy",
// "afxdp-native-copy" or "afxdp-generic". Failures come back as sentinels:
// ErrPermission ("AF_XDP needs root or CAP_NET_ADMIN+CAP_BPF"),
// ErrNoInterface, ErrMTU, ErrNoNativeXDP, ErrNoZeroCopy, ErrBusy (another
// process holds the hook through a link), ErrNotSupported.
//
// # Several interfaces
//
// Options.Ifaces serves several interfaces, the legs of a director. Each
// gets its own program (the same filter: a service's packets, its NAT
// replies, fragments and ICMP errors may arrive on any leg; Check and Update
// hold for all of them, an update that fails on one is undone on all) and
// its own attach mode. Queue i has a socket on each interface with an RX
// queue i; the first registers the queue's UMEM, the others share it with
// XDP_SHARED_UMEM naming another device (Linux 5.10), each with its own fill
// and completion rings, so a frame received on one leg is put on another
// leg's TX ring as it is: zero copy (TestTwoLegs; on veth in native and
// generic mode). A socket the kernel will not let share (another driver's
// zero-copy, an older kernel) gets a UMEM of its own: frames crossing to it
// are copied into one of its free frames, counted in
// QueueStats.CrossPortCopies, and the original goes back to its own fill
// ring. A batch handle carries the port of the socket a frame came from
// (whose UMEM it is in) in its top byte; Batch.Port says where it leaves.
// Receive reads every socket's RX ring, taking turns to read first;
// Transmit groups nothing: each frame goes on its port's TX ring and each
// socket with new descriptors is kicked once.
//
// # Rings and UMEM
//
// Each queue has a UMEM of 2×RingSize frames per socket (8192 × 2048 bytes
// = 16 MiB per interface by default; 4096-byte frames when the MTU needs
// them, up to MTU 3818) and each socket four rings of RingSize
// (DefaultRingSize, 4096; Options.RingSize, xvs run --ring-size)
// descriptors: what the kernel receives into while the worker waits for a
// CPU — 2 ms at 2 Mpps, 82 ms at 50 000 datagrams/s. Frames that find the
// RX ring full or no buffer on the fill ring are dropped by the kernel and
// counted (Stats: RxRingFull, RxDropped). The fill ring is pre-populated at start.
// Receive reaps completions straight onto the fill ring, refills it from a
// free stack, and reads up to 64 RX descriptors as views into the UMEM;
// the worker rewrites them in place; Transmit puts the frames marked Send
// on the TX ring as the same UMEM frames (zero copy) and the others back on
// the fill ring. TransmitCopies (dataplane.CopyTransmitter) sends frames
// the worker owns — fragments it held until their datagram was decided —
// by copying each into a frame from the free stack (free → tx; it returns
// through the completion ring) on the TX ring; with no free frame or a
// full ring the rest are counted in TxDropped. Sockets are bound with XDP_USE_NEED_WAKEUP: sendto only
// when the TX ring's flag asks, recvfrom only when the fill ring's does,
// ppoll (with an eventfd Close uses to wake the worker) only when the RX
// ring is empty — never a syscall per packet. The UMEM uses 2 MiB huge
// pages when the system has them reserved.
//
// # Busy polling
//
// With Options.BusyPoll a queue's sockets get SO_PREFER_BUSY_POLL,
// SO_BUSY_POLL and SO_BUSY_POLL_BUDGET (Options.BusyPollBudget, default one
// batch). A Receive that finds the RX rings empty right after a batch with
// frames polls the queue's NAPI contexts through its sockets — a
// non-blocking recvfrom, or the sendto of a pending kick, each runs one
// NAPI poll in the worker's context — until frames arrive or BusyPoll has
// passed, and only then sleeps in ppoll; a poll that finds nothing makes
// the next empty Receive sleep at once, so an idle queue costs nothing. A
// kernel that refuses an option (before 5.11, no CONFIG_NET_RX_BUSY_POLL,
// no CAP_NET_ADMIN) leaves the socket interrupt-driven:
// Queue.BusyPoll and Backend.BusyPollErr say why, QueueStats.BusyPollRefused
// counts it.
//
// Every frame has one owner, {free, fill, worker, tx} (fill covers the
// driver and the RX ring, tx the completion ring), across interfaces: a
// frame received on one socket and sent on another goes fill → worker → tx
// and comes back through the other socket's completion ring. Each
// hand-over is checked (a byte per frame, always on) and Queue.CheckFrames
// cross-checks the owners of each UMEM with the rings of every socket using
// it: tests run it after thousands of packets and require that no frame is
// lost or duplicated.
//
// # What we fix over asavie/xdp
//
// asavie/xdp v0.3.3 is used for its Program container and XSKMAP
// Register/Unregister, and (in tests) to reproduce its bugs. Its socket
// code could not be used as is: it binds without need_wakeup and calls
// sendto on every Transmit; its errors are %v strings, so a caller cannot
// tell EPERM from EOPNOTSUPP and walk the mode ladder; its ring indexes are plain
// loads and stores with the fences commented out, which the Go memory model
// does not order (ours are sync/atomic, sequentially consistent); its rings
// are 64 descriptors and its UMEM 128 frames; its free list is a linear
// scan per GetDescs (BenchmarkFreeFrame: 3 µs against 4 ns for our stack
// with 4096 frames); and its Receive marks a frame free while the caller
// still holds it, so GetDescs hands it out again — issue #24's duplicate
// addresses (TestAsavieHandsOutHeldFrames). Its Detach clears the default
// mode only and then waits in a 1 s sleep loop until no program is
// reported; ours detaches each mode explicitly. Bind and attach flags are
// mutable package globals there, arguments here.
//
// # veth
//
// veth has native XDP but no AF_XDP zero-copy, so it runs native-copy or
// generic. Frames sent by AF_XDP in copy mode are skbs handed to veth_xmit,
// so the peer needs no XDP program of its own (that requirement — an XDP
// program or GRO on the peer — applies to XDP_TX/redirected xdp_frames,
// which this backend does not use). veth offloads TX checksums and VLAN
// tags: frames from a local socket carry only a partial UDP/TCP checksum
// (xvs's pipeline completes it) and the tag beside the frame, so the
// package's own tests, which forward frames without the pipeline, turn
// "tx" and "txvlan" offload off on both ends. A veth has one RX queue unless created with numrxqueues.
// RX queues not served (Options.Queues below the interface's count) pass
// their VIP traffic to the kernel: use all queues or steer with ethtool.
package afxdp
