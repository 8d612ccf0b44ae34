// Capture files as PacketSources (weir/core/packet_source.hpp).
//
// Files: classic pcap (either byte order, micro- or nanosecond stamps) is
// read() into a reused buffer and parsed in place; pcapng and anything else
// libpcap understands goes through libpcap. Several files are merged by timestamp,
// as the two halves of a tap.
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weir::dataplane {

using weir::PacketSource;
using weir::SourceStats;

/// How open_pcap_file() reads classic pcap files.
struct PcapReadOptions {
    /// The reused read buffer; a record larger than it grows it.
    size_t buffer_bytes = 4u << 20;
};

/// Opens one capture file. Errors: ENOENT (missing), EISDIR (a directory),
/// EINVAL (not a capture file, with what was found), EIO on read errors.
/// The link type is not checked here: see linktypes(). Frames are valid
/// until the next rx_burst() on the source.
Result<std::unique_ptr<PacketSource>> open_pcap_file(const std::string& path, const PcapReadOptions& opts = {});

/// Opens "a.pcap" or "a.pcap,b.pcap,..." (merged by timestamp).
Result<std::unique_ptr<PacketSource>> open_capture_files(const std::string& comma_list);

/// Merges sources by timestamp (stable for equal stamps: lower index first).
std::unique_ptr<PacketSource> merge_sources(std::vector<std::unique_ptr<PacketSource>> sources);

} // namespace weir::dataplane
