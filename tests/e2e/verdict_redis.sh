#!/usr/bin/env bash
# Verdicts over Redis pub/sub through the weir binary: a private
# redis-server (requirepass, a free loopback port, never 6379), weir with
# AF_XDP on a veth and --verdict-redis (password from a file); weirctl
# verdict --redis adds, lists and deletes; Redis is killed and restarted on
# the same port: weir logs one outage, reconnects, and the verdicts
# installed before are still there. Needs root, redis-server, python3 and
# weir built with AF_XDP (exit 77 otherwise).
set -u
. "$(dirname "$0")/../support/e2e_lib.sh"
WEIR=${WEIR_BIN:?}
CTL="$(dirname "$WEIR")/weirctl/weirctl"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in ip redis-server python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
[ -x "$CTL" ] || { echo "SKIP: weirctl not built"; exit 77; }
"$WEIR" --help 2>&1 | grep -q -- --verdict-redis || { echo "SKIP: weir built without hiredis"; exit 77; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

NS=wrdrns; OUT=wrdro; IN=wrdri
TMP=$(mktemp -d)
PID=; RPID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "$RPID" ] && kill -9 "$RPID" 2>/dev/null
    ip link del $OUT 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
veth_to_ns $NS $OUT $IN || { echo "FAIL: cannot make the veth pair"; exit 1; }


PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PW=wrd-$RANDOM-$RANDOM
printf '%s\n' "$PW" > "$TMP/pw"; chmod 600 "$TMP/pw"
start_redis() {
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --requirepass "$PW" >/dev/null &
    RPID=$!
    for _ in $(seq 50); do REDISCLI_AUTH=$PW redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    return 1
}
check "redis-server on 127.0.0.1:$PORT" "start_redis"
URL="redis://127.0.0.1:$PORT/wrd.verdicts"

"$WEIR" -i "xdp:$OUT" --verdict-redis "$URL" --verdict-redis-password-file "$TMP/pw" \
        -q --stats-interval 0 --duration 120 2>"$TMP/err" &
PID=$!
for _ in $(seq 100); do grep -q "subscribed to wrd.verdicts" "$TMP/err" && break; sleep 0.1; done
check "weir subscribed to the channel" "grep -q 'subscribed to wrd.verdicts' $TMP/err"
CTLR=("$CTL" verdict --redis "$URL" --redis-password-file "$TMP/pw" --timeout-ms 5000)

"${CTLR[@]}" add --src 10.7.0.1 --dst 10.7.0.2 --sport 1234 --dport 80 --proto tcp --verdict drop --reason redis > "$TMP/add.json"
check "add through Redis" "[ $? -eq 0 ] && grep -q '\"installed\":1' $TMP/add.json"
check "the reply carries the request's id" "grep -q '\"id\":\"weirctl-' $TMP/add.json"
"${CTLR[@]}" add --subnet 10.8.0.0/16 --verdict shunt --after 2 >/dev/null
check "subnet add through Redis" "[ $? -eq 0 ]"
"${CTLR[@]}" raw '{"op":"add","flow":{"src":"1.2.3.4"}}' > "$TMP/bad.json"
check "a malformed request gets an error reply (exit 1)" "[ $? -eq 1 ] && grep -q '\"ok\":false' $TMP/bad.json"
"$CTL" verdict --redis "$URL" --timeout-ms 2000 list > /dev/null 2>&1
check "without the password the client is refused" "[ $? -eq 2 ]"

# A reply seen by an independent subscriber (redis-cli) on <channel>.reply.
timeout 5 env REDISCLI_AUTH=$PW redis-cli -p "$PORT" subscribe wrd.verdicts.reply > "$TMP/sub.txt" 2>/dev/null &
SUB=$!
sleep 0.3
REDISCLI_AUTH=$PW redis-cli -p "$PORT" publish wrd.verdicts '{"op":"stats","id":42}' > "$TMP/pub.txt"
sleep 0.5; kill $SUB 2>/dev/null; wait $SUB 2>/dev/null
check "redis-cli PUBLISH reaches weir (1 subscriber)" "grep -qx 1 $TMP/pub.txt"
check "reply on wrd.verdicts.reply carries id 42" "grep -q '\"id\":42,' $TMP/sub.txt"

# Redis goes away and comes back on the same port.
kill -9 $RPID; wait $RPID 2>/dev/null; RPID=
sleep 1
"${CTLR[@]}" list > /dev/null 2>&1
check "while Redis is down the client fails (exit 2)" "[ $? -eq 2 ]"
sleep 1
check "restarted redis-server" "start_redis"
for _ in $(seq 100); do [ "$(grep -c 'subscribed to wrd.verdicts' $TMP/err)" -ge 2 ] && break; sleep 0.1; done
check "weir re-subscribed" "[ $(grep -c 'subscribed to wrd.verdicts' $TMP/err) -eq 2 ]"
check "the outage logged once (not once per retry)" "[ $(grep -c 'verdict redis: lost' $TMP/err) -eq 1 ] && [ $(grep -c 'retrying' $TMP/err) -eq 0 ]"
"${CTLR[@]}" list > "$TMP/list.json"
check "list after the restart" "[ $? -eq 0 ]"
python3 - "$TMP/list.json" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
flows = [(f["flow"]["src"], f["flow"]["dst"], f["verdict"], f.get("reason")) for f in l["flows"]]
subs = [(s["subnet"], s["verdict"]) for s in l.get("subnets", [])]
print("flows", flows, "subnets", subs)
ok = sorted(flows) == [("10.7.0.1", "10.7.0.2", "drop", "redis")] and subs == [("10.8.0.0/16", "shunt")]
sys.exit(0 if ok else 1)
PY
check "the verdicts installed before the outage are intact" "[ $? -eq 0 ]"
"${CTLR[@]}" del --src 10.7.0.2 --dst 10.7.0.1 --sport 80 --dport 1234 --proto tcp > "$TMP/del.json"
check "del (endpoints the other way round) through Redis" "[ $? -eq 0 ] && grep -q '\"removed\":1' $TMP/del.json"

# A batch larger than one command-line argument, from stdin.
python3 -c '
import json
print(json.dumps({"op": "add", "items": [{"flow": {"src": "10.9.%d.%d" % (i >> 8, i & 255), "dst": "10.10.0.1",
      "sport": 1024 + i, "dport": 443, "proto": "udp"}, "verdict": "drop", "reason": "batch"} for i in range(5000)]}))' \
    > "$TMP/batch.json"
"${CTLR[@]}" raw - < "$TMP/batch.json" > "$TMP/batch.out"
check "a 5000-verdict batch ($(wc -c < $TMP/batch.json) bytes) from stdin through Redis" "[ $? -eq 0 ] && grep -q '\"installed\":5000' $TMP/batch.out"

kill -TERM $PID; wait $PID; rc=$?; PID=
check "weir exits 0" "[ $rc -eq 0 ]"
summary
