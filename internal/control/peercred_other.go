//go:build !linux

package control

import "net"

// peer is a client's credentials; unknown (-1) without SO_PEERCRED.
type peer struct{ Pid, Uid, Gid int }

// peerAllowed relies on the socket's mode where SO_PEERCRED is missing.
func peerAllowed(*net.UnixConn) (peer, bool) { return peer{-1, -1, -1}, true }
