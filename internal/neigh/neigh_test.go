package neigh

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/nexthop"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// The root test builds namespaces and re-runs this test binary inside one
// of them (the watcher's goroutines must all live in that namespace, which
// a thread-bound setns cannot give them).
const childEnv = "XVS_NEIGH_CHILD"

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestRootWatcher: a director namespace D with eth0 (to namespace C,
// 10.66.0.0/24, default route via C) and eth1 (to namespace S,
// 10.67.0.0/24), both served, and eth2 (to namespace X, 10.68.0.0/24) not
// served. The child checks the watcher inside D.
func TestRootWatcher(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		watcherChild(t)
		return
	}
	testenv.NeedLab(t)
	id := os.Getpid()
	d, c, s, x := fmt.Sprintf("xvsnD%d", id), fmt.Sprintf("xvsnC%d", id), fmt.Sprintf("xvsnS%d", id), fmt.Sprintf("xvsnX%d", id)
	for _, ns := range []string{d, c, s, x} {
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "netns", "add", ns)
		// No duplicate address detection: solicitations need a
		// non-tentative link-local source.
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	for i, peer := range []string{c, s, x} {
		dev := fmt.Sprintf("eth%d", i)
		run(t, "ip", "-n", d, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer)
		run(t, "ip", "-n", d, "addr", "add", fmt.Sprintf("10.%d.0.1/24", 66+i), "dev", dev)
		run(t, "ip", "-n", d, "-6", "addr", "add", fmt.Sprintf("fd%d::1/64", 66+i), "dev", dev, "nodad")
		run(t, "ip", "-n", peer, "addr", "add", fmt.Sprintf("10.%d.0.2/24", 66+i), "dev", "eth0")
		run(t, "ip", "-n", peer, "-6", "addr", "add", fmt.Sprintf("fd%d::2/64", 66+i), "dev", "eth0", "nodad")
		run(t, "ip", "-n", d, "link", "set", dev, "up")
		run(t, "ip", "-n", peer, "link", "set", "eth0", "up")
	}
	run(t, "ip", "-n", d, "link", "set", "lo", "up")
	// Fail resolution on the server leg fast (one probe of 100 ms), and
	// confirm a used stale entry at once.
	run(t, "ip", "netns", "exec", d, "sysctl", "-qw", "net.ipv4.neigh.eth1.mcast_solicit=1", "net.ipv4.neigh.eth1.retrans_time_ms=100",
		"net.ipv4.neigh.eth1.delay_first_probe_time=0")
	run(t, "ip", "-n", d, "route", "add", "default", "via", "10.66.0.2")
	time.Sleep(200 * time.Millisecond) // link-local addresses configured
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", d, exe, "-test.run", "^TestRootWatcher$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+s)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
}

