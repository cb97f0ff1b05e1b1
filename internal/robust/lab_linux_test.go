//go:build linux

package robust

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// Lab flood parameters (CI; XVS_ROBUST_LONG=1 multiplies the durations).
const (
	labTemplates   = 4096 // --templates: small, so the flood overruns it 100s of times
	labLive        = 40   // live dialogs during the floods
	labLiveEvery   = 200 * time.Millisecond
	labSendBatch   = 64 // datagrams per sendmmsg
	labRSSBoundMiB = 64 // allowed RSS growth of the daemon during the floods
)

func labDurations() (callID, junk time.Duration) {
	if long {
		return 180 * time.Second, 60 * time.Second
	}
	return 8 * time.Second, 5 * time.Second
}

// buildBinaries builds xvs and xvsadm into dir.
func buildBinaries(t *testing.T, dir string) (xvs, adm string) {
	t.Helper()
	xvs, err := testenv.Build(dir, "xvs")
	if err == nil {
		adm, err = testenv.Build(dir, "xvsadm")
	}
	if err != nil {
		t.Fatal(err)
	}
	return xvs, adm
}

// sinks are UDP receivers on the real servers: they count every datagram
// and record, for the live dialogs' Call-IDs, which server got them.
type sinks struct {
	total [8]atomic.Uint64
	mu    sync.Mutex
	live  map[string]map[int]int // Call-ID → server index → datagrams
}

