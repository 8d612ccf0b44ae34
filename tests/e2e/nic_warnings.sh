#!/usr/bin/env bash
# weir prints the NIC warnings of weir::nics (as `weirctl nic` does) once per
# live capture interface at start, "weir: warning: IF: ...", and lists them in
# --summary-json as nic_warnings; files get none. On a veth pair made here:
# GRO on must give the rx-gro warning (once, also with per-queue threads),
# GRO off must not; promiscuous mode is warned about only with --no-promisc.
# Needs root; exit 77 (skip) otherwise.
set -u
. "$(dirname "$0")/../support/e2e_lib.sh"
WEIR=${WEIR_BIN:?WEIR_BIN not set}
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root for a veth pair"; exit 77; }
command -v ip >/dev/null || { echo "skip: iproute2 missing"; exit 77; }
command -v ethtool >/dev/null || { echo "skip: ethtool missing"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }

OUT=pqwo IN=pqwi NS=pqwns
remove_pair() { ip link del "$OUT" 2>/dev/null; ip netns del "$NS" 2>/dev/null; }
TMP=$(mktemp -d)
trap 'remove_pair; rm -rf "$TMP"' EXIT
veth_to_ns "$NS" "$OUT" "$IN" queues=2 || { echo "FAIL: cannot make veth pair"; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

fail=0; pass=0
check() { # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "ok: $what"; pass=$((pass+1)); else echo "FAIL: $what"; fail=$((fail+1)); sed 's/^/    /' "$TMP/err" | head -20; fi
}
count() { grep -c -- "$2" "$1"; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$2"; } # json <expr over d> <file>
run() { # run <args...>: a short capture, stderr in $TMP/err, summary in $TMP/s.json
  rm -f "$TMP/s.json"
  timeout 20 "$WEIR" "$@" -q --duration 0.5 --stats-interval 0 --summary-json "$TMP/s.json" 2>"$TMP/err" >/dev/null
}

ethtool -K "$OUT" gro on >/dev/null 2>&1 || { echo "skip: cannot turn GRO on"; exit 77; }
run -i "afpacket:$OUT"
check "afpacket, GRO on: one rx-gro warning" [ "$(count "$TMP/err" "^weir: warning: $OUT: rx-gro is on")" -eq 1 ]
check "afpacket, GRO on: rx-gro in nic_warnings" json "any(w.startswith('$OUT: rx-gro is on') for w in d['nic_warnings'])" "$TMP/s.json"
check "every nic warning printed is in the summary" json "len(d['nic_warnings']) == $(count "$TMP/err" "^weir: warning: $OUT: ")" "$TMP/s.json"
check "weir holds promiscuous mode: no warning about it" [ "$(count "$TMP/err" "promiscuous mode is off")" -eq 0 ]
check "afpacket: no AF_XDP warnings" [ "$(count "$TMP/err" "AF_XDP")" -eq 0 ]

run -i "afpacket:$OUT" --capture-only
check "--capture-only: rx-gro warned and in nic_warnings" json "any(w.startswith('$OUT: rx-gro is on') for w in d['nic_warnings'])" "$TMP/s.json"

run -i "xdp:$OUT" --per-queue
check "xdp, 2 per-queue threads: rx-gro warned once" [ "$(count "$TMP/err" "^weir: warning: $OUT: rx-gro is on")" -eq 1 ]
check "xdp: weir's own program is not 'already attached'" [ "$(count "$TMP/err" "already attached")" -eq 0 ]
check "xdp: copy mode warned (veth has no zero-copy)" [ "$(count "$TMP/err" "^weir: warning: $OUT: .*copy mode")" -eq 1 ]
check "xdp --per-queue: per_queue in the summary" json "len(d['per_queue']) == 2" "$TMP/s.json"

run -i "afpacket:$OUT" --no-promisc
check "--no-promisc: promiscuous mode warning" [ "$(count "$TMP/err" "^weir: warning: $OUT: promiscuous mode is off")" -eq 1 ]

ethtool -K "$OUT" gro off >/dev/null 2>&1
run -i "afpacket:$OUT"
check "GRO off: no rx-gro warning" [ "$(count "$TMP/err" "rx-gro")" -eq 0 ]
check "GRO off: not in nic_warnings" json "not any('rx-gro' in w for w in d['nic_warnings'])" "$TMP/s.json"

run -i "${WEIR_SOURCE_DIR:?}/tools/demo/demo.pcap"
check "file: no NIC warning" [ "$(count "$TMP/err" "^weir: warning:")" -eq 0 ]
check "file: no nic_warnings member" json "'nic_warnings' not in d" "$TMP/s.json"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
