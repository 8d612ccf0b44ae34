#!/usr/bin/env bash
# weir's NetFlow v5, NetFlow v9 and IPFIX exporters against real collectors.
#
# For each format (and each biflow mode of v9/IPFIX), a driver runs weir's
# engine over real captures and exports every flow over UDP on loopback to
# nfcapd (nfdump 1.7) started here on a random free port, while tcpdump
# records the datagrams. Then:
#  - nfdump must show exactly the records the driver says it sent (same
#    protocol, addresses, ports, packets and bytes, in and out), with the
#    same totals and zero sequence failures;
#  - tshark must decode every datagram as NetFlow/IPFIX with no malformed
#    field or expert warning, and its packet/byte sums must match;
#  - the exporter must report zero send errors;
#  - when pmacct's nfacctd is installed, the driver sends every flow to it
#    too (--export-all, a second stream) and nfacctd's per-5-tuple packet
#    and byte sums must match the forward counters sent (nfacctd ignores
#    RFC 5103 reverse and post* counters).
# Needs root (to raise net.core.rmem_max: nfcapd silently loses a burst
# with the default 4 MiB), nfdump, tshark, tcpdump and python3; exits 77
# (skipped) when one is missing.
set -u

. "$(dirname "$0")/../support/collector_lib.sh"

for t in nfcapd nfdump tshark tcpdump python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed (tools/ci/install-deps.sh installs it)"
done
[ "$(id -u)" -eq 0 ] || skip "needs root to raise net.core.rmem_max and capture on lo"
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
need_export_driver

P=$WEIR_SHARED_DIR/pcaps/ndpi/pcap
need_caps "$P" 1kxun.pcap icmp-tunnel.pcap http_ipv6.pcap android.pcap dns.pcap
CAPS=$CAP_LIST

scratch_dir /tmp/weir-nf-e2e.XXXXXX
raise_rmem

HAVE_NFACCTD=0
command -v nfacctd >/dev/null 2>&1 && HAVE_NFACCTD=1
[ "$HAVE_NFACCTD" -eq 1 ] || echo "NOTE: nfacctd (pmacct) not installed: second collector not checked"

# compare.py EXPECT NFDUMP_LINES NFDUMP_I DRIVER_OUT TSHARK_FIELDS FORMAT STREAMS [NFACCTD_CSV]
cat > "$TMP/compare.py" <<'PY'
import sys, collections, csv, socket
exp_f, got_f, info_f, drv_f, tsh_f, fmt, streams = sys.argv[1:8]
streams = int(streams)
pm_f = sys.argv[8] if len(sys.argv) > 8 else None
errors = []
def icmp_port(s):
    if '.' in s:
        t, c = s.split('.')
        return str(int(t) * 256 + int(c))
    return s
exp = collections.Counter()
tot = [0, 0]
for line in open(exp_f):
    f = line.strip().split('|')
    exp[tuple(f[1:])] += 1
    tot[0] += int(f[6]) + int(f[8]); tot[1] += int(f[7]) + int(f[9])
got = collections.Counter()
for line in open(got_f):
    f = [x.strip() for x in line.split('|')]
    if len(f) < 9:
        continue
    if f[0] in ('1', '58'):
        f[4] = icmp_port(f[4])
    got[tuple(f[:9])] += 1
missing = exp - got
extra = got - exp
if missing or extra:
    errors.append("collector flows differ from those sent: %d missing, %d unexpected" % (sum(missing.values()), sum(extra.values())))
    for k in list(missing)[:5]: errors.append("  missing    " + '|'.join(k))
    for k in list(extra)[:5]: errors.append("  unexpected " + '|'.join(k))
