#!/usr/bin/env bash
# weir-gen from the command line, as benchmark scripts use it: a counting
# sink on one end of a veth pair, the generator in a namespace on the other,
# JSON out of both, and received == sent. Exit 77 (skip) without root or
# without a weir-gen build.
set -euo pipefail

GEN="$(dirname "${WEIR_BIN:?}")/weir-gen/weir-gen"
[[ -x "$GEN" ]] || { echo "skip: weir-gen not built"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "skip: needs root"; exit 77; }
command -v ip >/dev/null || { echo "skip: iproute2 missing"; exit 77; }

NS=wgens OUT=wgeo IN=wgei
TMP=$(mktemp -d)
SINK_PID=
cleanup() {
    [[ -n "$SINK_PID" ]] && kill -INT "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
    ip link del "$OUT" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip link del "$OUT" 2>/dev/null || true
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip link add "$OUT" type veth peer name "$IN"
ip link set "$IN" netns "$NS"
# No IPv6 on the pair: a link coming up sends neighbour discovery and MLD
# frames that the sink would count beside the generator's.
sysctl -qw "net.ipv6.conf.$OUT.disable_ipv6=1" 2>/dev/null || true
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$IN.disable_ipv6=1" 2>/dev/null || true
ip link set "$OUT" up
ip netns exec "$NS" ip link set "$IN" up
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# Errors are clear and non-zero.
if "$GEN" -i wgenosuch0 --count 1 --dry-run 2>"$TMP/err"; then
    echo "FAIL: nonexistent interface accepted"; exit 1
fi
grep -q "no such interface 'wgenosuch0'" "$TMP/err" || { echo "FAIL: message: $(cat "$TMP/err")"; exit 1; }

LIVE_REFUSED=
for mode in live afxdp; do
    "$GEN" --sink -i "$OUT" --duration 30 --json --count-flows --ready-file "$TMP/ready" >"$TMP/sink.json" &
    SINK_PID=$!
    for _ in $(seq 100); do [[ -f "$TMP/ready" ]] && break; sleep 0.1; done
    [[ -f "$TMP/ready" ]] || { echo "FAIL: sink did not attach"; exit 1; }
    rc=0
    ip netns exec "$NS" "$GEN" -i "$IN" --mode "$mode" --count 20000 --flows 100 --size 128 --json \
        >"$TMP/gen.json" 2>"$TMP/gen.err" || rc=$?
    kill -INT "$SINK_PID"; wait "$SINK_PID"; SINK_PID=
    rm -f "$TMP/ready"
    if [[ $rc -ne 0 ]]; then
        # Some kernels and sandboxes refuse BPF_PROG_RUN live frames even to root.
        if [[ $mode == live ]] && grep -q "BPF_PROG_RUN live frames.*Operation not permitted" "$TMP/gen.err"; then
            LIVE_REFUSED=$(cat "$TMP/gen.err"); continue
        fi
        echo "FAIL: weir-gen --mode $mode exited $rc: $(cat "$TMP/gen.err")"; exit 1
    fi
    python3 - "$TMP/gen.json" "$TMP/sink.json" "$mode" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
ok = g["sent"] == 20000 and s["packets"] == g["sent"] and s["bytes"] == 20000 * 128 \
    and s["flows"] == 100 and s["flow_min_packets"] == s["flow_max_packets"] == 200
print(sys.argv[3], "gen", g, "sink", s)
sys.exit(0 if ok else 1)
EOF
done
if [[ -n "$LIVE_REFUSED" ]]; then
    echo "skip: AF_XDP mode passed; live mode not run, the kernel refuses BPF_PROG_RUN live frames: $LIVE_REFUSED"
    exit 77
fi
echo "PASS"
