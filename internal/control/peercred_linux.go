package control

import (
	"net"
	"os"
	"syscall"
)

// peer is a client's credentials (SO_PEERCRED); -1 when unknown.
type peer struct{ Pid, Uid, Gid int }

// peerAllowed reports whether the client is root or the daemon's own user
// (SO_PEERCRED), and who it is. The socket's mode already keeps others out;
// this is a second check for a socket whose permissions were widened by
// hand.
func peerAllowed(c *net.UnixConn) (peer, bool) {
	p := peer{-1, -1, -1}
	rc, err := c.SyscallConn()
	if err != nil {
		return p, false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return p, false
	}
	p = peer{int(cred.Pid), int(cred.Uid), int(cred.Gid)}
	return p, cred.Uid == 0 || int(cred.Uid) == os.Geteuid()
}
