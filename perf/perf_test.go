package perf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/sipparse"
)

func TestMain(m *testing.M) {
	MaybeRunProxy() // the naive proxy's process is this test binary
	os.Exit(m.Run())
}

func TestPayloads(t *testing.T) {
	data, off, err := payloads(100, lab.ServerNet4.Addr(), lab.VIPNet4.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range data {
		if len(p) < 700 || len(p) > 1000 {
			t.Errorf("datagram %d: %d bytes, want INVITE-sized", i, len(p))
		}
		putTS(p[off:], int64(i)*123456789)
		if ts, ok := getTS(p[off:]); !ok || ts != int64(i)*123456789 {
			t.Errorf("timestamp round trip: %d %v", ts, ok)
		}
		id, ok := sipparse.CallID(p)
		if !ok {
			t.Fatalf("datagram %d: no Call-ID", i)
		}
		if idx, ok := callIndex(id, 100); !ok || idx != i {
			t.Errorf("Call-ID %q: index %d %v, want %d", id, idx, ok, i)
		}
	}
}

func TestReportRenders(t *testing.T) {
	r := newReport(Options{RunTime: time.Second, Calls: 10, LatencyFraction: 0.5})
	c := CandidateResult{Candidate: Candidate{Name: "a <b>", Kind: "xvs"}, Saturation: []Run1{{OfferedPPS: 1000, DeliveredPPS: 900, PktsPerCPUSecond: 5000}},
		Latency: []Run1{{RatePPS: 450, OfferedPPS: 450, DeliveredPPS: 450}}, latCDF: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}}
	r.Candidates = append(r.Candidates, c)
	r.finish()
	base := filepath.Join(t.TempDir(), "r")
	if err := r.Write(base); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(base + ".svg")
	if !strings.Contains(string(svg), "a &lt;b&gt;") || !strings.HasSuffix(string(svg), "</svg>\n") {
		t.Errorf("svg: %s", svg)
	}
}

// buildXVS builds cmd/xvs into dir.
func buildXVS(t *testing.T) string {
	bin, err := testenv.Build(t.TempDir(), "xvs")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestRootBenchQuick runs the quick mode end to end: every candidate must
// deliver traffic, no Call-ID may reach two real servers, and the report
// files must be written.
func TestRootBenchQuick(t *testing.T) {
	testenv.NeedLab(t)
	if testing.Short() {
		t.Skip("-short: the lab benchmark takes about a minute")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	rep, err := Run(context.Background(), Options{XVS: buildXVS(t), Self: self, NoKamailio: true, Log: &log,
		RunTime: 500 * time.Millisecond, Calls: 2000})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Candidates {
		if c.Skipped != "" {
			t.Logf("%s: %s", c.Name, c.Skipped)
			continue
		}
		if len(c.Errors) > 0 || c.DeliveredPPS == 0 {
			t.Errorf("%s delivered %.0f pkt/s: %v", c.Name, c.DeliveredPPS, c.Errors)
		}
		if c.Violations != 0 {
			t.Errorf("%s: %d affinity violations", c.Name, c.Violations)
		}
	}
	base := filepath.Join(t.TempDir(), "e2e")
	if err := rep.Write(base); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".json", ".md", ".svg"} {
		if st, err := os.Stat(base + ext); err != nil || st.Size() == 0 {
			t.Errorf("report %s: %v", ext, err)
		}
	}
	md, _ := os.ReadFile(base + ".md")
	t.Logf("\n%s", md)
}
