#!/usr/bin/env bash
# A real capture replayed (tcpreplay) into a veth pair and captured by weir
# on the other end with each live back-end (AF_XDP, AF_PACKET, libpcap, DPDK
# on net_af_packet) gives the same flows (packets and bytes per flow key) as
# weir reading the file, with every frame accounted: received + dropped ==
# sent. Needs root, iproute2 and tcpreplay (exit 77 otherwise); a back-end
# this weir was built without is reported as SKIP.
set -u
. "$(dirname "$0")/../support/e2e_lib.sh"
WEIR=${WEIR_BIN:?}; SHARED=${WEIR_SHARED_DIR:?}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
for t in ip tcpreplay python3; do
  command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
CAPS=("$SHARED/pcaps/ndpi/pcap/netflix.pcap" "$SHARED/pcaps/ndpi/pcap/teams.pcap" "$SHARED/pcaps/ndpi/pcap/synscan.pcap")
for c in "${CAPS[@]}"; do [ -f "$c" ] || { echo "SKIP: $c missing"; exit 77; }; done

NS=wlcns; OUT=wlco; IN=wlci
TMP=$(mktemp -d)
cleanup() { ip link del $OUT 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
cleanup; TMP=$(mktemp -d)
veth_to_ns $NS $OUT $IN noipv6 || { echo "FAIL: cannot make the veth pair"; exit 1; }

skipped=0

# Per flow key (protocol and both endpoints, unordered): packets and bytes,
# summed over the records of that key.
flows() {
  python3 - "$1" <<'PY'
import json, sys, collections
agg = collections.defaultdict(lambda: [0, 0])
for line in open(sys.argv[1]):
    f = json.loads(line)
    src = f.get("IPV4_SRC_ADDR") or f.get("IPV6_SRC_ADDR"); dst = f.get("IPV4_DST_ADDR") or f.get("IPV6_DST_ADDR")
    a, b = sorted([f"{src}:{f['L4_SRC_PORT']}", f"{dst}:{f['L4_DST_PORT']}"])
    k = f"{f['PROTOCOL']} {a} {b} vlan{f.get('SRC_VLAN', 0)}"
    agg[k][0] += f["IN_PKTS"] + f["OUT_PKTS"]; agg[k][1] += f["IN_BYTES"] + f["OUT_BYTES"]
for k in sorted(agg): print(k, *agg[k])
PY
}

# The file, replayed: one capture made of both inputs back to back.
i=0
for c in "${CAPS[@]}"; do
  "$WEIR" -i "$c" --json "$TMP/exp$i.json" -q -d 86400 -t 86400 2>/dev/null
  i=$((i+1))
done
cat "$TMP"/exp*.json > "$TMP/expected.json"
flows "$TMP/expected.json" > "$TMP/expected.txt"
SENT=0
for c in "${CAPS[@]}"; do SENT=$((SENT + $(python3 -c '
import struct,sys
d=open(sys.argv[1],"rb").read(); e="<" if d[:4] in (b"\xd4\xc3\xb2\xa1",b"\x4d\x3c\xb2\xa1") else ">"
o=24; n=0
while o+16<=len(d):
    n+=1; o+=16+struct.unpack(e+"I",d[o+8:o+12])[0]
print(n)' "$c"))); done
echo "expected: $(wc -l < "$TMP/expected.txt") flow keys, $SENT frames"
# The same with a capture filter: weir -B on the files (libpcap's interpreter).
FILTER="udp or icmp"
FSENT=0; i=0
for c in "${CAPS[@]}"; do
  "$WEIR" -i "$c" -B "$FILTER" --json "$TMP/fexp$i.json" -q -d 86400 -t 86400 --summary-json "$TMP/fexp$i.sum" 2>/dev/null
  FSENT=$((FSENT + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$TMP/fexp$i.sum")))
  i=$((i+1))
done
cat "$TMP"/fexp*.json > "$TMP/fexpected.json"
flows "$TMP/fexpected.json" > "$TMP/fexpected.txt"
echo "expected with -B '$FILTER': $(wc -l < "$TMP/fexpected.txt") flow keys, $FSENT frames"
WANT_TXT=$TMP/expected.txt; WANT_N=$SENT

run_backend() { # name, -i spec, extra args...
  local name=$1 spec=$2; shift 2
  local json=$TMP/$name.json stats=$TMP/$name.stats err=$TMP/$name.err
  "$WEIR" -i "$spec" "$@" --json "$json" -q -d 86400 -t 86400 --stats-interval 0 --stats-json "$stats" \
          --summary-json "$TMP/$name.summary" --duration 60 2>"$err" &
  local pid=$!
  # Ready once the capture is open (it says so), or gone with an error.
  for _ in $(seq 1 100); do
    grep -q "capturing on" "$err" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 $pid 2>/dev/null; then
    wait $pid; local rc=$?
    if grep -q "built without" "$err"; then
      echo "SKIP: $name: $(cat "$err")"; skipped=$((skipped+1)); return
    fi
    check "$name: capture opens (rc $rc: $(head -c 300 "$err"))" false; return
  fi
  sleep 0.3
  for c in "${CAPS[@]}"; do
    ip netns exec $NS tcpreplay -q -i $IN --pps 20000 "$c" >/dev/null 2>&1
  done
  # Wait (bounded) until every frame was received or counted as dropped.
  local got=0
  for _ in $(seq 1 100); do
    got=$(python3 -c '
import json,sys
last=None
for l in open(sys.argv[1]):
    last=json.loads(l)
print(0 if not last else last["packets"]+last["capture_drops"])' "$stats" 2>/dev/null || echo 0)
    [ "$got" -ge "$WANT_N" ] && break
    sleep 0.1
  done
  kill -TERM $pid; wait $pid; local rc=$?
  check "$name: exits 0 on SIGTERM (rc $rc)" "[ $rc -eq 0 ]"
  local rx drops
  read -r rx drops < <(python3 -c '
import json,sys
s=json.load(open(sys.argv[1])); print(s["packets"], s["capture_drops"])' "$TMP/$name.summary" 2>/dev/null || echo "0 0")
  check "$name: received + dropped == sent ($rx + $drops vs $WANT_N)" "[ \$((rx + drops)) -eq $WANT_N ]"
  flows "$json" > "$TMP/$name.txt"
  check "$name: same flows as the file ($(wc -l < "$TMP/$name.txt") keys)" "diff -q $WANT_TXT $TMP/$name.txt >/dev/null || { diff $WANT_TXT $TMP/$name.txt | head -5; false; }"
}

# Rings hold the whole replay, so a reader descheduled on a busy machine
# loses nothing (drops are still counted; flows would then differ).
XDP_RINGS="--xdp-ring-size 8192 --xdp-umem-frames 16384"
run_backend afxdp "xdp:$OUT" $XDP_RINGS
run_backend afpacket "afpacket:$OUT"
run_backend pcap "pcap:$OUT"
run_backend dpdk "dpdk:net_af_packet0,iface=$OUT,framecnt=8192" --dpdk-args "-l 0 --no-huge -m 512 --no-pci --file-prefix wlc$$ --log-level=*:error"

# -B on each back-end: kernel cBPF (AF_PACKET, libpcap) or user space (AF_XDP, DPDK).
WANT_TXT=$TMP/fexpected.txt; WANT_N=$FSENT
run_backend afxdp_filter "xdp:$OUT" $XDP_RINGS -B "$FILTER"
run_backend afpacket_filter "afpacket:$OUT" -B "$FILTER"
run_backend pcap_filter "pcap:$OUT" -B "$FILTER"
run_backend dpdk_filter "dpdk:net_af_packet0,iface=$OUT,framecnt=8192" -B "$FILTER" --dpdk-args "-l 0 --no-huge -m 512 --no-pci --file-prefix wlf$$ --log-level=*:error"

echo "$pass passed, $fail failed, $skipped skipped"
[ "$pass" -gt 0 ] || exit 77
[ "$fail" -eq 0 ]
