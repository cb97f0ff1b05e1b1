// Command xvsadm administers a running xvs daemon with ipvsadm's syntax.
//
// It parses the command line itself first, so usage errors are instant and
// identical to ipvsadm's, answers -h and -v locally, and sends everything
// else (argv, and the rules text of -R read from standard input) to the
// daemon's control socket, which runs the command and renders the output.
// The socket is --control PATH (before the ipvsadm arguments), else
// $XVS_CONTROL, else /run/xvs/xvs.sock. Each wait for the daemon is bounded
// by --control-timeout DURATION, else $XVS_CONTROL_TIMEOUT, else 10s.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	timeout := control.DefaultClientTimeout
	if v := getenv("XVS_CONTROL_TIMEOUT"); v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			fmt.Fprintf(stderr, "%s: XVS_CONTROL_TIMEOUT: %v\n", program, err)
			return ipvsadm.ExitUsage
		}
		timeout = d
	}
	for len(args) > 0 {
		name, val, hasVal := strings.Cut(args[0], "=")
		if name != "--control" && name != "--control-timeout" {
			break
		}
		if !hasVal {
			if len(args) < 2 {
				fmt.Fprintf(stderr, "%s: %s needs a value\n", program, name)
				return ipvsadm.ExitUsage
			}
			val, args = args[1], args[1:]
		}
		args = args[1:]
		if name == "--control" {
			path = val
			continue
		}
		d, err := parseTimeout(val)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --control-timeout: %v\n", program, err)
			return ipvsadm.ExitUsage
		}
		timeout = d
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
		text, err := io.ReadAll(io.LimitReader(stdin, ipvsadm.MaxRulesBytes+1))
		if err != nil {
			fmt.Fprintf(stderr, "%s: reading rules: %v\n", program, err)
			return ipvsadm.ExitUsage
		}
		if len(text) > ipvsadm.MaxRulesBytes {
			fmt.Fprintf(stderr, "%s: rules: more than %d bytes: %v\n", program, ipvsadm.MaxRulesBytes, ipvsadm.ErrRulesTooLarge)
			return ipvsadm.ExitUsage
		}
		req.Stdin = string(text)
	}
	code, err := control.Client{Path: path, Timeout: timeout}.Call(ctx, req, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return ipvsadm.ExitUsage
	}
	return code
}

// parseTimeout takes a Go duration ("10s", "1m30s") or whole seconds.
func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, aerr := strconv.Atoi(v)
		if aerr != nil {
			return 0, fmt.Errorf("%q: want a duration such as 10s", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a duration above 0", v)
	}
	return d, nil
}
