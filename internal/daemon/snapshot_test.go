package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/testenv"
	"github.com/xvs-lb/xvs/table"
)

// record returns a v1/v2 template line for the test service's first real
// server.
func record(callID string, remainingMS int64) string {
	return fmt.Sprintf(`{"proto":17,"client":"0.0.0.0","virtual":"10.0.0.1:5060","server":"192.168.0.1:5060","pe":"sip","pe_data":"%s","remaining_ms":%d,"timeout_ms":60000}`,
		b64(callID), remainingMS) + "\n"
}

func b64(s string) string { b, _ := json.Marshal([]byte(s)); return strings.Trim(string(b), `"`) }

func header(format string, savedAt time.Time) string {
	return fmt.Sprintf(`{"xvs_templates":%q,"saved_at":%q}`, format, savedAt.Format(time.RFC3339Nano)) + "\n"
}

// Issue 10 item 5: a saved_at in the future made a 49-day template. Every
// restored template is clamped to its service's persistence timeout (the
// test service's -p 60), whatever the file says.
func TestRestoreClampsToServiceTimeout(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	body := header("v1", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) + record("future@x", 4233600000) + record("long@x", 3600_000)
	os.WriteFile(snap, []byte(body), 0o600)
	d, _ := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	defer d.Close()
	tm, err := d.Templates(t.Context())
	if err != nil || len(tm) != 2 {
		t.Fatalf("restored %d templates (%v), want 2", len(tm), err)
	}
	for _, x := range tm {
		if x.Remaining > 60*time.Second || x.Remaining < 59*time.Second || x.Timeout != 60*time.Second {
			t.Fatalf("%s restored with %v left of %v, want at most the service's 60 s", x.PEData, x.Remaining, x.Timeout)
		}
	}
}

// Issue 10 item 5: an unreadable or newer-version file was replaced by an
// empty snapshot at the next shutdown. Now it is kept aside (renamed
// FILE.bad-TIME, byte for byte) and the daemon starts without it.
func TestRestoreKeepsBadFileAside(t *testing.T) {
	for _, c := range []struct{ name, body, reason string }{
		{"newer version", `{"xvs_templates":"v9","saved_at":"2020-01-01T00:00:00Z"}` + "\n" + record("x@y", 1000), "written by a newer xvs"},
		{"not a snapshot", "ipvsadm -A -u 10.0.0.1:5060\n", "not an xvs template snapshot"},
		{"binary garbage", "\x00\x01\x02\xff\xfe", "not an xvs template snapshot"},
		{"empty", "", "not an xvs template snapshot"},
		{"header cut", `{"xvs_templates":"v2","saved_at":"20`, "not an xvs template snapshot"},
		{"huge line", strings.Repeat("z", 3*maxSnapshotLine) + "\n", "not an xvs template snapshot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap := filepath.Join(t.TempDir(), "templates.json")
			os.WriteFile(snap, []byte(c.body), 0o600)
			var log testenv.Buffer
			d, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap,
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			aside, _ := filepath.Glob(snap + ".bad-*")
			if len(aside) != 1 {
				t.Fatalf("kept aside: %v", aside)
			}
			if got, _ := os.ReadFile(aside[0]); string(got) != c.body {
				t.Fatal("the file kept aside differs from the original")
			}
			if !strings.Contains(log.String(), `msg="template snapshot kept aside`) || !strings.Contains(log.String(), c.reason) {
				t.Fatalf("log:\n%s", log.String())
			}
			placeCalls(t, b, 3)
			d.Close()
			if n := countSaved(t, snap); n != 3 {
				t.Fatalf("new snapshot holds %d templates", n)
			}
			if got, _ := os.ReadFile(aside[0]); string(got) != c.body {
				t.Fatal("the file kept aside was overwritten")
			}
		})
	}
}

