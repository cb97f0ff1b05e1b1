#!/usr/bin/env bash
# Instructions per iteration of a Go benchmark, counted by valgrind's
# callgrind: the same on a busy machine as on a quiet one, where timings are
# not (the VM has no hardware counters for perf stat).
#
#   scripts/instructions.sh PKG BENCH [N1 N2 [PER]]
#
# builds PKG's test binary and runs BENCH (an anchored -test.bench regexp)
# at N1 and at N2 iterations (defaults 50000 and 250000), GC off and one P
# so that the runtime's background work is small; prints the difference of
# the two whole-process counts over N2-N1 (and over PER, e.g. 64 packets
# per batch). Example:
#
#   scripts/instructions.sh ./sipparse 'BenchmarkCallID/invite/xvs$'
#   scripts/instructions.sh ./internal/pipeline 'BenchmarkPipelineWarm/invite-dr-1M-batch64$' 500 2500 64
set -euo pipefail
pkg=$1 re=$2 n1=${3:-50000} n2=${4:-250000} per=${5:-1}
command -v valgrind >/dev/null || { echo "valgrind not installed (Debian package valgrind)" >&2; exit 3; }
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
CGO_ENABLED=0 go test -c -o "$bin" "$pkg"
count() {
  GOGC=off GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" -test.run '^$' -test.bench "$re" -test.benchtime "${1}x" -test.cpu 1 2>&1 | sed -n 's/.*Collected : //p'
}
a=$(count "$n1")
b=$(count "$n2")
if [ "$per" = 1 ]; then unit="per iteration"; else unit="per iteration / $per"; fi
echo "$re: $(( (b - a) / ((n2 - n1) * per) )) instructions $unit"
