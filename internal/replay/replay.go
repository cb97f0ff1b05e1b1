// Package replay runs packet captures through the real xvs pipeline offline:
// the pcap backend. It reads a libpcap or pcapng file, uses the capture's
// timestamps as the clock, hands every frame to a pipeline worker (several
// workers, with frames spread as a NIC's RSS would, to exercise cross-worker
// persistence), writes the forwarded frames, rewritten, to an output capture,
// and logs one decision per frame as TSV (the contract in DESIGN.md §4):
//
//	# frame	src	dst	call_id	verdict	real_server	reason
//
// frame is 1-based as Wireshark counts; src and dst are ip:port as received
// ([addr]:port for IPv6, "-" for non-IP frames); call_id is the SIP Call-ID of
// a UDP datagram (empty when it has none), with bytes outside printable ASCII,
// space and backslash written \xHH; verdict is forward, drop or pass;
// real_server is the real server's ip:port (forward) or "-"; reason is the
// pipeline's reason (see pipeline.Reason), with "/pe_fallback" appended when
// the persistence engine found no key and normal persistence was used, and
// the decoder's reason after "/" for malformed frames and fragments.
package replay

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"

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
// capture file may hold (jumbo frames and reassembled datagrams included).
const maxSnaplen = 262144

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
}

// Result summarises a replay.
type Result struct {
	Frames   int
	Verdicts [3]int // by pipeline.Verdict
	// Emitted counts fragments that waited for their datagram's decision
	// and were sent after a later frame (written to Out after it).
	Emitted  int
	Counters pipeline.Counters
	// PerReal counts forwarded inbound datagrams and distinct Call-IDs per
	// real server.
	PerReal map[netip.AddrPort]*RealStats
	// Templates is the number of live templates at the end, all workers.
	Templates int
}

// RealStats are one real server's share of a replay.
type RealStats struct {
	Datagrams int
	CallIDs   map[string]struct{}
}

// ErrLinkType reports a capture link type the decoder does not handle.
var ErrLinkType = errors.New("unsupported capture link type")

// Run replays one capture.
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
	// the replay's way before the data plane reads the configuration.
	if err := SetReplayNextHops(o.Config); err != nil {
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
	seed := maphash.Comparable(maphash.MakeSeed(), 0)
	workers := make([]*pipeline.Worker, o.Workers)
	for i := range workers {
		w, err := pipeline.NewWorker(pipeline.Options{ID: i, Config: &snap, Templates: o.Templates, Conns: o.Conns, Seed: seed, Shared: shared})
		if err != nil {
			return nil, err
		}
		workers[i] = w
	}

	var log *bufio.Writer
	if o.Log != nil {
		log = bufio.NewWriterSize(o.Log, 1<<16)
		log.WriteString(LogHeader)
	}
	var out *pcapgo.Writer
	res := &Result{PerReal: map[netip.AddrPort]*RealStats{}}
	var d pipeline.Decision
	var p packet.Parsed
	var line []byte
	buf := make([]byte, 0, maxSnaplen)
	for {
		f, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("frame %d: %w", res.Frames+1, err)
		}
		res.Frames++
		lt, ok := packet.LinkTypeFromDLT(int(f.LinkType))
		if !ok {
			return res, fmt.Errorf("frame %d: %w %v", f.Number, ErrLinkType, f.LinkType)
		}
		frame := append(buf[:0], f.Data...) // the reader's buffer is read-only
		// The Call-ID as received, for the log (the pipeline only parses it
		// for services with the SIP engine).
		var callID []byte
		if p.Decode(frame, lt) == packet.ReasonOK && p.Proto == 17 {
			callID, _ = sipparse.CallID(p.Payload(frame))
			callID = append([]byte(nil), callID...)
		}
		w := workers[rss(&p, o.Workers)]
		w.BeginBatch(f.Time.UnixNano())
		w.Process(frame, lt, &d)
		w.EndBatch()
		if callID == nil && d.Reason == pipeline.ReasonFragmentFollowed && d.HasPE && d.PE == pe.StatusOK {
			// A later fragment: its datagram's Call-ID, from the first.
			callID = append([]byte(nil), d.PEData...)
		}
		res.Verdicts[d.Verdict()]++
		if d.Verdict() == pipeline.Forward && d.Dest != nil && isInbound(d.Reason) {
			rs := res.PerReal[d.Real]
			if rs == nil {
				rs = &RealStats{CallIDs: map[string]struct{}{}}
				res.PerReal[d.Real] = rs
			}
			rs.Datagrams++
			if d.HasPE && len(d.PEData) > 0 {
				rs.CallIDs[string(d.PEData)] = struct{}{}
			}
		}
		if out == nil && o.Out != nil {
			out = pcapgo.NewWriterNanos(o.Out)
			if err := out.WriteFileHeader(maxSnaplen, f.LinkType); err != nil {
				return res, err
			}
		}
		if out != nil && d.Verdict() == pipeline.Forward {
			ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(frame), Length: max(f.WireLen, len(frame))}
			if err := out.WritePacket(ci, frame); err != nil {
				return res, err
			}
		}
		// Fragments that waited for this frame's decision leave after it.
		for _, e := range w.Emitted() {
			res.Emitted++
			if out != nil {
				ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(e), Length: len(e)}
				if err := out.WritePacket(ci, e); err != nil {
					return res, err
				}
			}
		}
		if log != nil {
			line = appendLogLine(line[:0], f.Number, &d, callID)
			if _, err := log.Write(line); err != nil {
				return res, err
			}
		}
	}
	for _, w := range workers {
		c := w.Counters()
		res.Counters.Add(&c)
		res.Templates += int(w.Templates().Stats().Live)
	}
	if log != nil {
		if err := log.Flush(); err != nil {
			return res, err
		}
	}
	return res, nil
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

