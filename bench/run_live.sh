#!/usr/bin/env bash
# Live capture rates on one veth queue: weir-gen (BPF live frames, 64-byte
# UDP, 1000 flows) sends for DURATION seconds from a namespace on CPU 1
# (weir-gen pins its thread inside the CPUs taskset allows); the receiver
# runs on CPU 0. Receivers:
#   sink            weir-gen's XDP counting program (drops in the driver: the ceiling)
#   xdp-count       weir -i xdp:IF --capture-only (bare AF_XDP socket counter;
#                   default sizes: rings of 65536, UMEM 65536 x 4096 B = 256 MiB)
#   xdp-read        weir -i xdp:IF --capture-only --capture-read (the bare counter
#                   reading each frame's EtherType: the least any consumer reads)
#   xdp-weir        weir -i xdp:IF -w 0 (AF_XDP + decode + flow table + export, one thread)
#   xdp-count-old, xdp-read-old, xdp-weir-old   the same with OLD_XDP_ARGS: the former
#                   default sizes (rings of 4096, 8192 frames = 32 MiB), which
#                   lose frames when the reader is off its CPU for a few ms
#   xdp-count-big, xdp-read-big, xdp-weir-big   the same with BIG_XDP_ARGS: rings of 65536
#                   and a 256 MiB UMEM of twice as many 2048-byte frames
#   afpacket-weir   weir -i afpacket:IF -w 0
#   pcap-weir       weir -i pcap:IF -w 0
# On a veth the receive side (XDP program, AF_XDP copy, stack) runs in the
# sending CPU's softirq, inline after each of the generator's kernel batches:
# the generator's CPU pays for delivery, the receiver's CPU only reads.
# Rates are packets received per second of generation (received / the
# generator's elapsed time), with the frames the capture layer counted as
# dropped, the receiver's CPU use (user + system time / wall time) and its
# CPU time per received packet.
# Median of RUNS runs, receivers alternating within a round; the load
# average is printed per round (other jobs on the machine skew the rates).
#
# usage: sudo BUILD=build bench/run_live.sh
# env: RUNS (3), DURATION (4), BUILD (build), NICE (-10: generator and
#      receiver niceness; background jobs still delay the reader, less often),
#      XDP_ARGS (extra weir options for the xdp receivers), OLD_XDP_ARGS and
#      BIG_XDP_ARGS (those of the -old and -big receivers), PREFIX (wb:
#      netns/veth name prefix), LABELS (receivers to run, default all),
#      GEN_MODE (live: BPF_PROG_RUN live frames; afxdp: AF_XDP TX, for
#      kernels that refuse live frames)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}; DURATION=${DURATION:-4}; BUILD=${BUILD:-build}; NICE=${NICE:--10}; XDP_ARGS=${XDP_ARGS:-}
BIG_XDP_ARGS=${BIG_XDP_ARGS:---xdp-ring-size 65536 --xdp-umem-frames 131072 --xdp-frame-size 2048}
OLD_XDP_ARGS=${OLD_XDP_ARGS:---xdp-ring-size 4096 --xdp-umem-frames 8192}
PREFIX=${PREFIX:-wb}; GEN_MODE=${GEN_MODE:-live}
WEIR=$BUILD/tools/weir; GEN=$BUILD/tools/weir-gen/weir-gen
[ -x "$WEIR" ] && [ -x "$GEN" ] || { echo "build weir and weir-gen first ($BUILD)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (generator on CPU 1, receiver on CPU 0)"; exit 1; }
NS=${PREFIX}ns OUT=${PREFIX}o IN=${PREFIX}i
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
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg); nice $NICE"

