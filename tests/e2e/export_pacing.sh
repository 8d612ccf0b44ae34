#!/usr/bin/env bash
# Export pacing (--export-rate) against nfcapd with a small socket buffer.
#
# Reading capture files, weir exports a whole file's flows at once. nfcapd
# runs with a 32 KiB receive buffer (-B, per socket: no sysctl changed).
# Unpaced, the burst overruns it (lost datagrams show as nfdump sequence
# failures and missing flows; printed, not required: it depends on how
# fast nfcapd gets the CPU). Paced at 1000 datagrams/s (bursts of 20), nfcapd must get
# every flow with zero sequence failures, and the export must take at
# least as long as the rate says.
# Needs nfcapd/nfdump and python3; exits 77 when one is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

for t in nfcapd nfdump python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_export_driver

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
[ -d "$P" ] || skip "captures $P missing"
# The 60 largest captures: about 5000 flows, 1000 datagrams.
CAPS=$(ls -S "$P"/*.pcap 2>/dev/null | head -60 | paste -sd, -)
[ -n "$CAPS" ] || skip "no capture in $P"

scratch_dir /tmp/weir-export-pacing.XXXXXX

# run RATE -> "flows sequence_failures records datagrams seconds paced_waits"
run() {
    local rate=$1 dir=$TMP/rate-$1 port
    mkdir -p "$dir/nf"
    port=$(free_port udp)
    nfcapd -b 127.0.0.1 -p "$port" -w "$dir/nf" -B 32768 -t 3600 >"$dir/nfcapd.log" 2>&1 &
    local nf=$!
    PIDS+=("$nf")
    # Wait for nfcapd's socket (a slow start would refuse the whole export).
    local i
    for i in $(seq 50); do
        ss -H -lun "sport = :$port" 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    ss -H -lun "sport = :$port" 2>/dev/null | grep -q . || fail "nfcapd did not bind port $port"
    local t0 t1
    t0=$(date +%s.%N)
    "$DRIVER" -i "$CAPS" --ipfix "127.0.0.1:$port" --export-rate "$rate" >"$dir/driver.out" 2>&1 \
        || fail "driver failed: $(cat "$dir/driver.out")"
    t1=$(date +%s.%N)
    sleep 1
    kill "$nf"
    wait "$nf" 2>/dev/null
    local flows seq
    flows=$(nfdump -R "$dir/nf" -I 2>/dev/null | awk '/^Flows:/ {print $2; exit}')
    seq=$(nfdump -R "$dir/nf" -I 2>/dev/null | awk '/^Sequence failures:/ {print $3; exit}')
    echo "${flows:-0} ${seq:-0} $(awk -F= '/^ipfix.records=/{r=$2} /^ipfix.datagrams=/{d=$2} /^ipfix.paced_waits=/{w=$2} END{print r, d}' "$dir/driver.out") $(echo "$t1 - $t0" | bc) $(awk -F= '/^ipfix.paced_waits=/{print $2}' "$dir/driver.out")"
}

read -r f0 s0 r0 d0 t0 w0 < <(run 0)
echo "unpaced: $r0 records in $d0 datagrams in ${t0}s; nfcapd got $f0 flows, $s0 sequence failures"
read -r f1 s1 r1 d1 t1 w1 < <(run 1000)
echo "paced 1000/s: $r1 records in $d1 datagrams in ${t1}s ($w1 waits); nfcapd got $f1 flows, $s1 sequence failures"
[ "$f0" -lt "$r0" ] || echo "note: the unpaced burst was not lost this time"
if [ "$f1" -ne "$r1" ]; then
    cat "$TMP/rate-1000/nfcapd.log"
    fail "paced: nfcapd got $f1 of $r1 flows"
fi
[ "$s1" -eq 0 ] || fail "paced: $s1 sequence failures"
# d datagrams at 1000/s after a first burst of 20 take at least (d-20)/1000 s.
python3 -c "import sys; d, t = $d1, $t1; need = (d - 20) / 1000; sys.exit(0 if t >= need else 1)" \
    || fail "paced export took ${t1}s, less than the rate allows"
echo "PASS"
