package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 10 item 3: a second daemon on the same interface was not refused
// (it fell back to the raw socket) and on exit overwrote the first one's
// snapshot. Now it is refused before it opens anything, naming the
// interface and the first daemon's pid, and the first daemon's snapshot is
// its own.
func TestSecondDaemonOnInterfaceRefused(t *testing.T) {
	locks := t.TempDir()
	snap := filepath.Join(t.TempDir(), "templates.json")
	d1, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap, LockDir: locks})
	placeCalls(t, b, 10)
	for _, o := range []Options{
		{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap, LockDir: locks},
		{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: filepath.Join(t.TempDir(), "other.json"), LockDir: locks},
		{Queues: 1, Templates: 1024, Conns: 1024, LockDir: locks},
	} {
		d2, err := tryStart(t, o)
		if err == nil {
			d2.Close()
			t.Fatalf("a second daemon started on lo (snapshot %q)", o.SnapshotFile)
		}
		want := fmt.Sprintf("interface lo is in use by another xvs (pid %d; lock %s)", os.Getpid(), ifaceLockPath(locks, "lo"))
		if !errors.Is(err, ErrLocked) || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("second daemon: %v, want %q…", err, want)
		}
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countSaved(t, snap); n != 10 {
		t.Fatalf("the first daemon's snapshot holds %d templates, want its 10", n)
	}
	if left, _ := filepath.Glob(filepath.Join(locks, "*")); len(left) != 0 {
		t.Fatalf("lock files left after a clean stop: %v", left)
	}
	// Once the first daemon is gone the interface is free again.
	d3, err := tryStart(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap, LockDir: locks})
	if err != nil {
		t.Fatalf("after the first daemon stopped: %v", err)
	}
	d3.Close()
}

// Two daemons on different interfaces configured with one snapshot file
// would overwrite each other's templates: the second is refused.
func TestSnapshotFileLocked(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "templates.json")
	d1, b := startOpts(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap})
	placeCalls(t, b, 5)
	_, err := tryStart(t, Options{Queues: 1, Templates: 1024, Conns: 1024, SnapshotFile: snap}) // its own lock dir: "another interface"
	want := fmt.Sprintf("snapshot %s is in use by another xvs (pid %d; lock %s.lock)", snap, os.Getpid(), snap)
	if !errors.Is(err, ErrLocked) || err.Error() != want {
		t.Fatalf("second daemon on the same snapshot: %v, want %q", err, want)
	}
	d1.Close()
	if n := countSaved(t, snap); n != 5 {
		t.Fatalf("snapshot holds %d templates, want the first daemon's 5", n)
	}
}

func countSaved(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	read, err := readSnapshot(f, time.Now(), func(*snapshotRecord) { n++ })
	if err != nil || read.Damaged() {
		t.Fatalf("%s: %v %+v", path, err, read)
	}
	return n
}

// holdLockEnv makes the test binary a lock holder (TestLockReleasedOnKill).
const holdLockEnv = "XVS_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdLockEnv); path != "" {
		if _, err := acquireLock(path, "test"); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The lock dies with its daemon however it dies — a kill -9 included — so
// a crashed daemon never keeps the next one off its interface (a pid file
// would).
func TestLockReleasedOnKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eth9.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("holder: %q", line)
	}
	_, err = acquireLock(path, "interface eth9")
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("while held by pid %d: %v", cmd.Process.Pid, err)
	}
	cmd.Process.Kill() // SIGKILL: no clean-up runs in the holder
	cmd.Wait()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a killed holder cannot remove its lock file: %v", err)
	}
	l, err := acquireLock(path, "interface eth9")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	// A contender that opened the file before the holder released (and
	// removed) it locks a file nobody else will open: it must not count
	// as holding the lock.
	early, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if !isFileAt(early, path) {
		t.Fatal("isFileAt: the held file is at its path")
	}
	l.release()
	if err := syscall.Flock(int(early.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if isFileAt(early, path) {
		t.Fatal("isFileAt: a removed lock file still counts (acquireLock would hold a lock nobody sees)")
	}
	l2, err := acquireLock(path, "interface eth9") // at path now: a new file
	if err != nil {
		t.Fatalf("lock on a fresh file while an unlinked one is held: %v", err)
	}
	l2.release()
}

// Interface names are per network namespace, /run usually is not: a lock
// outside the initial namespace carries the namespace, so that labs with
// the same interface name in several namespaces do not exclude each other.
func TestIfaceLockPath(t *testing.T) {
	p := ifaceLockPath("/run/xvs", "eth1")
	self, init := netnsID("/proc/self/ns/net"), netnsID("/proc/1/ns/net")
	want := "/run/xvs/eth1.lock"
	if self != "" && self != init {
		want = "/run/xvs/eth1.net-" + self + ".lock"
	}
	if p != want {
		t.Fatalf("lock path %s, want %s (netns %q, init %q)", p, want, self, init)
	}
}
