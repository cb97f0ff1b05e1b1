package perf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/xvs-lb/xvs/afxdp"
	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/daemon"
	"github.com/xvs-lb/xvs/packet"
)

// FloorEnv names the environment variable that turns a binary embedding the
// harness into the Go AF_XDP floor (GoFloor): "IFACE VIP:PORT MAC1,MAC2,…".
const FloorEnv = "XVS_PERF_GO_FLOOR"

// maybeRunFloor runs the Go floor and exits if FloorEnv is set.
func maybeRunFloor() {
	spec := os.Getenv(FloorEnv)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "AF_XDP floor: %s=%q: want IFACE VIP:PORT MAC,MAC,…\n", FloorEnv, spec)
		os.Exit(2)
	}
	vip, err := netip.ParseAddrPort(f[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "AF_XDP floor: %v\n", err)
		os.Exit(2)
	}
	var macs [][6]byte
	for _, s := range strings.Split(f[2], ",") {
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			fmt.Fprintf(os.Stderr, "AF_XDP floor: MAC %q: %v\n", s, err)
			os.Exit(2)
		}
		macs = append(macs, [6]byte(hw))
	}
	if err := GoFloor(f[0], vip, macs); err != nil {
		fmt.Fprintf(os.Stderr, "AF_XDP floor: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// GoFloor is the floor of user-space AF_XDP forwarding in Go: xvs's own I/O
// layer (package afxdp: the same XDP filter, native mode, need_wakeup, ring
// sizes, batches of dataplane.MaxBatch, ppoll with xvs's poll timeout) and
// none of its pipeline. Each worker, on a locked thread like xvs's, receives
// a batch, sets each frame's destination MAC to a real server's — macs
// indexed by the UDP source port, no SIP parsing, no tables — and its
// source MAC to the balancer's (packet.ForwardMAC, as xvs's direct routing
// does), and transmits it unchanged otherwise. It prints "ready" on stderr
// once the filter steers vip, and stops on SIGTERM or SIGINT, printing its
// counters.
func GoFloor(iface string, vip netip.AddrPort, macs [][6]byte) error {
	if len(macs) == 0 {
		return errors.New("no real server MAC")
	}
	b, err := afxdp.Open(dataplane.Options{Iface: iface, XDPMode: dataplane.XDPNative})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Update(dataplane.Filter{Services: []dataplane.ServiceMatch{{Protocol: packet.ProtoUDP, Addr: vip.Addr(), Port: vip.Port()}}}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(b.Queues()))
	for _, q := range b.Queues() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- floorForward(q, macs)
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Fprintf(os.Stderr, "ready: %s on %s, %d queues\n", b.Mode(), iface, len(b.Queues()))
	select {
	case <-sig:
	case err = <-errs:
	}
	var st dataplane.QueueStats
	for _, q := range b.Queues() {
		s := q.Stats()
		st.RxFrames += s.RxFrames
		st.TxFrames += s.TxFrames
		st.TxDropped += s.TxDropped
		st.Syscalls += s.Syscalls
	}
	b.Close()
	wg.Wait()
	fmt.Fprintf(os.Stderr, "received %d, transmitted %d, dropped %d, %d system calls\n", st.RxFrames, st.TxFrames, st.TxDropped, st.Syscalls)
	return err
}

// floorForward is one floor worker: receive, set the MACs, transmit, until
// the queue is closed.
func floorForward(q dataplane.Queue, macs [][6]byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b := dataplane.NewBatch(packet.LinkEthernet)
	for {
		if err := q.Receive(b, daemon.DefaultPollTimeout); err != nil {
			if errors.Is(err, dataplane.ErrClosed) {
				return nil
			}
			return err
		}
		for i, f := range b.Frames[:b.N] {
			b.Send[i] = floorRewrite(f, macs)
		}
		if err := q.Transmit(b); err != nil && !errors.Is(err, dataplane.ErrClosed) {
			return err
		}
	}
}

// floorRewrite points an IPv4 UDP frame at macs[source port % len(macs)];
// it reports false for anything shorter.
func floorRewrite(f []byte, macs [][6]byte) bool {
	const eth, udp = 14, 8
	if len(f) < eth+20+udp {
		return false
	}
	l4 := eth + int(f[eth]&0x0f)*4
	if len(f) < l4+udp {
		return false
	}
	sport := int(f[l4])<<8 | int(f[l4+1])
	packet.ForwardMAC(f, macs[sport%len(macs)])
	return true
}
