package syncd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// sendSocket opens a master's socket for port, as make_send_sock does:
// outgoing multicast on the interface, loop off (a director does not hear
// itself), the TTL, no path-MTU discovery (messages may be fragmented), an
// IPv4 socket bound to the interface's address, connected to group:port.
func sendSocket(c Config, ifi *net.Interface, port uint16, sndbuf int) (*net.UDPConn, error) {
	v6 := c.Group.Is6()
	var laddr *net.UDPAddr
	if !v6 {
		// The kernel binds to inet_select_addr(dev, 0, RT_SCOPE_UNIVERSE),
		// or to 0.0.0.0 when the interface has no such address.
		laddr = &net.UDPAddr{IP: net.IPv4zero}
		if a, ok := interfaceAddr4(ifi); ok {
			laddr.IP = a.AsSlice()
		}
	}
	d := net.Dialer{LocalAddr: laddr, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			set := func(level, opt, v int) {
				if serr == nil {
					serr = unix.SetsockoptInt(s, level, opt, v)
				}
			}
			if v6 {
				set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index)
				set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0)
				set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, int(c.TTL))
				set(unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
			} else {
				if serr == nil {
					serr = unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
				}
				set(unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
				set(unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, int(c.TTL))
				set(unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
			}
			if sndbuf > 0 {
				set(unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	conn, err := d.Dial(network, net.JoinHostPort(c.Group.String(), strconv.Itoa(int(port))))
	if err != nil {
		return nil, fmt.Errorf("master socket %s port %d on %s: %w", c.Group, port, ifi.Name, err)
	}
	return conn.(*net.UDPConn), nil
}

// recvSocket opens a backup's socket for port, as make_receive_sock does:
// address reuse, bound to the interface and to group:port, joined to the
// group on the interface.
func recvSocket(c Config, ifi *net.Interface, port uint16, rcvbuf int) (*net.UDPConn, error) {
	v6 := c.Group.Is6()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptString(s, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
			}
			if serr == nil && rcvbuf > 0 {
				serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(context.Background(), network, net.JoinHostPort(c.Group.String(), strconv.Itoa(int(port))))
	if err != nil {
		return nil, fmt.Errorf("backup socket %s port %d on %s: %w", c.Group, port, ifi.Name, err)
	}
	group := &net.UDPAddr{IP: c.Group.AsSlice()}
	if v6 {
		err = ipv6.NewPacketConn(pc).JoinGroup(ifi, group)
	} else {
		err = ipv4.NewPacketConn(pc).JoinGroup(ifi, group)
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("join %s on %s: %w", c.Group, ifi.Name, err)
	}
	return pc.(*net.UDPConn), nil
}

// interfaceAddr4 returns the interface's first IPv4 address of universe
// scope (not loopback or link-local), as inet_select_addr picks it.
func interfaceAddr4(ifi *net.Interface) (netip.Addr, bool) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ip = ip.Unmap(); ok && ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