func watcherChild(t *testing.T) {
	tbl, err := nexthop.New(nexthop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := Start(tbl, []string{"eth0", "eth1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := Start(tbl, []string{"nosuch0"}, nil); err == nil {
		t.Error("Start with a missing interface succeeded")
	}
	c := tbl.NewCache()
	var now int64 = 1e12
	// waitFor looks dst up (as a worker does, asking for resolution) until
	// it reaches want, and returns what it got.
	waitFor := func(dst netip.Addr, want nexthop.Status, limit time.Duration, port ...nexthop.Port) (nexthop.Egress, nexthop.Status, time.Duration) {
		start := time.Now()
		for {
			now += 2e6
			e, st := c.Lookup(dst, now)
			if st == want && (len(port) == 0 || e.Port == port[0]) || time.Since(start) > limit {
				return e, st, time.Since(start)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	ports := w.Ports()
	if len(ports) != 2 || ports[0].Name != "eth0" || ports[1].Name != "eth1" {
		t.Fatalf("ports %+v", ports)
	}
	peerMAC := func(ns string) [6]byte {
		out, err := exec.Command("ip", "-n", ns, "-br", "link", "show", "eth0").Output()
		if err != nil {
			t.Fatal(err)
		}
		var m [6]byte
		fmt.Sscanf(strings.Fields(string(out))[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5])
		return m
	}

	// A server-leg neighbour nobody has talked to: the lookup's request
	// makes the kernel resolve it (NTF_USE), and the answer arrives as a
	// notification — no packet was sent to it.
	for _, srv := range []netip.Addr{netip.MustParseAddr("10.67.0.2"), netip.MustParseAddr("fd67::2")} {
		e, st, took := waitFor(srv, nexthop.Resolved, 2*time.Second)
		want := nexthop.Egress{Port: 1, Src: ports[1].MAC, Dst: peerMAC(os.Getenv(childEnv))}
		if st != nexthop.Resolved || e != want {
			t.Errorf("%v: %v %+v after %v, want resolved %+v", srv, st, e, took, want)
		} else {
			t.Logf("%v resolved in %v", srv, took)
		}
	}
	// A far destination goes to the default gateway on the client leg.
	if e, st, _ := waitFor(netip.MustParseAddr("203.0.113.5"), nexthop.Resolved, 2*time.Second); st != nexthop.Resolved || e.Port != 0 {
		t.Errorf("default route: %v %+v", st, e)
	}
	// The unserved leg.
	if _, st, _ := waitFor(netip.MustParseAddr("10.68.0.2"), nexthop.Unserved, time.Second); st != nexthop.Unserved {
		t.Errorf("unserved leg: %v", st)
	}
	// A route added later, through the server leg.
	exec.Command("ip", "route", "add", "192.0.2.0/24", "via", "10.67.0.2").Run()
	if e, st, took := waitFor(netip.MustParseAddr("192.0.2.9"), nexthop.Resolved, time.Second, 1); st != nexthop.Resolved || e.Port != 1 {
		t.Errorf("new route: %v %+v after %v", st, e, took)
	}
	// An address added later is local.
	exec.Command("ip", "addr", "add", "198.51.100.7/32", "dev", "lo").Run()
	if _, st, took := waitFor(netip.MustParseAddr("198.51.100.7"), nexthop.Local, time.Second); st != nexthop.Local {
		t.Errorf("new local address: %v after %v", st, took)
	}
	// A neighbour that does not exist fails (one 100 ms probe).
	if _, st, took := waitFor(netip.MustParseAddr("10.67.0.99"), nexthop.Failed, 3*time.Second); st != nexthop.Failed {
		t.Errorf("missing neighbour: %v after %v", st, took)
	}
	// A stale neighbour is used, and its use makes the kernel confirm it
	// (the workers' traffic is invisible to the kernel): it becomes
	// reachable again.
	srv := netip.MustParseAddr("10.67.0.2")
	mac := peerMAC(os.Getenv(childEnv))
	exec.Command("ip", "neigh", "change", srv.String(), "dev", "eth1", "lladdr", fmt.Sprintf("%x:%x:%x:%x:%x:%x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]), "nud", "stale").Run()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if st, _, _ := tbl.Neighbour(ports[1].Ifindex, srv); st == nexthop.NeighStale {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st, _, _ := tbl.Neighbour(ports[1].Ifindex, srv); st != nexthop.NeighStale {
		t.Errorf("marked stale: %v", st)
	}
	confirmed := false
	for deadline = time.Now().Add(2 * time.Second); time.Now().Before(deadline) && !confirmed; {
		now += 2e9 // past the retry interval: every lookup may ask
		if _, st := c.Lookup(srv, now); st != nexthop.Resolved {
			t.Errorf("stale neighbour not used: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
		st, _, _ := tbl.Neighbour(ports[1].Ifindex, srv)
		confirmed = st == nexthop.NeighReachable
	}
	if !confirmed {
		t.Error("a used stale neighbour was not confirmed by the kernel")
	}
	// A flushed neighbour is forgotten, and resolved again on demand.
	exec.Command("ip", "neigh", "flush", "dev", "eth1").Run()
	if _, st, took := waitFor(netip.MustParseAddr("10.67.0.2"), nexthop.Resolved, 2*time.Second); st != nexthop.Resolved {
		t.Errorf("after a flush: %v after %v", st, took)
	}
	// The classifier behind ipvsadm -a's checks, from what the watcher
	// read (the links' broadcast addresses come from the local table).
	for a, want := range map[string]nexthop.Kind{
		"10.67.0.2": nexthop.KindUnicast, "10.67.0.1": nexthop.KindLocal, "127.0.0.1": nexthop.KindLocal,
		"10.67.0.255": nexthop.KindBroadcast, "10.66.0.255": nexthop.KindBroadcast, "255.255.255.255": nexthop.KindBroadcast,
		"224.0.0.5": nexthop.KindMulticast, "0.0.0.0": nexthop.KindUnusable, "ff02::1": nexthop.KindMulticast,
		"fd67::1": nexthop.KindLocal, "fe80::99": nexthop.KindUnusable, "198.51.100.7": nexthop.KindLocal,
	} {
		if got := tbl.Classify(netip.MustParseAddr(a)); got != want {
			t.Errorf("Classify(%s) = %d, want %d", a, got, want)
		}
	}
}
