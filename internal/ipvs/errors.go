// The capitalised messages are ipvsadm's, byte for byte: scripts and
// operators match them, so staticcheck's ST1005 (error strings start in
// lower case) does not apply to this file.
//
//lint:file-ignore ST1005 ipvsadm's messages (ipvs_strerror), byte for byte

package ipvs

import "errors"

// Errors. The messages are ipvsadm's (ipvs_strerror) where ipvsadm has one.
var (
	ErrServiceExists = errors.New("Service already exists")
	ErrNoService     = errors.New("No such service")
	ErrDestExists    = errors.New("Destination already exists")
	ErrNoDest        = errors.New("No such destination")
	ErrNotFound      = errors.New("Scheduler or persistence engine not found")
	ErrInvalid       = errors.New("Invalid argument")
	ErrRange         = errors.New("Numerical result out of range")
	ErrZeroPort      = errors.New("Zero port specified for non-persistent service")
	ErrOnePacketUDP  = errors.New("One-Packet Scheduling is only for UDP virtual services")
	// ErrTooManyDests reports that all MaxDests destination slots are in use
	// (trash included).
	ErrTooManyDests = errors.New("too many destinations")
)
