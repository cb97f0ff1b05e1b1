//go:build !linux

package control

import "net"

// peerAllowed relies on the socket's mode where SO_PEERCRED is missing.
func peerAllowed(*net.UnixConn) bool { return true }
