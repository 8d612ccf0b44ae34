// Private to weir::dataplane: what the merger needs to know about the file
// sources it merges, beyond the public PacketSource interface.
#pragma once

#include <weir/core/packet_source.hpp>

namespace weir::dataplane::detail {

/// A PacketSource that can say whether the frames it hands out outlive the
/// next rx_burst() call (memory-mapped files) or not (libpcap's buffer).
class FileSource : public PacketSource {
public:
    /// True when RawPacket::data stays valid until the source is destroyed.
    [[nodiscard]] virtual bool data_outlives_burst() const noexcept = 0;
};

/// data_outlives_burst() for any source; false for sources we do not know,
/// since the PacketSource contract only promises validity until the next call.
[[nodiscard]] inline bool data_outlives_burst(const PacketSource& src) noexcept
{
    const auto* fs = dynamic_cast<const FileSource*>(&src);
    return fs != nullptr && fs->data_outlives_burst();
}

} // namespace weir::dataplane::detail
