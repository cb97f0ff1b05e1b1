package daemon

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/table"
)

// The template snapshot is JSON lines: a header, one template per line, and
// an end marker with the record count, so that a cut file is told from a
// complete one:
//
//	{"xvs_templates":"v2","saved_at":"2025-01-02T03:04:05.6Z","workers":2}
//	{"worker":0,"proto":17,"client":"0.0.0.0","virtual":"10.0.0.1:5060","server":"192.168.0.1:5060","pe":"sip","pe_data":"YWJj","remaining_ms":51000,"timeout_ms":60000,"reused":true}
//	{"xvs_templates_end":1}
//
// Real servers are saved by address (DestIDs do not survive a restart), the
// remaining lifetime with the wall-clock time of the save, so that the
// downtime counts against it, and the worker that held the template, so
// that a restart with the same queues puts it back where RSS will deliver
// the call's next datagram. A template seen by several workers has a line
// per worker. Version 1 files (no worker, no end marker) are still read.
type snapshotHeader struct {
	Format  string    `json:"xvs_templates"`
	SavedAt time.Time `json:"saved_at"`
	Workers int       `json:"workers,omitempty"`
}

// savedTemplate is one line after the header: a template, or the end
// marker (End set).
type savedTemplate struct {
	Worker    *int   `json:"worker,omitempty"`
	Proto     uint8  `json:"proto"`
	Client    string `json:"client"`
	Virtual   string `json:"virtual"`
	Server    string `json:"server"`
	PE        string `json:"pe,omitempty"`
	PEData    []byte `json:"pe_data,omitempty"`
	Remaining int64  `json:"remaining_ms"`
	Timeout   int64  `json:"timeout_ms"`
	Assured   bool   `json:"assured,omitempty"`
	Reused    bool   `json:"reused,omitempty"`
	End       *int   `json:"xvs_templates_end,omitempty"`
}

const (
	// snapshotFormat is the version this xvs writes; it reads every
	// version up to it.
	snapshotFormat = "v2"
	snapshotV1     = "v1"
	// maxSnapshotLine bounds one line of a snapshot, so that reading one
	// holds at most this much of it in memory: a record is under 700
	// bytes (two IPv6 addresses with ports, the base64 of MaxPEData = 255
	// bytes of engine data, the numbers); a longer line is not one of ours
	// and is skipped and counted without being held.
	maxSnapshotLine = 4096
	// maxSnapshotTimeout bounds a saved timeout: IPVS's largest
	// persistence timeout (ipvs.MaxTimeout seconds); a larger one is a
	// damaged record.
	maxSnapshotTimeout = int64(ipvs.MaxTimeout) * 1000
)

// Snapshot file errors.
var (
	// ErrSnapshotFormat: the file does not start with an xvs template
	// snapshot header.
	ErrSnapshotFormat = errors.New("not an xvs template snapshot")
	// ErrSnapshotVersion: the file was written by a newer xvs.
	ErrSnapshotVersion = errors.New("template snapshot written by a newer xvs")
)

// snapshotRecord is a template read back from a snapshot, validated but not
// yet matched against the configuration.
type snapshotRecord struct {
	workers   int // the saving daemon's workers; 0 when the file does not say
	worker    int // the worker that held it; -1 when the file does not say
	proto     uint8
	client    netip.Addr
	virtual   netip.AddrPort
	server    netip.AddrPort
	pe        string
	peData    []byte
	remaining time.Duration // left after the downtime, > 0
	timeout   time.Duration
	assured   bool
	reused    bool
}

// snapshotRead is what reading a snapshot found.
type snapshotRead struct {
	Format  string
	SavedAt time.Time
	Workers int // the saving daemon's workers; 0 when the file does not say
	Records int // template lines (valid or not)
	Invalid int // template lines skipped as malformed or too long
	Expired int // templates whose time ran out during the downtime
	// Truncated: the file ends before its end marker, mid-line, or with
	// fewer records than the marker counts.
	Truncated bool
}

