package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// memRunner returns a prepared Runner over an in-memory queue, its worker
// serving one SIP service (-o, rr) NAT to two real servers.
func memRunner(t *testing.T) (*Runner, *dataplane.MemQueue) {
	t.Helper()
	cfg, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err := rules.Read(cfg, strings.NewReader("-A -u 10.0.0.1:5060 -s rr -p 60 --pe sip -o\n-a -u 10.0.0.1:5060 -r 192.168.0.1 -m\n-a -u 10.0.0.1:5060 -r 192.168.0.2 -m\n"), "t"); err != nil {
		t.Fatal(err)
	}
	svc := cfg.Snapshot().Services()[0]
	for i, d := range svc.Dests {
		cfg.SetNextHop(svc.Key, d.Addr, [6]byte{2, 0, 0, 0, 0, byte(i + 1)})
	}
	var snap atomic.Pointer[ipvs.Snapshot]
	snap.Store(cfg.Snapshot())
	w, err := pipeline.NewWorker(pipeline.Options{Config: &snap, Templates: 1024, Conns: 1024})
	if err != nil {
		t.Fatal(err)
	}
	q := dataplane.NewMemQueue(packet.LinkEthernet)
	r := &Runner{Queue: q, Worker: w, PollTimeout: 5 * time.Millisecond}
	r.Prepare()
	return r, q
}

