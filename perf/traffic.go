package perf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/sipparse"
)

// Traffic limits and defaults.
const (
	// DefaultCalls is how many distinct Call-IDs the generator cycles
	// through: enough that templates, hashing and the sinks' per-call
	// counters see a realistic spread, few enough to pre-build every
	// datagram (≈ 9 MB).
	DefaultCalls = 10000
	// SourcePorts is how many UDP sockets (source ports) the generator
	// sends from. Call i always leaves from socket i%SourcePorts, so a
	// 5-tuple hash (RSS, ECMP) spreads load without splitting a call.
	SourcePorts = 16
	// genBatch is the sendmmsg batch: large enough to amortise the
	// syscall, small enough to pace a rate in sub-millisecond steps.
	genBatch = 32
	// sinkBatch is the recvmmsg batch of a sink.
	sinkBatch = 64
	// sinkRcvBuf is each sink's socket receive buffer (SO_RCVBUFFORCE):
	// a sink must not be where datagrams are lost.
	sinkRcvBuf = 32 << 20
	// maxLatencySamples bounds the latency samples a sink keeps per run
	// (4 bytes each).
	maxLatencySamples = 4 << 20
	// SIPPort is the virtual service's port and the sinks' port.
	SIPPort = 5060
	// genPortBase is the first source port of the generator.
	genPortBase = 20000
	// tsHeader carries the send time (16 hex digits of nanoseconds since
	// the harness's epoch) right after the start line, at a fixed offset.
	tsHeader = "X-Send-Time: "
	tsDigits = 16
	// callIDSuffix follows the call's decimal index in every Call-ID.
	callIDSuffix = "-perf@bench.xvs.example"
)

// epoch is the harness's clock origin: generator and sinks run in one
// process, so send and receive times are on one monotonic clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// payloads builds one INVITE (~850 bytes, with SDP, from internal/craft)
// per call, from the client to the VIP, with the X-Send-Time header, and
// returns them with the offset of the timestamp digits.
func payloads(calls int, from, vip netip.Addr) ([][]byte, int, error) {
	out := make([][]byte, calls)
	off := -1
	for i := range out {
		d := craft.DefaultDialog(strconv.Itoa(i) + callIDSuffix)
		d.FromHost, d.ToHost = from.String(), vip.String()
		d.Branch = "z9hG4bK-perf-" + strconv.Itoa(i)
		inv := d.Invite()
		eol := bytes.Index(inv, []byte("\r\n"))
		if eol < 0 {
			return nil, 0, errors.New("perf: crafted INVITE has no start line")
		}
		var b bytes.Buffer
		b.Write(inv[:eol+2])
		o := b.Len() + len(tsHeader)
		b.WriteString(tsHeader + "0000000000000000\r\n")
		b.Write(inv[eol+2:])
		if off >= 0 && o != off {
			return nil, 0, errors.New("perf: timestamp offset differs between datagrams")
		}
		off = o
		out[i] = b.Bytes()
	}
	return out, off, nil
}

const hexDigits = "0123456789abcdef"

func putTS(b []byte, ts int64) {
	for i := tsDigits - 1; i >= 0; i-- {
		b[i] = hexDigits[ts&15]
		ts >>= 4
	}
}

