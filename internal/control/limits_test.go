package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/testenv"
)

func startServerOpts(t *testing.T, f Target, o Options) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "xvs.sock")
	s := NewServer(f, o)
	if err := s.Start(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// Idle connections hold only a connection slot, for RequestTimeout: they
// do not delay another client's command (issue 10 item 12: 40 idle
// connections delayed -Ln by 19 s); beyond MaxConns a connection is
// answered at once with ErrBusy, and the slots come back.
func TestIdleConnectionsDoNotDelayCommands(t *testing.T) {
	var logs testenv.Buffer
	o := Options{Log: slog.New(slog.NewTextHandler(&logs, nil)), RequestTimeout: time.Minute}
	s, path := startServerOpts(t, listFixture(t), o)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	dial := func(n int) {
		for range n {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
		}
	}
	waitConns(t, s, 0)
	dial(40)
	waitConns(t, s, 40)
	start := time.Now()
	out, _, code := call(t, path, Request{Argv: []string{"-Ln"}})
	if took := time.Since(start); code != 0 || !strings.HasPrefix(out, "IP Virtual Server") || took > time.Second {
		t.Fatalf("-Ln with 40 idle connections: exit %d after %v", code, took)
	}
	// The -Ln connection's slot comes back when its server goroutine
	// ends, which may be after the client has its answer: dialling before
	// would make the last of the next connections one too many.
	waitConns(t, s, 40)
	dial(DefaultMaxConns - 40)
	waitConns(t, s, DefaultMaxConns)
	start = time.Now()
	_, errs, code := call(t, path, Request{Argv: []string{"-Ln"}})
	if took := time.Since(start); code != ExitFailed || errs != "xvs: "+ErrBusy.Error()+"\n" || took > time.Second {
		t.Fatalf("-Ln beyond %d connections: exit %d %q after %v", DefaultMaxConns, code, errs, took)
	}
	// The refusal is logged after the answer is written: wait for it.
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(logs.String(), "control: connections refused") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "control: connections refused") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	waitConns(t, s, 0)
	if _, _, code := call(t, path, Request{Argv: []string{"-Ln"}}); code != 0 {
		t.Fatalf("-Ln once the connections closed: exit %d", code)
	}
}

// A client that sends nothing is dropped after RequestTimeout.
func TestIdleConnectionsTimeOut(t *testing.T) {
	s, path := startServerOpts(t, listFixture(t), Options{RequestTimeout: 200 * time.Millisecond})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitConns(t, s, 1)
	start := time.Now()
	waitConns(t, s, 0)
	var r Response
	if err := jsonDecode(c, &r); err != nil || !r.Done || r.Code != ExitFailed || !strings.Contains(r.Stderr, "i/o timeout") {
		t.Fatalf("answer to an idle client after %v: %+v %v", time.Since(start), r, err)
	}
}

