// DpiStage: per-worker application-protocol detection next to the FlowTable.
//
// Owned by the worker thread that owns the flow table (no locks). The worker
// feeds it each packet's L4 payload after accounting the packet, and calls
// finish() on every record the table ends, which fills FlowRecord::l7 and
// releases the flow's state. All memory is allocated at create():
//  - a map of at most max_flows flows (canonical FlowKey -> entry), each
//    entry carrying its fixed-size L7Info; an entry lives from the flow's
//    first payload until its export;
//  - a pool of max_inspections inspection states (parser progress), held
//    only while a flow is inspected: released when detection ends or after
//    packets_per_direction payloads in each direction;
//  - tls_streams TLS reassembly buffers (16 KB each), taken only by a
//    direction whose handshake message spans several segments.
// A flow arriving while the map or the inspection pool is full is not
// inspected (counted in DpiStats::not_inspected) and gets the port guess.
// Memory: about 800 bytes per map entry (the L7Info text dominates), taken
// in order and mapped on first use, so it follows the most flows inspected
// at once, up to max_flows; 16 KB per TLS buffer; little else.
//
// Level 0 inspects nothing: finish() only sets the port guess (marked
// guessed). Level 1 is micro-DPI (TLS, HTTP, DNS, SSH parsers).
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <span>

namespace weir::engine {

struct DpiConfig {
    uint8_t level = 0;                 ///< 0: port guess only; 1: micro-DPI
    uint32_t max_inspections = 65536;  ///< concurrent inspections per worker (24 bytes each, TLS buffers apart)
    uint32_t max_flows = 262144;       ///< flows holding DPI state or a result until export, per worker
    uint32_t tls_streams = 512;        ///< TLS reassembly buffers per worker
    uint8_t packets_per_direction = 8; ///< payloads inspected per direction at most
};

struct DpiStats {
    uint64_t inspected = 0;     ///< flows that got an inspection
    uint64_t detected = 0;      ///< inspections that found a protocol
    uint64_t not_inspected = 0; ///< flows skipped because the map or the pool was full (about once per flow)
    uint64_t tls_stream_full = 0; ///< split handshakes not reassembled: no free TLS buffer
    uint64_t payloads = 0;      ///< payloads given to the parsers
};

class DpiStage {
public:
    /// Errors: EINVAL for level > 1, zero sizes, packets_per_direction == 0,
    /// or max_flows/max_inspections > 2^24; ENOMEM.
    static Result<std::unique_ptr<DpiStage>> create(const DpiConfig& cfg);
    ~DpiStage();

    /// Inspects one packet's L4 payload (empty payloads are ignored).
    /// `payload` must be the bytes at m.l4_payload_offset of the frame.
    void inspect(const PacketMeta& m, std::span<const uint8_t> payload) noexcept;

    /// Fills r.l7 for a record the flow table ended. Releases the flow's
    /// state unless the record is an active-timeout export (the flow goes
    /// on, and its next record carries the same result).
    void finish(FlowRecord& r) noexcept;

    /// True when packet `m` may still be inspected (its flow is new or
    /// under inspection and its direction has payloads left).
    [[nodiscard]] bool wants(const PacketMeta& m) const noexcept;

    [[nodiscard]] uint32_t flows() const noexcept;        ///< entries in the map
    [[nodiscard]] uint32_t inspections() const noexcept;  ///< inspection states in use
    [[nodiscard]] const DpiStats& stats() const noexcept;
    [[nodiscard]] const DpiConfig& config() const noexcept;

private:
    struct Impl;
    explicit DpiStage(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

/// The port-based guess (nDPI's ids), marked guessed; leaves r.l7 alone
/// when it already holds a detected protocol.
void guess_l7_by_port(FlowRecord& r) noexcept;

} // namespace weir::engine
