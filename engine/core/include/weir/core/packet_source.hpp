// PacketSource: the burst interface every capture back-end implements
// (DPDK's rx_burst convention). A source fills up to n RawPackets and returns
// how many; 0 with finished() false means nothing is ready yet (live capture).
// Lives in core so the engine can drive any source without depending on
// the capture back-ends.
#pragma once

#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace weir {

struct SourceStats {
    uint64_t packets = 0;       ///< records delivered
    uint64_t bytes = 0;         ///< sum of wire lengths delivered
    uint64_t file_bytes = 0;    ///< size of the input(s), for progress
    uint64_t file_offset = 0;   ///< bytes consumed so far, for progress
    uint64_t drops = 0;         ///< live: packets lost before weir saw them (kernel/NIC rings)
};

/// One RX queue (or socket) of a live source, for per-queue statistics.
struct QueueStats {
    std::string name;           ///< "eth1@0", "dpdk:net_pcap0@1", ...
    uint64_t packets = 0;       ///< delivered to weir
    uint64_t bytes = 0;
    uint64_t drops = 0;         ///< lost below weir, all causes
    uint64_t rx_ring_full = 0;  ///< AF_XDP: XDP_STATISTICS rx_ring_full (also counted in drops)
    uint64_t fill_ring_empty = 0; ///< AF_XDP: rx_fill_ring_empty_descs
    uint64_t invalid_descs = 0; ///< AF_XDP: rx_invalid_descs + tx_invalid_descs
    uint64_t xdp_packets = 0;   ///< counted by the XDP program on this queue (0: no program)
    uint64_t xdp_bytes = 0;
};

class PacketSource {
public:
    virtual ~PacketSource() = default;

    /// Fills out[0..n) and returns the count. RawPacket::data stays valid
    /// until the next rx_burst() call on this source. Never blocks on files.
    virtual uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept = 0;

    /// True once no further packet will come.
    [[nodiscard]] virtual bool finished() const noexcept = 0;

    /// A problem that ended the input early (truncated or corrupt file),
    /// with file name, record number and offset; nullopt when it ended cleanly.
    [[nodiscard]] virtual std::optional<Error> error() const = 0;

    /// May be called from another thread while rx_burst() runs (live
    /// sources keep their counters in relaxed atomics or read the kernel's).
    [[nodiscard]] virtual SourceStats stats() const noexcept = 0;

    /// Live capture: rx_burst() returns 0 after a short wait (poll timeout)
    /// when nothing arrived, finished() stays false until stop_capture(),
    /// timestamps are wall-clock, and the pipeline drives its clock from
    /// now_ns() while the link is quiet.
    [[nodiscard]] virtual bool live() const noexcept { return false; }

    /// Live sources: the current time (CLOCK_REALTIME, ns). Files: 0.
    [[nodiscard]] virtual uint64_t now_ns() const noexcept { return 0; }

    /// Live sources: per queue counters (same threading rule as stats()).
    [[nodiscard]] virtual std::vector<QueueStats> queue_stats() const { return {}; }

    /// pcap LINKTYPE_* of the input(s); every RawPacket carries its own.
    [[nodiscard]] virtual std::vector<uint32_t> linktypes() const = 0;

    /// "file.pcap (pcap, linktype 1, read)" and the like, for logs.
    [[nodiscard]] virtual std::string describe() const = 0;
};

} // namespace weir
