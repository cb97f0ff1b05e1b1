// Package replay runs packet captures through the real xvs pipeline offline:
// the pcap backend. It reads a libpcap or pcapng file, uses the capture's
// timestamps as the clock, hands every frame to a pipeline worker (several
// workers, with frames spread as a NIC's RSS would, to exercise cross-worker
// persistence), writes the forwarded frames, rewritten, to an output capture,
// and logs one decision per frame as TSV (the contract in docs/replay.md):
//
//	# frame	src	dst	call_id	verdict	real_server	reason
//
// frame is 1-based as Wireshark counts; src and dst are ip:port as received
// ([addr]:port for IPv6, "-" for non-IP frames); call_id is the SIP Call-ID of
// a UDP datagram (empty when it has none), with bytes outside printable ASCII,
// space and backslash written \xHH; verdict is forward, drop or pass (skip for
// a frame the replay could not decide: see Skip); real_server is the real
// server's ip:port (forward) or "-"; reason is the pipeline's reason (see
// pipeline.Reason), with "/pe_fallback" appended when the persistence engine
// found no key and normal persistence was used, and the decoder's reason after
// "/" for malformed frames and fragments.
//
// A fragment that waited for its datagram's decision (fragment_held) is logged
// with what became of it once that is known (pipeline.Worker.Released): sent
// (forward, its real server, fragment_followed — or, for the first fragment of
// a datagram decided after reassembly, the datagram's reason), or not
// (drop fragment_held/ and why: the datagram's reason, timeout, evicted,
// capture_end). The log stays in frame order: lines after a waiting one are
// held back until it is settled (about the fragment timeout, in capture
// time, at most; or until the end of the capture).
package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/sipparse"
	"github.com/xvs-lb/xvs/table"
)

// LogHeader is the first line of the decision log.
const LogHeader = "# frame\tsrc\tdst\tcall_id\tverdict\treal_server\treason\n"

// maxSnaplen is the output capture's snapshot length: the largest frame a
// capture may hold (capture.MaxFrame), so every frame read — and every
// rewritten or emitted frame, which is never longer — fits the output.
const maxSnaplen = capture.MaxFrame

// maxOutFrame is the output capture's snapshot length: an input frame grown
// by a tunnel's outer headers (at most its room).
const maxOutFrame = maxSnaplen + dataplane.Headroom

// GatewayMAC is the next hop of frames leaving towards clients (NAT replies
// and real servers' own requests) in a replay. The daemon resolves the
// client's neighbour entry or its default gateway; offline there is no
// neighbour table, so every client is behind this gateway, whose MAC follows
// the real servers' rule (02:58: + the last four bytes of the address) for
// 0.0.0.0, the default route. The frame's source MAC becomes the balancer's
// (its destination MAC as captured), as the daemon does.
var GatewayMAC = [6]byte{0x02, 0x58, 0, 0, 0, 0}

// Skip is why the replay could not hand a frame to the pipeline: such
// frames are logged with verdict "skip", counted, and not written to Out.
type Skip uint8

const (
	// SkipTruncated: the capture holds fewer bytes of the frame than were
	// on the wire (a snapshot length shorter than the frame) and the bytes
	// it lacks are part of the IP datagram: the balancer would have seen
	// the whole frame, the replay cannot decide it.
	SkipTruncated Skip = iota
	// SkipLinkType: the frame's interface has a link type the decoder does
	// not handle (one interface of a pcapng capture, say, a USB bus).
	SkipLinkType
	numSkips
)

var skipNames = [numSkips]string{"truncated_capture", "unsupported_link_type"}

func (s Skip) String() string {
	if s < numSkips {
		return skipNames[s]
	}
	return "unknown"
}

// VerdictSkip is the log's verdict for frames the replay could not decide.
const VerdictSkip = "skip"

