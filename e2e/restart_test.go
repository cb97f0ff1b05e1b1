package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// TestRootRestartAfterKill runs the real daemon on AF_XDP with a template
// snapshot (issue 10 items 3 and 4): a second `xvs run` on the interface is
// refused, naming the first one's pid, and leaves it serving; after a
// kill -9 of the first (no shutdown save) the daemon comes back with
// identical flags, restores the templates the periodic save wrote, and
// every call keeps its real server.
func TestRootRestartAfterKill(t *testing.T) {
	testenv.Require(t, lab.Available())
	l, err := lab.New(lab.Spec{Clients: 1, RealServers: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	vip := netip.AddrPortFrom(l.VIP4, probePort)
	rules := fmt.Sprintf("-A -u %v -s rr -p 60 -M 0.0.0.0 --pe sip -o\n", vip)
	for _, r := range l.Reals {
		rules += fmt.Sprintf("-a -u %v -r %v -m -w 1\n", vip, netip.AddrPortFrom(r.Addr4, probePort))
	}
	dir := t.TempDir()
	rf, snap := filepath.Join(dir, "rules"), filepath.Join(dir, "templates.json")
	if err := os.WriteFile(rf, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--iface", lab.HostIface, "--rules", rf, "--mode", "afxdp", "--xdp-mode", "generic",
		"--control", filepath.Join(dir, "xvs.sock"), "--metrics", "", "--templates", "4096", "--conns", "4096",
		"--snapshot", snap, "--snapshot-interval", "200ms"}
	probes := startProbes(t, l)
	first, err := startXVSArgs(t, l, args...)
	if err != nil {
		t.Skip(err)
	}

	const calls = 30
	ids := make([]string, calls)
	for i := range ids {
		ids[i] = fmt.Sprintf("restart-%d@e2e", i)
	}
	send := func(ids []string) {
		c := l.Clients[0]
		conn, err := lab.ListenUDP(c.NS, netip.AddrPortFrom(c.Addr4, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, id := range ids {
			if _, err := conn.WriteToUDPAddrPort(craft.DefaultDialog(id).Invite(), vip); err != nil {
				t.Fatal(err)
			}
		}
	}
	// owners waits until every call reached a real server and returns
	// each call's servers.
	owners := func() map[string]map[string]bool {
		deadline := time.Now().Add(probeLimit)
		for {
			probes.mu.Lock()
			n := 0
			for _, id := range ids {
				n += len(probes.seen[id])
			}
			seen := map[string]map[string]bool{}
			for _, id := range ids {
				seen[id] = map[string]bool{}
				for s := range probes.seen[id] {
					seen[id][s] = true
				}
			}
			probes.mu.Unlock()
			if n >= len(ids) {
				return seen
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d calls reached a real server\n%s", n, len(ids), first.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send(ids)
	before := owners()

	// A second daemon on the same interface is refused, before it touches
	// the interface or the first one's snapshot.
	out, err := lab.Command(context.Background(), l.Balancer.NS, xvsBinary(t), "run", "--iface", lab.HostIface, "--rules", rf,
		"--control", filepath.Join(dir, "xvs2.sock"), "--metrics", "", "--snapshot", snap).CombinedOutput()
	want := "interface " + lab.HostIface + " is in use by another xvs (pid " + strconv.Itoa(first.cmd.Process.Pid) + ";"
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("second xvs on %s: %v\n%s\nwant %q", lab.HostIface, err, out, want)
	}

	// Wait for a periodic save of all the calls, then kill -9.
	deadline := time.Now().Add(probeLimit)
	for b, _ := os.ReadFile(snap); !strings.Contains(string(b), fmt.Sprintf(`{"xvs_templates_end":%d}`, calls)); b, _ = os.ReadFile(snap) {
		if time.Now().After(deadline) {
			t.Fatalf("no periodic snapshot of the %d calls:\n%s\nxvs:\n%s", calls, b, first.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.cmd.Process.Kill()
	<-first.done
	first.done <- nil

	// Identical flags: the lock died with the process, the templates come
	// back, and the calls — sent again in reverse order, so that a fresh
	// rr would move most of them — keep their servers.
	second, err := startXVSArgs(t, l, args...)
	if err != nil {
		t.Fatal(err)
	}
	if log := second.stderr.String(); !strings.Contains(log, fmt.Sprintf("restored=%d records=%d", calls, calls)) {
		t.Fatalf("restart did not restore the %d templates:\n%s", calls, log)
	}
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	// A new call sent last marks the end of the round (one worker handles
	// the socket's datagrams in order).
	ids = append(ids, "restart-sentinel@e2e")
	send(append(rev, ids[calls]))
	owners() // every call has reached a server again
	time.Sleep(100 * time.Millisecond)
	after := owners()
	ids = ids[:calls]
	for _, id := range ids {
		if len(after[id]) != 1 || !maps1Equal(after[id], before[id]) {
			t.Errorf("call %s: servers %v before the restart, %v after", id, before[id], after[id])
		}
	}
}

func maps1Equal(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
