#!/usr/bin/env bash
# weir-collector as a NetFlow v5 / v9 / IPFIX collector, against nfdump.
#
#  1. softflowd exports real captures (v5, v9 and IPFIX) once to
#     weir-collector and once to nfcapd: weir-collector must show the same
#     records as nfdump (protocol, addresses, ports, packets, bytes, as a
#     multiset), the same flow/packet/byte totals as `nfdump -I`, and as many
#     sequence failures as nfdump counts (softflowd's IPFIX sequence numbers
#     are off; both collectors must notice the same places). It is stopped
#     by SIGTERM and must flush everything it has.
#  2. weir's own exporter (IPFIX over UDP and over TCP, NetFlow v9 IN/OUT)
#     -> weir-collector: its JSON must equal weir's own --json for the same
#     capture (endpoints, ports, protocol, packets and bytes each way).
#  3. Forwarding: weir -> IPFIX -> weir-collector --zmq-forward -> ZMQ -> a
#     second weir-collector: the second one gets exactly weir's flows.
# Needs root (net.core.rmem_max is raised to 32 MiB: nfcapd silently loses
# datagrams with the default), softflowd, nfcapd/nfdump and python3; exits
# 77 (skipped) when one is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

for t in softflowd nfcapd nfdump python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed (tools/ci/install-deps.sh installs it)"
done
[ "$(id -u)" -eq 0 ] || skip "needs root to raise net.core.rmem_max"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_collector

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
need_caps "$P" 1kxun.pcap android.pcap http_ipv6.pcap dns.pcap icmp-tunnel.pcap

scratch_dir /tmp/weir-coll-e2e.XXXXXX
raise_rmem

# nfdump.py NFDUMP_LINES NFDUMP_I COLLECTOR_JSON COLLECTOR_STATS
cat >"$TMP/nfdump.py" <<'PY'
import sys, json, collections, ipaddress
nf_f, info_f, col_f, stats_f = sys.argv[1:5]
def key(pr, sa, sp, da, dp, pkt, byt):
    pr = int(pr)
    if pr in (1, 58):
        sp = dp = 0  # nfdump shows type.code, weir's JSON ICMP_TYPE
    return (pr, str(ipaddress.ip_address(sa)), int(sp), str(ipaddress.ip_address(da)), int(dp), int(pkt), int(byt))
nf = collections.Counter()
for line in open(nf_f):
    f = [x.strip() for x in line.split('|')]
    if len(f) != 7:
        continue
    if '.' in f[4] and int(f[0]) in (1, 58):
        f[4] = '0'
    nf[key(*f)] += 1
col = collections.Counter()
for line in open(col_f):
    d = json.loads(line)
    v = 6 if 'IPV6_SRC_ADDR' in d else 4
    col[key(d['PROTOCOL'], d['IPV%d_SRC_ADDR' % v], d['L4_SRC_PORT'], d['IPV%d_DST_ADDR' % v], d['L4_DST_PORT'],
            d['IN_PKTS'], d['IN_BYTES'])] += 1
    assert d['OUT_PKTS'] == 0 and d['OUT_BYTES'] == 0, "one-way record became two-way: %s" % d
errors = []
if nf != col:
    m, x = nf - col, col - nf
    errors.append("records differ: %d only in nfdump, %d only in weir-collector" % (sum(m.values()), sum(x.values())))
    errors += ["  nfdump only " + str(k) for k in list(m)[:5]] + ["  weir only   " + str(k) for k in list(x)[:5]]
info = dict(l.strip().split(': ', 1) for l in open(info_f) if ': ' in l)
s = json.load(open(stats_f))['netflow']
ex = s['exporters']
gaps = sum(e['sequence_gaps'] + e['sequence_resets'] for e in ex)
checks = [('flows', s['flows'], int(info['Flows'])), ('packets', s['packets'], int(info['Packets'])),
          ('bytes', s['bytes'], int(info['Bytes'])), ('sequence failures', gaps, int(info['Sequence failures'])),
          ('malformed', sum(e['malformed'] for e in ex), 0), ('unknown template', sum(e['unknown_template'] for e in ex), 0),
          ('truncated', s['listener']['truncated'], 0)]
for what, got, want in checks:
    if got != want:
        errors.append("%s: weir-collector %d, nfdump %d" % (what, got, want))
print("  %d records, %s packets, %s bytes, %d sequence failures: same as nfdump" % (s['flows'], info['Packets'], info['Bytes'], gaps))
if errors:
    print('\n'.join(errors)); sys.exit(1)
PY

