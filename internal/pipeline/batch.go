package pipeline

// The passes of a batch. Each frame has a slot; prepare decodes it, finds
// its service and (for one-packet persistent services) hashes its template
// key, and records in the slot's state what complete must do; complete
// runs the stage that state names, which returns the frame's Reason, and
// finish records it. finish is the one place a decision ends, so that a
// fragment's decision enters the fragment table in frame order and every
// frame is counted exactly once.

import (
	"net/netip"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// MaxBatch is the most frames ProcessBatch prepares before it completes them:
// enough to overlap the table's cache misses of a whole AF_XDP batch, small
// enough that the batch's state (about 16 KiB) stays in L1/L2.
const MaxBatch = 64

// entryAhead is how many frames ahead of the one it completes the last pass
// prefetches template entries. Prefetching all of a batch's entries in a
// pass of their own issues two cache-line requests per frame back to back,
// more than the core keeps in flight, so that pass stalls; spread over the
// completions, eight frames (1–2 µs) ahead, the lines arrive in time and the
// requests overlap with work. In alternating batches in one process
// (a million templates, 64-frame batches) a distance of 4–8 took 10 % off
// the batch (220 → 198 ns/frame); 2 and 12 gained less (211, 200).
const entryAhead = 8

// slotState is what prepare found out about a frame, and so what complete
// does with it.
type slotState uint8

const (
	// stateDecided: prepare reached the frame's reason (slot.reason): not
	// IP, not ours, malformed, or a strict engine without a key. complete
	// only finishes it.
	stateDecided slotState = iota
	// stateService: to a virtual service (slot.svc); complete runs the
	// inbound decision (inbound.go).
	stateService
	// stateNoService: an IP packet with ports to no virtual service: a NAT
	// reply, a NAT real server's own request, or not ours (reply.go).
	stateNoService
	// stateFragment: a non-first fragment, which has no ports: it follows
	// its datagram's decision, in frame order (frag.go).
	stateFragment
	// stateKeyless: a first fragment to a persistent service whose engine
	// found no key in it: held until the datagram can be reassembled
	// (frag.go).
	stateKeyless
	// stateICMP: an ICMP or ICMPv6 message, decided in frame order as it
	// reads the tables (icmp.go).
	stateICMP
)

// slot is one frame's state between the passes of a batch.
type slot struct {
	p      packet.Parsed
	state  slotState
	reason Reason        // stateDecided: the frame's reason
	svc    *ipvs.Service // stateService, stateKeyless: the virtual service
	keyed  bool          // key and h hold the template key and its hash
	key    table.TemplateKey
	h      uint64
	// vip is the virtual address a frame from a real server leaves from,
	// set by reply (for the fragment table): valid when the reason is
	// nat_reply or server_initiated.
	vip     netip.AddrPort
	pkt     pe.Packet
	scratch [pe.MaxDataLen]byte // the engine's key buffer (pe.Engine.Fill)

	// A slot that decides a reassembled datagram rather than a received
	// frame (Worker.reslot, see reassemble): reasm is the datagram's UDP
	// payload, which the engine keys on, and firstHeld the hold-buffer slot
	// of its first fragment, the frame being decided. Nil for received
	// frames.
	reasm     []byte
	firstHeld int32

	// room is the frame's headroom (see dataplane.Batch.Room), nil for
	// none; a stage that grows or moves the frame (a tunnel) sets out and
	// left to the frame as it leaves and the room left. Cleared after the
	// frame: a worker keeps no reference to a frame.
	room, out, left []byte
}

// decided records that prepare reached the frame's reason.
func (s *slot) decided(r Reason) { s.state, s.reason = stateDecided, r }

// ProcessBatch decides every frame of a batch (as Process does, with the same
// results) and stores the decisions in out (len(out) >= len(frames)); it calls
// BeginBatch and EndBatch itself. It works in two passes over up to
// MaxBatch frames: decode every frame and hash its template key, prefetching
// the table's index line; then complete each frame, prefetching the table
// entry of the frame entryAhead places on (the index line it reads has long
// arrived). The table's cache misses for the whole batch so overlap instead
// of following one another (see BenchmarkPipelineWarm).
//
// The frames have no headroom: a frame for a tunnelling real server is
// dropped (no_headroom). Backends call ProcessFrames.
func (w *Worker) ProcessBatch(frames [][]byte, link packet.LinkType, now int64, out []Decision) {
	w.ProcessFrames(frames, nil, link, now, out)
}

// ProcessFrames is ProcessBatch for frames with headroom: rooms[i] is the
// room in front of frames[i] (dataplane.Batch.Room; rooms may be nil, or
// an entry empty, for none). A frame the worker grows into its room or
// moves (tunnel encapsulation, an ICMP error built in it) is replaced in
// frames[i], and its room in rooms[i].
func (w *Worker) ProcessFrames(frames, rooms [][]byte, link packet.LinkType, now int64, out []Decision) {
	w.BeginBatch(now)
	w.local.Frames += uint64(len(frames))
	for start := 0; start < len(frames); start += MaxBatch {
		batch := frames[start:min(start+MaxBatch, len(frames))]
		for i, f := range batch {
			s := &w.slots[i]
			w.prepare(f, link, s, &out[start+i])
			if s.keyed {
				w.tmpl.Prefetch(s.h)
			}
		}
		for i := range min(len(batch), entryAhead) {
			if s := &w.slots[i]; s.keyed {
				w.tmpl.PrefetchEntry(s.h)
			}
		}
		for i, f := range batch {
			if j := i + entryAhead; j < len(batch) {
				if s := &w.slots[j]; s.keyed {
					w.tmpl.PrefetchEntry(s.h)
				}
			}
			s := &w.slots[i]
			if rooms != nil {
				s.room = rooms[start+i]
			}
			w.complete(f, s, &out[start+i])
			if s.out != nil {
				frames[start+i] = s.out
				if rooms != nil {
					rooms[start+i] = s.left
				}
			}
			s.room, s.out, s.left = nil, nil, nil
		}
	}
	w.EndBatch()
}

// Process decides what happens to one frame and rewrites it in place when it
// is forwarded. It must be called between BeginBatch and EndBatch. The frame
// has no headroom (see ProcessBatch).
func (w *Worker) Process(frame []byte, link packet.LinkType, d *Decision) {
	w.ProcessRoom(nil, frame, link, d)
}

// ProcessRoom is Process for a frame with room in front of it (see
// ProcessFrames). It returns the frame as it leaves: frame itself, or a
// frame grown into room or moved.
func (w *Worker) ProcessRoom(room, frame []byte, link packet.LinkType, d *Decision) []byte {
	s := &w.slots[0]
	w.local.Frames++
	w.prepare(frame, link, s, d)
	s.room = room
	w.complete(frame, s, d)
	if s.out != nil {
		frame = s.out
	}
	s.room, s.out, s.left = nil, nil, nil
	return frame
}

// prepare is a frame's first pass: decode, service lookup and, for a
// one-packet persistent service, the template key and its hash. It sets the
// slot's state; it decides nothing that reads the tables.
func (w *Worker) prepare(frame []byte, link packet.LinkType, s *slot, d *Decision) {
	*d = Decision{}
	s.svc, s.keyed = nil, false
	p := &s.p
	r := p.Decode(frame, link)
	d.Decode = r
	d.Proto = p.Proto
	if p.Version != 0 {
		d.Src = netip.AddrPortFrom(p.Src, p.SrcPort)
		d.Dst = netip.AddrPortFrom(p.Dst, p.DstPort)
	}
	switch r {
	case packet.ReasonOK:
	case packet.ReasonUnknownEtherType, packet.ReasonBadLinkType, packet.ReasonUnknownAddressFamily:
		s.decided(ReasonNotIP)
		return
	case packet.ReasonNonFirstFragment:
		// It may follow a first fragment earlier in the same batch.
		s.state = stateFragment
		return
	case packet.ReasonUnsupportedProto:
		if p.Proto == packet.ProtoICMP || p.Proto == packet.ProtoICMPv6 {
			s.state = stateICMP // path-MTU errors about balanced flows are ours
			return
		}
		s.decided(ReasonNotService) // SCTP…: the kernel's business
		return
	default:
		// Malformed. Frames that decoded as far as an IP destination that is
		// not ours go on to the kernel; anything else is dropped and counted.
		if p.Version != 0 && p.Dst.IsValid() && !w.isVIP(p.Dst) {
			s.decided(ReasonNotService)
		} else {
			s.decided(ReasonMalformed)
		}
		return
	}
	if w.v.snap == nil {
		s.decided(ReasonNotService)
		return
	}
	s.svc = w.v.lookup(ipvs.ServiceKey{Protocol: ipvs.Protocol(p.Proto), Addr: p.Dst, Port: p.DstPort})
	if s.svc == nil {
		s.state = stateNoService
		return
	}
	s.state = stateService
	if s.svc.Persistent && s.svc.OnePacket && p.Proto == protoUDP {
		// Every datagram goes to the template table: key it now.
		if r, ok := w.templateKey(frame, s, d); !ok {
			s.keyless(r)
		}
	}
}

// keyless records why templateKey keyed no template: a first fragment waits
// for reassembly (ReasonFragmentHeld), anything else is the frame's reason.
func (s *slot) keyless(r Reason) {
	if r == ReasonFragmentHeld {
		s.state = stateKeyless
	} else {
		s.decided(r)
	}
}

// complete is a frame's last pass: the stage its state names (connection
// and template lookups, scheduling, rewrite), then finish.
func (w *Worker) complete(frame []byte, s *slot, d *Decision) {
	var r Reason
	switch s.state {
	case stateDecided:
		r = s.reason
	case stateService:
		d.Service = s.svc
		r = w.inbound(frame, s, d)
	case stateNoService:
		r = w.fromRealServer(frame, s, d)
	case stateFragment:
		r = w.follow(frame, s, d)
	case stateKeyless:
		d.Service = s.svc
		r = w.holdFirst(frame, s, d)
	case stateICMP:
		r = w.icmp(frame, s, d)
	}
	w.finish(s, d, r)
}

// finish records a decision's reason: in the Decision, in the fragment table
// (for a fragment, whose datagram's later fragments follow it), and in the
// counters: a received frame's Reason, or, for a datagram decided after
// reassembly, which is not a frame, FragCounters.Reassembled.
func (w *Worker) finish(s *slot, d *Decision, r Reason) {
	d.Reason = r
	if s.p.Fragmented {
		w.fragFinish(s, d, r)
	}
	if s.reasm != nil {
		w.local.Frag.Reassembled[r]++
		return
	}
	w.local.Reasons[r]++
	if r == ReasonMalformed || r == ReasonFragmentUntracked {
		w.local.Decode[d.Decode]++
	}
}
