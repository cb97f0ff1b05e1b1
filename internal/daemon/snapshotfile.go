package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

const (
	// DefaultSnapshotInterval is how often the templates are saved while
	// the daemon runs, besides at shutdown: a kill -9, an OOM kill or a
	// power cut loses at most the templates created or refreshed in the
	// last interval. It is well below the usual SIP persistence timeout
	// (-p 60), so that a template saved shortly before a crash still has
	// most of its time left at the restart.
	DefaultSnapshotInterval = 10 * time.Second
	// saveStep is how many table slots one step of a save copies on a
	// worker's goroutine (AppendInfoFrom): about 0.3 ms for a full table
	// of SIP templates (BenchmarkTemplateAppendInfoFrom, 74 ns a slot).
	saveStep = 4096
	// saveHold bounds how long a save holds a busy worker at a time (its
	// frames wait in the RX ring meanwhile): at a million frames a second
	// on the queue, a thousand frames, half of the 2048-descriptor ring.
	saveHold = time.Millisecond
	// saveHoldIdle is the hold for a worker that kept the save's request
	// waiting idleWait or more: it sat in its receive poll, so no traffic
	// waits for it, and a longer hold lets the save of an idle worker
	// finish in a few polls (DefaultPollTimeout each) instead of hundreds.
	saveHoldIdle = 10 * time.Millisecond
	idleWait     = time.Millisecond
	// saveMaxInfos bounds the templates copied per hold, and so the save's
	// memory for them (about 100 bytes each, 6.5 MB); empty slots cost
	// only time, so an idle worker's sparse table is walked in a few holds.
	saveMaxInfos = 65536
	// saveTimeout bounds one save, so that a wedged worker cannot stall
	// the periodic saves or the shutdown forever.
	saveTimeout = 30 * time.Second
	// snapshotRecordBytes is about the size of one saved IPv4 SIP template
	// (a 40-byte Call-ID), for the free-space warning at start.
	snapshotRecordBytes = 220
	// setAsideTries bounds the names tried for a damaged file kept aside.
	setAsideTries = 100
)

// ErrSnapshotPath reports a --snapshot path that cannot be written: checked
// at start, so that the templates are not lost only at the shutdown.
var ErrSnapshotPath = errors.New("snapshot file cannot be written")

// snapshotFile is the daemon's template snapshot: where it is, the lock
// that makes it this daemon's own, and the counters the metrics show.
type snapshotFile struct {
	path string
	lock *lockFile
	save sync.Mutex // one save at a time

	mu     sync.Mutex
	status control.SnapshotStatus
	failed bool // the last save failed (for the recovery log line)
}

