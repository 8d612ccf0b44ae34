#!/usr/bin/env bash
# Inline bridge end to end: namespace A -- wbrA1|wbrA0 == weir --bridge ==
# wbrB0|wbrB1 -- namespace B, one IPv4 subnet across the bridge (static
# neighbours and no IPv6, so every frame on the wire is one we sent).
#  - ping, a TCP echo and a UDP echo pass both ways; the bridge counters
#    (weirctl bridge stats) count exactly the frames of a 20-ping run;
#  - a DROP verdict for one UDP flow (weirctl verdict add) stops that flow
#    only, and its entry counts every datagram;
#  - fail open: kill -9 weir, traffic still flows, stats still readable;
#  - a restart in fail-closed mode replaces the left-over program; SIGTERM
#    puts the drop program in, traffic stops; a killed fail-closed weir stops
#    traffic by the program's watchdog;
#  - weirctl bridge detach removes it all.
# Needs root, ping, python3 and weir built with the BPF toolchain (exit 77 otherwise).
set -u
WEIR=${WEIR_BIN:?}
CTL="$(dirname "$WEIR")/weirctl/weirctl"
PY=/usr/bin/python3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in ip ping ethtool; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
[ -x "$PY" ] || { echo "SKIP: $PY missing"; exit 77; }
[ -x "$CTL" ] || { echo "SKIP: weirctl not built"; exit 77; }
"$WEIR" --help | grep -q -- --bridge || { echo "SKIP: weir without --bridge"; exit 77; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

NSA=wbrA; NSB=wbrB; A0=wbrA0; A1=wbrA1; B0=wbrB0; B1=wbrB1
IPA=10.77.0.1; IPB=10.77.0.2
TMP=$(mktemp -d)
SOCK=$TMP/verdict.sock
PID=; SRV1=; SRV2=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    [ -n "$SRV1$SRV2" ] && kill $SRV1 $SRV2 2>/dev/null
    ip link del $A0 2>/dev/null; ip link del $B0 2>/dev/null
    ip netns del $NSA 2>/dev/null; ip netns del $NSB 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
cleanup
TMP=$(mktemp -d); SOCK=$TMP/verdict.sock

ip netns add $NSA; ip netns add $NSB
ip link add $A0 type veth peer name $A1
ip link add $B0 type veth peer name $B1
ip link set $A1 netns $NSA; ip link set $B1 netns $NSB
MACA=02:77:00:00:00:01; MACB=02:77:00:00:00:02
for x in "$NSA $A1 $IPA $MACA $IPB $MACB" "$NSB $B1 $IPB $MACB $IPA $MACA"; do
    set -- $x
    ip netns exec $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec $1 ip link set $2 address $4
    ip netns exec $1 ip addr add $3/24 dev $2
    ip netns exec $1 ip link set $2 up
    ip netns exec $1 ip link set lo up
    ip netns exec $1 ip neigh replace $5 lladdr $6 dev $2 nud permanent
    # Native XDP redirects into a veth are received only with an XDP
    # program or GRO on the receiving end (docs/ids.md, Inline bridge).
    ip netns exec $1 ethtool -K $2 gro on >/dev/null
    # Frames from a local stack leave a veth with their L4 checksum left to
    # offload (CHECKSUM_PARTIAL); an XDP redirect drops that state, so the
    # far side would see bad checksums: senders compute them in software.
    ip netns exec $1 ethtool -K $2 tx off >/dev/null
done
for d in $A0 $B0; do sysctl -qw net.ipv6.conf.$d.disable_ipv6=1; ip link set $d up; done

fail=0; pass=0
check() { if eval "$2"; then echo "ok: $1"; pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }

start_weir() { # $1 = open|closed
    rm -f "$SOCK"
    "$WEIR" --bridge $A0:$B0 --fail "$1" --verdict-socket "$SOCK" --stats-interval 0 --json "$TMP/flows.$1.json" \
        --stats-json "$TMP/stats.$1.json" \
        2>"$TMP/weir.$1.log" &
    PID=$!
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
    [ -S "$SOCK" ] || { cat "$TMP/weir.$1.log"; false; }
}
pings() { ip netns exec $NSA ping -q -n -c "$1" -i 0.05 -W 1 $IPB >/dev/null 2>&1; }
stat() { # $1 = a_to_b|b_to_a, $2 = field
    "$CTL" bridge stats $A0:$B0 --json | $PY -c "import json,sys; d=json.load(sys.stdin)['directions']; print(d[0 if '$1'=='a_to_b' else 1]['counters']['$2'])"
}

# UDP/TCP echo server in B, client in A (bounded by timeouts and counts).
cat > "$TMP/echo.py" <<'EOF'
import socket, sys, time
mode, proto = sys.argv[1], sys.argv[2]
host, port = sys.argv[3], int(sys.argv[4])
if mode == "server":
    deadline = time.time() + float(sys.argv[5])
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port)); s.settimeout(0.2)
        while time.time() < deadline:
            try:
                d, a = s.recvfrom(2048); s.sendto(d, a)
            except socket.timeout:
                pass
    else:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(4); s.settimeout(0.2)
        while time.time() < deadline:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            c.settimeout(2)
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
            c.close()
else:  # client: sport count -> prints replies received
    sport, count = int(sys.argv[5]), int(sys.argv[6])
    got = 0
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", sport)); s.settimeout(0.3)
        for i in range(count):
            s.sendto(b"x" * 100, (host, port))
            try:
                s.recvfrom(2048); got += 1
            except socket.timeout:
                pass
    else:
        s = socket.create_connection((host, port), timeout=3)
        data = bytes(range(256)) * 400  # 100 KiB each way
        s.sendall(data); s.shutdown(socket.SHUT_WR)
        back = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            back += d
        got = 1 if back == data else 0
    print(got)
