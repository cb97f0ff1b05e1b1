package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
)

// groundTruth reads a capture's .callids.tsv: frame → (src, dst, Call-ID).
type truthRow struct{ src, dst, callID string }

func readTruth(t *testing.T, path string) map[int]truthRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[int]truthRow{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		c := strings.Split(line, "\t")
		var n int
		fmt.Sscan(c[0], &n)
		rows[n] = truthRow{c[1], c[2], c[3]}
	}
	return rows
}

// logRow is one line of the decision log.
type logRow struct {
	frame                                   int
	src, dst, callID, verdict, real, reason string
}

func readLog(t *testing.T, b []byte) []logRow {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0]+"\n" != LogHeader {
		t.Fatalf("log header %q", lines[0])
	}
	var rows []logRow
	for i, l := range lines[1:] {
		c := strings.Split(l, "\t")
		if len(c) != 7 {
			t.Fatalf("log line %d has %d fields: %q", i+2, len(c), l)
		}
		var r logRow
		fmt.Sscan(c[0], &r.frame)
		r.src, r.dst, r.callID, r.verdict, r.real, r.reason = c[1], c[2], c[3], c[4], c[5], c[6]
		rows = append(rows, r)
	}
	return rows
}

// knownDifferences lists, by capture and frame, the SIP datagrams that the
// replay may not forward yet, and why. Everything else must be forwarded.
// (sngrep_ipv6frag.pcap's frames 2 and 5, the last fragments on which tshark
// reports the SIP message, used to be here: they now follow their first
// fragments, frames 1 and 4, through the fragment table.)
var knownDifferences = map[string]map[int]string{}

// sameServer lists, by capture, pairs of frames that are fragments of one
// datagram and must reach the same real server.
var sameServer = map[string][][2]int{
	"sngrep_ipv6frag.pcap": {{1, 2}, {4, 5}},
}