// Options configure a replay.
type Options struct {
	// Config is the virtual-server configuration to replay against.
	Config *ipvs.Config
	// Workers is the number of pipeline workers (default 1). Frames are
	// spread over them by a hash of the addresses and ports, as RSS spreads
	// them over RX queues.
	Workers int
	// Templates and Conns size each worker's tables (0 = small defaults
	// suited to captures).
	Templates, Conns int
	// Out, if set, receives the forwarded frames, rewritten, as a libpcap
	// file with the input's link type.
	Out io.Writer
	// Log, if set, receives the per-frame decision log.
	Log io.Writer
	// TunnelSources are the director's addresses tunnelled packets leave
	// from, one per family (default DefaultTunnelSource4 and
	// DefaultTunnelSource6): offline there is no interface to take them
	// from. MTU is the egress MTU tunnels check (default DefaultMTU).
	TunnelSources []netip.Addr
	MTU           int
	// Seed seeds the workers' hashes and identifiers (GUE source ports,
	// outer IPv4 identification); 0 picks a random one. A fixed seed makes
	// the output capture reproducible.
	Seed uint64
}

// Offline egress defaults: documentation addresses (RFC 5737, RFC 3849) and
// Ethernet's MTU.
var (
	DefaultTunnelSource4 = netip.MustParseAddr("192.0.2.254")
	DefaultTunnelSource6 = netip.MustParseAddr("2001:db8::fe")
)

// DefaultMTU is the egress MTU of a replay.
const DefaultMTU = 1500

// Result summarises a replay. Held fragments count as what became of them
// (see the decision log), not as fragment_held.
type Result struct {
	Frames   int
	Verdicts [3]int // by pipeline.Verdict
	// Skipped counts frames the replay could not decide, by Skip.
	Skipped [numSkips]int
	// Reasons counts the frames' final reasons (the log's reason column
	// before any "/").
	Reasons [pipeline.NumReasons]int
	// Emitted counts fragments that waited for their datagram's decision
	// and were sent after a later frame (written to Out after it).
	Emitted  int
	Counters pipeline.Counters
	// PerReal counts, per real server, the inbound frames forwarded to it,
	// the datagrams among them (fragments of one datagram count once) and
	// the distinct Call-IDs.
	PerReal map[netip.AddrPort]*RealStats
	// Templates is the number of live templates at the end, all workers.
	Templates int
	// Unwritten counts forwarded frames not written to Out because their
	// link type differs from the output's (a libpcap file has one); Run
	// then returns ErrMixedLinkTypes.
	Unwritten int
}

// RealStats are one real server's share of a replay.
type RealStats struct {
	Frames    int
	Datagrams int
	CallIDs   map[string]struct{}
}

// ErrMixedLinkTypes reports forwarded frames of a link type other than the
// output capture's: a libpcap file holds one link type, so they were not
// written (a pcapng input can mix interfaces).
var ErrMixedLinkTypes = errors.New("forwarded frames of another link type than the output capture's")

// Run replays one capture. It returns the result of every frame it could
// read even when reading stops early: a capture that is cut short
// (capture.ErrTruncated) or corrupt (capture.ErrCorrupt) ends the replay with
// that error after the frames before it were decided, logged, written and
// counted.
func Run(in *capture.Reader, o Options) (*Result, error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Templates == 0 {
		o.Templates = 1 << 16
	}
	if o.Conns == 0 {
		o.Conns = 1 << 16
	}
	// Offline there is no neighbour table: resolve the real servers' MACs
	// (and a tunnel's source and MTU) the replay's way before the data
	// plane reads the configuration.
	if err := SetReplayEgress(o.Config, o.TunnelSources, o.MTU); err != nil {
		return nil, err
	}
	var snap atomic.Pointer[ipvs.Snapshot]
	snap.Store(o.Config.Snapshot())
	var shared *table.Shared
	if o.Workers > 1 {
		var err error
		if shared, err = table.NewShared(o.Templates); err != nil {
			return nil, err
		}
	}
	seed := o.Seed
	if seed == 0 {
		seed = maphash.Comparable(maphash.MakeSeed(), 0)
	}
	workers := make([]*pipeline.Worker, o.Workers)
	for i := range workers {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: &snap, Templates: o.Templates, Conns: o.Conns, Seed: seed, Shared: shared, ClientGateway: GatewayMAC})
		if err != nil {
			return nil, err
		}
		workers[i] = w
	}
	r := &run{res: &Result{PerReal: map[netip.AddrPort]*RealStats{}}, waiting: map[holdKey]int{}}
	if o.Log != nil {
		r.log = bufio.NewWriterSize(o.Log, 1<<16)
		r.log.WriteString(LogHeader)
	}
	err := r.frames(in, workers, o)
	r.finish()
	res := r.res
	for _, w := range workers {
		c := w.Counters()
		res.Counters.Add(&c)
		// The workers sweep a share of their tables per batch; the count
		// at the end is exact: what has expired by the last frame is gone.
		t := w.Templates()
		t.Sweep(r.last, t.Capacity())
		res.Templates += int(t.Stats().Live)
	}
	if r.log != nil {
		if ferr := r.log.Flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	if err == nil && res.Unwritten > 0 {
		err = fmt.Errorf("%w: %d not written", ErrMixedLinkTypes, res.Unwritten)
	}
	return res, err
}