func appendLogLine(b []byte, frame int, d *pipeline.Decision, callID []byte) []byte {
	b = fmt.Appendf(b, "%d\t", frame)
	if d.Src.IsValid() {
		b = d.Src.AppendTo(b)
		b = append(b, '\t')
		b = d.Dst.AppendTo(b)
	} else {
		b = append(b, "-\t-"...)
	}
	b = append(b, '\t')
	b = pe.AppendEscaped(b, callID)
	b = append(b, '\t')
	b = append(b, d.Verdict().String()...)
	b = append(b, '\t')
	if d.Verdict() == pipeline.Forward && d.Real.IsValid() {
		b = d.Real.AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\t')
	b = append(b, d.Reason.String()...)
	switch {
	case d.Fallback:
		b = append(b, "/pe_fallback"...)
	case d.Reason == pipeline.ReasonMalformed || d.Reason == pipeline.ReasonFragmentUntracked:
		b = append(b, '/')
		b = append(b, d.Decode.String()...)
	}
	return append(b, '\n')
}

// Summary writes a human-readable summary of a replay: verdicts, and where
// the calls went.
func (r *Result) Summary(w io.Writer) {
	fmt.Fprintf(w, "frames %d: forward %d, drop %d, pass %d; live templates %d\n",
		r.Frames, r.Verdicts[pipeline.Forward], r.Verdicts[pipeline.Drop], r.Verdicts[pipeline.Pass], r.Templates)
	reals := make([]netip.AddrPort, 0, len(r.PerReal))
	for a := range r.PerReal {
		reals = append(reals, a)
	}
	sort.Slice(reals, func(i, j int) bool { return reals[i].Compare(reals[j]) < 0 })
	if len(reals) > 0 {
		fmt.Fprintf(w, "%-28s %10s %9s\n", "real server", "datagrams", "Call-IDs")
	}
	for _, a := range reals {
		fmt.Fprintf(w, "%-28s %10d %9d\n", a, r.PerReal[a].Datagrams, len(r.PerReal[a].CallIDs))
	}
	var reasons []string
	for i, n := range r.Counters.Reasons {
		if n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", pipeline.Reason(i), n))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(w, "reasons: %v\n", reasons)
	}
	if r.Counters.PEFallback > 0 {
		fmt.Fprintf(w, "persistence-engine fallbacks (no usable Call-ID): %d\n", r.Counters.PEFallback)
	}
}

// SetReplayNextHops gives every real server without a next-hop MAC (Run
// calls it) a stable, locally administered one derived from its address
// (02:58:<last four address bytes>), so replayed frames show the MAC rewrite a
// live balancer would do after neighbour resolution.
func SetReplayNextHops(cfg *ipvs.Config) error {
	for _, svc := range cfg.Snapshot().Services() {
		for _, d := range svc.Dests {
			if d.NextHop != ([6]byte{}) {
				continue
			}
			a := d.Addr.Addr().As16()
			mac := [6]byte{0x02, 0x58, a[12], a[13], a[14], a[15]}
			if err := cfg.SetNextHop(svc.Key, d.Addr, mac); err != nil {
				return err
			}
		}
	}
	return nil
}