# weirjson.py WEIR_JSON COLLECTOR_JSON...: the same flows, as a multiset.
cat >"$TMP/weirjson.py" <<'PY'
import json, sys
from collections import Counter
def tup(d):
    v = 6 if "IPV6_SRC_ADDR" in d else 4
    return (v, d.get("IPV%d_SRC_ADDR" % v), d.get("IPV%d_DST_ADDR" % v), d.get("L4_SRC_PORT"), d.get("L4_DST_PORT"),
            d.get("PROTOCOL"), d.get("IN_PKTS"), d.get("IN_BYTES"), d.get("OUT_PKTS"), d.get("OUT_BYTES"))
def load(p):
    return [json.loads(l) for l in open(p) if l.strip()]
want = Counter(tup(d) for d in load(sys.argv[1]) if d["IN_PKTS"] + d["OUT_PKTS"] > 0)
got = Counter()
for p in sys.argv[2:]:
    got.update(tup(d) for d in load(p))
if want != got:
    print("  missing:", list((want - got).items())[:5])
    print("  extra:", list((got - want).items())[:5])
    sys.exit("flows differ: weir %d, weir-collector %d" % (sum(want.values()), sum(got.values())))
print("  %d flows match weir's JSON" % sum(want.values()))
PY

# 1. softflowd -> {weir-collector, nfcapd}
softflowd_case() { # version capture
    local v=$1 cap=$2 dir=$TMP/sf-$1-${2%.*} pc pn
    mkdir -p "$dir/nf"
    pc=$(free_port udp); pn=$(free_port udp)
    "$COLLECTOR" --netflow "udp://127.0.0.1:$pc" --json "$dir/col.json" --stats-json "$dir/col.stats" \
        --duration 120 </dev/null >/dev/null 2>"$dir/col.err" &
    local cp=$!; PIDS+=("$cp")
    nfcapd -B 16777216 -b 127.0.0.1 -p "$pn" -w "$dir/nf" >"$dir/nfcapd.log" 2>&1 &
    local np=$!; PIDS+=("$np")
    wait_for "$dir/col.err" "listening on" 10 || fail "weir-collector did not start: $(cat "$dir/col.err")"
    wait_for "$dir/nfcapd.log" "Startup" 10 || fail "nfcapd did not start: $(cat "$dir/nfcapd.log")"
    timeout 60 softflowd -r "$P/$cap" -n "127.0.0.1:$pc" -v "$v" -c none -m 2000000 >"$dir/sf1.log" 2>&1 \
        || fail "softflowd -v $v $cap: $(cat "$dir/sf1.log")"
    timeout 60 softflowd -r "$P/$cap" -n "127.0.0.1:$pn" -v "$v" -c none -m 2000000 >"$dir/sf2.log" 2>&1 \
        || fail "softflowd -v $v $cap: $(cat "$dir/sf2.log")"
    sleep 1
    kill -TERM "$cp" "$np"
    wait "$cp" || fail "v$v $cap: weir-collector exited $?: $(tail -5 "$dir/col.err")"
    wait "$np" 2>/dev/null
    nfdump -R "$dir/nf" -I >"$dir/nfdump-I.txt" 2>&1 || fail "nfdump -I failed"
    nfdump -R "$dir/nf" -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt' >"$dir/nfdump.txt" 2>&1 || fail "nfdump failed"
    echo "softflowd -v $v $cap"
    python3 "$TMP/nfdump.py" "$dir/nfdump.txt" "$dir/nfdump-I.txt" "$dir/col.json" "$dir/col.stats" \
        || fail "softflowd -v $v $cap (files in $dir)"
    [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["netflow"]["flows"])' "$dir/col.stats")" -gt 0 ] \
        || fail "softflowd -v $v $cap: no flow collected"
}

for v in 5 9 10; do
    softflowd_case "$v" 1kxun.pcap
    softflowd_case "$v" android.pcap
done
softflowd_case 9 http_ipv6.pcap
softflowd_case 10 http_ipv6.pcap

# 2. weir's exporter -> weir-collector == weir's JSON
weir_case() { # name capture collector-input weir-export-args...
    local name=$1 cap=$2 input=$3; shift 3
    local dir=$TMP/weir-$name-${cap%.*}
    mkdir -p "$dir"
    "$WEIR_BIN" -i "$P/$cap" -q --json "$dir/expect.json" 2>"$dir/expect.err" || fail "weir -i $cap: $(cat "$dir/expect.err")"
    local n
    n=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if (lambda d: d["IN_PKTS"]+d["OUT_PKTS"])(json.loads(l)) > 0))' "$dir/expect.json")
    "$COLLECTOR" $input --json "$dir/col.json" --stats-json "$dir/col.stats" --max-flows "$n" --duration 60 \
        </dev/null >/dev/null 2>"$dir/col.err" &
    local cp=$!; PIDS+=("$cp")
    wait_for "$dir/col.err" "listening on" 10 || fail "weir-collector did not start: $(cat "$dir/col.err")"
    "$WEIR_BIN" -i "$P/$cap" -q --json "$dir/weir.json" "$@" 2>"$dir/weir.err" || fail "$name $cap: weir: $(cat "$dir/weir.err")"
    wait "$cp" || fail "$name $cap: weir-collector exited $?: $(tail -5 "$dir/col.err")"
    echo "weir $* -> weir-collector ($cap)"
    python3 "$TMP/weirjson.py" "$dir/weir.json" "$dir/col.json" || fail "$name $cap (files in $dir)"
    python3 - "$dir/col.stats" <<'PY' || fail "$name $cap: collector statistics"
