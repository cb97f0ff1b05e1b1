package syncd

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/pe"
)

const (
	// DefaultPollInterval is how often the sender drains the workers'
	// rings. Workers do not signal the sender (that would take a lock or
	// a system call per record), so the sender polls; 5 ms keeps the added
	// sync lag well under the kernel's own delay at about 200 wake-ups a
	// second.
	DefaultPollInterval = 5 * time.Millisecond
	// DefaultFlushDelay is how long a partly filled message may wait for
	// more entries: IPVS_SYNC_SEND_DELAY (HZ/50), the delay after which the
	// kernel's master sends its queued messages. The kernel holds the
	// message it is still filling for up to IPVS_SYNC_FLUSH_TIME (2 s,
	// checked every second); xvs sends it after DefaultFlushDelay too, so
	// that a backup learns a new call within tens of milliseconds at any
	// call rate. A busy master fills messages long before that.
	DefaultFlushDelay = 20 * time.Millisecond
)

// SenderConfig configures a master (--start-daemon master).
type SenderConfig struct {
	Config
	// Switches supplies sync_version, sync_qlen_max, sync_sock_size and
	// sync_ports.
	Switches syncpolicy.Switches
	// Rings are the workers' rings, drained in turn.
	Rings []*syncring.Ring
	// PollInterval and FlushDelay default to DefaultPollInterval and
	// DefaultFlushDelay.
	PollInterval, FlushDelay time.Duration
	// Clock returns monotonic nanoseconds on the clock the workers stamp
	// Record.Queued with (the data path's batch clock). nil means a clock
	// of the sender's own, and the lag statistics are then meaningless.
	Clock func() int64
	// PEName names an engine id. nil means the pe registry.
	PEName func(pe.ID) string
	// Times sends xvs's times option (syncproto.Times) with every
	// template of a version 1 message: when its record was queued and
	// when the template was last used (Record.Queued, Record.Used, on
	// Clock's scale, sent as Unix times). Backups that are not xvs skip it.
	Times bool
}

// SenderStats are a master's counters.
type SenderStats struct {
	Records     uint64 // records drained from the rings
	Entries     uint64 // entries put into messages
	Unencodable uint64 // records no message can carry (IPv6 with sync_version 0, an unknown engine id)
	Messages    uint64 // messages sent
	Bytes       uint64 // UDP payload bytes sent
	SendErrors  uint64 // messages the socket refused
	QueueDrops  uint64 // messages dropped because sync_qlen_max were waiting
	RingDrops   uint64 // records the workers dropped because their ring was full
	// LagSum, LagCount and LagMax measure the time from a worker queueing
	// a record to the sender writing its message, in nanoseconds.
	LagSum, LagCount, LagMax uint64
}

// Sender is a master sync daemon: it drains the workers' rings, packs the
// records into messages of up to sync_maxlen bytes and multicasts them.
// Only its Run (or Poll) goroutine touches the messages; Stats may be
// called from anywhere.
type Sender struct {
	cfg      Config
	version  int
	queueMax int
	poll     time.Duration
	flush    int64
	rings    []*syncring.Ring
	conns    []*net.UDPConn
	write    func(port int, msg []byte) error // conns[port].Write; tests replace it
	clock    func() int64
	peNames  [256][]byte
	seed     maphash.Seed
	drain    func(*syncring.Record) // s.add, bound once
	times    bool
	next     atomic.Pointer[syncpolicy.Switches] // SetSwitches, applied by Poll

	now     int64
	wallOff int64 // Unix ns minus the clock's, at the last Poll
	ports   []pending
	queue   []pending // complete messages waiting to be written
	free    [][]byte
	bufLen  int
	stopped chan struct{}
	once    sync.Once

	stats struct {
		records, entries, unencodable, messages, bytes, sendErrors, queueDrops atomic.Uint64
		lagSum, lagCount, lagMax                                               atomic.Uint64
	}
}

// pending is a message being filled (per port) or waiting to be written.
type pending struct {
	port   int
	b      syncproto.Builder
	buf    []byte
	first  int64 // when it got its first entry
	queued int64 // sum of its records' Queued stamps
	oldest int64
}

