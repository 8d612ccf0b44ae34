#!/usr/bin/env bash
# IDS verdicts end to end through the weir binary: weir captures a veth with
# AF_XDP and a verdict socket; weirctl installs DROP for one TCP flow and
# SHUNT after 3 packets for another; a real capture is replayed into the
# veth. The dropped flow never reaches weir's flow table, the shunted flow
# reaches it with exactly 3 packets, every other flow arrives whole, and
# the verdict map counted every packet of both flows (weirctl verdict list).
# Needs root, tcpreplay, and weir built with AF_XDP (exit 77 otherwise).
set -u
WEIR=${WEIR_BIN:?}; SHARED=${WEIR_SHARED_DIR:?}
CTL="$(dirname "$WEIR")/weirctl/weirctl"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in ip tcpreplay python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
[ -x "$CTL" ] || { echo "SKIP: weirctl not built"; exit 77; }
CAP=$SHARED/pcaps/ndpi/pcap/netflix.pcap
[ -f "$CAP" ] || { echo "SKIP: $CAP missing"; exit 77; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

NS=wvens; OUT=wveo; IN=wvei
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; ip link del $OUT 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
ip link del $OUT 2>/dev/null; ip netns del $NS 2>/dev/null
ip netns add $NS
ip link add $OUT type veth peer name $IN
ip link set $IN netns $NS
sysctl -qw net.ipv6.conf.$OUT.disable_ipv6=1
ip netns exec $NS sysctl -qw net.ipv6.conf.$IN.disable_ipv6=1
ip link set $OUT up; ip netns exec $NS ip link set $IN up

fail=0; pass=0
check() { if eval "$2"; then echo "ok: $1"; pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }

# The file's flows; the two TCP flows with the most packets get verdicts.
"$WEIR" -i "$CAP" --json "$TMP/exp.json" -q -d 86400 -t 86400 2>/dev/null
python3 - "$TMP/exp.json" > "$TMP/pick.txt" <<'PY'
import json, sys
fl = [json.loads(l) for l in open(sys.argv[1])]
tcp = sorted((f for f in fl if f["PROTOCOL"] == 6), key=lambda f: -(f["IN_PKTS"] + f["OUT_PKTS"]))
for f in tcp[:2]:
    print(f["IPV4_SRC_ADDR"], f["IPV4_DST_ADDR"], f["L4_SRC_PORT"], f["L4_DST_PORT"], f["IN_PKTS"] + f["OUT_PKTS"])
PY
read -r D_SRC D_DST D_SP D_DP D_PKTS < <(sed -n 1p "$TMP/pick.txt")
read -r S_SRC S_DST S_SP S_DP S_PKTS < <(sed -n 2p "$TMP/pick.txt")
echo "drop $D_SRC:$D_SP-$D_DST:$D_DP ($D_PKTS packets), shunt after 3 $S_SRC:$S_SP-$S_DST:$S_DP ($S_PKTS packets)"

"$WEIR" -i "xdp:$OUT" --xdp-ring-size 8192 --xdp-umem-frames 16384 --verdict-socket "$TMP/v.sock" \
        --json "$TMP/got.json" -q -d 86400 -t 86400 --stats-interval 0 --duration 60 2>"$TMP/err" &
PID=$!
for _ in $(seq 100); do grep -q "capturing on" "$TMP/err" && [ -S "$TMP/v.sock" ] && break; sleep 0.1; done
check "weir captures with verdicts on" "grep -q 'verdicts on' $TMP/err"
"$CTL" verdict --socket "$TMP/v.sock" add --src $D_SRC --dst $D_DST --sport $D_SP --dport $D_DP --proto tcp --verdict drop --reason test >/dev/null
check "drop verdict installed" "[ $? -eq 0 ]"
"$CTL" verdict --socket "$TMP/v.sock" add --src $S_DST --dst $S_SRC --sport $S_DP --dport $S_SP --proto tcp --verdict shunt --after 3 >/dev/null
check "shunt verdict installed (endpoints given the other way round)" "[ $? -eq 0 ]"
"$CTL" verdict --socket "$TMP/v.sock" raw '{"op":"add","flow":{"src":"1.2.3.4"}}' > "$TMP/bad.txt" 2>&1
check "a malformed request gets an error reply" "grep -q '\"ok\":false' $TMP/bad.txt"

ip netns exec $NS tcpreplay -q -i $IN --pps 20000 "$CAP" >/dev/null 2>&1
sleep 1
"$CTL" verdict --socket "$TMP/v.sock" list > "$TMP/list.json"
kill -TERM $PID; wait $PID; rc=$?; PID=
check "weir exits 0" "[ $rc -eq 0 ]"

python3 - "$TMP/exp.json" "$TMP/got.json" "$TMP/list.json" "$D_SP" "$S_SP" "$D_PKTS" "$S_PKTS" <<'PY'
import json, sys
exp = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
lst = json.load(open(sys.argv[3]))
dsp, ssp, dpk, spk = map(int, sys.argv[4:8])
def key(f):
    a = sorted([(f.get("IPV4_SRC_ADDR") or f.get("IPV6_SRC_ADDR"), f["L4_SRC_PORT"]), (f.get("IPV4_DST_ADDR") or f.get("IPV6_DST_ADDR"), f["L4_DST_PORT"])])
    return (f["PROTOCOL"], *a)
def agg(fl):
    d = {}
    for f in fl:
        k = key(f); p = d.get(k, 0); d[k] = p + f["IN_PKTS"] + f["OUT_PKTS"]
    return d
e, g = agg(exp), agg(got)
bad = 0
def ok(cond, what):
    global bad
    print(("ok: " if cond else "FAIL: ") + what)
    bad += 0 if cond else 1
dk = [k for k in e if k[0] == 6 and dsp in (k[1][1], k[2][1])][0]
sk = [k for k in e if k[0] == 6 and ssp in (k[1][1], k[2][1])][0]
ok(dk not in g, f"dropped flow never reached the flow table (got {g.get(dk)})")
ok(g.get(sk) == 3, f"shunted flow reached it with exactly 3 packets (got {g.get(sk)})")
others = {k: v for k, v in e.items() if k not in (dk, sk)}
ok(all(g.get(k) == v for k, v in others.items()), f"the other {len(others)} flows arrived whole")
by = {f["verdict"]: f for f in lst["flows"]}
ok(by["drop"]["packets"] == dpk and by["drop"]["bypassed"] == dpk, f"map counted every dropped packet ({by['drop']['packets']}/{dpk})")
ok(by["shunt"]["packets"] == spk and by["shunt"]["bypassed"] == spk - 3, f"map counted the shunted flow ({by['shunt']['packets']}/{spk}, bypassed {by['shunt']['bypassed']})")
sys.exit(1 if bad else 0)
PY
check "flows and verdict counters" "[ $? -eq 0 ]"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
