#!/usr/bin/env bash
# The offline demo (make demo falls back to it): replay a shipped SIP capture through the xvs pipeline.
#
# It runs the real per-packet pipeline offline (xvs replay) on a capture
# shipped in testdata/captures: a SIPp load test in which all 631 calls share ONE 5-tuple
# (127.0.0.1:5061 -> 127.0.0.1:5060). A 5-tuple balancer pins every call to
# one server; xvs spreads the calls and keeps each call on one server.
set -euo pipefail
cd "$(dirname "$0")/.."

capture=testdata/captures/sipp-branch-scenario.pcapng
rules=examples/sipp-demo.rules
out=${DEMO_OUT:-$(mktemp -d)}
trap '[ -z "${DEMO_OUT:-}" ] && rm -rf "$out"' EXIT

echo "== xvs demo (offline): replay through the real per-packet pipeline"
echo "== capture: $capture"
echo "== rules ($rules):"
grep -v '^#' "$rules" | sed 's/^/   /'
echo
./bin/xvs replay --rules "$rules" --log "$out/decisions.tsv" --out "$out/forwarded.pcap" "$capture"
echo
echo "== first decisions (frame, src, dst, Call-ID, verdict, real server, reason):"
sed -n '1,8p' "$out/decisions.tsv" | awk -F'\t' '{printf "   %-7s %-16s %-16s %-20s %-8s %-16s %s\n", $1, $2, $3, $4, $5, $6, $7}'
echo
echo "== affinity check: real servers per Call-ID among forwarded datagrams"
awk -F'\t' '$5=="forward" {k=$4; if (!(k SUBSEP $6 in seen)) {seen[k SUBSEP $6]=1; n[k]++}}
  END {bad=0; for (k in n) { if (n[k] > 1) bad++ }; printf "   %d Call-IDs, %d on more than one real server\n", length(n), bad; exit bad>0}' "$out/decisions.tsv"
echo "== distinct 5-tuples carrying those calls:"
awk -F'\t' '$5=="forward" {print $2" -> "$3}' "$out/decisions.tsv" | sort -u | sed 's/^/   /'
echo
if [ -n "${DEMO_OUT:-}" ]; then
  echo "Decision log: $out/decisions.tsv; forwarded frames, rewritten to the real servers: $out/forwarded.pcap"
else
  echo "Set DEMO_OUT=DIR to keep the decision log and the rewritten frames (forwarded.pcap)."
fi
