#!/usr/bin/env bash
# The bundled demo capture gives the flows it was made of (see
# tools/demo/make-demo-pcap.sh), identically with 0, 1 and 2 workers, and
# the JSON lines agree with tshark's independent count of the same capture.
set -u
WEIR=${WEIR_BIN:?}; DEMO=${WEIR_SOURCE_DIR:?}/tools/demo/demo.pcap
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
fail=0; pass=0
check() { if eval "$2"; then echo "ok: $1"; pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }

for w in 0 1 2; do
  "$WEIR" -i "$DEMO" -w $w --json "$TMP/w$w.json" -q --summary-json "$TMP/s$w.json" 2>/dev/null
  check "workers=$w exits 0" "[ $? -eq 0 ]"
  python3 - "$TMP/w$w.json" > "$TMP/w$w.txt" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    f = json.loads(line)
    src = f.get("IPV4_SRC_ADDR") or f.get("IPV6_SRC_ADDR"); dst = f.get("IPV4_DST_ADDR") or f.get("IPV6_DST_ADDR")
    rows.append(f'{f["PROTOCOL"]} {src}:{f["L4_SRC_PORT"]} {dst}:{f["L4_DST_PORT"]} {f["IN_PKTS"]}/{f["IN_BYTES"]} {f["OUT_PKTS"]}/{f["OUT_BYTES"]} {f["FIRST_SWITCHED"]} {f["LAST_SWITCHED"]}')
print("\n".join(sorted(rows)))
PY
done
check "workers 0 and 1 give the same flows" "cmp -s $TMP/w0.txt $TMP/w1.txt"
check "workers 0 and 2 give the same flows" "cmp -s $TMP/w0.txt $TMP/w2.txt"
check "HTTP over IPv4: 2 flows to 10.200.0.2:8080" "[ \$(grep -c ' 10.200.0.2:8080 ' $TMP/w0.txt) -eq 2 ]"
check "HTTP over IPv6: 1 flow to fd00:200::2:8080" "[ \$(grep -c ' fd00:200::2:8080 ' $TMP/w0.txt) -eq 1 ]"
check "refused connection to port 9 is a flow" "grep -q ' 10.200.0.2:9 ' $TMP/w0.txt"
check "UDP exchange: 3 packets each way" "grep -q '^17 10.200.0.1:[0-9]* 10.200.0.2:5353 3/' $TMP/w0.txt"

if command -v tshark >/dev/null; then
  # Independent oracle: tshark's count of IP packets and bytes equals the
  # sum over weir's flows (every IP packet of the demo lands in a flow).
  read -r tpk tby < <(tshark -r "$DEMO" -Y 'ip or ipv6' -T fields -e frame.len 2>/dev/null | awk '{n++; b+=$1} END {print n, b}')
  read -r wpk wby < <(python3 -c '
import json, sys
n = b = 0
for l in open(sys.argv[1]):
    f = json.loads(l); n += f["IN_PKTS"] + f["OUT_PKTS"]; b += f["IN_BYTES"] + f["OUT_BYTES"]
print(n, b)' "$TMP/w0.json")
  check "packets and bytes equal tshark's ($tpk/$tby vs weir $wpk/$wby)" "[ '$tpk $tby' = '$wpk $wby' ]"
else
  echo "SKIP: tshark missing, oracle comparison not run"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
