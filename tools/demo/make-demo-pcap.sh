#!/usr/bin/env bash
# Regenerates tools/demo/demo.pcap: real traffic between two network
# namespaces made here (HTTP over IPv4 and IPv6, ping both ways, a UDP
# exchange, a refused TCP connection), captured with tcpdump. Needs root.
# The namespaces are removed at exit; nothing leaves them.
set -euo pipefail
OUT=${1:-$(dirname "$0")/demo.pcap}
A=weirdemo-a; B=weirdemo-b
command -v ping >/dev/null || apt-get install -y -qq iputils-ping >/dev/null
command -v curl >/dev/null || apt-get install -y -qq curl >/dev/null
command -v ethtool >/dev/null || apt-get install -y -qq ethtool >/dev/null

cleanup() {
  ip netns pids $B 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids $A 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $A 2>/dev/null || true
  ip netns del $B 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $A; ip netns add $B
ip link add va netns $A type veth peer name vb netns $B
ip -n $A addr add 10.200.0.1/24 dev va; ip -n $B addr add 10.200.0.2/24 dev vb
ip -n $A addr add fd00:200::1/64 dev va nodad; ip -n $B addr add fd00:200::2/64 dev vb nodad
ip -n $A link set va up; ip -n $B link set vb up
ip -n $A link set lo up; ip -n $B link set lo up
# Real NICs put MTU-sized frames on the wire: no segmentation offloads.
ip netns exec $A ethtool -K va tso off gso off gro off >/dev/null
ip netns exec $B ethtool -K vb tso off gso off gro off >/dev/null

WWW=$(mktemp -d); trap 'cleanup; rm -rf "$WWW"' EXIT
head -c 20000 /dev/urandom | base64 > "$WWW/index.html"
ip netns exec $B python3 -m http.server 8080 --bind :: --directory "$WWW" >/dev/null 2>&1 &
ip netns exec $B python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.200.0.2", 5353)); s.settimeout(10)
for _ in range(3):
    d, a = s.recvfrom(2048); s.sendto(d[::-1], a)
' &
sleep 1
ip netns exec $A tcpdump -i va -s 0 -U -w "$OUT" >/dev/null 2>&1 &
TCPDUMP=$!
sleep 1
ip netns exec $A curl -s -o /dev/null http://10.200.0.2:8080/index.html
ip netns exec $A curl -s -o /dev/null "http://[fd00:200::2]:8080/index.html"
ip netns exec $A ping -c 3 -i 0.2 10.200.0.2 >/dev/null
ip netns exec $B ping -c 2 -i 0.2 10.200.0.1 >/dev/null
ip netns exec $A ping -6 -c 2 -i 0.2 fd00:200::2 >/dev/null
ip netns exec $A python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for i in range(3):
    s.sendto(b"weir demo %d" % i, ("10.200.0.2", 5353)); s.recvfrom(2048)
'
ip netns exec $A curl -s -m 2 -o /dev/null http://10.200.0.2:9/ || true
ip netns exec $A curl -s -o /dev/null http://10.200.0.2:8080/index.html
sleep 1
kill -INT $TCPDUMP; wait $TCPDUMP 2>/dev/null || true
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
