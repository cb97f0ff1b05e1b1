// Package control is xvs's control plane: the unix-socket server that
// xvsadm talks to, the versioned request/response protocol between them
// (see Request), and the rendering of every ipvsadm listing from the
// daemon's state (with the model's rate estimator, ipvs.Estimator, for
// --rate).
//
// The daemon implements Target. The server parses each request's argv with
// ipvsadm.Parse, applies configuration commands through Target.Apply (or
// Target.ApplyAll for -R, all or nothing), and renders listings with the
// ipvsadm package's formatters from Target.Snapshot, Target.Status and
// Target.EachTemplate/EachConn, so xvsadm prints ipvsadm 1.31's bytes,
// messages and exit statuses. The server never touches the data plane
// itself: the Target's methods hand work to the workers' goroutines.
//
// Every resource a client can make the server hold is bounded (see the
// Server limits): connections (idle ones only for the request line's
// deadline, and never a command slot), commands at once, the request line,
// -R's rules text (ipvsadm.MaxRulesBytes, parsed as it arrives), and a
// listing's memory (tables are read, rendered and sent in pieces). Clients
// get a heartbeat line while a command runs, so that they can bound their
// own waits (Client.Timeout) without cutting long commands short.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xvs-lb/xvs/internal/health"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/internal/sysctl"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// Server limits and defaults.
const (
	// DefaultMaxClients bounds the commands carried out at once; a request
	// beyond it waits for its turn (with heartbeats).
	DefaultMaxClients = 16
	// DefaultMaxConns bounds the connections open at once, idle ones
	// included; one more is answered at once with ErrBusy and closed, so
	// idle or slow clients can neither block the accept loop nor delay
	// another client's command.
	DefaultMaxConns = 64
	// DefaultCommandTimeout bounds one command, listings of every worker's
	// tables included.
	DefaultCommandTimeout = 60 * time.Second
	// DefaultRequestTimeout bounds the time a client may take to send its
	// request line: xvsadm sends it as soon as it is connected.
	DefaultRequestTimeout = 2 * time.Second
	// stdinTimeout bounds each wait for more of -R's rules text.
	stdinTimeout = 10 * time.Second
	// writeTimeout bounds each write of the answer to a client that does
	// not read.
	writeTimeout = 30 * time.Second
	// refuseTimeout bounds the answer to a connection beyond MaxConns.
	refuseTimeout = 100 * time.Millisecond
	// refusalLogInterval limits the log lines about refused connections.
	refusalLogInterval = time.Second
	// maxProgramLen bounds the program name a client asks messages to use.
	maxProgramLen = 64
)

// ErrBusy is the answer to a connection beyond Options.MaxConns.
var ErrBusy = errors.New("too many control connections, try again")

// ExitFailed is ipvsadm's exit status when a command fails in the kernel
// (process_options returns -1).
const ExitFailed = 255

// exitNoService is ipvsadm's exit status when -L names a service that does
// not exist (list_service: exit(1)).
const exitNoService = 1

// Options configure a Server.
type Options struct {
	// Version is xvs's version for -v and -h.
	Version string
	// Names resolves addresses and ports for listings without -n and for
	// -S without -n. The zero value prints addresses numerically and port
	// names from ipvsadm's built-in table.
	Names ipvsadm.Names
	// Estimator supplies --rate. nil: the server runs its own over
	// Target.Snapshot from Start to Close.
	Estimator *ipvs.Estimator
	// MaxClients, MaxConns, RequestTimeout and CommandTimeout: 0 means the
	// defaults.
	MaxClients     int
	MaxConns       int
	RequestTimeout time.Duration
	CommandTimeout time.Duration
	// Log receives one line per refused connection or request and per
	// failed command; nil discards.
	Log *slog.Logger
	// Now is the clock of -L --health's "since" column; nil means time.Now.
	Now func() time.Time
	// Director is the BGP announcer (xvs run with --bgp-…): nil when BGP is
	// off, and then --drain-director is refused and -L --bgp says so.
	Director Director
}

