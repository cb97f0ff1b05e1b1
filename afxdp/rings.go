package afxdp

import "github.com/xvs-lb/xvs/dataplane"

// Ring sizes (dataplane.Options.RingSize, xvs run --ring-size).
const (
	// DefaultRingSize is the descriptors per ring (fill, completion, RX,
	// TX): twice libbpf's 2048. The rings are what the kernel receives
	// into while the worker waits for a CPU: 4096 frames are 2 ms at
	// 2 Mpps, 82 ms at 50 000 datagrams/s. In the lab, on a shared 2-vCPU
	// machine, workers that waited for a CPU overflowed 2048-descriptor
	// rings in 8 of 40 sink runs and larger ones in 2 of the same 40
	// (docs/performance.md); the cost is memory: a UMEM of 16 MiB per
	// interface and queue (8 MiB at 2048).
	DefaultRingSize = 4096
	// MinRingSize is one batch: a worker reads up to MaxBatch frames at a
	// time.
	MinRingSize = dataplane.MaxBatch
	// MaxRingSize bounds the memory a queue takes: its UMEM has two
	// frames per descriptor, 128 MiB per interface of 2 KiB frames at
	// this size.
	MaxRingSize = 32768
)
