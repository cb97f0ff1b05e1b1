package perf

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/xvs-lb/xvs/sipparse"
)

// ProxyEnv names the environment variable that turns a binary embedding
// the harness (xvslab, the perf test binary) into the naive proxy:
// "LISTEN REAL1,REAL2,…" (ip:port each). The harness runs the proxy as its
// own process so that its CPU time is measured like xvs's.
const ProxyEnv = "XVS_PERF_NAIVE_PROXY"

// MaybeRunProxy runs the naive proxy and exits if ProxyEnv is set, or the
// Go AF_XDP floor if FloorEnv is; it returns otherwise. Call it first thing
// in main or TestMain.
func MaybeRunProxy() {
	maybeRunFloor()
	spec := os.Getenv(ProxyEnv)
	if spec == "" {
		return
	}
	listen, reals, _ := strings.Cut(spec, " ")
	var dst []netip.AddrPort
	for _, r := range strings.Split(reals, ",") {
		a, err := netip.ParseAddrPort(r)
		if err != nil {
			fmt.Fprintf(os.Stderr, "naive proxy: %v\n", err)
			os.Exit(2)
		}
		dst = append(dst, a)
	}
	l, err := netip.ParseAddrPort(listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "naive proxy: %v\n", err)
		os.Exit(2)
	}
	if err := NaiveProxy(l, dst); err != nil {
		fmt.Fprintf(os.Stderr, "naive proxy: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// NaiveProxy is the baseline a user would write: read a datagram from a
// UDP socket on the VIP, find its Call-ID, hash it (FNV-1a), write the
// datagram to the chosen real server over a connected socket. One
// goroutine, one datagram per system call each way, no reverse path
// (the benchmark's load is one-way). A datagram without a Call-ID goes to
// the first server. It prints "ready" on stderr once listening.
func NaiveProxy(listen netip.AddrPort, reals []netip.AddrPort) error {
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return err
	}
	defer in.Close()
	_ = in.SetReadBuffer(4 << 20) // what a user tuning a UDP proxy does first
	out := make([]*net.UDPConn, len(reals))
	for i, r := range reals {
		if out[i], err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r)); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "ready")
	buf := make([]byte, 65536)
	h := fnv.New32a()
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		i := 0
		if id, ok := sipparse.CallID(buf[:n]); ok {
			h.Reset()
			h.Write(id)
			i = int(h.Sum32() % uint32(len(out)))
		}
		_, _ = out[i].Write(buf[:n]) // UDP: a failed write is a lost datagram
	}
}