EOF
ip netns exec $NSB $PY "$TMP/echo.py" server udp $IPB 5002 60 & SRV1=$!
ip netns exec $NSB $PY "$TMP/echo.py" server tcp $IPB 5001 60 & SRV2=$!
sleep 0.3

check "no bridge yet: B unreachable" "! pings 1"
check "weir --bridge starts (fail open)" "start_weir open"
check "ping A -> B through the bridge" "pings 5"
check "TCP echo (100 KiB each way)" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client tcp $IPB 5001 40001 1)\" = 1 ]"
check "UDP echo, 20 datagrams" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client udp $IPB 5002 40002 20)\" = 20 ]"

# Exact counts: 20 echo requests one way, 20 replies the other.
a0=$(stat a_to_b packets); b0=$(stat b_to_a packets); f0=$(stat a_to_b forwarded)
pings 20
a1=$(stat a_to_b packets); b1=$(stat b_to_a packets); f1=$(stat a_to_b forwarded)
check "A->B counted exactly 20 frames (got $((a1 - a0)))" "[ $((a1 - a0)) -eq 20 ]"
check "B->A counted exactly 20 frames (got $((b1 - b0)))" "[ $((b1 - b0)) -eq 20 ]"
check "A->B forwarded all 20" "[ $((f1 - f0)) -eq 20 ]"

# A DROP verdict for one UDP flow stops it, and only it.
check "weirctl verdict add drop" "\"$CTL\" verdict add --socket $SOCK --src $IPA --dst $IPB --sport 40003 --dport 5002 --proto udp --verdict drop >/dev/null"
d0=$(stat a_to_b verdict_drop)
check "dropped flow gets no reply" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client udp $IPB 5002 40003 10)\" = 0 ]"
d1=$(stat a_to_b verdict_drop)
check "bridge counted 10 verdict drops (got $((d1 - d0)))" "[ $((d1 - d0)) -eq 10 ]"
check "verdict entry counted 10 packets" "\"$CTL\" verdict list --socket $SOCK | grep -q '\"packets\":10'"
check "another UDP flow to the same port passes" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client udp $IPB 5002 40004 10)\" = 10 ]"
check "ping still passes" "pings 3"

# Fail open: weir dies, the bridge keeps forwarding with its verdicts.
kill -9 $PID; wait $PID 2>/dev/null; PID=
check "fail open: ping after kill -9" "pings 5"
check "fail open: DROP verdict still applied" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client udp $IPB 5002 40003 3)\" = 0 ]"
check "fail open: stats readable without weir" "[ \$(stat a_to_b packets) -gt 0 ]"

# Restart, fail closed: the left-over program is replaced.
check "weir restarts over the left-over bridge (fail closed)" "start_weir closed"
check "restart: replaced note" "grep -q 'replaced the left-over' $TMP/weir.closed.log"
check "fail closed: ping while weir runs" "pings 5"
check "fail closed: the old DROP verdict is gone with the old maps" "[ \"\$(ip netns exec $NSA $PY $TMP/echo.py client udp $IPB 5002 40003 3)\" = 3 ]"
kill -TERM $PID; wait $PID; rc=$?; PID=
check "fail closed: weir exits 0 on SIGTERM (rc $rc)" "[ $rc -eq 0 ]"
check "fail closed: ping fails after stop" "! pings 3"
# The flow records of that run (exported at the clean stop).
flow() { # proto sport dport -> "IN_PKTS OUT_PKTS" of the matching record
    $PY -c "
import json, sys
for l in open('$TMP/flows.closed.json'):
    f = json.loads(l)
    if f['PROTOCOL'] == $1 and f['L4_SRC_PORT'] == $2 and f['L4_DST_PORT'] == $3:
        print(f['IN_PKTS'], f['OUT_PKTS'], f['IPV4_SRC_ADDR'])
"
}
check "flow record: UDP 40003->5002, 3 datagrams each way, client A" "[ \"\$(flow 17 40003 5002)\" = '3 3 $IPA' ]"
check "--stats-json at exit: A->B forwarded the 5 pings and 3 datagrams" "[ \"\$($PY -c \"import json; print(json.loads(open('$TMP/stats.closed.json').readlines()[-1])['bridge']['a_to_b']['forwarded'])\")\" = 8 ]"
check "flow record: ICMP echo, 5 requests and 5 replies" "[ \"\$(flow 1 0 0)\" = '5 5 $IPA' ]"
check "fail closed: stats name the drop program" "\"$CTL\" bridge stats $A0:$B0 2>&1 | grep -q 'drop program'"

# Fail closed and killed: the watchdog stops forwarding.
check "weir restarts over the drop program" "start_weir closed"
check "ping after restart" "pings 3"
kill -9 $PID; wait $PID 2>/dev/null; PID=
sleep 3.5
w0=$(stat a_to_b watchdog_drop)
check "killed fail-closed weir: ping fails (watchdog)" "! pings 3"
w1=$(stat a_to_b watchdog_drop)
check "watchdog drops counted (got $((w1 - w0)))" "[ $((w1 - w0)) -ge 3 ]"

check "weirctl bridge detach" "\"$CTL\" bridge detach $A0:$B0 >/dev/null"
check "no XDP program left on $A0 and $B0" "! ip link show $A0 | grep -q xdp && ! ip link show $B0 | grep -q xdp"
check "detach again: nothing there (exit 1)" "! \"$CTL\" bridge detach $A0:$B0 2>/dev/null"

kill $SRV1 $SRV2 2>/dev/null; wait $SRV1 $SRV2 2>/dev/null
echo "bridge: $pass passed, $fail failed"
[ $fail -eq 0 ]