// Damaged reports whether the file lost or garbled something: such a file
// is kept aside for inspection rather than replaced by the next save.
func (r *snapshotRead) Damaged() bool { return r.Invalid > 0 || r.Truncated }

// readSnapshot reads a snapshot from r, calling fn for every valid template
// that has time left at now, in file order. fn must not retain the record's
// peData. Only the header can fail the whole file (ErrSnapshotFormat,
// ErrSnapshotVersion); a bad template line is skipped and counted, and a read
// error ends the reading with what was read so far counted.
func readSnapshot(r io.Reader, now time.Time, fn func(*snapshotRecord)) (snapshotRead, error) {
	var res snapshotRead
	br := bufio.NewReaderSize(r, maxSnapshotLine)
	line, kind, err := readLine(br)
	if kind == lineNone || kind == lineTooLong {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: no header line", ErrSnapshotFormat)
		}
		return res, err
	}
	var h snapshotHeader
	if json.Unmarshal(line, &h) != nil || h.Format == "" || h.SavedAt.IsZero() {
		return res, fmt.Errorf("%w: no header line", ErrSnapshotFormat)
	}
	switch {
	case h.Format == snapshotV1 || h.Format == snapshotFormat:
	case len(h.Format) > 1 && h.Format[0] == 'v' && isDigits(h.Format[1:]):
		return res, fmt.Errorf("%w (format %.10q; this xvs reads %s and %s)", ErrSnapshotVersion, h.Format, snapshotV1, snapshotFormat)
	default:
		return res, fmt.Errorf("%w: format %.10q", ErrSnapshotFormat, h.Format)
	}
	res.Format, res.SavedAt = h.Format, h.SavedAt
	res.Truncated = kind == lineCut
	if h.Workers > 0 && h.Workers <= ipvs.MaxWorkers {
		res.Workers = h.Workers
	}
	// A save time in the future (a clock set back since, or a damaged
	// header) counts as no downtime; the restore then clamps every
	// template to its service's timeout.
	down := max(now.Sub(h.SavedAt), 0)
	declared := -1
	var rec snapshotRecord
	for err == nil {
		line, kind, err = readLine(br)
		switch {
		case kind == lineNone:
			continue
		case kind == lineCut, kind == lineTooLong && err == io.EOF:
			res.Truncated = true
		}
		if declared >= 0 {
			res.Invalid++ // nothing may follow the end marker
			continue
		}
		if kind != lineTooLong {
			if n, ok := parseEnd(line); ok {
				declared = n
				continue
			}
		}
		res.Records++
		result := recordInvalid
		if kind != lineTooLong {
			result = parseRecord(line, down, &rec)
		}
		switch result {
		case recordOK:
			rec.workers = res.Workers
			fn(&rec)
		case recordExpired:
			res.Expired++
		default:
			res.Invalid++
		}
	}
	if err != io.EOF {
		return res, err
	}
	if res.Format != snapshotV1 && declared != res.Records {
		res.Truncated = true
	}
	return res, nil
}

// lineKind says what readLine found.
type lineKind uint8

const (
	lineNone    lineKind = iota // nothing: the end of the file
	lineFull                    // a line and its newline
	lineCut                     // a last line without its newline: the file was cut
	lineTooLong                 // a line longer than maxSnapshotLine, skipped
)

// readLine returns the next line without its newline. err is io.EOF at the
// end of the file (possibly with a cut last line) or a read error.
func readLine(br *bufio.Reader) ([]byte, lineKind, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n')
		}
		return nil, lineTooLong, err
	case err == nil:
		return line[:len(line)-1], lineFull, nil
	case len(line) > 0:
		return line, lineCut, err
	}
	return nil, lineNone, err
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseEnd recognises the end marker.
func parseEnd(line []byte) (int, bool) {
	const prefix = `{"xvs_templates_end":`
	if len(line) < len(prefix) || string(line[:len(prefix)]) != prefix {
		return 0, false
	}
	var st savedTemplate
	if json.Unmarshal(line, &st) != nil || st.End == nil || *st.End < 0 {
		return 0, false
	}
	return *st.End, true
}