// NewSender opens a master's sockets (one per sync_ports port) on the
// configured interface. It returns an error wrapping ErrInterface,
// ErrGroup or syncpolicy.ErrInvalid for bad parameters.
func NewSender(sc SenderConfig) (*Sender, error) {
	c, ifi, err := resolveOn(sc.Config, Master)
	if err != nil {
		return nil, err
	}
	s, err := newSender(sc, c)
	if err != nil {
		return nil, err
	}
	for i := range sc.Switches.Ports {
		conn, err := sendSocket(c, ifi, c.Port+uint16(i), sc.Switches.SockSize)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.conns = append(s.conns, conn)
	}
	s.write = func(port int, msg []byte) error {
		_, err := s.conns[port].Write(msg)
		return err
	}
	return s, nil
}

// newSender builds a sender without sockets, for c already resolved.
func newSender(sc SenderConfig, c Config) (*Sender, error) {
	if err := sc.Switches.Validate(); err != nil {
		return nil, err
	}
	s := &Sender{
		cfg:      c,
		version:  sc.Switches.Version,
		queueMax: sc.Switches.QueueMax,
		poll:     sc.PollInterval,
		flush:    int64(sc.FlushDelay),
		rings:    sc.Rings,
		clock:    sc.Clock,
		seed:     maphash.MakeSeed(),
		bufLen:   syncproto.BufferLen(c.MaxLen),
		ports:    make([]pending, sc.Switches.Ports),
		stopped:  make(chan struct{}),
		times:    sc.Times,
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.flush <= 0 {
		s.flush = int64(DefaultFlushDelay)
	}
	if s.clock == nil {
		epoch := time.Now()
		s.clock = func() int64 { return int64(time.Since(epoch)) }
	}
	name := sc.PEName
	if name == nil {
		name = func(id pe.ID) string {
			if e := pe.ByID(id); e != nil {
				return e.Name()
			}
			return ""
		}
	}
	for id := 1; id < len(s.peNames); id++ {
		if n := name(pe.ID(id)); n != "" {
			s.peNames[id] = []byte(n)
		}
	}
	for i := range s.ports {
		s.ports[i].port = i
		s.ports[i].buf = make([]byte, s.bufLen)
		if err := s.reset(&s.ports[i]); err != nil {
			return nil, err
		}
	}
	s.drain = s.add
	return s, nil
}

// Config returns the resolved configuration (what -L --daemon shows).
func (s *Sender) Config() Config { return s.cfg }

func (s *Sender) reset(p *pending) error {
	p.first, p.queued, p.oldest = 0, 0, 0
	return p.b.Reset(p.buf, s.version, s.cfg.SyncID, s.cfg.MaxLen)
}

// Run drains the rings every PollInterval until ctx is done, then sends
// what is pending and returns. (The kernel discards its queue when the
// master stops; sending it lets the backups learn the last updates of a
// director that shuts down cleanly.)
func (s *Sender) Run(ctx context.Context) error {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Poll(s.clock(), true)
			return nil
		case <-s.stopped:
			return nil
		case <-t.C:
			s.Poll(s.clock(), false)
		}
	}
}

// Poll drains the rings, queues every message that is full or whose first
// entry has waited FlushDelay (every message when flushAll), and writes the
// queue. Run calls it; it must not run concurrently with itself.
func (s *Sender) Poll(now int64, flushAll bool) {
	s.now = now
	if s.times {
		s.wallOff = time.Now().UnixNano() - now
	}
	if sw := s.next.Swap(nil); sw != nil {
		s.apply(sw)
	}
	for _, r := range s.rings {
		r.Drain(0, s.drain)
	}
	for i := range s.ports {
		p := &s.ports[i]
		if p.b.Count() > 0 && (flushAll || now-p.first >= s.flush) {
			s.finish(p)
		}
	}
	for i := range s.queue {
		q := &s.queue[i]
		msg := q.b.Bytes()
		if err := s.write(q.port, msg); err != nil {
			s.stats.sendErrors.Add(1)
		} else {
			s.stats.messages.Add(1)
			s.stats.bytes.Add(uint64(len(msg)))
			n := uint64(q.b.Count())
			s.stats.lagSum.Add(n*uint64(now) - uint64(q.queued))
			s.stats.lagCount.Add(n)
			if lag := uint64(now - q.oldest); lag > s.stats.lagMax.Load() {
				s.stats.lagMax.Store(lag)
			}
		}
		s.free = append(s.free, q.buf)
		q.buf = nil
	}
	s.queue = s.queue[:0]
}

// SetSwitches changes the switches a running master reads as it sends, as
// the kernel reads them: sync_version (from the next message: the messages
// being filled are sent first) and sync_qlen_max. sync_ports and
// sync_sock_size apply when a master starts. An invalid set is ignored.
func (s *Sender) SetSwitches(sw syncpolicy.Switches) {
	if sw.Validate() == nil {
		s.next.Store(&sw)
	}
}

