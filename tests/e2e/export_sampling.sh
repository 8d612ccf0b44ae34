#!/usr/bin/env bash
# Packet sampling (-S N) end to end, against real collectors.
#
# weir reads real captures with 1-in-10 sampling (systematic and random)
# and exports over UDP on loopback to nfcapd (nfdump 1.7) and pmacct's
# nfacctd (nfacctd_renormalize: true) at once, while tcpdump records the
# datagrams. Then, for NetFlow v5, v9 and IPFIX:
#  - weir's own accounting: the flows' packets equal the summary's decoded
#    packets, decoded + unsampled equals the keyed packets of an unsampled
#    run, and systematic sampling keeps exactly ceil(keyed / 10);
#  - nfacctd's renormalised totals equal 10 x weir's sampled counts (v5: the
#    IPv4 flows, the only ones v5 carries);
#  - nfdump's totals: v5 header sampling is applied (10 x); nfdump 1.7.1
#    (Debian 12) does not apply v9/IPFIX options sampling (its generic
#    sampler handling was fixed after the release, phaag/nfdump#410), so
#    there its totals are the sampled counts; any other version must scale;
#  - tshark decodes every datagram without a malformed field or expert
#    warning and shows the announced interval (v5 header; v9 34/35; IPFIX
#    304/305/306 or 309/310, and 34/35);
#  - --sampling-upscale: flows and collectors get 10 x the sampled counts,
#    and nothing announces sampling.
# And bad -S values are refused with exit code 2 and a clear message.
# Needs root (net.core.rmem_max, tcpdump on lo), nfcapd, nfdump, tshark,
# tcpdump, python3; nfacctd is checked when installed. Exit 77 = skipped.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"

# --- bad values: no collector needed -----------------------------------------
P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
[ -f "$P/dns.pcap" ] || skip "capture $P/dns.pcap missing"
bad() { # expected-message args...
    local want=$1 out rc
    shift
    out=$("$WEIR_BIN" -i "$P/dns.pcap" -q "$@" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] || fail "weir $* exited $rc, expected 2 ($out)"
    echo "$out" | grep -q -- "$want" || fail "weir $*: message '$out' lacks '$want'"
}
bad "expected a packet sampling rate N in 1..1000000000" -S 0
bad "expected a packet sampling rate N in 1..1000000000" -S abc
bad "expected a packet sampling rate N in 1..1000000000" -S 5000000000
bad "flow collection and export sampling are not supported" -S 10:2:1
bad "need -S N" --sampling-mode random
bad "need -S N" --sampling-upscale
bad "sampling-mode" -S 10 --sampling-mode sometimes
bad "up to 16383" -S 20000 --v5 127.0.0.1:9
echo "bad -S values refused"

for t in nfcapd nfdump tshark tcpdump python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed (tools/ci/install-deps.sh installs it)"
done
[ "$(id -u)" -eq 0 ] || skip "needs root to raise net.core.rmem_max and capture on lo"
need_caps "$P" 1kxun.pcap dns.pcap http_ipv6.pcap
CAPS=$CAP_LIST
N=10
# "nfdump: Version: NSEL-NEL1.7.1" (Debian 12): the number at the end.
NFDUMP_VER=$(nfdump -V 2>&1 | sed -n 's/.*Version: *[^0-9]*\([0-9][0-9.]*\).*/\1/p')
HAVE_NFACCTD=0
command -v nfacctd >/dev/null 2>&1 && HAVE_NFACCTD=1
[ "$HAVE_NFACCTD" -eq 1 ] || echo "NOTE: nfacctd (pmacct) not installed: renormalisation not checked"

scratch_dir /tmp/weir-sampling-e2e.XXXXXX
raise_rmem

# Keyed packets of an unsampled run (the population sampling draws from).
"$WEIR_BIN" -i "$CAPS" -q --summary-json "$TMP/full.json" 2>/dev/null || fail "unsampled run failed"
KEYED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decoded"])' "$TMP/full.json")
[ "$KEYED" -gt 1000 ] || fail "only $KEYED keyed packets in the captures"

