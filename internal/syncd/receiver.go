package syncd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/pe"
)

// MaxPeers bounds the masters a backup remembers hearing from; datagrams
// from more are still processed, and counted in PeersOverflow.
const MaxPeers = 32

// Entry is one accepted sync entry, handed to the receiver's Deliver
// function. Its Conn borrows the datagram: PEName and PEData are valid only
// during the call.
type Entry struct {
	syncproto.Conn
	Version int            // the message's protocol version (0 or 1)
	SyncID  uint8          // the message's syncid
	PE      pe.ID          // the engine PEName names; 0 without pe data
	From    netip.AddrPort // the master that sent it
}

// ReceiverConfig configures a backup (--start-daemon backup).
type ReceiverConfig struct {
	Config
	// Switches supplies sync_sock_size and sync_ports.
	Switches syncpolicy.Switches
	// Deliver takes each accepted entry and reports whether it used it
	// (false counts the entry as rejected). With several sync_ports it is
	// called from one goroutine per port, concurrently.
	Deliver func(*Entry) bool
	// KnownPE finds the engine of a pe name; nil means the pe registry.
	// The kernel does not load engines for sync: an entry whose engine the
	// backup lacks is dropped (UnknownPE).
	KnownPE func(name []byte) (pe.ID, bool)
	// Clock returns monotonic nanoseconds for the peers' last-heard times;
	// nil means a clock of the receiver's own.
	Clock func() int64
}

// ReceiverStats are a backup's counters.
type ReceiverStats struct {
	Datagrams  uint64    // datagrams read
	Bytes      uint64    // their bytes
	Messages   [2]uint64 // messages whose header passed, by version
	Entries    uint64    // entries accepted and delivered
	Rejected   uint64    // entries Deliver refused
	ReadErrors uint64    // failed reads
	// Dropped counts, by reason, the messages (header and fatal reasons:
	// the rest of the message) and entries (entry reasons) dropped.
	Dropped       [syncproto.NumReasons]uint64
	PeersOverflow uint64 // datagrams from masters beyond MaxPeers
}

// Peer is a master a backup has heard from, by address (its sockets for
// several sync_ports have different source ports).
type Peer struct {
	Addr      netip.Addr
	SyncID    uint8 // of its last message
	Last      int64 // when its last datagram arrived (Clock)
	Datagrams uint64
}

// Receiver is a backup sync daemon.
type Receiver struct {
	cfg     Config
	conns   []*net.UDPConn
	deliver func(*Entry) bool
	knownPE func([]byte) (pe.ID, bool)
	clock   func() int64
	scratch scratch // for Process
	wg      sync.WaitGroup
	closed  atomic.Bool

	stats struct {
		datagrams, bytes, entries, rejected, readErrors, peersOverflow atomic.Uint64
		messages                                                       [2]atomic.Uint64
		dropped                                                        [syncproto.NumReasons]atomic.Uint64
	}
	peerMu sync.Mutex
	peers  [MaxPeers]Peer
	npeers int
}

// scratch is one reading goroutine's decoding state.
type scratch struct {
	d syncproto.Decoder
	e Entry
}

// NewReceiver opens a backup's sockets (one per sync_ports port) on the
// configured interface and joins the group. Call Run to receive.
func NewReceiver(rc ReceiverConfig) (*Receiver, error) {
	c, ifi, err := resolveOn(rc.Config, Backup)
	if err != nil {
		return nil, err
	}
	r, err := newReceiver(rc, c)
	if err != nil {
		return nil, err
	}
	for i := range rc.Switches.Ports {
		conn, err := recvSocket(c, ifi, c.Port+uint16(i), rc.Switches.SockSize)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.conns = append(r.conns, conn)
	}
	return r, nil
}

func newReceiver(rc ReceiverConfig, c Config) (*Receiver, error) {
	if err := rc.Switches.Validate(); err != nil {
		return nil, err
	}
	if rc.Deliver == nil {
		return nil, errors.New("syncd: a receiver needs a Deliver function")
	}
	r := &Receiver{cfg: c, deliver: rc.Deliver, knownPE: rc.KnownPE, clock: rc.Clock}
	if r.knownPE == nil {
		r.knownPE = registryPE()
	}
	if r.clock == nil {
		epoch := time.Now()
		r.clock = func() int64 { return int64(time.Since(epoch)) }
	}
	return r, nil
}

