#!/usr/bin/env bash
# make demo: the live demo when this machine can run it (root, iproute2, SIPp):
# a SIP proxy farm in network namespaces, xvs run on AF_XDP (or the best data
# plane available), SIPp placing calls from one source ip:port, and xvsadm's
# listings. Otherwise it says what is missing and replays a shipped capture
# through the same pipeline offline.
set -euo pipefail
cd "$(dirname "$0")/.."

if why=$(./bin/xvslab demo --check 2>&1); then
  exec ./bin/xvslab demo
fi
echo "== the live demo needs root, iproute2 and SIPp (Debian: sudo apt-get install iproute2 sip-tester; run as root):"
echo "   ${why#xvslab: }"
echo "== running the offline demo instead: the same pipeline over a shipped capture"
echo
exec ./scripts/demo-replay.sh
