// Package perf will hold the whole-system benchmark harness (traffic generator,
// sink with affinity check, baselines, reports). Micro-benchmarks live beside
// the code they measure (go test -bench).
package perf
