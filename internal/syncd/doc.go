// Package syncd is the transport of IPVS connection synchronisation: the
// master ([Sender]) and backup ([Receiver]) sync daemons of ipvsadm
// --start-daemon, speaking the kernel's protocol (package syncproto) over
// UDP multicast with the kernel's socket setup and defaults, so that xvs
// and kernel IPVS directors can be each other's master and backup. A
// director may run both at once (active-active), as the kernel allows.
//
// # Sockets (ip_vs_sync.c make_send_sock, make_receive_sock)
//
// The group is 224.0.0.81 unless --mcast-group gives another (IPv4 or
// IPv6; the kernel has no IPv6 default), the port 8848 (--mcast-port), and
// sync_ports > 1 uses that many consecutive ports. A master's socket sends
// on --mcast-interface with multicast loop off (so a director's backup does
// not hear its own master), TTL/hop limit --mcast-ttl (1), path-MTU
// discovery off, bound (IPv4) to the interface's address and connected to
// the group. A backup's socket is bound to the interface and to the group
// and port, with address reuse, and joins the group there. sync_sock_size
// sets SO_SNDBUF/SO_RCVBUF. [Config.Resolve] computes sync_maxlen as the
// kernel does (1472 for an IPv4 master; the interface MTU for a backup).
//
// # Master
//
// Data-plane workers queue [syncring.Record]s in their rings; the sender
// drains the rings every [DefaultPollInterval], packs the records into
// messages of up to sync_maxlen bytes (one message in progress per port),
// and sends a message when the next entry does not fit or when its first
// entry has waited [DefaultFlushDelay]. At most sync_qlen_max complete
// messages wait to be written; more are dropped and counted. The sender
// never blocks a worker: a full ring drops the record and counts it.
// [Sender.SetSwitches] changes sync_version and sync_qlen_max of a running
// master; with SenderConfig.Times its templates carry xvs's times option
// (syncproto.Times). [NewSenderFunc] is a master without sockets.
//
// # Backup
//
// A receiver reads datagrams into a buffer of sync_maxlen bytes, checks
// them as ip_vs_process_message does (header, size, then syncid: a backup
// with syncid 0 accepts all), decodes the entries, drops those whose
// persistence engine it does not have (the kernel does not load engines for
// sync), and hands each accepted entry to the Deliver function as it is
// decoded, without allocating. Every outcome is counted: datagrams,
// messages by version, entries delivered and rejected, and drops by
// [syncproto.Reason]. It also remembers the masters it has heard from.
package syncd
