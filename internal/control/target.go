package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/syncd"
	"github.com/xvs-lb/xvs/table"
)

// Target is what the control server operates on; the xvs daemon implements it.
type Target interface {
	// Apply carries out one configuration command (a parsed ipvsadm command that Mutates()): validated fully,
	// applied atomically (on error nothing changes), then published to the data plane without pausing it.
	Apply(ctx context.Context, cmd ipvsadm.Command) error
	// ApplyAll carries out several configuration commands all or nothing
	// (ipvsadm -R): when one fails, none is applied. The error should be a
	// *CommandError naming the failing command (the server then names its
	// line); any other error is reported without a line.
	ApplyAll(ctx context.Context, cmds []ipvsadm.Command) error
	// Snapshot is the configuration the data plane runs now (services, real servers, their Stats).
	Snapshot() *ipvs.Snapshot
	// EachTemplate and EachConn list every worker's live persistence templates / connections in batches of
	// at most ListBatch, each read on its worker's own goroutine (remaining times as of that read) and handed
	// to fn on the caller's goroutine; the slice is only valid during the call. An error of fn stops the
	// listing and is returned. Memory is one batch, whatever the size of the tables.
	EachTemplate(ctx context.Context, fn func([]table.TemplateInfo) error) error
	EachConn(ctx context.Context, fn func([]table.ConnInfo) error) error
	// Status describes the data plane: mode, interface, workers and their counters.
	Status() Status
}

// ListBatch is the most entries a Target hands EachTemplate's or EachConn's
// fn at once. A listing holds one batch (about 1.5 MB of templates; rows
// are rendered and sent a few hundred at a time), a worker stops for one
// batch at a time (about a millisecond), and an idle worker, which looks
// for requests once per poll timeout (50 ms), is asked 16 times for 131 072
// templates: such a listing takes about a second.
const ListBatch = 8192

// Status describes the data plane for listings and metrics.
type Status struct {
	Mode      dataplane.Mode          // what the data plane runs as ("afxdp-native-zerocopy", "raw", …)
	Ifaces    []string                // the served interfaces
	Workers   []pipeline.Counters     // per worker
	Queues    []dataplane.QueueStats  // per queue (same order)
	Templates []table.TemplateStats   // per worker
	Filters   []dataplane.FilterStats // per interface, when the backend's filter counts (AF_XDP)
	ConnTable int                     // connection table size for the -L banner "(size=N)"
}

// HealthReporter is implemented by Targets that run health checks (the
// daemon): -L --health and the metrics show its view. A Target without it
// lists states from the snapshot alone.
type HealthReporter interface {
	Health() map[health.Key]health.Status
}

// NextHopReporter is implemented by Targets that choose the next hop of
// the frames they forward (the daemon): -L --health and the metrics show,
// for each real server, where its frames go.
type NextHopReporter interface {
	NextHops() map[netip.Addr]NextHop
}

// NextHop is where frames to a real server go.
type NextHop struct {
	// Status is "resolved", "incomplete" (ARP or neighbour discovery in
	// progress), "failed" (no answer), "unserved" (the route leaves by an
	// interface the data plane does not serve), "no_route" or "local" (an
	// address of this host: Local forwarding).
	Status string
	// Iface is the interface the route leaves by ("" without one).
	Iface string
}

// SnapshotReporter is implemented by Targets that keep a template snapshot
// file (the daemon with --snapshot): the metrics show its state.
type SnapshotReporter interface {
	SnapshotStatus() SnapshotStatus
}

// SnapshotStatus is the state of the template snapshot file.
type SnapshotStatus struct {
	File        string
	Saves       uint64    // successful saves
	Errors      uint64    // failed saves
	LastSuccess time.Time // zero before the first successful save
	Saved       int       // templates written by the last successful save
	// Restored counts the records of the snapshot read at start, by
	// outcome: restored, expired, no_service, no_server, duplicate,
	// evicted (no room: the table's policy chose others), invalid.
	Restored map[string]int
}

// Reloader is implemented by Targets that can re-read the configuration
// files they were started with (the daemon, for keepalived.conf):
// xvsadm --reload. Reload applies the file's difference all or nothing and
// returns its warnings; on error the running configuration is unchanged.
type Reloader interface {
	Reload(ctx context.Context) (warnings []string, err error)
}

// Director is the BGP announcer of `xvs run` (internal/bgp), reached by
// xvsadm --drain-director, --undrain-director and -L --bgp, and by the
// metrics. A daemon without BGP has none.
type Director interface {
	// DrainDirector withdraws every VIP (drain) while the data plane keeps
	// forwarding what still arrives, or announces them again (undrain).
	DrainDirector(drain bool) error
	// BGPStatus describes the speaker, its peers and its routes.
	BGPStatus() BGPStatus
}

// BGPStatus is the state of the embedded BGP speaker.
type BGPStatus struct {
	ASN      uint32
	RouterID netip.Addr
	// Drained is set by xvsadm --drain-director; Stopping after SIGTERM
	// (routes withdrawn, forwarding until the drain period ends);
	// Forwarding while the data plane is attached and its workers run.
	Drained, Stopping, Forwarding bool
	Peers                         []BGPPeer
	// Routes lists every VIP of the configuration, announced or not.
	Routes []BGPRoute
	// Changes counts announcements and withdrawals of VIPs.
	Announcements, Withdrawals uint64
}

