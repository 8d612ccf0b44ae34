#!/usr/bin/env bash
# Forwarding rate of the inline bridge (weir --bridge) between two veths:
# weir-gen (BPF live frames, 64-byte UDP, 1000 flows, CPU 1) sends from
# namespace A into wbrA1; weir bridges wbrA0 -> wbrB0; weir-gen's XDP sink
# counts what arrives on wbrB1 in namespace B (CPU 0). Prints the generated
# and received rates for: the bare bridge (-q: no verdicts, no flows),
# verdicts on (every frame parsed and looked up, none installed), and
# verdicts plus per-flow accounting (flow records to /dev/null).
# Root; BUILD (default build dir b) must hold weir and weir-gen.
#   sudo BUILD=b RUNS=3 DURATION=4 bench/run_bridge.sh
set -eu
BUILD=${BUILD:-b}; RUNS=${RUNS:-3}; DURATION=${DURATION:-4}
WEIR=$BUILD/tools/weir; GEN=$BUILD/tools/weir-gen/weir-gen
[ -x "$WEIR" ] && [ -x "$GEN" ] || { echo "build weir and weir-gen first ($BUILD)"; exit 1; }
NSA=wbrbA; NSB=wbrbB; A0=wbrbA0; A1=wbrbA1; B0=wbrbB0; B1=wbrbB1
TMP=$(mktemp -d)
cleanup() {
    ip link del $A0 2>/dev/null || true; ip link del $B0 2>/dev/null || true
    ip netns del $NSA 2>/dev/null || true; ip netns del $NSB 2>/dev/null || true; rm -rf "$TMP"
}
trap cleanup EXIT
cleanup; TMP=$(mktemp -d)
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add $NSA; ip netns add $NSB
ip link add $A0 type veth peer name $A1; ip link add $B0 type veth peer name $B1
ip link set $A1 netns $NSA; ip link set $B1 netns $NSB
for d in $A0 $B0; do ip link set $d up; done
ip netns exec $NSA ip link set $A1 up; ip netns exec $NSB ip link set $B1 up

one() { # weir options...
    taskset -c 0 ip netns exec $NSB "$GEN" --sink -i $B1 --duration $((DURATION + 6)) --json \
        --ready-file "$TMP/ready" >"$TMP/rx.json" &
    local sink=$!
    for _ in $(seq 50); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
    taskset -c 0 "$WEIR" --bridge $A0:$B0 --stats-interval 0 --duration $((DURATION + 3)) "$@" 2>"$TMP/weir.log" >/dev/null &
    local w=$!
    sleep 1
    taskset -c 1 ip netns exec $NSA "$GEN" -i $A1 --duration "$DURATION" --size 64 --flows 1000 --json >"$TMP/gen.json"
    wait $w; wait $sink || true
    "$(dirname "$WEIR")/weirctl/weirctl" bridge detach $A0:$B0 >/dev/null 2>&1 || true
    rm -f "$TMP/ready"
    python3 - "$TMP/gen.json" "$TMP/rx.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
print(f"{g['sent'] / g['seconds'] / 1e6:.2f} {r['packets'] / g['seconds'] / 1e6:.2f}")
PY
}
for label in plain verdicts flows; do
    for i in $(seq "$RUNS"); do
        case $label in
        plain) r=$(one -q) ;;
        verdicts) r=$(one -q --verdict-socket "$TMP/v.sock") ;;
        flows) r=$(one --json /dev/null --verdict-socket "$TMP/v.sock") ;;
        esac
        echo "$label run $i: generated/received Mpps $r"
    done
done
