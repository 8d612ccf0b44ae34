# shellcheck shell=bash
# Shared pieces of the IDS egress e2e scripts (sourced after e2e_lib.sh, not
# run): a namespace NS holding the peer SRCP of the source veth SRC and the
# peers ${EG}-p0.. of NEG egress veths ${EG}-e0.., tcpreplay into the source,
# tcpdump on the egress peers (or on any interfaces: tcpdump_on), and
# ids_flows.py for the checks in Python.
# The script sets NS, SRC, SRCP, EG, NEG and TMP before calling these.
PID=; TD=()
# ids_flows.py is imported from the source tree: no __pycache__ there.
PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH PYTHONDONTWRITEBYTECODE=1

ids_cleanup_links() {
    local i
    ip link del "$SRC" 2>/dev/null
    for ((i = 0; i < NEG; i++)); do ip link del "$EG-e$i" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
}
# ids_cleanup: the EXIT trap: stops weir ($PID) and tcpdump, removes the links and TMP.
ids_cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    for p in "${TD[@]}"; do kill "$p" 2>/dev/null; done
    ids_cleanup_links
    rm -rf "$TMP"
}
# ids_links: removes leftovers of an earlier run and makes the namespace and
# the veths, up and without IPv6 (no router solicitations or MLD reports on
# an egress). Exits 77 when no namespace can be made.
ids_links() {
    local l i
    ids_cleanup_links
    ip netns add "$NS" || { echo "SKIP: cannot create a network namespace"; exit 77; }
    ip link add "$SRC" type veth peer name "$SRCP"
    ip link set "$SRCP" netns "$NS"
    for ((i = 0; i < NEG; i++)); do
        ip link add "$EG-e$i" type veth peer name "$EG-p$i"
        ip link set "$EG-p$i" netns "$NS"
    done
    for l in "$SRC" $(for ((i = 0; i < NEG; i++)); do echo "$EG-e$i"; done); do
        sysctl -qw net.ipv6.conf."$l".disable_ipv6=1; ip link set "$l" up
    done
    for l in "$SRCP" $(for ((i = 0; i < NEG; i++)); do echo "$EG-p$i"; done); do
        ip netns exec "$NS" sysctl -qw net.ipv6.conf."$l".disable_ipv6=1; ip netns exec "$NS" ip link set "$l" up
    done
}
# replay FILE PPS: sends FILE into the source veth from inside the namespace.
replay() { ip netns exec "$NS" tcpreplay -q -i "$SRCP" --pps "$2" "$1" >/dev/null 2>&1; }
# tcpdump_on TAG NS IF...: records the k-th interface named to $TMP/TAG<k>.pcap,
# inside namespace NS (here when NS is ""); returns once every tcpdump
# listens (or after 10 s).
tcpdump_on() {
    local tag=$1 ns=$2 i n pre=()
    shift 2
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    for ((i = 1; i <= $#; i++)); do
        "${pre[@]}" tcpdump -i "${!i}" -w "$TMP/$tag$((i-1)).pcap" -U -B 16384 -s 0 -n 2>"$TMP/td$tag$((i-1)).err" &
        TD+=($!)
    done
    for _ in $(seq 100); do
        n=0; for ((i = 0; i < $#; i++)); do grep -q "listening on" "$TMP/td$tag$i.err" && n=$((n+1)); done
        [ $n -eq $# ] && break; sleep 0.1
    done
}
# start_tcpdump TAG: records egress peer i to $TMP/TAG$i.pcap (tcpdump_on).
start_tcpdump() {
    local i ifs=()
    for ((i = 0; i < NEG; i++)); do ifs+=("$EG-p$i"); done
    tcpdump_on "$1" "$NS" "${ifs[@]}"
}
# stop_tcpdump: lets the last frames in, then ends every tcpdump cleanly.
stop_tcpdump() { sleep 0.5; for p in "${TD[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; TD=(); }
