// DpiStage: per-worker application-protocol detection next to the FlowTable.
//
// Owned by the worker thread that owns the flow table (no locks). The worker
// feeds it each packet's L4 payload after accounting the packet, and calls
// finish() on every record the table ends, which fills FlowRecord::l7 and
// releases the flow's state. All memory is allocated at create():
//  - a map of at most max_flows flows, each entry carrying its fixed-size
//    L7Info; an entry lives from the flow's first payload (a TCP flow: from
//    its SYN, for the handshake timing) until its export. Beside a flow
//    table (flow mode, DpiConfig::flow_slots) a flow's entry is found by
//    the flow's entry number in the table, through a 4-byte slot per table
//    entry; standalone, by canonical FlowKey in a hash index;
//  - a pool of max_inspections inspection states (parser progress), held
//    only while a flow is inspected: released when detection ends or after
//    packets_per_direction payloads in each direction;
//  - tls_streams TLS reassembly buffers (16 KB each), taken only by a
//    direction whose handshake message spans several segments.
// A flow arriving while the map or the inspection pool is full is not
// inspected (counted in DpiStats::not_inspected) and gets the port guess.
// Memory: 848 bytes per map entry (the L7Info text dominates), taken
// in order and mapped on first use, so it follows the most flows inspected
// at once, up to max_flows; 16 KB per TLS buffer; little else.
//
// Level 0 inspects nothing: finish() only sets the port guess (marked
// guessed). Level 1 is micro-DPI (TLS, HTTP, DNS, SSH, QUIC Initial, DTLS
// parsers; QUIC/DTLS hellos spanning datagrams take one of tls_streams
// 4.6 KB assemblers).
//
// Level 2 is nDPI (libndpi, when the build found it; otherwise create()
// fails with ENOTSUP): one nDPI detection module per stage, all protocols
// on. The same map keeps each flow's L7Info; the inspection state then
// holds an nDPI flow state (688 bytes in nDPI 4.2 plus what its dissectors
// allocate), taken at the flow's first packet and freed as soon as nDPI
// has a protocol and nothing more to read, or the flow has had more than
// ndpi_tcp_packets / ndpi_udp_packets packets (nDPI's guess then, as
// ndpiReader's give-up), or the flow ends. nDPI reads whole IP packets, so
// inspect() takes the bytes from the flow's IP header (input() says which
// bytes a level wants), every packet of the flow including those without
// payload (TCP sequence tracking), not only payloads.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace weir::engine {

struct DpiConfig {
    uint8_t level = 0;                 ///< 0: port guess only; 1: micro-DPI; 2: nDPI
    uint32_t max_inspections = 65536;  ///< concurrent inspections per worker (32 bytes each, TLS buffers and nDPI flow states apart)
    uint32_t max_flows = 262144;       ///< flows holding DPI state or a result until export, per worker
    uint32_t tls_streams = 512;        ///< TLS reassembly buffers per worker
    uint8_t packets_per_direction = 8; ///< payloads inspected per direction at most (level 1)
    /// Level 2: nDPI gives up on a TCP flow once it has had more than this
    /// many packets, on a UDP (or other) flow past ndpi_udp_packets
    /// (ndpiReader's -T and -U, same defaults).
    uint16_t ndpi_tcp_packets = 80;
    uint16_t ndpi_udp_packets = 24;
    std::string ndpi_protocols_file;   ///< level 2: custom rules, ntop's protos.txt format (empty: none)
    /// Flow mode: the capacity of the FlowTable this stage works beside.
    /// Flows are then found by their table entry number (the `flow` of
    /// inspect() and observe(), FlowRecord::table_entry in finish()) in
    /// an array of 4 bytes per table entry, instead of by key in a hash
    /// index: no index probe, and the entries of live flows are few and
    /// close together. 0: by key (the `flow` arguments are ignored).
    uint32_t flow_slots = 0;
};

struct DpiStats {
    uint64_t inspected = 0;     ///< flows that got an inspection
    uint64_t detected = 0;      ///< inspections that found a protocol
    uint64_t not_inspected = 0; ///< flows skipped because the map or the pool was full (about once per flow)
    uint64_t tls_stream_full = 0; ///< split handshakes not reassembled: no free TLS (or QUIC/DTLS) buffer
    uint64_t hello_gave_up = 0; ///< QUIC Initials / DTLS hellos given up: undecryptable, bad frames, too large
    uint64_t payloads = 0;      ///< payloads given to the parsers (level 2: packets given to nDPI)
    uint64_t gave_up = 0;       ///< level 2: detections ended by the packet bound with nothing found
    uint64_t stale = 0;         ///< flow mode: states dropped because their table entry went to another flow unfinished

