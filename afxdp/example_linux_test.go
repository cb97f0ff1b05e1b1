package afxdp_test

import (
	"log"
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/afxdp"
	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// Open the backend on an interface (as root), tell it which traffic to
// steer, and run one loop per queue: receive a batch, rewrite each frame
// in place, transmit it on the same queue or give it back. Everything the
// filter does not match stays with the kernel. (Not run as a test: it
// needs root and an interface.)
func Example() {
	b, err := afxdp.Open(dataplane.Options{Iface: "eth0"})
	if err != nil {
		log.Fatal(err) // errors wrap ErrPermission, ErrNotSupported, ErrBusy…
	}
	defer b.Close()
	vip, server := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddrPort("10.1.0.5:5060")
	nextHop := [6]byte{0x02, 0, 0, 0, 0, 0x05} // server's MAC (from the neighbour table)
	if err := b.Update(dataplane.Filter{
		Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: vip, Port: 5060}},
	}); err != nil {
		log.Fatal(err)
	}
	log.Printf("serving as %s on %d queues", b.Mode(), len(b.Queues()))
	for _, q := range b.Queues() {
		go func() {
			batch := dataplane.NewBatch(packet.LinkEthernet)
			var p packet.Parsed
			for {
				if err := q.Receive(batch, 100*time.Millisecond); err != nil {
					return // dataplane.ErrClosed after Close
				}
				for i, f := range batch.Frames[:batch.N] {
					// NAT every datagram to the one real server.
					ok := p.Decode(f, batch.Link) == packet.ReasonOK && p.SetDst(f, server.Addr(), server.Port())
					if ok {
						packet.ForwardMAC(f, nextHop)
					}
					batch.Send[i] = ok
				}
				q.Transmit(batch)
			}
		}()
	}
	time.Sleep(time.Minute)
}
