#!/usr/bin/env bash
# Whole-process offline runs on the throughput capture: weir (inline and with
# workers) side by side with softflowd reading the same file. Prints, per
# command, the median wall time of RUNS runs, packets per second and peak RSS.
#
# usage: bench/run_offline.sh [CAPTURE] (default: build/bench5m.pcap, made by
#        make_bench_capture.py when missing). env: RUNS (default 5), WEIR.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${1:-build/bench5m.pcap}
RUNS=${RUNS:-5}
WEIR=${WEIR:-build/tools/weir}
[ -f "$CAP" ] || python3 bench/make_bench_capture.py "$CAP"
PKTS=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
echo "capture: $CAP, $PKTS packets; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
cat "$CAP" > /dev/null # page cache warm for everyone

measure() { # measure <label> <command...>
  local label=$1; shift
  local times=() rss=()
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o /tmp/weir-bench-time "$@" >/dev/null 2>&1 || true
    read -r t m < /tmp/weir-bench-time
    times+=("$t"); rss+=("$m")
  done
  local med; med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  local mrss; mrss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  awk -v l="$label" -v t="$med" -v p="$PKTS" -v r="$mrss" \
    'BEGIN {printf "%-44s median %7.3f s  %8.2f Mpps  peak RSS %6.0f MiB\n", l, t, p/t/1e6, r/1024}'
}

measure "weir -w 0 (one thread)" "$WEIR" -i "$CAP" -q -w 0 --no-progress
measure "weir -w 1 (reader + 1 worker)" "$WEIR" -i "$CAP" -q -w 1 --no-progress
measure "weir -w 2 (reader + 2 workers)" "$WEIR" -i "$CAP" -q -w 2 --no-progress
if command -v softflowd >/dev/null; then
  measure "softflowd -r -c none -m 2000000 -v 9" softflowd -r "$CAP" -c none -m 2000000 -v 9 -n 127.0.0.1:9
fi
