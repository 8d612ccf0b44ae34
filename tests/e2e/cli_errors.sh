#!/usr/bin/env bash
# weir's command line on bad input: a clear message and the right exit code,
# never a crash. Exit codes: 0 ok, 1 cannot run, 2 bad option (CLI11),
# 3 ran but an input ended early.
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

expect 1 "No such file" -- -i "$TMP/missing.pcap"
expect 1 "[Ii]s a directory" -- -i "$TMP"
: > "$TMP/empty.pcap"
expect 1 "empty|too short|not a" -- -i "$TMP/empty.pcap"
head -c 4000 /dev/urandom > "$TMP/garbage.pcap"
expect 1 "not a|magic|unknown|format" -- -i "$TMP/garbage.pcap"
# A capture cut in the middle of a record: every packet before the cut counts.
head -c 50000 "$DEMO" > "$TMP/cut.pcap"
expect 3 "ended early|truncated" -- -i "$TMP/cut.pcap"
# Unknown link type (LINKTYPE 147, user 0) in an otherwise valid header.
python3 - "$TMP/lt.pcap" <<'PY'
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 147))
    f.write(struct.pack("<IIII", 1, 0, 4, 4) + b"abcd")
PY
expect 1 "link type 147" -- -i "$TMP/lt.pcap"
expect 2 "workers|Range|range" -- -i "$DEMO" --workers 1000
expect 2 "idle|Range|range" -- -i "$DEMO" -d 0
expect 2 "bytes|not in|member" -- -i "$DEMO" --bytes kilo
expect 2 "required|input" --
expect 1 "cannot write" -- -i "$DEMO" --json /nonexistent-dir/x.json

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
