#!/usr/bin/env bash
# weir --per-queue on what it cannot run on: a clear message and the right
# exit code (1: cannot open the input that way, 2: options that do not go
# together), never a crash; and the option is in --help. Needs no root.
set -u
WEIR=${WEIR_BIN:?WEIR_BIN not set}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/../support/e2e_lib.sh"
DEMO=${WEIR_SOURCE_DIR:?}/tools/demo/demo.pcap

expect_weir 1 "per-queue needs live interfaces.*capture file" -- -i "$DEMO" --per-queue
expect_weir 1 "per-queue needs live interfaces" -- -i "$DEMO,$DEMO" --per-queue
expect_weir 1 "pcap:lo cannot be split by RX queue" -- -i pcap:lo --per-queue
expect_weir 1 "interface 'pqnosuch0' does not exist" -- -i xdp:pqnosuch0 --per-queue
expect_weir 2 "cannot be combined with -w/--workers" -- -i lo --per-queue -w 2
expect_weir 2 "cannot be combined with -w/--workers" -- -i lo --per-queue -w 0
expect_weir 2 "cannot be combined with --capture-only" -- -i lo --per-queue --capture-only
expect_weir 2 "cannot be combined with --egress" -- -i lo --per-queue --egress lo
expect_weir 2 "cannot be combined with IDS verdicts" -- -i lo --per-queue --verdict-pin /sys/fs/bpf/pqnone
# The option and its -g meaning are in --help.
"$WEIR" --help >"$TMP/help" 2>&1
if grep -q -- "--per-queue" "$TMP/help" && grep -q "queue thread i" "$TMP/help"; then
  echo "ok: --help documents --per-queue and -g"; pass=$((pass+1))
else
  echo "FAIL: --help lacks --per-queue"; fail=$((fail+1))
fi
summary
