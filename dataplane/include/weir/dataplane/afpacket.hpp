// AF_PACKET capture: TPACKET_V3 memory-mapped RX rings, optionally several
// sockets in one PACKET_FANOUT group (flow hash), polled round-robin.
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/dataplane/live.hpp>

#include <memory>
#include <string>

namespace weir::dataplane {

/// Opens `ifname` with opt.afp_sockets TPACKET_V3 sockets (block size and
/// count from opt.afp_block_size/afp_block_count), promiscuous when
/// opt.promisc, filtered by opt.bpf_filter in the kernel. Frames point into
/// the ring and stay valid until the next rx_burst(); 802.1Q tags the kernel
/// stripped are put back, so frames are the bytes on the wire.
/// Errors: ENODEV (no such interface), EPERM (no CAP_NET_RAW), EINVAL (bad
/// filter with libpcap's message, bad ring geometry, unsupported link type),
/// ENOMEM (ring), with the interface in the context.
Result<std::unique_ptr<PacketSource>> open_afpacket(const std::string& ifname, const LiveOptions& opt);

} // namespace weir::dataplane
