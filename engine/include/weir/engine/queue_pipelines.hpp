// QueuePipelines: one capture thread per RX queue (nProbe Cento's model for
// multi-queue NICs), each running an inline Pipeline (workers == 0: decode,
// flow table and DPI on the thread that reads the queue, no packet rings),
// all feeding one export thread.
//
// Each queue thread's ended flows go through its own single-producer ring
// to the export thread (the thread that calls run()), which calls the sink
// for all of them, so exporters and writers stay single-threaded. With
// lossless the queue thread waits for room; without (live capture) a record
// that finds the ring full is dropped and counted (ExportRingFull), so a
// slow collector never stalls capture.
//
// A flow is accounted by the table of the queue that received its packets.
// The NIC's RSS decides that: with a symmetric key both directions of a
// connection reach one queue and make one record; with an asymmetric one
// (or on veth, where a frame lands on the queue of its sender's CPU or TX
// queue) the two directions can be counted by two tables and exported as
// two records, one per direction. QueuePipelines does not merge them
// (docs/capture.md, "Per-queue threads").
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/core/result.hpp>
#include <weir/engine/pipeline.hpp>

#include <memory>
#include <span>
#include <vector>

namespace weir::engine {

/// Adds b's counters to a (first/last times: the earliest and the latest).
void add_stats(PipelineStats& a, const PipelineStats& b) noexcept;

class QueuePipelines {
public:
    using Sink = Pipeline::Sink;

    /// One inline pipeline per queue with cfg's table, decoder and DPI
    /// settings; cfg.workers is ignored (always inline), cfg.cpus[i] pins
    /// queue thread i, cfg.export_ring_size sizes each queue's ring to the
    /// export thread, cfg.lossless chooses waiting over counted drops.
    /// Errors: EINVAL for no queue, more than 64, a reader tap (cfg.tap) or
    /// what Pipeline::create refuses; ENOMEM.
    static Result<std::unique_ptr<QueuePipelines>> create(const PipelineConfig& cfg, size_t queues, Sink sink);
    ~QueuePipelines();

    /// Reads sources[i] on queue thread i until each ends or stop(); every
    /// thread flushes its own table; the calling thread is the export thread
    /// and returns once the sink has seen every record. Call once, with as
    /// many sources as queues. The result sums every queue.
    PipelineStats run(std::span<PacketSource* const> sources);

    /// Stops every queue thread (signal-safe: atomic stores only).
    void stop() noexcept;

    /// The sum over every queue, from any thread.
    [[nodiscard]] PipelineStats snapshot() const;

    /// Queue i's own counters (flows_exported: records the export thread
    /// handed to the sink; drops include its export ring's).
    [[nodiscard]] std::vector<PipelineStats> per_queue() const;

    [[nodiscard]] size_t queues() const noexcept;

private:
    struct Impl;
    explicit QueuePipelines(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::engine