// run is one replay's state: the decision log keeps input order, so a held
// fragment's line (and every line after it) waits until its fate is known.
type run struct {
	res     *Result
	log     *bufio.Writer
	out     *pcapgo.Writer
	outLink layers.LinkType
	line    []byte
	// queue holds the log lines not yet written, from absolute index
	// base; waiting maps a held copy to its line.
	queue   []entry
	base    int
	waiting map[holdKey]int
	// last is the capture time of the last frame.
	last int64
}

type holdKey struct {
	worker int
	hold   uint64
}

// entry is one frame's log line: final, or waiting for its held copy.
type entry struct {
	frame  int
	wait   bool
	d      pipeline.Decision // as received (Src, Dst, Decode)
	callID []byte
	line   []byte
}

func (r *run) frames(in *capture.Reader, workers []*pipeline.Worker, o Options) error {
	var d pipeline.Decision
	var p packet.Parsed
	// Frames are read behind room for a tunnel's outer headers, as the
	// live backends receive them (dataplane.Headroom).
	buf := make([]byte, dataplane.Headroom+maxSnaplen)
	for {
		f, err := in.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r.res.Frames++
		lt, ok := packet.LinkTypeFromDLT(int(f.LinkType))
		if !ok {
			r.skip(f.Number, SkipLinkType, &pipeline.Decision{})
			continue
		}
		room := buf[:dataplane.Headroom]
		frame := append(buf[dataplane.Headroom:dataplane.Headroom], f.Data...) // the reader's buffer is read-only
		// The Call-ID as received, for the log (the pipeline only parses it
		// for services with the SIP engine).
		var callID []byte
		decoded := p.Decode(frame, lt)
		if decoded == packet.ReasonOK && p.Proto == 17 {
			callID, _ = sipparse.CallID(p.Payload(frame))
			callID = bytes.Clone(callID)
		}
		if f.Truncated() && cutShort(decoded) {
			r.skip(f.Number, SkipTruncated, wireAddrs(frame, f.WireLen, lt, &p))
			continue
		}
		wi := rss(&p, len(workers))
		w := workers[wi]
		r.last = f.Time.UnixNano()
		w.BeginBatch(r.last)
		frame = w.ProcessRoom(room, frame, lt, &d)
		w.EndBatch()
		if callID == nil && d.Reason == pipeline.ReasonFragmentFollowed && d.HasPE && d.PE == pe.StatusOK {
			// A later fragment: its datagram's Call-ID, from the first.
			callID = bytes.Clone(d.PEData)
		}
		if o.Out != nil && r.out == nil {
			r.out, r.outLink = pcapgo.NewWriterNanos(o.Out), f.LinkType
			if err := r.out.WriteFileHeader(maxOutFrame, f.LinkType); err != nil {
				return err
			}
		}
		if d.Verdict() == pipeline.Forward {
			wire := max(f.WireLen, len(frame))
			if len(frame) != len(f.Data) {
				wire = len(frame) // grown (a tunnel) or rebuilt (an ICMP error): the frame as it leaves
			}
			if err := r.write(f.Time, frame, wire, f.LinkType); err != nil {
				return err
			}
		}
		// Fragments that waited for this frame's decision leave after it.
		for _, e := range w.Emitted() {
			r.res.Emitted++
			if err := r.write(f.Time, e, len(e), f.LinkType); err != nil {
				return err
			}
		}
		if d.Reason == pipeline.ReasonFragmentHeld {
			r.waiting[holdKey{wi, d.Hold}] = r.base + len(r.queue)
			dc := d
			dc.PEData = nil
			r.queue = append(r.queue, entry{frame: f.Number, wait: true, d: dc, callID: callID})
		} else {
			r.decided(f.Number, &d, callID, "")
		}
		for i := range w.Released() {
			r.released(wi, &w.Released()[i])
		}
		if err := r.flush(); err != nil {
			return err
		}
	}
}

