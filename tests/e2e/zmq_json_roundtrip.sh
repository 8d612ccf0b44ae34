#!/usr/bin/env bash
# weir --zmq-format json -> ZMQ -> weir-collector on real captures, on
# 127.0.0.1 with free ports, and the event messages of a quiet link.
#
# 1. JSON flow payloads, numeric keys and labels, with and without zlib, in
#    both connection modes, with and without DPI: the flows weir-collector
#    decodes must be exactly the flows of weir's own --json output for the
#    same run (every field both carry: endpoints, ports, protocol, packets
#    and bytes each way, times, TCP flags, ToS, MACs, VLAN, L7 protocol and
#    the DPI text fields, as a multiset); the
#    collector's statistics must show JSON flow messages only, no bad
#    message and no msg_id gap.
# 2. A quiet link: weir captures on lo (AF_PACKET, which only copies: XDP
#    on lo would take the loopback traffic away from everyone) with a
#    filter nothing matches for 3 s; no flow is exported, yet the collector
#    must count one event per second (3 to 5 over the run, the last one at
#    exit).
# Needs python3 and a weir with --zmq-format; exits 77 (skipped) otherwise.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not installed"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_collector
"$WEIR_BIN" --help 2>&1 | grep -q -- '--zmq-format' || skip "weir has no --zmq-format option"

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
CAPS=(1kxun.pcap http_ipv6.pcap dns.pcap android.pcap)
need_caps "$P" "${CAPS[@]}"

scratch_dir /tmp/weir-zmq-json-e2e.XXXXXX

compare() { # weir.json collector.json
    python3 - "$@" <<'PY'
import json, sys
from collections import Counter
def tup(d):
    # Every field both outputs carry, in the units and presence rules of
    # the ZMQ record: times in whole seconds, TCP flags for TCP only, MACs
    # and VLAN only when set, L7 fields only for a protocol DPI detected.
    v = 6 if "IPV6_SRC_ADDR" in d else 4
    tcp = d.get("PROTOCOL") == 6
    l7 = not d.get("L7_PROTO_GUESSED", False)
    mac = lambda k: None if d.get(k) in (None, "00:00:00:00:00:00") else d.get(k)
    macs = (mac("IN_SRC_MAC"), mac("OUT_DST_MAC"))
    if macs == (None, None):
        macs = None
    else:
        macs = tuple(m or "00:00:00:00:00:00" for m in macs)
    return (v, d.get("IPV%d_SRC_ADDR" % v), d.get("IPV%d_DST_ADDR" % v), d.get("L4_SRC_PORT"), d.get("L4_DST_PORT"),
            d.get("PROTOCOL"), d.get("IN_PKTS"), d.get("IN_BYTES"), d.get("OUT_PKTS"), d.get("OUT_BYTES"),
            d["FIRST_SWITCHED"] // 1000, d["LAST_SWITCHED"] // 1000,
            d.get("TCP_FLAGS") if tcp else None, d.get("CLIENT_TCP_FLAGS") if tcp else None,
            d.get("SERVER_TCP_FLAGS") if tcp else None, d.get("SRC_TOS"), d.get("DST_TOS"), macs,
            d.get("SRC_VLAN") or None,
            d.get("L7_PROTO") if l7 else None, d.get("L7_PROTO_NAME") if l7 else None,
            d.get("TLS_SERVER_NAME") if l7 else None, d.get("DNS_QUERY") if l7 else None,
            d.get("HTTP_HOST", d.get("HTTP_SITE")) if l7 else None, d.get("HTTP_URL") if l7 else None,
            d.get("HTTP_USER_AGENT") if l7 else None, d.get("JA4C_HASH") if l7 else None)
def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
want = Counter(tup(d) for d in load(sys.argv[1]) if d["IN_PKTS"] + d["OUT_PKTS"] > 0)
got = Counter(tup(d) for d in load(sys.argv[2]))
if not want:
    sys.exit("weir exported no flow")
if want != got:
    print("missing:", list((want - got).items())[:5])
    print("extra:", list((got - want).items())[:5])
    sys.exit("flows differ: weir %d, collector %d" % (sum(want.values()), sum(got.values())))
print("  %d flows match" % sum(want.values()))
PY
}

check_stats() { # stats.json: JSON flow messages only, nothing bad, no gap
    python3 - "$1" <<'PY' || return 1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["bad_messages"] == 0, s
assert s["flow_formats"]["json"] >= 1 and s["flow_formats"]["tlv"] == 0, s["flow_formats"]
for src in s["sources"]:
    assert src["msg_id_gaps"] == 0 and src["restarts"] == 0, src
    assert src["event_messages"] >= 1, src
PY
}

