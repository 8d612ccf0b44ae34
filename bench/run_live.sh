#!/usr/bin/env bash
# Live capture rates on one veth queue: weir-gen (BPF live frames, 64-byte
# UDP, 1000 flows) sends for DURATION seconds from a namespace on one CPU;
# on the other CPU a receiver counts or runs the whole pipeline. Receivers:
#   sink            weir-gen's XDP counting program (drops in the driver: the ceiling)
#   xdp-count       weir -i xdp:IF --capture-only (bare AF_XDP socket counter)
#   xdp-weir        weir -i xdp:IF -w 0 (AF_XDP + decode + flow table + export, one thread)
#   afpacket-weir   weir -i afpacket:IF -w 0
#   pcap-weir       weir -i pcap:IF -w 0
# Rates are packets received per second of generation (received / the
# generator's elapsed time), with what the capture layer counted as dropped.
# Median of RUNS runs, receivers alternating within a round.
#
# usage: bench/run_live.sh   env: RUNS (3), DURATION (4), BUILD (build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; DURATION=${DURATION:-4}; BUILD=${BUILD:-build}
WEIR=$BUILD/tools/weir; GEN=$BUILD/tools/weir-gen/weir-gen
[ -x "$WEIR" ] && [ -x "$GEN" ] || { echo "build weir and weir-gen first ($BUILD)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 1; }
NS=wbns OUT=wbo IN=wbi
TMP=$(mktemp -d)
cleanup() { ip link del $OUT 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
cleanup; TMP=$(mktemp -d)
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add $NS
ip link add $OUT type veth peer name $IN
ip link set $IN netns $NS
ip link set $OUT up; ip netns exec $NS ip link set $IN up
# Frames redirected into a veth are accepted without an XDP program there only with GRO on.
ethtool -K $OUT gro on >/dev/null 2>&1 || true
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"

gen() { taskset -c 1 ip netns exec $NS "$GEN" -i $IN --duration "$DURATION" --size 64 --flows 1000 --json; }

run_one() { # label -> prints "rate drops"
  local label=$1 rx=0 drops=0 secs
  case $label in
    sink)
      taskset -c 0 "$GEN" --sink -i $OUT --duration $((DURATION + 10)) --json --ready-file "$TMP/ready" >"$TMP/rx.json" &
      local pid=$!
      for _ in $(seq 100); do [ -f "$TMP/ready" ] && break; sleep 0.05; done
      gen >"$TMP/gen.json"
      kill -INT $pid; wait $pid || true; rm -f "$TMP/ready"
      rx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$TMP/rx.json") ;;
    *)
      local spec args=(-q --stats-interval 0 --duration $((DURATION + 10)) --summary-json "$TMP/rx.json")
      case $label in
        xdp-count) spec="xdp:$OUT"; args+=(--capture-only) ;;
        xdp-weir) spec="xdp:$OUT"; args+=(-w 0) ;;
        afpacket-weir) spec="afpacket:$OUT"; args+=(-w 0) ;;
        pcap-weir) spec="pcap:$OUT"; args+=(-w 0) ;;
      esac
      taskset -c 0 "$WEIR" -i "$spec" "${args[@]}" 2>"$TMP/err" &
      local pid=$!
      for _ in $(seq 100); do grep -q "capturing on" "$TMP/err" && break; sleep 0.05; done
      sleep 0.2
      gen >"$TMP/gen.json"
      sleep 0.5
      kill -INT $pid; wait $pid || true
      read -r rx drops < <(python3 -c '
import json,sys
s=json.load(open(sys.argv[1])); print(s["packets"], s.get("capture_drops", 0))' "$TMP/rx.json") ;;
  esac
  secs=$(python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); print(g["seconds"])' "$TMP/gen.json")
  local sent; sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$TMP/gen.json")
  python3 -c "import sys; print(f'{$rx/$secs/1e6:.3f} {$drops} {$sent/$secs/1e6:.3f}')"
}

LABELS=(sink xdp-count xdp-weir afpacket-weir pcap-weir)
declare -A results
for r in $(seq "$RUNS"); do
  for l in "${LABELS[@]}"; do
    results[$l]+="$(run_one "$l")"$'\n'
  done
done
for l in "${LABELS[@]}"; do
  printf '%s' "${results[$l]}" | sort -n | awk -v l="$l" '
    {rate[NR]=$1; drop[NR]=$2; sent[NR]=$3}
    END {m=int((NR+1)/2); printf "%-14s median %6.2f Mpps received  (generator %5.2f Mpps, capture drops %d)  runs:", l, rate[m], sent[m], drop[m];
         for (i=1;i<=NR;i++) printf " %.2f", rate[i]; printf "\n"}'
done
