package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Socket errors.
var (
	// ErrInUse: another process answers on the socket path.
	ErrInUse = errors.New("control socket in use (is another xvs running?)")
	// ErrNotSocket: the path exists and is not a socket; it is left alone.
	ErrNotSocket = errors.New("exists and is not a socket")
	// ErrUnsafeDir: the socket's directory is writable by others or not
	// owned by this user.
	ErrUnsafeDir = errors.New("unsafe directory for the control socket")
)

// socketMode is the control socket's permission: connecting to a unix
// socket needs write permission, so only its owner (root) can.
const socketMode = 0o600

// listen creates the control socket at path: the directory is created 0700
// if missing and must not be writable by group or others nor owned by
// another user; a stale socket (nothing listening) is replaced, anything
// else at the path makes it fail. The socket is bound under a temporary
// name, given mode 0600 and renamed into place, so it is never reachable
// with wider permissions.
func listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid())+".tmp")
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, socketMode); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	return l, nil
}

// checkDir refuses a directory others could plant a socket in.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w: not a directory", dir, ErrUnsafeDir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: %w: mode %04o is writable by group or others", dir, ErrUnsafeDir, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("%s: %w: owned by uid %d", dir, ErrUnsafeDir, st.Uid)
	}
	return nil
}

// removeStale removes a socket nobody listens on; it fails when the path
// is something else or a live socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s: %w", path, ErrNotSocket)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: checking for a stale socket: %w", path, err)
	}
	return os.Remove(path)
}
