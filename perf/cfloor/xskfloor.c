// SPDX-License-Identifier: MIT
//
// xskfloor: the C floor of user-space AF_XDP forwarding, an independent
// reference for perf's Go floor (perf.GoFloor) and for xvs. It receives
// every IPv4 UDP datagram to VIP:PORT on IFACE's RX queue 0 through an
// AF_XDP socket made with libxdp's xsk API, sets the frame's destination MAC
// to a real server's (picked by the UDP source port modulo their number; no
// SIP parsing, no tables) and its source MAC to the receiving interface's,
// and transmits it unchanged otherwise. The settings are xvs's: native XDP,
// copy mode, XDP_USE_NEED_WAKEUP, rings of 4096 descriptors, a UMEM of 8192
// frames of 2048 bytes, batches of up to 64, sendto only when the TX ring
// asks for a wake-up, poll() with a 50 ms timeout only when the RX ring is
// empty.
//
// The XDP program is a few instructions built here (no clang): IPv4 without
// options, UDP, VIP:PORT -> bpf_redirect_map(xsks, rx_queue_index,
// XDP_PASS); everything else passes. libxdp's default program redirects
// every frame of the queue, ARP too, and the lab's router must keep
// resolving the balancer's address. It is attached through a BPF link (the
// kernel removes it when the process dies).
//
// Build: gcc -O2 -o xskfloor xskfloor.c -lxdp -lbpf (Debian: libxdp-dev,
// libbpf-dev). Run: xskfloor IFACE VIP PORT MAC1,MAC2,... (as root). It
// prints "ready" on stderr, and its counters when SIGTERM or SIGINT stops it.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

enum {
	RING = 4096,		// descriptors per ring (afxdp.DefaultRingSize)
	FRAME = 2048,		// UMEM frame size (afxdp.DefaultFrameSize)
	FRAMES = 2 * RING,	// UMEM frames (afxdp: two rings' worth)
	BATCH = 64,		// dataplane.MaxBatch
	POLL_MS = 50,		// daemon.DefaultPollTimeout
	MAX_MACS = 16,
};

#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9 // linux/if_xdp.h, Linux 6.17
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LDX(sz, d, s, o) INSN(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define MOV_R(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_K(d, k) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, k)
#define ADD_K(d, k) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, k)
#define JGT_R(d, s, o) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, o, 0)
#define JNE_K(d, k, o) INSN(BPF_JMP32 | BPF_JNE | BPF_K, d, 0, o, k) // 32-bit: no sign extension of k
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)

// load_prog builds and loads the XDP program for vip and port (network
// order) redirecting to xsks.
static int load_prog(int xsks, __u32 vip, __u16 port)
{
	// Loads are little-endian: compare with the network-order bytes as
	// the CPU reads them.
	struct bpf_insn p[] = {
		MOV_R(6, 1),
		LDX(BPF_W, 2, 1, 0),		// r2 = data
		LDX(BPF_W, 3, 1, 4),		// r3 = data_end
		MOV_R(4, 2),
		ADD_K(4, 14 + 20 + 8),
		JGT_R(4, 3, 16),		// too short: pass
		LDX(BPF_H, 5, 2, 12),
		JNE_K(5, htons(0x0800), 14),	// not IPv4
		LDX(BPF_B, 5, 2, 14),
		JNE_K(5, 0x45, 12),		// IP options
		LDX(BPF_B, 5, 2, 23),
		JNE_K(5, IPPROTO_UDP, 10),
		LDX(BPF_W, 5, 2, 30),
		JNE_K(5, (__s32)vip, 8),
		LDX(BPF_H, 5, 2, 36),
		JNE_K(5, port, 6),
		LDX(BPF_W, 2, 6, 16),		// rx_queue_index
		INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, xsks), INSN(0, 0, 0, 0, 0),
		MOV_K(3, XDP_PASS),
		CALL(BPF_FUNC_redirect_map),
		EXIT(),
		MOV_K(0, XDP_PASS),		// pass:
		EXIT(),
	};
	// The jumps above land on "pass" from each test: check the layout.
	_Static_assert(sizeof(p) / sizeof(p[0]) == 24, "jump offsets assume 24 instructions");
	static char log[65536];
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log), .log_level = 0);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xskfloor", "Dual MIT/GPL", p, sizeof(p) / sizeof(p[0]), &o);
	if (fd < 0) {
		o.log_level = 1;
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xskfloor", "Dual MIT/GPL", p, sizeof(p) / sizeof(p[0]), &o);
		fprintf(stderr, "loading the XDP program: %s\n%s\n", strerror(errno), log);
	}
	return fd;
}