func waitConns(t *testing.T, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.conns.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", s.conns.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// While a command runs, the daemon sends heartbeats, so a client with a
// timeout shorter than the command still gets its answer.
func TestHeartbeatsKeepSlowCommandsAlive(t *testing.T) {
	f := &slowFake{fake: newFake(t, 1, ""), delay: 2500 * time.Millisecond}
	_, path := startServerOpts(t, f, Options{})
	var out, errb bytes.Buffer
	code, err := Client{Path: path, Timeout: 2 * HeartbeatInterval}.Call(t.Context(), Request{Argv: []string{"-A", "-u", "10.0.0.1:5060"}}, &out, &errb)
	if err != nil || code != 0 {
		t.Fatalf("slow command: %d %v %q", code, err, errb.String())
	}
}

type slowFake struct {
	*fake
	delay time.Duration
}

func (f *slowFake) Apply(ctx context.Context, c ipvsadm.Command) error {
	time.Sleep(f.delay)
	return f.fake.Apply(ctx, c)
}

// The request line is bounded, and so is -R's rules text: by the limit of
// every rules file (ipvsadm.MaxRulesBytes), checked before it is read.
func TestRequestSizesBounded(t *testing.T) {
	_, path := startServerOpts(t, newFake(t, 1, ""), Options{})
	raw := func(b []byte) Response {
		t.Helper()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Write(b)
		var r Response
		dec := json.NewDecoder(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for !r.Done {
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	long := append([]byte(`{"v":2,"argv":["-Ln"],"program":"`+strings.Repeat("x", MaxHeaderBytes)+`"}`), '\n')
	if r := raw(long); r.Code != ExitFailed || !strings.Contains(r.Stderr, "request line larger than 65536 bytes") {
		t.Errorf("long request line: %+v", r)
	}
	huge := fmt.Sprintf(`{"v":2,"argv":["-R"],"stdin_bytes":%d}`+"\n", ipvsadm.MaxRulesBytes+1)
	if r := raw([]byte(huge)); r.Code != ExitFailed || !strings.Contains(r.Stderr, "more than 16777216 bytes: rules file too large") {
		t.Errorf("rules over the limit: %+v", r)
	}
	// A version-1 request (rules inside the line) still works.
	v1, _ := json.Marshal(Request{V: 1, Argv: []string{"-R"}, Stdin: "-A -u 10.0.0.9:5060\n"})
	if r := raw(append(v1, '\n')); r.Code != 0 {
		t.Errorf("version-1 -R: %+v", r)
	}
}

// xvsadm -R takes what xvs run --rules takes: both read with
// ipvsadm.ReadRules (issue 10 item 12: a comment line over 64 KiB failed
// -R). A request of the largest size leaves the heap as it was: the rules
// are parsed as they arrive (it was 33 MiB → +200 MB of RSS, kept).
func TestRestoreTakesWhatRulesFilesTake(t *testing.T) {
	f := newFake(t, 1, "")
	_, path := startServerOpts(t, f, Options{})
	text := "# " + strings.Repeat("a long comment ", 10<<10) + "\n-A -u 10.0.0.1:5060 -s rr # and " + strings.Repeat("more ", 20<<10) + "\n"
	if _, errs, code := call(t, path, Request{Argv: []string{"-R"}, Stdin: text}); code != 0 {
		t.Fatalf("-R with comment lines over 64 KiB: %d %q", code, errs)
	}
	if n := len(f.Snapshot().Services()); n != 1 {
		t.Fatalf("%d services after -R", n)
	}
	// Nearly the limit, in comments: the heap does not hold the text.
	big := strings.Repeat("# "+strings.Repeat("c", 1000)+"\n", (ipvsadm.MaxRulesBytes-100)/1003) + "-A -u 10.0.0.2:5060\n"
	growth := livePeak(func() {
		if _, errs, code := call(t, path, Request{Argv: []string{"-R"}, Stdin: big}); code != 0 {
			t.Fatalf("-R of %d bytes: %d %q", len(big), code, errs)
		}
	})
	t.Logf("-R of %d bytes: live heap +%.1f MiB", len(big), float64(growth)/(1<<20))
	if growth > 6<<20 {
		t.Fatalf("-R of %d bytes grew the live heap by %.1f MiB", len(big), float64(growth)/(1<<20))
	}
	over := big + "#" + strings.Repeat("x", ipvsadm.MaxRulesBytes-len(big)) + "\n"
	_, errs, code := call(t, path, Request{Argv: []string{"-R"}, Stdin: over})
	if want := fmt.Sprintf("xvs: rules of %d bytes: more than %d bytes: rules file too large\n", len(over), ipvsadm.MaxRulesBytes); code != ExitFailed || errs != want {
		t.Fatalf("-R over the limit: %d %q, want %q", code, errs, want)
	}
}

// livePeak is the peak growth of the live heap while fn runs (GOGC=5, the
// live heap as marked by each collection, sampled every millisecond).
func livePeak(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return max(peak.Load(), base) - base
}

// A refused peer (SO_PEERCRED: neither root nor the daemon's user, on a
// socket whose mode was widened) is logged and always gets ipvsadm's
// "Permission denied (you must be root)", never a broken pipe, even when it
// is still sending a large -R (issue 10 item 12).
func TestRefusedPeerGetsTheAnswer(t *testing.T) {
	testenv.NeedRoot(t, "run a client as another user")
	dir, err := os.MkdirTemp("", "xvs-peer")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	var logs testenv.Buffer
	path := filepath.Join(dir, "xvs.sock")
	s := NewServer(newFake(t, 1, ""), Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Start(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.Chmod(path, 0o666) // widened by hand
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperUnprivilegedClient$", "-test.v")
	cmd.Env = append(os.Environ(), "XVS_TEST_PEER_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{
		`-Ln: code 2 err <nil> stderr "Permission denied (you must be root)\n"`,
		`-R: code 2 err <nil> stderr "Permission denied (you must be root)\n"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	if l := logs.String(); !strings.Contains(l, `msg="control: connection refused"`) || !strings.Contains(l, "uid=65534") {
		t.Errorf("refusal not logged with the peer's uid:\n%s", l)
	}
}

// TestHelperUnprivilegedClient is TestRefusedPeerGetsTheAnswer's client,
// run as nobody.
func TestHelperUnprivilegedClient(t *testing.T) {
	path := os.Getenv("XVS_TEST_PEER_SOCKET")
	if path == "" {
		t.Skip("a helper of TestRefusedPeerGetsTheAnswer")
	}
	for _, req := range []Request{
		{Argv: []string{"-Ln"}},
		{Argv: []string{"-R"}, Stdin: strings.Repeat("# "+strings.Repeat("x", 1000)+"\n", 4000)},
	} {
		var out, errb bytes.Buffer
		code, err := Call(t.Context(), path, req, &out, &errb)
		fmt.Printf("%s: code %d err %v stderr %q\n", req.Argv[0], code, err, errb.String())
	}
}

// A refused command names what was refused in the daemon's log (--pe foo:
// the engine), while the client gets ipvsadm's message.
func TestRefusedCommandLogged(t *testing.T) {
	var logs testenv.Buffer
	s := NewServer(newFake(t, 1, ""), Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	r := run(t, s, "-A", "-u", "10.0.0.1:5060", "-p", "--pe", "foo")
	if string(r.Stderr) != "Scheduler or persistence engine not found\n" || r.Code != ExitFailed {
		t.Fatalf("--pe foo: %q %d", r.Stderr, r.Code)
	}
	if l := logs.String(); !strings.Contains(l, `persistence engine \"foo\" not found`) {
		t.Fatalf("the log does not name the engine:\n%s", l)
	}
	r = s.Execute(t.Context(), Request{Argv: []string{"-R"}, Stdin: "-A -u 10.0.0.2:5060 -s foo\n"})
	if l := logs.String(); r.Code != ExitFailed || !strings.Contains(l, `scheduler \"foo\" not found`) {
		t.Fatalf("-R -s foo: %d, log:\n%s", r.Code, l)
	}
}
