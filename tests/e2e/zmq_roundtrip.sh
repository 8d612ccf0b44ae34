#!/usr/bin/env bash
# weir -> ZMQ -> weir-collector on real captures, on 127.0.0.1 with free ports.
#
# For each capture and each mode (weir binds / weir connects with
# --zmq-probe-mode, plain / zlib), the flows weir-collector decodes must be
# exactly the flows of weir's own --json output for the same run: same
# endpoints, ports, protocol, and packets and bytes each way, as a multiset.
# Also checked: two endpoints balanced by flow hash (their union is every
# flow, each gets some), msg_id without gaps, event messages present, and
# that weir reports flows sent with no subscriber instead of losing them
# silently. Needs python3; exits 77 (skipped) without it or without the
# captures.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not installed"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_collector

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
CAPS=(1kxun.pcap http_ipv6.pcap icmp-tunnel.pcap dns.pcap android.pcap 6in4tunnel.pcap)
need_caps "$P" "${CAPS[@]}"

COLLECTOR_EXTRA=()
scratch_dir /tmp/weir-zmq-e2e.XXXXXX

# compare weir.json collector.json... : multisets of flow tuples must match.
compare() {
    python3 - "$@" <<'EOF'
import json, sys
from collections import Counter
def tup(d):
    v = 6 if "IPV6_SRC_ADDR" in d else 4
    return (v, d.get("IPV%d_SRC_ADDR" % v), d.get("IPV%d_DST_ADDR" % v), d.get("L4_SRC_PORT"), d.get("L4_DST_PORT"),
            d.get("PROTOCOL"), d.get("IN_PKTS"), d.get("IN_BYTES"), d.get("OUT_PKTS"), d.get("OUT_BYTES"))
def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
want = Counter(tup(d) for d in load(sys.argv[1]) if d["IN_PKTS"] + d["OUT_PKTS"] > 0)
got = Counter()
for p in sys.argv[2:]:
    rows = load(p)
    if len(sys.argv) > 3 and not rows:
        sys.exit("endpoint file %s got no flow: not balanced" % p)
    got.update(tup(d) for d in rows)
if want != got:
    print("missing:", list((want - got).items())[:5])
    print("extra:", list((got - want).items())[:5])
    sys.exit("flows differ: weir %d, collector %d" % (sum(want.values()), sum(got.values())))
print("  %d flows match" % sum(want.values()))
EOF
}

# check_stats stats.json: no bad message, no msg_id gap, events came.
check_stats() {
    python3 - "$1" <<'EOF' || return 1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["bad_messages"] == 0, s
for src in s["sources"]:
    assert src["msg_id_gaps"] == 0 and src["restarts"] == 0, src
    assert src["event_messages"] >= 1, src
EOF
}

start_collector() { # out-prefix endpoint... ; sets CPID
    local pre=$1; shift
    local args=()
    for e in "$@"; do args+=(-i "$e"); done
    "$COLLECTOR" "${args[@]}" --json "$pre.json" --stats "$pre.stats" --idle 0.5 --timeout 60 "${COLLECTOR_EXTRA[@]}" \
        </dev/null >/dev/null 2>"$pre.err" &
    CPID=$!
    PIDS+=($CPID)
}

run_case() { # capture mode(bind|probe) compress(0|1)
    local cap=$1 mode=$2 z=$3
    local port; port=$(free_port tcp)
    local tag="$TMP/${cap%.*}-$mode-$z"
    local zflag=(); [ "$z" = 1 ] && zflag=(--zmq-compress)
    local cpid
    if [ "$mode" = bind ]; then
        start_collector "$tag.col" "tcp://127.0.0.1:$port"; cpid=$CPID
        "$WEIR_BIN" -i "$P/$cap" -q --json "$tag.weir.json" --zmq "tcp://127.0.0.1:$port" "${zflag[@]}" \
            --zmq-wait-subscriber 10000 2>"$tag.weir.err" || fail "$cap $mode z=$z: weir exited $?: $(cat "$tag.weir.err")"
    else
        start_collector "$tag.col" "tcp://127.0.0.1:${port}c"; cpid=$CPID
        "$WEIR_BIN" -i "$P/$cap" -q --json "$tag.weir.json" --zmq "tcp://127.0.0.1:$port" --zmq-probe-mode \
            "${zflag[@]}" --zmq-wait-subscriber 10000 2>"$tag.weir.err" || fail "$cap $mode z=$z: weir exited $?"
    fi
    wait "$cpid" || fail "$cap $mode z=$z: collector exited $?: $(cat "$tag.col.err")"
    grep -q "0 dropped at HWM (0 flows), 0 without subscriber (0 flows), 0 send errors" "$tag.weir.err" \
        || fail "$cap $mode z=$z: weir reports losses: $(grep '^export zmq' "$tag.weir.err")"
    [ "$z" = 1 ] && { grep -q 'tlv+zlib' "$tag.weir.err" || fail "$cap: not compressed"; }
    echo "$cap mode=$mode zlib=$z"
    compare "$tag.weir.json" "$tag.col.json" || fail "$cap $mode z=$z"
    check_stats "$tag.col.stats" || fail "$cap $mode z=$z: collector stats $(cat "$tag.col.stats")"
}

