package ipvsadm

import (
	"math"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

// Limits and defaults, each from the ipvsadm 1.31 or IPVS source that
// fixes it.
const (
	// DefaultScheduler is used when -A/-E has no -s (ipvsadm DEF_SCHED).
	DefaultScheduler = sched.Default

	// DefaultPersistentTimeout is the timeout of a bare -p, in seconds
	// (libipvs IPVS_SVC_PERSISTENT_TIMEOUT = 6*60; the man page's "300" is
	// wrong).
	DefaultPersistentTimeout = ipvs.DefaultPersistentTimeout

	// MaxTimeout bounds -p and the --set values: 31 days (ipvsadm
	// MAX_TIMEOUT), so that timeout*HZ fits the kernel's 32-bit jiffies.
	MaxTimeout = ipvs.MaxTimeout

	// MaxWeight bounds -w (ipvsadm checks 0..65535).
	MaxWeight = sched.MaxWeight

	// MaxThreshold bounds -x and -y (ipvsadm checks 0..INT_MAX).
	MaxThreshold = math.MaxInt32

	// MaxSchedNameLen is the longest scheduler name kept: the kernel field
	// is IP_VS_SCHEDNAME_MAXLEN = 16 bytes with its NUL; longer names are
	// truncated, as ipvsadm's strncpy does.
	MaxSchedNameLen = 15

	// MaxPENameLen is the longest persistence-engine name kept
	// (IP_VS_PENAME_MAXLEN = 16 with its NUL). ipvsadm copies 16 bytes and
	// may leave the name unterminated; xvs truncates to 15.
	MaxPENameLen = ipvs.MaxPENameLen

	// MaxIfaceNameLen is the longest --mcast-interface kept
	// (IP_VS_IFNAME_MAXLEN - 1).
	MaxIfaceNameLen = 15

	// maxSchedFlagsArg is the size of ipvsadm's sched_flags_arg buffer less
	// its NUL; longer -b arguments are truncated before parsing.
	maxSchedFlagsArg = 127

	// MaxSyncMaxLen bounds --sync-maxlen: a UDP payload in a 64 KiB IPv4
	// datagram (65535 - 20 - 8).
	MaxSyncMaxLen = 65535 - 20 - 8

	// DefaultMcastIface is the --mcast-interface of --start-daemon when
	// none is given (ipvsadm DEF_MCAST_IFN).
	DefaultMcastIface = "eth0"

	// DefaultConnTableSize is the IPVS connection hash size shown in the
	// list banner by default (CONFIG_IP_VS_TAB_BITS = 12).
	DefaultConnTableSize = 4096

	// maxAddrPortName is ipvsadm's addrport_to_anyname buffer (60 bytes
	// with the NUL): longer host:port names are cut at 59 bytes.
	maxAddrPortName = 59

	// listServiceNameWidth and listDestNameWidth are where ipvsadm cuts an
	// IPv4 service ("TCP  host:port") and destination name in listings.
	listServiceNameWidth = 33
	listDestNameWidth    = 28
)
