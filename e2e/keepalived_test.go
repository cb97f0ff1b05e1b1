package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/sipp"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// kaVIP is the virtual address VRRP moves: on the server LAN, so that the
// router finds it by ARP on whichever director keepalived made master
// (unlike the lab's routed VIPs).
var kaVIP = netip.MustParseAddr("10.77.1.100")

// kaConf is one keepalived.conf for both directors: "@lb1" and "@lb2"
// lines (keepalived -i, xvs run --keepalived-id) give lb1 the higher
// priority. keepalived --vrrp reads its vrrp_instance; xvs reads its
// virtual_server; the notify script makes the sync daemon follow VRRP
// (lvs_sync_daemon stays out: keepalived --vrrp would initialise the
// kernel's IPVS for it, and 2.2.7 crashes without IPVS).
const kaConf = `! xvs e2e: one keepalived.conf for VRRP (keepalived --vrrp) and the
! virtual servers (xvs run --keepalived-conf)
global_defs {
    router_id xvs_e2e
    enable_script_security
    script_user root
}

vrrp_instance VI_1 {
    interface eth0
@lb1 state MASTER
@lb1 priority 150
@lb2 state BACKUP
@lb2 priority 100
    virtual_router_id 51
    advert_int 1
    virtual_ipaddress {
        {{VIP}}/24 dev eth0
    }
@lb1 notify "{{NOTIFY}} --mcast-interface eth0 --syncid 51"
}

virtual_server {{VIP}} 5060 {
    protocol UDP
    lvs_sched rr
    lvs_method NAT
    persistence_timeout 60
    persistence_granularity 0.0.0.0
    persistence_engine sip
    ops
    delay_loop 1
{{REALS}}}
`

// keepalived is a running `keepalived --vrrp` in a lab namespace.
type keepalived struct {
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan error
}

func startKeepalived(t *testing.T, ns, conf, id string, env []string) *keepalived {
	t.Helper()
	dir := t.TempDir()
	k := &keepalived{out: &testenv.Buffer{}, done: make(chan error, 1)}
	k.cmd = lab.Command(context.Background(), ns, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
		"--no-syslog", "--config-id", id, "--use-file", conf,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"))
	k.cmd.Env = append(os.Environ(), env...)
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.done <- k.cmd.Wait() }()
	t.Cleanup(func() { k.stop(t) })
	return k
}

func (k *keepalived) stop(t *testing.T) {
	select {
	case err := <-k.done:
		k.done <- err
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-k.done:
		k.done <- err
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		t.Errorf("keepalived did not stop within 10s of SIGTERM:\n%s", k.out.String())
	}
}

