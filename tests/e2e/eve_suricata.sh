#!/usr/bin/env bash
# The real Suricata in front of weir: suricata -r reads a real capture
# offline with one rule written here (an alert on every TCP SYN to port
# 443), its eve.json goes through weir-eve into a running weir (AF_XDP on a
# veth, verdict socket), and weirctl verdict list must show exactly the
# flows Suricata alerted on. Needs root, suricata, python3 and weir built
# with AF_XDP (exit 77 otherwise; Debian 12 mirrors without suricata skip
# here, the follower is still tested with a recorded eve.json in
# eve_verdicts.sh).
set -u
. "$(dirname "$0")/../support/e2e_lib.sh"
WEIR=${WEIR_BIN:?}; SHARED=${WEIR_SHARED_DIR:?}
BIN=$(dirname "$WEIR")
CTL="$BIN/weirctl/weirctl"; EVE="$BIN/weir-eve/weir-eve"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v suricata >/dev/null || { echo "SKIP: suricata is not installed (apt-get install suricata; not in every Debian 12 mirror)"; exit 77; }
for t in ip python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
[ -x "$CTL" ] && [ -x "$EVE" ] || { echo "SKIP: weirctl or weir-eve not built"; exit 77; }
CAP=$SHARED/pcaps/ndpi/pcap/netflix.pcap
[ -f "$CAP" ] || { echo "SKIP: $CAP missing"; exit 77; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

NS=wrdsns; OUT=wrdso; IN=wrdsi
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; ip link del $OUT 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
veth_to_ns $NS $OUT $IN || { echo "FAIL: cannot make the veth pair"; exit 1; }


cat > "$TMP/weir.rules" <<'EOF'
alert tcp any any -> any 443 (msg:"weir e2e: TLS connection attempt"; flags:S,12; flow:to_server; sid:2000001; rev:1;)
EOF
mkdir -p "$TMP/log"
# -k none: the capture's checksums are not recomputed by a NIC.
timeout 120 suricata -r "$CAP" -S "$TMP/weir.rules" -l "$TMP/log" -k none --runmode single \
    >"$TMP/suricata.out" 2>&1
check "suricata ran (rc $?)" "[ -s $TMP/log/eve.json ]"
[ -s "$TMP/log/eve.json" ] || { tail -20 "$TMP/suricata.out"; echo "$pass passed, $fail failed"; exit 1; }

cat > "$TMP/rules.json" <<'EOF'
{"rules": [{"name": "tls-attempt", "event_type": "alert", "sid": 2000001, "action": "drop", "reason": "{signature}"}]}
EOF
# What Suricata alerted on, as canonical flow names.
python3 - "$TMP/log/eve.json" > "$TMP/expect.txt" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event_type") == "alert" and e["alert"]["signature_id"] == 2000001:
        ends = sorted(["%s:%d" % (e["src_ip"], e["src_port"]), "%s:%d" % (e["dest_ip"], e["dest_port"])])
        seen.add("drop " + " ".join(ends))
for s in sorted(seen):
    print(s)
PY
check "suricata alerted on at least one flow ($(wc -l < $TMP/expect.txt))" "[ -s $TMP/expect.txt ]"

"$WEIR" -i "xdp:$OUT" --verdict-socket "$TMP/v.sock" -q --stats-interval 0 --duration 120 2>"$TMP/err" &
PID=$!
for _ in $(seq 100); do grep -q "capturing on" "$TMP/err" && [ -S "$TMP/v.sock" ] && break; sleep 0.1; done
check "weir captures with verdicts on" "grep -q 'verdicts on' $TMP/err"
"$EVE" --once --eve "$TMP/log/eve.json" --rules "$TMP/rules.json" --socket "$TMP/v.sock" 2>"$TMP/eve.err"
check "weir-eve --once exits 0" "[ $? -eq 0 ]"
"$CTL" verdict --socket "$TMP/v.sock" list | python3 -c '
import json, sys
for f in json.load(sys.stdin)["flows"]:
    fl = f["flow"]
    print(f["verdict"], " ".join(sorted(["%s:%d" % (fl["src"], fl["sport"]), "%s:%d" % (fl["dst"], fl["dport"])])))' \
    | sort > "$TMP/list.txt"
check "weirctl verdict list shows exactly the flows Suricata alerted on" "diff -u $TMP/expect.txt $TMP/list.txt"
kill -TERM $PID; wait $PID; rc=$?; PID=
check "weir exits 0" "[ $rc -eq 0 ]"
summary