info = dict(l.strip().split(': ', 1) for l in open(info_f) if ': ' in l)
drv = dict(l.strip().split('=', 1) for l in open(drv_f) if '=' in l)
name = {'v5': 'netflow-v5', 'v9': 'netflow-v9', 'ipfix': 'ipfix'}[fmt]
recs = sum(exp.values())
checks = [
    ('nfdump Flows', int(info['Flows']), recs),
    ('nfdump Packets', int(info['Packets']), tot[0]),
    ('nfdump Bytes', int(info['Bytes']), tot[1]),
    ('nfdump Sequence failures', int(info['Sequence failures']), 0),
    ('exporter records', int(drv[name + '.records']), recs * streams),
    ('exporter packets', int(drv[name + '.packets_total']), tot[0] * streams),
    ('exporter bytes', int(drv[name + '.bytes_total']), tot[1] * streams),
    ('exporter send errors', int(drv[name + '.send_errors']), 0),
]
# tshark: one line per datagram: octets, packets, post octets, post packets, malformed/expert
frames = 0; tp = 0; tb = 0
for line in open(tsh_f):
    cols = line.rstrip('\n').split('\t')
    frames += 1
    nums = lambda s: [int(x) for x in s.split(',') if x]
    tb += sum(nums(cols[0])) + sum(nums(cols[2]))
    tp += sum(nums(cols[1])) + sum(nums(cols[3]))
