#!/usr/bin/env bash
# IDS egress throughput, kernel egress (XDP DIVERT through the weir_egress
# DEVMAP) against user-space AF_PACKET TX and AF_XDP TX (copy mode on veth),
# on the same generator: weir-gen
# (BPF live frames, UDP, 1000 flows, CPU 1) sends from namespace A into
# eo-bA0, which weir captures with AF_XDP (CPU 0) and balances over two
# egress veths eo-bE0, eo-bE1; weir-gen's XDP sink counts what arrives on
# each egress peer in namespace B. Prints, per run, the generated rate, the
# rate received over both egresses, and weir's summary counters.
# Root; BUILD (default build dir b) must hold weir and weir-gen.
#   sudo BUILD=b RUNS=3 DURATION=4 SIZE=64 bench/run_egress_kernel.sh
# LABELS picks the paths (default "kernel afpacket afxdp").
set -eu
BUILD=${BUILD:-b}; RUNS=${RUNS:-3}; DURATION=${DURATION:-4}; SIZE=${SIZE:-64}; RATE=${RATE:-0}
WEIR=$BUILD/tools/weir; GEN=$BUILD/tools/weir-gen/weir-gen
[ -x "$WEIR" ] && [ -x "$GEN" ] || { echo "build weir and weir-gen first ($BUILD)"; exit 1; }
NSA=eo-bA; NSB=eo-bB; A0=eo-bA0; A1=eo-bA1
TMP=$(mktemp -d)
cleanup() {
    ip link del $A0 2>/dev/null || true
    for i in 0 1; do ip link del eo-bE$i 2>/dev/null || true; done
    ip netns del $NSA 2>/dev/null || true; ip netns del $NSB 2>/dev/null || true; rm -rf "$TMP"
}
trap cleanup EXIT
cleanup; TMP=$(mktemp -d)
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
ip netns add $NSA; ip netns add $NSB
ip link add $A0 type veth peer name $A1; ip link set $A1 netns $NSA
for i in 0 1; do ip link add eo-bE$i type veth peer name eo-bP$i; ip link set eo-bP$i netns $NSB; done
# No IPv6 neighbour discovery: the sinks count only generated frames.
for d in $A0 eo-bE0 eo-bE1; do sysctl -qw net.ipv6.conf.$d.disable_ipv6=1; ip link set $d up; done
ip netns exec $NSA sysctl -qw net.ipv6.conf.$A1.disable_ipv6=1; ip netns exec $NSA ip link set $A1 up
for i in 0 1; do ip netns exec $NSB sysctl -qw net.ipv6.conf.eo-bP$i.disable_ipv6=1; ip netns exec $NSB ip link set eo-bP$i up; done

one() { # weir options...
    local sinks=()
    for i in 0 1; do
        ip netns exec $NSB "$GEN" --sink -i eo-bP$i --duration $((DURATION + 10)) --json \
            --ready-file "$TMP/ready$i" >"$TMP/rx$i.json" &
        sinks+=($!)
    done
    for _ in $(seq 50); do [ -e "$TMP/ready0" ] && [ -e "$TMP/ready1" ] && break; sleep 0.1; done
    taskset -c 0 "$WEIR" -i xdp:$A0 --egress eo-bE0,eo-bE1 -q --stats-interval 0 --duration $((DURATION + 6)) \
        --summary-json "$TMP/sum.json" "$@" 2>"$TMP/weir.log" >/dev/null &
    local w=$!
    # "capturing on" comes once the verdict server, egress ports and tables are set up.
    for _ in $(seq 100); do grep -q "capturing on" "$TMP/weir.log" && break; sleep 0.1; done
    taskset -c 1 ip netns exec $NSA "$GEN" -i $A1 --duration "$DURATION" --size "$SIZE" --flows 1000 \
        --rate "$RATE" --json >"$TMP/gen.json"
    wait $w
    for s in "${sinks[@]}"; do wait "$s" || true; done
    rm -f "$TMP/ready0" "$TMP/ready1"
    python3 - "$TMP" <<'PY'
import json, sys
d = sys.argv[1]
g = json.load(open(f"{d}/gen.json"))
rx = sum(json.load(open(f"{d}/rx{i}.json"))["packets"] for i in range(2))
s = json.load(open(f"{d}/sum.json"))
e = s["egress"]
t = g["seconds"]
print(f"generated {g['sent'] / t / 1e6:.2f} Mpps, received {rx / t / 1e6:.2f} Mpps ({rx} of {g['sent']}); "
      f"captured {s['packets']}, capture drops {s['capture_drops']}, user-space TX {e['delivered']}, "
      f"kernel {e['kernel_packets']} ({e['divert_installs']} flows)")
PY
}
for label in ${LABELS:-kernel afpacket afxdp}; do
    for i in $(seq "$RUNS"); do
        case $label in
        kernel) r=$(one) ;;
        afpacket) r=$(one --egress-kernel off --egress-tx afpacket) ;;
        afxdp) r=$(one --egress-kernel off --egress-tx afxdp) ;;
        esac
        echo "$label run $i: $r"
    done
done
