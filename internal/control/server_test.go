package control

import (
	"bytes"
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvsadm"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output")

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update && strings.HasPrefix(path, "testdata/") {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func run(t *testing.T, s *Server, argv ...string) Result {
	t.Helper()
	return s.Execute(context.Background(), Request{V: 1, Argv: argv})
}

func mustRun(t *testing.T, s *Server, argv ...string) []byte {
	t.Helper()
	r := run(t, s, argv...)
	if r.Code != 0 || len(r.Stderr) != 0 {
		t.Fatalf("%q: code %d, stderr %q", argv, r.Code, r.Stderr)
	}
	return r.Stdout
}

// TestListMatchesIpvsadmGoldens renders the listings of internal/ipvsadm's
// golden fixture from a real configuration and real counters, and compares
// them with that package's goldens.
func TestListMatchesIpvsadmGoldens(t *testing.T) {
	f := listFixture(t)
	s := NewServer(f, Options{})
	named := NewServer(f, Options{Names: ipvsadm.Names{Host: func(a netip.Addr) (string, bool) {
		return "lb.example.com", a == netip.MustParseAddr("10.4.3.192")
	}}})
	for _, tc := range []struct {
		srv    *Server
		argv   []string
		golden string
	}{
		{s, []string{"-Ln"}, "list_numeric"},
		{s, []string{"-L", "-n"}, "list_numeric"},
		{s, []string{"--list", "--numeric", "--sort"}, "list_numeric"},
		{named, []string{"-L"}, "list_names"},
		{s, []string{"-Ln", "--thresholds"}, "list_thresholds"},
		{s, []string{"-Ln", "--persistent-conn"}, "list_persistent_conn"},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			checkGolden(t, filepath.Join("..", "ipvsadm", "testdata", tc.golden+".golden"), mustRun(t, tc.srv, tc.argv...))
		})
	}
}

// TestListGolden covers the listings with values of their own (counters,
// rates, one service, connections and templates).
func TestListGolden(t *testing.T) {
	f := listFixture(t)
	s := NewServer(f, Options{})
	est := s.Estimator()
	est.Tick()
	// Two more periods of traffic on the SIP service: 100 datagrams of 500
	// bytes per period to 192.168.1.10.
	for range 2 {
		for _, svc := range f.Snapshot().Services() {
			if svc.Key.String() == "UDP 10.4.3.192:5060" {
				for range 100 {
					svc.Stats.Worker(1).Conn()
					svc.Stats.Worker(1).In(500)
					svc.Dests[1].Stats.Worker(1).Conn()
					svc.Dests[1].Stats.Worker(1).In(500)
				}
			}
		}
		est.Tick()
	}
	c := connFixture(t)
	cs := NewServer(c, Options{})
	for _, tc := range []struct {
		srv    *Server
		argv   []string
		golden string
	}{
		{s, []string{"-Ln", "--stats"}, "list_stats"},
		{s, []string{"-Ln", "--stats", "--exact"}, "list_stats_exact"},
		{s, []string{"-Ln", "--rate"}, "list_rate"},
		{s, []string{"-Ln", "--nosort"}, "list_nosort"},
		{s, []string{"-Ln", "-t", "10.4.3.192:80"}, "list_service"},
		{s, []string{"-L", "-n", "-u", "10.4.3.192:5060", "--stats"}, "list_service_stats"},
		{s, []string{"-L", "--timeout"}, "list_timeout"},
		{s, []string{"-Sn"}, "save"},
		{s, []string{"-S"}, "save_names"},
		{cs, []string{"-Lcn"}, "conns"},
		{cs, []string{"-Lcn", "--persistent-conn"}, "conns_persistent"},
		{cs, []string{"-Lc"}, "conns_names"},
		{cs, []string{"-Ln"}, "conns_list"},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", tc.golden+".golden"), mustRun(t, tc.srv, tc.argv...))
		})
	}
	if out := mustRun(t, s, "-L", "--daemon"); len(out) != 0 {
		t.Errorf("-L --daemon = %q, want nothing (no sync daemon)", out)
	}
}
