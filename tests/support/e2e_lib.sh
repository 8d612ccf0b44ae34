# Shared pieces of the e2e scripts (sourced, not run): the check counter and
# a veth pair with one end in a namespace of the test's own.

fail=0; pass=0
# check NAME EXPR: evaluates EXPR, prints ok/FAIL with NAME and counts it.
check() { if eval "$2"; then echo "ok: $1"; pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }
# summary: the closing line; its status is the script's verdict.
summary() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }

# veth_to_ns NS OUT IN [noipv6]: removes leftovers of an earlier run, makes
# namespace NS and a veth pair OUT <-> IN with IN inside NS, both up. With
# noipv6 neither end speaks IPv6 (no router solicitations or MLD reports
# in a capture). Returns non-zero if the kernel refused any step.
veth_to_ns() {
    local ns=$1 out=$2 in=$3 v6=${4:-}
    ip link del "$out" 2>/dev/null; ip netns del "$ns" 2>/dev/null
    ip netns add "$ns" && ip link add "$out" type veth peer name "$in" && ip link set "$in" netns "$ns" || return 1
    if [ "$v6" = noipv6 ]; then
        sysctl -qw net.ipv6.conf."$out".disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf."$in".disable_ipv6=1
    fi
    ip link set "$out" up && ip netns exec "$ns" ip link set "$in" up
}