// Issue 10 item 5: one bad record made the restore give up on the whole
// file. Now a bad record (bad JSON, bad address, a line over
// maxSnapshotLine) is skipped and counted, the rest restored, and the file
// kept aside for inspection.
func TestRestoreSkipsBadRecords(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	body := header("v1", time.Now()) + record("a@x", 30000) + "{bad\n" + record("b@x", 30000) +
		strings.Repeat("x", 1<<20) + "\n" + strings.Replace(record("c@x", 1), "10.0.0.1", "10.0.0.999", 1) +
		record("d@x", 30000) + record("gone@x", 1) // expired during the "downtime"
	os.WriteFile(snap, []byte(body), 0o600)
	time.Sleep(5 * time.Millisecond)
	d, _ := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	defer d.Close()
	if got := liveTemplates(t, d); got[0] != 3 {
		t.Fatalf("restored %v, want 3", got)
	}
	r := d.SnapshotStatus().Restored
	if r["restored"] != 3 || r["invalid"] != 3 || r["expired"] != 1 {
		t.Fatalf("restore outcome %v, want 3 restored, 3 invalid, 1 expired", r)
	}
	if aside, _ := filepath.Glob(snap + ".bad-*"); len(aside) != 1 {
		t.Fatalf("damaged file not kept aside: %v", aside)
	}
}

// Issue 10 item 5: a truncated file restored silently what it could. Now
// the log says it is truncated and how many records were restored.
func TestRestoreTruncatedReportsCount(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	d, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	placeCalls(t, b, 50)
	d.Close()
	full, _ := os.ReadFile(snap)
	lines := bytes.SplitAfter(full, []byte("\n"))
	if len(lines) != 1+50+1+1 { // header, records, end marker, ""
		t.Fatalf("%d lines", len(lines))
	}
	for _, c := range []struct {
		name string
		cut  []byte
		want int
	}{
		{"mid-record", append(bytes.Join(lines[:21], nil), lines[21][:40]...), 20},
		{"at a line end", bytes.Join(lines[:31], nil), 30},
		{"end marker cut", bytes.Join(lines[:51], nil), 50},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.WriteFile(snap, c.cut, 0o600)
			var log testenv.Buffer
			d, _ := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap,
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			defer d.Close()
			if got := liveTemplates(t, d); got[0] != c.want {
				t.Fatalf("restored %v, want %d", got, c.want)
			}
			want := fmt.Sprintf(`level=WARN msg="template snapshot is truncated: only the records before the cut were restored" file=%s`, snap)
			if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), fmt.Sprintf("restored=%d", c.want)) {
				t.Fatalf("log lacks %q and restored=%d:\n%s", want, c.want, log.String())
			}
			for _, f := range mustGlob(t, snap+".bad-*") {
				os.Remove(f)
			}
		})
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// appendRecord writes exactly what encoding/json writes for the same
// record, and what it writes reads back unchanged.
func TestAppendRecordIsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 500 {
		var ti table.TemplateInfo
		ti.Protocol = uint8(r.IntN(256))
		var server netip.AddrPort
		if i%2 == 0 {
			ti.Client = netip.AddrFrom4([4]byte{byte(r.Uint32()), 1, 2, 3})
			ti.Virtual = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), uint16(r.Uint32()))
			server = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 0, byte(i)}), 5060)
		} else {
			var a [16]byte
			a[0], a[1], a[15] = 0x20, 0x01, byte(i)
			ti.Client, ti.Virtual, server = netip.AddrFrom16(a), netip.AddrPortFrom(netip.AddrFrom16(a), 5060), netip.AddrPortFrom(netip.AddrFrom16(a), 0)
		}
		ti.PEData = make([]byte, r.IntN(table.MaxPEData+1))
		for j := range ti.PEData {
			ti.PEData[j] = byte(r.Uint32())
		}
		ti.Remaining = time.Duration(r.Int64N(int64(time.Hour)))
		ti.Timeout = time.Duration(1+r.Int64N(3600)) * time.Second
		ti.State = table.TemplateState(r.IntN(2))
		ti.Reused = r.IntN(2) == 0
		peName := []string{"", "sip", "we\"ird\\\x01<&>\t"}[i%3]
		if peName == "" {
			ti.PEData = nil
		}
		worker := r.IntN(64)
		var quoted string
		if peName != "" {
			q, _ := json.Marshal(peName)
			quoted = string(q)
		}
		got := appendRecord(nil, worker, &ti, server, quoted)
		st := savedTemplate{Worker: &worker, Proto: ti.Protocol, Client: ti.Client.String(), Virtual: ti.Virtual.String(),
			Server: server.String(), PE: peName, PEData: ti.PEData, Remaining: ti.Remaining.Milliseconds(),
			Timeout: ti.Timeout.Milliseconds(), Assured: ti.State == table.TemplateAssured, Reused: ti.Reused}
		want, _ := json.Marshal(st)
		if string(got) != string(want)+"\n" {
			t.Fatalf("appendRecord\n%s\nencoding/json\n%s", got, want)
		}
		if len(got) > maxSnapshotLine {
			t.Fatalf("a record of %d bytes exceeds maxSnapshotLine", len(got))
		}
	}
}

