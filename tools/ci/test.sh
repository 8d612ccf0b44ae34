#!/usr/bin/env bash
# Builds weir and runs every test: unit, golden (real captures), e2e, live
# capture (network namespaces and veth pairs, as root), then a
# sanitizer build (ASan+UBSan) of the unit tests and a bounded fuzz run.
# Installs what it needs first. Usage: tools/ci/test.sh  (env: JOBS, FUZZ_SECONDS, SKIP_SANITIZE, SKIP_FUZZ)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

bash tools/ci/install-deps.sh

echo "== build (release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_BUILD_TESTS=ON -DWEIR_BUILD_BENCH=ON >/dev/null
ninja -C build -j"$JOBS"

# Live capture tests load XDP programs and may pin maps: bpffs must be mounted.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "warning: could not mount bpffs on /sys/fs/bpf"
fi

LOG=$(mktemp); trap 'rm -f "$LOG"' EXIT
echo "== tests (unit, golden, e2e, live capture)"
(cd build && ctest -j"$JOBS" --output-on-failure -L 'unit|golden|e2e|live') | tee -a "$LOG"

if [ -z "${SKIP_SANITIZE:-}" ]; then
  echo "== unit tests under ASan+UBSan"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=address,undefined \
        -DWEIR_BUILD_BENCH=OFF >/dev/null
  ninja -C build-asan -j"$JOBS"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -j"$JOBS" --output-on-failure -L unit) | tee -a "$LOG"
fi

if [ -z "${SKIP_FUZZ:-}" ] && [ -x tests/fuzz/run.sh ]; then
  echo "== fuzz (bounded)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-60} bash tests/fuzz/run.sh
fi
# One closing line over every ctest run above ("N% tests passed, F tests failed out of T").
awk '/tests passed, [0-9]+ tests? failed out of/ {f += $4; t += $NF} END {printf "tests: %d passed, %d failed\n", t - f, f}' "$LOG"
