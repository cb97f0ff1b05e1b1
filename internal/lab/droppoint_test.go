package lab

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestRootDropPoint sends datagrams from the balancer to every real server
// through a drop point on the balancer's switch port, in both modes: those
// to the dropped port are counted per real server and never arrive; those to
// another port, and pings (ARP), pass.
func TestRootDropPoint(t *testing.T) {
	l := newLab(t, Spec{})
	var macs [][6]byte
	for _, r := range l.Reals {
		m, err := MAC(r.NS, r.Iface)
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, m)
	}
	const dropPort, passPort = 5060, 5070
	for _, mode := range []DropMode{DropTC, DropXDP} {
		t.Run(mode.String(), func(t *testing.T) {
			d, err := NewDropPoint(l.Switch, l.Balancer.Port, dropPort, macs[:2], mode)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// Listeners on both ports of every real server.
			var ls []*net.UDPConn
			for _, r := range l.Reals {
				for _, p := range []int{dropPort, passPort} {
					c, err := ListenUDP(r.NS, fmt.Sprintf("%v:%d", r.Addr4, p))
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					ls = append(ls, c)
				}
			}
			err = l.Do(l.Balancer.NS, func() error {
				c, err := net.ListenUDP("udp4", nil)
				if err != nil {
					return err
				}
				defer c.Close()
				for i, r := range l.Reals {
					for range i + 1 {
						for _, p := range []uint16{dropPort, passPort} {
							if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(r.Addr4, p)); err != nil {
								return err
							}
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range l.Reals {
				buf := make([]byte, 16)
				for k, p := range []int{dropPort, passPort} {
					c := ls[2*i+k]
					c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					got := 0
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
						got++
					}
					want := i + 1
					if p == dropPort {
						want = 0
					}
					if got != want {
						t.Errorf("%s port %d: %d datagrams arrived, want %d", r.Role, p, got, want)
					}
				}
			}
			per, other, err := d.Counts()
			if err != nil {
				t.Fatal(err)
			}
			if len(per) != 2 || per[0] != 1 || per[1] != 2 || other != 3 {
				t.Errorf("counts %v, other %d; want [1 2], 3", per, other)
			}
			if out, err := l.Output(l.Balancer.NS, "ping", "-c1", "-W2", l.Reals[0].Addr4.String()); err != nil {
				t.Errorf("ping through the drop point: %v\n%s", err, out)
			}
		})
	}
}
