// weir's per-queue mode (--per-queue) and start-up NIC warnings: the pieces
// main.cpp wires in, kept apart from it.
#pragma once

#include <weir/core/packet_source.hpp>
#include <weir/dataplane/live.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/queue_pipelines.hpp>

#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace weir::tools {

/// The flow engine of a run: one Pipeline (a reader and -w workers), or one
/// inline pipeline per RX queue (--per-queue). The same calls either way.
struct PipelineHandle {
    engine::Pipeline* one = nullptr;
    engine::QueuePipelines* many = nullptr;
    std::vector<PacketSource*> queue_sources; ///< with `many`: one per queue thread

    [[nodiscard]] engine::PipelineStats snapshot() const { return one ? one->snapshot() : many->snapshot(); }
    void stop() noexcept
    {
        if (one)
            one->stop();
        else
            many->stop();
    }
    /// `all` is the whole input (with `many`: the merged view of the queues,
    /// used for statistics only; the queue threads read queue_sources).
    engine::PipelineStats run(PacketSource& all)
    {
        return one ? one->run(all) : many->run(std::span<PacketSource* const>(queue_sources));
    }
};

/// Opens -i as one source per RX queue: `all` (owner, statistics) is
/// returned, the per-queue sources are appended to `queues`.
Result<std::unique_ptr<PacketSource>> open_per_queue(const std::string& input, const dataplane::LiveOptions& opt,
                                                     std::vector<PacketSource*>& queues);

/// The weir::nics warnings for every interface of a live -i list (none for
/// files), each "IF: ...". Query problems become warnings too. Computed
/// before the capture opens: promiscuous mode is taken as on when weir turns
/// it on itself (opt.promisc), and an XDP program found attached is someone
/// else's.
std::vector<std::string> capture_warnings(const std::string& input, const dataplane::LiveOptions& opt);

/// JSON array of strings.
std::string json_string_array(const std::vector<std::string>& v);

/// The per-queue lines of the summary; returns them as a JSON member
/// (",\"per_queue\":[...]").
std::string print_per_queue_summary(std::FILE* out, const std::vector<engine::PipelineStats>& per_queue,
                                    const std::vector<PacketSource*>& sources, const std::vector<int>& cpus);

} // namespace weir::tools
