#!/usr/bin/env bash
# weir's command line on bad input: a clear message and the right exit code,
# never a crash. Exit codes: 0 ok, 1 cannot run, 2 bad option (CLI11),
# 3 ran but an input ended early.
set -u
WEIR=${WEIR_BIN:?WEIR_BIN not set}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/../support/e2e_lib.sh"
DEMO=${WEIR_SOURCE_DIR:?}/tools/demo/demo.pcap

expect_weir 1 "No such file" -- -i "$TMP/missing.pcap"
expect_weir 1 "[Ii]s a directory" -- -i "$TMP"
: > "$TMP/empty.pcap"
expect_weir 1 "empty|too short|not a" -- -i "$TMP/empty.pcap"
head -c 4000 /dev/urandom > "$TMP/garbage.pcap"
expect_weir 1 "not a|magic|unknown|format" -- -i "$TMP/garbage.pcap"
# A capture cut in the middle of a record: every packet before the cut counts.
head -c 50000 "$DEMO" > "$TMP/cut.pcap"
expect_weir 3 "ended early|truncated" -- -i "$TMP/cut.pcap"
# Unknown link type (LINKTYPE 147, user 0) in an otherwise valid header.
python3 - "$TMP/lt.pcap" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 147))
    f.write(struct.pack("<IIII", 1, 0, 4, 4) + b"abcd")
PY
expect_weir 1 "link type 147" -- -i "$TMP/lt.pcap"
expect_weir 2 "workers|Range|range" -- -i "$DEMO" --workers 1000
expect_weir 2 "idle|Range|range" -- -i "$DEMO" -d 0
expect_weir 2 "bytes|not in|member" -- -i "$DEMO" --bytes kilo
expect_weir 2 "required|input" --
expect_weir 1 "cannot write" -- -i "$DEMO" --json /nonexistent-dir/x.json

summary
