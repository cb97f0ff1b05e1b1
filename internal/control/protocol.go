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

// The control protocol, version 1. A client connects to the daemon's unix
// socket and writes one Request as a single line of JSON:
//
//	{"v":1,"argv":["-Lcn","--persistent-conn"],"program":"xvsadm"}
//
// The daemon parses argv exactly as ipvsadm would (ipvsadm.Parse), carries
// the command out, renders its output with the ipvsadm formatters and answers
// with one or more Response lines: output chunks, then a final line with
// "done" and the exit status:
//
//	{"v":1,"stdout":"IPVS connection entries\n…"}
//	{"v":1,"code":0,"done":true}
//
// Shipping argv (not a structured command) keeps the client thin and makes
// the output the same bytes whoever renders it. -R sends the rules text in
// "stdin". One request per connection.
const (
	// ProtocolVersion is the version this package speaks.
	ProtocolVersion = 1

	// MaxRequestBytes bounds one request line: room for a rules file of
	// well over 100 000 services (an -a line is under 100 bytes) while
	// keeping a hostile client from making the daemon buffer more.
	MaxRequestBytes = 32 << 20

	// MaxArgs bounds argv (ipvsadm's longest meaningful command line has
	// about 30 arguments).
	MaxArgs = 256

	// chunkBytes is the largest stdout piece one Response carries, so that a
	// listing of a million templates (about 100 MB) streams instead of
	// being encoded as one JSON string.
	chunkBytes = 256 << 10

	// DefaultSocket is the control socket of `xvs run` and xvsadm.
	DefaultSocket = "/run/xvs/xvs.sock"
)

// Request is one control request.
type Request struct {
	V    int      `json:"v"`
	Argv []string `json:"argv"`
	// Stdin is the rules text of -R (ipvsadm reads it from standard input).
	Stdin string `json:"stdin,omitempty"`
	// Program is the client's name for messages ("Try `xvsadm -h' …");
	// empty means "xvsadm".
	Program string `json:"program,omitempty"`
}

// Response is one line of the answer. Lines before the last carry output;
// the last has Done and the exit status in Code.
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
	ErrPermission = errors.New("Permission denied (you must be root)")
	// ErrProtocol: the daemon's answer does not follow the protocol.
	ErrProtocol = errors.New("malformed answer from xvs")
)

// Call sends req to the daemon listening on path, copies the answer's
// output to stdout and stderr as it arrives, and returns the command's exit
// status. Connection errors wrap ErrNotRunning or ErrPermission.
func Call(ctx context.Context, path string, req Request, stdout, stderr io.Writer) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return 0, fmt.Errorf("cannot connect to xvs at %s: %w", path, ErrNotRunning)
		case errors.Is(err, os.ErrPermission):
			return 0, fmt.Errorf("cannot connect to xvs at %s: %w", path, ErrPermission)
		}
		return 0, fmt.Errorf("cannot connect to xvs at %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if req.V == 0 {
		req.V = ProtocolVersion
	}
	line, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return 0, fmt.Errorf("sending to xvs at %s: %w", path, err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	for {
		var r Response
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("reading from xvs at %s: %w (%w)", path, ErrProtocol, err)
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
