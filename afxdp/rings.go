package afxdp

import "github.com/xvs-lb/xvs/dataplane"

// Ring sizes (dataplane.Options.RingSize, xvs run --ring-size).
const (
	// DefaultRingSize is the descriptors per ring (fill, completion, RX,
	// TX): libbpf's default, 32 batches of 64 — enough to ride out a
	// worker's scheduling hiccup of ~1 ms at 2 Mpps without drops, while
	// the rings (16 bytes per RX/TX descriptor) stay in L2.
	DefaultRingSize = 2048
	// MinRingSize is one batch: a worker reads up to MaxBatch frames at a
	// time.
	MinRingSize = dataplane.MaxBatch
	// MaxRingSize bounds the memory a queue takes: its UMEM has two
	// frames per descriptor, 128 MiB per interface of 2 KiB frames at
	// this size.
	MaxRingSize = 32768
)
