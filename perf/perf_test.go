package perf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
		for _, r := range c.Saturation {
			// The drop point counts every datagram for a real server;
			// none reaches a sink.
			if r.Kind != "drop" || r.Leaked != 0 || !c.Baseline && (r.DropOther != 0 || len(r.PerSink) != 3) {
				t.Errorf("%s drop run: kind %q, %d leaked to the sinks, %d to other MACs, per real server %v", c.Name, r.Kind, r.Leaked, r.DropOther, r.PerSink)
			}
			if !c.Baseline && (r.CPUSeconds <= 0 || r.BalancerUsPerPkt <= 0) {
				t.Errorf("%s drop run: balancer CPU %.3f s, %.2f µs/pkt", c.Name, r.CPUSeconds, r.BalancerUsPerPkt)
			}
		}
		if !c.Baseline && (len(c.Latency) != 1 || c.Latency[0].Kind != "sinks" || c.Latency[0].Received == 0) {
			t.Errorf("%s: sink runs %+v", c.Name, c.Latency)
			continue
		}
		if c.Baseline {
			continue
		}
		// Every sink run accounts for its datagrams: the lab's counters
		// were read, the path's hops counted them, and for xvs its own
		// counters (metrics) were read too.
		a := c.Latency[0].Accounting
		if a == nil || a.Err != "" || a.Sent != c.Latency[0].Sent || len(a.Hops) == 0 {
			t.Errorf("%s: accounting %+v", c.Name, a)
			continue
		}
		hops := map[string]uint64{}
		for _, h := range a.Hops {
			hops[h.Where] = h.N
		}
		if hops["router: IP forwarded"] < a.Received || hops["real servers: UDP datagrams in"] < a.Received {
			t.Errorf("%s: hops %v, %d received", c.Name, a.Hops, a.Received)
		}
		if c.Kind == "xvs" && (hops["xvs: XDP filter steered"] == 0 && c.Backend == "afxdp" || hops["xvs: queue tx_frames"] < a.Received) {
			t.Errorf("%s: xvs's counters missing from the hops %v", c.Name, a.Hops)
		}
		if a.Lost > 0 {
			t.Logf("%s lost %d: %s", c.Name, a.Lost, a)
		}
	}
	// The floors ran (the C one may lack its build dependencies outside
	// CI: NOT TESTED), and their threads' context switches were counted.
	for _, name := range []string{GoFloorName, CFloorName} {
		c := candidate(rep, name)
		switch {
		case c == nil:
			t.Errorf("%s: not in the run", name)
		case c.Skipped != "" && (name == GoFloorName || testenv.InCI()):
			t.Errorf("%s skipped: %s", name, c.Skipped)
		case c.Skipped != "":
			t.Logf("%s: NOT TESTED here: %s", name, c.Skipped)
		case c.DeliveredPPS == 0 || c.CtxSwitchesPerKPkt <= 0:
			t.Errorf("%s: %.0f pkt/s, %.1f context switches per 1000 pkts", name, c.DeliveredPPS, c.CtxSwitchesPerKPkt)
		}
	}
	if c := rep.Candidates[len(rep.Candidates)-1]; !c.Baseline || c.DeliveredPPS == 0 {
		t.Errorf("no baseline run: %+v", c)
	}
	for _, name := range []string{"xvs vs the naive proxy", "xvs packets/s vs the lab ceiling"} {
		found := false
		for _, g := range rep.Goals {
			found = found || strings.HasPrefix(g.Name, name)
		}
		if !found {
			t.Errorf("goal %q missing: %+v", name, rep.Goals)
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

// TestSplitClassify parses perf script output and puts each sample where
// its stack says.
func TestSplitClassify(t *testing.T) {
	out := []byte(`xvs  1 
	ffffffff81eafc05 process_backlog ([kernel.kallsyms])
	ffffffff81369c4d handle_softirqs ([kernel.kallsyms])
	ffffffff81eaca84 __dev_queue_xmit ([kernel.kallsyms])
	ffffffff81e74d2d xsk_sendmsg ([kernel.kallsyms])
	ffffffff8223c951 do_syscall_64 ([kernel.kallsyms])
	            d94e internal/runtime/syscall/linux.Syscall6 (/bin/xvs)

xvs  1 
	ffffffff81e74d2d skb_store_bits+0x20 ([kernel.kallsyms])
	ffffffff81e74d2d xsk_sendmsg ([kernel.kallsyms])
	ffffffff8223c951 do_syscall_64 ([kernel.kallsyms])

xvs  1 
	ffffffff813aecd3 finish_task_switch.isra.0+0x93 ([kernel.kallsyms])
	ffffffff82247fc4 __schedule+0x3e4 ([kernel.kallsyms])
	ffffffff81e74d2d do_sys_poll ([kernel.kallsyms])

xvs  1 
	ffffffff81e74d2d do_sys_poll ([kernel.kallsyms])

xvs  1 
	          2a7afc github.com/xvs-lb/xvs/sipparse.FindCallID+0x10 (/bin/xvs)
	          2a77cc main.main (/bin/xvs)

xvs  1 
	           63915 runtime.findRunnable (/bin/xvs)

xvs  1 
	ffffffff81e74d2d udp_recvmsg ([kernel.kallsyms])
	ffffffff81e74d2d __sys_recvfrom ([kernel.kallsyms])

xvs  1 
	ffffffff81e74d2d something_else ([kernel.kallsyms])
`)
	s := splitSamples(out)
	want := map[string]float64{"tx inline delivery": 1, "tx": 1, "scheduling": 1, "waiting": 1, "user": 1, "go runtime": 1, "rx": 1, "other kernel": 1}
	if s.Samples != 8 {
		t.Fatalf("%d samples, want 8", s.Samples)
	}
	for k, v := range want {
		if s.Shares[k] != v/8 {
			t.Errorf("%s: %.3f, want %.3f (%v)", k, s.Shares[k], v/8, s.Shares)
		}
	}
	if len(s.Top) == 0 || !strings.HasPrefix(s.Top[0], "") {
		t.Errorf("top %v", s.Top)
	}
}

// TestKamailioConfig checks the generated configuration and arguments.
func TestKamailioConfig(t *testing.T) {
	vip, lan := lab.VIPNet4.Addr().Next(), lab.ServerNet4.Addr().Next()
	cfg := kamailioConfig(KamailioOptions{Children: 3}, vip, lan, "/m", "/d.list")
	for _, want := range []string{"children=3\n", "listen=udp:" + vip.String() + ":5060\n", `ds_select_dst("1", "0")`, "forward();", "debug=0\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, lan.String()) || strings.Contains(cfg, "force_send_socket") {
		t.Errorf("config has the LAN socket:\n%s", cfg)
	}
	cfg = kamailioConfig(KamailioOptions{LANSocket: true, Globals: []string{"mem_join=1"}}, vip, lan, "/m", "/d.list")
	if !strings.Contains(cfg, "\nmem_join=1\n") {
		t.Errorf("config lacks the global line:\n%s", cfg)
	}
	if !strings.Contains(cfg, "listen=udp:"+lan.String()+":5060\n") || !strings.Contains(cfg, "force_send_socket(udp:"+lan.String()+":5060)") {
		t.Errorf("config lacks the LAN socket:\n%s", cfg)
	}
	args := strings.Join(kamailioArgs(KamailioOptions{ShmMB: 128, Memory: "qm"}, "/k.cfg", "/d"), " ")
	if !strings.Contains(args, "-m 128") || !strings.Contains(args, "-x qm -X qm") || strings.Contains(args, "-M") {
		t.Errorf("args %q", args)
	}
	// The default is TLSF, not Kamailio's debugging qm.
	if args := strings.Join(kamailioArgs(KamailioOptions{}, "/k.cfg", "/d"), " "); !strings.Contains(args, "-x tlsf -X tlsf") {
		t.Errorf("default args %q", args)
	}
}

// TestRootCgroup creates the candidates' cgroup, starts a busy process in
// it and reads its CPU time back.
func TestRootCgroup(t *testing.T) {
	testenv.NeedRoot(t, "cgroups")
	cg, err := newCgroup(fmt.Sprintf("xvsperf-test-%d", os.Getpid()))
	if err != nil {
		if testenv.InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer cg.remove()
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.fd.Fd())}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	total, user, err := cg.usage()
	if err != nil || total <= 0 || user <= 0 || user > total {
		t.Fatalf("usage %.3f s, user %.3f s, %v", total, user, err)
	}
}

func TestVariants(t *testing.T) {
	if v, err := ParseVariant("base= env:A=1"); err != nil || v.Binary != "" || len(v.Env) != 1 {
		t.Fatalf("%+v %v", v, err)
	}
	v, err := ParseVariant("busy=/tmp/xvs --busy-poll env:A=b --x=1")
	if err != nil || v.Name != "busy" || v.Binary != "/tmp/xvs" || strings.Join(v.Args, " ") != "--busy-poll --x=1" || strings.Join(v.Env, " ") != "A=b" {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := ParseVariant("noname"); err == nil {
		t.Fatal("accepted a variant without a name")
	}
	cs, _ := candidates(Options{Only: []string{"naive"}, Variants: []Variant{v, {Name: "same"}}}, "")
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, "|"); got != GoalXVS+"|"+GoalXVS+" [busy]|"+GoalXVS+" [same]|"+NaiveName+"|"+CeilingName+"|"+BaselineName {
		t.Errorf("candidates %s", got)
	}
}

func candidate(r *Report, name string) *CandidateResult {
	for i := range r.Candidates {
		if r.Candidates[i].Name == name {
			return &r.Candidates[i]
		}
	}
	return nil
}

// TestFloorRewrite: the Go floor picks the real server by the UDP source
// port, moves the old destination MAC to the source, and refuses frames too
// short for a UDP header (after IPv4 options too).
func TestFloorRewrite(t *testing.T) {
	macs := [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 3}}
	f := make([]byte, 14+24+8+10)
	copy(f, []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 1, 1, 1, 1, 1, 0x08, 0x00})
	f[14] = 0x46              // IPv4 with one option word: the UDP header starts at 38
	f[38], f[39] = 0x13, 0xc5 // source port 5061: 5061 % 3 = 0
	if !floorRewrite(f, macs) {
		t.Fatal("refused a UDP frame")
	}
	if [6]byte(f[0:6]) != macs[0] || [6]byte(f[6:12]) != [6]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff} {
		t.Errorf("MACs % x", f[:12])
	}
	f[39] = 0xc6 // 5062 % 3 = 1
	floorRewrite(f, macs)
	if [6]byte(f[0:6]) != macs[1] {
		t.Errorf("port 5062: destination % x", f[:6])
	}
	for _, n := range []int{0, 14 + 20 + 7, 14 + 24 + 7} {
		if floorRewrite(f[:n], macs) {
			t.Errorf("accepted a %d-byte frame", n)
		}
	}
}

// TestCFloorBuild: the C floor compiles where gcc and libxdp are (always in
// CI), and without gcc the candidate is skipped as NOT TESTED.
func TestCFloorBuild(t *testing.T) {
	dir := t.TempDir()
	bin, err := buildCFloor(dir)
	switch {
	case err == nil:
		if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("built %s: %v", bin, err)
		}
	case testenv.InCI():
		t.Errorf("CI installs gcc, libxdp-dev and libbpf-dev: %v", err)
	default:
		t.Logf("NOT TESTED here: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := buildCFloor(dir); !errors.Is(err, ErrSkip) || !strings.Contains(err.Error(), "NOT TESTED") {
		t.Errorf("without gcc: %v", err)
	}
}
