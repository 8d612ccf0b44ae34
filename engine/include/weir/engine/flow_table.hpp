// Per-core bidirectional flow table.
//
// Owned by exactly one thread: no locks and no atomics on the packet path.
// Preallocated at create() for `capacity` flows; open addressing over an
// index of 8-byte slots (hash tag + entry number) at load factor <= 0.5,
// entries in a separate array, flows ordered by last activity in an intrusive
// LRU list so idle expiry and "evict the idlest" are O(1).
//
// Expiry runs on packet time: callers pass the timestamps of the packets they
// feed, so results on capture files are deterministic.
//
// Ending rules (IPFIX flowEndReason in FlowRecord::end_reason):
//  - idle timeout: no packet for idle_timeout_ns (checked by expire()).
//  - active timeout: a packet arriving active_timeout_ns or more after the
//    flow's first packet exports the flow so far and starts a new one with it.
//  - end of flow: RST, or FIN seen in both directions; the flow lingers
//    tcp_end_linger_ns to absorb the final ACK, and a new SYN on an ended flow
//    exports it at once and starts a new flow.
//  - lack of resources: the table is full; the least recently active flow is
//    exported to make room.
//  - forced end: flush() at end of input or shutdown.
//
// Client/server: the sender of the first packet is the client, except that a
// SYN+ACK first packet names its receiver the client, and a pure SYN seen
// later from the "server" side of a flow with no client SYN swaps the roles.
#pragma once

#include <weir/core/drop_reason.hpp>
#include <weir/core/flow_record.hpp>
#include <weir/core/packet.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace weir::engine {

/// What a flow's byte counters count.
enum class ByteCount : uint8_t {
    Wire = 0, ///< frame length on the wire (pcap len), as nDPI and ntopng count
    Ip = 1,   ///< outer IP total length, as routers' NetFlow counts
};

struct FlowTableConfig {
    uint32_t capacity = 1u << 20;                      ///< max active flows (>= 16)
    uint64_t idle_timeout_ns = 180ULL * 1000000000ULL;  ///< -d
    uint64_t active_timeout_ns = 300ULL * 1000000000ULL;///< -t
    uint64_t tcp_end_linger_ns = 2ULL * 1000000000ULL;  ///< after FIN both ways / RST
    ByteCount byte_count = ByteCount::Wire;
    /// Touch all table memory at create() (live capture: no first-touch page
    /// faults on the packet path). Off: pages are mapped as flows use them.
    bool prefault = false;
};

struct FlowTableStats {
    uint64_t packets = 0;        ///< packets accounted
    uint64_t bytes = 0;          ///< bytes accounted (per byte_count)
    uint64_t flows_created = 0;
    uint64_t exported[6] = {};   ///< flows handed to the sink, indexed by EndReason
    DropCounters drops;          ///< TableFull only, when capacity is 0-evictable
    uint64_t delta_packets = 0;  ///< of packets: added by bulk deltas (add_delta)
    uint64_t delta_bytes = 0;    ///< of bytes: added by bulk deltas
};

/// Receives every flow record the table ends. Called on the owning thread.
using FlowSink = std::function<void(const FlowRecord&)>;

class FlowTable {
public:
    /// Errors: EINVAL for capacity < 16 or > 2^30 or a zero timeout;
    /// ENOMEM when the table cannot be allocated.
    static Result<std::unique_ptr<FlowTable>> create(const FlowTableConfig& cfg, uint16_t worker_id = 0);
    ~FlowTable();

    /// Accounts a burst of decoded packets (prefetching entries ahead).
    /// Flows ended as a side effect (active timeout, TCP restart, eviction)
    /// go to `sink`. Returns the number of packets accounted.
    uint32_t update_burst(const PacketMeta* pkts, uint32_t n, const FlowSink& sink) noexcept;

    /// update_burst that calls `after(ctx, pkts[i], i, flow)` right after
    /// packet i is accounted and before packet i + 1 is: per-packet work
    /// that must see the flow as its packet left it (DPI) keeps the
    /// prefetching. `flow` is the flow's entry number in this table, below
    /// the capacity: it stays the flow's until a record of the flow that
    /// ends it (any reason but an active timeout) reaches the sink with the
    /// same FlowRecord::table_entry, so state kept beside the table can be
    /// an array indexed by it.
    using AfterPacket = void (*)(void* ctx, const PacketMeta& pkt, uint32_t i, uint32_t flow) noexcept;
    uint32_t update_burst(const PacketMeta* pkts, uint32_t n, const FlowSink& sink, AfterPacket after,
                          void* ctx) noexcept;

    /// Accounts one packet; same rules as update_burst.
    void update(const PacketMeta& pkt, const FlowSink& sink) noexcept;

    /// Adds a bulk delta (PacketMeta::control == kCtlDelta, see make_delta;
    /// hash set): packets counted outside the capture, e.g. by the XDP
    /// program for a verdict that keeps them from it. Creates the flow when
    /// absent (its client is the delta's sender), applies the idle and
    /// active timeouts as a packet at the delta's time would, and refreshes
    /// the flow's last activity so idle expiry does not end a flow whose
    /// packets are being bypassed. TCP flags, TTL and MACs stay as they are.
    void add_delta(const PacketMeta& delta, const FlowSink& sink) noexcept;

    /// Ends flows idle at packet time now_ns and ended TCP flows past their
    /// linger, at most `budget` of them. Returns how many were ended.
    uint32_t expire(uint64_t now_ns, const FlowSink& sink, uint32_t budget = UINT32_MAX) noexcept;

    /// Ends every active flow with `reason` (default forced end).
    uint32_t flush(const FlowSink& sink, EndReason reason = EndReason::ForcedEnd) noexcept;

    [[nodiscard]] uint32_t active() const noexcept;
    [[nodiscard]] uint32_t capacity() const noexcept;
    /// Bytes allocated for entries and index together.
    [[nodiscard]] std::size_t memory_bytes() const noexcept;
    [[nodiscard]] const FlowTableStats& stats() const noexcept;
    [[nodiscard]] const FlowTableConfig& config() const noexcept;

private:
    struct Impl;
    explicit FlowTable(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::engine