// Every capture of the corpus (the repository's, and ../shared's others when
// it is there), replayed with a SIP service on each address:port
// that receives SIP and three NAT real servers: every SIP datagram to a
// service is forwarded, Call-IDs match tshark's, each template key (service,
// masked client, Call-ID) lands on exactly one real server, and every
// rewritten frame whose input had valid checksums still has valid ones.
func TestReplayCorpus(t *testing.T) {
	cs := testenv.Captures(t)
	if len(cs) < 10 {
		t.Fatalf("found %d captures with ground truth", len(cs))
	}
	for _, c := range cs {
		name := c.Name
		t.Run(name, func(t *testing.T) {
			truth := readTruth(t, c.CallIDs)
			cfg := captureConfig(t, truth)
			in, err := capture.Open(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var log, out bytes.Buffer
			res, err := Run(in, Options{Config: cfg, Workers: 2, Log: &log, Out: &out})
			if err != nil {
				t.Fatal(err)
			}
			rows := readLog(t, log.Bytes())
			if len(rows) != res.Frames {
				t.Fatalf("%d log rows for %d frames", len(rows), res.Frames)
			}
			for _, pair := range sameServer[name] {
				a, b := rows[pair[0]-1], rows[pair[1]-1]
				if a.verdict != "forward" || b.verdict != "forward" || a.real != b.real {
					t.Errorf("frames %d and %d (one datagram's fragments): %s %s and %s %s", pair[0], pair[1], a.verdict, a.real, b.verdict, b.real)
				}
			}
			snap := cfg.Snapshot()
			times := frameTimes(t, c.Path)
			owners := map[string]string{}
			lastUse := map[string]int64{}
			forwarded := 0
			for _, r := range rows {
				tr, isSIP := truth[r.frame]
				if !isSIP {
					continue
				}
				if why, ok := knownDifferences[name][r.frame]; ok {
					if r.verdict == "forward" {
						t.Errorf("frame %d is listed as a known difference (%s) but was forwarded: update the list", r.frame, why)
					}
					continue
				}
				if r.src != tr.src || r.dst != tr.dst {
					t.Fatalf("frame %d: %s → %s, tshark %s → %s", r.frame, r.src, r.dst, tr.src, tr.dst)
				}
				if r.callID != tr.callID {
					t.Errorf("frame %d: Call-ID %q, tshark %q", r.frame, r.callID, tr.callID)
				}
				if r.verdict != "forward" {
					t.Errorf("frame %d (SIP to a service): %s %s", r.frame, r.verdict, r.reason)
					continue
				}
				forwarded++
				if r.callID == "" {
					continue
				}
				src, dst := netip.MustParseAddrPort(r.src), netip.MustParseAddrPort(r.dst)
				svc := snap.Lookup(ipvs.UDP, dst.Addr(), dst.Port())
				key := fmt.Sprintf("%v|%v|%s", svc.Key, svc.MaskClient(src.Addr()), r.callID)
				// A key may move only after its template expired on the
				// capture's clock (one capture's timestamps jump by years).
				if prev, ok := owners[key]; ok && prev != r.real && times[r.frame]-lastUse[key] <= captureTimeout {
					t.Errorf("frame %d: template key %s moved from %s to %s", r.frame, key, prev, r.real)
				}
				owners[key] = r.real
				lastUse[key] = times[r.frame]
			}
			want := 0
			for f := range truth {
				if _, ok := knownDifferences[name][f]; !ok {
					want++
				}
			}
			if forwarded != want {
				t.Errorf("forwarded %d SIP datagrams, want %d", forwarded, want)
			}
			checkRewrittenFrames(t, c.Path, rows, out.Bytes())
		})
	}
}

// captureTimeout is the persistence timeout of captureConfig's services.
const captureTimeout = int64(86400e9)

func frameTimes(t *testing.T, path string) map[int]int64 {
	t.Helper()
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := map[int]int64{}
	for {
		f, err := r.Next()
		if err != nil {
			return m
		}
		m[f.Number] = f.Time.UnixNano()
	}
}

// captureConfig puts a SIP service on every address:port that receives SIP
// in the capture, each with three NAT real servers. The persistence timeout
// is a day, longer than any capture, so that every use of a Call-ID must hit
// its template (with -p 60 a REGISTER refreshed minutes later is, correctly,
// scheduled afresh).
func captureConfig(t *testing.T, truth map[int]truthRow) *ipvs.Config {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var text strings.Builder
	var dsts []string
	for _, r := range truth {
		if !seen[r.dst] {
			seen[r.dst] = true
			dsts = append(dsts, r.dst)
		}
	}
	sort.Strings(dsts)
	for _, d := range dsts {
		ap := netip.MustParseAddrPort(d)
		if ap.Addr().Is4() {
			fmt.Fprintf(&text, "-A -u %s -s rr -p 86400 -M 0.0.0.0 --pe sip -o\n", ap)
			for i := 1; i <= 3; i++ {
				fmt.Fprintf(&text, "-a -u %s -r 10.255.0.%d:5060 -m\n", ap, i)
			}
		} else {
			fmt.Fprintf(&text, "-A -u %s -s rr -p 86400 -M 1 --pe sip -o\n", ap)
			for i := 1; i <= 3; i++ {
				fmt.Fprintf(&text, "-a -u %s -r [fd00:ff::%d]:5060 -m\n", ap, i)
			}
		}
	}
	if err := rules.Read(cfg, strings.NewReader(text.String()), "capture.rules"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkRewrittenFrames reads the output capture (the forwarded frames, in
// order) and checks each against its input frame: it decodes, is addressed
// to the logged real server, and has valid checksums when the input had.
func checkRewrittenFrames(t *testing.T, inPath string, rows []logRow, out []byte) {
	t.Helper()
	in, err := capture.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if len(out) == 0 {
		for _, r := range rows {
			if r.verdict == "forward" {
				t.Fatal("forwarded frames but an empty output capture")
			}
		}
		return
	}
	o, err := capture.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	checked, validIn := 0, 0
	for _, r := range rows {
		f, err := in.Next()
		if err != nil {
			t.Fatal(err)
		}
		if r.verdict != "forward" {
			continue
		}
		inFrame := append([]byte(nil), f.Data...)
		g, err := o.Next()
		if err != nil {
			t.Fatalf("output ends before forwarded frame %d: %v", r.frame, err)
		}
		lt, _ := packet.LinkTypeFromDLT(int(f.LinkType))
		var pin, pout packet.Parsed
		pin.Decode(inFrame, lt)
		reason := pout.Decode(g.Data, lt)
		switch {
		case reason == packet.ReasonNonFirstFragment:
			// A later fragment (no ports) follows its first fragment.
			if r.reason != "fragment_followed" {
				t.Errorf("frame %d: a fragment forwarded as %s", r.frame, r.reason)
			}
			// Inbound it goes to the real server; a reply came from it.
			if real := netip.MustParseAddrPort(r.real).Addr(); pout.Dst != real && pin.Src != real {
				t.Errorf("frame %d: fragment %s → %s, logged real server %s", r.frame, pout.Src, pout.Dst, r.real)
			}
		case reason != packet.ReasonOK:
			t.Fatalf("frame %d: output does not decode: %v", r.frame, reason)
		default:
			if got := pout.DstAddrPort().String(); got != r.real {
				t.Errorf("frame %d: output to %s, logged %s", r.frame, got, r.real)
			}
		}
		if pin.VerifyChecksums(inFrame) {
			validIn++
			if !pout.VerifyChecksums(g.Data) {
				t.Errorf("frame %d: valid checksums in, invalid out", r.frame)
			}
		}
		checked++
	}
	if _, err := o.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("output has more frames than forwarded (%v)", err)
	}
	t.Logf("%d rewritten frames checked, %d with valid input checksums", checked, validIn)
}

// The demo capture, end to end through the command-line contract's pieces:
// one 5-tuple, 631 Call-IDs, spread evenly by rr, none split; at the end
// (63 s of capture time, -p 60) 21 of their templates have expired.
func TestReplayDemoCapture(t *testing.T) {
	cfg, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Load(cfg, "../../examples/sipp-demo.rules"); err != nil {
		t.Fatal(err)
	}
	in, err := capture.Open("../../testdata/captures/sipp-branch-scenario.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	res, err := Run(in, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 4500 || res.Verdicts[1] != 1943 || res.Templates != 610 {
		t.Fatalf("frames %d forwarded %d templates %d", res.Frames, res.Verdicts[1], res.Templates)
	}
	total := 0
	for a, s := range res.PerReal {
		if n := len(s.CallIDs); n < 210 || n > 211 {
			t.Errorf("%v got %d Call-IDs, want 210 or 211", a, n)
		}
		total += len(s.CallIDs)
	}
	if total != 631 {
		t.Fatalf("Call-IDs over the servers sum to %d, want 631 (a Call-ID on two servers counts twice)", total)
	}
}