// hasAddr reports whether a is configured on eth0 in namespace ns.
func hasAddr(ns string, a netip.Addr) bool {
	out, err := lab.Exec(ns, "ip", "-o", "addr", "show", "dev", lab.HostIface)
	return err == nil && strings.Contains(out, " "+a.String()+"/")
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool, logs ...fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l.String())
				b.WriteString("\n----\n")
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", limit, what, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The migration the issue promises: one keepalived.conf drives keepalived's
// VRRP (two directors, the VIP moving to the one with the higher priority
// and back) and xvs's virtual servers on the director; SIPp calls through
// the VIP complete, each on one real server; xvsadm -Sn is what `xvs rules
// --from-keepalived` prints; the notify script runs xvsadm --start-daemon
// as keepalived changes state; SIGHUP applies an edit of the file.
func TestRootKeepalivedVRRPAndXVS(t *testing.T) {
	testenv.Require(t, lab.Available())
	_, err := sipp.Path()
	testenv.Require(t, err)
	if _, err := exec.LookPath("keepalived"); err != nil {
		testenv.Require(t, fmt.Errorf("keepalived not installed: %w", err))
	}
	xvs, xvsadm := xvsBinary(t), xvsadmBinary(t)
	// Three real servers and a fourth namespace on the server LAN as the
	// second (backup) director.
	l, err := lab.New(lab.Spec{Clients: 1, RealServers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	reals, peer := l.Reals[:3], l.Reals[3]

	dir := t.TempDir()
	// keepalived's script security wants scripts nobody but root can
	// change: run a copy from this root-only directory.
	src, err := os.ReadFile("../scripts/keepalived/xvs-sync-notify.sh")
	if err != nil {
		t.Fatal(err)
	}
	notify := filepath.Join(dir, "xvs-sync-notify.sh")
	if err := os.WriteFile(notify, src, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "xvs.sock")
	calls := filepath.Join(dir, "xvsadm-calls")
	// The notify script's xvsadm: records its arguments, then runs the real
	// one against this test's daemon.
	recorder := filepath.Join(dir, "xvsadm-recorder")
	os.WriteFile(recorder, []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\nexec "+xvsadm+" --control "+sock+" \"$@\"\n"), 0o755)
	var rs strings.Builder
	for i, r := range reals {
		fmt.Fprintf(&rs, "    real_server %v 5060 {\n        weight 1\n", r.Addr4)
		if i == 0 {
			rs.WriteString("        MISC_CHECK {\n            misc_path /bin/true\n        }\n")
		}
		rs.WriteString("    }\n")
	}
	conf := filepath.Join(dir, "keepalived.conf")
	text := strings.NewReplacer("{{VIP}}", kaVIP.String(), "{{NOTIFY}}", notify, "{{REALS}}", rs.String()).Replace(kaConf)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// keepalived itself accepts the file on both directors.
	for _, id := range []string{"lb1", "lb2"} {
		if out, err := lab.Exec(l.Balancer.NS, "keepalived", "--config-test", "--config-id", id, "--use-file", conf); err != nil {
			t.Fatalf("keepalived -t -i %s: %v\n%s", id, err, out)
		}
	}

	var uas []*sipp.Server
	for _, r := range reals {
		s, err := sipp.UAS{NS: r.NS, Addr: netip.AddrPortFrom(r.Addr4, 5060), Dir: t.TempDir()}.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
		uas = append(uas, s)
	}

	// xvs on the director lb1, from the keepalived.conf.
	b := &balancer{stderr: &testenv.Buffer{}, done: make(chan error, 1)}
	b.cmd = lab.Command(context.Background(), l.Balancer.NS, xvs, "run", "--iface", lab.HostIface,
		"--keepalived-conf", conf, "--keepalived-id", "lb1", "--mode", "afxdp", "--xdp-mode", "generic",
		"--control", sock, "--metrics", "", "--templates", "65536", "--conns", "65536")
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() { b.stop(t) })
	waitUntil(t, "xvs to start", 15*time.Second, func() bool {
		select {
		case err := <-b.done:
			b.done <- err
			if strings.Contains(b.stderr.String(), "not supported") {
				testenv.Require(t, fmt.Errorf("%w: afxdp generic: %s", errNoBackend, b.stderr.String()))
			}
			t.Fatalf("xvs exited: %v\n%s", err, b.stderr.String())
		default:
		}
		return strings.Contains(b.stderr.String(), "mode=")
	}, b.stderr)
	for _, want := range []string{`msg="keepalived configuration loaded"`} {
		if !strings.Contains(b.stderr.String(), want) {
			t.Errorf("xvs log lacks %q:\n%s", want, b.stderr.String())
		}
	}

	// VRRP: the backup director alone takes the VIP; lb1 then preempts it.
	env := []string{"XVSADM=" + recorder}
	kPeer := startKeepalived(t, peer.NS, conf, "lb2", env)
	waitUntil(t, "the VIP on the peer director", 15*time.Second, func() bool { return hasAddr(peer.NS, kaVIP) }, kPeer.out)
	kLB1 := startKeepalived(t, l.Balancer.NS, conf, "lb1", env)
	waitUntil(t, "the VIP to move to lb1", 15*time.Second, func() bool {
		return hasAddr(l.Balancer.NS, kaVIP) && !hasAddr(peer.NS, kaVIP)
	}, kLB1.out, kPeer.out)
	readCalls := func() []string {
		b, _ := os.ReadFile(calls)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	waitUntil(t, "the MASTER notify", 10*time.Second, func() bool {
		return slices.Contains(readCalls(), "--start-daemon master --mcast-interface eth0 --syncid 51")
	}, kLB1.out)

	// SIPp calls through the VIP, held by lb1, served by xvs.
	const nCalls = 30
	res, err := sipp.UAC{NS: l.Clients[0].NS, Local: netip.AddrPortFrom(l.Clients[0].Addr4, 5060),
		Target: netip.AddrPortFrom(kaVIP, 5060), Calls: nCalls, Rate: 60, Pause: 100 * time.Millisecond, Dir: t.TempDir()}.Run(t.Context())
	if err != nil || res.ExitCode != 0 || res.Successful != nCalls || res.Failed != 0 {
		t.Fatalf("sipp: %d successful, %d failed, exit %d, %v\n%s\nxvs:\n%s", res.Successful, res.Failed, res.ExitCode, err, res.Output, b.stderr.String())
	}
	seen := map[string]int{}
	perServer := map[string]int{}
	for i, s := range uas {
		ids, err := s.CallIDs()
		if err != nil {
			t.Fatal(err)
		}
		for id := range ids {
			seen[id]++
			perServer[reals[i].Role]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("Call-ID %s on %d real servers", id, n)
		}
	}
	if len(seen) != nCalls || len(perServer) != len(reals) {
		t.Errorf("%d Call-IDs, per server %v", len(seen), perServer)
	}

	// What xvs runs is what `xvs rules --from-keepalived` prints.
	admin := func(args ...string) string {
		out, err := exec.Command(xvsadm, append([]string{"--control", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("xvsadm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The notify script started xvs's master sync daemon (and stopped the
	// backup it had started while lb1 was BACKUP).
	if got, want := admin("-L", "--daemon"), "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
		t.Errorf("-L --daemon while MASTER: %q, want %q", got, want)
	}
	rulesOut, err := exec.Command(xvs, "rules", "--from-keepalived", conf, "--config-id", "lb1").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := admin("-Sn"); got != string(rulesOut) {
		t.Errorf("xvsadm -Sn\n%s\nxvs rules --from-keepalived\n%s", got, rulesOut)
	}
	if h := admin("-Ln", "--health"); !strings.Contains(h, "script every 1s") || strings.Contains(h, " down ") {
		t.Errorf("health:\n%s", h)
	}

	// SIGHUP applies an edit of the file in place.
	edited := strings.Replace(text, "lvs_sched rr", "lvs_sched wrr", 1)
	os.WriteFile(conf, []byte(edited), 0o644)
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reload", 10*time.Second, func() bool {
		return strings.Contains(admin("-Sn"), "-s wrr") && strings.Contains(b.stderr.String(), `msg="keepalived configuration reloaded"`)
	}, b.stderr)

	// lb1's keepalived stops: the VIP moves back to the peer, and the
	// notify script stops the sync daemons.
	kLB1.stop(t)
	waitUntil(t, "the VIP to move back to the peer", 15*time.Second, func() bool {
		return hasAddr(peer.NS, kaVIP) && !hasAddr(l.Balancer.NS, kaVIP)
	}, kPeer.out)
	waitUntil(t, "the STOP notify", 10*time.Second, func() bool {
		c := readCalls()
		return len(c) >= 2 && c[len(c)-2] == "--stop-daemon master" && c[len(c)-1] == "--stop-daemon backup"
	})
	if got := admin("-L", "--daemon"); got != "" {
		t.Errorf("-L --daemon after STOP: %q", got)
	}
	t.Logf("xvsadm calls from keepalived's notify script: %q; calls per server %v", readCalls(), perServer)
	select {
	case err := <-b.done:
		t.Fatalf("xvs exited: %v\n%s", err, b.stderr.String())
	default:
	}
	_ = errors.New
}
