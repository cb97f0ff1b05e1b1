package daemon

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
)

// startProber runs the health checks of the configured services.
func (d *Daemon) startProber() {
	d.prober = health.New(health.Options{
		Snapshot:    d.snap.Load,
		SetHealth:   d.setHealth,
		SetWeight:   d.setDynWeight,
		NextHop:     d.probeNextHop,
		LocalAddrs:  d.tap.setAddrs,
		MaxInFlight: d.opts.MaxProbes,
		Logger:      d.log,
	})
	d.tap.deliver = d.prober.Deliver
	ctx, cancel := context.WithCancel(context.Background())
	d.stopProber = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.prober.Run(ctx)
	}()
}

// setHealth applies a health checker's verdict and publishes it.
func (d *Daemon) setHealth(svc ipvs.ServiceKey, server netip.AddrPort, up bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.cfg.Clone()
	changed, err := next.SetDestHealth(svc, server, up)
	if err != nil || !changed {
		return err
	}
	return d.commit(next)
}

// setDynWeight applies the weight a dynamic script check reported (w < 0:
// the configured weight again) and publishes it.
func (d *Daemon) setDynWeight(svc ipvs.ServiceKey, server netip.AddrPort, w int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.cfg.Clone()
	changed, err := next.SetDestWeightOverride(svc, server, w)
	if err != nil || !changed {
		return err
	}
	return d.commit(next)
}

// Health is the health checker's view of every checked real server
// (control.HealthReporter).
func (d *Daemon) Health() map[health.Key]health.Status {
	if d.prober == nil {
		return nil
	}
	st := d.prober.Status()
	out := make(map[health.Key]health.Status, len(st))
	for _, s := range st {
		out[s.Key()] = s
	}
	return out
}

var _ control.HealthReporter = (*Daemon)(nil)

// probeTap takes the health probes' answers out of the data plane. A NAT
// real server answers a probe from the address:port the backend steers to
// the workers (its NAT replies), so in AF_XDP mode the kernel socket of the
// probe never sees it, and the pipeline would take it for a server-initiated
// request. Every UDP datagram addressed to one of the probes' source
// addresses (the balancer's own: never a client's NAT reply) is handed to
// the prober and recycled instead of processed. The check per frame is a
// load of one atomic pointer per batch and, while probes exist, a compare
// of the destination address.
type probeTap struct {
	addrs   atomic.Pointer[[]netip.Addr]
	deliver func(src, dst netip.AddrPort, payload []byte) bool
	taken   atomic.Uint64
}

func (t *probeTap) setAddrs(a []netip.Addr) { t.addrs.Store(&a) }

// tapQueue wraps a backend queue with the probe tap.
type tapQueue struct {
	dataplane.Queue
	tap    *probeTap
	hidden int // frames held back from the worker after the batch's end
	p      packet.Parsed
}

// Receive receives a batch and moves the probes' answers past its end.
func (q *tapQueue) Receive(b *dataplane.Batch, timeout time.Duration) error {
	q.hidden = 0
	err := q.Queue.Receive(b, timeout)
	ap := q.tap.addrs.Load()
	if err != nil || b.N == 0 || ap == nil || len(*ap) == 0 {
		return err
	}
	addrs := *ap
	n := b.N
	for i := 0; i < n; {
		if !q.take(b.Frames[i], b.Link, addrs) {
			i++
			continue
		}
		n--
		b.Frames[i], b.Frames[n] = b.Frames[n], b.Frames[i]
		b.Handles[i], b.Handles[n] = b.Handles[n], b.Handles[i]
		b.Room[i], b.Room[n] = b.Room[n], b.Room[i]
		b.Port[i], b.Port[n] = b.Port[n], b.Port[i]
		b.Send[n] = false
	}
	if n == b.N {
		return nil
	}
	q.hidden, b.N = b.N-n, n
	if n == 0 {
		// The worker runs no Transmit for an empty batch: give them back now.
		b.N, q.hidden = q.hidden, 0
		if err := q.Queue.Transmit(b); err != nil {
			return err
		}
		b.N = 0
	}
	return nil
}

// TransmitCopies passes the worker's extra frames (held fragments, frames
// that waited for a neighbour) to the backend queue when it can send them
// (dataplane.CopyTransmitter), so that the wrapper hides nothing of the
// queue.
func (q *tapQueue) TransmitCopies(port uint8, frames [][]byte) (int, error) {
	ct, ok := q.Queue.(dataplane.CopyTransmitter)
	if !ok {
		return 0, nil // none sent: counted as unsent, as without the wrapper
	}
	return ct.TransmitCopies(port, frames)
}

// Wake passes dataplane.Waker on to the backend queue.
func (q *tapQueue) Wake() {
	if w, ok := q.Queue.(dataplane.Waker); ok {
		w.Wake()
	}
}

// Transmit gives the held-back frames back with the batch.
func (q *tapQueue) Transmit(b *dataplane.Batch) error {
	if q.hidden > 0 {
		for i := b.N; i < b.N+q.hidden; i++ {
			b.Send[i] = false
		}
		b.N += q.hidden
		q.hidden = 0
	}
	return q.Queue.Transmit(b)
}

// take reports whether frame is a UDP datagram to one of addrs, and if so
// hands it to the prober.
func (q *tapQueue) take(frame []byte, link packet.LinkType, addrs []netip.Addr) bool {
	// Fast reject on the destination address before a full decode.
	if dst, ok := quickDst(frame, link); ok {
		found := false
		for _, a := range addrs {
			if a == dst {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	p := &q.p
	if p.Decode(frame, link) != packet.ReasonOK || p.Proto != 17 || p.Fragmented || p.PayloadOff == 0 {
		return false
	}
	found := false
	for _, a := range addrs {
		if a == p.Dst {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	q.tap.taken.Add(1)
	q.tap.deliver(netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), frame[p.PayloadOff:p.End])
	return true
}

// quickDst reads the destination address of an untagged Ethernet or raw IP
// frame; ok is false for anything else (then the full decoder decides).
func quickDst(f []byte, link packet.LinkType) (netip.Addr, bool) {
	off := 0
	switch link {
	case packet.LinkEthernet:
		if len(f) < 14 {
			return netip.Addr{}, false
		}
		switch binary.BigEndian.Uint16(f[12:]) {
		case 0x0800, 0x86dd:
			off = 14
		default:
			return netip.Addr{}, false
		}
	case packet.LinkRaw:
	default:
		return netip.Addr{}, false
	}
	if len(f) < off+1 {
		return netip.Addr{}, false
	}
	switch f[off] >> 4 {
	case 4:
		if len(f) >= off+20 {
			return netip.AddrFrom4([4]byte(f[off+16 : off+20])), true
		}
	case 6:
		if len(f) >= off+40 {
			return netip.AddrFrom16([16]byte(f[off+24 : off+40])), true
		}
	}
	return netip.Addr{}, false
}