    /// Sums another stage's counters (workers, queues): every field, so a
    /// counter added here is summed everywhere.
    DpiStats& operator+=(const DpiStats& o) noexcept
    {
        inspected += o.inspected;
        detected += o.detected;
        not_inspected += o.not_inspected;
        tls_stream_full += o.tls_stream_full;
        hello_gave_up += o.hello_gave_up;
        payloads += o.payloads;
        gave_up += o.gave_up;
        stale += o.stale;
        return *this;
    }
};

class DpiStage {
public:
    /// Errors: EINVAL for level > 2, zero sizes, packets_per_direction == 0,
    /// zero nDPI packet bounds, or max_flows/max_inspections > 2^24, or a
    /// protocols file nDPI refuses; ENOTSUP for level 2 in a build without
    /// libndpi; ENOMEM.
    static Result<std::unique_ptr<DpiStage>> create(const DpiConfig& cfg);
    ~DpiStage();

    /// The bytes of a decoded frame that inspect() takes at `level`: the L4
    /// payload (levels 0 and 1, empty when there is none) or the IP packet
    /// from the flow's IP header to the end of the capture (level 2).
    static std::span<const uint8_t> input(uint8_t level, const PacketMeta& m, const uint8_t* frame,
                                          uint32_t caplen) noexcept;

    /// No flow entry number (and what a stage by key takes).
    static constexpr uint32_t kNoFlow = UINT32_MAX;

    /// Inspects one packet: `bytes` are input(level, ...) of its frame, or
    /// their first bytes (a cut copy). Levels 0 and 1 ignore empty payloads.
    /// In flow mode `flow` is the packet's flow entry in the table
    /// (FlowTable::AfterPacket); a packet without one is not inspected.
    void inspect(const PacketMeta& m, std::span<const uint8_t> bytes, uint32_t flow = kNoFlow) noexcept;

    /// Sees a TCP packet that inspect() does not get (no payload at level 1,
    /// no copy): only its flags and time, for the flow's handshake timing
    /// (L7Info latencies). Level 1 makes a flow's entry at its SYN here.
    /// Packets other than SYN, SYN/ACK and the ACK a handshake waits for
    /// cost a flag test and no lookup.
    void observe(const PacketMeta& m, uint32_t flow = kNoFlow) noexcept;

    /// Fills r.l7 for a record the flow table ended. Releases the flow's
    /// state unless the record is an active-timeout export (the flow goes
    /// on, and its next record carries the same result). In flow mode the
    /// flow is r.table_entry.
    void finish(FlowRecord& r) noexcept;

    /// True when packet `m` may still be inspected (its flow is new or
    /// under inspection and its direction has payloads left).
    [[nodiscard]] bool wants(const PacketMeta& m, uint32_t flow = kNoFlow) const noexcept;

    /// Called on the stage's thread when a flow's L7 result is known: at
    /// its first detection, again when its inspection ends (the final,
    /// possibly refined name), or when an inspection ends with nothing
    /// found (l7.name empty). At most two calls per flow; none when unset.
    using L7Notify = void (*)(void* ctx, const PacketMeta& m, const L7Info& l7) noexcept;
    void set_l7_notify(L7Notify fn, void* ctx) noexcept;

    [[nodiscard]] uint32_t flows() const noexcept;        ///< entries in the map
    [[nodiscard]] uint32_t inspections() const noexcept;  ///< inspection states in use (level 2: live nDPI flow states)
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

/// One protocol nDPI knows.
struct NdpiProtocol {
    uint16_t id = 0;
    std::string name;
    std::string category;
};

/// The protocols of an nDPI module set up as level 2 sets it up (with the
/// custom rules of `protos_file` when not empty), in id order. Errors as
/// DpiStage::create at level 2.
Result<std::vector<NdpiProtocol>> ndpi_protocols(const std::string& protos_file = {});

/// The version of the libndpi this build uses ("4.2.0"); empty without it.
std::string ndpi_version();

/// Bytes of one nDPI flow state (sizeof(struct ndpi_flow_struct)); 0 in a
/// build without libndpi.
uint32_t ndpi_flow_state_size() noexcept;

} // namespace weir::engine
