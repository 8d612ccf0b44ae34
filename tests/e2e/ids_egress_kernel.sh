#!/usr/bin/env bash
# IDS mode with the kernel egress (XDP DIVERT through the weir_egress DEVMAP),
# end to end on veths. Generated traffic (40 UDP flows of 30 packets, 20 TCP
# connections with handshake, 20 PSH data segments and FIN exchange) is
# replayed into an AF_XDP capture with two egress veths; tcpdump records
# the egress peers (GRO on there: a veth receiving XDP-redirected frames
# needs it; PSH on every data segment keeps GRO from merging them).
# Part 1 (default: kernel egress on, no verdict channel): every flow lands
#   whole on exactly one egress, the exported flows equal weir's own reading
#   of the generated file (packets, bytes, client and server TCP flags:
#   SYN/FIN stay in the capture, PSH/URG/ECE/CWR of diverted segments come
#   back from the verdict entries), and user-space frames + kernel packets
#   = all packets, with
#   kernel packets > 0 in --summary-json.
# Part 2 (--egress-kernel off): the same with everything by AF_PACKET TX.
# Part 3 (--verdict-max 16, verdict socket, policy file, one IDS verdict):
#   a full verdict map leaves flows on user-space TX (counted), the IDS's
#   own verdict is never replaced, a reload turns a diverted subnet into a
#   discard (its DIVERTs become DROPs); flows still whole, counters complete.
# Needs root, tcpreplay, tcpdump, ethtool, python3 (exit 77 otherwise).
set -u
WEIR=${WEIR_BIN:?}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in ip tcpreplay tcpdump ethtool python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
CTL="$(dirname "$WEIR")/../weirctl/weirctl"
[ -x "$CTL" ] || CTL="$(dirname "$WEIR")/weirctl/weirctl"

NS=eo-ns; SRC=eo-s0; SRCP=eo-s1; EG=eo; NEG=2
TMP=$(mktemp -d)
. "$(dirname "$0")/../support/e2e_lib.sh"
. "$(dirname "$0")/../support/ids_lib.sh"
trap ids_cleanup EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ids_links
# The far end of a DEVMAP egress receives redirected frames only with GRO
# on (or an XDP program) there.
for i in 0 1; do ip netns exec $NS ethtool -K eo-p$i gro on >/dev/null 2>&1; done

start_weir() { # tag, extra args...
    local tag=$1; shift
    "$WEIR" -i xdp:$SRC --egress eo-e0,eo-e1 --json "$TMP/got_$tag.json" -q -d 86400 -t 86400 \
            --stats-interval 0 --duration 120 --summary-json "$TMP/sum_$tag.json" "$@" 2>"$TMP/err_$tag" &
    PID=$!
    for _ in $(seq 150); do grep -q "capturing on" "$TMP/err_$tag" && break; sleep 0.1; done
    grep -q "capturing on" "$TMP/err_$tag"
}
stop_weir() { # tag
    sleep 1.5 # one more verdict accounting poll
    kill -TERM $PID; wait $PID; local rc=$?; PID=
    check "weir ($1) exits 0" "[ $rc -eq 0 ]"
    stop_tcpdump
    grep -E "IDS egress|policy:|XDP offload|kernel egress|XDP verdicts|egress [01] " "$TMP/err_$1"
    for i in 0 1; do "$WEIR" -i "$TMP/$1_$i.pcap" --json "$TMP/$1_eg$i.json" -q -d 86400 -t 86400 2>/dev/null; done
}

python3 - "$TMP" <<'PY'
import struct, sys
from ids_flows import PCAP_HEADER, T0_US, pcap_record, ip4 as ip
d = sys.argv[1]
def eth(p, back):
    a, b = b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01"
    return (b + a if back else a + b) + b"\x08\x00" + p
def udp(src, dst, sp, dp, n, back):
    return eth(ip(src, dst, 17, struct.pack("!HHHH", sp, dp, 8 + n, 0) + bytes(n)), back)
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
def tcp(src, dst, sp, dp, seq, ack, flags, n, back):
    t = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + bytes(n)
    return eth(ip(src, dst, 6, t), back)
flows = []
for i in range(40):  # UDP: 30 packets, directions alternating
    a, b, sp = [10, 50, 0, 1 + i], [10, 60, 0, 1], 30000 + i
    flows.append([udp(a, b, sp, 4000, 18 + i, False) if k % 2 == 0 else udp(b, a, 4000, sp, 30, True) for k in range(30)])
