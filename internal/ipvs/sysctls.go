package ipvs

import "github.com/xvs-lb/xvs/internal/sysctl"

// The IPVS sysctls (net.ipv4.vs.*) xvs honours. Each is set with xvs run
// --sysctl, xvsadm --sysctl or a --sysctl line of a rules file, through
// Config.SetSysctl, and read by the data plane from Snapshot.Sysctls.
var (
	// ExpireNodestConn is expire_nodest_conn (internal/pipeline).
	ExpireNodestConn = sysctl.Register(sysctl.Switch{
		Name: "expire_nodest_conn", Default: []int64{0}, Min: 0, Max: 1,
		Meaning: "0: a packet of a connection whose real server was deleted is dropped, so the connection " +
			"continues if the server is added back (within the 120 s trash period). 1: the connection is " +
			"expired at its next packet and the packet is scheduled afresh, as current kernels do; with " +
			"conn_reuse_mode set, a TCP SYN to a server of weight 0 is rescheduled too.",
	})
	// ExpireQuiescentTemplate is expire_quiescent_template (Snapshot.TemplateDest).
	ExpireQuiescentTemplate = sysctl.Register(sysctl.Switch{
		Name: "expire_quiescent_template", Default: []int64{0}, Min: 0, Max: 1,
		Meaning: "0: persistence templates of a real server quiesced with weight 0 keep sending their clients " +
			"(their calls) to it. 1: such a template is expired when it is next used, and the packet is " +
			"scheduled afresh. A server drained with xvsadm --drain keeps its templates either way.",
	})
	// SloppyTCP is sloppy_tcp (internal/pipeline).
	SloppyTCP = sysctl.Register(sysctl.Switch{
		Name: "sloppy_tcp", Default: []int64{0}, Min: 0, Max: 1,
		Meaning: "0: a TCP segment with no connection entry is scheduled only when it is a SYN; any other " +
			"(and an RST) is not the balancer's and is handed back (reason tcp_no_syn). 1: any TCP segment " +
			"but an RST creates a connection, as after a failover to a director without the connections.",
	})
	// ConnReuseMode is conn_reuse_mode (internal/pipeline).
	ConnReuseMode = sysctl.Register(sysctl.Switch{
		Name: "conn_reuse_mode", Default: []int64{1}, Min: 0, Max: 3,
		Meaning: "How a TCP SYN that matches an existing connection (a reused client port) is handled. 0: it " +
			"goes to the connection's real server. Bit 1: it is scheduled afresh when that is safe: the " +
			"connection is in TIME_WAIT or CLOSE and no persistence template controls it, or (with " +
			"expire_nodest_conn) its server has weight 0. Bit 2: also in FIN_WAIT for direct-routed and " +
			"tunnelled servers, whose replies the balancer does not see.",
	})
	// PMTUDisc is pmtu_disc (internal/pipeline, tunnels).
	PMTUDisc = sysctl.Register(sysctl.Switch{
		Name: "pmtu_disc", Default: []int64{1}, Min: 0, Max: 1,
		Meaning: "1: a tunnelled IPv4 packet with DF set that does not fit the tunnel's MTU is answered " +
			"with ICMP fragmentation needed (the reduced MTU) and dropped, and the outer header copies the " +
			"inner DF. 0: the outer IPv4 header never has DF and an IPv4 packet too large for the tunnel is " +
			"fragmented after encapsulation, DF or not. IPv6 packets too large for a tunnel are always " +
			"answered with ICMPv6 packet too big.",
	})
	// RunEstimation is run_estimation (the control plane's rate estimator).
	RunEstimation = sysctl.Register(sysctl.Switch{
		Name: "run_estimation", Default: []int64{1}, Min: 0, Max: 1,
		Meaning: "1: the rate estimator (xvsadm -L --rate) runs every 2 s. 0: it is suspended; the rates keep " +
			"their last values and the estimation continues from the current counters when switched back on.",
	})
)
