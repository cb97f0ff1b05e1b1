// Package sipp drives real SIP user agents, SIPp (Debian package
// sip-tester, binary sipp), for end-to-end tests and demos: a UAC that
// places calls (INVITE → 100/180/200 → ACK → pause → BYE → 200; with Dialog,
// an in-dialog INFO → 200 and a second pause before the BYE), each with its
// own Call-ID but all from one source ip:port, so that every call shares
// one UDP 5-tuple as between two SIP proxies; and a UAS that answers them
// and logs the Call-ID of every request it receives, so a test can tell
// which real server saw which call (and reports the requests of calls it
// never had: Strays). The UAS answers OPTIONS with 200, as a SIP server
// does for a balancer's health check.
//
// Both act as RFC 3261 user agents do towards a lossy, reordering network:
// requests are retransmitted from T1 = 500 ms and given up after 64*T1;
// the UAS absorbs late copies of an INVITE and answers a BYE whose ACK was
// lost; the UAC acknowledges a late 2xx again. (SIPp's stock behaviour
// ends such calls as failed, which a real UA would not: a director that
// resumes after a stall delivers the copies it queued.)
//
// The scenarios are in scenarios/ (embedded). Agents run in a network
// namespace through `ip netns exec` when NS is set.
package sipp

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed scenarios/*.xml
var scenarios embed.FS

// Defaults and limits.
const (
	// DefaultRate is the UAC's call rate (calls per second) when none is
	// given: quick, and gentle on a shared 2-core machine.
	DefaultRate = 50
	// DefaultPause is how long each call lasts between ACK and BYE.
	DefaultPause = 200 * time.Millisecond
	// DefaultTimeout is what a UAC run may take, when the caller gives
	// no deadline, beyond the time its calls need to be placed and held
	// (Calls/Rate plus one call's Pause): the last calls' answers, their
	// retransmissions (a request waits up to UAC.GiveUp, 32 s by default)
	// and sipp's exit.
	DefaultTimeout = 60 * time.Second
	// stopGrace is how long a UAS gets to finish after SIGUSR1 before it
	// is killed.
	stopGrace = 3 * time.Second
	// transactionTimeout is how long the UAC waits for an answer, as a
	// real UA does: 64*T1, RFC 3261's timers B (INVITE) and F (BYE).
	transactionTimeout = 64 * 500 * time.Millisecond
	// maxNonInviteRetrans lets the BYE be retransmitted (every T2 = 4 s
	// once the interval has doubled up to it) until timer F expires;
	// SIPp's default of 7 gives up after 23.5 s. (The INVITE's default of
	// 5 already reaches 31.5 s.)
	maxNonInviteRetrans = 10
)

// ErrNotInstalled reports that the sipp binary is missing.
var ErrNotInstalled = errors.New("sipp not found (Debian package sip-tester)")

// Path returns the sipp binary's path.
func Path() (string, error) {
	p, err := exec.LookPath("sipp")
	if err != nil {
		return "", ErrNotInstalled
	}
	return p, nil
}

// command builds sipp args, in namespace ns when set.
func command(ctx context.Context, ns string, args ...string) (*exec.Cmd, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Stdin = nil
	cmd.WaitDelay = stopGrace
	return cmd, nil
}

// writeScenario copies an embedded scenario into dir.
func writeScenario(dir, name string) (string, error) {
	b, err := scenarios.ReadFile("scenarios/" + name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b, 0o644)
}

// hostPort formats ip:port for sipp's command line (IPv6 in brackets).
func hostPort(a netip.AddrPort) string { return a.String() }

// UAC places calls.
type UAC struct {
	// NS is the network namespace to run in ("" = the caller's).
	NS string
	// Local is the source address; its port is shared by every call.
	Local netip.AddrPort
	// Target is the service (a VIP:5060).
	Target netip.AddrPort
	// Calls is how many calls to place (at least 1).
	Calls int
	// Rate is calls per second (0 = DefaultRate); Concurrency bounds
	// simultaneous calls (0 = no bound).
	Rate, Concurrency int
	// Pause is each call's length between ACK and BYE (0 = DefaultPause);
	// with Dialog, between ACK and INFO and again between INFO and BYE.
	Pause time.Duration
	// Dialog sends an in-dialog INFO halfway through each call (the UAS
	// must be a Dialog one too).
	Dialog bool
	// Dir receives the scenario, statistics and logs (a test's TempDir).
	Dir string
	// GiveUp is how long a request waits for its answer before its call
	// fails (0 = transactionTimeout, a real UA's 32 s). Shorten it only
	// where calls are expected to fail (their server died), so that the
	// run does not wait for them.
	GiveUp time.Duration
}

// Result is a UAC run's outcome.
type Result struct {
	Successful, Failed int
	// Retransmissions counts the UAC's retransmitted requests (INVITE
	// and BYE after 500 ms without an answer): datagrams a balancer sees
	// that the UAS's Call-ID log does not list.
	Retransmissions int
	// ExitCode is sipp's: 0 when every call succeeded, 1 when at least
	// one failed, 97+ for sipp's own errors.
	ExitCode int
	// Output is sipp's standard error and the end of its standard output.
	Output string
}

// Run places the calls and waits for sipp to finish (or ctx to end).
func (u UAC) Run(ctx context.Context) (Result, error) {
	if u.Calls < 1 || !u.Local.IsValid() || !u.Target.IsValid() || u.Dir == "" {
		return Result{}, fmt.Errorf("sipp: UAC needs Calls, Local, Target and Dir")
	}
	rate := u.Rate
	if rate <= 0 {
		rate = DefaultRate
	}
	pause := u.Pause
	if pause <= 0 {
		pause = DefaultPause
	}
	giveUp := u.GiveUp
	if giveUp <= 0 {
		giveUp = transactionTimeout
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.timeout(rate, pause))
		defer cancel()
	}
	name := "uac.xml"
	if u.Dialog {
		name = "uac_dialog.xml"
	}
	sf, err := writeScenario(u.Dir, name)
	if err != nil {
		return Result{}, err
	}
	stats := filepath.Join(u.Dir, "uac_stats.csv")
	args := []string{hostPort(u.Target),
		"-sf", sf, "-t", "u1", "-nostdin",
		"-i", u.Local.Addr().String(), "-p", strconv.Itoa(int(u.Local.Port())),
		"-m", strconv.Itoa(u.Calls), "-r", strconv.Itoa(rate), "-rp", "1000",
		"-d", strconv.Itoa(int(pause / time.Millisecond)),
		"-recv_timeout", strconv.Itoa(int(giveUp / time.Millisecond)), "-timeout_error",
		"-max_non_invite_retrans", strconv.Itoa(maxNonInviteRetrans),
		"-trace_stat", "-stf", stats, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(u.Dir, "uac_errors.log"),
	}
	if u.Concurrency > 0 {
		args = append(args, "-l", strconv.Itoa(u.Concurrency))
	}
	if d, ok := ctx.Deadline(); ok {
		// sipp's own global timeout, a little before ours, so it reports.
		if s := int(time.Until(d)/time.Second) - 2; s > 0 {
			args = append(args, "-timeout", strconv.Itoa(s)+"s")
		}
	}
	cmd, err := command(ctx, u.NS, args...)
	if err != nil {
		return Result{}, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	res := Result{Output: errb.String() + tail(out.String(), 4000)}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		return res, fmt.Errorf("sipp: UAC: %w", runErr)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("sipp: UAC: %w", ctx.Err())
	}
	res.Successful, res.Failed, res.Retransmissions, err = readStats(stats)
	if err != nil {
		return res, err
	}
	return res, nil
}

// timeout bounds a run without a caller's deadline: placing the calls at
// rate takes Calls/rate seconds (18 000 calls at 60/s: five minutes), each
// lasts pause, and DefaultTimeout covers the rest.
func (u UAC) timeout(rate int, pause time.Duration) time.Duration {
	return time.Duration(u.Calls)*time.Second/time.Duration(rate) + pause + DefaultTimeout
}

// readStats reads the cumulative successful and failed call counts and
// retransmissions from the last line of sipp's statistics file
// (semicolon-separated, header first).
func readStats(path string) (ok, failed, retrans int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sipp: statistics: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, 0, 0, fmt.Errorf("sipp: statistics file %s has no data", path)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	col := func(name string) (int, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return strconv.Atoi(strings.TrimSpace(last[i]))
			}
		}
		return 0, fmt.Errorf("sipp: statistics: no column %s", name)
	}
	if ok, err = col("SuccessfulCall(C)"); err != nil {
		return 0, 0, 0, err
	}
	if failed, err = col("FailedCall(C)"); err != nil {
		return 0, 0, 0, err
	}
	retrans, err = col("Retransmissions(C)")
	return ok, failed, retrans, err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// UAS answers calls until stopped.
type UAS struct {
	// NS is the network namespace to run in ("" = the caller's).
	NS string
	// Addr is the address to listen on: the real server's own address
	// for NAT, the VIP (on its loopback) for direct routing, so that
	// answers leave from it.
	Addr netip.AddrPort
	// Dir receives the scenario and the Call-ID log.
	Dir string
	// Dialog answers the Dialog UAC's in-dialog INFO.
	Dialog bool
}

// Server is a running UAS.
type Server struct {
	cmd  *exec.Cmd
	log  string
	errs string // -error_file
	out  bytes.Buffer
	done chan error
}

// Start starts the UAS; stop it with Stop.
func (u UAS) Start(ctx context.Context) (*Server, error) {
	if !u.Addr.IsValid() || u.Dir == "" {
		return nil, fmt.Errorf("sipp: UAS needs Addr and Dir")
	}
	name := "uas.xml"
	if u.Dialog {
		name = "uas_dialog.xml"
	}
	sf, err := writeScenario(u.Dir, name)
	if err != nil {
		return nil, err
	}
	s := &Server{log: filepath.Join(u.Dir, "uas_calls.log"), errs: filepath.Join(u.Dir, "uas_errors.log"), done: make(chan error, 1)}
	args := []string{"-sf", sf, "-t", "u1", "-nostdin",
		"-i", u.Addr.Addr().String(), "-p", strconv.Itoa(int(u.Addr.Port())), "-bind_local",
		"-trace_logs", "-log_file", s.log,
		"-aa", // answer OPTIONS (health checks), INFO, NOTIFY, UPDATE with 200
		"-default_behaviors", "all,-abortunexp",
		"-trace_err", "-error_file", s.errs,
	}
	s.cmd, err = command(ctx, u.NS, args...)
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sipp: UAS: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	// Ready when its UDP port is bound (sipp creates the log file before
	// its socket: a request sent then would be refused). Bounded wait.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if udpBound(s.cmd.Process.Pid, u.Addr) {
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("sipp: UAS exited at start: %v: %s", err, tail(s.out.String(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("sipp: UAS did not start within 5s: %s", tail(s.out.String(), 2000))
		}
	}
}

// Stop asks the UAS to finish (SIGUSR1: sipp ends when its calls have) and
// kills it after a grace period. It is safe to call twice.
func (s *Server) Stop() error {
	if s.cmd.Process == nil {
		return nil
	}
	// `ip netns exec` execs sipp, so the process is sipp itself.
	_ = s.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.done <- nil // for a second Stop
	return nil
}

// SIPp's -error_file events for a request the scenario did not expect
// (sipp's call::process_unexpected; -default_behaviors keeps the call): a
// BYE ("… unexpected BYE for call: ID", the next event's date follows
// without a newline) and any other message ("… unexpected message for
// Call-Id 'ID': while expecting 'M' (index N), received 'REQUEST…").
var (
	unexpectedBYE = regexp.MustCompile(`Continuing call on an unexpected BYE for call: (.+?)(?:\d{4}-\d\d-\d\d\t|\r?\n|$)`)
	unexpectedMsg = regexp.MustCompile(`Continuing call on unexpected message for Call-Id '([^']*)': while expecting '[^']*' \(index (\d+)\), received '(\S+)`)
)

// unexpected reads the UAS's error file: the Call-IDs of the late INVITE
// copies it ignored while answering, and of the in-dialog requests (ACK,
// BYE) that came for calls it did not have.
func (s *Server) unexpected() (copies, strays map[string]int, err error) {
	copies, strays = map[string]int{}, map[string]int{}
	b, err := os.ReadFile(s.errs)
	switch {
	case errors.Is(err, os.ErrNotExist): // sipp creates it at the first error
		return copies, strays, nil
	case err != nil:
		return nil, nil, fmt.Errorf("sipp: UAS errors: %w", err)
	}
	for _, m := range unexpectedBYE.FindAllSubmatch(b, -1) {
		strays[string(m[1])]++
	}
	for _, m := range unexpectedMsg.FindAllSubmatch(b, -1) {
		id, index, method := string(m[1]), string(m[2]), string(m[3])
		switch {
		case method == "INVITE" && index != "0":
			copies[id]++
		case method != "INVITE" && index == "0":
			strays[id]++
		}
	}
	return copies, strays, nil
}

// LateCopies returns how many late copies of its calls' INVITEs the UAS
// has taken so far (see scenarios/uas.xml): those it absorbed after its
// 200, and those that came while it was answering and that it ignored.
func (s *Server) LateCopies() (int, error) {
	f, err := os.Open(s.log)
	if err != nil {
		return 0, fmt.Errorf("sipp: UAS log: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "INVITE-copy ") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	copies, _, err := s.unexpected()
	if err != nil {
		return 0, err
	}
	for _, k := range copies {
		n += k
	}
	return n, nil
}

// Strays returns the Call-IDs of the in-dialog requests (ACK, BYE) that
// reached the UAS for calls it never had, with how many of each: requests
// of calls that another server set up, which a load balancer split. The
// scenario cannot log them (they do not start it); SIPp reports them in
// its error file.
func (s *Server) Strays() (map[string]int, error) {
	_, strays, err := s.unexpected()
	return strays, err
}

// CallIDs returns how many requests of each Call-ID the UAS has logged so
// far.
func (s *Server) CallIDs() (map[string]int, error) {
	f, err := os.Open(s.log)
	if err != nil {
		return nil, fmt.Errorf("sipp: UAS log: %w", err)
	}
	defer f.Close()
	ids := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "INVITE <call-id>" (sipp may prefix nothing else).
		method, id, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || (method != "INVITE" && method != "ACK" && method != "INFO" && method != "BYE") {
			continue
		}
		ids[id]++
	}
	return ids, sc.Err()
}

// udpBound reports whether a UDP socket is bound to addr in the network
// namespace of process pid: its /proc/PID/net/udp or udp6 lists addr as a
// local address (HEXADDR:HEXPORT, the address in 32-bit words of host
// byte order, little-endian here).
func udpBound(pid int, addr netip.AddrPort) bool {
	a := addr.Addr().Unmap()
	file, raw := "udp", a.AsSlice()
	if a.Is6() {
		file = "udp6"
	}
	var want strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&want, "%02X%02X%02X%02X", raw[i+3], raw[i+2], raw[i+1], raw[i])
	}
	fmt.Fprintf(&want, ":%04X", addr.Port())
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if fs := strings.Fields(line); len(fs) > 1 && fs[1] == want.String() {
			return true
		}
	}
	return false
}
