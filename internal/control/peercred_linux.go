package control

import (
	"net"
	"os"
	"syscall"
)

// peerAllowed reports whether the client is root or the daemon's own user
// (SO_PEERCRED). The socket's mode already keeps others out; this is a
// second check for a socket whose permissions were widened by hand.
func peerAllowed(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return cred.Uid == 0 || int(cred.Uid) == os.Geteuid()
}
