#!/usr/bin/env bash
# ntop L7 fields and options records in NetFlow v9 / IPFIX, read back by
# weir-collector and tshark, and a collector that starts after the exporter.
#
#  1. For v9 and IPFIX: the export driver runs weir's engine with DPI (-D 1)
#     over real captures and exports to weir-collector on loopback while
#     tcpdump records the datagrams. weir-collector must decode every flow
#     (no malformed set, no unknown template, no sequence gap), read the
#     options records the exporter counted, and show as many flows with
#     L7_PROTO as the exporter sent with L7 fields. tshark must decode the
#     capture with no malformed packet and show the ntop fields.
#  2. Late collector: the driver exports slowly (one flow per 20 ms, export
#     time moving 100 ms per flow, templates every 1 s of export time and
#     never by count); weir-collector starts 1.5 s later. It must count the
#     data it could not read (unknown template) and decode the rest after
#     the next refresh, without a malformed message.
# Needs python3, tcpdump and tshark (root for tcpdump on lo); exits 77 when
# one is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

for t in tshark tcpdump python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
[ "$(id -u)" -eq 0 ] || skip "needs root to capture on lo"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_export_driver
need_collector

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
need_caps "$P" 1kxun.pcap http_ipv6.pcap dns.pcap android.pcap
CAPS=$CAP_LIST

scratch_dir /tmp/weir-export-l7.XXXXXX

# check DRIVER_OUT STATS_JSON FLOWS_JSON FORMAT [late]
check() {
    python3 - "$@" <<'EOF'
import json, sys
drv_path, stats_path, flows_path, name = sys.argv[1:5]
late = len(sys.argv) > 5
drv = dict(l.strip().split('=', 1) for l in open(drv_path) if '=' in l)
st = json.load(open(stats_path))['netflow']
ex = st['exporters']
if len(ex) != 1:
    sys.exit(f'FAIL: {len(ex)} exporters seen, expected 1')
e = ex[0]
flows = [json.loads(l) for l in open(flows_path) if l.strip()]
l7 = sum(1 for f in flows if 'L7_PROTO' in f)
sent = int(drv[name + '.records'])
print(f'{name}: sent {sent} records ({drv[name + ".l7_records"]} with L7, {drv[name + ".options_records"]} options '
      f'records); collector: {e["flows"]} flows ({l7} with L7), {e["options_records"]} options records, '
      f'{e["options_templates"]} options templates, {e["unknown_template"]} unknown template, '
      f'{e["malformed"]} malformed, {e["sequence_gaps"]} gaps')
bad = []
if e['malformed']: bad.append('malformed')
if e['sequence_gaps'] or e['sequence_resets']: bad.append('sequence gaps/resets')
if not late:
    if int(drv[name + '.send_errors']): bad.append('send errors')
    if e['flows'] != sent: bad.append(f'flows {e["flows"]} != sent {sent}')
    if l7 != int(drv[name + '.l7_records']): bad.append(f'L7 flows {l7} != sent {drv[name + ".l7_records"]}')
    if e['options_records'] != int(drv[name + '.options_records']): bad.append('options records')
    if e['unknown_template']: bad.append('unknown template')
    if int(drv[name + '.l7_records']) == 0: bad.append('no L7 record sent')
else:
    if e['unknown_template'] == 0: bad.append('collector started late but saw no data before a template')
    if e['flows'] == 0: bad.append('nothing decoded after the refresh')
    if e['flows'] >= sent: bad.append('decoded everything: the collector was not late')
    if l7 == 0: bad.append('no L7 flow decoded')
if bad:
    sys.exit('FAIL: ' + ', '.join(bad))
EOF
}

for fmt in v9 ipfix; do
    port=$(free_port udp)
    dir=$TMP/$fmt
    mkdir -p "$dir"
    tcpdump -i lo -n -U -w "$dir/export.pcap" "udp and port $port" >"$dir/tcpdump.log" 2>&1 &
    TCPDUMP=$!
    PIDS+=("$TCPDUMP")
    "$COLLECTOR" --netflow "udp://127.0.0.1:$port" --json "$dir/flows.json" --stats "$dir/stats.json" \
        --idle 2 --timeout 60 >"$dir/collector.log" 2>&1 &
    COL=$!
    PIDS+=("$COL")
    sleep 1
    "$DRIVER" -i "$CAPS" -D 1 --export-options "--$fmt" "127.0.0.1:$port" --template-refresh-packets 10 >"$dir/driver.out" 2>&1 \
        || fail "$fmt: driver failed: $(cat "$dir/driver.out")"
    wait "$COL" || fail "$fmt: weir-collector failed: $(tail -3 "$dir/collector.log")"
    sleep 0.5
    kill "$TCPDUMP" 2>/dev/null
    wait "$TCPDUMP" 2>/dev/null
    name=$([ "$fmt" = v9 ] && echo netflow-v9 || echo ipfix)
    check "$dir/driver.out" "$dir/stats.json" "$dir/flows.json" "$name" || exit 1

    tshark -n -r "$dir/export.pcap" -d "udp.port==$port,cflow" -V >"$dir/tshark.txt" 2>&1 \
        || fail "$fmt: tshark failed: $(tail -3 "$dir/tshark.txt")"
    if grep -qiE "malformed|Expert Info \(Warn" "$dir/tshark.txt"; then
        grep -iE -m5 -B5 "malformed|Expert Info \(Warn" "$dir/tshark.txt"
        fail "$fmt: tshark reports a malformed packet"
    fi
    grep -q "Layer 7 protocol name: " "$dir/tshark.txt" || fail "$fmt: tshark shows no L7_PROTO_NAME"
    grep -q "Not Sent Flows: " "$dir/tshark.txt" || fail "$fmt: tshark shows no options record"
    echo "$fmt: tshark decoded $(grep -c '^Frame ' "$dir/tshark.txt") datagrams, no malformed"
done

# --- 2. a collector started after the exporter -------------------------------
port=$(free_port udp)
dir=$TMP/late
mkdir -p "$dir"
"$DRIVER" -i "$CAPS" -D 1 --export-options --ipfix "127.0.0.1:$port" --template-refresh-packets 0 --template-refresh-seconds 1 \
    --flow-delay-us 20000 --flow-tick-ms 100 >"$dir/driver.out" 2>&1 &
DRV=$!
PIDS+=("$DRV")
sleep 1.5
"$COLLECTOR" --netflow "udp://127.0.0.1:$port" --json "$dir/flows.json" --stats "$dir/stats.json" \
    --idle 3 --timeout 60 >"$dir/collector.log" 2>&1 &
COL=$!
PIDS+=("$COL")
wait "$DRV" || fail "late: driver failed: $(cat "$dir/driver.out")"
wait "$COL" || fail "late: weir-collector failed: $(tail -3 "$dir/collector.log")"
check "$dir/driver.out" "$dir/stats.json" "$dir/flows.json" ipfix late || exit 1
echo "PASS"
