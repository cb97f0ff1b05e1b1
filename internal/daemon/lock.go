package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultLockDir holds the per-interface locks (and is where the default
// control socket lives).
const DefaultLockDir = "/run/xvs"

// ErrLocked reports an interface or snapshot file another xvs is using.
var ErrLocked = errors.New("in use by another xvs")

// LockedError says which lock another process holds, and its pid.
type LockedError struct {
	What string // "interface eth1", "snapshot /var/lib/xvs/templates.json"
	Path string // the lock file
	PID  int    // the holder's pid as it wrote it; 0 if unknown
}

func (e *LockedError) Error() string {
	holder := "pid unknown"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("%s is %v (%s; lock %s)", e.What, ErrLocked, holder, e.Path)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// lockFile is an exclusive flock(2) on a file, held until release. The
// kernel drops it when the process exits however it exits (kill -9
// included), so a stale lock cannot outlive its daemon, which a pid file
// could. A clean release removes the file; one left by a killed daemon is
// simply locked again by the next.
type lockFile struct {
	f    *os.File
	path string
}

// lockTries bounds acquireLock's retries when the file it locked was
// removed or replaced meanwhile (its holder released it between our open
// and our flock).
const lockTries = 10

// acquireLock takes the lock at path (created 0644 if missing; a symbolic
// link is refused) without waiting, and writes this process's pid into it
// for the next contender's message. what names the locked thing in errors.
func acquireLock(path, what string) (*lockFile, error) {
	for range lockTries {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: lock: %w", what, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &LockedError{What: what, Path: path, PID: readPID(f)}
			}
			return nil, fmt.Errorf("%s: lock %s: %w", what, path, err)
		}
		// The holder we waited out may have removed the file between our
		// open and our flock: then we hold a lock on a file nobody else
		// will open, and must start over with the one now at path.
		if !isFileAt(f, path) {
			f.Close()
			continue
		}
		pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
		if err := f.Truncate(0); err == nil {
			f.WriteAt(pid, 0) // only for the message of a contender
		}
		return &lockFile{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("%s: lock %s: replaced %d times while locking", what, path, lockTries)
}

// isFileAt reports whether path still names the open file f.
func isFileAt(f *os.File, path string) bool {
	var held, named syscall.Stat_t
	return syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &named) == nil &&
		held.Ino == named.Ino && held.Dev == named.Dev
}

func readPID(f *os.File) int {
	var b [32]byte
	n, _ := f.ReadAt(b[:], 0)
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// release removes the lock file and drops the lock (nil-safe). Removing it
// first, while still locked, is what makes acquireLock's check sufficient.
func (l *lockFile) release() {
	if l != nil && l.f != nil {
		os.Remove(l.path)
		l.f.Close()
		l.f = nil
	}
}

// ifaceLockPath names the lock of interface iface in dir. Interface names
// are per network namespace while /run is usually shared by all of them
// (ip netns exec), so outside the initial namespace the name carries the
// namespace's inode: eth1.lock, or eth1.net-4026532781.lock.
func ifaceLockPath(dir, iface string) string {
	name := iface
	if ns := netnsID("/proc/self/ns/net"); ns != "" && ns != netnsID("/proc/1/ns/net") {
		name += ".net-" + ns
	}
	return filepath.Join(dir, name+".lock")
}

// netnsID returns the inode of a namespace link ("net:[4026531840]" →
// "4026531840"), or "" when it cannot be read.
func netnsID(link string) string {
	s, err := os.Readlink(link)
	if err != nil {
		return ""
	}
	s = strings.TrimPrefix(s, "net:[")
	return strings.TrimSuffix(s, "]")
}