// Server serves the control protocol over a unix socket.
type Server struct {
	target Target
	opts   Options
	est    *ipvs.Estimator

	applyMu sync.Mutex // serializes configuration commands

	ln     *net.UnixListener
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // commands carried out at once
	conns  atomic.Int64  // connections open
	wg     sync.WaitGroup
	once   sync.Once

	refusedMu   sync.Mutex
	refusedLast time.Time // last log line about a connection beyond MaxConns
	refused     int       // connections refused since that line
}

// NewServer returns a server for t; Start makes it listen.
func NewServer(t Target, o Options) *Server {
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{target: t, opts: o, est: o.Estimator, sem: make(chan struct{}, o.MaxClients)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.est == nil {
		s.est = ipvs.NewEstimator(t.Snapshot)
	}
	return s
}

// Estimator returns the rate estimator the server uses.
func (s *Server) Estimator() *ipvs.Estimator { return s.est }

// Start creates the control socket at path (see the package doc of the
// socket rules: mode 0600, safe directory, stale sockets replaced) and
// serves it in the background until Close.
func (s *Server) Start(path string) error {
	ln, err := listen(path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	s.ln, s.path = ln, path
	if s.opts.Estimator == nil {
		s.wg.Go(func() { s.est.Run(s.ctx) })
	}
	s.wg.Go(s.accept)
	return nil
}

// Close stops accepting, removes the socket, cancels the requests in
// flight and waits for them.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		if s.ln != nil {
			err = s.ln.Close()
			// Remove the socket only if it is still ours.
			if fi, e := os.Lstat(s.path); e == nil && fi.Mode().Type() == os.ModeSocket {
				os.Remove(s.path)
			}
		}
		s.wg.Wait()
	})
	return err
}

func (s *Server) accept() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.opts.Log.Warn("control: accept", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if s.conns.Add(1) > int64(s.opts.MaxConns) {
			s.conns.Add(-1)
			s.refuse(c)
			continue
		}
		s.wg.Go(func() {
			defer s.conns.Add(-1)
			s.serveConn(c)
		})
	}
}

// refuse answers a connection beyond MaxConns with ErrBusy, without
// waiting for it: the accept loop never blocks on a client.
func (s *Server) refuse(c *net.UnixConn) {
	c.SetDeadline(time.Now().Add(refuseTimeout))
	w := &respWriter{c: c}
	w.finish([]byte("xvs: "+ErrBusy.Error()+"\n"), ExitFailed)
	c.Close()
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	s.refused++
	if now := time.Now(); now.Sub(s.refusedLast) >= refusalLogInterval {
		s.opts.Log.Warn("control: connections refused", "reason", ErrBusy.Error(), "max", s.opts.MaxConns, "refused", s.refused)
		s.refusedLast, s.refused = now, 0
	}
}

// serveConn answers one request: its line is read within RequestTimeout
// (before it takes a command slot, so a client that sends nothing holds
// only its connection), -R's rules text as it is parsed, and the answer
// streams, with heartbeats while the command runs.
func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(s.ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	w := &respWriter{c: c}
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(s.opts.RequestTimeout))
	req, rerr := readRequest(br)
	// The request line is read first even from a peer that is refused, so
	// that its client is not cut off while it writes: it always gets the
	// answer.
	if peer, ok := peerAllowed(c); !ok {
		s.opts.Log.Warn("control: connection refused", "reason", "peer is not root nor the daemon's user",
			"uid", peer.Uid, "gid", peer.Gid, "pid", peer.Pid)
		w.finish([]byte(ErrPermission.Error()+"\n"), ipvsadm.ExitUsage)
		return
	}
	if rerr != nil {
		s.opts.Log.Warn("control: bad request", "err", rerr)
		w.finish([]byte("xvs: "+rerr.Error()+"\n"), ExitFailed)
		return
	}
	var stdin io.Reader = strings.NewReader(req.Stdin)
	if req.StdinBytes > 0 {
		stdin = io.LimitReader(&timedReader{r: br, c: c, timeout: stdinTimeout}, req.StdinBytes)
	} else {
		c.SetReadDeadline(time.Time{})
	}
	w.startHeartbeat(HeartbeatInterval)
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		w.finish([]byte("xvs: shutting down\n"), ExitFailed)
		return
	}
	defer func() { <-s.sem }()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CommandTimeout)
	defer cancel()
	res := s.execute(ctx, req, stdin, w)
	w.Write(res.Stdout)
	w.finish(res.Stderr, res.Code)
}

