#!/usr/bin/env bash
# weir --per-queue on what it cannot run on: a clear message and the right
# exit code (1: cannot open the input that way, 2: options that do not go
# together), never a crash; and the option is in --help. Needs no root.
set -u
WEIR=${WEIR_BIN:?WEIR_BIN not set}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
fail=0; pass=0
expect() { # expect <rc> <message-regex> -- args...
  local want_rc=$1 want_msg=$2; shift 3
  "$WEIR" "$@" -q >"$TMP/out" 2>"$TMP/err"; local rc=$?
  if [ "$rc" -ne "$want_rc" ] || ! grep -Eq "$want_msg" "$TMP/err"; then
    echo "FAIL: weir $* -> rc $rc (want $want_rc), stderr:"; sed 's/^/  /' "$TMP/err" | head -5; fail=$((fail+1))
  else
    echo "ok: weir $* -> rc $rc: $(grep -Em1 "$want_msg" "$TMP/err")"; pass=$((pass+1))
  fi
}
DEMO=${WEIR_SOURCE_DIR:?}/tools/demo/demo.pcap

expect 1 "per-queue needs live interfaces.*capture file" -- -i "$DEMO" --per-queue
expect 1 "per-queue needs live interfaces" -- -i "$DEMO,$DEMO" --per-queue
expect 1 "pcap:lo cannot be split by RX queue" -- -i pcap:lo --per-queue
expect 1 "interface 'pqnosuch0' does not exist" -- -i xdp:pqnosuch0 --per-queue
expect 2 "cannot be combined with -w/--workers" -- -i lo --per-queue -w 2
expect 2 "cannot be combined with -w/--workers" -- -i lo --per-queue -w 0
expect 2 "cannot be combined with --capture-only" -- -i lo --per-queue --capture-only
expect 2 "cannot be combined with --egress" -- -i lo --per-queue --egress lo
expect 2 "cannot be combined with IDS verdicts" -- -i lo --per-queue --verdict-pin /sys/fs/bpf/pqnone
# The option and its -g meaning are in --help.
"$WEIR" --help >"$TMP/help" 2>&1
if grep -q -- "--per-queue" "$TMP/help" && grep -q "queue thread i" "$TMP/help"; then
  echo "ok: --help documents --per-queue and -g"; pass=$((pass+1))
else
  echo "FAIL: --help lacks --per-queue"; fail=$((fail+1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
