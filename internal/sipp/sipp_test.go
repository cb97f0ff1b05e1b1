package sipp

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
)

func TestReadStats(t *testing.T) {
	p := t.TempDir() + "/s.csv"
	os.WriteFile(p, []byte("StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);Retransmissions(P);Retransmissions(C)\nx;1;2;0;0;0;0\ny;3;9;1;1;2;4\n"), 0o644)
	ok, failed, retrans, err := readStats(p)
	if err != nil || ok != 9 || failed != 1 || retrans != 4 {
		t.Fatalf("%d %d %d %v", ok, failed, retrans, err)
	}
}

// TestRootSIPpCalls runs the UAC against one UAS directly (no balancer) in
// a lab, over IPv4 and IPv6, and checks the UAS's Call-ID log.
//
// IPv6 needs the lab's link-local addresses out of duplicate address
// detection first (waitIPv6): until then the router cannot send a neighbour
// solicitation for a packet it forwards (Linux sends one only from a
// non-tentative link-local address when the packet's source is not its own)
// and queues the INVITEs for one solicitation interval (1 s). SIPp's UAC
// retransmits them after 500 ms, both copies reach the UAS back to back, and
// SIPp 3.6.1's UAS takes the second copy, while it waits for the ACK, as an
// unexpected message and aborts the call.
func TestRootSIPpCalls(t *testing.T) {
	testenv.NeedLab(t)
	_, err := Path()
	testenv.Require(t, err)
	l, err := lab.New(lab.Spec{RealServers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.UseDirectRouting(); err != nil { // a route back to the client
		t.Fatal(err)
	}
	if err := waitIPv6(l, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ v6, dialog bool }{{false, false}, {true, false}, {false, true}} {
		v6 := tc.v6
		client, real := l.Clients[0].Addr4, l.Reals[0].Addr4
		if v6 {
			client, real = l.Clients[0].Addr6, l.Reals[0].Addr6
		}
		dir := t.TempDir()
		srv, err := UAS{NS: l.Reals[0].NS, Addr: netip.AddrPortFrom(real, 5060), Dir: dir, Dialog: tc.dialog}.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		const calls = 5
		res, err := UAC{NS: l.Clients[0].NS, Local: netip.AddrPortFrom(client, 5060), Target: netip.AddrPortFrom(real, 5060),
			Calls: calls, Rate: 100, Pause: 50 * time.Millisecond, Dir: dir, Dialog: tc.dialog}.Run(t.Context())
		t.Logf("v6=%v dialog=%v: %d successful, %d retransmissions", v6, tc.dialog, res.Successful, res.Retransmissions)
		srv.Stop()
		if err != nil || res.ExitCode != 0 || res.Successful != calls || res.Failed != 0 {
			lg, _ := os.ReadFile(srv.log)
			t.Fatalf("v6=%v: %+v: %v\nUAS log:\n%s\nUAS output:\n%s", v6, res, err, lg, tail(srv.out.String(), 3000))
		}
		ids, err := srv.CallIDs()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != calls {
			t.Fatalf("v6=%v: UAS logged %d Call-IDs %v, want %d", v6, len(ids), ids, calls)
		}
		want := 3 // INVITE, ACK, BYE
		if tc.dialog {
			want = 4 // and INFO
		}
		for id, n := range ids {
			if n < want {
				t.Errorf("%s: %d requests logged, want %d", id, n, want)
			}
		}
	}
}

// waitIPv6 waits until no address in the lab is tentative (duplicate
// address detection over), bounded by limit.
func waitIPv6(l *lab.Lab, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var busy []string
		for _, ns := range l.Namespaces() {
			out, err := lab.Exec(ns, "ip", "-6", "-o", "addr", "show", "tentative")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" {
				busy = append(busy, ns)
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 addresses still tentative after %v in %v", limit, busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A run without a deadline lasts as long as its calls need: 18 000 calls at
// 60/s take five minutes to place (a fixed 60 s cut xvslab demo --calls
// 18000 off after 3 407 calls).
func TestUACTimeout(t *testing.T) {
	for _, c := range []struct {
		calls, rate int
		atLeast     time.Duration
	}{
		{120, 60, 2 * time.Second},
		{18000, 60, 300 * time.Second},
		{1, 1, time.Second},
	} {
		u := UAC{Calls: c.calls}
		got := u.timeout(c.rate, DefaultPause)
		if need := c.atLeast + DefaultPause; got < need+30*time.Second {
			t.Errorf("%d calls at %d/s: %v, want at least %v plus room for the last answers", c.calls, c.rate, got, need)
		}
	}
}
