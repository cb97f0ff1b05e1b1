package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/xvs-lb/xvs/internal/dataplane"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// The template snapshot is JSON lines: a header, then one template per line.
// Destinations are saved by address (DestIDs do not survive a restart) and
// the remaining lifetime with the wall-clock time of the save, so that the
// downtime counts against it.
type snapshotHeader struct {
	Format  string    `json:"xvs_templates"`
	SavedAt time.Time `json:"saved_at"`
}

const snapshotFormat = "v1"

type savedTemplate struct {
	Proto     uint8  `json:"proto"`
	Client    string `json:"client"`
	Virtual   string `json:"virtual"`
	Server    string `json:"server"`
	PE        string `json:"pe,omitempty"`
	PEData    []byte `json:"pe_data,omitempty"`
	Remaining int64  `json:"remaining_ms"`
	Timeout   int64  `json:"timeout_ms"`
	Assured   bool   `json:"assured,omitempty"`
}

// saveTemplates writes every worker's live templates to path (atomically:
// a temporary file renamed into place).
func (d *Daemon) saveTemplates(ctx context.Context, path string) (int, error) {
	infos, err := d.Templates(ctx)
	if err != nil {
		return 0, err
	}
	snap := d.snap.Load()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".xvs-templates-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	enc.Encode(snapshotHeader{Format: snapshotFormat, SavedAt: time.Now()})
	seen := map[string]bool{} // one line per key: a call seen by several workers
	n := 0
	for _, t := range infos {
		dst := snap.Dest(ipvs.DestID(t.Dest))
		if dst == nil {
			continue
		}
		st := savedTemplate{Proto: t.Protocol, Client: t.Client.String(), Virtual: t.Virtual.String(), Server: dst.Addr.String(),
			PEData: t.PEData, Remaining: t.Remaining.Milliseconds(), Timeout: t.Timeout.Milliseconds(), Assured: t.State == table.TemplateAssured}
		if e := pe.ByID(pe.ID(t.PE)); e != nil {
			st.PE = e.Name()
		}
		k := fmt.Sprintf("%d|%s|%s|%s|%x", st.Proto, st.Client, st.Virtual, st.PE, st.PEData)
		if seen[k] {
			continue
		}
		seen[k] = true
		if err := enc.Encode(st); err != nil {
			tmp.Close()
			return 0, err
		}
		n++
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), path)
}

// restoreTemplates loads a snapshot into worker 0's table (and the shared
// index, so every worker finds them). It runs in Start, before the workers
// do, so touching worker 0's table from here is safe. Templates whose
// service or real server is gone, or whose time ran out, are skipped.
func (d *Daemon) restoreTemplates(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil || h.Format != snapshotFormat {
		return 0, fmt.Errorf("%s: not an xvs template snapshot (%v)", path, err)
	}
	down := time.Since(h.SavedAt)
	snap := d.snap.Load()
	now := dataplane.Monotonic()
	tmpl := d.workers[0].Templates()
	n := 0
	for dec.More() {
		var st savedTemplate
		if err := dec.Decode(&st); err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
		rem := time.Duration(st.Remaining)*time.Millisecond - down
		if rem <= 0 {
			continue
		}
		vip, err1 := netip.ParseAddrPort(st.Virtual)
		server, err2 := netip.ParseAddrPort(st.Server)
		client, err3 := netip.ParseAddr(st.Client)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		svc := snap.Lookup(ipvs.Protocol(st.Proto), vip.Addr(), vip.Port())
		if svc == nil {
			continue
		}
		var dest *ipvs.Dest
		for _, dd := range svc.Dests {
			if dd.Addr == server {
				dest = dd
			}
		}
		if dest == nil {
			continue
		}
		info := table.TemplateInfo{Protocol: st.Proto, Client: client, Virtual: vip, Dest: table.DestID(dest.ID),
			Timeout: time.Duration(st.Timeout) * time.Millisecond, Remaining: rem, PEData: st.PEData}
		if st.Assured {
			info.State = table.TemplateAssured
		}
		if st.PE != "" {
			_, id, ok := pe.Lookup(st.PE)
			if !ok {
				continue
			}
			info.PE = uint8(id)
		}
		if _, res := tmpl.Restore(&info, now); res != table.Inserted {
			continue
		}
		dest.Stats.Worker(0).AddPersist(1)
		if d.shared != nil {
			k := table.TemplateKey{Protocol: info.Protocol, Client: info.Client, Virtual: info.Virtual, PE: info.PE, PEData: info.PEData}
			d.shared.InsertIfAbsent(k.Hash(tmpl.Seed()), info.Dest, now+int64(rem), now)
		}
		n++
	}
	return n, nil
}
