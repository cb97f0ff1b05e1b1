package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/testenv"
)

// Issue 10 item 4: a snapshot path that cannot be written (missing
// directory, read-only) surfaced only at the shutdown, when the templates
// were lost. Now the daemon refuses to start, naming the problem.
func TestSnapshotPathCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	readOnly := filepath.Join(dir, "ro")
	os.Mkdir(readOnly, 0o700)
	makeReadOnly(t, readOnly)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing", "t.json"), "directory " + filepath.Join(dir, "missing") + " does not exist"},
		{filepath.Join(readOnly, "t.json"), "directory " + readOnly + " is not writable ("},
		{filepath.Join(file, "t.json"), file + " is not a directory"},
		{dir, "it exists and is not a regular file"},
	} {
		d, err := tryStart(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: c.path})
		if err == nil {
			d.Close()
			t.Fatalf("started with --snapshot %s", c.path)
		}
		if !errors.Is(err, ErrSnapshotPath) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "snapshot "+c.path+": ") {
			t.Errorf("--snapshot %s: %v, want …%s…", c.path, err, c.want)
		}
	}
}

// makeReadOnly makes dir refuse new files: a read-only tmpfs mounted on it
// as root (root ignores permission bits), mode 0500 otherwise.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o500)
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=64k"); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// Issue 10 item 4: templates were saved only at the shutdown, so a kill -9
// lost them all. Now they are saved every --snapshot-interval; the file on
// disk is complete at any moment (it is replaced by rename).
func TestSnapshotSavedPeriodically(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	// A save that a crash interrupted left its temporary file: the next
	// start removes it.
	crashed := filepath.Join(filepath.Dir(snap), ".templates.json.tmp-123456")
	os.WriteFile(crashed, []byte("half a snapshot"), 0o600)
	d, b := startOpts(t, Options{Queues: 2, Templates: 1024, Conns: 1024, SnapshotFile: snap, SnapshotInterval: 20 * time.Millisecond})
	defer d.Close()
	if _, err := os.Stat(crashed); err == nil {
		t.Fatal("the temporary file of an interrupted save survived the start")
	}
	placeCalls(t, b, 20)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The saver renames the file into place and then counts the
		// save: wait for both.
		if _, err := os.Stat(snap); err == nil && countSaved(t, snap) == 40 && d.SnapshotStatus().Saved == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic save of the 40 templates within 5 s (status %+v)", d.SnapshotStatus())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := d.SnapshotStatus(); st.Saves == 0 || st.Errors != 0 || time.Since(st.LastSuccess) > 5*time.Second || st.Saved != 40 {
		t.Fatalf("status %+v", st)
	}
	d.Close()
	noLeftovers(t, snap)
}

// noLeftovers checks that no temporary file of the snapshot's saves
// remains.
func noLeftovers(t *testing.T, snap string) {
	t.Helper()
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(snap), "."+filepath.Base(snap)+".*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

// A save that fails later — the disk filled up, the directory became
// read-only — is logged as an error and counted (xvs_snapshot_errors_total),
// keeps the previous snapshot intact, and the next save after the problem
// is gone succeeds again.
func TestSnapshotSaveFailureCounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snap")
	os.Mkdir(dir, 0o700)
	var fill, unfill func()
	if os.Geteuid() == 0 {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
			t.Fatalf("mount a small tmpfs: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		filler := filepath.Join(dir, "filler")
		fill = func() { // a full disk
			f, _ := os.Create(filler)
			for _, err := f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
			}
			f.Close()
		}
		unfill = func() { os.Remove(filler) }
	} else {
		fill = func() { os.Chmod(dir, 0o500) }
		unfill = func() { os.Chmod(dir, 0o700) }
		t.Cleanup(unfill)
	}
	snap := filepath.Join(dir, "templates.json")
	var log testenv.Buffer
	d, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap, SnapshotInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	defer d.Close()
	placeCalls(t, b, 100)
	waitFor(t, func() bool { return d.SnapshotStatus().Saved == 100 })
	good, _ := os.ReadFile(snap)
	fill()
	waitFor(t, func() bool { return d.SnapshotStatus().Errors >= 2 })
	if got, _ := os.ReadFile(snap); string(got) != string(good) {
		t.Fatal("a failed save damaged the previous snapshot")
	}
	if !strings.Contains(log.String(), `level=ERROR msg="template snapshot not saved`) {
		t.Fatalf("no error logged:\n%s", log.String())
	}
	unfill()
	saves := d.SnapshotStatus().Saves
	waitFor(t, func() bool { return d.SnapshotStatus().Saves > saves })
	if !strings.Contains(log.String(), `msg="template snapshot saved again"`) {
		t.Fatalf("recovery not logged:\n%s", log.String())
	}
	if n := countSaved(t, snap); n != 100 {
		t.Fatalf("snapshot after recovery holds %d templates", n)
	}
	d.Close()
	noLeftovers(t, snap)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
