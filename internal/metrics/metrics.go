// Package metrics exports xvs's counters to Prometheus. The Collector reads
// everything at scrape time from the control plane's view of the daemon (the
// configuration snapshot's per-service and per-real-server Stats, and the
// data plane's Status): the data plane does no work for metrics beyond the
// counters it keeps anyway.
//
// Serve runs the HTTP endpoint (/metrics, and /debug/pprof/ on request). It
// listens on a loopback address unless told explicitly that a public one is
// wanted: the metrics name every virtual service and real server.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/sysctl"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// Source is what the collector reads; control.Target satisfies it.
type Source interface {
	Snapshot() *ipvs.Snapshot
	Status() control.Status
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("xvs_"+name, help, labels, nil)
}

var (
	svcLabels  = []string{"protocol", "service"}
	destLabels = []string{"protocol", "service", "server"}

	svcConns    = desc("service_connections_total", "Connections scheduled by the virtual service (one per datagram under one-packet scheduling), as IPVS's conns; reset by -Z.", svcLabels...)
	svcInPkts   = desc("service_in_packets_total", "Packets from clients to the virtual service; reset by -Z.", svcLabels...)
	svcOutPkts  = desc("service_out_packets_total", "Packets from real servers back through the balancer (NAT replies); reset by -Z.", svcLabels...)
	svcInBytes  = desc("service_in_bytes_total", "Bytes from clients to the virtual service; reset by -Z.", svcLabels...)
	svcOutBytes = desc("service_out_bytes_total", "Bytes from real servers back through the balancer; reset by -Z.", svcLabels...)

	destConns    = desc("server_connections_total", "Connections scheduled to the real server; reset by -Z.", destLabels...)
	destInPkts   = desc("server_in_packets_total", "Packets forwarded to the real server; reset by -Z.", destLabels...)
	destOutPkts  = desc("server_out_packets_total", "Packets from the real server through the balancer; reset by -Z.", destLabels...)
	destInBytes  = desc("server_in_bytes_total", "Bytes forwarded to the real server; reset by -Z.", destLabels...)
	destOutBytes = desc("server_out_bytes_total", "Bytes from the real server through the balancer; reset by -Z.", destLabels...)
	destActive   = desc("server_active_connections", "Active connections (TCP ESTABLISHED) of the real server (ipvsadm ActiveConn).", destLabels...)
	destInactive = desc("server_inactive_connections", "Other connections of the real server, every UDP one (ipvsadm InActConn).", destLabels...)
	destPersist  = desc("server_persistent_templates", "Live persistence templates pointing at the real server (ipvsadm PersistConn).", destLabels...)
	destWeight   = desc("server_weight", "Configured weight of the real server (0: quiesced).", destLabels...)
	destDraining = desc("server_draining", "1 while the real server is drained with xvsadm --drain (weight 0, live calls kept until idle).", destLabels...)

	healthUp          = desc("health_up", "1 when the real server passes its health check, 0 when it is down (only checked servers).", destLabels...)
	healthTransitions = desc("health_transitions_total", "Health state changes of the real server, by new state.", append(destLabels, "to")...)
	healthProbes      = desc("health_probes_total", "Health probes completed for the real server.", destLabels...)
	healthRTT         = desc("health_probe_latency_seconds", "Round-trip time of the real server's last successful health probe.", destLabels...)

	frames          = desc("frames_total", "Frames handled by a worker, by the reason of their verdict.", "worker", "reason", "verdict")
	decode          = desc("decode_drops_total", "Frames a worker dropped as undecodable, by the decoder's reason.", "worker", "reason")
	peStatus        = desc("pe_total", "Persistence-engine outcomes on inbound packets of services with an engine.", "worker", "status")
	peFallback      = desc("pe_fallback_total", "Packets the persistence engine could not key that used client-address persistence instead.", "worker")
	peStrict        = desc("pe_strict_drops_total", "Packets dropped because a --pe-strict engine could not key them.", "worker")
	sharedFull      = desc("shared_index_full_total", "New template keys the cross-worker index had no room for.", "worker")
	fragCopies      = desc("fragment_copies_total", "Held fragment copies by outcome: emitted once decided, discarded (datagram dropped or passed), timeout (a fragment was missing), evicted (table needed the entry).", "worker", "outcome")
	neighHeld       = desc("neighbour_held_frames_total", "Frames that waited for their next hop's MAC (reason neighbour_held), by outcome: sent once it resolved, failed (the neighbour failed or the route went away), timeout (no answer within 3 s).", "worker", "outcome")
	unsent          = desc("emitted_unsent_total", "Frames the worker emitted besides its batch (held fragments, frames that waited for a neighbour) that the queue could not transmit.", "worker")
	csumCompleted   = desc("checksum_completed_total", "Frames whose UDP/TCP checksum the sender left to its transmit offload, completed before forwarding.", "worker")
	localDelivered  = desc("local_delivered_total", "Frames handed to this host's own stack (Local real servers).", "worker")
	sharedConnHits  = desc("shared_conn_hits_total", "NAT replies translated through the cross-worker connection index (their connection belongs to another worker: another RX queue or another interface).", "worker")
	sharedConnFull  = desc("shared_conn_index_full_total", "New NAT connections the cross-worker connection index had no room for.", "worker")
	destNextHop     = desc("server_next_hop", "Where frames to the real server go (always 1, status label): resolved, incomplete (ARP/ND in progress), failed (no answer), unserved (routed through an interface xvs does not serve), no_route, local (an address of this host: Local forwarding).", append(destLabels, "status", "iface")...)
	fragEntries     = desc("fragment_entries_total", "Datagrams entered in the worker's fragment table.", "worker")
	fragReplaced    = desc("fragment_entries_replaced_total", "Fragment-table entries reclaimed from a full bucket before they expired.", "worker")
	fragReassembled = desc("fragment_reassembled_total", "Datagrams decided after reassembly (no key in the first fragment), by the decision's reason.", "worker", "reason")
	tunnelPackets   = desc("tunnel_packets_total", "Tunnelled (-i) datagrams by outcome: encapsulated (sent), fragmented (encapsulated and the outer datagram fragmented to fit the egress MTU), no_buffer (dropped for want of fragment buffers).", "worker", "outcome")
	tunnelFragments = desc("tunnel_fragments_total", "Outer fragments of tunnelled datagrams sent beyond the first.", "worker")

	tmplLive      = desc("templates", "Live persistence templates in the worker's table.", "worker")
	tmplSynced    = desc("templates_synced", "Of the live templates: those a backup sync daemon received from a master (marked SYNC in xvsadm -Lc).", "worker")
	tmplCapacity  = desc("templates_capacity", "Capacity of the worker's template table.", "worker")
	tmplCreated   = desc("templates_created_total", "Templates inserted into the worker's table.", "worker")
	tmplExpired   = desc("templates_expired_total", "Templates removed at the end of their timeout.", "worker")
	tmplEvicted   = desc("templates_evicted_total", "Templates evicted to make room, by LRU segment (probation: never reused; protected: idle live dialogs).", "worker", "segment")
	tmplInvalid   = desc("templates_invalidated_total", "Templates removed because their real server went away.", "worker")
	tmplOverflow  = desc("templates_overflow_total", "Template inserts refused because the table was full of live dialogs.", "worker")
	tmplLookups   = desc("template_lookups_total", "Template lookups in the worker's table.", "worker")
	tmplHits      = desc("template_hits_total", "Template lookups that found a live template.", "worker")
	queueCounters = map[string]*prometheus.Desc{}

	info         = desc("dataplane_info", "The data plane's backend mode and interfaces (always 1, one series per served interface).", "mode", "iface")
	filterFrames = desc("filter_frames_total", "Frames the AF_XDP backend's XDP program saw on the interface, by verdict: steered (redirected to a queue's socket; those the socket could not take are in xvs_queue_rx_dropped_total and xvs_queue_rx_ring_full_total) or passed (to the kernel).", "iface", "verdict")

	snapSaves       = desc("snapshot_saves_total", "Successful saves of the template snapshot (--snapshot), periodic and at shutdown.")
	snapErrors      = desc("snapshot_errors_total", "Failed saves of the template snapshot (directory gone or read-only, disk full, a worker not answering); the previous snapshot is kept.")
	snapLastSuccess = desc("snapshot_last_success_timestamp_seconds", "Unix time of the last successful template snapshot save (0: none yet). Alert when it lags the save interval.")
	snapSaved       = desc("snapshot_templates", "Templates written by the last successful snapshot save.")
	bgpState        = desc("bgp_session_state", "1 for the BGP session's current state (idle, connect, active, opensent, openconfirm, established), 0 for the others.", "peer", "state")
	bgpSent         = desc("bgp_updates_sent_total", "BGP UPDATE messages sent to the peer (announcements and withdrawals).", "peer")
	bgpRcvd         = desc("bgp_updates_received_total", "BGP UPDATE messages received from the peer (all rejected: a director learns no routes).", "peer")
	bgpAdv          = desc("bgp_peer_routes", "Routes announced to the peer now.", "peer")
	bgpRoute        = desc("bgp_route_announced", "1 while the VIP's route is announced, 0 while it is withdrawn.", "prefix")
	bgpAnnounced    = desc("bgp_routes_announced", "VIP routes announced now.")
	bgpDrained      = desc("bgp_director_drained", "1 while the director is drained (xvsadm --drain-director).")
	bgpChanges      = desc("bgp_route_changes_total", "VIP routes announced and withdrawn since start.", "change")
	snapRestored    = desc("snapshot_restored_templates", "Records of the snapshot read at start, by outcome: restored, expired (downtime), no_service, no_server, duplicate, evicted (no room in the tables), invalid.", "result")

	syncInfo          = desc("sync_daemon_info", "A running connection sync daemon (xvsadm -L --daemon), always 1.", "state", "mcast_interface", "syncid", "group", "port", "maxlen")
	syncMasterCount   = map[string]*prometheus.Desc{}
	syncMasterLagSum  = desc("sync_master_send_lag_seconds_sum", "Sum over the entries sent of the time from a worker queueing the entry to its message being written.")
	syncMasterLagN    = desc("sync_master_send_lag_seconds_count", "Entries the send lag sum covers.")
	syncMasterLagMax  = desc("sync_master_send_lag_max_seconds", "Longest time an entry waited from its worker to its message being written.")
	syncBackupCount   = map[string]*prometheus.Desc{}
	syncBackupMsgs    = desc("sync_backup_messages_total", "Sync messages whose header a backup accepted, by protocol version.", "version")
	syncBackupDropped = desc("sync_backup_dropped_total", "Sync messages and entries a backup dropped, by the kernel's rule (see docs/sync.md).", "reason")
	syncBackupReject  = desc("sync_backup_rejected_total", "Accepted sync entries the backup could not use: no_service, no_dest (configure the same services and real servers on both directors), ring_full (a worker did not keep up).", "reason")
	syncPeerDatagrams = desc("sync_peer_datagrams_total", "Sync datagrams a backup received from a master.", "peer")
	syncPeerSyncID    = desc("sync_peer_syncid", "The syncid of a master's last message.", "peer")
	syncPeerAge       = desc("sync_peer_last_heard_seconds", "Seconds since a backup last heard from a master.", "peer")
	syncQueued        = desc("sync_queued_total", "Sync records a worker queued for the master daemon (templates and connections).", "worker")
	syncWalked        = desc("sync_walked_total", "Of sync_queued_total: idle live templates the periodic walk re-sent.", "worker")
	syncApplied       = desc("sync_applied_total", "Received sync entries a worker entered in its tables, by result (inserted, refreshed, moved, overflow, invalid).", "worker", "result")
	syncStale         = desc("sync_stale_total", "Received sync entries dropped by a worker because their real server left the configuration meanwhile.", "worker")
	syncExpired       = desc("sync_expired_total", "Received sync entries dropped by a worker because their master's copy had expired.", "worker")
	syncLag           = desc("sync_lag_seconds", "Sync lag of the templates a backup entered: from the master queueing them (xvs masters say when) to their entry in a worker's table.")
	syncLagMax        = desc("sync_lag_max_seconds", "Longest sync lag measured on this backup.")

	sysctlValue = desc("sysctl", "Value of an IPVS sysctl xvs honours (net.ipv4.vs.NAME, xvsadm --sysctl); index numbers the values of a vector such as sync_threshold, empty for one value.", "name", "index")
)