func startSinks(t *testing.T, l *lab.Lab, port uint16) *sinks {
	s := &sinks{live: map[string]map[int]int{}}
	for i, r := range l.Reals {
		conn, err := lab.ListenUDP(r.NS, netip.AddrPortFrom(r.Addr4, port).String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadBuffer(4 << 20)
		t.Cleanup(func() { conn.Close() })
		go func() {
			buf := make([]byte, 70000)
			mark := []byte("Call-ID: live-")
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				s.total[i].Add(1)
				j := bytes.Index(buf[:n], mark)
				if j < 0 {
					continue
				}
				rest := buf[j+len("Call-ID: ") : n]
				id := string(rest[:bytes.IndexByte(rest, '\r')])
				s.mu.Lock()
				if s.live[id] == nil {
					s.live[id] = map[int]int{}
				}
				s.live[id][i]++
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// metrics fetches the daemon's /metrics from inside its namespace.
func fetchMetrics(ns, addr string) (string, error) {
	var body []byte
	err := lab.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
		body, err = io.ReadAll(c)
		return err
	})
	return string(body), err
}

// metricSum sums the samples of metric name whose label set contains every
// given label substring.
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func vmRSS(pid int) (kib int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return kib
}

// TestRootFlood runs `xvs run` on AF_XDP in a namespace lab with a small
// template table and floods it from the client side: a flood of unique
// Call-IDs, then a flood of junk datagrams (hostile SIP and non-SIP payloads
// by UDP, malformed frames injected on the server LAN by a packet socket),
// while live dialogs run. It checks the metrics, the listings, the live
// dialogs' affinity, the daemon's RSS, the host, and the frame accounting.
func TestRootFlood(t *testing.T) {
	testenv.NeedLab(t)
	floodDur, junkDur := labDurations()
	dir := t.TempDir()
	xvsBin, admBin := buildBinaries(t, dir)
	l := testenv.Lab(t, lab.Spec{Prefix: "xvsrob", Clients: 1, RealServers: 3})
	const port = 5060
	vipAP := netip.AddrPortFrom(l.VIP4, port)
	var rules strings.Builder
	fmt.Fprintf(&rules, "-A -u %v -s rr -p 60 -M 0.0.0.0 --pe sip -o\n", vipAP)
	for _, r := range l.Reals {
		fmt.Fprintf(&rules, "-a -u %v -r %v -m -w 1\n", vipAP, netip.AddrPortFrom(r.Addr4, port))
	}
	rf := filepath.Join(dir, "rules")
	os.WriteFile(rf, []byte(rules.String()), 0o600)
	sk := startSinks(t, l, port)

	xdpMode := os.Getenv("XVS_ROBUST_XDP_MODE")
	if xdpMode == "" {
		xdpMode = "generic"
	}
	const metricsAddr = "127.0.0.1:9479"
	sock := filepath.Join(dir, "xvs.sock")
	logs := &testenv.Buffer{}
	cmd := lab.Command(context.Background(), l.Balancer.NS, xvsBin, "run", "--iface", lab.HostIface, "--rules", rf,
		"--mode", "afxdp", "--xdp-mode", xdpMode, "--control", sock, "--metrics", metricsAddr,
		"--templates", strconv.Itoa(labTemplates), "--conns", "4096")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("xvs did not exit cleanly on SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("xvs did not exit within 10 s of SIGTERM")
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(logs.String(), "mode="); {
		select {
		case err := <-done:
			t.Fatalf("xvs exited at start: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("xvs did not start within 15 s:\n%s", logs.String())
		}
	}
	pid := cmd.Process.Pid
	var m0 string
	var err error
	for range 50 { // the metrics listener starts beside the data plane
		if m0, err = fetchMetrics(l.Balancer.NS, metricsAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("metrics: %v\n%s", err, logs.String())
	}
	rss0 := vmRSS(pid)
	t.Logf("%s; RSS at start %d KiB", firstLine(logs.String(), "mode="), rss0)

	// Live dialogs: one socket, a datagram per dialog every labLiveEvery.
	c := l.Clients[0]
	liveConn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 5062).String())
	if err != nil {
		t.Fatal(err)
	}
	defer liveConn.Close()
	liveMsgs := make([][]byte, labLive)
	for i := range liveMsgs {
		liveMsgs[i] = craft.SIPInvite(fmt.Sprintf("live-%d@robust", i))
	}
	var liveSent atomic.Uint64
	liveStop := make(chan struct{})
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		tk := time.NewTicker(labLiveEvery)
		defer tk.Stop()
		for {
			for _, m := range liveMsgs {
				if _, err := liveConn.WriteToUDPAddrPort(m, vipAP); err == nil {
					liveSent.Add(1)
				}
			}
			select {
			case <-liveStop:
				return
			case <-tk.C:
			}
		}
	}()
	time.Sleep(time.Second) // every dialog established (and protected) first

	// RSS sampling.
	var rssMax atomic.Int64
	rssStop := make(chan struct{})
	go func() {
		for {
			rssMax.Store(max(rssMax.Load(), int64(vmRSS(pid))))
			select {
			case <-rssStop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer close(rssStop)

	// 1. The Call-ID flood.
	fconn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 5064).String())
	if err != nil {
		t.Fatal(err)
	}
	defer fconn.Close()
	ctrs := make([]Counter, labSendBatch)
	fillFlood := func(msgs []ipv4.Message, _ int, seq uint64) {
		for i := range msgs {
			if msgs[i].Buffers == nil {
				b := CounterInvite(floodDomain)
				ctrs[i], _ = NewCounter(b)
				msgs[i].Buffers = [][]byte{b}
			}
			ctrs[i].Set(seq + uint64(i))
		}
	}
	t0 := time.Now()
	fsent, ferrs := lab.Flood{Batch: labSendBatch, To: net.UDPAddrFromAddrPort(vipAP), Fill: fillFlood}.
		Send([]*ipv4.PacketConn{ipv4.NewPacketConn(fconn)}, t0, floodDur)
	fel := time.Since(t0)
	m1, err := fetchMetrics(l.Balancer.NS, metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	rssFlood := rssMax.Load()

	// 2. The junk flood: hostile payloads by UDP from the client, and
	// malformed frames on the server LAN (from real0, to the balancer's MAC).
	payloads := HostilePayloads(7)
	fillJunk := func(msgs []ipv4.Message, _ int, seq uint64) {
		for i := range msgs {
			p := payloads[(seq+uint64(i))%uint64(len(payloads))].Data
			if len(p) > 60000 { // keep the veth busy with many datagrams, not IP fragments of one
				p = p[:1400]
			}
			msgs[i].Buffers = [][]byte{p}
		}
	}
	lbMACLab, err := lab.MAC(l.Balancer.NS, lab.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	srcMAC, _ := lab.MAC(l.Reals[0].NS, lab.HostIface)
	junkFrames := JunkFrames(craft.Spec{SrcMAC: srcMAC, DstMAC: lbMACLab, Src: netip.AddrPortFrom(c.Addr4, 5066), Dst: vipAP,
		Payload: craft.SIPInvite("junk@robust")})
	var rawSent atomic.Uint64
	rawDone := make(chan error, 1)
	t1 := time.Now()
	go func() {
		rawDone <- lab.Do(l.Reals[0].NS, func() error {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifi, err := net.InterfaceByName(lab.HostIface)
			if err != nil {
				return err
			}
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], lbMACLab[:])
			for k := 0; time.Since(t1) < junkDur; k++ {
				f := junkFrames[k%len(junkFrames)].Data
				if len(f) < 14 {
					continue // the kernel refuses frames shorter than a link header
				}
				if err := unix.Sendto(fd, f, 0, sa); err == nil {
					rawSent.Add(1)
				} else if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINVAL) {
					return err
				}
				if k%64 == 63 {
					time.Sleep(50 * time.Microsecond) // share the cores with the UDP junk
				}
			}
			return nil
		})
	}()
	jconn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 5066).String())
	if err != nil {
		t.Fatal(err)
	}
	defer jconn.Close()
	jsent, jerrs := lab.Flood{Batch: labSendBatch, To: net.UDPAddrFromAddrPort(vipAP), Fill: fillJunk}.
		Send([]*ipv4.PacketConn{ipv4.NewPacketConn(jconn)}, t1, junkDur)
	if err := <-rawDone; err != nil {
		t.Errorf("raw junk sender: %v", err)
	}
	jel := time.Since(t1)

	// Live dialogs continue a little; the host must work; then quiesce.
	hostErr := l.CheckHost(l.Clients[0])
	time.Sleep(time.Second)
	close(liveStop)
	<-liveDone
	time.Sleep(500 * time.Millisecond)
	m2, err := fetchMetrics(l.Balancer.NS, metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	rssEnd := vmRSS(pid)
	listing, err := lab.Exec(l.Balancer.NS, admBin, "--control", sock, "-Lcn", "--persistent-conn")
	if err != nil {
		t.Errorf("xvsadm -Lcn: %v", err)
	}
	stats, _ := lab.Exec(l.Balancer.NS, admBin, "--control", sock, "-Ln", "--stats")
	rows := 0
	for _, line := range strings.Split(listing, "\n") {
		if strings.Contains(line, " sip ") {
			rows++
		}
	}
	stop()

	// Figures.
	d := func(name string, labels ...string) float64 {
		return metricSum(m2, name, labels...) - metricSum(m0, name, labels...)
	}
	d1 := func(name string, labels ...string) float64 {
		return metricSum(m1, name, labels...) - metricSum(m0, name, labels...)
	}
	t.Logf("Call-ID flood %v: sent %d unique-Call-ID INVITEs (%.0f kpps, %d sendmmsg errors); xvs received %.0f frames, created %.0f templates, evicted %.0f probation / %.0f protected, overflow %.0f",
		fel.Round(time.Millisecond), fsent, float64(fsent)/fel.Seconds()/1e3, ferrs, d1("xvs_queue_rx_frames_total"),
		d1("xvs_templates_created_total"), d1("xvs_templates_evicted_total", `segment="probation"`),
		d1("xvs_templates_evicted_total", `segment="protected"`), d1("xvs_templates_overflow_total"))
	t.Logf("junk flood %v: %d hostile UDP datagrams (%.0f kpps, %d errors) + %d raw malformed frames; xvs: malformed %.0f, not_ip %.0f, not_service %.0f, pe fallback %.0f, pe not_found %.0f invalid %.0f too_long %.0f",
		jel.Round(time.Millisecond), jsent, float64(jsent)/jel.Seconds()/1e3, jerrs, rawSent.Load(),
		metricSum(m2, "xvs_frames_total", `reason="malformed"`)-metricSum(m1, "xvs_frames_total", `reason="malformed"`),
		metricSum(m2, "xvs_frames_total", `reason="not_ip"`)-metricSum(m1, "xvs_frames_total", `reason="not_ip"`),
		metricSum(m2, "xvs_frames_total", `reason="not_service"`)-metricSum(m1, "xvs_frames_total", `reason="not_service"`),
		metricSum(m2, "xvs_pe_fallback_total")-metricSum(m1, "xvs_pe_fallback_total"),
		metricSum(m2, "xvs_pe_total", `status="not_found"`)-metricSum(m1, "xvs_pe_total", `status="not_found"`),
		metricSum(m2, "xvs_pe_total", `status="invalid"`)-metricSum(m1, "xvs_pe_total", `status="invalid"`),
		metricSum(m2, "xvs_pe_total", `status="too_long"`)-metricSum(m1, "xvs_pe_total", `status="too_long"`))
	live, capa := metricSum(m2, "xvs_templates"), metricSum(m2, "xvs_templates_capacity")
	rx, tx := d("xvs_queue_rx_frames_total"), d("xvs_queue_tx_frames_total")
	rec, txd := d("xvs_queue_recycled_total"), d("xvs_queue_tx_dropped_total")
	t.Logf("templates %0.f / capacity %.0f; xvsadm -Lcn lists %d templates; queue: rx %.0f = tx %.0f + recycled %.0f + tx_dropped %.0f (diff %.0f); rx_dropped %.0f, rx_ring_full %.0f, fill_ring_empty %.0f",
		live, capa, rows, rx, tx, rec, txd, rx-tx-rec-txd, d("xvs_queue_rx_dropped_total"), d("xvs_queue_rx_ring_full_total"),
		d("xvs_queue_fill_ring_empty_total"))
	t.Logf("RSS: %d KiB at start, max %d KiB during the Call-ID flood, max %d KiB overall, %d KiB at the end",
		rss0, rssFlood, rssMax.Load(), rssEnd)

	// Live dialogs: each on exactly one real server.
	sk.mu.Lock()
	split, seen, got := 0, 0, 0
	for i := range labLive {
		on := sk.live[fmt.Sprintf("live-%d@robust", i)]
		if len(on) > 0 {
			seen++
		}
		if len(on) > 1 {
			split++
			t.Errorf("live dialog %d reached servers %v", i, on)
		}
		for _, n := range on {
			got += n
		}
	}
	sk.mu.Unlock()
	t.Logf("live dialogs: %d/%d kept one real server (%d split); %d of %d datagrams delivered (%.2f%%); sinks got %d/%d/%d datagrams\n%s",
		seen-split, labLive, split, got, liveSent.Load(), pct(got, int(liveSent.Load())),
		sk.total[0].Load(), sk.total[1].Load(), sk.total[2].Load(), stats)

	// What must hold.
	if seen != labLive {
		t.Errorf("%d of %d live dialogs reached no real server", labLive-seen, labLive)
	}
	if capa != labTemplates || live > capa || rows > labTemplates {
		t.Errorf("templates %v, capacity %v, listed %d: want ≤ %d", live, capa, rows, labTemplates)
	}
	if d1("xvs_templates_evicted_total", `segment="probation"`)+d1("xvs_templates_overflow_total") == 0 {
		t.Errorf("the Call-ID flood did not overrun the template table")
	}
	if d("xvs_templates_evicted_total", `segment="protected"`) != 0 {
		t.Errorf("protected (live) templates were evicted")
	}
	if metricSum(m2, "xvs_frames_total", `reason="malformed"`) == metricSum(m1, "xvs_frames_total", `reason="malformed"`) {
		t.Errorf("no malformed frame counted during the junk flood")
	}
	if metricSum(m2, "xvs_pe_fallback_total") == metricSum(m1, "xvs_pe_fallback_total") {
		t.Errorf("no PE fallback counted during the junk flood")
	}
	if rx != tx+rec+txd {
		t.Errorf("frame accounting: rx %.0f != tx %.0f + recycled %.0f + tx_dropped %.0f", rx, tx, rec, txd)
	}
	if grow := int(rssMax.Load()) - rss0; grow > labRSSBoundMiB<<10 {
		t.Errorf("RSS grew by %d KiB (bound %d MiB)", grow, labRSSBoundMiB)
	}
	if hostErr != nil {
		t.Errorf("host after the floods: %v", hostErr)
	}
	if t.Failed() {
		t.Logf("xvs log:\n%s", logs.String())
	}
}

func firstLine(s, substr string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
