// Pipeline: reader -> N workers -> one export thread.
//
// The calling thread reads bursts from a PacketSource and decodes them; each
// packet goes by its symmetric flow hash to one worker through a lock-free
// single-producer ring, so both directions of a flow meet in one FlowTable.
// Workers account packets and push ended flows through a second SPSC ring to
// the export thread, which calls the sink. With workers == 0 everything runs
// inline on the calling thread (no rings, no threads).
//
// Time is packet time: the reader broadcasts the newest timestamp to every
// worker at least every tick_ns so idle flows expire even on quiet workers.
// A live source (PacketSource::live()) stamps packets with the wall clock,
// and while its link is quiet the reader advances the clock from now_ns().
//
// DPI (levels 1 and 2) runs in each worker next to its flow table. Workers get
// only PacketMeta, and a frame's bytes are valid on the reader only, so the
// reader copies the payload of packets that may still be inspected (the first
// packets_per_direction payloads of each direction of a flow, by a small
// direct-mapped counter table) into a per-worker payload ring, in the order
// of the packet ring; PacketMeta::dpi_copy marks the packets that have one.
// Copies are cut at kDpiCopyMax bytes. With nDPI (level 2) the copy is the
// IP packet from the flow's IP header (the inner one in a tunnel), for
// every packet of a flow up to nDPI's give-up bound, cut (its IP length
// fixed) at 16 KB (offloaded segments carrying a TLS certificate). The ring
// holds variable-length records: with lossless reading it is a few bursts
// of the largest copies (1 MiB at level 1) so it stays in cache, and the
// reader makes room for a whole burst before reading it.
//
// Rings full: with lossless (files) the producer waits; without (live
// capture) the packet or flow is dropped and counted (RingFull,
// ExportRingFull), and nothing on the packet path waits for the exporter.
//
// Sampling (cfg.sampling, sampler.hpp): the reader keeps 1 in N of the
// packets it keyed, after the tap (the IDS egress sees every frame) and
// before the flow table and DPI; the others are counted in unsampled.
#pragma once

#include <weir/core/drop_reason.hpp>
#include <weir/core/flow_record.hpp>
#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi_stage.hpp>
#include <weir/engine/flow_table.hpp>
#include <weir/engine/sampler.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace weir::engine {

/// Payload (level 2: IP packet) bytes a worker's DPI gets per packet in threaded mode.
inline constexpr uint32_t kDpiCopyMax = 2040;

/// Reader-side tap: sees every frame the reader reads, on the reader thread,
/// while the frame's bytes are valid (the IDS egress stage). Must not block.
class ReaderTap {
public:
    virtual ~ReaderTap() = default;
    /// One frame; meta is its decoded form, nullptr when the decoder could
    /// not key it (non-IP, malformed).
    virtual void packet(const RawPacket& raw, const PacketMeta* meta) noexcept = 0;
    /// After each burst's frames, before the source is read again.
    virtual void burst_end() noexcept = 0;
    /// A worker's DPI detected flow `key`'s L7 protocol (l7: the name as
    /// exported, "TLS", "DNS.Google"), refined it when its inspection
    /// ended, or ended it with nothing found (l7 empty). Reader thread:
    /// with workers, from a per-worker ring drained once per burst (a
    /// full ring loses the note, counted in l7_notes_lost); inline, right
    /// after the burst's packets are inspected. Default: ignored.
    virtual void on_l7(const FlowKey& key, uint32_t hash, std::string_view l7) noexcept
    {
        (void)key;
        (void)hash;
        (void)l7;
    }
};

struct PipelineConfig {
    uint16_t workers = 1;          ///< 0 = inline on the calling thread
    FlowTableConfig table;         ///< per worker
    DecoderConfig decoder;
    DpiConfig dpi;                 ///< per worker; level 0 = port guess only
    uint32_t ring_size = 8192;     ///< packets per reader->worker ring
    uint32_t export_ring_size = 8192;  ///< records per worker->export ring (912 B each; 152 B without DPI)
    bool lossless = true;          ///< wait instead of dropping when a ring is full
    uint64_t tick_ns = 1000000000ULL; ///< packet-time clock broadcast period
    uint32_t burst = 32;           ///< rx burst size
    uint64_t dpi_ring_bytes = 0;   ///< per-worker payload copy ring, lossless mode (0: a few bursts of the largest copies, at least 1 MiB)
    std::vector<int> cpus;         ///< optional: pin worker i to cpus[i]
    ReaderTap* tap = nullptr;      ///< optional, not owned: every frame read, reader thread
    SamplingConfig sampling;       ///< 1-in-N packet sampling before the flow table (sampler.hpp), per reader
};