for i in range(20):  # TCP: handshake, 20 data segments (PSH), FIN both ways, last ACK
    a, b, sp = [10, 51, 0, 1 + i], [10, 60, 0, 2], 40000 + i
    c, s = 1000, 5000
    f = [tcp(a, b, sp, 80, c, 0, SYN, 0, False), tcp(b, a, 80, sp, s, c + 1, SYN | ACK, 0, True),
         tcp(a, b, sp, 80, c + 1, s + 1, ACK, 0, False)]
    c += 1; s += 1
    # Some segments also carry URG (client), ECE (server) or CWR (client):
    # flags only the diverted packets have.
    extra = {4: URG if i % 2 == 0 else 0, 7: ECE if i % 2 == 0 else 0, 12: CWR if i % 4 == 0 else 0}
    for k in range(20):
        if k % 2 == 0:
            f.append(tcp(a, b, sp, 80, c, s, PSH | ACK | extra.get(k, 0), 100, False)); c += 100
        else:
            f.append(tcp(b, a, 80, sp, s, c, PSH | ACK | extra.get(k, 0), 200, True)); s += 200
    f += [tcp(a, b, sp, 80, c, s, FIN | ACK, 0, False), tcp(b, a, 80, sp, s, c + 1, FIN | ACK, 0, True),
          tcp(a, b, sp, 80, c + 1, s + 1, ACK, 0, False)]
    flows.append(f)
out = [PCAP_HEADER]
t = T0_US
for k in range(30):  # round robin: every flow is open at once
    for f in flows:
        if k < len(f):
            t += 100
            out.append(pcap_record(t, f[k]))
open(f"{d}/gen.pcap", "wb").write(b"".join(out))
# One packet of another flow: the first packet read after a reload runs
# the stage's reload pass.
f = udp([10, 70, 0, 1], [10, 60, 0, 1], 1, 2, 10, False)
open(f"{d}/poke.pcap", "wb").write(PCAP_HEADER + pcap_record(1_700_000_100 * 1_000_000, f))
print(sum(len(f) for f in flows), "packets in", len(flows), "flows")
PY
"$WEIR" -i "$TMP/gen.pcap" --json "$TMP/exp.json" -q -d 86400 -t 86400 2>/dev/null
TOTAL=$((40 * 30 + 20 * 26))

# Per flow: exported counters of a run against the file's, and where the
# flow's packets landed on the egresses.
cat > "$TMP/check.py" <<'PY'
import json, sys
from ids_flows import Checks, load, key
d, tag, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def agg(fl):
    r = {}
    for f in fl:
        k = key(f)
        p, b, cf, sf = r.get(k, (0, 0, 0, 0))
        # Every flag bit by direction: those of diverted packets come from
        # the verdict entries (undelivered_tcp_flags).
        r[k] = (p + f["IN_PKTS"] + f["OUT_PKTS"], b + f["IN_BYTES"] + f["OUT_BYTES"],
                cf | f.get("CLIENT_TCP_FLAGS", 0), sf | f.get("SERVER_TCP_FLAGS", 0))
    return r
exp, got = agg(load(f"{d}/exp.json")), agg(load(f"{d}/got_{tag}.json"))
eg = [agg(load(f"{d}/{tag}_eg{i}.json")) for i in range(2)]
s = json.load(open(f"{d}/sum_{tag}.json"))
e = s["egress"]
checks = Checks(f"[{tag}] ")
ok = checks.ok
diff = [(k, exp[k], got.get(k)) for k in exp if got.get(k) != exp[k]]
ok(len(exp) == 60 and not diff, f"60 flows exported with every packet, byte and client/server TCP flag ({len(diff)} differ: {diff[:2]})")
tf = [exp[k][2] | exp[k][3] for k in exp if k[0] == 6]
ok(len(tf) == 20 and sum(1 for x in tf if x & 0xe0 == 0xe0) == 5 and all(x & 0x1f == 0x1b for x in tf),
   "the file's TCP flows have SYN/FIN/PSH/ACK, 5 also URG, ECE and CWR")
on = {k: [(i, eg[i][k][0]) for i in range(2) if k in eg[i]] for k in exp}
whole = [k for k in exp if len(on[k]) == 1 and on[k][0][1] == exp[k][0]]
ok(len(whole) == 60, f"{len(whole)} of 60 flows whole on exactly one egress (e.g. {[(k, exp[k][0], on[k]) for k in exp if k not in whole][:3]})")
spread = [sum(1 for k in exp if k in eg[i]) for i in range(2)]
ok(min(spread) >= 15, f"flows spread over both egresses {spread}")
ok(s["packets"] + s["xdp_undelivered_packets"] == total, f"captured {s['packets']} + XDP {s['xdp_undelivered_packets']} = {total}")
ok(e["delivered"] + e["kernel_packets"] == total, f"user-space TX {e['delivered']} + kernel {e['kernel_packets']} = {total}")
mode = sys.argv[4]
if mode == "on":
    ok(e["divert_installs"] >= 60 and e["divert_failures"] == 0 and e["kernel_packets"] >= 1000,
       f"kernel egress: {e['divert_installs']} DIVERTs, {e['kernel_packets']} packets by the kernel")
elif mode == "off":
    ok(e["divert_installs"] == 0 and e["kernel_packets"] == 0 and e["delivered"] == total, "all by AF_PACKET TX")