// timedReader reads from r (the connection's buffered reader) with a fresh
// read deadline on c before each read.
type timedReader struct {
	r       io.Reader
	c       net.Conn
	timeout time.Duration
}

func (t *timedReader) Read(p []byte) (int, error) {
	t.c.SetReadDeadline(time.Now().Add(t.timeout))
	return t.r.Read(p)
}

// readRequest reads and checks one request line (at most MaxHeaderBytes).
func readRequest(br *bufio.Reader) (Request, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxHeaderBytes {
			return Request{}, fmt.Errorf("request line larger than %d bytes (rules text goes after it, see stdin_bytes)", MaxHeaderBytes)
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			return Request{}, fmt.Errorf("reading request: %w", err)
		}
		break
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	switch {
	case req.V != 1 && req.V != ProtocolVersion:
		return Request{}, fmt.Errorf("control protocol version %d not supported (this xvs speaks 1 and %d)", req.V, ProtocolVersion)
	case len(req.Argv) > MaxArgs:
		return Request{}, fmt.Errorf("more than %d arguments", MaxArgs)
	case req.StdinBytes < 0 || req.StdinBytes > ipvsadm.MaxRulesBytes:
		return Request{}, fmt.Errorf("rules of %d bytes: more than %d bytes: %w", req.StdinBytes, ipvsadm.MaxRulesBytes, ipvsadm.ErrRulesTooLarge)
	}
	return req, nil
}

// respWriter streams an answer as Response lines: output in chunks of at
// most chunkBytes as it is written, heartbeats while nothing else is sent,
// and the final line. It is safe for the heartbeat goroutine and one
// writer.
type respWriter struct {
	mu   sync.Mutex
	c    net.Conn
	err  error
	out  []byte    // output not sent yet
	last time.Time // last line sent
	stop chan struct{}
	done chan struct{}
}

// Write implements io.Writer for the command's standard output.
func (w *respWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), chunkBytes-len(w.out))
		w.out = append(w.out, p[:k]...)
		p = p[k:]
		if len(w.out) == chunkBytes {
			w.send(Response{Stdout: string(w.out)})
			w.out = w.out[:0]
		}
	}
	return n, w.err
}

// send writes one line; w.mu is held.
func (w *respWriter) send(r Response) {
	if w.err != nil {
		return
	}
	r.V = ProtocolVersion
	b, err := json.Marshal(r)
	if err != nil {
		w.err = err
		return
	}
	w.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, w.err = w.c.Write(append(b, '\n'))
	w.last = time.Now()
}

// startHeartbeat sends an empty Response line whenever nothing else was
// sent, so that a line leaves at least every interval, until finish.
func (w *respWriter) startHeartbeat(interval time.Duration) {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
	tick := interval / 4
	go func() {
		defer close(w.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				w.mu.Lock()
				if now.Sub(w.last) >= interval-tick {
					w.send(Response{})
				}
				w.mu.Unlock()
			}
		}
	}()
}

// finish sends the output left and the final line.
func (w *respWriter) finish(stderr []byte, code int) {
	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.send(Response{Stdout: string(w.out), Stderr: string(stderr), Code: code, Done: true})
	w.out = nil
}

// Result is the outcome of one command: what ipvsadm would print on its
// standard output and error, and its exit status.
type Result struct {
	Stdout, Stderr []byte
	Code           int
}

func failed(code int, format string, args ...any) Result {
	return Result{Stderr: fmt.Appendf(nil, format+"\n", args...), Code: code}
}

