#!/usr/bin/env bash
# The demo: installs what weir needs, builds it, and runs it on the bundled
# capture (tools/demo/demo.pcap, real traffic made by make-demo-pcap.sh),
# showing every flow and the summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/ci/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build weir
echo
echo "== weir -i tools/demo/demo.pcap"
./build/tools/weir -i tools/demo/demo.pcap --json build/demo-flows.json
echo
echo "== flows as JSON lines: build/demo-flows.json (first one below)"
head -n 1 build/demo-flows.json
