package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoBIRD reports that BIRD 2 is not installed.
var ErrNoBIRD = fmt.Errorf("%w: bird and birdc (Debian package bird2)", ErrNoTool)

// BIRDPeer is one BGP neighbour of the lab router.
type BIRDPeer struct {
	Name string // protocol name, e.g. "d0v4"
	Addr netip.Addr
	ASN  uint32
}

// BIRDSpec configures the router's BIRD.
type BIRDSpec struct {
	ASN      uint32
	RouterID netip.Addr
	Peers    []BIRDPeer
	// HoldTime and Keepalive are the router side's timers (the session
	// uses the smaller hold time of both sides).
	HoldTime, Keepalive time.Duration
}

// BIRDConfig renders a BIRD 2 configuration for the lab router: the
// peers' routes are imported, merged into ECMP routes (merge paths) and
// exported to the kernel; nothing is exported to the peers; BIRD waits for
// the directors to dial (passive).
func BIRDConfig(s BIRDSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device { scan time 1; }\n", s.RouterID)
	for _, f := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, "protocol kernel k%s { %s { import none; export all; }; merge paths on; learn off; }\n", f, f)
	}
	fmt.Fprintf(&b, "template bgp director {\n  local as %d;\n  passive on;\n  hold time %d;\n  keepalive time %d;\n"+
		"  connect retry time 1;\n  error wait time 1, 5;\n  ipv4 { import all; export none; };\n  ipv6 { import all; export none; };\n}\n",
		s.ASN, int(s.HoldTime/time.Second), int(s.Keepalive/time.Second))
	for _, p := range s.Peers {
		fmt.Fprintf(&b, "protocol bgp %s from director { neighbor %s as %d; }\n", p.Name, p.Addr, p.ASN)
	}
	return b.String()
}

// BIRD is a BIRD daemon running in the router namespace with its own
// configuration, control socket and log, never the system's.
type BIRD struct {
	l    *Lab
	dir  string
	sock string
	cmd  *exec.Cmd
	done chan error
}

// StartBIRD runs bird -f with config in the router namespace and waits
// until birdc answers. Lab.Close kills it with the namespace; Stop ends it
// earlier.
func (l *Lab) StartBIRD(config string) (*BIRD, error) {
	bin, err := exec.LookPath("bird")
	if err != nil {
		return nil, ErrNoBIRD
	}
	if _, err := exec.LookPath("birdc"); err != nil {
		return nil, ErrNoBIRD
	}
	dir, err := os.MkdirTemp("", l.Prefix+"-bird-")
	if err != nil {
		return nil, err
	}
	b := &BIRD{l: l, dir: dir, sock: filepath.Join(dir, "bird.ctl"), done: make(chan error, 1)}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("log %q all;\n", filepath.Join(dir, "bird.log"))+config), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.cmd = Command(context.Background(), l.Router.NS, bin, "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	var out strings.Builder
	b.cmd.Stdout, b.cmd.Stderr = &out, &out
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Birdc("show", "status"); err == nil {
			return b, nil
		}
		select {
		case err := <-b.done:
			b.done <- err
			os.RemoveAll(dir)
			return nil, fmt.Errorf("lab: bird exited at start: %v: %s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, errors.New("lab: bird did not answer within 10s")
		}
	}
}

// Birdc runs birdc against this BIRD and returns its output.
func (b *BIRD) Birdc(args ...string) (string, error) {
	return b.l.Output(b.l.Router.NS, "birdc", append([]string{"-s", b.sock}, args...)...)
}

// Log returns BIRD's log so far.
func (b *BIRD) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "bird.log"))
	return string(out)
}

// Stop kills BIRD and removes its files.
func (b *BIRD) Stop() {
	if b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
		}
	}
	os.RemoveAll(b.dir)
}
