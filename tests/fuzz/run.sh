#!/usr/bin/env bash
# Builds the decoder fuzzer with clang (ASan + UBSan + libFuzzer) in its own
# build directory, seeds a corpus from frames of the shared captures and runs
# it for a bounded time. Fails on any crash, leak, sanitizer report or broken
# decoder invariant (the artifact is left in $FUZZ_BUILD_DIR/tests/fuzz/artifacts).
#
#   FUZZ_SECONDS     run time (default 60)
#   ZMQ_FUZZ_SECONDS run time of the ZMQ decoder fuzzer that follows (default 30)
#   DPI_FUZZ_SECONDS run time of each micro-DPI parser fuzzer (TLS, HTTP, DNS, SSH; default 20)
#   FLOW_FUZZ_SECONDS run time of the NetFlow/IPFIX decoder fuzzer (default 30)
#   FUZZ_BUILD_DIR   build directory (default <source>/build-fuzz)
#   WEIR_SHARED_DIR  captures (default <source>/../shared); seeds are optional
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
shared=${WEIR_SHARED_DIR:-$(cd "$src/.." && pwd)/shared}

CC=clang CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DWEIR_BUILD_FUZZ=ON -DWEIR_BUILD_BENCH=OFF -DWEIR_BUILD_TESTS=ON >/dev/null
ninja -C "$build" -j2 decoder_fuzz fuzz_seeds zmq_fuzz dpi_tls_fuzz dpi_http_fuzz dpi_dns_fuzz dpi_ssh_fuzz \
  dpi_udp_fuzz flow_decoder_fuzz

corpus=$build/tests/fuzz/corpus/decoder
artifacts=$build/tests/fuzz/artifacts
mkdir -p "$corpus" "$artifacts"

# A few captures per link type and per tunnel/encapsulation the decoder handles.
seeds=()
for f in ndpi/pcap/4in4tunnel.pcap ndpi/pcap/6in4tunnel.pcap ndpi/pcap/6in6tunnel.pcap ndpi/pcap/gre.pcapng \
         ndpi/pcap/vxlan.pcap ndpi/pcap/ipv6_in_gtp.pcap ndpi/pcap/gtp_c.pcap ndpi/pcap/dns_fragmented.pcap \
         ndpi/pcap/ip_fragmented_garbage.pcap ndpi/pcap/http_ipv6.pcap ndpi/pcap/KakaoTalk_talk.pcap \
         ndpi/pcap/nats.pcap ndpi/pcap/bjnp.pcap ndpi/pcap/kerberos_fuzz.pcapng ndpi/pcap/dlt_ppp.pcap \
         ndpi/pcap/someip_sd_sample.pcap ndpi/pcap/BGP_redist.pcap ndpi/pcap/fuzz-2006-06-26-2594.pcap \
         misc/test.pcap misc/test_fragroute.pcap; do
  [ -f "$shared/pcaps/$f" ] && seeds+=("$shared/pcaps/$f")
done
if [ "${#seeds[@]}" -gt 0 ]; then
  "$build/tests/fuzz/fuzz_seeds" "$corpus" 40 "${seeds[@]}"
else
  echo "run.sh: no captures under $shared/pcaps, fuzzing from an empty corpus" >&2
fi

echo "run.sh: fuzzing the decoder for ${seconds}s"
"$build/tests/fuzz/decoder_fuzz" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" -max_len=4096 "$corpus"

