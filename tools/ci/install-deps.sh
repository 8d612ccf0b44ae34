#!/usr/bin/env bash
# Installs every Debian 12 package that weir's build, tests, benchmarks and demo need.
# Idempotent: packages already present are skipped by apt. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  # toolchain and build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries
  libpcap-dev libboost-dev libfmt-dev libcli11-dev nlohmann-json3-dev libzmq3-dev zlib1g-dev libssl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # live capture: XDP/AF_XDP (BPF programs built with clang + bpftool), DPDK with virtual devices
  libbpf-dev libxdp-dev bpftool linux-libc-dev libdpdk-dev dpdk-dev librte-net-af-xdp23 librte-net-pcap23 librte-net-null23 librte-net-ring23 librte-net-af-packet23
  # application detection (-D 2) and IDS verdict transports
  libndpi-dev libhiredis-dev
  # peers and oracles used by tests and benchmarks
  softflowd tshark wireshark-common tcpdump nfdump pmacct
  libndpi-bin tcpreplay iproute2 ethtool redis-server
  # inline bridge e2e test (ping across the bridge)
  iputils-ping
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture; answer once, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
