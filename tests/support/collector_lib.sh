# shellcheck shell=bash
# Shared pieces of the export and collector e2e scripts (sourced, not run):
# skip/fail, the captures a script reads, a scratch directory whose
# background processes die with the script, free loopback ports, waiting
# for a log line, and a socket receive buffer limit raised for the run.

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

# need_collector: COLLECTOR, weir-collector built next to $WEIR_BIN (or
# $WEIR_COLLECTOR_BIN); skips the test when it is not there.
need_collector() {
    COLLECTOR=${WEIR_COLLECTOR_BIN:-$(dirname "$WEIR_BIN")/weir-collector}
    [ -x "$COLLECTOR" ] || skip "weir-collector not built at $COLLECTOR"
}

# need_export_driver: DRIVER, the exporter test driver (captures -> engine
# -> NetFlow/IPFIX) of the build (or $WEIR_EXPORT_DRIVER); skips the test
# when it is not built.
need_export_driver() {
    DRIVER=${WEIR_EXPORT_DRIVER:-$(dirname "$WEIR_BIN")/../tests/weir_export_driver}
    [ -x "$DRIVER" ] || skip "test driver $DRIVER not built"
}

# need_caps DIR CAP...: skips the test unless every capture is in DIR;
# CAP_LIST gets them as one weir -i list ("DIR/a,DIR/b").
need_caps() {
    local dir=$1 c
    shift
    CAP_LIST=""
    for c in "$@"; do
        [ -f "$dir/$c" ] || skip "capture $dir/$c missing"
        CAP_LIST="${CAP_LIST:+$CAP_LIST,}$dir/$c"
    done
}

# scratch_dir TEMPLATE: TMP, a new directory from mktemp TEMPLATE, and an
# EXIT trap that kills (and reaps) every pid in PIDS, puts back what
# raise_rmem changed and removes TMP (kept with KEEP_TMP=1).
OLD_RMEM=
scratch_dir() {
    TMP=$(mktemp -d "$1")
    PIDS=()
    trap scratch_cleanup EXIT
}
scratch_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "$OLD_RMEM" ]; then sysctl -q -w net.core.rmem_max="$OLD_RMEM"; fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "files kept in $TMP"; else rm -rf "$TMP"; fi
}

# raise_rmem: net.core.rmem_max of at least 32 MiB for the collectors'
# receive buffers (bursts of datagrams on lo), restored at exit; skips the
# test when the kernel refuses.
raise_rmem() {
    local cur
    cur=$(cat /proc/sys/net/core/rmem_max)
    if [ "$cur" -lt 33554432 ]; then
        sysctl -q -w net.core.rmem_max=33554432 || skip "cannot raise net.core.rmem_max"
        OLD_RMEM=$cur
    fi
}

# free_port udp|tcp: a port nothing uses on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket,sys; t=socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM
s=socket.socket(socket.AF_INET, t); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

# wait_for FILE PATTERN SECONDS: 0 once FILE has a line matching PATTERN.
wait_for() {
    local _
    for _ in $(seq 1 $(( $3 * 10 ))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_nfcapd_recorded DIR PORT: tcpdump recording the datagrams to
# 127.0.0.1:PORT (DIR/cap.pcap) and nfcapd on that port writing DIR/nf,
# both listening on return (else the test fails); their pids are in PIDS
# and in TCPDUMP_PID / NFCAPD_PID.
start_nfcapd_recorded() {
    local dir=$1 port=$2
    tcpdump -i lo -U -w "$dir/cap.pcap" "udp and dst port $port" >"$dir/tcpdump.log" 2>&1 &
    TCPDUMP_PID=$!; PIDS+=("$TCPDUMP_PID")
    wait_for "$dir/tcpdump.log" "listening on" 10 || fail "tcpdump did not start: $(cat "$dir/tcpdump.log")"
    nfcapd -B 16777216 -b 127.0.0.1 -p "$port" -w "$dir/nf" >"$dir/nfcapd.log" 2>&1 &
    NFCAPD_PID=$!; PIDS+=("$NFCAPD_PID")
    wait_for "$dir/nfcapd.log" "Startup" 10 || fail "nfcapd did not start: $(cat "$dir/nfcapd.log")"
}