// wireAddrs returns, for the log, the addresses and ports of a frame cut
// short in the capture: it decodes the frame as long as it was on the wire,
// the missing bytes zero.
func wireAddrs(frame []byte, wire int, lt packet.LinkType, p *packet.Parsed) *pipeline.Decision {
	var d pipeline.Decision
	whole := append(frame, make([]byte, min(wire, maxSnaplen)-len(frame))...)
	if r := p.Decode(whole, lt); p.Version != 0 && (r == packet.ReasonOK || r == packet.ReasonNonFirstFragment || r == packet.ReasonUnsupportedProto) {
		d.Src, d.Dst = netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
	}
	return &d
}

// cutShort reports whether a decoder's reason can come from bytes missing at
// the end of the frame.
func cutShort(r packet.Reason) bool {
	switch r {
	case packet.ReasonTruncated, packet.ReasonBadTotalLength, packet.ReasonBadExtHeader,
		packet.ReasonBadUDPLength, packet.ReasonBadTCPOffset, packet.ReasonBadPPPoE:
		return true
	}
	return false
}

// write appends a forwarded frame to the output capture.
func (r *run) write(t time.Time, frame []byte, wire int, link layers.LinkType) error {
	if r.out == nil {
		return nil
	}
	if link != r.outLink {
		r.res.Unwritten++
		return nil
	}
	if len(frame) > maxOutFrame { // the reader bounds frames by maxSnaplen; a tunnel grows one by less than its room
		return fmt.Errorf("a %d-byte frame exceeds the output's snapshot length %d", len(frame), maxOutFrame)
	}
	return r.out.WritePacket(gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(frame), Length: wire}, frame)
}

// skip logs a frame the replay could not hand to the pipeline.
func (r *run) skip(frame int, why Skip, as *pipeline.Decision) {
	r.res.Skipped[why]++
	if r.log == nil {
		return
	}
	b := fmt.Appendf(nil, "%d\t", frame)
	b = appendAddrs(b, as)
	b = fmt.Appendf(b, "\t\t%s\t-\t%s\n", VerdictSkip, why)
	r.queue = append(r.queue, entry{frame: frame, line: b})
}

// decided counts a frame's final decision and queues its log line; suffix,
// if set, follows the reason after "/".
func (r *run) decided(frame int, d *pipeline.Decision, callID []byte, suffix string) {
	res := r.res
	v := d.Verdict()
	if d.Reason == pipeline.ReasonFragmentHeld {
		v = pipeline.Drop // a held copy that was never sent
	}
	res.Verdicts[v]++
	res.Reasons[d.Reason]++
	// Inbound: to a real server (a reply's later fragments come from one).
	inbound := isInbound(d.Reason) || d.Reason == pipeline.ReasonFragmentFollowed && d.Src.Addr() != d.Real.Addr()
	if v == pipeline.Forward && d.Dest != nil && inbound {
		rs := res.PerReal[d.Real]
		if rs == nil {
			rs = &RealStats{CallIDs: map[string]struct{}{}}
			res.PerReal[d.Real] = rs
		}
		rs.Frames++
		if isInbound(d.Reason) {
			rs.Datagrams++
			if d.HasPE && d.PE == pe.StatusOK && len(d.PEData) > 0 {
				rs.CallIDs[string(d.PEData)] = struct{}{}
			}
		}
	}
	if r.log == nil {
		return
	}
	r.line = appendLogLine(r.line[:0], frame, d, callID, suffix)
	r.queue = append(r.queue, entry{frame: frame, line: bytes.Clone(r.line)})
}