struct floor {
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_socket *xsk;
	struct xsk_umem *umem;
	unsigned char *mem;
	__u64 free[FRAMES];
	unsigned nfree;
	unsigned char macs[MAX_MACS][6], own[6];
	unsigned nmacs;
	unsigned long long rx_frames, tx_frames, dropped, syscalls;
};

// refill puts free frames on the fill ring.
static void refill(struct floor *f)
{
	__u32 idx = 0;
	unsigned n = xsk_prod_nb_free(&f->fill, f->nfree);
	if (n > f->nfree)
		n = f->nfree;
	if (n == 0 || xsk_ring_prod__reserve(&f->fill, n, &idx) != n)
		return;
	for (unsigned i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&f->fill, idx++) = f->free[--f->nfree];
	xsk_ring_prod__submit(&f->fill, n);
}

// reap takes transmitted frames off the completion ring onto the free
// stack; refill hands them to the kernel again.
static void reap(struct floor *f)
{
	__u32 idx = 0;
	unsigned n = xsk_ring_cons__peek(&f->comp, RING, &idx);
	for (unsigned i = 0; i < n; i++)
		f->free[f->nfree++] = *xsk_ring_cons__comp_addr(&f->comp, idx++);
	if (n)
		xsk_ring_cons__release(&f->comp, n);
}

