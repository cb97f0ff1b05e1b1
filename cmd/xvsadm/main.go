// Command xvsadm administers a running xvs daemon with ipvsadm's syntax.
//
// It parses the command line itself first, so usage errors are instant and
// identical to ipvsadm's, answers -h and -v locally, and sends everything
// else (argv, and the rules text of -R read from standard input) to the
// daemon's control socket, which runs the command and renders the output.
// The socket is --control PATH (before the ipvsadm arguments), else
// $XVS_CONTROL, else /run/xvs/xvs.sock.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/sched"
	"github.com/xvs-lb/xvs/pe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is xvsadm: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	program := "xvsadm"
	if len(args) > 0 {
		program = filepath.Base(args[0])
		args = args[1:]
	}
	path := getenv("XVS_CONTROL")
	if path == "" {
		path = control.DefaultSocket
	}
	for len(args) > 0 && (args[0] == "--control" || strings.HasPrefix(args[0], "--control=")) {
		if v, ok := strings.CutPrefix(args[0], "--control="); ok {
			path, args = v, args[1:]
			continue
		}
		if len(args) < 2 {
			fmt.Fprintf(stderr, "%s: --control needs a socket path\n", program)
			return ipvsadm.ExitUsage
		}
		path, args = args[1], args[2:]
	}

	cmd, err := ipvsadm.Parse(args)
	if err != nil {
		var ue *ipvsadm.UsageError
		if errors.As(err, &ue) {
			io.WriteString(stderr, ue.Stderr(program))
			return ue.Code
		}
		fmt.Fprintln(stderr, err)
		return ipvsadm.ExitUsage
	}
	req := control.Request{Argv: args, Program: program}
	switch cmd.Kind {
	case ipvsadm.Help:
		io.WriteString(stdout, ipvsadm.Usage(program, version, sched.Names(), pe.Names()))
		return 0
	case ipvsadm.Version:
		io.WriteString(stdout, ipvsadm.VersionText(program, version))
		return 0
	case ipvsadm.Restore:
		text, err := io.ReadAll(io.LimitReader(stdin, control.MaxRequestBytes/2+1))
		if err != nil {
			fmt.Fprintf(stderr, "%s: reading rules: %v\n", program, err)
			return ipvsadm.ExitUsage
		}
		if len(text) > control.MaxRequestBytes/2 {
			fmt.Fprintf(stderr, "%s: rules larger than %d bytes\n", program, control.MaxRequestBytes/2)
			return ipvsadm.ExitUsage
		}
		req.Stdin = string(text)
	}
	code, err := control.Call(ctx, path, req, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return ipvsadm.ExitUsage
	}
	return code
}