struct PipelineStats {
    uint64_t packets = 0;          ///< frames read from the source
    uint64_t bytes = 0;            ///< wire bytes read
    uint64_t decoded = 0;          ///< frames that became flow packets
    uint64_t flows_created = 0;
    uint64_t flows_exported = 0;   ///< records handed to the sink
    uint64_t exported_by_reason[6] = {};
    uint64_t first_ts_ns = 0;      ///< first and last packet time seen
    uint64_t last_ts_ns = 0;
    uint64_t active_flows = 0;     ///< at the moment of the snapshot
    double elapsed_s = 0;          ///< wall time of run()
    DropCounters drops;            ///< decoder + rings + tables
    DpiStats dpi;                  ///< all workers, once run() has returned
    uint64_t dpi_copies_dropped = 0; ///< payloads not handed to a worker's DPI (lossy mode, ring full)
    uint64_t delta_packets = 0;    ///< packets added by account() (counted in XDP, not captured); after run()
    uint64_t delta_bytes = 0;      ///< their bytes (per the table's byte count); after run()
    uint64_t deltas_late = 0;      ///< account() calls that came after the final flush (lost)
    uint64_t l7_notes = 0;         ///< DPI results handed to the tap (ReaderTap::on_l7)
    uint64_t l7_notes_lost = 0;    ///< DPI results lost to a full worker->reader ring
    uint64_t unsampled = 0;        ///< keyed packets packet sampling left out of the flow table
    uint64_t unsampled_bytes = 0;  ///< their wire bytes
};

class Pipeline {
public:
    /// Called on the export thread (or the calling thread with 0 workers)
    /// for every ended flow, in the order each worker ended them.
    using Sink = std::function<void(const FlowRecord&)>;

    /// Errors: EINVAL for a bad configuration (ring sizes, workers > 64, and
    /// those of FlowTable::create); ENOMEM.
    static Result<std::unique_ptr<Pipeline>> create(const PipelineConfig& cfg, Sink sink);
    ~Pipeline();

    /// Reads `source` to its end (or until stop()), then flushes every active
    /// flow with end reason "forced end" and waits until the sink has seen
    /// them all. Call once.
    PipelineStats run(PacketSource& source);

    /// Asks run() to stop reading (signal-safe: sets an atomic flag).
    void stop() noexcept;

    /// A consistent-enough snapshot for progress lines, from any thread.
    [[nodiscard]] PipelineStats snapshot() const;

    /// Adds packets counted outside the capture (by the XDP program for a
    /// verdict that kept them from it) to flow `key`: packets[0]/bytes[0]
    /// were sent by side A of the canonical key, [1] by side B; last_ns is
    /// the packet time (ns since the epoch) of the last of them; tcp_flags
    /// the union of their TCP flags per direction (ORed into the flow's
    /// exported flags; they do not move the flow's TCP state).
    /// Thread-safe and cheap: queued, then handed by the reader thread (the
    /// only producer of the worker rings) to the flow's worker once per
    /// burst, as bulk deltas (FlowTable::add_delta). Calls after run() has
    /// flushed are counted in deltas_late.
    void account(const FlowKey& key, const std::array<uint64_t, 2>& packets, const std::array<uint64_t, 2>& bytes,
                 uint64_t last_ns, const std::array<uint8_t, 2>& tcp_flags = {});

    /// Called on the reader thread once reading has stopped, before the
    /// last queued deltas are handed over and every flow is flushed: the
    /// place for a final account(). Set before run().
    void set_before_flush(std::function<void()> fn);

private:
    struct Impl;
    explicit Pipeline(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::engine
