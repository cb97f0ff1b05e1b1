package ipvsadm

import (
	"fmt"
	"strings"
)

// CompatVersion is the ipvsadm release whose command line and output xvs
// reproduces.
const CompatVersion = "v1.31 2019/12/24"

// VersionText is the -v output: ipvsadm prints "ipvsadm v1.31 2019/12/24
// (compiled with popt and IPVS v1.2.1)"; xvsadm names itself and the ipvsadm
// release it follows.
func VersionText(program, version string) string {
	return fmt.Sprintf("%s %s (ipvsadm %s compatible, IPVS v%s)\n", program, version, CompatVersion, IPVSVersion)
}

// Usage is the -h text: ipvsadm's, with the program name, the version line,
// the given schedulers and persistence engines, and only the options xvs
// accepts (no --sctp-service, -f or -6), plus --pe-strict.
func Usage(program, version string, schedulers, engines []string) string {
	var b strings.Builder
	b.WriteString(VersionText(program, version))
	b.WriteString("Usage:\n")
	for _, l := range []string{
		"-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine [--pe-strict]] [-b sched-flags]",
		"-D virtual-service",
		"-C",
		"-R",
		"-S [-n]",
		"-a|e virtual-service -r server-address [options]",
		"-d virtual-service -r server-address",
		"-L|l [virtual-service] [options]",
		"-Z [virtual-service]",
		"--set tcp tcpfin udp",
		"--start-daemon {master|backup} [daemon-options]",
		"--stop-daemon {master|backup}",
		"--health-check virtual-service [-r server-address] --check sip-options|udp|tcp|script|http|https|none [check-options]",
		"--drain|--undrain virtual-service -r server-address",
		"--reload",
		"--sysctl [name[=value]]",
		"--drain-director|--undrain-director",
		"-h",
	} {
		fmt.Fprintf(&b, "  %s %s\n", program, l)
	}
	b.WriteString("\n")
	b.WriteString("Commands:\n" +
		"Either long or short options are allowed.\n" +
		"  --add-service     -A        add virtual service with options\n" +
		"  --edit-service    -E        edit virtual service with options\n" +
		"  --delete-service  -D        delete virtual service\n" +
		"  --clear           -C        clear the whole table\n" +
		"  --restore         -R        restore rules from stdin\n" +
		"  --save            -S        save rules to stdout\n" +
		"  --add-server      -a        add real server with options\n" +
		"  --edit-server     -e        edit real server with options\n" +
		"  --delete-server   -d        delete real server\n" +
		"  --list            -L|-l     list the table\n" +
		"  --zero            -Z        zero counters in a service or all services\n" +
		"  --set tcp tcpfin udp        set connection timeout values\n" +
		"  --start-daemon              start connection sync daemon\n" +
		"  --stop-daemon               stop connection sync daemon\n" +
		"  --health-check              set the health check of a service's real servers (xvs)\n" +
		"  --drain                     drain a real server: no new calls, live ones stay (xvs)\n" +
		"  --undrain                   end a drain, restoring the weight (xvs)\n" +
		"  --reload                    re-read the keepalived.conf xvs runs (xvs)\n" +
		"  --sysctl                    list, show or set the IPVS sysctls xvs honours (xvs)\n" +
		"  --drain-director            withdraw this director's BGP routes, keep forwarding (xvs)\n" +
		"  --undrain-director          announce this director's BGP routes again (xvs)\n" +
		"  --help            -h        display this help message\n\n")
	b.WriteString("virtual-service:\n" +
		"  --tcp-service|-t  service-address   service-address is host[:port]\n" +
		"  --udp-service|-u  service-address   service-address is host[:port]\n" +
		"\n")
	fmt.Fprintf(&b, "Options:\n"+
		"  --scheduler    -s scheduler         one of %s,\n"+
		"                                      the default scheduler is %s.\n"+
		"  --pe            engine              alternate persistence engine may be %s,\n"+
		"                                      not set by default.\n"+
		"  --pe-strict                         drop packets the persistence engine cannot key\n"+
		"                                      (default: fall back to client-address persistence)\n"+
		"  --persistent   -p [timeout]         persistent service\n"+
		"  --netmask      -M netmask           persistent granularity mask\n"+
		"  --real-server  -r server-address    server-address is host (and port)\n"+
		"  --gatewaying   -g                   gatewaying (direct routing) (default)\n"+
		"  --ipip         -i                   ipip encapsulation (tunneling)\n"+
		"  --masquerading -m                   masquerading (NAT)\n"+
		"  --tun-type      type                one of ipip|gue|gre,\n"+
		"                                      the default tunnel type is ipip.\n"+
		"  --tun-port      port                tunnel destination port\n"+
		"  --tun-nocsum                        tunnel encapsulation without checksum\n"+
		"  --tun-csum                          tunnel encapsulation with checksum\n"+
		"  --tun-remcsum                       tunnel encapsulation with remote checksum\n"+
		"  --weight       -w weight            capacity of real server\n"+
		"  --u-threshold  -x uthreshold        upper threshold of connections\n"+
		"  --l-threshold  -y lthreshold        lower threshold of connections\n"+
		"  --connection   -c                   output of current IPVS connections\n"+
		"  --timeout                           output of timeout (tcp tcpfin udp)\n"+
		"  --daemon                            output of daemon information\n"+
		"  --stats                             output of statistics information\n"+
		"  --rate                              output of rate information\n"+
		"  --exact                             expand numbers (display exact values)\n"+
		"  --thresholds                        output of thresholds information\n"+
		"  --persistent-conn                   output of persistent connection info\n"+
		"  --tun-info                          output of tunnel information\n"+
		"  --nosort                            disable sorting output of service/server entries\n"+
		"  --sort                              does nothing, for backwards compatibility\n"+
		"  --ops          -o                   one-packet scheduling\n"+
		"  --numeric      -n                   numeric output of addresses and ports\n"+
		"  --sched-flags  -b flags             scheduler flags (comma-separated)\n"+
		"  --health                            output of health-check and drain state (xvs)\n"+
		"  --bgp                               output of BGP peers and announced routes (xvs)\n",
		strings.Join(schedulers, "|"), DefaultScheduler, strings.Join(engines, "|"))
	b.WriteString("Daemon Options:\n" +
		"  --syncid sid                        syncid for connection sync (default=0)\n" +
		"  --sync-maxlen length                Max sync message length (default=1472)\n" +
		"  --mcast-interface interface         multicast interface for connection sync\n" +
		"  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n" +
		"  --mcast-port port                   UDP port (default=8848)\n" +
		"  --mcast-ttl ttl                     Multicast TTL (default=1)\n")
	b.WriteString("Health-check Options (xvs):\n" +
		"  --check type                        sip-options, udp, tcp, script, http, https,\n" +
		"                                      or none (remove the check); with -r: one server's\n" +
		"  --interval secs                     between probes of a real server (default 5)\n" +
		"  --check-timeout secs                for one probe's answer (default 2)\n" +
		"  --fail n                            failures in a row that take a server down (default 3)\n" +
		"  --rise n                            successes in a row that bring it back (default 2)\n" +
		"  --check-port port                   port to probe (default: the real server's)\n" +
		"  --retry-interval secs               after a failure, probe again this soon (default: --interval)\n" +
		"  --start-down                        servers start down until they pass\n" +
		"  --codes list                        status codes that count as alive, e.g. 200-299,404\n" +
		"                                      (default: SIP any final response but 408; HTTP 200-299)\n" +
		"  --on-fail expire|keep               a down server's calls: rescheduled (default) or kept\n" +
		"  --script command-line               script check: exit 0 alive (keepalived's MISC_CHECK)\n" +
		"  --script-user user[:group]          run the script as this user (default: xvs's)\n" +
		"  --dynamic                           exit status 2..255 sets the weight to status-2\n" +
		"  --url path                          http/https check: path to GET (default /)\n" +
		"  --digest md5                        http/https check: MD5 of the body, in hex\n" +
		"  --virtualhost name                  http/https check: Host header and TLS server name\n")
	return b.String()
}
