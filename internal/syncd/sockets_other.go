//go:build !linux

package syncd

import (
	"errors"
	"net"
)

// errUnsupported reports a platform without the socket options the sync
// daemons need (SO_BINDTODEVICE, ip_mreqn).
var errUnsupported = errors.New("sync daemons need Linux")

func sendSocket(Config, *net.Interface, uint16, int) (*net.UDPConn, error) {
	return nil, errUnsupported
}

func recvSocket(Config, *net.Interface, uint16, int) (*net.UDPConn, error) {
	return nil, errUnsupported
}