// kick asks the kernel to transmit what is on the TX ring, if it wants to
// be asked. Copy mode transmits in the call, up to a budget of frames, so it
// asks again while the kernel reports EAGAIN and frames are left, at most
// four times: afxdp's kick.
static void kick(struct floor *f)
{
	for (int k = 0; k < 4; k++) {
		if (!xsk_ring_prod__needs_wakeup(&f->tx))
			return;
		f->syscalls++;
		if (sendto(xsk_socket__fd(f->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			return;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EBUSY && errno != ENOBUFS) ||
		    __atomic_load_n(f->tx.consumer, __ATOMIC_ACQUIRE) == f->tx.cached_prod)
			return;
	}
}

static void forward(struct floor *f)
{
	struct pollfd pfd = {.fd = xsk_socket__fd(f->xsk), .events = POLLIN};
	while (!stop) {
		reap(f);
		refill(f);
		if (xsk_ring_prod__needs_wakeup(&f->fill)) {
			f->syscalls++;
			recvfrom(pfd.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		__u32 ri, ti;
		unsigned n = xsk_ring_cons__peek(&f->rx, BATCH, &ri);
		if (n == 0) {
			if (__atomic_load_n(f->tx.consumer, __ATOMIC_ACQUIRE) != f->tx.cached_prod)
				kick(f); // frames still wait on the TX ring
			f->syscalls++;
			poll(&pfd, 1, POLL_MS);
			continue;
		}
		f->rx_frames += n;
		unsigned room = xsk_ring_prod__reserve(&f->tx, n, &ti);
		for (unsigned i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&f->rx, ri++);
			unsigned char *p = xsk_umem__get_data(f->mem, d->addr);
			if (i >= room || d->len < 14 + 20 + 8) {
				f->free[f->nfree++] = xsk_umem__extract_addr(d->addr);
				f->dropped++;
				continue;
			}
			unsigned l4 = 14 + (p[14] & 0x0f) * 4;
			unsigned sport = d->len >= l4 + 8 ? (unsigned)p[l4] << 8 | p[l4 + 1] : 0;
			memcpy(p + 6, f->own, 6);
			memcpy(p, f->macs[sport % f->nmacs], 6);
			struct xdp_desc *t = xsk_ring_prod__tx_desc(&f->tx, ti++);
			t->addr = d->addr;
			t->len = d->len;
		}
		xsk_ring_cons__release(&f->rx, n);
		if (room) {
			if (room > n)
				room = n;
			xsk_ring_prod__submit(&f->tx, room);
			f->tx_frames += room;
			kick(f);
		}
	}
}

static int parse_mac(const char *s, unsigned char *m)
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct floor f;
	if (argc != 5) {
		fprintf(stderr, "usage: xskfloor IFACE VIP PORT MAC1,MAC2,...\n");
		return 2;
	}
	const char *ifname = argv[1];
	struct in_addr vip;
	int port = atoi(argv[3]);
	if (inet_pton(AF_INET, argv[2], &vip) != 1 || port <= 0 || port > 65535) {
		fprintf(stderr, "xskfloor: bad VIP or port\n");
		return 2;
	}
	for (char *s = strtok(argv[4], ","); s; s = strtok(NULL, ",")) {
		if (f.nmacs == MAX_MACS || parse_mac(s, f.macs[f.nmacs++]) < 0) {
			fprintf(stderr, "xskfloor: bad MAC list\n");
			return 2;
		}
	}
	int ifindex = if_nametoindex(ifname);
	if (ifindex == 0 || f.nmacs == 0) {
		fprintf(stderr, "xskfloor: %s: no such interface, or no MAC\n", ifname);
		return 2;
	}
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	FILE *a = fopen(path, "r");
	char line[64] = "";
	if (!a || !fgets(line, sizeof(line), a) || parse_mac(line, f.own) < 0) {
		fprintf(stderr, "xskfloor: reading %s\n", path);
		return 1;
	}
	fclose(a);
	struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_MEMLOCK, &r);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	f.mem = mmap(NULL, (size_t)FRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (f.mem == MAP_FAILED) {
		perror("xskfloor: UMEM");
		return 1;
	}
	struct xsk_umem_config uc = {.fill_size = RING, .comp_size = RING, .frame_size = FRAME};
	int err = xsk_umem__create(&f.umem, f.mem, (__u64)FRAMES * FRAME, &f.fill, &f.comp, &uc);
	if (err) {
		fprintf(stderr, "xskfloor: xsk_umem__create: %s\n", strerror(-err));
		return 1;
	}
	struct xsk_socket_config sc = {.rx_size = RING, .tx_size = RING,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = XDP_FLAGS_DRV_MODE, .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP};
	err = xsk_socket__create(&f.xsk, ifname, 0, f.umem, &f.rx, &f.tx, &sc);
	if (err) {
		fprintf(stderr, "xskfloor: xsk_socket__create: %s\n", strerror(-err));
		return 1;
	}
	// Copy mode sends at most 32 frames per sendto unless the budget is
	// raised (Linux 6.17); a batch is up to BATCH. Older kernels refuse and
	// kick() asks again.
	int budget = BATCH;
	setsockopt(xsk_socket__fd(f.xsk), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget));
	int xsks = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "xskfloor_xsks", 4, 4, 1, NULL);
	if (xsks < 0 || (err = xsk_socket__update_xskmap(f.xsk, xsks))) {
		fprintf(stderr, "xskfloor: XSKMAP: %s\n", strerror(xsks < 0 ? errno : -err));
		return 1;
	}
	int prog = load_prog(xsks, vip.s_addr, htons(port));
	if (prog < 0)
		return 1;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
	int link = bpf_link_create(prog, ifindex, BPF_XDP, &lo);
	if (link < 0) {
		fprintf(stderr, "xskfloor: attaching native XDP to %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < FRAMES; i++)
		f.free[f.nfree++] = (__u64)(FRAMES - 1 - i) * FRAME;
	refill(&f);
	fprintf(stderr, "ready: afxdp-native-copy on %s (libxdp)\n", ifname);
	forward(&f);
	close(link);
	xsk_socket__delete(f.xsk);
	xsk_umem__delete(f.umem);
	fprintf(stderr, "received %llu, transmitted %llu, dropped %llu, %llu system calls\n", f.rx_frames, f.tx_frames, f.dropped, f.syscalls);
	return 0;
}