// registryPE matches pe names against the engines registered now, without
// allocating per lookup.
func registryPE() func([]byte) (pe.ID, bool) {
	type known struct {
		name []byte
		id   pe.ID
	}
	var engines []known
	for _, n := range pe.Names() {
		if _, id, ok := pe.Lookup(n); ok {
			engines = append(engines, known{[]byte(n), id})
		}
	}
	return func(name []byte) (pe.ID, bool) {
		for _, e := range engines {
			if bytes.Equal(e.name, name) {
				return e.id, true
			}
		}
		return 0, false
	}
}

// Config returns the resolved configuration (what -L --daemon shows).
func (r *Receiver) Config() Config { return r.cfg }

// Run reads every port until ctx is done or Close is called.
func (r *Receiver) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	for _, c := range r.conns {
		r.wg.Add(1)
		go r.read(c)
	}
	r.wg.Wait()
	return nil
}

func (r *Receiver) read(c *net.UDPConn) {
	defer r.wg.Done()
	// The kernel reads into a buffer of sync_maxlen bytes: a longer
	// datagram is cut, and its size check then drops it (BadSize).
	buf := make([]byte, r.cfg.MaxLen)
	var sc scratch
	for {
		n, _, _, from, err := c.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			if r.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			r.stats.readErrors.Add(1)
			continue
		}
		r.process(&sc, buf[:n], from)
	}
}

// Process handles one datagram as if it had been read from the sockets.
// It must not be called concurrently with itself (Run's goroutines have
// their own state).
func (r *Receiver) Process(msg []byte, from netip.AddrPort) {
	r.process(&r.scratch, msg, from)
}

// process is ip_vs_process_message: header checks, syncid filter, then the
// entries one by one, each accepted one delivered as it is decoded (a later
// fatal fault does not take back the entries before it, as in the kernel).
func (r *Receiver) process(sc *scratch, msg []byte, from netip.AddrPort) {
	r.stats.datagrams.Add(1)
	r.stats.bytes.Add(uint64(len(msg)))
	h, why := sc.d.Reset(msg)
	r.heard(from, h.SyncID)
	if why != syncproto.OK {
		r.stats.dropped[why].Add(1)
		return
	}
	if r.cfg.SyncID != 0 && h.SyncID != r.cfg.SyncID {
		r.stats.dropped[syncproto.SyncIDMismatch].Add(1)
		return
	}
	r.stats.messages[h.Version].Add(1)
	e := &sc.e
	for {
		why := sc.d.Next(&e.Conn)
		if why == syncproto.Done {
			return
		}
		if why == syncproto.OK {
			e.PE = 0
			if len(e.PEData) > 0 {
				id, ok := r.knownPE(e.PEName)
				if !ok {
					r.stats.dropped[syncproto.UnknownPE].Add(1)
					continue
				}
				e.PE = id
			}
			e.Version, e.SyncID, e.From = h.Version, h.SyncID, from
			if r.deliver(e) {
				r.stats.entries.Add(1)
			} else {
				r.stats.rejected.Add(1)
			}
			continue
		}
		r.stats.dropped[why].Add(1)
	}
}

// heard records a datagram from a master.
func (r *Receiver) heard(from netip.AddrPort, syncID uint8) {
	now, addr := r.clock(), from.Addr()
	r.peerMu.Lock()
	defer r.peerMu.Unlock()
	for i := range r.npeers {
		if p := &r.peers[i]; p.Addr == addr {
			p.Last, p.SyncID = now, syncID
			p.Datagrams++
			return
		}
	}
	if r.npeers == MaxPeers {
		r.stats.peersOverflow.Add(1)
		return
	}
	r.peers[r.npeers] = Peer{Addr: addr, SyncID: syncID, Last: now, Datagrams: 1}
	r.npeers++
}

// Peers returns the masters heard from, in the order first heard.
func (r *Receiver) Peers() []Peer {
	r.peerMu.Lock()
	defer r.peerMu.Unlock()
	return append([]Peer(nil), r.peers[:r.npeers]...)
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	st := ReceiverStats{
		Datagrams:     r.stats.datagrams.Load(),
		Bytes:         r.stats.bytes.Load(),
		Messages:      [2]uint64{r.stats.messages[0].Load(), r.stats.messages[1].Load()},
		Entries:       r.stats.entries.Load(),
		Rejected:      r.stats.rejected.Load(),
		ReadErrors:    r.stats.readErrors.Load(),
		PeersOverflow: r.stats.peersOverflow.Load(),
	}
	for i := range st.Dropped {
		st.Dropped[i] = r.stats.dropped[i].Load()
	}
	return st
}

// Close stops Run and closes the sockets.
func (r *Receiver) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, c := range r.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close backup sockets: %w", err)
	}
	return nil
}