func TestReadSnapshotFormats(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	saved := now.Add(-10 * time.Second)
	var ti = table.TemplateInfo{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
		PEData: []byte("id@x"), Remaining: 50 * time.Second, Timeout: time.Minute, Reused: true}
	v2 := string(appendHeader(nil, saved, 2)) + string(appendRecord(nil, 1, &ti, netip.MustParseAddrPort("192.168.0.1:5060"), `"sip"`)) + string(appendEnd(nil, 1))
	for _, c := range []struct {
		name      string
		body      string
		err       error
		records   int
		truncated bool
		invalid   int
	}{
		{"v2", v2, nil, 1, false, 0},
		{"v2 without end marker", strings.TrimSuffix(v2, string(appendEnd(nil, 1))), nil, 1, true, 0},
		{"v2 with a lost record", strings.Replace(v2, `"xvs_templates_end":1`, `"xvs_templates_end":2`, 1), nil, 1, true, 0},
		{"v2 with lines after the end", v2 + record("z", 1), nil, 1, false, 1},
		{"v1", header("v1", saved) + record("a", 30000), nil, 1, false, 0},
		{"newer", header("v3", saved), ErrSnapshotVersion, 0, false, 0},
		{"other format", header("json", saved), ErrSnapshotFormat, 0, false, 0},
		{"no saved_at", `{"xvs_templates":"v2"}` + "\n", ErrSnapshotFormat, 0, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []snapshotRecord
			read, err := readSnapshot(strings.NewReader(c.body), now, func(r *snapshotRecord) { got = append(got, *r) })
			if !errors.Is(err, c.err) || read.Records != c.records || read.Truncated != c.truncated || read.Invalid != c.invalid {
				t.Fatalf("err %v, read %+v", err, read)
			}
			if c.name == "v2" {
				r := got[0]
				if r.worker != 1 || r.workers != 2 || r.remaining != 40*time.Second || string(r.peData) != "id@x" || !r.reused || r.pe != "sip" {
					t.Fatalf("record %+v", r)
				}
			}
		})
	}
}

// A daemon started without its rules (or after a real server was removed)
// cannot restore the templates of what is not configured; the periodic
// save would then drop those calls for good. The file is kept as it was,
// as FILE.unrestored.
func TestRestoreKeepsUnconfiguredTemplates(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	d, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	placeCalls(t, b, 10)
	d.Close()
	saved, _ := os.ReadFile(snap)
	other := filepath.Join(t.TempDir(), "other.rules")
	os.WriteFile(other, []byte("-A -u 10.0.0.7:5060 -p 60\n-a -u 10.0.0.7:5060 -r 192.168.0.1:5060 -m\n"), 0o600)
	var log testenv.Buffer
	d2, _ := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap, Rules: other,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if r := d2.SnapshotStatus().Restored; r["no_service"] != 10 || r["restored"] != 0 {
		t.Fatalf("restore outcome %v", r)
	}
	d2.Close()
	if got, _ := os.ReadFile(snap + ".unrestored"); string(got) != string(saved) {
		t.Fatalf("snapshot not kept as .unrestored:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "kept_as="+snap+".unrestored no_service=10 no_server=0") {
		t.Fatalf("log:\n%s", log.String())
	}
	// Back with the right rules, the operator moves it back.
	os.Rename(snap+".unrestored", snap)
	d3, _ := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	defer d3.Close()
	if got := liveTemplates(t, d3); got[0] != 10 {
		t.Fatalf("restored %v, want 10", got)
	}
}

// BenchmarkAppendRecord is the encoding cost of one saved template (an IPv4
// SIP template with a 31-byte Call-ID).
func BenchmarkAppendRecord(b *testing.B) {
	ti := table.TemplateInfo{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
		PEData: []byte("a84b4c76e66710@pc33.atlanta.com"), Remaining: 50 * time.Second, Timeout: time.Minute, Reused: true}
	server := netip.MustParseAddrPort("192.168.0.1:5060")
	var buf []byte
	for range b.N {
		buf = appendRecord(buf[:0], 1, &ti, server, `"sip"`)
	}
	b.ReportMetric(float64(len(buf)), "bytes/record")
}
