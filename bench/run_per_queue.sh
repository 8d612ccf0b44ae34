#!/usr/bin/env bash
# Per-queue capture threads (weir --per-queue) against the single-thread
# inline pipeline (-w 0) and the bare capture counter (--capture-only), on a
# veth with one RX queue and on one with two, in the style of run_live.sh:
# weir-gen (BPF live frames, 64-byte UDP, 1000 flows) sends for DURATION
# seconds from a namespace; rates are packets received per second of
# generation, with the capture drops weir counted. Receivers alternate within
# a round (the machine is shared: only ratios of one sitting mean anything).
#   one queue:  generator on CPU 1, receiver on CPU 0 (--per-queue -g 0)
#   two queues: generator threads on both CPUs (veth puts an XDP-redirected
#               frame on the queue of the sending CPU, so both queues get
#               traffic, every flow on both); single-thread receivers
#               unpinned, --per-queue -g 0,1
# Receivers: xdp-count (--capture-only), xdp-inline (-w 0), xdp-perq
# (--per-queue), afp-inline (afpacket -w 0), afp-perq (afpacket --per-queue).
#
# usage: bench/run_per_queue.sh   env: RUNS (3), DURATION (3), BUILD (build),
#        NICE (-10), QUEUES ("1 2")
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; DURATION=${DURATION:-3}; BUILD=${BUILD:-build}; NICE=${NICE:--10}; QUEUES=${QUEUES:-1 2}
WEIR=$BUILD/tools/weir; GEN=$BUILD/tools/weir-gen/weir-gen
[ -x "$WEIR" ] && [ -x "$GEN" ] || { echo "build weir and weir-gen first ($BUILD)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 1; }
NS=pqbns OUT=pqbo IN=pqbi
TMP=$(mktemp -d)
cleanup() { ip link del $OUT 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; }
trap 'cleanup; rm -rf "$TMP"' EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"

make_pair() { # make_pair <queues>
  cleanup
  ip netns add $NS
  ip link add $OUT numrxqueues "$1" numtxqueues "$1" type veth peer name $IN numrxqueues "$1" numtxqueues "$1"
  ip link set $IN netns $NS
  ip link set $OUT up; ip netns exec $NS ip link set $IN up
  # Redirected frames reach AF_PACKET (no XDP program on the veth) only with GRO on.
  ethtool -K $OUT gro on >/dev/null 2>&1 || true
}

gen() { # gen <queues>
  if [ "$1" -eq 1 ]; then
    nice -n "$NICE" taskset -c 1 ip netns exec $NS "$GEN" -i $IN --duration "$DURATION" --size 64 --flows 1000 --json
  else
    nice -n "$NICE" ip netns exec $NS "$GEN" -i $IN --duration "$DURATION" --size 64 --flows 1000 --threads 2 --json
  fi
}

run_one() { # run_one <queues> <label> -> "rate drops sent_rate"
  local q=$1 label=$2 spec pin=(taskset -c 0) args=(-q --stats-interval 0 --duration $((DURATION + 10)) --summary-json "$TMP/rx.json")
  [ "$q" -eq 2 ] && pin=()
  case $label in
    xdp-count) spec="xdp:$OUT"; args+=(--capture-only) ;;
    xdp-inline) spec="xdp:$OUT"; args+=(-w 0) ;;
    xdp-perq) spec="xdp:$OUT"; args+=(--per-queue -g "$([ "$q" -eq 1 ] && echo 0 || echo 0,1)") ;;
    afp-inline) spec="afpacket:$OUT"; args+=(-w 0) ;;
    afp-perq) spec="afpacket:$OUT"; args+=(--per-queue -g "$([ "$q" -eq 1 ] && echo 0 || echo 0,1)") ;;
  esac
  nice -n "$NICE" "${pin[@]}" "$WEIR" -i "$spec" "${args[@]}" 2>"$TMP/err" >/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q "capturing on" "$TMP/err" && break; sleep 0.05; done
  sleep 0.2
  gen "$q" >"$TMP/gen.json"
  sleep 0.5
  kill -INT $pid; wait $pid || true
  python3 - "$TMP/rx.json" "$TMP/gen.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
print(f'{s["packets"] / g["seconds"] / 1e6:.3f} {s.get("capture_drops", 0)} {g["sent"] / g["seconds"] / 1e6:.3f}')
PY
}

LABELS=(xdp-count xdp-inline xdp-perq afp-inline afp-perq)
for q in $QUEUES; do
  make_pair "$q"
  declare -A results=()
  for r in $(seq "$RUNS"); do
    for l in "${LABELS[@]}"; do
      results[$l]+="$(run_one "$q" "$l")"$'\n'
    done
    echo "$q queue(s): round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  for l in "${LABELS[@]}"; do
    printf '%s' "${results[$l]}" | sort -n | awk -v l="$l" -v q="$q" '
      {rate[NR]=$1; drop[NR]=$2; sent[NR]=$3}
      END {m=int((NR+1)/2); printf "%d queue(s) %-11s median %6.2f Mpps received  (generator %5.2f Mpps, capture drops %d)  runs:", q, l, rate[m], sent[m], drop[m];
           for (i=1;i<=NR;i++) printf " %.2f", rate[i]; printf "\n"}'
  done
  unset results
done