checks += [
    ('tshark datagrams', frames * streams, int(drv[name + '.datagrams'])),
    ('tshark packets', tp, tot[0]),
    ('tshark bytes', tb, tot[1]),
]
if pm_f:
    # nfacctd aggregates by 5-tuple, shows ICMP without ports, and keeps
    # only the forward counters of a biflow record.
    def proto_num(p):
        try:
            return int(p)
        except ValueError:
            return socket.getprotobyname(p)
    want = collections.Counter(); have = collections.Counter()
    for line in open(exp_f):
        f = line.strip().split('|')
        pr = int(f[1]); icmp = pr in (1, 58)
        k = (pr, f[2], '0' if icmp else f[3], f[4], '0' if icmp else f[5])
        want[k + ('p',)] += int(f[6]); want[k + ('b',)] += int(f[7])
    for row in csv.DictReader(open(pm_f)):
        if row.get('SRC_IP') in (None, 'SRC_IP'):
            continue
        pr = proto_num(row['PROTOCOL']); icmp = pr in (1, 58)
        k = (pr, row['SRC_IP'], '0' if icmp else row['SRC_PORT'], row['DST_IP'], '0' if icmp else row['DST_PORT'])
        have[k + ('p',)] += int(row['PACKETS']); have[k + ('b',)] += int(row['BYTES'])
    want = +want; have = +have
    if want != have:
        diff = [k for k in set(want) | set(have) if want[k] != have[k]]
        errors.append("nfacctd differs on %d 5-tuple counters, e.g. %s: %d vs sent %d"
                      % (len(diff), diff[0], have[diff[0]], want[diff[0]]))
    checks += [('nfacctd packets', sum(v for k, v in have.items() if k[-1] == 'p'),
                sum(v for k, v in want.items() if k[-1] == 'p'))]
    print("  nfacctd: %d 5-tuples, %d forward packets" % (len(have) // 2, checks[-1][1]))
for what, got_v, want in checks:
    if got_v != want:
        errors.append("%s: %d, expected %d" % (what, got_v, want))
print("%s: %d records, %d packets, %d bytes, %s datagrams" % (fmt, recs, tot[0], tot[1], drv[name + '.datagrams']))
if errors:
    print('\n'.join(errors))
    sys.exit(1)
PY

run_case() { # format biflow-mode
    local fmt=$1 mode=$2 dir=$TMP/$1-$2 port
    mkdir -p "$dir/nf"
    port=$(free_port udp)
    start_nfcapd_recorded "$dir" "$port"
    local tp=$TCPDUMP_PID np=$NFCAPD_PID
    local collectors="127.0.0.1:$port" streams=1 pp="" pm_csv=""
    local pport=""
    if [ "$HAVE_NFACCTD" -eq 1 ]; then
        pport=$(free_port udp)
        pm_csv=$dir/nfacctd.csv
        cat >"$dir/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $pport
nfacctd_pipe_size: 16777216
plugins: print[out]
print_output[out]: csv
print_output_file[out]: $pm_csv
print_output_file_append[out]: true
print_refresh_time[out]: 3600
aggregate[out]: proto, src_host, src_port, dst_host, dst_port
CONF
        nfacctd -f "$dir/nfacctd.conf" >"$dir/nfacctd.log" 2>&1 &
        pp=$!; PIDS+=("$pp")
        # nfacctd has no "ready" line before its first flow: wait for its socket.
        local i
        for i in $(seq 1 50); do
            ss -uln 2>/dev/null | grep -q "127.0.0.1:$pport " && break
            sleep 0.1
        done
        collectors="$collectors,127.0.0.1:$pport"
        streams=2
    fi
    "$DRIVER" -i "$CAPS" "--$fmt" "$collectors" --export-all --export-biflow "$mode" \
        --expect "$dir/expect.txt" >"$dir/driver.out" 2>"$dir/driver.err" \
        || fail "$fmt/$mode: driver failed: $(cat "$dir/driver.err")"
    # The collectors have read every datagram when their sockets' receive
    # queues are empty (a loaded machine may take longer than a fixed pause).
    local q
    for i in $(seq 1 100); do
        q=$(ss -ulnH 2>/dev/null | awk -v a="127.0.0.1:$port" -v b="127.0.0.1:${pport:-0}" '$4 == a || $4 == b {s += $2} END {print s + 0}')
        [ "$q" -eq 0 ] && break
        sleep 0.1
    done
    sleep 0.5
    kill -TERM "$np"; wait "$np" 2>/dev/null
    if [ -n "$pp" ]; then
        # SIGINT makes nfacctd purge its cache to the CSV before exiting.
        kill -INT "$pp"; wait "$pp" 2>/dev/null
        [ -s "$pm_csv" ] || fail "$fmt/$mode: nfacctd wrote nothing: $(tail -3 "$dir/nfacctd.log")"
    fi
    # tcpdump keeps packets in its ring for a while: give it time to write them.
    sleep 1.5
    kill -INT "$tp"; wait "$tp" 2>/dev/null
    nfdump -R "$dir/nf" -I >"$dir/nfdump-I.txt" 2>&1 || fail "$fmt/$mode: nfdump -I failed"
    nfdump -R "$dir/nf" -q -N -6 -o 'fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt|%opkt|%obyt' >"$dir/nfdump.txt" 2>&1 \
        || fail "$fmt/$mode: nfdump failed"
    local bad
    bad=$(tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -Y '_ws.malformed || _ws.expert.severity >= warning || !cflow' 2>/dev/null | wc -l)
    [ "$bad" -eq 0 ] || { tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -Y '_ws.malformed || _ws.expert.severity >= warning || !cflow' 2>/dev/null | head -5; fail "$fmt/$mode: tshark flags $bad datagrams"; }
    tshark -r "$dir/cap.pcap" -d "udp.port==$port,cflow" -T fields -E occurrence=a -E aggregator=, \
        -e cflow.octets -e cflow.packets -e cflow.post_octets -e cflow.post_packets >"$dir/tshark.txt" 2>/dev/null
    python3 "$TMP/compare.py" "$dir/expect.txt" "$dir/nfdump.txt" "$dir/nfdump-I.txt" "$dir/driver.out" \
        "$dir/tshark.txt" "$fmt" "$streams" $pm_csv || fail "$fmt/$mode: see above (files in $dir)"
}

run_case v5 oneway
run_case v9 inout
run_case v9 oneway
run_case ipfix rfc5103
run_case ipfix inout
run_case ipfix oneway
echo "PASS: v5, v9 (inout, oneway) and IPFIX (rfc5103, inout, oneway) decoded exactly by nfdump$([ "$HAVE_NFACCTD" -eq 1 ] && echo ", nfacctd") and tshark"
