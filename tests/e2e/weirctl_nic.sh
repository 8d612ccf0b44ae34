#!/usr/bin/env bash
# weirctl nic on a veth pair made here: text and JSON reports, --setup
# (channels, symmetric RSS = not supported on veth, capture offloads off,
# promiscuous on) checked against ethtool/ip, and a missing interface.
# Needs root; exit 77 (skip) otherwise or when weirctl was not built.
set -u
. "$(dirname "$0")/../support/e2e_lib.sh"
WEIR=${WEIR_BIN:?WEIR_BIN not set}
WEIRCTL=$(dirname "$WEIR")/weirctl/weirctl
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for a veth pair"; exit 77; }
[ -x "$WEIRCTL" ] || { echo "skip: $WEIRCTL not built"; exit 77; }
command -v ip >/dev/null || { echo "skip: iproute2 missing"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }

OUT=wneo IN=wnei NS=wnens
remove_pair() { ip link del "$OUT" 2>/dev/null; ip netns del "$NS" 2>/dev/null; }
TMP=$(mktemp -d)
trap 'remove_pair; rm -rf "$TMP"' EXIT
veth_to_ns "$NS" "$OUT" "$IN" queues=4 || { echo "FAIL: cannot make veth pair"; exit 1; }

fail=0; pass=0
check() { # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "ok: $what"; pass=$((pass+1)); else echo "FAIL: $what"; fail=$((fail+1)); fi
}
has() { grep -Eq "$2" "$1" || { echo "  '$2' not in $1:"; sed 's/^/    /' "$1" | head -40; return 1; }; }
json() { # json <file> <python expression over d, true/false>
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" ||
    { echo "  JSON check failed: $2"; head -c 3000 "$1" | sed 's/^/    /'; return 1; }
}

# Start from a known state: GRO and TSO on, promiscuous off.
if command -v ethtool >/dev/null; then ethtool -K "$OUT" gro on tso on gso on >/dev/null 2>&1; fi
ip link set "$OUT" promisc off

# Text report.
"$WEIRCTL" nic "$OUT" --workers 8 >"$TMP/text" 2>"$TMP/err"; rc=$?
check "text report exits 0" test "$rc" -eq 0
check "text: driver veth" has "$TMP/text" "driver: +veth"
check "text: 4 rx queues" has "$TMP/text" "queues: +4 rx, 4 tx"
check "text: rss not supported" has "$TMP/text" "rss: +not supported"
check "text: zero-copy no" has "$TMP/text" "zero-copy no"
check "text: warns about queues" has "$TMP/text" "4 RX queues for 8 workers"
check "text: warns about promisc" has "$TMP/text" "promiscuous mode is off"
check "text: warns about copy mode" has "$TMP/text" "copy mode"
if command -v ethtool >/dev/null; then
  check "text: warns about GRO" has "$TMP/text" "rx-gro is on"
fi

# JSON report.
"$WEIRCTL" nic "$OUT" --json >"$TMP/json" 2>"$TMP/err"; rc=$?
check "json report exits 0" test "$rc" -eq 0
check "json: interface and driver" json "$TMP/json" "d['interface']=='$OUT' and d['driver']['name']=='veth'"
check "json: queues" json "$TMP/json" "d['queues']=={'rx':4,'tx':4}"
check "json: channels max rx 4" json "$TMP/json" "d['channels']['support']=='supported' and d['channels']['max']['rx']==4"
check "json: rss not supported" json "$TMP/json" "d['rss']['support']=='not supported'"
check "json: link up, promisc off" json "$TMP/json" "d['link']['admin_up'] and not d['link']['promisc']"
check "json: offloads listed" json "$TMP/json" "'rx-gro' in d['offloads'] and d['offloads']['rx-lro']['fixed']"
check "json: xdp none, no zero-copy" json "$TMP/json" \
  "d['xdp']['attached']=='none' and (d['xdp']['zero_copy'] in (False, None))"
check "json: no setup section without --setup" json "$TMP/json" "'setup' not in d"
check "json: warnings is a list" json "$TMP/json" "isinstance(d['warnings'], list) and len(d['warnings'])>0"

# --setup: channels done, RSS not supported (a warning, exit 0), offloads
# off, promiscuous on.
"$WEIRCTL" nic "$OUT" --setup --queues 2 --json >"$TMP/setup" 2>"$TMP/err"; rc=$?
check "setup exits 0 (not-supported is a warning)" test "$rc" -eq 0
check "setup: channels done" json "$TMP/setup" \
  "[s['status'] for s in d['setup'] if s['step']=='channels']==['done']"
check "setup: symmetric-rss not supported" json "$TMP/setup" \
  "[s['status'] for s in d['setup'] if s['step']=='symmetric-rss']==['not supported by driver']"
check "setup: offloads done" json "$TMP/setup" \
  "[s['status'] for s in d['setup'] if s['step']=='capture-offloads-off']==['done']"
check "setup: promisc done" json "$TMP/setup" \
  "[s['status'] for s in d['setup'] if s['step']=='promisc-on']==['done']"
check "setup: state after" json "$TMP/setup" \
  "d['queues']['rx']==2 and d['link']['promisc'] and not d['offloads']['rx-gro']['active'] and not d['offloads']['tx-tcp-segmentation']['active']"
check "setup: ip shows PROMISC" sh -c "ip link show $OUT | grep -q PROMISC"
check "setup: sysfs shows 2 rx queues" test "$(ls -d /sys/class/net/$OUT/queues/rx-* | wc -l)" -eq 2
if command -v ethtool >/dev/null; then
  ethtool -k "$OUT" >"$TMP/k"
  check "setup: ethtool sees GRO off" has "$TMP/k" "generic-receive-offload: off"
  check "setup: ethtool sees TSO off" has "$TMP/k" "tcp-segmentation-offload: off"
fi

# Text --setup prints each step.
"$WEIRCTL" nic "$OUT" --setup >"$TMP/setup_text" 2>"$TMP/err"; rc=$?
check "text setup exits 0" test "$rc" -eq 0
check "text setup: rss step" has "$TMP/setup_text" "symmetric-rss +not supported by driver"
check "text setup: promisc step" has "$TMP/setup_text" "promisc-on +done"

# A queue count above the device's maximum fails the step and the run.
"$WEIRCTL" nic "$OUT" --setup --queues 16 >"$TMP/toomany" 2>"$TMP/err"; rc=$?
check "setup with too many queues exits 1" test "$rc" -eq 1
check "setup with too many queues says why" has "$TMP/toomany" "channels +failed: .*at most 4"

# Missing interface: exit 1 and a clear message.
"$WEIRCTL" nic wnenosuch0 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "missing interface exits 1" test "$rc" -eq 1
check "missing interface message" has "$TMP/err" "wnenosuch0: no such interface"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