func TestRunnerForwardsAndRecycles(t *testing.T) {
	r, q := memRunner(t)
	done := make(chan error, 1)
	go func() { done <- r.Run() }()

	var frames [][]byte
	for i := range 100 {
		id := fmt.Sprintf("call-%d", i%10)
		frames = append(frames, craft.Spec{Src: netip.MustParseAddrPort("10.9.0.1:5060"), Dst: netip.MustParseAddrPort("10.0.0.1:5060"), Payload: craft.SIPInvite(id)}.Build())
	}
	frames = append(frames, craft.Spec{Src: netip.MustParseAddrPort("10.9.0.1:5060"), Dst: netip.MustParseAddrPort("10.0.0.9:5060"), Payload: craft.SIPInvite("x")}.Build())
	q.Inject(frames...)
	deadline := time.Now().Add(5 * time.Second)
	for q.Stats().TxFrames+q.Stats().Recycled < 101 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", q.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	sent := q.Sent()
	if len(sent) != 100 || q.Stats().Recycled != 1 {
		t.Fatalf("sent %d recycled %d, want 100 and 1 (the frame for no service)", len(sent), q.Stats().Recycled)
	}
	var p packet.Parsed
	where := map[string]netip.Addr{}
	for _, f := range sent {
		if p.Decode(f, packet.LinkEthernet) != packet.ReasonOK || !p.VerifyChecksums(f) {
			t.Fatal("sent frame invalid")
		}
		id := string(f[strings.Index(string(f), "Call-ID: ")+9:][:7])
		if prev, ok := where[id]; ok && prev != p.Dst {
			t.Fatalf("%s on %v and %v", id, prev, p.Dst)
		}
		where[id] = p.Dst
	}

	// The control plane reads the worker's table on the worker's goroutine.
	var live uint64
	if err := r.Do(context.Background(), func(w *pipeline.Worker) { live = w.Templates().Stats().Live }); err != nil {
		t.Fatal(err)
	}
	if live != 10 {
		t.Fatalf("live templates %d, want 10", live)
	}
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFilterOf(t *testing.T) {
	cfg, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	rules.Read(cfg, strings.NewReader(`
-A -u 10.0.0.1:5060 -p 60 --pe sip -o
-a -u 10.0.0.1:5060 -r 192.168.0.1:5070 -m
-a -u 10.0.0.1:5060 -r 192.168.0.2 -g
-A -t [2001:db8::1]:443
-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m
`), "t")
	f := FilterOf(cfg.Snapshot())
	if len(f.Services) != 2 || len(f.RealServers) != 2 {
		t.Fatalf("%+v", f)
	}
	if f.RealServers[0].Addr.String() != "192.168.0.1:5070" || f.RealServers[1].Protocol != uint8(ipvs.TCP) {
		t.Fatalf("NAT real servers %+v (direct-routing servers need no return path)", f.RealServers)
	}
}

// Fragments that arrive before their first fragment wait in the worker and
// leave through TransmitCopies once it is decided; every fragment reaches
// the real server of its Call-ID.
func TestRunnerEmitsHeldFragments(t *testing.T) {
	r, q := memRunner(t)
	w := r.Worker
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	payload := append(craft.SIPInvite("frag-call"), make([]byte, 1500)...)
	frags := craft.Fragment(craft.Spec{Src: netip.MustParseAddrPort("10.9.0.1:5060"), Dst: netip.MustParseAddrPort("10.0.0.1:5060"), Payload: payload, ID: 42}, 600)
	for i := len(frags) - 1; i >= 0; i-- {
		q.Inject(frags[i]) // last first, one batch each (or not: either way)
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Stats().TxFrames < uint64(len(frags)) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", q.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var p packet.Parsed
	dst := map[netip.Addr]int{}
	for _, f := range q.Sent() {
		p.Decode(f, packet.LinkEthernet)
		if p.FragID != 42 || !p.VerifyChecksums(f) {
			t.Fatal("sent frame is not a valid fragment of the datagram")
		}
		dst[p.Dst]++
	}
	if len(dst) != 1 {
		t.Fatalf("fragments went to %v", dst)
	}
	if c := w.Counters(); c.Unsent != 0 {
		t.Fatalf("unsent %d", c.Unsent)
	}
}

// TestRunnerPinsItsThread: with Pin, the worker's thread may run on its CPU
// only (what fn sees from the worker's goroutine); a CPU outside the
// process's set is refused with ErrPin and the runner stops.
func TestRunnerPinsItsThread(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for c := range 1024 {
		if allowed.IsSet(c) {
			cpu = c // the last allowed CPU: not always 0
		}
	}
	r, _ := memRunner(t)
	r.Pin, r.CPU = true, cpu
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	var got unix.CPUSet
	var gerr error
	if err := r.Do(context.Background(), func(*pipeline.Worker) { gerr = unix.SchedGetaffinity(0, &got) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil || got.Count() != 1 || !got.IsSet(cpu) {
		t.Errorf("worker thread's CPUs: %d set, CPU %d set: %v, %v", got.Count(), cpu, got.IsSet(cpu), gerr)
	}
	r.Queue.(*dataplane.MemQueue).Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	r, _ = memRunner(t)
	r.Pin, r.CPU = true, 1023 // no VM here has 1024 CPUs in its set
	if allowed.IsSet(1023) {
		t.Skip("CPU 1023 is allowed")
	}
	if err := r.Run(); !errors.Is(err, ErrPin) {
		t.Errorf("pinning to CPU 1023: %v", err)
	}
}

// TestRunnerNice: with Nice, the worker's thread runs at that nice value
// (what fn sees from the worker's goroutine) and the rest of the process
// does not; a value the kernel refuses stops the runner with ErrNice.
func TestRunnerNice(t *testing.T) {
	threadNice := func() (int, error) {
		b, err := os.ReadFile("/proc/thread-self/stat")
		if err != nil {
			return 0, err
		}
		// pid (comm) state ppid …: nice is the 19th field, the 17th after
		// the command's closing parenthesis.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		return strconv.Atoi(f[16])
	}
	want := 7 // raising one's own nice value needs no privilege
	if os.Geteuid() == 0 {
		want = -5
	}
	r, _ := memRunner(t)
	r.Nice = want
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	var got int
	var gerr error
	if err := r.Do(context.Background(), func(*pipeline.Worker) { got, gerr = threadNice() }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil || got != want {
		t.Errorf("worker thread's nice %d (%v), want %d", got, gerr, want)
	}
	runtime.LockOSThread()
	own, err := threadNice()
	runtime.UnlockOSThread()
	if err != nil || own == want {
		t.Errorf("the test's own thread is at nice %d (%v)", own, err)
	}
	r.Queue.(*dataplane.MemQueue).Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() == 0 {
		return // root may take any value
	}
	r, _ = memRunner(t)
	r.Nice = -5
	if err := r.Run(); !errors.Is(err, ErrNice) {
		t.Errorf("nice -5 without privilege: %v", err)
	}
}
