// EgressOutput: where weir's IDS mode sends whole frames (an egress port).
// The engine's EgressStage decides which frame goes to which output; a
// back-end (dataplane/egress.hpp: AF_PACKET TX) puts them on the wire.
// Lives in core so the engine can drive any back-end without depending on
// the dataplane.
#pragma once

#include <cstdint>
#include <string>

namespace weir {

/// What an egress put on the wire, and what it could not.
struct EgressCounters {
    uint64_t packets = 0;  ///< frames handed to the kernel
    uint64_t bytes = 0;    ///< their bytes (as sent: a sliced frame counts its cut length)
    uint64_t dropped = 0;  ///< frames not sent because the TX path was full (counted, never waited for in live mode)
    uint64_t errors = 0;   ///< frames the kernel refused (too big for the MTU, link down, ...)
};

class EgressOutput {
public:
    virtual ~EgressOutput() = default;

    /// Queues one frame. The bytes must stay valid until the next flush()
    /// (the pipeline calls flush() at the end of each burst, while the
    /// source's frames are still valid). A full queue is flushed first.
    virtual void send(const uint8_t* data, uint32_t len) noexcept = 0;

    /// Transmits what send() queued.
    virtual void flush() noexcept = 0;

    /// Safe from any thread while another sends.
    [[nodiscard]] virtual EgressCounters counters() const noexcept = 0;

    /// "eth1 (AF_PACKET TX, qdisc bypass)" and the like, for logs.
    [[nodiscard]] virtual std::string describe() const = 0;
};

} // namespace weir
