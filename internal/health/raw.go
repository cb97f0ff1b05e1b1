package health

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// rawSender sends crafted IP datagrams to a given MAC on one interface
// through an AF_PACKET datagram socket (the kernel adds the Ethernet header
// with our own MAC): the way a direct-routing probe reaches the VIP on one
// particular real server, exactly as the data plane forwards a client's
// packet. It needs CAP_NET_RAW.
type rawSender struct {
	mu      sync.Mutex
	fd      int
	ifindex int
}

func newRawSender(iface string) (*rawSender, error) {
	ifindex := 0
	if iface != "" {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return nil, err
		}
		ifindex = ifi.Index
	}
	// Protocol 0: the socket receives nothing, it only sends (on the
	// interface each send names).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	return &rawSender{fd: fd, ifindex: ifindex}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// send transmits an IP datagram to mac on interface ifindex (0: the
// sender's own interface).
func (r *rawSender) send(ipPacket []byte, v6 bool, mac [6]byte, ifindex int) error {
	proto := uint16(unix.ETH_P_IP)
	if v6 {
		proto = unix.ETH_P_IPV6
	}
	if ifindex == 0 {
		ifindex = r.ifindex
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], mac[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return net.ErrClosed
	}
	return unix.Sendto(r.fd, ipPacket, 0, sa)
}

func (r *rawSender) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// probeTTL is the TTL (hop limit) of crafted probes: one hop is enough.
const probeTTL = 64

// udpPacket builds an IPv4 or IPv6 datagram carrying UDP from src to dst,
// with correct checksums.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	ulen := 8 + len(payload)
	udp := make([]byte, ulen)
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(ulen))
	copy(udp[8:], payload)
	var pseudo []byte
	sa, da := src.Addr(), dst.Addr()
	if sa.Is4() {
		s4, d4 := sa.As4(), da.As4()
		pseudo = append(append(append(pseudo, s4[:]...), d4[:]...), 0, 17, byte(ulen>>8), byte(ulen))
	} else {
		s16, d16 := sa.As16(), da.As16()
		pseudo = append(append(append(pseudo, s16[:]...), d16[:]...), 0, 0, byte(ulen>>8), byte(ulen), 0, 0, 0, 17)
	}
	cs := checksum(pseudo, udp)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	if sa.Is4() {
		h := make([]byte, 20, 20+ulen)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+ulen))
		h[6] = 0x40 // DF
		h[8] = probeTTL
		h[9] = 17
		s4, d4 := sa.As4(), da.As4()
		copy(h[12:], s4[:])
		copy(h[16:], d4[:])
		binary.BigEndian.PutUint16(h[10:], checksum(h))
		return append(h, udp...)
	}
	h := make([]byte, 40, 40+ulen)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(ulen))
	h[6] = 17
	h[7] = probeTTL
	s16, d16 := sa.As16(), da.As16()
	copy(h[8:], s16[:])
	copy(h[24:], d16[:])
	return append(h, udp...)
}

// checksum is the Internet checksum over the concatenation of parts (each
// of even length except possibly the last).
func checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
