// Package control is xvs's control plane: the unix-socket server that
// xvsadm talks to, the versioned request/response protocol between them
// (see Request), the rendering of every ipvsadm listing from the daemon's
// state, and IPVS's rate estimator for --rate.
//
// The daemon implements Target. The server parses each request's argv with
// ipvsadm.Parse, applies configuration commands through Target.Apply (or
// Target.ApplyAll for -R, all or nothing), and renders listings with the
// ipvsadm package's formatters from Target.Snapshot, Target.Status and
// Target.Templates/Conns, so xvsadm prints ipvsadm 1.31's bytes, messages
// and exit statuses. The server never touches the data plane itself: the
// Target's methods hand work to the workers' goroutines.
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
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/internal/sysctl"
	"github.com/xvs-lb/xvs/pe"
)

// Server limits and defaults.
const (
	// DefaultMaxClients bounds the requests served at once; more clients
	// wait in the listen backlog.
	DefaultMaxClients = 16
	// DefaultCommandTimeout bounds one command, listings of every worker's
	// tables included.
	DefaultCommandTimeout = 60 * time.Second
	// requestTimeout bounds the time a client may take to send its request.
	requestTimeout = 10 * time.Second
	// writeTimeout bounds each write of the answer to a client that does
	// not read.
	writeTimeout = 30 * time.Second
	// maxProgramLen bounds the program name a client asks messages to use.
	maxProgramLen = 64
)

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
	Estimator *Estimator
	// MaxClients and CommandTimeout: 0 means the defaults.
	MaxClients     int
	CommandTimeout time.Duration
	// Log receives one line per failed request; nil discards.
	Log *slog.Logger
	// Now is the clock of -L --health's "since" column; nil means time.Now.
	Now func() time.Time
}

// Server serves the control protocol over a unix socket.
type Server struct {
	target Target
	opts   Options
	est    *Estimator

	applyMu sync.Mutex // serializes configuration commands

	ln     *net.UnixListener
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// NewServer returns a server for t; Start makes it listen.
func NewServer(t Target, o Options) *Server {
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
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
		s.est = NewEstimator(t.Snapshot)
	}
	return s
}

// Estimator returns the rate estimator the server uses.
func (s *Server) Estimator() *Estimator { return s.est }

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
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			c.Close()
			return
		}
		s.wg.Go(func() {
			defer func() { <-s.sem }()
			s.serveConn(c)
		})
	}
}

// serveConn answers one request.
func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(s.ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	w := &respWriter{c: c}
	if !peerAllowed(c) {
		w.finish(Result{Stderr: []byte(ErrPermission.Error() + "\n"), Code: ipvsadm.ExitUsage})
		return
	}
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(c)
	if err != nil {
		s.opts.Log.Warn("control: bad request", "err", err)
		w.finish(Result{Stderr: []byte("xvs: " + err.Error() + "\n"), Code: ExitFailed})
		return
	}
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CommandTimeout)
	defer cancel()
	res := s.Execute(ctx, req)
	w.finish(res)
}

// readRequest reads and checks one request line.
func readRequest(r io.Reader) (Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxRequestBytes+1), 64<<10)
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		var buf bytes.Buffer
		buf.Write(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			buf.Write(line)
		}
		line = buf.Bytes()
	}
	if len(line) > MaxRequestBytes {
		return Request{}, fmt.Errorf("request larger than %d bytes", MaxRequestBytes)
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Request{}, fmt.Errorf("reading request: %w", err)
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	if req.V != ProtocolVersion {
		return Request{}, fmt.Errorf("control protocol version %d not supported (this xvs speaks %d)", req.V, ProtocolVersion)
	}
	if len(req.Argv) > MaxArgs {
		return Request{}, fmt.Errorf("more than %d arguments", MaxArgs)
	}
	return req, nil
}

// respWriter streams a Result as Response lines.
type respWriter struct {
	c   net.Conn
	err error
}

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
}

