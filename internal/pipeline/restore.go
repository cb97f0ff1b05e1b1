package pipeline

import (
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/table"
)

// RestoreTemplate re-creates a saved template (Templates.Restore) in the
// worker's table and publishes it to the cross-worker index, so that
// whichever worker receives the call's next datagram — RSS may steer it to
// any queue — uses its real server. A full table makes room by its normal
// replacement policy (the result says Inserted, InsertExists or
// InsertOverflow; evictions show in the table's counters). A template whose
// Dest is not in the current configuration is refused as InsertInvalid. Like
// every worker method it runs on the worker's goroutine, or before the
// worker runs.
func (w *Worker) RestoreTemplate(info *table.TemplateInfo, now int64) table.InsertResult {
	if s := w.cfg.Load(); s != w.v.snap {
		w.v = newView(s) // the table's OnRemove hook reads it
	}
	if w.v.snap == nil {
		return table.InsertInvalid
	}
	dest := w.v.snap.Dest(ipvs.DestID(info.Dest))
	if dest == nil {
		return table.InsertInvalid
	}
	_, res := w.tmpl.Restore(info, now)
	if res != table.Inserted {
		return res
	}
	dest.Stats.Worker(w.id).AddPersist(1)
	if w.shared != nil {
		k := table.TemplateKey{Protocol: info.Protocol, Client: info.Client, Virtual: info.Virtual, PE: info.PE, PEData: info.PEData}
		if _, _, ok := w.shared.InsertIfAbsent(k.Hash(w.seed), info.Dest, now+int64(info.Remaining), now); !ok {
			w.local.SharedFull++
		}
	}
	return res
}
