#!/usr/bin/env bash
# The demo: installs what weir needs, builds it, and runs it on the bundled
# capture (tools/demo/demo.pcap, real traffic made by make-demo-pcap.sh):
# every flow is shown, written as JSON lines, and exported over IPFIX to a
# local nfdump collector (nfcapd on 127.0.0.1), whose view is printed last.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/ci/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build weir

PORT=${DEMO_PORT:-24739}
COLLECT=$(mktemp -d)
nfcapd -b 127.0.0.1 -p "$PORT" -w "$COLLECT" >/dev/null 2>&1 &
NFCAPD=$!
trap 'kill $NFCAPD 2>/dev/null || true; rm -rf "$COLLECT"' EXIT
for _ in $(seq 50); do # until nfcapd has bound its socket
  ss -Hlun "sport = :$PORT" | grep -q . && break
  sleep 0.1
done

echo
echo "== weir -i tools/demo/demo.pcap -D 1 --ipfix 127.0.0.1:$PORT --json build/demo-flows.json --text -"
./build/tools/weir -i tools/demo/demo.pcap -D 1 --ipfix "127.0.0.1:$PORT" --json build/demo-flows.json --text -

# nfcapd reads its socket on its own schedule: give it time to take in the
# last datagrams before SIGTERM makes it write its file and exit.
sleep 2
kill -TERM $NFCAPD; wait $NFCAPD 2>/dev/null || true
echo
echo "== what the IPFIX collector (nfcapd) received, as nfdump shows it"
nfdump -R "$COLLECT" -q -o 'fmt:%ts %pr %sap -> %dap %pkt %byt %flg' | sort
nfdump -R "$COLLECT" -I | grep -E '^(Flows|Packets|Bytes|Sequence failures):'
echo
echo "== the same flows as JSON lines: build/demo-flows.json (first one)"
head -n 1 build/demo-flows.json
