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
};

class PacketSource {
public:
    virtual ~PacketSource() = default;

    /// Fills out[0..n) and returns the count. RawPacket::data stays valid
    /// until the next rx_burst() call on this source (mmap'd files: until
    /// the source is destroyed). Never blocks on files.
    virtual uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept = 0;

    /// True once no further packet will come.
    [[nodiscard]] virtual bool finished() const noexcept = 0;

    /// A problem that ended the input early (truncated or corrupt file),
    /// with file name, record number and offset; nullopt when it ended cleanly.
    [[nodiscard]] virtual std::optional<Error> error() const = 0;

    [[nodiscard]] virtual SourceStats stats() const noexcept = 0;

    /// pcap LINKTYPE_* of the input(s); every RawPacket carries its own.
    [[nodiscard]] virtual std::vector<uint32_t> linktypes() const = 0;

    /// "file.pcap (pcap, ethernet, mmap)" and the like, for logs.
    [[nodiscard]] virtual std::string describe() const = 0;
};

} // namespace weir
