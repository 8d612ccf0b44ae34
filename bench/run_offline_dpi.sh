#!/usr/bin/env bash
# Whole-process offline runs with DPI on the throughput capture, next to the
# peers that read the same file: weir -D 1 (micro-DPI) and -D 2 (nDPI) with
# one and two workers, weir -D 0 for reference, softflowd (no DPI) and
# ndpiReader (nDPI). The commands are interleaved round by round, so a load
# change on the machine hits every command alike. Prints, per command, the
# median wall time, packets per second, peak RSS, flows and peak RSS per
# flow, then the ratios asked by the targets (docs/performance.md).
#
# usage: bench/run_offline_dpi.sh [CAPTURE] (default: build/bench5m.pcap,
#        made by make_bench_capture.py when missing).
# env:   RUNS (default 3), NDPI_RUNS (ndpiReader runs, default RUNS: it
#        takes about 20 s per run on the 5 M-packet capture), WEIR.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${1:-build/bench5m.pcap}
RUNS=${RUNS:-3}
NDPI_RUNS=${NDPI_RUNS:-$RUNS}
WEIR=${WEIR:-build/tools/weir}
[ -f "$CAP" ] || python3 bench/make_bench_capture.py "$CAP"
PKTS=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
echo "capture: $CAP, $PKTS packets; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
cat "$CAP" > /dev/null # page cache warm for everyone

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

LABELS=() CMDS=()
add() { LABELS+=("$1"); CMDS+=("$2"); }
add "weir -w 1 -D 0" "$WEIR -i $CAP -q --no-progress -w 1 -D 0"
add "weir -w 1 -D 1" "$WEIR -i $CAP -q --no-progress -w 1 -D 1"
add "weir -w 2 -D 1" "$WEIR -i $CAP -q --no-progress -w 2 -D 1"
add "weir -w 1 -D 2" "$WEIR -i $CAP -q --no-progress -w 1 -D 2"
add "weir -w 2 -D 2" "$WEIR -i $CAP -q --no-progress -w 2 -D 2"
if command -v softflowd >/dev/null; then
  add "softflowd -r -c none -m 2000000 -v 9" "softflowd -r $CAP -c none -m 2000000 -v 9 -n 127.0.0.1:9"
fi
if command -v ndpiReader >/dev/null; then
  add "ndpiReader -i" "ndpiReader -i $CAP"
fi

run_one() { # run_one <index> <round>
  local i=$1 r=$2
  # shellcheck disable=SC2086 # the command is word-split on purpose
  /usr/bin/time -f "%e %M" -o "$OUT/time" ${CMDS[$i]} > "$OUT/out.$i" 2>&1 || true
  read -r t m < "$OUT/time"
  echo "$t" >> "$OUT/t.$i"
  echo "$m" >> "$OUT/m.$i"
}

for r in $(seq "$RUNS"); do
  for i in "${!CMDS[@]}"; do
    if [[ ${LABELS[$i]} == ndpiReader* ]] && [ "$r" -gt "$NDPI_RUNS" ]; then continue; fi
    run_one "$i" "$r"
  done
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
flows_of() { # flows as the program itself reports them (softflowd prints none)
  awk '/^  flows / {print $2; exit} /Unique flows:/ {print $3; exit}' "$OUT/out.$1"
}
declare -A MED
printf '%-40s %5s %9s %10s %10s %9s %12s\n' command runs "median s" Mpps "peak RSS" flows "RSS/flow"
for i in "${!CMDS[@]}"; do
  t=$(median "$OUT/t.$i"); m=$(sort -n "$OUT/m.$i" | tail -1); f=$(flows_of "$i"); n=$(wc -l < "$OUT/t.$i")
  MED[${LABELS[$i]}]=$t
  awk -v l="${LABELS[$i]}" -v n="$n" -v t="$t" -v p="$PKTS" -v m="$m" -v f="${f:-}" 'BEGIN {
    printf "%-40s %5d %9.3f %10.2f %6.0f MiB %9s %8s\n", l, n, t, p/t/1e6, m/1024, (f == "" ? "-" : f),
      (f == "" ? "-" : sprintf("%.0f B", m*1024/f)) }'
done
ratio() { # ratio <label> <peer label> <what>
  [ -n "${MED[$1]:-}" ] && [ -n "${MED[$2]:-}" ] || return 0
  awk -v a="${MED[$1]}" -v b="${MED[$2]}" -v w="$3" 'BEGIN {printf "%-52s %5.1fx (target 10x: %s)\n", w, b/a, (b/a >= 10 ? "met" : "not met")}'
}
echo
ratio "weir -w 1 -D 0" "softflowd -r -c none -m 2000000 -v 9" "weir -w 1 -D 0 against softflowd"
ratio "weir -w 1 -D 1" "softflowd -r -c none -m 2000000 -v 9" "weir -w 1 -D 1 against softflowd"
ratio "weir -w 2 -D 1" "softflowd -r -c none -m 2000000 -v 9" "weir -w 2 -D 1 against softflowd"
ratio "weir -w 1 -D 2" "ndpiReader -i" "weir -w 1 -D 2 against ndpiReader -i"
ratio "weir -w 2 -D 2" "ndpiReader -i" "weir -w 2 -D 2 against ndpiReader -i"
