// Package perf is the whole-system benchmark harness: it builds the
// network-namespace lab (internal/lab), and measures in one run, in
// alternating rounds so that machine noise hits every candidate alike, the
// packets/s, loss, CPU time, packets per CPU second, latency and
// affinity of:
//
//   - xvs on AF_XDP (native and generic XDP), the SIP persistence engine
//     with one-packet scheduling, direct routing and NAT; with two RX
//     queues in full mode (veth channels, one worker each);
//   - xvs on the raw-socket backend;
//   - a naive Go UDP proxy doing the same Call-ID hashing (NaiveProxy),
//     the baseline a user would write, run as its own process;
//   - two floors of user-space AF_XDP forwarding, which set each frame's
//     destination MAC to a real server's by its UDP source port and do
//     nothing else: GoFloor on xvs's own I/O layer (package afxdp, the
//     same filter, rings, batches and waits), and an independent C
//     forwarder on libxdp's xsk API (cfloor/xskfloor.c, built with gcc
//     when the harness starts; NOT TESTED without gcc, libxdp-dev and
//     libbpf-dev). What xvs costs above them is its pipeline;
//   - the ceiling of the lab: the balancer namespace as a plain kernel IP
//     router (ECMP over the real servers), no user space;
//   - Kamailio's dispatcher module hashing over the Call-ID, when kamailio
//     is installed.
//
// The traffic generator runs in the client namespace: ~850-byte INVITEs
// built by internal/craft, one per call of a set of DefaultCalls Call-IDs,
// sent with sendmmsg from SourcePorts sockets (a call always from the same
// one), as fast as it can or paced to a rate, each stamped with its send
// time in an X-Send-Time header at a fixed offset.
//
// Each round measures every candidate twice. The drop-point run, with the
// generator unthrottled, ends the balancer's output at a lab.DropPoint on
// the switch port facing it — a BPF program counting the datagrams per real
// server (by destination MAC) and dropping them, the same small cost for
// every candidate — and gives the rate, the loss and the CPU figures: the
// balancer's own CPU time (a cgroup v2 holding its processes, else their
// /proc times) per datagram, the context switches of its threads per
// datagram, and the machine's (/proc/stat) and the lab's
// (balancer, harness, kernel softirq threads) beyond a no-balancer baseline
// run, whose datagrams are dropped where they reach the balancer. The sink
// run, at a fraction of that rate, lets the real servers' sinks receive:
// each finds the Call-ID with sipparse and counts datagrams per call and
// their one-way latency; a Call-ID seen by more than one sink in a run is
// an affinity violation. Every sink run also accounts for its datagrams
// (Accounting): what the generator sent, what each hop of the path counted
// (the lab's interfaces in every namespace, the router's IP forwarding, xvs's
// own counters read from its metrics, the real servers' UDP MIB), every drop
// counter that moved (veth and bridge drops, the CPUs' backlog drops, the UDP
// MIB's buffer errors, xvs's AF_XDP ring statistics and verdicts) and how
// long the balancer's threads waited for a CPU, so that a lossy run says
// where it lost. Options.DropRate paces the drop-point runs, so that
// candidates are compared at the same arrivals. Options.PerfSplit adds a
// perf(1) recording of each candidate (Split), Options.Variants compare xvs
// builds or flags.
//
// Run returns a Report, which writes itself as JSON, a markdown table and
// an SVG plot (throughput vs offered load, latency CDF). `xvslab bench`
// and `make bench-e2e` run it; `go test ./perf` runs the quick mode as
// root. See docs/performance.md for the method and the figures.
package perf