func (w *respWriter) finish(res Result) {
	out := res.Stdout
	for len(out) > chunkBytes {
		w.send(Response{Stdout: string(out[:chunkBytes])})
		out = out[chunkBytes:]
	}
	w.send(Response{Stdout: string(out), Stderr: string(res.Stderr), Code: res.Code, Done: true})
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
// server runs for each client, exported for in-process callers and tests.
func (s *Server) Execute(ctx context.Context, req Request) Result {
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
		return s.list(ctx, cmd)
	case ipvsadm.Save:
		return Result{Stdout: SaveRules(s.target.Snapshot(), cmd.Format, s.opts.Names)}
	case ipvsadm.Restore:
		return s.restore(ctx, req.Stdin)
	case ipvsadm.StartDaemon, ipvsadm.StopDaemon:
		return failed(ExitFailed, "Operation not supported (xvs has no connection synchronisation daemon)")
	case ipvsadm.Reload:
		return s.reload(ctx)
	case ipvsadm.SysctlCmd:
		if !cmd.Mutates() {
			return listSysctls(s.target.Snapshot(), cmd.Sysctl)
		}
	}
	if !cmd.Mutates() {
		return failed(ExitFailed, "%s: %v", cmd.Kind, rules.ErrNotConfig)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.target.Apply(ctx, cmd); err != nil {
		return failed(ExitFailed, "%s", KernelMessage(err))
	}
	if cmd.Kind == ipvsadm.Zero {
		s.zeroRates(cmd)
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
func (s *Server) list(ctx context.Context, cmd ipvsadm.Command) Result {
	f := cmd.Format
	snap := s.target.Snapshot()
	var out []byte
	if f.Connections || f.Timeout || f.Daemon {
		if f.Connections {
			rows, err := s.connRows(ctx, snap)
			if err != nil {
				return failed(ExitFailed, "%v", err)
			}
			out = ipvsadm.AppendConns(out, rows, f, s.opts.Names)
		}
		if f.Timeout {
			t := ipvs.DefaultTimeouts
			if snap != nil {
				t = snap.Timeouts
			}
			out = ipvsadm.AppendTimeout(out, ipvsadm.Timeouts{TCP: t.TCP, TCPFin: t.TCPFin, UDP: t.UDP})
		}
		// --daemon: xvs runs no sync daemon, so there is nothing to list
		// (ipvsadm prints nothing when none runs).
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

// addHealth adds the health checker's view (when the Target has one) to
// the views of checked real servers (by their service's check or their
// own).
func (s *Server) addHealth(views []ipvsadm.ServiceView) {
	hr, ok := s.target.(HealthReporter)
	if !ok {
		return
	}
	hs := hr.Health()
	now := s.opts.Now()
	for i := range views {
		v := &views[i]
		k := ipvs.ServiceKey{Protocol: ipvs.Protocol(v.Protocol), Addr: v.Addr, Port: v.Port}
		for j := range v.Dests {
			d := &v.Dests[j]
			h, ok := hs[HealthKey{k, netip.AddrPortFrom(d.Addr, d.Port)}]
			if !ok {
				continue
			}
			d.Health = &ipvsadm.DestHealth{Checked: h.Checked, Since: max(now.Sub(h.Since), 0), OK: h.OK,
				Failed: h.Failed, Last: h.Last, RTT: h.RTT}
		}
	}
}

// connRows lists templates and connections for -Lc.
func (s *Server) connRows(ctx context.Context, snap *ipvs.Snapshot) ([]ipvsadm.ConnView, error) {
	ts, err := s.target.Templates(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing templates: %w", err)
	}
	cs, err := s.target.Conns(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing connections: %w", err)
	}
	rows := append(templateViews(snap, ts), connViews(cs)...)
	sortConns(rows)
	return rows, nil
}

// restore runs ipvsadm -R on the rules text: every line is parsed first (a
// syntax error applies nothing), then all commands are applied through
// Target.ApplyAll, all or nothing. ipvsadm instead runs the lines one by
// one and keeps those before a failure.
func (s *Server) restore(ctx context.Context, text string) Result {
	cmds, err := ipvsadm.ParseRules(strings.NewReader(text))
	if err != nil {
		code := ipvsadm.ExitUsage
		var ue *ipvsadm.UsageError
		if errors.As(err, &ue) {
			code = ue.Code
		}
		return failed(code, "%v", err)
	}
	lines := ruleLines(text)
	for i, c := range cmds {
		if !c.Mutates() {
			return failed(ipvsadm.ExitUsage, "rules:%d: %s: %v", lineOf(lines, i), c.Kind, rules.ErrNotConfig)
		}
	}
	if len(cmds) == 0 {
		return Result{}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.target.ApplyAll(ctx, cmds); err != nil {
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

// ruleLines returns the 1-based line number of every line of a rules file
// that holds a command, in ParseRules's order.
func ruleLines(text string) []int {
	var lines []int
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), ipvsadm.MaxRuleLineLen)
	n := 0
	for sc.Scan() {
		n++
		if len(ipvsadm.RuleTokens(sc.Text())) > 0 {
			lines = append(lines, n)
		}
	}
	return lines
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
