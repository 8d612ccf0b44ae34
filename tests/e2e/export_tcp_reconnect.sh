#!/usr/bin/env bash
# IPFIX over TCP when the collector restarts: the exporter must notice the
# broken stream, reconnect (with backoff) once the collector is back, and
# start the new session with templates and sequence number 0, so the new
# collector decodes every message it gets; what could not be sent meanwhile
# is counted (not_sent_records, and notSentFlowTotalCount in the options
# record).
#
# The export driver exports slowly (one flow per 20 ms) to weir-collector on
# tcp://127.0.0.1:PORT; the collector is killed after 1.5 s and a new one
# started on the same port 1 s later. The first collector ends gracefully
# (FIN, then it reads until the exporter closes its half), so every record is
# either decoded by one of the collectors or counted as not sent: none may be
# lost unseen.
# Needs python3; exits 77 when it, the driver or weir-collector is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

command -v python3 >/dev/null 2>&1 || skip "python3 not installed"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_export_driver
need_collector

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
need_caps "$P" 1kxun.pcap http_ipv6.pcap dns.pcap android.pcap
CAPS=$CAP_LIST

scratch_dir /tmp/weir-export-tcp.XXXXXX

port=$(free_port tcp)

"$COLLECTOR" --ipfix-tcp "tcp://127.0.0.1:$port" --stats "$TMP/stats1.json" --timeout 60 >"$TMP/col1.log" 2>&1 &
COL1=$!
PIDS+=("$COL1")
sleep 0.5
"$DRIVER" -i "$CAPS" -D 1 --export-options --ipfix "tcp://127.0.0.1:$port" --flow-delay-us 20000 >"$TMP/driver.out" 2>&1 &
DRV=$!
PIDS+=("$DRV")
sleep 1.5
# SIGTERM: weir-collector closes its half of the stream, reads until the
# exporter closes its own, writes its statistics and exits.
kill "$COL1"
wait "$COL1"
sleep 1
"$COLLECTOR" --ipfix-tcp "tcp://127.0.0.1:$port" --stats "$TMP/stats2.json" --idle 3 --timeout 60 \
    >"$TMP/col2.log" 2>&1 &
COL2=$!
PIDS+=("$COL2")
wait "$DRV" || fail "driver failed: $(cat "$TMP/driver.out")"
# The driver's stream closes at exit: the collector's idle timer ends it.
wait "$COL2" || fail "second weir-collector failed: $(tail -3 "$TMP/col2.log")"

python3 - "$TMP/driver.out" "$TMP/stats1.json" "$TMP/stats2.json" <<'EOF'
import json, sys
drv = dict(l.strip().split('=', 1) for l in open(sys.argv[1]) if '=' in l)
def exp(path):
    ex = json.load(open(path))['netflow']['exporters']
    return ex
s1, s2 = exp(sys.argv[2]), exp(sys.argv[3])
l1 = json.load(open(sys.argv[2]))['netflow']['listener']
f1 = sum(e['flows'] for e in s1)
f2 = sum(e['flows'] for e in s2)
sent = int(drv['ipfix.records'])
lost = int(drv['ipfix.not_sent_records'])
print(f'sent {sent} records: first collector {f1} flows, second {f2}, counted not sent {lost}; '
      f'disconnects {drv["ipfix.disconnects"]}, reconnects {drv["ipfix.reconnects"]}')
bad = []
if int(drv['ipfix.reconnects']) != 1: bad.append('expected one reconnect')
if int(drv['ipfix.disconnects']) != 1: bad.append('expected one disconnect')
if f1 == 0 or f2 == 0: bad.append('a collector decoded nothing')
if lost == 0: bad.append('nothing counted as not sent while the collector was away')
for e in s2:
    if e['unknown_template'] or e['malformed'] or e['sequence_gaps'] or e['sequence_resets']:
        bad.append(f'second session not clean: {e}')
    if e['options_records'] == 0: bad.append('no options record in the second session')
if l1['tcp_abandoned'] != 0: bad.append('the exporter did not close its half after the FIN')
if l1['tcp_closed'] != 1: bad.append(f"first collector saw {l1['tcp_closed']} streams closed by the exporter")
# Every record is either decoded or counted as not sent.
unseen = sent - f1 - f2 - lost
if unseen != 0: bad.append(f'{unseen} records neither decoded nor counted')
if bad:
    sys.exit('FAIL: ' + '; '.join(bad))
EOF
[ $? -eq 0 ] || exit 1
echo "PASS"