// Execute carries out one request as ipvsadm would: parse argv, run the
// command against the Target, render the output. It is what the socket
// server runs for each client, exported for in-process callers and tests;
// the output is collected in the Result.
func (s *Server) Execute(ctx context.Context, req Request) Result {
	var out bytes.Buffer
	res := s.execute(ctx, req, strings.NewReader(req.Stdin), &out)
	res.Stdout = append(out.Bytes(), res.Stdout...)
	return res
}

// execute carries out one request. Listings of the data plane's tables are
// written to out as they are produced; the rest of the output is the
// Result's, which follows. stdin is -R's rules text.
func (s *Server) execute(ctx context.Context, req Request, stdin io.Reader, out io.Writer) Result {
	program := req.Program
	if program == "" || len(program) > maxProgramLen || strings.ContainsAny(program, "/\x00\n") {
		program = "xvsadm"
	}
	cmd, err := ipvsadm.Parse(req.Argv)
	if err != nil {
		var ue *ipvsadm.UsageError
		if errors.As(err, &ue) {
			return Result{Stderr: []byte(ue.Stderr(program)), Code: ue.Code}
		}
		return failed(ipvsadm.ExitUsage, "%v", err)
	}
	switch cmd.Kind {
	case ipvsadm.Help:
		return Result{Stdout: []byte(ipvsadm.Usage(program, s.opts.Version, sched.Names(), pe.Names()))}
	case ipvsadm.Version:
		return Result{Stdout: []byte(ipvsadm.VersionText(program, s.opts.Version))}
	case ipvsadm.List:
		return s.list(ctx, cmd, out)
	case ipvsadm.Save:
		return Result{Stdout: SaveRules(s.target.Snapshot(), cmd.Format, s.opts.Names)}
	case ipvsadm.Restore:
		return s.restore(ctx, stdin)
	case ipvsadm.StartDaemon, ipvsadm.StopDaemon:
		return s.daemon(ctx, cmd)
	case ipvsadm.Reload:
		return s.reload(ctx)
	case ipvsadm.SysctlCmd:
		if !cmd.Mutates() {
			return listSysctls(s.target.Snapshot(), cmd.Sysctl)
		}
	case ipvsadm.DrainDirector, ipvsadm.UndrainDirector:
		if s.opts.Director == nil {
			return failed(ExitFailed, "%s: %v", cmd.Kind, ErrNoBGP)
		}
		if err := s.opts.Director.DrainDirector(cmd.Kind == ipvsadm.DrainDirector); err != nil {
			return failed(ExitFailed, "%s: %v", cmd.Kind, err)
		}
		return Result{}
	}
	if !cmd.Mutates() {
		return failed(ExitFailed, "%s: %v", cmd.Kind, rules.ErrNotConfig)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.target.Apply(ctx, cmd); err != nil {
		s.opts.Log.Info("control: command refused", "argv", strings.Join(req.Argv, " "), "err", err)
		return failed(ExitFailed, "%s", KernelMessage(err))
	}
	if cmd.Kind == ipvsadm.Zero {
		s.zeroRates(cmd)
	}
	return Result{}
}

// daemon runs --start-daemon and --stop-daemon, with ipvsadm's messages
// when the daemon of that role runs already ("Daemon has already run") or
// does not run ("No daemon is running").
func (s *Server) daemon(ctx context.Context, cmd ipvsadm.Command) Result {
	sc, ok := s.target.(SyncController)
	if !ok {
		return failed(ExitFailed, "Operation not supported (no connection synchronisation daemon here)")
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var err error
	if cmd.Kind == ipvsadm.StartDaemon {
		err = sc.StartSync(ctx, cmd.Daemon)
	} else {
		err = sc.StopSync(ctx, cmd.Daemon.State)
	}
	if err != nil {
		s.opts.Log.Info("control: sync daemon command refused", "command", cmd.Kind.String(), "state", cmd.Daemon.State.String(), "err", err)
		return failed(ExitFailed, "%s", KernelMessage(err))
	}
	return Result{}
}

// reload runs xvsadm --reload: the Target re-reads its configuration
// files (keepalived.conf) and applies the difference all or nothing.
// Warnings go to stderr; a refusal prints its errors (with file:line) and
// exits 255, the configuration unchanged.
func (s *Server) reload(ctx context.Context) Result {
	r, ok := s.target.(Reloader)
	if !ok {
		return failed(ExitFailed, "Operation not supported (nothing to reload)")
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	warnings, err := r.Reload(ctx)
	var res Result
	for _, w := range warnings {
		res.Stderr = fmt.Appendf(res.Stderr, "%s\n", w)
	}
	if err != nil {
		res.Stderr = fmt.Appendf(res.Stderr, "%s\n", err)
		res.Code = ExitFailed
	}
	return res
}

// zeroRates resets the rate estimates after a successful -Z.
func (s *Server) zeroRates(cmd ipvsadm.Command) {
	if !cmd.Options.Has(ipvsadm.OptService) {
		s.est.Zero(nil)
		return
	}
	k := rules.Key(cmd.Service)
	if snap := s.target.Snapshot(); snap != nil {
		for _, svc := range snap.Services() {
			if svc.Key == k {
				s.est.Zero(svc)
			}
		}
	}
}

// list runs ipvsadm -L in all its forms, with list_all/list_service/
// list_conn/list_timeout/list_daemon's dispatch: -c, --timeout and --daemon
// print only those; otherwise one service (-t/-u) or the whole table.
func (s *Server) list(ctx context.Context, cmd ipvsadm.Command, w io.Writer) Result {
	f := cmd.Format
	if f.BGP {
		return Result{Stdout: ipvsadm.AppendBGP(nil, s.bgpView())}
	}
	snap := s.target.Snapshot()
	var out []byte
	if f.Connections || f.Timeout || f.Daemon {
		if f.Connections {
			if err := s.listConns(ctx, snap, f, w); err != nil {
				return failed(ExitFailed, "%v", err)
			}
		}
		if f.Timeout {
			t := ipvs.DefaultTimeouts
			if snap != nil {
				t = snap.Timeouts
			}
			out = ipvsadm.AppendTimeout(out, ipvsadm.Timeouts{TCP: t.TCP, TCPFin: t.TCPFin, UDP: t.UDP})
		}
		if f.Daemon {
			if sc, ok := s.target.(SyncController); ok {
				out = ipvsadm.AppendDaemon(out, sc.SyncDaemons())
			}
		}
		return Result{Stdout: out}
	}
	rates := s.est.Rates
	views := serviceViews(snap, rates)
	if f.Health {
		s.addHealth(views)
		if cmd.Options.Has(ipvsadm.OptService) {
			v, ok := findService(views, cmd.Service.Protocol, cmd.Service.Addr, cmd.Service.Port)
			if !ok {
				return failed(exitNoService, "%s", ipvs.ErrNoService.Error())
			}
			views = []ipvsadm.ServiceView{v}
		}
		return Result{Stdout: ipvsadm.AppendHealth(nil, views, f, s.opts.Names)}
	}
	if cmd.Options.Has(ipvsadm.OptService) {
		v, ok := findService(views, cmd.Service.Protocol, cmd.Service.Addr, cmd.Service.Port)
		if !ok {
			return failed(exitNoService, "%s", ipvs.ErrNoService.Error())
		}
		return Result{Stdout: ipvsadm.AppendListService(nil, v, f, s.opts.Names)}
	}
	size := s.target.Status().ConnTable
	return Result{Stdout: ipvsadm.AppendList(nil, ipvsadm.Table{ConnTableSize: size, Services: views}, f, s.opts.Names)}
}

// ErrNoBGP refuses --drain-director on a daemon without a BGP speaker.
var ErrNoBGP = errors.New("xvs runs no BGP speaker (xvs run --bgp-asn … --bgp-peer …)")

// bgpView renders the Director's status for -L --bgp.
func (s *Server) bgpView() ipvsadm.BGPView {
	if s.opts.Director == nil {
		return ipvsadm.BGPView{}
	}
	st := s.opts.Director.BGPStatus()
	now := s.opts.Now()
	v := ipvsadm.BGPView{Configured: true, ASN: st.ASN, RouterID: st.RouterID, State: DirectorState(st)}
	for _, p := range st.Peers {
		pv := ipvsadm.BGPPeerView{Addr: p.Addr, ASN: p.ASN, State: p.State.String(), HoldTime: p.HoldTime,
			UpdatesSent: p.UpdatesSent, UpdatesReceived: p.UpdatesReceived, Announced: p.Advertised, LocalAddr: p.LocalAddr}
		if !p.Since.IsZero() {
			pv.Since = max(now.Sub(p.Since), 0)
		}
		v.Peers = append(v.Peers, pv)
	}
	for _, r := range st.Routes {
		v.Routes = append(v.Routes, ipvsadm.BGPRouteView{Prefix: r.Prefix, Announced: r.Announced, Reason: r.Reason,
			NextHop: r.NextHop, MED: r.MED, HasMED: r.HasMED, Communities: r.Communities})
	}
	return v
}

// DirectorState names the director's BGP state: "stopping", "not
// forwarding", "drained" or "announcing" (first that applies).
func DirectorState(st BGPStatus) string {
	switch {
	case st.Stopping:
		return "stopping"
	case !st.Forwarding:
		return "not forwarding"
	case st.Drained:
		return "drained"
	}
	return "announcing"
}

// addHealth adds the health checker's view (when the Target has one) to
// the views of checked real servers (by their service's check or their
// own).
func (s *Server) addHealth(views []ipvsadm.ServiceView) {
	if nr, ok := s.target.(NextHopReporter); ok {
		nhs := nr.NextHops()
		for i := range views {
			for j := range views[i].Dests {
				d := &views[i].Dests[j]
				if nh, ok := nhs[d.Addr]; ok {
					d.NextHop = nextHopNote(nh)
				}
			}
		}
	}
	hr, ok := s.target.(HealthReporter)
	if !ok {
		return
	}
	hs := hr.Health()
	now := s.opts.Now()
	for i := range views {
		v := &views[i]
		k := ipvs.ServiceKey{Protocol: v.Protocol, Addr: v.Addr, Port: v.Port}
		for j := range v.Dests {
			d := &v.Dests[j]
			h, ok := hs[health.Key{Service: k, Server: netip.AddrPortFrom(d.Addr, d.Port)}]
			if !ok {
				continue
			}
			d.Health = &ipvsadm.DestHealth{Checked: h.Checked, Since: max(now.Sub(h.Since), 0), OK: h.OK,
				Failed: h.Failed, Last: h.Last, RTT: h.RTT}
		}
	}
}

// nextHopNote describes a real server's next hop for -L --health when its
// frames cannot simply leave: "" when they can (resolved, or local).
func nextHopNote(nh NextHop) string {
	switch nh.Status {
	case "resolved", "local":
		return ""
	case "unserved":
		if nh.Iface != "" {
			return "not reachable through a served interface (routed via " + nh.Iface + ")"
		}
		return "not reachable through a served interface"
	case "no_route":
		return "no route"
	case "failed":
		return "does not answer ARP/neighbour discovery on " + nh.Iface
	case "incomplete":
		return "resolving on " + nh.Iface
	}
	return nh.Status
}

// listConns writes -Lc: the header, then every worker's templates and then
// connections, converted, rendered and written renderRows at a time as the
// workers hand them over, in table order (the kernel's is hash order), so
// that a listing holds one batch whatever the size of the tables.
func (s *Server) listConns(ctx context.Context, snap *ipvs.Snapshot, f ipvsadm.Format, w io.Writer) error {
	b := ipvsadm.AppendConnsHeader(nil, f)
	var views []ipvsadm.ConnView
	write := func() error {
		b = ipvsadm.AppendConnRows(b, views, f, s.opts.Names)
		_, err := w.Write(b)
		b, views = b[:0], views[:0]
		return err
	}
	if err := s.target.EachTemplate(ctx, func(ts []table.TemplateInfo) error {
		for len(ts) > 0 {
			n := min(len(ts), renderRows)
			views = appendTemplateViews(views, snap, ts[:n])
			if err := write(); err != nil {
				return err
			}
			ts = ts[n:]
		}
		return nil
	}); err != nil {
		return fmt.Errorf("listing templates: %w", err)
	}
	if err := s.target.EachConn(ctx, func(cs []table.ConnInfo) error {
		for len(cs) > 0 {
			n := min(len(cs), renderRows)
			views = appendConnViews(views, cs[:n])
			if err := write(); err != nil {
				return err
			}
			cs = cs[n:]
		}
		return nil
	}); err != nil {
		return fmt.Errorf("listing connections: %w", err)
	}
	if len(b) > 0 {
		_, err := w.Write(b)
		return err
	}
	return nil
}

// renderRows is how many -Lc rows are converted and rendered at a time.
const renderRows = 256

// restore runs ipvsadm -R on the rules text: it is read and parsed as it
// arrives by the reader of every rules file (ipvsadm.ReadRules, with its
// limit: -R takes what xvs run --rules takes) and a syntax error applies
// nothing; then all commands are applied through Target.ApplyAll, all or
// nothing. ipvsadm instead runs the lines one by one and keeps those before
// a failure.
func (s *Server) restore(ctx context.Context, text io.Reader) Result {
	rs, err := ipvsadm.Parser{}.ReadRules(text, "rules")
	if err != nil {
		code := ExitFailed
		var ue *ipvsadm.UsageError
		if errors.As(err, &ue) {
			code = ue.Code
		}
		return failed(code, "%v", err)
	}
	lines := make([]int, len(rs))
	cmds := make([]ipvsadm.Command, len(rs))
	for i, r := range rs {
		if !r.Mutates() {
			return failed(ipvsadm.ExitUsage, "rules:%d: %s: %v", r.Line, r.Kind, rules.ErrNotConfig)
		}
		lines[i], cmds[i] = r.Line, r.Command
	}
	rs = nil
	if len(cmds) == 0 {
		return Result{}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.target.ApplyAll(ctx, cmds); err != nil {
		s.opts.Log.Info("control: -R refused", "commands", len(cmds), "err", err)
		var ce *CommandError
		if errors.As(err, &ce) {
			return failed(ExitFailed, "rules:%d: %s", lineOf(lines, ce.Index), KernelMessage(ce.Err))
		}
		return failed(ExitFailed, "%s", KernelMessage(err))
	}
	for _, c := range cmds {
		if c.Kind == ipvsadm.Zero {
			s.zeroRates(c)
		}
	}
	return Result{}
}

func lineOf(lines []int, i int) int {
	if i >= 0 && i < len(lines) {
		return lines[i]
	}
	return 0
}

// listSysctls answers xvsadm --sysctl [NAME]: every switch xvs honours, or
// one, as sysctl(8) prints them ("net.ipv4.vs.NAME = VALUE").
func listSysctls(snap *ipvs.Snapshot, name string) Result {
	var vals sysctl.Values
	if snap != nil {
		vals = snap.Sysctls
	}
	ids := sysctl.All()
	if name != "" {
		id, err := sysctl.Lookup(name)
		if err != nil {
			return failed(ExitFailed, "%v", err)
		}
		ids = []sysctl.ID{id}
	}
	var out []byte
	for _, id := range ids {
		out = fmt.Appendf(out, "%s%s = %s\n", sysctl.Prefix, id.Name(), vals.Format(id))
	}
	return Result{Stdout: out}
}

// appendSysctlSave appends a --sysctl line for every switch that is not at
// the kernel's default, so that -S output restores them with -R.
func appendSysctlSave(b []byte, snap *ipvs.Snapshot) []byte {
	if snap == nil {
		return b
	}
	for _, id := range sysctl.All() {
		if !snap.Sysctls.IsDefault(id) {
			b = fmt.Appendf(b, "--sysctl %s\n", snap.Sysctls.Setting(id))
		}
	}
	return b
}
