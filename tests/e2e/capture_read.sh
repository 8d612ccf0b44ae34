#!/usr/bin/env bash
# weir --capture-only --capture-read on real captures: the EtherTypes it
# reads from every frame (after VLAN tags) must be tshark's, and the packet
# and byte counts those of the file. Needs tshark and python3; exits 77 when
# one is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

for t in tshark python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
need_caps "$P" bot.pcap dns.pcap 1kxun.pcap
scratch_dir /tmp/weir-capture-read.XXXXXX
rc=0
for c in bot.pcap dns.pcap 1kxun.pcap; do
    tshark -r "$P/$c" -T fields -e eth.type -e vlan.etype -e frame.len >"$TMP/tshark.txt" 2>/dev/null \
        || { echo "FAIL: tshark could not read $c"; rc=1; continue; }
    "$WEIR_BIN" -i "$P/$c" --capture-only --capture-read --summary-json "$TMP/sum.json" 2>"$TMP/err" \
        || { echo "FAIL: weir on $c: $(tail -1 "$TMP/err")"; rc=1; continue; }
    python3 - "$TMP/tshark.txt" "$TMP/sum.json" "$c" <<'PY' || rc=1
import json, sys
want = {"ipv4": 0, "ipv6": 0, "arp": 0, "other": 0}
packets = nbytes = 0
for line in open(sys.argv[1]):
    eth, vlan, ln = (line.rstrip("\n").split("\t") + ["", "", "0"])[:3]
    et = (vlan.split(",")[-1] if vlan else eth).lower()
    want[{"0x0800": "ipv4", "0x86dd": "ipv6", "0x0806": "arp"}.get(et, "other")] += 1
    packets += 1
    nbytes += int(ln)
got = json.load(open(sys.argv[2]))
print(f"{sys.argv[3]}: weir {got['ethertypes']} tshark {want}")
bad = []
if got["ethertypes"] != want: bad.append("EtherTypes differ")
if got["packets"] != packets or got["bytes"] != nbytes:
    bad.append(f"counts {got['packets']}/{got['bytes']} against {packets}/{nbytes}")
if bad:
    sys.exit(f"FAIL {sys.argv[3]}: " + "; ".join(bad))
PY
done
[ $rc -eq 0 ] && echo PASS
exit $rc