// released settles a held copy's log line with its final decision.
func (r *run) released(worker int, rel *pipeline.Release) {
	k := holdKey{worker, rel.Hold}
	i, ok := r.waiting[k]
	if !ok {
		return
	}
	delete(r.waiting, k)
	e := &r.queue[i-r.base]
	d := rel.Decision
	if d.Src.Port() == 0 && d.Dst.Port() == 0 {
		d.Src, d.Dst = e.d.Src, e.d.Dst // the datagram's ports are not known
	}
	callID := e.callID
	if callID == nil && d.HasPE && d.PE == pe.StatusOK {
		callID = d.PEData
	}
	suffix := ""
	switch rel.Fate {
	case pipeline.FateDiscarded:
		// The datagram's reason; the copy itself is dropped.
		suffix = d.Reason.String()
		if d.Decode != packet.ReasonOK && (d.Reason == pipeline.ReasonMalformed || d.Reason == pipeline.ReasonFragmentUntracked) {
			suffix += "/" + d.Decode.String()
		}
		d.Reason, d.Fallback = pipeline.ReasonFragmentHeld, false
	case pipeline.FateTimeout, pipeline.FateEvicted:
		suffix = rel.Fate.String()
	}
	n := len(r.queue)
	r.decided(e.frame, &d, callID, suffix)
	if r.log != nil {
		// decided appended the line: move it into the waiting entry.
		e = &r.queue[i-r.base]
		e.line, e.wait = r.queue[n].line, false
		r.queue = r.queue[:n]
	} else {
		e.wait = false
	}
}

// flush writes the log lines that are final, in frame order.
func (r *run) flush() error {
	i := 0
	for ; i < len(r.queue) && !r.queue[i].wait; i++ {
		if r.log != nil {
			if _, err := r.log.Write(r.queue[i].line); err != nil {
				return err
			}
		}
	}
	r.base += i
	if i == len(r.queue) {
		r.queue = r.queue[:0]
	} else if i > 0 {
		r.queue = append(r.queue[:0], r.queue[i:]...)
	}
	return nil
}

// finish settles the held copies still waiting when the capture ended
// (fragment_held/capture_end) and writes the rest of the log.
func (r *run) finish() {
	for k, i := range r.waiting {
		e := &r.queue[i-r.base]
		d := e.d
		d.Reason = pipeline.ReasonFragmentHeld
		n := len(r.queue)
		r.decided(e.frame, &d, e.callID, "capture_end")
		if r.log != nil {
			e = &r.queue[i-r.base]
			e.line = r.queue[n].line
			r.queue = r.queue[:n]
		}
		e.wait = false
		delete(r.waiting, k)
	}
	r.flush()
}

// isInbound reports whether r forwards a packet from a client to a real
// server (not a reply, a fragment or an ICMP error).
func isInbound(r pipeline.Reason) bool {
	switch r {
	case pipeline.ReasonConnHit, pipeline.ReasonTemplateHit, pipeline.ReasonSharedHit,
		pipeline.ReasonScheduled, pipeline.ReasonTemplateOverflow, pipeline.ReasonScheduledNoPersistence:
		return true
	}
	return false
}

