#!/usr/bin/env bash
# Runs the micro-benchmarks quoted in docs/performance.md and writes their raw
# output (with the machine description) to docs/bench/latest.txt. Every
# figure there has its same-run baseline beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/bench/latest.txt
mkdir -p docs/bench
{
  echo "# $(date -u +%FT%TZ) $(go version)"
  echo "# $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# git $(git rev-parse --short HEAD)"
  set -x
  go test -run '^$' -bench 'BenchmarkCallID' -benchtime "${BENCHTIME:-1s}" -count "${COUNT:-1}" ./sipparse
  go test -run '^$' -bench 'BenchmarkDecode|BenchmarkRewrite|BenchmarkVsGopacket' -benchtime "${BENCHTIME:-1s}" -count "${COUNT:-1}" ./packet
  go test -run '^$' -bench 'BenchmarkPipeline' -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-1}" ./internal/pipeline
  go test -run '^$' -bench 'BenchmarkTemplateLookupHit|BenchmarkTemplateFlood|BenchmarkTemplateMissInsert|BenchmarkSharedGet' -benchtime 300ms -count "${COUNT:-1}" ./table
  go test -run '^$' -bench 'BenchmarkSchedule' -benchtime 200ms ./internal/sched
} 2>&1 | grep -v '^\(goos\|goarch\|cpu\|PASS\)' | tee "$out"