// openSnapshotFile checks that the snapshot can be written where it is
// configured — the directory exists and takes a new file — and locks it
// for this daemon: two daemons sharing one file would overwrite each
// other's templates. The lock is a file beside it (FILE.lock), since the
// snapshot itself is replaced by rename at every save.
func openSnapshotFile(path string) (*snapshotFile, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("snapshot %s: %w: it exists and is not a regular file", path, ErrSnapshotPath)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("snapshot %s: %w: directory %s does not exist", path, ErrSnapshotPath, dir)
	case err != nil:
		return nil, fmt.Errorf("snapshot %s: %w: %w", path, ErrSnapshotPath, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("snapshot %s: %w: %s is not a directory", path, ErrSnapshotPath, dir)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: directory %s is not writable (%w)", path, ErrSnapshotPath, dir, bareErr(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := acquireLock(path+".lock", "snapshot "+path)
	if err != nil {
		return nil, err
	}
	// Temporary files of saves a crash interrupted (each up to a whole
	// snapshot): nobody else writes them while the lock is held.
	stale, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(filepath.Base(path))+".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	return &snapshotFile{path: path, lock: lock, status: control.SnapshotStatus{File: path}}, nil
}

// globEscape quotes the pattern characters of a file name.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bareErr strips an *fs.PathError of the path the message already names.
func bareErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkSpace warns when the snapshot's file system has less room than a
// snapshot of full tables needs (twice: the old file stays until the new
// one is complete). A full disk can only be seen for sure at a save; this
// makes the likely case visible at start.
func (s *snapshotFile) checkSpace(log interface{ Warn(string, ...any) }, templates int) {
	var st syscall.Statfs_t
	dir := filepath.Dir(s.path)
	if syscall.Statfs(dir, &st) != nil {
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	if need := 2 * uint64(templates) * snapshotRecordBytes; free < need {
		log.Warn("the snapshot directory may be too small for a snapshot of full tables; saves that do not fit fail (xvs_snapshot_errors_total)",
			"dir", dir, "free_bytes", free, "full_snapshot_bytes", need)
	}
}

func (s *snapshotFile) recordSave(n int, err error) (recovered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.status.Errors++
		s.failed = true
		return false
	}
	recovered, s.failed = s.failed, false
	s.status.Saves++
	s.status.LastSuccess = time.Now()
	s.status.Saved = n
	return recovered
}

// SnapshotStatus implements control.SnapshotReporter; without --snapshot
// the File is empty.
func (d *Daemon) SnapshotStatus() control.SnapshotStatus {
	s := d.snapshot
	if s == nil {
		return control.SnapshotStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Restored = make(map[string]int, len(s.status.Restored))
	for k, v := range s.status.Restored {
		st.Restored[k] = v
	}
	return st
}

var _ control.SnapshotReporter = (*Daemon)(nil)

// saveTemplates writes every worker's live templates to the snapshot file
// and counts the outcome. The write is atomic: a temporary file in the same
// directory, fsynced, renamed over the old one, and the directory fsynced,
// so that a crash or a full disk at any point leaves the old snapshot or
// the new one, never a mix or nothing.
func (d *Daemon) saveTemplates(ctx context.Context) (int, error) {
	s := d.snapshot
	s.save.Lock()
	defer s.save.Unlock()
	n, err := d.writeSnapshot(ctx, s.path)
	if err != nil {
		err = fmt.Errorf("snapshot %s: %w", s.path, err)
	}
	if s.recordSave(n, err) {
		d.log.Info("template snapshot saved again", "file", s.path, "templates", n)
	}
	return n, err
}

func (d *Daemon) writeSnapshot(ctx context.Context, path string) (n int, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(tmp, 64<<10)
	// Every remaining time is taken at t0, the instant saved_at names,
	// however long the walk takes.
	t0, savedAt := Monotonic(), time.Now()
	buf := appendHeader(nil, savedAt, len(d.runners))
	w.Write(buf)
	var infos []table.TemplateInfo
	var peNames engineNames
	for i, r := range d.runners {
		for from := 0; from < d.templateCap; {
			infos = infos[:0]
			asked := time.Now()
			err := r.Do(ctx, func(wk *pipeline.Worker) {
				start := time.Now()
				hold := saveHold
				if start.Sub(asked) >= idleWait {
					hold = saveHoldIdle
				}
				for from < d.templateCap && len(infos) < saveMaxInfos {
					infos, from = wk.Templates().AppendInfoFrom(infos, from, saveStep, t0)
					if time.Since(start) >= hold {
						break
					}
				}
			})
			if err != nil {
				return 0, fmt.Errorf("reading worker %d: %w", i, err)
			}
			snap := d.snap.Load()
			for j := range infos {
				t := &infos[j]
				dst := snap.Dest(ipvs.DestID(t.Dest))
				if dst == nil {
					continue // its real server was removed: the template is dead
				}
				buf = appendRecord(buf[:0], i, t, dst.Addr, peNames.quoted(t.PE))
				w.Write(buf) // a write error sticks: Flush reports it
				n++
			}
		}
	}
	w.Write(appendEnd(buf[:0], n))
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	return n, syncDir(dir)
}

// engineNames caches the engines' names as JSON strings for a save.
type engineNames map[uint8]string

// quoted returns engine id's name as a JSON string, "" for none.
func (n *engineNames) quoted(id uint8) string {
	if id == 0 {
		return ""
	}
	q, ok := (*n)[id]
	if !ok {
		if e := pe.ByID(pe.ID(id)); e != nil {
			b, _ := json.Marshal(e.Name())
			q = string(b)
		}
		if *n == nil {
			*n = engineNames{}
		}
		(*n)[id] = q
	}
	return q
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// snapshotLoop saves the templates every interval until stopSave closes.
func (d *Daemon) snapshotLoop(interval time.Duration) {
	defer d.saveWG.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.stopSave:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		n, err := d.saveTemplates(ctx)
		cancel()
		if err != nil {
			d.log.Error("template snapshot not saved: if xvs stopped now, calls placed since the last save would lose their real server",
				"err", err, "last_success", d.SnapshotStatus().LastSuccess)
		} else {
			d.log.Debug("templates saved", "file", d.snapshot.path, "templates", n)
		}
	}
}

// restoreCounts tallies a restore by outcome (the keys of
// control.SnapshotStatus.Restored).
type restoreCounts struct {
	inserted, noService, noServer, duplicate, overflow, invalid int
}

// restoreTemplates loads the snapshot into the workers' tables. It runs in
// Start before the workers do, so it may use their tables. A template goes
// back to the worker that held it when the daemon has as many workers as
// the one that saved it (RSS delivers the call's datagrams there again),
// else to a worker chosen by the key's hash; either way it is published to
// the shared index, so whichever worker sees the call next uses its real
// server. A table too small for what it is given makes room by its normal
// policy; what that drops is counted and logged.
//
// A file that cannot be read, is not a snapshot, is newer than this xvs,
// or is cut or garbled is renamed aside (FILE.bad-TIME), never overwritten
// by the next save. A good file with templates for services or real
// servers the configuration lacks (a daemon started without its rules) is
// kept as FILE.unrestored, one generation, for the same reason. Only when
// such a rename fails does restoreTemplates return an error (Start then
// fails rather than lose the file).
func (d *Daemon) restoreTemplates() error {
	s := d.snapshot
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var read snapshotRead
	var c restoreCounts
	if err == nil {
		read, c, err = d.restoreFrom(f, time.Now())
		f.Close()
	}
	restored, evicted := 0, c.overflow
	for _, w := range d.workers {
		restored += int(w.Templates().Stats().Live)
	}
	evicted += c.inserted - restored
	s.mu.Lock()
	s.status.Restored = map[string]int{"restored": restored, "expired": read.Expired, "no_service": c.noService,
		"no_server": c.noServer, "duplicate": c.duplicate, "evicted": evicted, "invalid": read.Invalid + c.invalid}
	s.mu.Unlock()
	if read.Format != "" {
		d.log.Info("templates restored", "file", s.path, "restored", restored, "records", read.Records,
			"saved_at", read.SavedAt.Format(time.RFC3339), "expired", read.Expired, "no_service", c.noService, "no_server", c.noServer,
			"duplicate", c.duplicate, "evicted", evicted, "invalid", read.Invalid+c.invalid)
	}
	if evicted > 0 {
		d.log.Warn("the snapshot holds more templates than the tables: the tables' replacement policy dropped some (raise --templates to keep them)",
			"file", s.path, "evicted", evicted, "restored", restored, "workers", len(d.workers), "templates_per_worker", d.templateCap)
	}
	if read.Truncated {
		d.log.Warn("template snapshot is truncated: only the records before the cut were restored", "file", s.path,
			"records", read.Records, "restored", restored)
	}
	if err == nil && !read.Damaged() {
		if unused := c.noService + c.noServer; unused > 0 {
			// Started with other rules (a missing --rules, a server
			// removed meanwhile): the next save would drop these calls
			// for good. Keep the file as it was; one generation.
			kept := s.path + ".unrestored"
			if rerr := os.Rename(s.path, kept); rerr != nil {
				return fmt.Errorf("snapshot %s: %d templates for services or servers not configured, and the file cannot be kept as %s (%w): not starting, which would drop them at the next save",
					s.path, unused, kept, bareErr(rerr))
			}
			syncDir(filepath.Dir(s.path))
			d.log.Warn("templates for services or real servers that are not configured were not restored; the snapshot is kept as it was",
				"file", s.path, "kept_as", kept, "no_service", c.noService, "no_server", c.noServer)
		}
		return nil
	}
	aside, rerr := setAside(s.path)
	if rerr != nil {
		if err == nil {
			err = fmt.Errorf("%d records garbled, truncated %v", read.Invalid, read.Truncated)
		}
		return fmt.Errorf("snapshot %s: %w; it cannot be moved aside either (%w): not starting, which would overwrite it at the next save", s.path, err, bareErr(rerr))
	}
	reason := "damaged"
	if err != nil {
		reason = err.Error()
	}
	d.log.Warn("template snapshot kept aside: the next save writes a new one", "file", s.path, "moved_to", aside, "reason", reason,
		"invalid", read.Invalid, "truncated", read.Truncated)
	return nil
}

// restoreFrom reads a snapshot from r into the workers (see
// restoreTemplates), taking now as the wall-clock time of the restart.
func (d *Daemon) restoreFrom(r io.Reader, now time.Time) (snapshotRead, restoreCounts, error) {
	var c restoreCounts
	snap := d.snap.Load()
	mono := Monotonic()
	nw := len(d.workers)
	seed := d.workers[0].Templates().Seed()
	read, err := readSnapshot(r, now, func(rec *snapshotRecord) {
		svc := snap.Lookup(ipvs.Protocol(rec.proto), rec.virtual.Addr(), rec.virtual.Port())
		if svc == nil || !svc.Persistent || rec.pe != "" && rec.pe != svc.PE {
			c.noService++ // the service, or its persistence, is gone
			return
		}
		var dest *ipvs.Dest
		for _, dd := range svc.Dests {
			if dd.Addr == rec.server {
				dest = dd
				break
			}
		}
		if dest == nil {
			c.noServer++
			return
		}
		var peID uint8
		if rec.pe != "" {
			_, id, ok := pe.Lookup(rec.pe)
			if !ok {
				c.noService++
				return
			}
			peID = uint8(id)
		}
		// The service's timeout now, not the saved one: the rules may
		// have changed, and no template outlives its service's timeout.
		timeout := time.Duration(svc.Timeout) * time.Second
		info := table.TemplateInfo{Protocol: rec.proto, Client: rec.client, Virtual: rec.virtual, Dest: table.DestID(dest.ID),
			Timeout: timeout, Remaining: min(rec.remaining, timeout), Reused: rec.reused, PE: peID, PEData: rec.peData}
		if rec.assured {
			info.State = table.TemplateAssured
		}
		wi := rec.worker
		if rec.workers != nw || wi < 0 || wi >= nw {
			k := table.TemplateKey{Protocol: info.Protocol, Client: info.Client, Virtual: info.Virtual, PE: info.PE, PEData: info.PEData}
			wi = int(k.Hash(seed) % uint64(nw))
		}
		switch d.workers[wi].RestoreTemplate(&info, mono) {
		case table.Inserted:
			c.inserted++
		case table.InsertExists:
			c.duplicate++
		case table.InsertOverflow:
			c.overflow++
		default:
			c.invalid++
		}
	})
	return read, c, err
}

// setAside renames a snapshot this daemon will not overwrite to
// FILE.bad-TIME (UTC) and returns the new name.
func setAside(path string) (string, error) {
	base := path + ".bad-" + time.Now().UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if i > setAsideTries {
			return "", fmt.Errorf("%s: %w", base, fs.ErrExist)
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, name); err != nil {
		return "", err
	}
	return name, syncDir(filepath.Dir(path))
}