// apply takes new switches (Poll's goroutine).
func (s *Sender) apply(sw *syncpolicy.Switches) {
	s.queueMax = sw.QueueMax
	if sw.Version == s.version {
		return
	}
	for i := range s.ports {
		if s.ports[i].b.Count() > 0 {
			s.finish(&s.ports[i])
		}
	}
	s.version = sw.Version
	for i := range s.ports {
		_ = s.reset(&s.ports[i])
	}
}

// add packs one record (the rings' drain callback).
func (s *Sender) add(r *syncring.Record) {
	s.stats.records.Add(1)
	name := s.peNames[r.PE]
	if r.PEDataLen > 0 && len(name) == 0 {
		s.stats.unencodable.Add(1)
		return
	}
	var c syncproto.Conn
	r.Conn(&c, name)
	if s.times && s.version == 1 && r.Flags&syncproto.FlagTemplate != 0 && r.Queued != 0 {
		c.Times.Queued = r.Queued + s.wallOff
		if r.Used != 0 {
			c.Times.Used = r.Used + s.wallOff
		}
	}
	p := &s.ports[s.portOf(r)]
	err := p.b.Append(&c)
	if errors.Is(err, syncproto.ErrFull) {
		s.finish(p)
		err = p.b.Append(&c)
	}
	if err != nil {
		s.stats.unencodable.Add(1)
		return
	}
	if p.b.Count() == 1 {
		p.first, p.oldest = s.now, r.Queued
	}
	p.queued += r.Queued
	s.stats.entries.Add(1)
}

// portOf spreads records over the sync_ports ports, the same port for the
// same connection or template every time (the kernel picks the thread by
// the connection's address in memory).
func (s *Sender) portOf(r *syncring.Record) int {
	if len(s.ports) == 1 {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.Write(r.CAddr[:])
	h.Write(r.VAddr[:])
	h.Write([]byte{byte(r.CPort >> 8), byte(r.CPort), byte(r.VPort >> 8), byte(r.VPort), r.Protocol})
	h.Write(r.PEData[:r.PEDataLen])
	return int(h.Sum64() & uint64(len(s.ports)-1))
}

// finish moves p's message to the queue (or drops it when sync_qlen_max
// messages wait) and starts a new one.
func (s *Sender) finish(p *pending) {
	if len(s.queue) >= s.queueMax {
		s.stats.queueDrops.Add(1)
		_ = s.reset(p)
		return
	}
	s.queue = append(s.queue, *p)
	if n := len(s.free); n > 0 {
		p.buf, s.free = s.free[n-1], s.free[:n-1]
	} else {
		p.buf = make([]byte, s.bufLen) // grows only until the queue's high-water mark
	}
	_ = s.reset(p)
}

// Stats returns the counters.
func (s *Sender) Stats() SenderStats {
	st := SenderStats{
		Records:     s.stats.records.Load(),
		Entries:     s.stats.entries.Load(),
		Unencodable: s.stats.unencodable.Load(),
		Messages:    s.stats.messages.Load(),
		Bytes:       s.stats.bytes.Load(),
		SendErrors:  s.stats.sendErrors.Load(),
		QueueDrops:  s.stats.queueDrops.Load(),
		LagSum:      s.stats.lagSum.Load(),
		LagCount:    s.stats.lagCount.Load(),
		LagMax:      s.stats.lagMax.Load(),
	}
	for _, r := range s.rings {
		st.RingDrops += r.Stats().Dropped
	}
	return st
}

// Close stops Run (without a final flush; cancel Run's context for that)
// and closes the sockets.
func (s *Sender) Close() error {
	s.once.Do(func() { close(s.stopped) })
	var errs []error
	for _, c := range s.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close master sockets: %w", err)
	}
	return nil
}

// NewSenderFunc returns a master that hands each message to write (with
// its sync_ports port index) instead of sending it on a socket: for
// benchmarks and in-process peers. The configuration is resolved for an
// interface of DefaultMTU.
func NewSenderFunc(sc SenderConfig, write func(port int, msg []byte) error) (*Sender, error) {
	c, err := sc.Config.Resolve(Master, DefaultMTU)
	if err != nil {
		return nil, err
	}
	s, err := newSender(sc, c)
	if err != nil {
		return nil, err
	}
	s.write = write
	return s, nil
}