type recordResult uint8

const (
	recordOK recordResult = iota
	recordExpired
	recordInvalid
)

// parseRecord decodes and validates one template line into rec (reusing
// its peData buffer).
func parseRecord(line []byte, down time.Duration, rec *snapshotRecord) recordResult {
	var st savedTemplate
	if json.Unmarshal(line, &st) != nil || st.End != nil {
		return recordInvalid
	}
	client, err1 := netip.ParseAddr(st.Client)
	virtual, err2 := netip.ParseAddrPort(st.Virtual)
	server, err3 := netip.ParseAddrPort(st.Server)
	if err1 != nil || err2 != nil || err3 != nil || client.Zone() != "" || virtual.Addr().Zone() != "" || server.Addr().Zone() != "" ||
		client.Is4() != virtual.Addr().Is4() || len(st.PEData) > table.MaxPEData || (st.PE == "" && len(st.PEData) > 0) ||
		st.Timeout <= 0 || st.Timeout > maxSnapshotTimeout || st.Remaining < 0 ||
		(st.Worker != nil && (*st.Worker < 0 || *st.Worker >= ipvs.MaxWorkers)) {
		return recordInvalid
	}
	rem := time.Duration(min(st.Remaining, maxSnapshotTimeout))*time.Millisecond - down
	if rem <= 0 {
		return recordExpired
	}
	*rec = snapshotRecord{worker: -1, proto: st.Proto, client: client, virtual: virtual, server: server, pe: st.PE,
		peData: append(rec.peData[:0], st.PEData...), remaining: rem, timeout: time.Duration(st.Timeout) * time.Millisecond,
		assured: st.Assured, reused: st.Reused}
	if st.Worker != nil {
		rec.worker = *st.Worker
	}
	return recordOK
}

// appendHeader appends the header line of a snapshot saved at savedAt by a
// daemon with workers workers.
func appendHeader(b []byte, savedAt time.Time, workers int) []byte {
	b = append(b, `{"xvs_templates":"`+snapshotFormat+`","saved_at":"`...)
	b = savedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","workers":`...)
	b = strconv.AppendInt(b, int64(workers), 10)
	return append(b, "}\n"...)
}

// appendRecord appends the line of template t, held by worker, whose real
// server is server and engine peName (quoted: a JSON string, "" for none).
// It writes what encoding/json would, field for field, without reflection:
// a periodic save of a million templates must stay cheap.
func appendRecord(b []byte, worker int, t *table.TemplateInfo, server netip.AddrPort, peName string) []byte {
	b = append(b, `{"worker":`...)
	b = strconv.AppendInt(b, int64(worker), 10)
	b = append(b, `,"proto":`...)
	b = strconv.AppendUint(b, uint64(t.Protocol), 10)
	b = append(b, `,"client":"`...)
	b = t.Client.AppendTo(b)
	b = append(b, `","virtual":"`...)
	b = t.Virtual.AppendTo(b)
	b = append(b, `","server":"`...)
	b = server.AppendTo(b)
	b = append(b, '"')
	if peName != "" {
		b = append(b, `,"pe":`...)
		b = append(b, peName...)
	}
	if len(t.PEData) > 0 {
		b = append(b, `,"pe_data":"`...)
		b = base64.StdEncoding.AppendEncode(b, t.PEData)
		b = append(b, '"')
	}
	b = append(b, `,"remaining_ms":`...)
	b = strconv.AppendInt(b, t.Remaining.Milliseconds(), 10)
	b = append(b, `,"timeout_ms":`...)
	b = strconv.AppendInt(b, t.Timeout.Milliseconds(), 10)
	if t.State == table.TemplateAssured {
		b = append(b, `,"assured":true`...)
	}
	if t.Reused {
		b = append(b, `,"reused":true`...)
	}
	return append(b, "}\n"...)
}

// appendEnd appends the end marker for n records.
func appendEnd(b []byte, n int) []byte {
	b = append(b, `{"xvs_templates_end":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "}\n"...)
}