import json, sys
s = json.load(open(sys.argv[1]))["netflow"]
for e in s["exporters"]:
    assert e["sequence_gaps"] == 0 and e["sequence_resets"] == 0 and e["malformed"] == 0 and e["unknown_template"] == 0, e
PY
}

for cap in 1kxun.pcap http_ipv6.pcap icmp-tunnel.pcap dns.pcap; do
    pu=$(free_port udp)
    weir_case ipfix-udp "$cap" "--netflow udp://127.0.0.1:$pu" --ipfix "127.0.0.1:$pu"
done
pt=$(free_port tcp)
weir_case ipfix-tcp 1kxun.pcap "--ipfix-tcp tcp://127.0.0.1:$pt" --ipfix "tcp://127.0.0.1:$pt"
pt=$(free_port tcp)
weir_case ipfix-tcp6 http_ipv6.pcap "--ipfix-tcp tcp://[::1]:$pt" --ipfix "tcp://[::1]:$pt"
pu=$(free_port udp)
weir_case v9-inout 1kxun.pcap "--netflow udp://[::1]:$pu" --v9 "[::1]:$pu" --export-biflow inout
pu=$(free_port udp)
weir_case ipfix-inout android.pcap "--netflow udp://127.0.0.1:$pu" --ipfix "127.0.0.1:$pu" --export-biflow inout

# 3. weir -> IPFIX -> weir-collector --zmq-forward -> ZMQ -> weir-collector
dir=$TMP/forward
mkdir -p "$dir"
cap=1kxun.pcap
"$WEIR_BIN" -i "$P/$cap" -q --json "$dir/expect.json" 2>/dev/null || fail "weir -i $cap"
n=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if (lambda d: d["IN_PKTS"]+d["OUT_PKTS"])(json.loads(l)) > 0))' "$dir/expect.json")
pu=$(free_port udp); pz=$(free_port tcp)
"$COLLECTOR" --netflow "udp://127.0.0.1:$pu" --zmq-forward "tcp://127.0.0.1:$pz" --zmq-forward-wait 10000 \
    --json "$dir/a.json" --stats-json "$dir/a.stats" --max-flows "$n" --duration 60 </dev/null >/dev/null 2>"$dir/a.err" &
ap=$!; PIDS+=("$ap")
wait_for "$dir/a.err" "forwarding" 10 || fail "forwarder did not start: $(cat "$dir/a.err")"
"$COLLECTOR" -i "tcp://127.0.0.1:$pz" --json "$dir/b.json" --stats "$dir/b.stats" --idle 2 --duration 60 \
    </dev/null >/dev/null 2>"$dir/b.err" &
bp=$!; PIDS+=("$bp")
"$WEIR_BIN" -i "$P/$cap" -q --json "$dir/weir.json" --ipfix "127.0.0.1:$pu" 2>"$dir/weir.err" || fail "forward: weir failed"
wait "$ap" || fail "forward: forwarder exited $?: $(tail -5 "$dir/a.err")"
wait "$bp" || fail "forward: subscriber exited $?: $(tail -5 "$dir/b.err")"
echo "weir --ipfix -> weir-collector --zmq-forward -> weir-collector -i ($cap)"
python3 "$TMP/weirjson.py" "$dir/weir.json" "$dir/a.json" || fail "forward: the forwarder's own JSON"
python3 "$TMP/weirjson.py" "$dir/weir.json" "$dir/b.json" || fail "forward: flows received over ZMQ"
python3 - "$dir/a.stats" "$dir/b.stats" <<'PY' || fail "forward: statistics"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
f = a["forward"]
assert f["flows"] == a["netflow"]["flows"] and f["hwm_dropped_flows"] == 0 and f["no_subscriber_flows"] == 0, f
assert b["bad_messages"] == 0 and all(s["msg_id_gaps"] == 0 for s in b["sources"]), b
PY

echo "PASS: softflowd v5/v9/IPFIX as nfdump sees them; weir's IPFIX (UDP, TCP), v9 and IN/OUT as weir's JSON; ZMQ forwarding"