for cap in "${CAPS[@]}"; do
    for mode in bind probe; do
        for z in 0 1; do
            run_case "$cap" "$mode" "$z"
        done
    done
done

# Two endpoints, flows spread by flow hash: each collector gets a share.
p1=$(free_port tcp); p2=$(free_port tcp)
start_collector "$TMP/two1" "tcp://127.0.0.1:$p1"; c1=$CPID
start_collector "$TMP/two2" "tcp://127.0.0.1:$p2"; c2=$CPID
"$WEIR_BIN" -i "$P/1kxun.pcap" -q --json "$TMP/two.weir.json" --zmq "tcp://127.0.0.1:$p1,tcp://127.0.0.1:$p2" \
    --zmq-wait-subscriber 10000 2>"$TMP/two.err" || fail "two endpoints: weir exited $?"
wait "$c1" && wait "$c2" || fail "two endpoints: collector failed"
grep -q 'by flow hash' "$TMP/two.err" || fail "two endpoints: not balanced by hash"
echo "1kxun.pcap two endpoints"
compare "$TMP/two.weir.json" "$TMP/two1.json" "$TMP/two2.json" || fail "two endpoints"
check_stats "$TMP/two1.stats" && check_stats "$TMP/two2.stats" || fail "two endpoints: stats"

# Nobody listening: every flow is reported as sent without a subscriber.
port=$(free_port tcp)
"$WEIR_BIN" -i "$P/dns.pcap" -q --json "$TMP/nosub.json" --zmq "tcp://127.0.0.1:$port" 2>"$TMP/nosub.err" \
    || fail "no subscriber: weir exited $?"
n=$(grep -c . "$TMP/nosub.json")
grep -q "without subscriber ($n flows)" "$TMP/nosub.err" \
    || fail "no subscriber: expected $n flows reported: $(grep '^export zmq' "$TMP/nosub.err")"
echo "no subscriber: $n flows reported"

# CURVE: the collector is the server (as ntopng --zmq-encryption), weir a
# client with the collector's public key; a client without it gets nothing through.
read -r pub sec < <("$COLLECTOR" --curve-keypair) || fail "curve: no key pair"
port=$(free_port tcp)
COLLECTOR_EXTRA=(--zmq-encryption-key-priv "$sec")
start_collector "$TMP/curve" "tcp://127.0.0.1:${port}c"; c1=$CPID
"$WEIR_BIN" -i "$P/android.pcap" -q --json "$TMP/curve.weir.json" --zmq "tcp://127.0.0.1:$port" --zmq-probe-mode \
    --zmq-compress --zmq-encryption-key "$pub" --zmq-wait-subscriber 10000 2>"$TMP/curve.err" \
    || fail "curve: weir exited $?"
wait "$c1" || fail "curve: collector failed"
grep -q ', curve' "$TMP/curve.err" || fail "curve: not encrypted"
echo "android.pcap CURVE"
compare "$TMP/curve.weir.json" "$TMP/curve.json" || fail "curve"
port=$(free_port tcp)
COLLECTOR_EXTRA=(--zmq-encryption-key-priv "$sec" --timeout 3)
start_collector "$TMP/nokey" "tcp://127.0.0.1:${port}c"; c1=$CPID
"$WEIR_BIN" -i "$P/dns.pcap" -q --zmq "tcp://127.0.0.1:$port" --zmq-probe-mode --zmq-wait-subscriber 1000 \
    2>"$TMP/nokey.err"
wait "$c1"
[ ! -s "$TMP/nokey.json" ] || fail "curve: a sender without the key got flows through"
grep -q "no flow subscriber" "$TMP/nokey.err" || fail "curve: weir did not warn that nobody subscribed"
echo "CURVE without key: nothing delivered"
COLLECTOR_EXTRA=()

echo "PASS"
