// Live capture: options every back-end shares, the interface syntax, and
// the one entry point that opens a capture file or an interface.
//
//   eth1                 best available: AF_XDP, else AF_PACKET
//   xdp:eth1@0-3         AF_XDP on RX queues 0..3 (xdp:eth1 = every queue)
//   afpacket:eth1        AF_PACKET TPACKET_V3 (fanout by flow hash)
//   pcap:eth1            libpcap live capture
//   dpdk:ARGS            DPDK port from a device or vdev string, e.g.
//                        dpdk:net_af_xdp0,iface=eth1 or dpdk:0000:01:00.0
//   eth1,eth2            both halves of a tap merged into one view
//   file.pcap[,b.pcap]   capture files (merged by timestamp)
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weir::dataplane {

enum class Backend : uint8_t { Auto, AfXdp, AfPacket, Pcap, Dpdk, File };

[[nodiscard]] const char* backend_name(Backend b) noexcept;

/// One element of the -i list, parsed.
struct InterfaceSpec {
    Backend backend = Backend::Auto;
    std::string name;              ///< interface, file path, or DPDK device args
    std::vector<uint32_t> queues;  ///< empty: every RX queue
};

/// Parses "xdp:eth1@0-3,eth2" and the like. A bare word that names an
/// existing regular file (or ends in .pcap/.pcapng/.cap) is a File.
/// Errors: EINVAL with the offending element.
Result<std::vector<InterfaceSpec>> parse_interface_list(const std::string& text);

/// Options every live back-end understands.
struct LiveOptions {
    std::string bpf_filter;        ///< -B: tcpdump syntax, empty = everything
    uint32_t snaplen = 65535;
    bool promisc = true;
    uint32_t poll_timeout_ms = 10; ///< rx_burst() waits at most this long when idle
    uint32_t burst = 64;           ///< frames a back-end pulls from the kernel at once

    // AF_XDP
    uint32_t xdp_frame_size = 4096;
    uint32_t xdp_ring_size = 0;        ///< RX and fill ring entries per socket; 0: by queue count (xdp_sizing.hpp)
    uint32_t xdp_umem_frames = 0;      ///< per queue (shared by its sockets); 0: by queue count (xdp_sizing.hpp)
    enum class ZeroCopy : uint8_t { Auto, On, Off } xdp_zero_copy = ZeroCopy::Auto;
    enum class XdpMode : uint8_t { Auto, Native, Generic } xdp_mode = XdpMode::Auto;
    bool xdp_busy_poll = false;
    /// An empty RX ring is watched this long before poll() sleeps: a reader
    /// that sleeps between frames is woken for each, and on a veth (copy
    /// mode) the sender's CPU pays for every wake-up (docs/performance.md,
    /// "Live capture"). 0: poll() at once.
    uint32_t xdp_spin_us = 50;
    uint32_t xdp_sockets_per_queue = 1; ///< >1: shared-UMEM sockets fanned out by flow hash

    // IDS verdicts and egress (AF_XDP): the maps of weir::dataplane::VerdictMap
    // (fd(), subnet_fd()); both >= 0 turns per-flow verdicts on in the XDP
    // program. egress_ifaces[i] is DIVERT egress index i (a veth egress needs
    // an XDP program or GRO on its peer, see docs/xdp.md).
    int verdict_map_fd = -1;
    int subnet_verdict_map_fd = -1;
    std::vector<std::string> egress_ifaces;

    // AF_PACKET
    uint32_t afp_block_size = 1u << 22; ///< TPACKET_V3 block bytes
    uint32_t afp_block_count = 64;
    uint32_t afp_fanout_group = 0;      ///< 0: derived from the process id
    uint32_t afp_sockets = 1;           ///< sockets in the fanout group

    // libpcap
    uint32_t pcap_buffer_bytes = 256u << 20;

    // DPDK
    std::vector<std::string> eal_args; ///< passed to rte_eal_init as they are
    uint16_t dpdk_rx_queues = 1;
    uint32_t dpdk_mbufs = 8191;
};

/// Opens what one spec names. Files ignore the live options.
/// Errors: ENODEV (no such interface), ENOTSUP (back-end not built),
/// EINVAL (bad queue or option), EPERM/EACCES, EBUSY (XDP already attached),
/// with the interface and back-end in the context.
Result<std::unique_ptr<PacketSource>> open_source(const InterfaceSpec& spec, const LiveOptions& opt);

/// Opens a whole -i list: files are merged by timestamp, interfaces are
/// polled in turn (merge_live). Mixing files and interfaces is EINVAL.
Result<std::unique_ptr<PacketSource>> open_input(const std::string& text, const LiveOptions& opt);

/// An -i list split by RX queue for per-queue capture threads (--per-queue).
struct QueueInput {
    std::unique_ptr<PacketSource> all;  ///< owns every queue source: summed stats, per-queue stats, describe()
    std::vector<PacketSource*> queues;  ///< one per RX queue (AF_XDP, DPDK) or fanout socket (AF_PACKET); owned by `all`
};

/// Opens every interface of `text` as one source per RX queue: xdp:IF[@q]
/// one AF_XDP source per queue (open_afxdp_queues); dpdk:ARGS one source
/// per RX queue of the port (opt.dpdk_rx_queues, open_dpdk_queues);
/// afpacket:IF one socket per RX queue of IF (or opt.afp_sockets when > 1),
/// each its own source, all in one PACKET_FANOUT group (flow hash); a bare
/// IF tries AF_XDP, then AF_PACKET. Each source is read by one thread only.
/// Errors: EINVAL for capture files and pcap: (not split by queue), and
/// whatever opening the back-ends gives.
Result<QueueInput> open_input_queues(const std::string& text, const LiveOptions& opt);

/// Live sources polled round-robin into one view (both halves of a tap).
std::unique_ptr<PacketSource> merge_live(std::vector<std::unique_ptr<PacketSource>> sources);

/// CLOCK_REALTIME in ns, for live timestamps.
[[nodiscard]] uint64_t wall_clock_ns() noexcept;

} // namespace weir::dataplane
