// Package afxdp will hold the AF_XDP data plane: the XDP filter program, AF_XDP
// sockets, UMEM and rings, and the per-queue workers' batch I/O. It is the only
// package that touches asavie/xdp, cilium/ebpf and raw AF_XDP syscalls.
//
// Nothing is implemented here yet; the data plane arrives with its own issue.
package afxdp