# ZMQ receiving side: seeds are the notes' TLV example behind a v4 header,
# plain and as ntopng's older 24-byte header.
zcorpus=$build/tests/fuzz/corpus/zmq
mkdir -p "$zcorpus"
tlv='0101 2b08000c3139322e3136382e312e3130 23079c40 220406 2501000000012a05f200 32e0ce1a 3be0f6000639312e313236 3ae0fb0000c03f b20007494e5f504b53540a 01'
v4="24 666c6f77000000000000000000000000 04 02 0000 36000000 36000000 00000001 4d000000"
v1="18 666c6f77000000000000000000000000 03 07 0000 00000001"
unhex() { local h=${1// /}; printf "$(sed 's/../\\x&/g' <<<"$h")"; }
unhex "$v4 $tlv" > "$zcorpus/seed-v4"
unhex "$v1 $tlv" > "$zcorpus/seed-v1"
zseconds=${ZMQ_FUZZ_SECONDS:-30}
echo "run.sh: fuzzing the ZMQ decoder for ${zseconds}s"
"$build/tests/fuzz/zmq_fuzz" -max_total_time="$zseconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/zmq-" -max_len=8192 "$zcorpus"

# NetFlow/IPFIX decoder: seeds are conversations (options byte, then
# 2-byte length + exporter byte + message): a v5 datagram, a v9 template +
# data datagram, and IPFIX template + data (RFC 5103 reverse counters, a
# variable-length field) followed by a withdrawal.
fcorpus=$build/tests/fuzz/corpus/flow_decoder
mkdir -p "$fcorpus"
msg() { local h=${2// /}; printf '%04x%s%s' $(( ${#h} / 2 )) "$1" "$h"; }
v5hdr='0005 0001 00001000 6553f100 00000000 00000000 0000 0000'
v5rec='0a000001 c0000201 00000000 0000 0000 0000000a 000005dc 00000800 00000f00 c350 01bb 00 1b 06 00 0000 0000 00 00 0000'
v9='0009 0002 00001000 6553f100 00000001 00000007 0000 001c 0100 0005 0008 0004 000c 0004 0001 0004 0002 0004 0004 0001'
v9="$v9 0100 0018 0a000001 c0000201 000005dc 0000000a 06 000000"
ipt='0002 0034 0100 000a 0008 0004 000c 0004 0007 0002 000b 0002 0004 0001 0001 0008 0002 0008 0098 0008 8001 0008 00007279 0060 ffff'
ipd='0100 0035 0a000001 c0000201 c350 01bb 06 00000000000005dc 000000000000000a 0000018bcfe56800 0000000000000800 03 646e73'
ip1="000a 0079 6553f100 00000000 00000007 $ipt $ipd"
ip2='000a 0018 6553f100 00000001 00000007 0002 0008 0100 0000'
unhex "00$(msg 01 "$v5hdr $v5rec")" > "$fcorpus/seed-v5"
unhex "00$(msg 02 "$v9")" > "$fcorpus/seed-v9"
unhex "24$(msg 81 "$ip1")$(msg 81 "$ip1")$(msg 81 "$ip2")" > "$fcorpus/seed-ipfix"
fseconds=${FLOW_FUZZ_SECONDS:-30}
echo "run.sh: fuzzing the NetFlow/IPFIX decoder for ${fseconds}s"
"$build/tests/fuzz/flow_decoder_fuzz" -max_total_time="$fseconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/flow-" -max_len=8192 "$fcorpus"

# micro-DPI parsers, seeded with L4 payloads of the shared captures (via
# tshark when it is installed): ClientHellos/ServerHellos, HTTP messages,
# DNS messages over UDP and TCP, SSH banners.
dseconds=${DPI_FUZZ_SECONDS:-20}
dpi_seed() { # corpus, capture, display filter, field
  local dir=$1 cap=$shared/pcaps/ndpi/pcap/$2 i=0
  [ -f "$cap" ] && command -v tshark >/dev/null || return 0
  tshark -r "$cap" -Y "$3" -T fields -e "$4" 2>/dev/null | head -20 | while read -r hex; do
    if [ -n "$hex" ]; then unhex "$hex" > "$dir/$2-$((i++))"; fi
  done || true # head closing the pipe ends tshark with SIGPIPE
}
for p in tls http dns ssh udp; do mkdir -p "$build/tests/fuzz/corpus/dpi_$p"; done
dpi_seed "$build/tests/fuzz/corpus/dpi_tls" tls_verylong_certificate.pcap "tls.handshake" tcp.payload
dpi_seed "$build/tests/fuzz/corpus/dpi_tls" 443-chrome.pcap "tls.handshake" tcp.payload
dpi_seed "$build/tests/fuzz/corpus/dpi_http" 1kxun.pcap "http" tcp.payload
dpi_seed "$build/tests/fuzz/corpus/dpi_dns" dns_exfiltration.pcap "dns" udp.payload
dpi_seed "$build/tests/fuzz/corpus/dpi_dns" dns-tunnel-iodine.pcap "dns" udp.payload
dpi_seed "$build/tests/fuzz/corpus/dpi_ssh" ssh.pcap "ssh.protocol" tcp.payload
# QUIC Initials (IETF, v2, T051), gQUIC CHLOs, DTLS hellos, STUN for dpi_udp_fuzz.
for cap in quic-29.pcap quic-v2.pcapng quic_frags_different_dcid.pcapng quic_t51.pcap quic046.pcap quic_q50.pcap \
  dtls2.pcap dtls_certificate_fragments.pcap stun.pcap zoom.pcap teams.pcap; do
  dpi_seed "$build/tests/fuzz/corpus/dpi_udp" "$cap" "udp" udp.payload
done
for p in tls http dns ssh udp; do
  echo "run.sh: fuzzing the micro-DPI $p parser for ${dseconds}s"
  "$build/tests/fuzz/dpi_${p}_fuzz" -max_total_time="$dseconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts/dpi-$p-" -max_len=4096 "$build/tests/fuzz/corpus/dpi_$p"
done
