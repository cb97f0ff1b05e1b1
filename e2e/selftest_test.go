package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// TestRootIPVSSelftest is the Linux kernel's own IPVS end-to-end test
// (tools/testing/selftests/net/netfilter/ipvs.sh, DR and NAT over IPv4)
// with xvs as the director: the same three namespaces and addresses (a
// client, a director with one leg on the client network and one on the
// server network, a real server), the offloads at the kernel's defaults as
// the selftest leaves them, the same service (-A -t 207.175.44.110:8080 -s
// rr, one real server by -g or -m), and TCP through it. xvs serves both of
// the director's legs where the selftest used ipvsadm. The client sends the
// selftest's 32 random bytes, which must reach the real server intact with
// no retransmission (the first SYN-ACK of NAT included), then a 1 MiB
// stream that segmentation offload and checksum offload shape.
func TestRootIPVSSelftest(t *testing.T) {
	testenv.NeedLab(t)
	for _, method := range []string{"dr", "nat"} {
		t.Run(method, func(t *testing.T) {
			s, err := lab.NewSelftest(true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			flag := "-g"
			if method == "dr" {
				err = s.UseDirectRouting()
			} else {
				err = s.UseNAT()
				flag = "-m"
			}
			if err != nil {
				t.Fatal(err)
			}
			vip := netip.AddrPortFrom(lab.SelftestVIP, lab.SelftestPort)
			real := netip.AddrPortFrom(lab.SelftestReal, lab.SelftestPort)
			srv := startSumServer(t, s.Real)
			dir := t.TempDir()
			rf := filepath.Join(dir, "rules")
			os.WriteFile(rf, fmt.Appendf(nil, "-A -t %v -s rr\n-a -t %v -r %v %s\n", vip, vip, real, flag), 0o644)
			b, err := startXVSIn(t, s.Director, "run", "--iface", "veth10", "--iface", "veth12", "--rules", rf, "--mode", "afxdp",
				"--control", filepath.Join(dir, "xvs.sock"), "--metrics", ctlMetrics, "--templates", "4096", "--conns", "4096")
			if err != nil {
				t.Fatal(err)
			}
			small := make([]byte, 32) // the selftest's datalen
			rand.Read(small)
			retrans, err := sendSummed(t, s.Client, vip, small)
			if err != nil {
				t.Fatalf("32 bytes: %v\nxvs:\n%s", err, b.stderr.String())
			}
			if retrans != 0 {
				t.Errorf("32 bytes: %d retransmissions (a first packet was dropped); counters:\n%s", retrans, nonZero(scrape(t, s.Director, ctlMetrics)))
			}
			big := make([]byte, 1<<20)
			rand.Read(big)
			if _, err := sendSummed(t, s.Client, vip, big); err != nil {
				t.Fatalf("1 MiB: %v\nxvs:\n%s", err, b.stderr.String())
			}
			if n := srv.conns(); n != 2 {
				t.Errorf("real server accepted %d connections, want 2", n)
			}
			m := scrape(t, s.Director, ctlMetrics)
			for _, r := range []string{"no_egress", "no_next_hop", "neighbour_overflow", "malformed"} {
				if v, _ := m.sum("xvs_frames_total", map[string]string{"reason": r}); v != 0 {
					t.Errorf("%v frames dropped as %s", v, r)
				}
			}
			if v, _ := m.sum("xvs_checksum_completed_total", nil); v == 0 {
				t.Error("no partial checksum completed, with the offloads at their defaults")
			}
			if v, _ := m.sum("xvs_frames_total", map[string]string{"reason": "nat_reply"}); (v > 0) != (method == "nat") {
				t.Errorf("%v NAT replies", v)
			}
		})
	}
}

// sumServer is a TCP server on port 8080 that answers each connection with
// the SHA-256 of what it read.
type sumServer struct {
	ln net.Listener
	n  chan struct{}
}

func (s *sumServer) conns() int { return len(s.n) }

func startSumServer(t *testing.T, ns string) *sumServer {
	t.Helper()
	s := &sumServer{n: make(chan struct{}, 100)}
	if err := lab.Do(ns, func() (err error) {
		s.ln, err = net.Listen("tcp", fmt.Sprintf(":%d", lab.SelftestPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.n <- struct{}{}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				h := sha256.New()
				io.Copy(h, c)
				c.Write([]byte(hex.EncodeToString(h.Sum(nil))))
			}()
		}
	}()
	return s
}

// sendSummed connects from namespace ns to dst, sends data, and checks the
// server's SHA-256 of it; it returns the connection's retransmissions
// (TCP_INFO) and an error.
func sendSummed(t *testing.T, ns string, dst netip.AddrPort, data []byte) (uint32, error) {
	t.Helper()
	var c net.Conn
	if err := lab.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), 5*time.Second)
		return err
	}); err != nil {
		return 0, fmt.Errorf("connect to %v: %w", dst, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(data); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return 0, fmt.Errorf("read the sum: %w", err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, []byte(hex.EncodeToString(want[:]))) {
		return 0, fmt.Errorf("the real server read other bytes (sum %q)", got)
	}
	var retrans uint32
	if raw, err := c.(*net.TCPConn).SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), syscall.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				retrans = info.Total_retrans
			}
		})
	}
	return retrans, nil
}

// nonZero lists the non-zero frame, neighbour and queue counters, for a
// failure's message.
func nonZero(m series) string {
	var b bytes.Buffer
	for _, e := range m {
		switch e.name {
		case "xvs_frames_total", "xvs_neighbour_held_frames_total", "xvs_emitted_unsent_total", "xvs_checksum_completed_total",
			"xvs_queue_rx_frames_total", "xvs_queue_tx_frames_total", "xvs_queue_tx_dropped_total", "xvs_queue_rx_dropped_total":
			if e.value != 0 {
				fmt.Fprintf(&b, "%s%v %v\n", e.name, e.labels, e.value)
			}
		}
	}
	return b.String()
}
