#!/usr/bin/env bash
# IDS mode with egress queues (-o N): weir makes N veth pairs itself
# (PREFIX<i> to send on, PREFIX<i>p for the IDS) instead of being given
# --egress interfaces. A real capture (1kxun.pcap) is read with -o 3.
# Checks: bad counts, -o with --egress, bad prefixes and names taken by
# other interfaces are refused with clear errors and leave no interface
# behind; the pairs weir makes are veths, up, ARP and IPv6 off, GRO/TSO off,
# MTU 65535 for a file; they are removed at exit, kept with
# --egress-queues-keep; existing pairs are reused as they are (weir AF_PACKET
# already reading them, as an IDS would) and not removed; on them every
# flow lands whole on exactly one queue and the queues together carry every
# frame of the file; with a live capture (-o 1: N->1 aggregation) the
# queue takes the capture interface's MTU and gets every replayed frame.
# Needs root, ip, tcpdump, python3 (exit 77 otherwise); the live part
# needs tcpreplay (skipped with a note otherwise).
set -u
WEIR=${WEIR_BIN:?}; SHARED=${WEIR_SHARED_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in ip tcpdump python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
CAP=$SHARED/pcaps/ndpi/pcap/1kxun.pcap
LIVECAP=$SHARED/pcaps/ndpi/pcap/netflix.pcap
[ -f "$CAP" ] && [ -f "$LIVECAP" ] || { echo "SKIP: $CAP or $LIVECAP missing"; exit 77; }

Q=wtq; SRC=wtqs; SRCP=wtqsp
TMP=$(mktemp -d)
. "$(dirname "$0")/../support/e2e_lib.sh"
. "$(dirname "$0")/../support/ids_lib.sh"

# qlinks PREFIX: the queue interfaces PREFIX<n> and PREFIX<n>p that exist, sorted.
qlinks() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E "^$1[0-9]+p?\$" | sort | xargs; }
remove_all() {
    local l
    for l in $(qlinks $Q) $(qlinks ${Q}a) ${Q}x ${Q}y $SRC; do ip link del "$l" 2>/dev/null; done
}
BACKLOG=$(sysctl -n net.core.netdev_max_backlog)
cleanup() {
    sysctl -qw net.core.netdev_max_backlog="$BACKLOG"
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    for p in "${TD[@]}"; do kill "$p" 2>/dev/null; done
    remove_all
    rm -rf "$TMP"
}
trap cleanup EXIT
remove_all
frames() { python3 -c "
import struct, sys
n = 0
for p in sys.argv[1:]:
    b = open(p, 'rb').read(); le = '<' if b[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'; off = 24
    while off + 16 <= len(b):
        incl = struct.unpack(le + 'I', b[off + 8:off + 12])[0]; off += 16 + incl; n += 1
print(n)" "$@"; }
NCAP=$(frames "$CAP")

# Refused before anything is made: exit 2, nothing left.
expect_weir 2 "balanced-egress-queues: Value 0 not in range 1 to 64" -- -i "$CAP" -o 0
expect_weir 2 "balanced-egress-queues: Value 65 not in range 1 to 64" -- -i "$CAP" -o 65
expect_weir 2 "give -o N or --egress IF,\.\.\., not both" -- -i "$CAP" -o 2 --egress-queue-name $Q --egress lo
expect_weir 2 "egress queue name '${Q}9': must not end in a digit" -- -i "$CAP" -o 2 --egress-queue-name ${Q}9
expect_weir 2 "egress queue name 'wtqabcdefghij': at most 12 characters with 64 queues" \
    -- -i "$CAP" -o 64 --egress-queue-name wtqabcdefghij
expect_weir 2 "egress queue name 'wt/q': only letters" -- -i "$CAP" -o 1 --egress-queue-name wt/q
expect_weir 2 "egress-queue-name and --egress-queues-keep need -o N" -- -i "$CAP" --egress-queues-keep
check "the refused runs left no queue interface" "[ -z \"$(qlinks $Q)\" ]"

# Names taken by something else: exit 1 naming the interface, nothing made.
ip link add ${Q}1 type bridge
expect_weir 1 "egress queue ${Q}1: exists and is a bridge, not a veth \(remove it, or choose other names" \
    -- -i "$CAP" -o 3 --egress-queue-name $Q
check "a bridge ${Q}1: nothing else made" "[ \"$(qlinks $Q)\" = ${Q}1 ]"
ip link del ${Q}1
ip link add ${Q}0 type veth peer name ${Q}x
expect_weir 1 "egress queue ${Q}0: is a veth paired with ${Q}x, not ${Q}0p" -- -i "$CAP" -o 3 --egress-queue-name $Q
check "a veth ${Q}0 paired elsewhere: nothing else made" "[ \"$(qlinks $Q)\" = ${Q}0 ]"
ip link del ${Q}0
ip link add ${Q}2p type bridge
expect_weir 1 "egress queue ${Q}2p: exists \(a bridge\) without ${Q}2" -- -i "$CAP" -o 3 --egress-queue-name $Q
check "a lone ${Q}2p: nothing else made" "[ \"$(qlinks $Q)\" = ${Q}2p ]"
ip link del ${Q}2p

# Made and removed at exit.
"$WEIR" -i "$CAP" -o 3 --egress-queue-name $Q -q --summary-json "$TMP/s1.json" 2>"$TMP/e1"; rc=$?
grep "egress" "$TMP/e1"
check "-o 3 on a file exits 0" "[ $rc -eq 0 ]"
check "the start line names the IDS ends" \
    "grep -q 'weir: egress queues ready: Suricata/Snort/Zeek read ${Q}0p..${Q}2p (AF_PACKET), one IDS per queue; 3 veth pairs made (MTU 65535, removed at exit), 0 reused' $TMP/e1"
check "IDS mode over the three queues" "grep -q 'IDS egress by 5-tuple, 3 egress: .*${Q}0.*${Q}1.*${Q}2' $TMP/e1"
check "all $NCAP frames sent over the queues" \
    "python3 -c \"import json,sys; p=json.load(open('$TMP/s1.json'))['egress']['ports']; print([x['packets'] for x in p]); sys.exit(0 if sum(x['packets'] for x in p)==$NCAP and len(p)==3 else 1)\""
check "the pairs are removed at exit" "[ -z \"$(qlinks $Q)\" ]"

# Kept with --egress-queues-keep, as weir made them.
"$WEIR" -i "$CAP" -o 3 --egress-queue-name $Q --egress-queues-keep -q 2>"$TMP/e2"; rc=$?
check "--egress-queues-keep: exits 0 and says so" "[ $rc -eq 0 ] && grep -q '3 veth pairs made (MTU 65535, kept at exit)' $TMP/e2"
check "--egress-queues-keep: the pairs stay" "[ \"$(qlinks $Q)\" = '${Q}0 ${Q}0p ${Q}1 ${Q}1p ${Q}2 ${Q}2p' ]"
for l in ${Q}0 ${Q}2p; do
    check "$l: a veth, up, NOARP, MTU 65535" \
        "ip -d link show $l | grep -q 'veth' && ip link show $l | grep -q 'NOARP,UP' && ip link show $l | grep -q 'mtu 65535'"
    [ -f /proc/sys/net/ipv6/conf/$l/disable_ipv6 ] && check "$l: IPv6 off" "[ \$(cat /proc/sys/net/ipv6/conf/$l/disable_ipv6) = 1 ]"
    command -v ethtool >/dev/null && check "$l: GRO and TSO off" \
        "ethtool -k $l | grep -q '^generic-receive-offload: off' && ethtool -k $l | grep -q '^tcp-segmentation-offload: off'"
done
command -v ethtool >/dev/null && check "${Q}1p: VLAN tags stay in the frame" \
    "ethtool -k ${Q}1p | grep -q '^rx-vlan-offload: off'"

# Reused with an IDS already reading the peers, and left in place. The
# readers are weir itself on AF_PACKET (--json per flow): libpcap, whose
# ring is sized by the MTU, misses some of the 65535-MTU queues' frames.
# A file is sent as fast as the TX path takes it and each frame reaches its
# peer through the per-CPU backlog (docs/ids.md, Transmit): a larger one
# keeps a loaded machine from dropping there; restored at exit.
sysctl -qw net.core.netdev_max_backlog=$((BACKLOG > 10000 ? BACKLOG : 10000))
for i in 0 1 2; do
    "$WEIR" -i afpacket:${Q}${i}p --json "$TMP/q$i.json" --summary-json "$TMP/r$i.json" -q -d 86400 -t 86400 \
            --stats-interval 0 --duration 60 2>"$TMP/r$i.err" &
    TD+=($!)
done
for _ in $(seq 100); do
    n=0; for i in 0 1 2; do grep -q "capturing on" "$TMP/r$i.err" && n=$((n+1)); done
    [ $n -eq 3 ] && break; sleep 0.1
done
"$WEIR" -i "$CAP" -o 3 --egress-queue-name $Q -q --summary-json "$TMP/s3.json" 2>"$TMP/e3"; rc=$?
sleep 1
for p in "${TD[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; TD=()
check "reuse: exits 0, 0 made, 3 reused" "[ $rc -eq 0 ] && grep -q '0 veth pairs made (MTU 65535, removed at exit), 3 reused' $TMP/e3"
check "reuse: the pairs weir did not make stay" "[ \"$(qlinks $Q)\" = '${Q}0 ${Q}0p ${Q}1 ${Q}1p ${Q}2 ${Q}2p' ]"
"$WEIR" -i "$CAP" --json "$TMP/exp.json" -q -d 86400 -t 86400 2>/dev/null
GOT=$(python3 -c "import json; print(sum(json.load(open('$TMP/r%d.json' % i))['packets'] for i in range(3)))")
check "the three queues carried all $NCAP frames of the file ($GOT)" "[ \"$GOT\" -eq $NCAP ]"
python3 - "$TMP" <<'PY'
import sys
from ids_flows import Checks, load, agg
d = sys.argv[1]
exp = agg(load(f"{d}/exp.json"))
q = [agg(load(f"{d}/q{i}.json")) for i in range(3)]
c = Checks()
on = {k: [i for i in range(3) if k in q[i]] for k in exp}
whole = [k for k in exp if len(on[k]) == 1 and q[on[k][0]][k] == exp[k]]
c.ok(len(exp) > 100 and len(whole) == len(exp),
     f"{len(whole)}/{len(exp)} flows whole on exactly one queue (e.g. not: {[k for k in exp if k not in whole][:2]})")
spread = [sum(1 for k in exp if on[k] == [i]) for i in range(3)]
c.ok(all(s > 0 for s in spread), f"flows on every queue: {spread}")
c.exit()
PY
check "per-flow delivery on the reused queues" "[ $? -eq 0 ]"
remove_all

# Live capture, -o 1: the queue takes the capture's MTU (9000) and carries
# every replayed frame (N->1 aggregation).
if ! command -v tcpreplay >/dev/null; then
    echo "note: tcpreplay missing, the live part skipped"
else
    ip link add $SRC mtu 9000 type veth peer name $SRCP mtu 9000
    for l in $SRC $SRCP; do sysctl -qw net.ipv6.conf.$l.disable_ipv6=1; ip link set $l up; done
    "$WEIR" -i afpacket:$SRC -o 1 --egress-queue-name ${Q}a -q --stats-interval 0 --duration 30 \
            --summary-json "$TMP/s4.json" 2>"$TMP/e4" &
    PID=$!
    for _ in $(seq 100); do grep -q "capturing on" "$TMP/e4" && break; sleep 0.1; done
    check "live -o 1: one pair with the capture's MTU" \
        "grep -q 'read ${Q}a0p (AF_PACKET), one IDS per queue; 1 veth pairs made (MTU 9000, removed at exit)' $TMP/e4 && ip link show ${Q}a0p | grep -q 'mtu 9000'"
    tcpdump_on a "" ${Q}a0p
    ip link set $SRCP promisc on
    tcpreplay -q -i $SRCP --pps 5000 "$LIVECAP" >/dev/null 2>&1
    sleep 1
    kill -TERM $PID; wait $PID; rc=$?; PID=
    stop_tcpdump
    N=$(frames "$LIVECAP"); GOT=$(frames "$TMP/a0.pcap")
    check "live -o 1: exits 0, the queue carried all $N replayed frames ($GOT)" "[ $rc -eq 0 ] && [ \"$GOT\" -eq $N ]"
    check "live -o 1: the pair is removed at exit" "[ -z \"$(qlinks ${Q}a)\" ]"
fi
summary