else:
    ok(e["divert_failures"] >= 40 and e["divert_installs"] >= 10 and e["kernel_packets"] > 0,
       f"full map: {e['divert_installs']} DIVERTs, {e['divert_failures']} flows left on user-space TX")
checks.exit()
PY

# ---------------------------------------------------------------- part 1
start_tcpdump on_
if ! start_weir on; then
    cat "$TMP/err_on"; echo "SKIP: AF_XDP capture not available here"; exit 77
fi
# The egress line follows "capturing on" (the stage, its state table
# prefaulted in live capture, is set up after the capture opens).
for _ in $(seq 50); do grep -q "IDS egress by" "$TMP/err_on" && break; sleep 0.1; done
check "kernel egress on by default" "grep -q 'forwarded in the kernel' '$TMP/err_on'"
replay "$TMP/gen.pcap" 1000
stop_weir on
python3 "$TMP/check.py" "$TMP" on $TOTAL on
check "kernel egress: whole flows, complete counters" "[ $? -eq 0 ]"

# ---------------------------------------------------------------- part 2
start_tcpdump off_
start_weir off --egress-kernel off
check "--egress-kernel off: no verdict maps" "! grep -q 'verdicts on' '$TMP/err_off'"
replay "$TMP/gen.pcap" 1000
stop_weir off
python3 "$TMP/check.py" "$TMP" off $TOTAL off
check "AF_PACKET TX: whole flows, complete counters" "[ $? -eq 0 ]"

# ---------------------------------------------------------------- part 3
if ! [ -x "$CTL" ]; then
    echo "note: weirctl not built, part 3 skipped"
else
    printf '[global]\ndefault = forward\n[subnet]\n10.51.0.0/16 = egress:1\n' > "$TMP/p.conf"
    start_tcpdump full_
    start_weir full --verdict-max 16 --verdict-socket "$TMP/v.sock" --egress-conf "$TMP/p.conf"
    for _ in $(seq 50); do [ -S "$TMP/v.sock" ] && break; sleep 0.1; done
    # The IDS's own verdict on one UDP flow (forward: it keeps its packets
    # in the capture): the policy must not replace it.
    "$CTL" verdict add --socket "$TMP/v.sock" --src 10.50.0.1 --dst 10.60.0.1 --sport 30000 --dport 4000 \
        --proto udp --verdict forward >/dev/null
    replay "$TMP/gen.pcap" 1000
    "$CTL" verdict list --socket "$TMP/v.sock" > "$TMP/list1.json"
    printf '[global]\ndefault = forward\n[subnet]\n10.51.0.0/16 = egress:1\n10.50.0.0/16 = discard\n' > "$TMP/p.conf"
    "$CTL" policy reload --socket "$TMP/v.sock" > /dev/null
    replay "$TMP/poke.pcap" 100
    sleep 0.5
    "$CTL" verdict list --socket "$TMP/v.sock" > "$TMP/list2.json"
    python3 - "$TMP" <<'PY'
import json, sys
from ids_flows import Checks
d = sys.argv[1]
l1, l2 = (json.load(open(f"{d}/list{i}.json"))["flows"] for i in (1, 2))
checks = Checks()
ok = checks.ok
api = [x for x in l1 if x.get("source") == "api"]
pol = [x for x in l1 if x.get("source") == "policy"]
ok(len(api) == 1 and api[0]["verdict"] == "forward", f"the IDS verdict is left alone ({api})")
ok(len(pol) == 15 and all(x["verdict"] == "divert" for x in pol), f"the full map holds 15 policy DIVERTs ({len(pol)})")
ok(all(x["egress"] == 1 for x in pol if x["flow"]["proto"] in ("tcp", 6)), "egress:1 flows diverted to egress 1")
# Reload: 10.50/16 (UDP) is discarded now: its DIVERTs become DROPs in
# place, the IDS's verdict stays as it was.
udp1 = sorted(json.dumps(x["flow"], sort_keys=True) for x in pol if x["flow"]["src"].startswith("10.50.") or x["flow"]["dst"].startswith("10.50."))
pol2 = [x for x in l2 if x.get("source") == "policy"]
udp2 = sorted(json.dumps(x["flow"], sort_keys=True) for x in pol2 if x["verdict"] == "drop")
ok(len(udp1) >= 10 and udp1 == udp2, f"reload: the {len(udp1)} diverted 10.50/16 flows now have DROP verdicts ({len(udp2)})")
api2 = [x for x in l2 if x.get("source") == "api"]
ok(len(api2) == 1 and api2[0]["verdict"] == "forward", "the IDS verdict survives the reload untouched")
checks.exit()
PY
    check "full verdict map and IDS verdict" "[ $? -eq 0 ]"
    stop_weir full
    python3 "$TMP/check.py" "$TMP" full $((TOTAL + 1)) full
    check "full verdict map: whole flows, complete counters" "[ $? -eq 0 ]"
fi
summary