// rss picks a worker for a frame as a NIC's receive-side scaling would: by a
// symmetric-free hash of the addresses and ports (frames that do not decode
// go to worker 0). Fragments hash on the addresses only, as NICs do (later
// fragments carry no ports), so that every fragment of a datagram reaches
// the worker that tracks it.
func rss(p *packet.Parsed, n int) int {
	if n == 1 || p.Version == 0 {
		return 0
	}
	sport, dport := p.SrcPort, p.DstPort
	if p.Fragmented {
		sport, dport = 0, 0
	}
	s, d := p.Src.As16(), p.Dst.As16()
	var h uint64 = 1469598103934665603
	for _, b := range s {
		h = (h ^ uint64(b)) * 1099511628211
	}
	for _, b := range d {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h = (h ^ uint64(sport)<<16 ^ uint64(dport) ^ uint64(p.Proto)<<32) * 1099511628211
	return int(h % uint64(n))
}

func appendLogLine(b []byte, frame int, d *pipeline.Decision, callID []byte, suffix string) []byte {
	b = fmt.Appendf(b, "%d\t", frame)
	b = appendAddrs(b, d)
	b = append(b, '\t')
	b = pe.AppendEscaped(b, callID)
	b = append(b, '\t')
	v := d.Verdict()
	if d.Reason == pipeline.ReasonFragmentHeld {
		v = pipeline.Drop
	}
	b = append(b, v.String()...)
	b = append(b, '\t')
	if v == pipeline.Forward && d.Real.IsValid() {
		b = d.Real.AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\t')
	b = append(b, d.Reason.String()...)
	switch {
	case suffix != "":
		b = append(b, '/')
		b = append(b, suffix...)
	case d.Fallback:
		b = append(b, "/pe_fallback"...)
	case d.Reason == pipeline.ReasonMalformed || d.Reason == pipeline.ReasonFragmentUntracked:
		b = append(b, '/')
		b = append(b, d.Decode.String()...)
	}
	return append(b, '\n')
}

func appendAddrs(b []byte, d *pipeline.Decision) []byte {
	if !d.Src.IsValid() {
		return append(b, "-\t-"...)
	}
	b = d.Src.AppendTo(b)
	b = append(b, '\t')
	return d.Dst.AppendTo(b)
}

// Summary writes a human-readable summary of a replay: verdicts, where the
// calls went, and how many frames each reason decided.
func (r *Result) Summary(w io.Writer) {
	fmt.Fprintf(w, "frames %d: forward %d, drop %d, pass %d", r.Frames, r.Verdicts[pipeline.Forward], r.Verdicts[pipeline.Drop], r.Verdicts[pipeline.Pass])
	if n := r.Skipped[SkipTruncated] + r.Skipped[SkipLinkType]; n > 0 {
		fmt.Fprintf(w, ", skip %d", n)
	}
	fmt.Fprintf(w, "; live templates %d\n", r.Templates)
	reals := make([]netip.AddrPort, 0, len(r.PerReal))
	for a := range r.PerReal {
		reals = append(reals, a)
	}
	sort.Slice(reals, func(i, j int) bool { return reals[i].Compare(reals[j]) < 0 })
	if len(reals) > 0 {
		fmt.Fprintf(w, "%-28s %10s %10s %9s\n", "real server", "frames", "datagrams", "Call-IDs")
	}
	for _, a := range reals {
		s := r.PerReal[a]
		fmt.Fprintf(w, "%-28s %10d %10d %9d\n", a, s.Frames, s.Datagrams, len(s.CallIDs))
	}
	first := true
	row := func(name string, n int) {
		if n == 0 {
			return
		}
		if first {
			fmt.Fprintf(w, "%-28s %10s\n", "reason", "frames")
			first = false
		}
		fmt.Fprintf(w, "%-28s %10d\n", name, n)
	}
	for i, n := range r.Reasons {
		row(pipeline.Reason(i).String(), n)
	}
	for i, n := range r.Skipped {
		row(Skip(i).String(), n)
	}
	if r.Counters.PEFallback > 0 {
		fmt.Fprintf(w, "persistence-engine fallbacks (no usable Call-ID): %d\n", r.Counters.PEFallback)
	}
	if r.Unwritten > 0 {
		fmt.Fprintf(w, "forwarded frames not written to the output (another link type): %d\n", r.Unwritten)
	}
}

// SetReplayNextHops gives every real server without a next-hop MAC (Run
// calls it) a stable, locally administered one derived from its address
// (02:58:<last four address bytes>), so replayed frames show the MAC rewrite a
// live balancer would do after neighbour resolution.
func SetReplayNextHops(cfg *ipvs.Config) error { return SetReplayEgress(cfg, nil, 0) }

// SetReplayEgress is SetReplayNextHops, and gives every real server without
// an egress source the address of its family from sources (defaults
// DefaultTunnelSource4 and DefaultTunnelSource6) and mtu (0: DefaultMTU),
// which tunnels use.
func SetReplayEgress(cfg *ipvs.Config, sources []netip.Addr, mtu int) error {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	src4, src6 := DefaultTunnelSource4, DefaultTunnelSource6
	for _, a := range sources {
		if a.Unmap().Is4() {
			src4 = a.Unmap()
		} else {
			src6 = a
		}
	}
	for _, svc := range cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			mac, src := d.NextHop, d.Source
			if mac == ([6]byte{}) {
				a := d.Addr.Addr().As16()
				mac = [6]byte{0x02, 0x58, a[12], a[13], a[14], a[15]}
			}
			if !src.IsValid() {
				src = src4
				if d.Addr.Addr().Is6() {
					src = src6
				}
			}
			m := d.MTU
			if m == 0 {
				m = mtu
			}
			if err := cfg.SetEgress(svc.Key, d.Addr, mac, src, m); err != nil {
				return err
			}
		}
	}
	return nil
}