// queueFields are the dataplane.QueueStats counters, in metric-name form.
var queueFields = []struct{ name, help string }{
	{"rx_frames", "Frames received on the queue."},
	{"tx_frames", "Frames transmitted on the queue."},
	{"rx_bytes", "Bytes received on the queue."},
	{"tx_bytes", "Bytes transmitted on the queue."},
	{"tx_dropped", "Frames to send that could not be queued for transmission."},
	{"recycled", "Frames given back to the backend unsent (passed or dropped)."},
	{"rx_dropped", "Frames the backend dropped on receive (AF_XDP: no fill-ring buffer to receive into; raw socket: the kernel's packet-socket drops)."},
	{"rx_ring_full", "Frames dropped because the receive ring was full: the worker did not read it in time (AF_XDP)."},
	{"fill_ring_empty", "Times the kernel found the fill ring empty (AF_XDP); the frames it could not receive are in rx_dropped."},
	{"tx_ring_empty", "Times the transmit ring was empty (AF_XDP)."},
	{"rx_invalid_descs", "Frames the kernel dropped for an invalid fill-ring descriptor (AF_XDP)."},
	{"tx_invalid_descs", "Frames the kernel dropped for an invalid transmit descriptor (AF_XDP)."},
	{"cross_port_copies", "Frames sent on another interface than they arrived on by copying them (AF_XDP sockets that could not share one UMEM)."},
	{"syscalls", "System calls of the queue's data path: waits, transmit kicks, busy polls (AF_XDP). Per received frame, the batching the worker achieves."},
	{"busy_poll_refused", "1 when busy polling (xvs run --busy-poll) was asked for and the kernel refused it on this queue (AF_XDP)."},
}

