package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// The control protocol, version 2. A client connects to the daemon's unix
// socket and writes one Request as a single line of JSON:
//
//	{"v":2,"argv":["-Lcn","--persistent-conn"],"program":"xvsadm"}
//
// -R's rules text follows the line as raw bytes, their count in
// "stdin_bytes", so that the daemon parses it as it arrives instead of
// buffering a JSON string:
//
//	{"v":2,"argv":["-R"],"stdin_bytes":1234}
//	-A -u 10.4.3.192:5060 -s rr …
//
// The daemon parses argv exactly as ipvsadm would (ipvsadm.Parse), carries
// the command out, renders its output with the ipvsadm formatters and answers
// with Response lines: output chunks as they are produced, a line with no
// output every HeartbeatInterval while the command runs (so that a client
// can tell a busy daemon from a stopped one), then a final line with "done"
// and the exit status:
//
//	{"v":2,"stdout":"IPVS connection entries\n…","code":0}
//	{"v":2,"code":0,"done":true}
//
// Shipping argv (not a structured command) keeps the client thin and makes
// the output the same bytes whoever renders it. One request per connection.
// Version 1 (the rules text as "stdin" inside the line) is still accepted,
// within MaxHeaderBytes.
const (
	// ProtocolVersion is the version this package speaks.
	ProtocolVersion = 2

	// MaxHeaderBytes bounds the request line: argv (at most MaxArgs
	// arguments, ipvsadm's longest command line is under 1 KiB) and a
	// version-1 client's rules text. -R's rules follow the line, bounded by
	// ipvsadm.MaxRulesBytes, the limit of every rules file.
	MaxHeaderBytes = 64 << 10

	// MaxArgs bounds argv (ipvsadm's longest meaningful command line has
	// about 30 arguments).
	MaxArgs = 256

	// chunkBytes is the largest stdout piece one Response carries: output
	// is sent in pieces of this size as it is produced, which bounds what a
	// listing holds in memory.
	chunkBytes = 256 << 10

	// HeartbeatInterval is how often the daemon sends a Response line
	// without output while a command runs (or waits for its turn).
	HeartbeatInterval = 500 * time.Millisecond

	// DefaultClientTimeout bounds each wait of a client for the daemon:
	// connecting, each write of the request and each line of the answer.
	// A live daemon sends a line at least every HeartbeatInterval, so only
	// a stopped or wedged one trips it.
	DefaultClientTimeout = 10 * time.Second

	// DefaultSocket is the control socket of `xvs run` and xvsadm.
	DefaultSocket = "/run/xvs/xvs.sock"
)

// Request is one control request.
type Request struct {
	V    int      `json:"v"`
	Argv []string `json:"argv"`
	// Stdin is the rules text of -R (ipvsadm reads it from standard input).
	// Call sends it after the request line (StdinBytes); Server.Execute
	// takes it as it is.
	Stdin string `json:"stdin,omitempty"`
	// StdinBytes is the length of the rules text that follows the request
	// line (version 2).
	StdinBytes int64 `json:"stdin_bytes,omitempty"`
	// Program is the client's name for messages ("Try `xvsadm -h' …");
	// empty means "xvsadm".
	Program string `json:"program,omitempty"`
}

// Response is one line of the answer. Lines before the last carry output
// (or nothing: a heartbeat); the last has Done and the exit status in Code.
type Response struct {
	V      int    `json:"v"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Code   int    `json:"code"`
	Done   bool   `json:"done,omitempty"`
}

// Client errors.
var (
	// ErrNotRunning: nothing listens on the socket (no such file, or a
	// stale socket).
	ErrNotRunning = errors.New("is `xvs run` running?")
	// ErrPermission: the socket is not accessible to this user. The text is
	// ipvsadm's (ipvs_strerror for EPERM).
	//lint:ignore ST1005 ipvsadm's message, byte for byte
	ErrPermission = errors.New("Permission denied (you must be root)")
	// ErrProtocol: the daemon's answer does not follow the protocol.
	ErrProtocol = errors.New("malformed answer from xvs")
	// ErrNoAnswer: the daemon took the connection but did not answer in
	// time (stopped with SIGSTOP, or wedged).
	ErrNoAnswer = errors.New("no answer")
)

// Client calls the daemon on its control socket.
type Client struct {
	// Path is the socket.
	Path string
	// Timeout bounds each wait for the daemon (see DefaultClientTimeout);
	// 0 means DefaultClientTimeout.
	Timeout time.Duration
}

// Call sends req to the daemon listening on path with the default timeout;
// see Client.Call.
func Call(ctx context.Context, path string, req Request, stdout, stderr io.Writer) (int, error) {
	return Client{Path: path}.Call(ctx, req, stdout, stderr)
}

// Call sends req, copies the answer's output to stdout and stderr as it
// arrives, and returns the command's exit status. Connection errors wrap
// ErrNotRunning or ErrPermission; a daemon that does not answer within the
// timeout, ErrNoAnswer. A daemon that refuses the request may answer before
// it has read all of it: its answer is read even when sending failed.
func (c Client) Call(ctx context.Context, req Request, stdout, stderr io.Writer) (int, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return 0, fmt.Errorf("cannot connect to xvs at %s: %w", c.Path, ErrNotRunning)
		case errors.Is(err, os.ErrPermission):
			return 0, fmt.Errorf("cannot connect to xvs at %s: %w", c.Path, ErrPermission)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, fmt.Errorf("cannot connect to xvs at %s within %v (is it stopped?): %w", c.Path, timeout, ErrNoAnswer)
		}
		return 0, fmt.Errorf("cannot connect to xvs at %s: %w", c.Path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(what string, err error) error {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s xvs at %s: %w", what, c.Path, ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no answer from xvs at %s within %v (is it stopped?): %w", c.Path, timeout, ErrNoAnswer)
		}
		return fmt.Errorf("%s xvs at %s: %w", what, c.Path, err)
	}

	stdin := req.Stdin
	req.Stdin, req.StdinBytes, req.V = "", int64(len(stdin)), ProtocolVersion
	line, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	werr := writeWithin(conn, string(append(line, '\n')), timeout)
	if werr == nil {
		werr = writeWithin(conn, stdin, timeout)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	for {
		var r Response
		conn.SetReadDeadline(time.Now().Add(timeout))
		if err := dec.Decode(&r); err != nil {
			if werr != nil {
				return 0, fail("sending to", werr)
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			var ne net.Error
			if errors.As(err, &ne) {
				return 0, fail("reading from", err)
			}
			return 0, fmt.Errorf("reading from xvs at %s: %w (%w)", c.Path, ErrProtocol, err)
		}
		if r.Stdout != "" {
			if _, err := io.WriteString(stdout, r.Stdout); err != nil {
				return 0, err
			}
		}
		if r.Stderr != "" {
			io.WriteString(stderr, r.Stderr)
		}
		if r.Done {
			return r.Code, nil
		}
	}
}

// writeWithin writes s in pieces, each within timeout: a daemon that reads
// slowly but steadily gets the whole request, a stopped one trips it.
func writeWithin(c net.Conn, s string, timeout time.Duration) error {
	buf := make([]byte, 0, min(len(s), 64<<10))
	for len(s) > 0 {
		n := min(len(s), 64<<10)
		buf = append(buf[:0], s[:n]...)
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(buf); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}