// BGPPeer is one BGP neighbour's session.
type BGPPeer struct {
	Addr      netip.Addr
	ASN       uint32
	State     BGPState
	Since     time.Time // last state change
	LocalAddr netip.Addr
	HoldTime  time.Duration // negotiated (0 before the session is up)
	// UpdatesSent and UpdatesReceived count UPDATE messages (a withdrawal
	// is one too); Advertised is the prefixes announced to the peer now.
	UpdatesSent, UpdatesReceived, Advertised uint64
}

// BGPState is a BGP session's state (RFC 4271 section 8.2.2).
type BGPState uint8

// BGP session states, in the finite-state machine's order.
const (
	BGPIdle BGPState = iota
	BGPConnect
	BGPActive
	BGPOpenSent
	BGPOpenConfirm
	BGPEstablished
	NumBGPStates // the number of states
)

var bgpStateNames = [NumBGPStates]string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

// String returns the state's name as -L --bgp, the logs and the metrics
// show it.
func (s BGPState) String() string {
	if s < NumBGPStates {
		return bgpStateNames[s]
	}
	return "BGPState(" + strconv.Itoa(int(s)) + ")"
}

// BGPRoute is one VIP and why it is or is not announced.
type BGPRoute struct {
	Prefix    netip.Prefix
	Announced bool
	// Reason says why it is not: "no available real server", "director
	// drained", "stopping", "data plane not forwarding"; "" when announced.
	Reason      string
	NextHop     netip.Addr // zero: the session's local address
	MED         uint32
	HasMED      bool
	Communities []string
}

// SyncController is implemented by Targets that run IPVS connection sync
// daemons (the daemon): xvsadm --start-daemon, --stop-daemon and
// -L --daemon.
type SyncController interface {
	// StartSync starts the master or backup daemon d.State with ipvsadm's
	// options (zero fields: the kernel's defaults). An error wrapping
	// syncd.ErrRunning when one of that role runs.
	StartSync(ctx context.Context, d ipvsadm.Daemon) error
	// StopSync stops one: an error wrapping syncd.ErrNotRunning when none
	// runs.
	StopSync(ctx context.Context, state ipvsadm.DaemonState) error
	// SyncDaemons lists the running daemons with the parameters they run
	// with, master first.
	SyncDaemons() []ipvsadm.Daemon
	// SyncStatus describes them for the metrics.
	SyncStatus() SyncStatus
}

// SyncStatus describes the running sync daemons (nil: not running).
type SyncStatus struct {
	Master *MasterStatus
	Backup *BackupStatus
}

// MasterStatus is a running master sync daemon.
type MasterStatus struct {
	Config ipvsadm.Daemon
	Stats  syncd.SenderStats
}

// BackupStatus is a running backup sync daemon.
type BackupStatus struct {
	Config ipvsadm.Daemon
	Stats  syncd.ReceiverStats
	Peers  []SyncPeer
	// Rejected counts the accepted entries the backup could not use, by
	// reason: no_service and no_dest (no such virtual service or real
	// server here: configure the same on both directors), ring_full (a
	// worker did not keep up).
	Rejected map[string]uint64
}

// SyncPeer is a master a backup has heard from.
type SyncPeer struct {
	Addr      netip.Addr
	SyncID    uint8         // of its last message
	Datagrams uint64        // received from it
	Age       time.Duration // since its last datagram
}

// CommandError is the error ApplyAll returns when one of its commands fails:
// Index is the command's position in the slice (0-based), Err the model's
// error (an ipvs sentinel such as ipvs.ErrServiceExists, possibly wrapped).
type CommandError struct {
	Index int
	Err   error
}

func (e *CommandError) Error() string { return fmt.Sprintf("command %d: %v", e.Index+1, e.Err) }

// Unwrap returns the command's error.
func (e *CommandError) Unwrap() error { return e.Err }

// kernelErrors are the model's errors whose messages are ipvsadm's
// ipvs_strerror texts; a failed command prints exactly that text.
var kernelErrors = []error{
	ipvs.ErrServiceExists, ipvs.ErrNoService, ipvs.ErrDestExists, ipvs.ErrNoDest,
	ipvs.ErrNotFound, ipvs.ErrInvalid, ipvs.ErrRange, ipvs.ErrZeroPort, ipvs.ErrOnePacketUDP,
	syncd.ErrRunning, syncd.ErrNotRunning,
}

// errnoErrors are errors for which ipvsadm prints strerror(errno): the
// kernel's errno for them.
var errnoErrors = []struct {
	err error
	msg string
}{
	{syncd.ErrInterface, "No such device"}, // ENODEV
	{syncd.ErrGroup, "Invalid argument"},   // EINVAL
}

// KernelMessage returns the message ipvsadm prints for a failed command:
// the bare ipvs_strerror text ("Service already exists") when err wraps one
// of the model's sentinels (with xvs's reason after it for a refused real
// server address: "Invalid argument: a broadcast address cannot be a real
// server"), or the strerror text of the kernel's errno, else err's own
// text.
func KernelMessage(err error) string {
	var ae *ipvs.AddrError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	for _, k := range kernelErrors {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	for _, e := range errnoErrors {
		if errors.Is(err, e.err) {
			return e.msg
		}
	}
	return err.Error()
}