// syncMasterFields and syncBackupFields are the sync daemons' counters, in
// metric-name form.
var (
	syncMasterFields = []struct{ name, help string }{
		{"records", "Sync records the master drained from the workers' rings."},
		{"entries", "Sync entries the master put into messages."},
		{"unencodable", "Sync records no message can carry (IPv6 with sync_version 0, an unknown engine)."},
		{"messages", "Sync messages the master sent."},
		{"bytes", "Bytes of sync messages (UDP payload) the master sent."},
		{"send_errors", "Sync messages the socket refused."},
		{"queue_drops", "Sync messages dropped because sync_qlen_max were waiting."},
		{"ring_drops", "Sync records the workers dropped because their ring to the master was full."},
	}
	syncBackupFields = []struct{ name, help string }{
		{"datagrams", "Datagrams the backup received on its sync sockets."},
		{"bytes", "Bytes the backup received on its sync sockets."},
		{"entries", "Sync entries the backup accepted and handed to the workers."},
		{"read_errors", "Failed reads on the backup's sync sockets."},
		{"peers_overflow", "Datagrams from masters beyond the peers a backup remembers."},
	}
)

func init() {
	for _, f := range queueFields {
		queueCounters[f.name] = desc("queue_"+f.name+"_total", f.help, "queue")
	}
	for _, f := range syncMasterFields {
		syncMasterCount[f.name] = desc("sync_master_"+f.name+"_total", f.help)
	}
	for _, f := range syncBackupFields {
		syncBackupCount[f.name] = desc("sync_backup_"+f.name+"_total", f.help)
	}
}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src Source
	dir control.Director // nil without BGP
}

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// collectBGP exports the BGP speaker's peers and routes.
func (c *Collector) collectBGP(ch chan<- prometheus.Metric) {
	if c.dir == nil {
		return
	}
	st := c.dir.BGPStatus()
	for _, p := range st.Peers {
		peer := p.Addr.String()
		for s := range control.NumBGPStates {
			gauge(ch, bgpState, b2f(p.State == s), peer, s.String())
		}
		counter(ch, bgpSent, p.UpdatesSent, peer)
		counter(ch, bgpRcvd, p.UpdatesReceived, peer)
		gauge(ch, bgpAdv, float64(p.Advertised), peer)
	}
	n := 0
	for _, r := range st.Routes {
		gauge(ch, bgpRoute, b2f(r.Announced), r.Prefix.String())
		if r.Announced {
			n++
		}
	}
	gauge(ch, bgpAnnounced, float64(n))
	gauge(ch, bgpDrained, b2f(st.Drained))
	counter(ch, bgpChanges, st.Announcements, "announced")
	counter(ch, bgpChanges, st.Withdrawals, "withdrawn")
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		svcConns, svcInPkts, svcOutPkts, svcInBytes, svcOutBytes,
		destConns, destInPkts, destOutPkts, destInBytes, destOutBytes, destActive, destInactive, destPersist, destWeight,
		destDraining, healthUp, healthTransitions, healthProbes, healthRTT,
		frames, decode, peStatus, peFallback, peStrict, sharedFull, fragCopies, fragEntries, fragReplaced, fragReassembled,
		tunnelPackets, tunnelFragments,
		neighHeld, unsent, csumCompleted, localDelivered, sharedConnHits, sharedConnFull, destNextHop,
		tmplLive, tmplSynced, tmplCapacity, tmplCreated, tmplExpired, tmplEvicted, tmplInvalid, tmplOverflow, tmplLookups, tmplHits,
		info, filterFrames, snapSaves, snapErrors, snapLastSuccess, snapSaved, snapRestored, sysctlValue,
		bgpState, bgpSent, bgpRcvd, bgpAdv, bgpRoute, bgpAnnounced, bgpDrained, bgpChanges,
		syncInfo, syncMasterLagSum, syncMasterLagN, syncMasterLagMax, syncBackupMsgs, syncBackupDropped, syncBackupReject,
		syncPeerDatagrams, syncPeerSyncID, syncPeerAge, syncQueued, syncWalked, syncApplied, syncStale, syncExpired, syncLag, syncLagMax,
	} {
		ch <- d
	}
	for _, f := range queueFields {
		ch <- queueCounters[f.name]
	}
	for _, f := range syncMasterFields {
		ch <- syncMasterCount[f.name]
	}
	for _, f := range syncBackupFields {
		ch <- syncBackupCount[f.name]
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var hs map[health.Key]health.Status
	if hr, ok := c.src.(control.HealthReporter); ok {
		hs = hr.Health()
	}
	var nhs map[netip.Addr]control.NextHop
	if nr, ok := c.src.(control.NextHopReporter); ok {
		nhs = nr.NextHops()
	}
	if s := c.src.Snapshot(); s != nil {
		for _, id := range sysctl.All() {
			v := s.Sysctls.Vector(id)
			for i, x := range v {
				index := ""
				if len(v) > 1 {
					index = strconv.Itoa(i)
				}
				gauge(ch, sysctlValue, float64(x), id.Name(), index)
			}
		}
		for _, svc := range s.Services() {
			proto := strings.ToLower(svc.Key.Protocol.String())
			name := addrPort(svc.Key.Addr.String(), svc.Key.Port)
			st := svc.Stats.Read()
			counter(ch, svcConns, st.Conns, proto, name)
			counter(ch, svcInPkts, st.InPkts, proto, name)
			counter(ch, svcOutPkts, st.OutPkts, proto, name)
			counter(ch, svcInBytes, st.InBytes, proto, name)
			counter(ch, svcOutBytes, st.OutBytes, proto, name)
			for _, d := range svc.Dests {
				server := d.Addr.String()
				ds := d.Stats.Read()
				counter(ch, destConns, ds.Conns, proto, name, server)
				counter(ch, destInPkts, ds.InPkts, proto, name, server)
				counter(ch, destOutPkts, ds.OutPkts, proto, name, server)
				counter(ch, destInBytes, ds.InBytes, proto, name, server)
				counter(ch, destOutBytes, ds.OutBytes, proto, name, server)
				gauge(ch, destActive, float64(max(ds.ActiveConns, 0)), proto, name, server)
				gauge(ch, destInactive, float64(max(ds.InactConns, 0)), proto, name, server)
				gauge(ch, destPersist, float64(max(ds.PersistConns, 0)), proto, name, server)
				gauge(ch, destWeight, float64(d.Weight), proto, name, server)
				gauge(ch, destDraining, b2f(d.Draining), proto, name, server)
				if nh, ok := nhs[d.Addr.Addr()]; ok {
					gauge(ch, destNextHop, 1, proto, name, server, nh.Status, nh.Iface)
				}
				if d.Check == nil { // neither its own check nor its service's
					continue
				}
				gauge(ch, healthUp, b2f(!d.Down), proto, name, server)
				h, ok := hs[health.Key{Service: svc.Key, Server: d.Addr}]
				if !ok {
					continue
				}
				counter(ch, healthTransitions, h.TransitionsUp, proto, name, server, "up")
				counter(ch, healthTransitions, h.TransitionsDown, proto, name, server, "down")
				counter(ch, healthProbes, h.Probes, proto, name, server)
				gauge(ch, healthRTT, h.RTT.Seconds(), proto, name, server)
			}
		}
	}
	st := c.src.Status()
	for _, iface := range st.Ifaces {
		gauge(ch, info, 1, st.Mode.String(), iface)
	}
	for _, f := range st.Filters {
		counter(ch, filterFrames, f.Steered, f.Iface, "steered")
		counter(ch, filterFrames, f.Passed, f.Iface, "passed")
	}
	for i, w := range st.Workers {
		worker := strconv.Itoa(i)
		for r := range pipeline.NumReasons {
			counter(ch, frames, w.Reasons[r], worker, r.String(), r.Verdict().String())
		}
		for r := packet.Reason(1); r < packet.NumReasons; r++ { // 0 is "ok"
			counter(ch, decode, w.Decode[r], worker, r.String())
		}
		for p := range pe.NumStatus {
			counter(ch, peStatus, w.PE[p], worker, p.String())
		}
		counter(ch, peFallback, w.PEFallback, worker)
		counter(ch, peStrict, w.Reasons[pipeline.ReasonPEStrict], worker)
		counter(ch, sharedFull, w.SharedFull, worker)
		f := &w.Frag
		for _, o := range []struct {
			name string
			v    uint64
		}{{"emitted", f.Emitted}, {"discarded", f.Discarded}, {"timeout", f.Timeout}, {"evicted", f.Evicted}} {
			counter(ch, fragCopies, o.v, worker, o.name)
		}
		counter(ch, neighHeld, w.Neigh.Sent, worker, "sent")
		counter(ch, neighHeld, w.Neigh.Failed, worker, "failed")
		counter(ch, neighHeld, w.Neigh.Timeout, worker, "timeout")
		counter(ch, unsent, w.Unsent, worker)
		counter(ch, csumCompleted, w.ChecksumCompleted, worker)
		counter(ch, localDelivered, w.Local, worker)
		counter(ch, sharedConnHits, w.SharedConnHits, worker)
		counter(ch, sharedConnFull, w.SharedConnFull, worker)
		counter(ch, fragEntries, f.Entries, worker)
		counter(ch, fragReplaced, f.Replaced, worker)
		for r, n := range f.Reassembled {
			if n > 0 {
				counter(ch, fragReassembled, n, worker, pipeline.Reason(r).String())
			}
		}
		tc := &w.Tunnel
		counter(ch, tunnelPackets, tc.Encapsulated, worker, "encapsulated")
		counter(ch, tunnelPackets, tc.Fragmented, worker, "fragmented")
		counter(ch, tunnelPackets, tc.NoBuffer, worker, "no_buffer")
		counter(ch, tunnelFragments, tc.Fragments, worker)
	}
	var lag pipeline.LagHistogram
	for i, w := range st.Workers {
		worker := strconv.Itoa(i)
		sc := &w.Sync
		counter(ch, syncQueued, sc.Queued, worker)
		counter(ch, syncWalked, sc.Walked, worker)
		for r := range sc.Applied {
			counter(ch, syncApplied, sc.Applied[r], worker, table.SyncResult(r).String())
		}
		counter(ch, syncStale, sc.StaleDest, worker)
		counter(ch, syncExpired, sc.Expired, worker)
		lag.Add(&sc.Lag)
	}
	buckets := make(map[float64]uint64, len(pipeline.LagBuckets))
	var cum uint64
	for i, b := range pipeline.LagBuckets {
		cum += lag.Counts[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(syncLag, lag.Count(), lag.Sum.Seconds(), buckets)
	gauge(ch, syncLagMax, lag.Max.Seconds())
	if sc, ok := c.src.(control.SyncController); ok {
		collectSync(ch, sc.SyncStatus())
	}
	for i, t := range st.Templates {
		worker := strconv.Itoa(i)
		gauge(ch, tmplLive, float64(t.Live), worker)
		gauge(ch, tmplSynced, float64(t.Synced), worker)
		gauge(ch, tmplCapacity, float64(t.Capacity), worker)
		counter(ch, tmplCreated, t.Inserts, worker)
		counter(ch, tmplExpired, t.Expired, worker)
		counter(ch, tmplEvicted, t.EvictedProbation, worker, "probation")
		counter(ch, tmplEvicted, t.EvictedProtected, worker, "protected")
		counter(ch, tmplInvalid, t.Invalidated, worker)
		counter(ch, tmplOverflow, t.Overflow, worker)
		counter(ch, tmplLookups, t.Lookups, worker)
		counter(ch, tmplHits, t.Hits, worker)
	}
	if sr, ok := c.src.(control.SnapshotReporter); ok {
		if ss := sr.SnapshotStatus(); ss.File != "" {
			counter(ch, snapSaves, ss.Saves)
			counter(ch, snapErrors, ss.Errors)
			var last float64
			if !ss.LastSuccess.IsZero() {
				last = float64(ss.LastSuccess.UnixNano()) / 1e9
			}
			gauge(ch, snapLastSuccess, last)
			gauge(ch, snapSaved, float64(ss.Saved))
			for result, n := range ss.Restored {
				gauge(ch, snapRestored, float64(n), result)
			}
		}
	}
	c.collectBGP(ch)
	for i, q := range st.Queues {
		queue := strconv.Itoa(i)
		for j, v := range []uint64{q.RxFrames, q.TxFrames, q.RxBytes, q.TxBytes, q.TxDropped, q.Recycled,
			q.RxDropped, q.RxRingFull, q.FillRingEmpty, q.TxRingEmpty, q.RxInvalidDescs, q.TxInvalidDescs, q.CrossPortCopies, q.Syscalls, q.BusyPollRefused} {
			counter(ch, queueCounters[queueFields[j].name], v, queue)
		}
	}
}

// collectSync exports the running sync daemons.
func collectSync(ch chan<- prometheus.Metric, st control.SyncStatus) {
	info := func(state string, d ipvsadm.Daemon) {
		gauge(ch, syncInfo, 1, state, d.McastIface, strconv.Itoa(int(d.SyncID)), d.McastGroup.String(),
			strconv.Itoa(int(d.McastPort)), strconv.Itoa(int(d.SyncMaxLen)))
	}
	if m := st.Master; m != nil {
		info("master", m.Config)
		s := &m.Stats
		for i, v := range []uint64{s.Records, s.Entries, s.Unencodable, s.Messages, s.Bytes, s.SendErrors, s.QueueDrops, s.RingDrops} {
			counter(ch, syncMasterCount[syncMasterFields[i].name], v)
		}
		ch <- prometheus.MustNewConstMetric(syncMasterLagSum, prometheus.CounterValue, float64(s.LagSum)/1e9)
		counter(ch, syncMasterLagN, s.LagCount)
		gauge(ch, syncMasterLagMax, float64(s.LagMax)/1e9)
	}
	if b := st.Backup; b != nil {
		info("backup", b.Config)
		s := &b.Stats
		for i, v := range []uint64{s.Datagrams, s.Bytes, s.Entries, s.ReadErrors, s.PeersOverflow} {
			counter(ch, syncBackupCount[syncBackupFields[i].name], v)
		}
		for v, n := range s.Messages {
			counter(ch, syncBackupMsgs, n, strconv.Itoa(v))
		}
		for r := syncproto.Reason(0); r < syncproto.NumReasons; r++ {
			if r != syncproto.OK && r != syncproto.Done {
				counter(ch, syncBackupDropped, s.Dropped[r], r.String())
			}
		}
		for reason, n := range b.Rejected {
			counter(ch, syncBackupReject, n, reason)
		}
		for _, p := range b.Peers {
			peer := p.Addr.String()
			counter(ch, syncPeerDatagrams, p.Datagrams, peer)
			gauge(ch, syncPeerSyncID, float64(p.SyncID), peer)
			gauge(ch, syncPeerAge, p.Age.Seconds(), peer)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// addrPort renders a service as "10.0.0.1:5060" or "[2001:db8::1]:5060".
func addrPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return addr + ":" + strconv.Itoa(int(port))
}

// DefaultAddr is the metrics endpoint's default address: loopback only.
const DefaultAddr = "127.0.0.1:9469"

// ErrPublicAddr is returned for a non-loopback listen address without
// Options.AllowPublic.
var ErrPublicAddr = errors.New("metrics address is not loopback (allow it explicitly to expose metrics publicly)")

// Options configure Serve.
type Options struct {
	// Pprof adds net/http/pprof's handlers under /debug/pprof/.
	Pprof bool
	// AllowPublic permits a listen address that is not loopback
	// (including an empty host, i.e. every interface).
	AllowPublic bool
	// Director adds the BGP speaker's metrics (nil: BGP off).
	Director control.Director
}

// Server is a running metrics endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the endpoint.
func (s *Server) Close() error { return s.srv.Close() }

// Handler returns the HTTP handler of the endpoint: /metrics with xvs's
// collector, the Go runtime and process collectors, and /debug/pprof/ when
// pprof is set.
func Handler(src Source, pprofOn bool) http.Handler {
	return handler(src, Options{Pprof: pprofOn})
}

func handler(src Source, o Options) http.Handler {
	pprofOn := o.Pprof
	reg := prometheus.NewRegistry()
	col := NewCollector(src)
	col.dir = o.Director
	reg.MustRegister(col, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Serve listens on addr (DefaultAddr when empty) and serves Handler in the
// background until Close. A non-loopback address is refused with
// ErrPublicAddr unless o.AllowPublic.
func Serve(addr string, src Source, o Options) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkAddr(addr, o.AllowPublic); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           handler(src, o),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      2 * time.Minute, // a 30 s CPU profile fits
		IdleTimeout:       time.Minute,
	}}
	go s.srv.Serve(ln)
	return s, nil
}

// checkAddr accepts loopback literals and "localhost" unless allowPublic.
func checkAddr(addr string, allowPublic bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if allowPublic || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q: %w", addr, ErrPublicAddr)
}