start_collector() { # out-prefix endpoint [extra args]; sets CPID
    local pre=$1 ep=$2; shift 2
    "$COLLECTOR" -i "$ep" --json "$pre.json" --stats "$pre.stats" "$@" </dev/null >/dev/null 2>"$pre.err" &
    CPID=$!
    PIDS+=($CPID)
}

run_case() { # capture mode(bind|probe) zlib(0|1) labels(0|1) [dpi level]
    local cap=$1 mode=$2 z=$3 labels=$4 dpi=${5:-0}
    local port; port=$(free_port tcp)
    local tag="$TMP/${cap%.*}-$mode-$z-$labels"
    local extra=(--zmq-format json)
    [ "$z" = 1 ] && extra+=(--zmq-compress)
    [ "$labels" = 1 ] && extra+=(--zmq-json-labels)
    local ep="tcp://127.0.0.1:$port" cep="tcp://127.0.0.1:$port"
    if [ "$mode" = probe ]; then cep="${ep}c"; extra+=(--zmq-probe-mode); fi
    start_collector "$tag.col" "$cep" --idle 0.5 --timeout 60
    local cpid=$CPID
    "$WEIR_BIN" -i "$P/$cap" -q -D "$dpi" --json "$tag.weir.json" --zmq "$ep" "${extra[@]}" --zmq-wait-subscriber 10000 \
        2>"$tag.weir.err" || fail "$cap $mode z=$z labels=$labels: weir exited $?: $(cat "$tag.weir.err")"
    wait "$cpid" || fail "$cap $mode z=$z labels=$labels: collector exited $?: $(cat "$tag.col.err")"
    grep -q "0 dropped at HWM (0 flows), 0 without subscriber (0 flows), 0 send errors" "$tag.weir.err" \
        || fail "$cap: weir reports losses: $(grep '^export zmq' "$tag.weir.err")"
    local want=json; [ "$labels" = 1 ] && want=json-labels; [ "$z" = 1 ] && want="$want+zlib"
    grep -qF ", $want, source_id" "$tag.weir.err" \
        || fail "$cap: weir did not say $want: $(grep '^export zmq' "$tag.weir.err")"
    echo "$cap mode=$mode zlib=$z labels=$labels dpi=$dpi"
    compare "$tag.weir.json" "$tag.col.json" || fail "$cap $mode z=$z labels=$labels"
    check_stats "$tag.col.stats" || fail "$cap $mode z=$z labels=$labels: collector stats $(cat "$tag.col.stats")"
}

for cap in "${CAPS[@]}"; do
    run_case "$cap" bind 0 0
    run_case "$cap" probe 1 0
    run_case "$cap" bind 1 1 1
done
run_case 1kxun.pcap probe 0 1

# Quiet link: nothing matches the filter on lo, so no flow and no packet
# clock; the events come from the exporter's timer.
port=$(free_port tcp)
start_collector "$TMP/quiet" "tcp://127.0.0.1:${port}c" --timeout 15 --idle 2 --events "$TMP/quiet.events"
qpid=$CPID
"$WEIR_BIN" -i afpacket:lo -B 'udp port 9 and host 192.0.2.1' -q --duration 3 --stats-interval 0 \
    --zmq "tcp://127.0.0.1:$port" --zmq-probe-mode 2>"$TMP/quiet.weir.err"
rc=$?
if [ $rc -ne 0 ]; then
    kill "$qpid" 2>/dev/null
    grep -qi "permission\|not permitted\|cannot open\|no such device\|not built\|unknown back-end" "$TMP/quiet.weir.err" \
        && skip "quiet link: AF_PACKET capture on lo unavailable: $(head -c 300 "$TMP/quiet.weir.err")"
    fail "quiet link: weir exited $rc: $(cat "$TMP/quiet.weir.err")"
fi
wait "$qpid" || fail "quiet link: collector exited $?: $(cat "$TMP/quiet.err")"
python3 - "$TMP/quiet.stats" "$TMP/quiet.events" <<'PY' || fail "quiet link: $(cat "$TMP/quiet.stats")"
import json, sys, time
s = json.load(open(sys.argv[1]))
ev = sum(src["event_messages"] for src in s["sources"])
fl = sum(src["flow_messages"] for src in s["sources"])
assert fl == 0, "flows on a quiet link: %d" % fl
assert 3 <= ev <= 5, "expected 3..5 events over 3 s, got %d" % ev
events = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert len(events) == ev
for e in events:
    assert abs(e["time"] - time.time()) < 30, e["time"]
    assert e["mode"] == "packet_collection" and e["iface"]["name"], e
print("  quiet link: %d events in 3 s, no flow" % ev)
PY
echo "PASS"
