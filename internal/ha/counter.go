package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/lab"
)

// Counter counts, at each real server, the SIP requests it receives by
// Call-ID and method, and the probe datagrams by the director (source MAC)
// that forwarded them, with a packet socket on its interface: what arrived,
// whatever SIPp or xvs say.
type Counter struct {
	mu     sync.Mutex
	calls  map[string]map[string]map[string]int // Call-ID → server → method → count
	probes []Probe
	socks  []int
	wg     sync.WaitGroup
	stop   atomic.Bool
}

// Probe is a probe datagram received by a real server.
type Probe struct {
	At     time.Time
	Server string
	From   [6]byte // the director that forwarded it
}

// readTimeout lets a reader notice the counter closing.
const readTimeout = 200 * time.Millisecond

func newCounter(l *lab.Lab) (*Counter, error) {
	c := &Counter{calls: map[string]map[string]map[string]int{}}
	for _, r := range l.Reals {
		var fd int
		err := l.Do(r.NS, func() error {
			ifi, err := net.InterfaceByName(r.Iface)
			if err != nil {
				return err
			}
			fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
			if err != nil {
				return err
			}
			tv := unix.NsecToTimeval(int64(readTimeout))
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
		})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("ha: counter on %s: %w", r.Role, err)
		}
		c.socks = append(c.socks, fd)
		c.wg.Add(1)
		go c.read(fd, r.Role)
	}
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Counter) close() {
	c.stop.Store(true)
	c.wg.Wait()
	for _, fd := range c.socks {
		unix.Close(fd)
	}
	c.socks = nil
}

func (c *Counter) read(fd int, server string) {
	defer c.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				if c.closed() {
					return
				}
				continue
			}
			return
		}
		if n == 0 {
			if c.closed() {
				return
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		c.frame(buf[:n], server, time.Now())
	}
}

func (c *Counter) closed() bool { return c.stop.Load() }

// frame counts one received Ethernet frame.
func (c *Counter) frame(f []byte, server string, at time.Time) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_UDP || len(ip) < ihl+8 || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
		return
	}
	udp := ip[ihl:]
	payload := udp[8:]
	var src [6]byte
	copy(src[:], f[6:12])
	switch binary.BigEndian.Uint16(udp[2:]) {
	case ProbePort:
		c.mu.Lock()
		c.probes = append(c.probes, Probe{At: at, Server: server, From: src})
		c.mu.Unlock()
	case SIPPort:
		method, id := sipRequest(payload)
		if method == "" || id == "" {
			return
		}
		c.mu.Lock()
		byServer := c.calls[id]
		if byServer == nil {
			byServer = map[string]map[string]int{}
			c.calls[id] = byServer
		}
		if byServer[server] == nil {
			byServer[server] = map[string]int{}
		}
		byServer[server][method]++
		c.mu.Unlock()
	}
}

// sipRequest returns a SIP request's method and Call-ID ("" for a
// response).
func sipRequest(msg []byte) (method, callID string) {
	s := string(msg)
	line, rest, _ := strings.Cut(s, "\r\n")
	if strings.HasPrefix(line, "SIP/") {
		return "", ""
	}
	method, _, _ = strings.Cut(line, " ")
	for _, h := range strings.Split(rest, "\r\n") {
		if h == "" {
			break
		}
		k, v, ok := strings.Cut(h, ":")
		if ok && (strings.EqualFold(strings.TrimSpace(k), "Call-ID") || strings.TrimSpace(k) == "i") {
			return method, strings.TrimSpace(v)
		}
	}
	return method, ""
}

// Calls are the requests each real server received, by Call-ID.
type Calls map[string]map[string]map[string]int

// Calls returns a copy of the counts so far of the Call-IDs with prefix.
func (c *Counter) Calls(prefix string) Calls {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Calls{}
	for id, byServer := range c.calls {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		cp := map[string]map[string]int{}
		for s, m := range byServer {
			cp[s] = map[string]int{}
			for k, v := range m {
				cp[s][k] = v
			}
		}
		out[id] = cp
	}
	return out
}

// Split lists the Call-IDs whose requests reached more than one real
// server, and those whose server lacks one of the dialog's requests
// (INVITE, ACK, INFO, BYE).
func (cs Calls) Split() (split, incomplete []string) {
	for id, byServer := range cs {
		if len(byServer) != 1 {
			split = append(split, fmt.Sprintf("%s on %d servers %v", id, len(byServer), byServer))
			continue
		}
		for _, m := range byServer {
			for _, want := range []string{"INVITE", "ACK", "INFO", "BYE"} {
				if m[want] == 0 {
					incomplete = append(incomplete, fmt.Sprintf("%s: %v", id, m))
					break
				}
			}
		}
	}
	sort.Strings(split)
	sort.Strings(incomplete)
	return split, incomplete
}

// Settled returns the counts of the Call-IDs keep accepts once every such
// call has all its requests counted, or after limit: the last requests of
// a batch may still wait in a counter's socket when SIPp has its answers.
func (c *Counter) Settled(keep func(id string) bool, limit time.Duration) Calls {
	deadline := time.Now().Add(limit)
	for {
		all := c.Calls("")
		out := Calls{}
		for id, on := range all {
			if keep(id) {
				out[id] = on
			}
		}
		if _, incomplete := out.Split(); len(incomplete) == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Probes returns the probe datagrams received so far, in time order.
func (c *Counter) Probes() []Probe {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]Probe(nil), c.probes...)
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Switch is a change of the director forwarding the probe stream.
type Switch struct {
	From, To  [6]byte
	LastFrom  time.Time // the last probe the old director forwarded
	FirstTo   time.Time // the first the new one forwarded
	Interrupt time.Duration
}

// SwitchAfter finds the first change of director in the probe stream after
// t: the last datagram through the old director to the first through the
// new one. ok is false when the stream did not change.
func SwitchAfter(probes []Probe, t time.Time) (s Switch, ok bool) {
	var prev *Probe
	for i := range probes {
		p := &probes[i]
		if p.At.Before(t) {
			prev = p
			continue
		}
		if prev == nil {
			prev = p
			continue
		}
		if p.From != prev.From {
			return Switch{From: prev.From, To: p.From, LastFrom: prev.At, FirstTo: p.At, Interrupt: p.At.Sub(prev.At)}, true
		}
		prev = p
	}
	return Switch{}, false
}