func getTS(b []byte) (int64, bool) {
	if len(b) < tsDigits {
		return 0, false
	}
	var v int64
	for _, c := range b[:tsDigits] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// callIndex maps a Call-ID found by sipparse back to the call's index.
func callIndex(id []byte, calls int) (int, bool) {
	if !bytes.HasSuffix(id, []byte(callIDSuffix)) {
		return 0, false
	}
	n := 0
	digits := id[:len(id)-len(callIDSuffix)]
	if len(digits) == 0 || len(digits) > 9 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n < calls
}

// Generator sends the pre-built INVITEs from the client namespace to the
// VIP with sendmmsg, from SourcePorts sockets, at a set rate or as fast as
// it can.
type Generator struct {
	conns []*ipv4.PacketConn
	raw   []*net.UDPConn
	data  [][]byte
	tsOff int
	next  []int // per socket: next call index (≡ socket mod SourcePorts)
}

// NewGenerator opens the generator's sockets in namespace ns.
func NewGenerator(ns string, src netip.Addr, vip netip.AddrPort, calls int) (*Generator, error) {
	data, off, err := payloads(calls, src, vip.Addr())
	if err != nil {
		return nil, err
	}
	g := &Generator{data: data, tsOff: off}
	err = lab.Do(ns, func() error {
		for s := range SourcePorts {
			c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(genPortBase+s))), net.UDPAddrFromAddrPort(vip))
			if err != nil {
				return err
			}
			_ = c.SetWriteBuffer(4 << 20)
			g.raw = append(g.raw, c)
			g.conns = append(g.conns, ipv4.NewPacketConn(c))
			g.next = append(g.next, s%calls)
		}
		return nil
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Close closes the sockets.
func (g *Generator) Close() {
	for _, c := range g.raw {
		c.Close()
	}
}

// Run sends for d at rate datagrams/s in total (0: as fast as it can)
// from senders goroutines, each owning a share of the sockets, and
// returns how many datagrams the kernel accepted and how many sendmmsg
// calls failed.
func (g *Generator) Run(d time.Duration, rate float64, senders int) (sent, errs uint64) {
	senders = max(1, min(senders, len(g.conns)))
	var total, failed atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range senders {
		var socks []int
		for s := w; s < len(g.conns); s += senders {
			socks = append(socks, s)
		}
		conns := make([]*ipv4.PacketConn, len(socks))
		for i, s := range socks {
			conns[i] = g.conns[s]
		}
		f := lab.Flood{Batch: genBatch, Rate: rate / float64(senders),
			Fill: func(msgs []ipv4.Message, sock int, _ uint64) { g.fill(msgs, socks[sock]) }}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent, errs := f.Send(conns, start, d)
			total.Add(sent)
			failed.Add(errs)
		}()
	}
	wg.Wait()
	return total.Load(), failed.Load()
}

// fill sets msgs to the next calls' datagrams of socket sock, stamped with
// the send time.
func (g *Generator) fill(msgs []ipv4.Message, sock int) {
	ts := now()
	for i := range msgs {
		if msgs[i].Buffers == nil {
			msgs[i].Buffers = make([][]byte, 1)
		}
		idx := g.next[sock]
		g.next[sock] += SourcePorts
		if g.next[sock] >= len(g.data) {
			g.next[sock] = sock % len(g.data)
		}
		b := g.data[idx]
		putTS(b[g.tsOff:], ts)
		msgs[i].Buffers[0] = b
	}
}

// runStats is what a sink recorded during one run.
type runStats struct {
	received uint64
	foreign  uint64 // datagrams without a harness Call-ID
	perCall  []uint32
	lat      []uint32 // one-way latency samples, ns (clamped to 4.29 s)
}

// Sink receives on a real server's SIP port with recvmmsg and counts
// datagrams per Call-ID (found with sipparse) and their latency.
type Sink struct {
	Role  string
	conn  *net.UDPConn
	pc    *ipv4.PacketConn
	calls int
	tsOff int

	mu   sync.Mutex
	cur  *runStats
	done chan struct{}
	last atomic.Int64 // time of the last datagram (ns since epoch)
}

// NewSink opens a sink on 0.0.0.0:SIPPort in namespace ns (it receives
// datagrams for the real server's own address and, in direct routing, the
// VIP on its loopback) and starts receiving.
func NewSink(ns, role string, calls, tsOff int) (*Sink, error) {
	s := &Sink{Role: role, calls: calls, tsOff: tsOff, done: make(chan struct{})}
	err := lab.Do(ns, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: SIPPort})
		if err != nil {
			return err
		}
		s.conn = c
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sinkRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		if s.conn != nil {
			s.conn.Close()
		}
		return nil, fmt.Errorf("perf: sink on %s: %w", role, err)
	}
	s.pc = ipv4.NewPacketConn(s.conn)
	s.reset()
	go s.loop()
	return s, nil
}

