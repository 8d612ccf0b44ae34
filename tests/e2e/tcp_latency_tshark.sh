#!/usr/bin/env bash
# TCP handshake and response latencies (-D 1 and -D 2) against tshark on a
# real capture. For every TCP flow weir reports CLIENT/SERVER_NW_LATENCY_MS
# for, twice their sum (each is RTT/2, as nProbe) must equal tshark's
# tcp.analysis.initial_rtt of that stream (last SYN -> handshake ACK) within
# 5 us (--json prints microseconds); APPL_LATENCY_MS must equal the time from
# the client's first payload to the server's first payload after it, from
# tshark's frame times. At least one flow must have been measured. Needs
# tshark and python3; exits 77 when one is missing.
set -u

skip() { echo "SKIP: $*"; exit 77; }
for t in tshark python3; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
: "${WEIR_BIN:?WEIR_BIN not set}" "${WEIR_SHARED_DIR:?WEIR_SHARED_DIR not set}"
PCAP="$WEIR_SHARED_DIR/pcaps/misc/test.pcap"
[ -f "$PCAP" ] || skip "no $PCAP"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tshark -r "$PCAP" -o tcp.relative_sequence_numbers:FALSE -Y tcp -T fields -e tcp.stream -e frame.time_epoch \
    -e tcp.srcport -e tcp.dstport -e tcp.len -e tcp.flags -e tcp.analysis.initial_rtt >"$tmp/tshark.txt" 2>/dev/null \
    || { echo "FAIL: tshark could not read $PCAP"; exit 1; }
rc=0
for level in 1 2; do
    if ! "$WEIR_BIN" -i "$PCAP" -D "$level" -q --json "$tmp/flows$level.json" 2>"$tmp/err$level"; then
        if [ "$level" = 2 ] && grep -q "no libndpi" "$tmp/err$level"; then
            echo "level 2 skipped: this build has no libndpi"
            continue
        fi
        echo "FAIL: weir -D $level: $(tail -1 "$tmp/err$level")"; rc=1; continue
    fi
    python3 - "$tmp/tshark.txt" "$tmp/flows$level.json" "$level" <<'PY' || rc=1
import json, sys
pk = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    stream, t, sp, dp, ln, flags, irtt = f[0], float(f[1]), int(f[2]), int(f[3]), int(f[4] or 0), int(f[5], 16), f[6]
    s = pk.setdefault(stream, {"ports": set(), "irtt": None, "pkts": []})
    s["ports"].add((sp, dp))
    if irtt and s["irtt"] is None:
        s["irtt"] = float(irtt)
    s["pkts"].append((t, sp, dp, ln, flags))
by_ports = {}
for k, s in pk.items():
    for p in s["ports"]:
        by_ports.setdefault(p, []).append(s)
measured = bad = 0
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r.get("PROTOCOL") != 6 or "SERVER_NW_LATENCY_MS" not in r:
        continue
    cp, sp = r["L4_SRC_PORT"], r["L4_DST_PORT"]
    cand = by_ports.get((cp, sp), [])
    if len(cand) != 1:
        continue  # port reuse: no single stream to compare with
    s = cand[0]
    measured += 1
    got = 2 * (r["CLIENT_NW_LATENCY_MS"] + r["SERVER_NW_LATENCY_MS"])
    if s["irtt"] is None or abs(got - s["irtt"] * 1000) > 0.005:
        print(f"FAIL -D{sys.argv[3]} {cp}->{sp}: 2*(client+server) {got:.3f} ms, tshark initial_rtt {s['irtt']}")
        bad += 1
    if "APPL_LATENCY_MS" in r:
        req = next((p[0] for p in s["pkts"] if p[1] == cp and p[3] > 0), None)
        resp = next((p[0] for p in s["pkts"] if p[1] == sp and p[3] > 0 and req is not None and p[0] >= req), None)
        want = (resp - req) * 1000 if resp is not None else None
        if want is None or abs(r["APPL_LATENCY_MS"] - want) > 0.002:
            print(f"FAIL -D{sys.argv[3]} {cp}->{sp}: APPL_LATENCY_MS {r['APPL_LATENCY_MS']}, tshark {want}")
            bad += 1
        else:
            print(f"ok -D{sys.argv[3]} {cp}->{sp}: irtt {s['irtt']*1000:.3f} ms = 2*({r['CLIENT_NW_LATENCY_MS']}+{r['SERVER_NW_LATENCY_MS']}), appl {want:.3f} ms")
if measured == 0:
    print(f"FAIL -D{sys.argv[3]}: no TCP flow with latencies")
    sys.exit(1)
print(f"-D{sys.argv[3]}: {measured} flows compared, {bad} mismatches")
sys.exit(1 if bad else 0)
PY
done
[ "$rc" = 0 ] && echo "PASS" || echo "FAIL"
exit "$rc"