# check.py DIR FORMAT MODE UPSCALE NFDUMP_VER
cat > "$TMP/check.py" <<'PY'
import csv, json, os, sys
d, fmt, mode, upscale, nfver = sys.argv[1:6]
N, keyed = int(sys.argv[6]), int(sys.argv[7])
upscale = upscale == '1'
errors = []
def expect(what, got, want):
    print("  %-44s %12d  (expected %d)" % (what, got, want))
    if got != want:
        errors.append("%s: %d, expected %d" % (what, got, want))
s = json.load(open(os.path.join(d, 'summary.json')))
fp = fb = fp4 = fb4 = 0
for line in open(os.path.join(d, 'flows.json')):
    r = json.loads(line)
    p, b = r['IN_PKTS'] + r['OUT_PKTS'], r['IN_BYTES'] + r['OUT_BYTES']
    fp += p; fb += b
    if r['IP_PROTOCOL_VERSION'] == 4:
        fp4 += p; fb4 += b
k = N if upscale else 1
# weir's own books: flows hold the sampled packets (x N when upscaled).
expect('flow packets = decoded x %d' % k, fp, s['decoded'] * k)
expect('decoded + unsampled = keyed', s['decoded'] + s['unsampled'], keyed)
if mode == 'systematic':
    expect('decoded = ceil(keyed / N)', s['decoded'], (keyed + N - 1) // N)
elif not (keyed // N <= s['decoded'] <= (keyed + N - 1) // N):
    errors.append('random: %d decoded, outside floor/ceil of %d/%d' % (s['decoded'], keyed, N))
sp, sb = (fp4, fb4) if fmt == 'v5' else (fp, fb)   # what the format carries
if upscale:
    sp, sb = sp // N, sb // N                       # the sampled counts
# nfdump
info = {}
for line in open(os.path.join(d, 'nfdump-I.txt')):
    if ':' in line:
        key, v = line.split(':', 1)
        info[key.strip()] = v.strip()
if upscale or fmt == 'v5' or nfver != '1.7.1':
    f_nf = N            # scaled by weir, or by nfdump from the announced interval
else:
    f_nf = 1            # nfdump 1.7.1 ignores v9/IPFIX options sampling
expect('nfdump packets (x%d)' % f_nf, int(info['Packets']), sp * f_nf)
expect('nfdump bytes (x%d)' % f_nf, int(info['Bytes']), sb * f_nf)
if fmt != 'ipfix':
    # IPFIX: nfdump counts options data records as sequence failures.
    expect('nfdump sequence failures', int(info['Sequence failures']), 0)
# nfacctd, renormalised
pm = os.path.join(d, 'nfacctd.csv')
if os.path.exists(pm):
    pp = pb = 0
    for r in csv.DictReader(open(pm)):
        pp += int(r['PACKETS']); pb += int(r['BYTES'])
    expect('nfacctd renormalised packets (x%d)' % N, pp, sp * N)
    expect('nfacctd renormalised bytes (x%d)' % N, pb, sb * N)
# tshark: the interval on the wire
vals = set()
for line in open(os.path.join(d, 'tshark.txt')):
    for v in line.strip().split('\t'):
        vals.update(x for x in v.split(',') if x)
if upscale:
    want = set()
elif fmt == 'v5':
    want = {'%d' % N}
elif fmt == 'v9':
    want = {'%d' % N}
else:
    want = {'%d' % N, '1', '%d' % (N - 1)} if mode == 'systematic' else {'%d' % N, '1'}
if upscale or fmt == 'v5':
    ok = vals == want
else:
    ok = want <= vals
print("  tshark sampling values: %s" % sorted(vals))
if not ok:
    errors.append('tshark sampling values %s, expected %s' % (sorted(vals), sorted(want)))
if errors:
    print('\n'.join(errors))
    sys.exit(1)
PY

run_case() { # format mode [upscale]
    local fmt=$1 mode=$2 upscale=${3:-0} port pport="" pp=""
    local dir=$TMP/$fmt-$mode-$upscale
    mkdir -p "$dir/nf"
    port=$(free_port udp)
    start_nfcapd_recorded "$dir" "$port"
    local tp=$TCPDUMP_PID np=$NFCAPD_PID
    local collectors="127.0.0.1:$port"
    if [ "$HAVE_NFACCTD" -eq 1 ]; then
        pport=$(free_port udp)
        cat >"$dir/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $pport
nfacctd_renormalize: true
plugins: print[out]
print_output[out]: csv
print_output_file[out]: $dir/nfacctd.csv
print_output_file_append[out]: true
print_refresh_time[out]: 1
aggregate[out]: proto, src_host, src_port, dst_host, dst_port
CONF
        nfacctd -f "$dir/nfacctd.conf" >"$dir/nfacctd.log" 2>&1 &
        pp=$!; PIDS+=("$pp")
        # nfacctd has no "ready" line before its first flow: wait for its socket.
        local i up=0
        for i in $(seq 1 100); do
            ss -uln 2>/dev/null | grep -q "127.0.0.1:$pport " && { up=1; break; }
            sleep 0.1
        done
        [ "$up" -eq 1 ] || fail "nfacctd did not bind 127.0.0.1:$pport: $(tail -3 "$dir/nfacctd.log")"
        # Its print plugin starts after the socket: data before it is lost.
        wait_for "$dir/nfacctd.log" "cache entries" 10 || fail "nfacctd plugin did not start: $(tail -3 "$dir/nfacctd.log")"
        collectors="$collectors,127.0.0.1:$pport"
    fi
    local extra=()
    [ "$upscale" -eq 1 ] && extra=(--sampling-upscale)
    # oneway: nfacctd keeps only the forward counters of a biflow record.
    "$WEIR_BIN" -i "$CAPS" -q -S "$N" --sampling-mode "$mode" "${extra[@]}" "--$fmt" "$collectors" --export-all \
        --export-biflow oneway --export-rate 3000 --json "$dir/flows.json" --summary-json "$dir/summary.json" \
        >"$dir/weir.out" 2>"$dir/weir.err" || fail "$fmt/$mode: weir failed: $(tail -3 "$dir/weir.err")"
    grep -q "0 send errors" "$dir/weir.err" || fail "$fmt/$mode: send errors: $(grep '^export' "$dir/weir.err")"
    sleep 1
    kill -TERM "$np"; wait "$np" 2>/dev/null
    if [ -n "$pp" ]; then
        # The print plugin writes (appends) its cache every second: wait
        # for a first write, then SIGINT purges what is left.
        wait_for "$dir/nfacctd.csv" "," 10
        sleep 1
        kill -INT "$pp"; wait "$pp" 2>/dev/null
        [ -s "$dir/nfacctd.csv" ] || fail "$fmt/$mode: nfacctd wrote nothing: $(tail -3 "$dir/nfacctd.log")"
    fi
    sleep 1.5
    kill -INT "$tp"; wait "$tp" 2>/dev/null
    nfdump -R "$dir/nf" -I >"$dir/nfdump-I.txt" 2>&1 || fail "$fmt/$mode: nfdump -I failed"
    local filter='_ws.malformed || _ws.expert.severity >= warning || !cflow' bad
    bad=$(tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -Y "$filter" 2>/dev/null | wc -l)
    [ "$bad" -eq 0 ] || { tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -Y "$filter" 2>/dev/null | head -5;
                          fail "$fmt/$mode: tshark flags $bad datagrams"; }
    tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -T fields -E occurrence=a -E aggregator=, \
        -e cflow.samplerate -e cflow.sampling_interval -e cflow.sampling_packet_interval \
        -e cflow.sampling_packet_space -e cflow.sampling_size -e cflow.sampling_population \
        >"$dir/tshark.txt" 2>/dev/null
    echo "$fmt $mode$([ "$upscale" -eq 1 ] && echo ' upscale'):"
    python3 "$TMP/check.py" "$dir" "$fmt" "$mode" "$upscale" "$NFDUMP_VER" "$N" "$KEYED" \
        || fail "$fmt/$mode: see above (files in $dir)"
}

run_case v5 systematic
run_case v5 random
run_case v9 systematic
run_case v9 random
run_case ipfix systematic
run_case ipfix random
run_case v9 systematic 1
echo "PASS: -S $N exported truthfully in v5, v9 and IPFIX (nfdump $NFDUMP_VER$([ "$HAVE_NFACCTD" -eq 1 ] && echo ', nfacctd renormalised'), tshark)"
