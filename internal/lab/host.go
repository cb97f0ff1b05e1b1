package lab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// hostCheckPort is the TCP port CheckHost listens on in the balancer
// namespace: not a port any virtual service of the tests uses.
const hostCheckPort = 8080

// CheckHost checks that the balancer host keeps working beside the data
// plane: from client, a ping to each of the balancer's own addresses (IPv4
// and IPv6) and a TCP connection to its IPv4 address, which must answer.
// End-to-end tests run it while xvs is attached.
func (l *Lab) CheckHost(client Host) error {
	for _, a := range []netip.Addr{l.Balancer.Addr4, l.Balancer.Addr6} {
		if out, err := l.Output(client.NS, "ping", "-c2", "-i0.2", "-W2", a.String()); err != nil {
			return fmt.Errorf("ping %v: %v\n%s", a, err, out)
		}
	}
	addr := netip.AddrPortFrom(l.Balancer.Addr4, hostCheckPort).String()
	var ln net.Listener
	if err := l.Do(l.Balancer.NS, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if conn, err := ln.Accept(); err == nil {
			conn.Write([]byte("ok"))
			conn.Close()
		}
	}()
	return l.Do(client.NS, func() error {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("tcp to the balancer: %w", err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ok" {
			return fmt.Errorf("tcp to the balancer: read %q: %v", buf, err)
		}
		return nil
	})
}