func (s *Sink) reset() {
	s.mu.Lock()
	s.cur = &runStats{perCall: make([]uint32, s.calls), lat: make([]uint32, 0, 1<<16)}
	s.mu.Unlock()
}

// take returns the current run's statistics and starts a new run.
func (s *Sink) take() *runStats {
	s.mu.Lock()
	r := s.cur
	s.cur = &runStats{perCall: make([]uint32, s.calls), lat: make([]uint32, 0, 1<<16)}
	s.mu.Unlock()
	return r
}

func (s *Sink) loop() {
	defer close(s.done)
	msgs := make([]ipv4.Message, sinkBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		n, err := s.pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		t := now()
		s.last.Store(t)
		s.mu.Lock()
		r := s.cur
		for _, m := range msgs[:n] {
			p := m.Buffers[0][:m.N]
			r.received++
			id, ok := sipparse.CallID(p)
			if !ok {
				r.foreign++
				continue
			}
			idx, ok := callIndex(id, s.calls)
			if !ok {
				r.foreign++
				continue
			}
			r.perCall[idx]++
			if len(p) > s.tsOff && len(r.lat) < maxLatencySamples {
				if ts, ok := getTS(p[s.tsOff:]); ok && t >= ts {
					r.lat = append(r.lat, uint32(min(t-ts, 1<<32-1)))
				}
			}
		}
		s.mu.Unlock()
	}
}

// received is how many datagrams the sink received in the current run.
func (s *Sink) received() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.received
}

// Close stops the sink.
func (s *Sink) Close() {
	s.conn.Close()
	<-s.done
}

// runResult merges the sinks' statistics of one run.
type runResult struct {
	Sent, Received uint64
	Foreign        uint64
	Violations     int   // Call-IDs seen at more than one sink
	PerSink        []int // datagrams per sink
	lat            []uint32
}

func merge(sinks []*Sink, sent uint64) runResult {
	res := runResult{Sent: sent}
	var stats []*runStats
	for _, s := range sinks {
		r := s.take()
		stats = append(stats, r)
		res.Received += r.received
		res.Foreign += r.foreign
		res.PerSink = append(res.PerSink, int(r.received))
		res.lat = append(res.lat, r.lat...)
	}
	if len(stats) > 0 {
		for c := range stats[0].perCall {
			seen := 0
			for _, r := range stats {
				if r.perCall[c] > 0 {
					seen++
				}
			}
			if seen > 1 {
				res.Violations++
			}
		}
	}
	return res
}

// quiet waits until no sink has received anything for gap (or limit
// passed): the datagrams still in flight have arrived or are lost.
func quiet(sinks []*Sink, gap, limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		last := int64(0)
		for _, s := range sinks {
			last = max(last, s.last.Load())
		}
		if time.Duration(now()-last) >= gap {
			return
		}
		time.Sleep(gap / 4)
	}
}

// drain waits for the datagrams of a run that sent sent: until the sinks
// are quiet for gap; then, while they have received fewer than sent, until
// they are quiet for lateGap (a balancer that was descheduled for longer
// than gap still holds datagrams in its rings); limit bounds both.
func drain(sinks []*Sink, sent uint64, gap, lateGap, limit time.Duration) {
	start := time.Now()
	quiet(sinks, gap, limit)
	var got uint64
	for _, s := range sinks {
		got += s.received()
	}
	if got < sent {
		quiet(sinks, lateGap, limit-time.Since(start))
	}
}

// percentiles returns the p-quantiles (0..1) of samples in microseconds.
func percentiles(samples []uint32, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	if len(samples) == 0 {
		return out
	}
	s := append([]uint32(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	for i, p := range ps {
		k := int(p * float64(len(s)-1))
		out[i] = float64(s[k]) / 1e3
	}
	return out
}
