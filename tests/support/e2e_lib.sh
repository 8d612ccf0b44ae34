# Shared pieces of the e2e scripts (sourced, not run): the check counter and
# a veth pair with one end in a namespace of the test's own.

fail=0; pass=0
# check NAME EXPR: evaluates EXPR, prints ok/FAIL with NAME and counts it.
check() { if eval "$2"; then echo "ok: $1"; pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }
# summary: the closing line; its status is the script's verdict.
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }

# veth_to_ns NS OUT IN [noipv6] [queues=N]: removes leftovers of an earlier
# run, makes namespace NS and a veth pair OUT <-> IN with IN inside NS, both
# up. With noipv6 neither end speaks IPv6 (no router solicitations or MLD
# reports in a capture); with queues=N both ends have N RX and N TX queues.
# Returns non-zero if the kernel refused any step.
veth_to_ns() {
    local ns=$1 out=$2 in=$3 v6="" q=() opt
    shift 3
    for opt in "$@"; do
        case $opt in
            noipv6) v6=noipv6 ;;
            queues=*) q=(numrxqueues "${opt#queues=}" numtxqueues "${opt#queues=}") ;;
            *) echo "veth_to_ns: unknown option $opt" >&2; return 1 ;;
        esac
    done
    ip link del "$out" 2>/dev/null; ip netns del "$ns" 2>/dev/null
    ip netns add "$ns" && ip link add "$out" "${q[@]}" type veth peer name "$in" "${q[@]}" &&
        ip link set "$in" netns "$ns" || return 1
    if [ "$v6" = noipv6 ]; then
        sysctl -qw net.ipv6.conf."$out".disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf."$in".disable_ipv6=1
    fi
    ip link set "$out" up && ip netns exec "$ns" ip link set "$in" up
}

# expect_weir RC REGEX -- ARGS...: runs "$WEIR ARGS... -q" (stdout and stderr
# in $TMP/out and $TMP/err) and counts ok when it exits RC with a stderr line
# matching the extended regex REGEX; a FAIL shows the head of stderr.
expect_weir() {
    local want_rc=$1 want_msg=$2; shift 3
    "$WEIR" "$@" -q >"$TMP/out" 2>"$TMP/err"; local rc=$?
    if [ "$rc" -ne "$want_rc" ] || ! grep -Eq "$want_msg" "$TMP/err"; then
        echo "FAIL: weir $* -> rc $rc (want $want_rc), stderr:"; sed 's/^/  /' "$TMP/err" | head -5; fail=$((fail+1))
    else
        echo "ok: weir $* -> rc $rc: $(grep -Em1 "$want_msg" "$TMP/err")"; pass=$((pass+1))
    fi
}
