package daemon

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/table"
)

// FuzzReadSnapshot feeds the snapshot reader arbitrary files (the committed
// corpus in testdata/fuzz/FuzzReadSnapshot holds real saves, v1 files, cut
// and garbled ones). It must never panic or hold more than a line; what it
// accepts must be valid and counted; and every accepted template must read
// back unchanged after being written again.
func FuzzReadSnapshot(f *testing.F) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	ti := table.TemplateInfo{Protocol: 17, Client: netip.MustParseAddr("0.0.0.0"), Virtual: netip.MustParseAddrPort("10.0.0.1:5060"),
		PEData: []byte("a84b4c76e66710@pc33.atlanta.com"), Remaining: 50 * time.Second, Timeout: time.Minute, Reused: true}
	good := appendHeader(nil, now.Add(-time.Second), 2)
	good = appendRecord(good, 1, &ti, netip.MustParseAddrPort("192.168.0.1:5060"), `"sip"`)
	good = appendEnd(good, 1)
	f.Add(good)
	f.Add([]byte(header("v1", now) + record("x@y", 1000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []snapshotRecord
		read, err := readSnapshot(bytes.NewReader(data), now, func(r *snapshotRecord) {
			if r.remaining <= 0 || r.remaining > time.Duration(maxSnapshotTimeout)*time.Millisecond ||
				r.timeout <= 0 || r.timeout > time.Duration(maxSnapshotTimeout)*time.Millisecond ||
				len(r.peData) > table.MaxPEData || r.worker < -1 || r.worker >= ipvs.MaxWorkers ||
				r.client.Is4() != r.virtual.Addr().Is4() || !r.server.IsValid() || (r.pe == "" && len(r.peData) > 0) {
				t.Fatalf("invalid record accepted: %+v", r)
			}
			c := *r
			c.peData = bytes.Clone(r.peData)
			recs = append(recs, c)
		})
		if err != nil {
			if len(recs) != 0 || read.Records != 0 {
				t.Fatalf("header refused (%v) but %d records read", err, read.Records)
			}
			return
		}
		if len(recs)+read.Expired > read.Records || len(recs)+read.Expired+read.Invalid < read.Records {
			t.Fatalf("%d accepted, counts %+v", len(recs), read)
		}
		// Written again (as a save would, at now) and read back: the same.
		var out []byte
		out = appendHeader(out, now, read.Workers)
		for i := range recs {
			r := &recs[i]
			info := table.TemplateInfo{Protocol: r.proto, Client: r.client, Virtual: r.virtual, PEData: r.peData,
				Remaining: r.remaining, Timeout: r.timeout, Reused: r.reused}
			if r.assured {
				info.State = table.TemplateAssured
			}
			var pe string
			if r.pe != "" {
				pe = string(appendQuoted(r.pe))
			}
			out = appendRecord(out, max(r.worker, 0), &info, r.server, pe)
		}
		out = appendEnd(out, len(recs))
		i := 0
		again, err := readSnapshot(bytes.NewReader(out), now, func(r *snapshotRecord) {
			want := recs[i]
			i++
			if r.proto != want.proto || r.client != want.client || r.virtual != want.virtual || r.server != want.server ||
				r.pe != want.pe || !bytes.Equal(r.peData, want.peData) || r.timeout != want.timeout.Truncate(time.Millisecond) ||
				r.assured != want.assured || r.reused != want.reused || want.remaining-r.remaining >= time.Millisecond {
				t.Fatalf("read back %+v, wrote %+v", r, want)
			}
		})
		if err != nil || again.Damaged() || i+again.Expired != len(recs) {
			t.Fatalf("rewritten file: %v %+v, %d of %d read back", err, again, i, len(recs))
		}
	})
}

func appendQuoted(s string) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}