gen() { nice -n "$NICE" taskset -c 1 ip netns exec $NS "$GEN" -i $IN --mode "$GEN_MODE" --duration "$DURATION" --size 64 --flows 1000 --json; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

run_one() { # label -> prints "rate drops generated cpu% cpu-ns-per-packet"
  local label=$1 rx=0 drops=0 cpu=0 ticks=0 secs
  case $label in
    sink)
      nice -n "$NICE" taskset -c 0 "$GEN" --sink -i $OUT --duration $((DURATION + 10)) --json --ready-file "$TMP/ready" >"$TMP/rx.json" &
      local pid=$!
      for _ in $(seq 100); do [ -f "$TMP/ready" ] && break; sleep 0.05; done
      gen >"$TMP/gen.json"
      kill -INT $pid; wait $pid || true; rm -f "$TMP/ready"
      rx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$TMP/rx.json") ;;
    *)
      local spec args=(-q --stats-interval 0 --duration $((DURATION + 10)) --summary-json "$TMP/rx.json")
      case $label in
        xdp-count) spec="xdp:$OUT"; args+=(--capture-only); read -ra extra <<<"$XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-read) spec="xdp:$OUT"; args+=(--capture-only --capture-read); read -ra extra <<<"$XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-weir) spec="xdp:$OUT"; args+=(-w 0); read -ra extra <<<"$XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-count-old) spec="xdp:$OUT"; args+=(--capture-only); read -ra extra <<<"$OLD_XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-read-old) spec="xdp:$OUT"; args+=(--capture-only --capture-read); read -ra extra <<<"$OLD_XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-weir-old) spec="xdp:$OUT"; args+=(-w 0); read -ra extra <<<"$OLD_XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-count-big) spec="xdp:$OUT"; args+=(--capture-only); read -ra extra <<<"$BIG_XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-read-big) spec="xdp:$OUT"; args+=(--capture-only --capture-read); read -ra extra <<<"$BIG_XDP_ARGS"; args+=("${extra[@]}") ;;
        xdp-weir-big) spec="xdp:$OUT"; args+=(-w 0); read -ra extra <<<"$BIG_XDP_ARGS"; args+=("${extra[@]}") ;;
        afpacket-weir) spec="afpacket:$OUT"; args+=(-w 0) ;;
        pcap-weir) spec="pcap:$OUT"; args+=(-w 0) ;;
      esac
      nice -n "$NICE" taskset -c 0 "$WEIR" -i "$spec" "${args[@]}" 2>"$TMP/err" >/dev/null &
      local pid=$!
      for _ in $(seq 100); do grep -q "capturing on" "$TMP/err" && break; sleep 0.05; done
      sleep 0.2
      local t0 c0; t0=$(date +%s.%N); c0=$(cpu_ticks $pid)
      gen >"$TMP/gen.json"
      local t1 c1; t1=$(date +%s.%N); c1=$(cpu_ticks $pid)
      ticks=$((c1 - c0)); cpu=$(python3 -c "print(100 * $ticks / $(getconf CLK_TCK) / ($t1 - $t0))")
      sleep 0.5
      kill -INT $pid; wait $pid || true
      read -r rx drops < <(python3 -c '
import json,sys
s=json.load(open(sys.argv[1])); print(s["packets"], s.get("capture_drops", 0))' "$TMP/rx.json") ;;
  esac
  secs=$(python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); print(g["seconds"])' "$TMP/gen.json")
  local sent; sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$TMP/gen.json")
  python3 -c "print(f'{$rx/$secs/1e6:.3f} {$drops} {$sent/$secs/1e6:.3f} {$cpu:.0f} {1e9 * $ticks / $(getconf CLK_TCK) / max(1, $rx):.0f}')"
}

read -ra LABELS <<<"${LABELS:-sink xdp-count xdp-read xdp-weir xdp-count-old xdp-read-old xdp-weir-old xdp-count-big xdp-read-big xdp-weir-big afpacket-weir pcap-weir}"
declare -A results
for r in $(seq "$RUNS"); do
  for l in "${LABELS[@]}"; do
    results[$l]+="$(run_one "$l")"$'\n'
  done
  echo "round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
for l in "${LABELS[@]}"; do
  printf '%s' "${results[$l]}" | sort -n | awk -v l="$l" '
    {rate[NR]=$1; drop[NR]=$2; sent[NR]=$3; cpu[NR]=$4; ns[NR]=$5}
    END {m=int((NR+1)/2); printf "%-14s median %6.2f Mpps received  (generator %5.2f Mpps, capture drops %d, receiver CPU %d %%, %d ns/packet)  runs:", l, rate[m], sent[m], drop[m], cpu[m], ns[m];
         for (i=1;i<=NR;i++) printf " %.2f", rate[i]; printf "\n"}'
done
median() { printf '%s' "${results[$1]}" | sort -n | awk -v c="$RUNS" 'NR==int((c+1)/2) {print $1}'; }
ratios() { # bare whole -> "whole/bare % and whole/libpcap x"
  python3 -c "import sys; b,w,p=map(float,sys.argv[1:]); print(f'{100*w/b:.0f} % of bare AF_XDP (target 90 %), {w/p:.2f}x libpcap (target 1.5x)' if b>0 and p>0 else 'n/a')" \
    "$(median "$1")" "$(median "$2")" "$(median pcap-weir)"
}
has() { [[ " ${LABELS[*]} " == *" $1 "* ]]; }
for pair in "default sizes:xdp-count xdp-read xdp-weir" "former 4096 rings:xdp-count-old xdp-read-old xdp-weir-old" \
            "65536 rings, 2048 B frames:xdp-count-big xdp-read-big xdp-weir-big"; do
  read -r b r w <<<"${pair#*:}"
  has "$b" && has "$w" && has pcap-weir && echo "whole pipeline, ${pair%%:*}: $(ratios "$b" "$w")"
  has "$r" && has "$w" && python3 -c "import sys; r,w=map(float,sys.argv[1:]); print(f'whole pipeline, ${pair%%:*}: {100*w/r:.0f} % of the counter that reads each frame' if r>0 else '')" \
    "$(median "$r")" "$(median "$w")"
done
exit 0
