package sipparse_test

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/sipparse"
)

// tsvRow is one line of a capture's .callids.tsv ground truth.
type tsvRow struct {
	src, dst, callID string
}

func readTSV(t *testing.T, path string) map[int]tsvRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[int]tsvRow{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.SplitN(line, "\t", 4)
		if len(fs) != 4 {
			t.Fatalf("%s: bad row %q", path, line)
		}
		n, err := strconv.Atoi(fs[0])
		if err != nil {
			t.Fatalf("%s: bad frame number in %q", path, line)
		}
		rows[n] = tsvRow{fs[1], fs[2], fs[3]}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// usable reports whether a tshark Call-ID (unfolded, LWS-trimmed, invalid
// UTF-8 shown as U+FFFD) is one sipparse must return: non-empty visible
// ASCII of at most MaxCallIDLen bytes. Anything else must be refused.
func usable(id string) bool {
	if id == "" || len(id) > sipparse.MaxCallIDLen {
		return false
	}
	for i := range len(id) {
		if id[i] <= 0x20 || id[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Frames where sipparse, lacking IP reassembly, must differ from tshark. Each
// entry names file and frame and says why; nothing else may differ.
var captureExceptions = map[string]map[int]exception{
	"sngrep_ipv6frag.pcap": {
		1: {"first IPv6 fragment of a large INVITE; tshark reports the reassembled datagram on frame 2", 2},
		2: {"last IPv6 fragment: no UDP header, the row is tshark's reassembled INVITE", 0},
		4: {"first IPv6 fragment of the second large INVITE; reassembled on frame 5", 5},
		5: {"last IPv6 fragment of the second large INVITE", 0},
	},
}

// exception is a frame sipparse cannot match tshark on without reassembly.
// With callIDFrom set, the frame is a first fragment whose partial payload
// must still give the Call-ID tshark reports on frame callIDFrom; otherwise it
// is a non-first fragment that must decode as one.
type exception struct {
	why        string
	callIDFrom int
}

// TestCaptures checks every UDP frame of every capture of the corpus (the
// repository's, and ../shared's others when it is there): frames in the
// .callids.tsv must give tshark's addresses and Call-ID, and frames tshark
// does not list as SIP must give no Call-ID, except the listed exceptions.
func TestCaptures(t *testing.T) {
	total, want := 0, 0
	for _, c := range testenv.Captures(t) {
		rows := readTSV(t, c.CallIDs)
		want += len(rows)
		t.Run(c.Name, func(t *testing.T) {
			total += checkCapture(t, c.Path, rows, captureExceptions[c.Name])
		})
	}
	// Every TSV row but the excepted ones (4876 of 4878 with ../shared).
	if want < 4700 || total < want-2 {
		t.Errorf("compared %d SIP/UDP frames of %d TSV rows", total, want)
	}
}

func checkCapture(t *testing.T, path string, rows map[int]tsvRow, except map[int]exception) (compared int) {
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var p packet.Parsed
	seen := map[int]bool{}
	excepted := map[int]bool{}
	for {
		fr, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lt, ok := packet.LinkTypeFromDLT(int(fr.LinkType))
		if !ok {
			t.Fatalf("frame %d: link type %v not supported", fr.Number, fr.LinkType)
		}
		data := fr.Data
		reason := p.Decode(data, lt)
		row, inTSV := rows[fr.Number]
		if ex, ok := except[fr.Number]; ok {
			excepted[fr.Number] = true
			seen[fr.Number] = inTSV
			t.Logf("frame %d excepted: %s", fr.Number, ex.why)
			switch id, found := sipparse.CallID(p.Payload(data)); {
			case ex.callIDFrom == 0 && reason != packet.ReasonNonFirstFragment:
				t.Errorf("frame %d: %v, expected a non-first fragment", fr.Number, reason)
			case ex.callIDFrom != 0 && (!p.Fragmented || !p.IsFirstFragment() || !found || string(id) != rows[ex.callIDFrom].callID):
				t.Errorf("frame %d: first fragment gives %q, %v; want %q", fr.Number, id, found, rows[ex.callIDFrom].callID)
			}
			continue
		}
		if p.Proto != packet.ProtoUDP || reason != packet.ReasonOK {
			if inTSV {
				t.Errorf("frame %d: in the TSV but decodes as proto %d, %v", fr.Number, p.Proto, reason)
			}
			continue
		}
		payload := p.Payload(data)
		id, ok := sipparse.CallID(payload)
		m := sipparse.Scan(payload)
		if ok != (m.Status == sipparse.StatusOK) || string(id) != string(m.CallID) {
			t.Errorf("frame %d: CallID and Scan disagree", fr.Number)
		}
		if !inTSV {
			if ok {
				t.Errorf("frame %d: Call-ID %q in a UDP datagram tshark does not see as SIP", fr.Number, id)
			}
			continue
		}
		seen[fr.Number] = true
		compared++
		if src, dst := addrPort(p.Src, p.SrcPort), addrPort(p.Dst, p.DstPort); src != row.src || dst != row.dst {
			t.Errorf("frame %d: %s -> %s, TSV %s -> %s", fr.Number, src, dst, row.src, row.dst)
		}
		if want := usable(row.callID); ok != want || (ok && string(id) != row.callID) {
			t.Errorf("frame %d: Call-ID %q, %v (%v); tshark %q", fr.Number, id, ok, m.Status, row.callID)
		}
		if m.StartLine.Kind == sipparse.KindInvalid && row.callID != "" {
			t.Errorf("frame %d: start line not classified: %.40q", fr.Number, payload)
		}
	}
	for n := range rows {
		if !seen[n] {
			t.Errorf("TSV frame %d not in the capture", n)
		}
	}
	for n := range except {
		if !excepted[n] {
			t.Errorf("exception for frame %d names no frame", n)
		}
	}
	return compared
}

func addrPort(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}
