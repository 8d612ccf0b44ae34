// QueuePipelines (see weir/engine/queue_pipelines.hpp): N inline Pipelines,
// one per queue thread, and one export thread draining their record rings.
#include <weir/engine/queue_pipelines.hpp>

#include <boost/lockfree/spsc_queue.hpp>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace weir::engine {

namespace {

using RecordRing = boost::lockfree::spsc_queue<FlowRecord>;

constexpr size_t kMaxQueues = 64;

void pin_self(int cpu) noexcept
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

} // namespace

void add_stats(PipelineStats& a, const PipelineStats& b) noexcept
{
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.decoded += b.decoded;
    a.unsampled += b.unsampled;
    a.unsampled_bytes += b.unsampled_bytes;
    a.flows_created += b.flows_created;
    a.flows_exported += b.flows_exported;
    for (size_t r = 0; r < std::size(a.exported_by_reason); ++r)
        a.exported_by_reason[r] += b.exported_by_reason[r];
    if (b.first_ts_ns && (!a.first_ts_ns || b.first_ts_ns < a.first_ts_ns))
        a.first_ts_ns = b.first_ts_ns;
    a.last_ts_ns = std::max(a.last_ts_ns, b.last_ts_ns);
    a.active_flows += b.active_flows;
    a.elapsed_s = std::max(a.elapsed_s, b.elapsed_s);
    a.drops += b.drops;
    a.dpi += b.dpi;
    a.dpi_copies_dropped += b.dpi_copies_dropped;
    a.delta_packets += b.delta_packets;
    a.delta_bytes += b.delta_bytes;
    a.deltas_late += b.deltas_late;
    a.l7_notes += b.l7_notes;
    a.l7_notes_lost += b.l7_notes_lost;
}

struct QueuePipelines::Impl {
    struct Queue {
        std::unique_ptr<Pipeline> pipe;
        std::unique_ptr<RecordRing> ring;
        std::atomic<uint64_t> ring_full{0};  // records lost to a full ring (lossy mode)
        std::atomic<uint64_t> delivered{0};  // records the export thread handed to the sink
        std::atomic<bool> done{false};       // set after the pipeline's last push
        PipelineStats final_stats;           // written by the queue thread before done
    };

    PipelineConfig cfg;
    Sink sink;
    std::vector<std::unique_ptr<Queue>> q;
    std::atomic<bool> ran{false};
    std::atomic<bool> finished{false};

    [[nodiscard]] PipelineStats queue_stats(const Queue& x) const
    {
        PipelineStats s = x.done.load(std::memory_order_acquire) ? x.final_stats : x.pipe->snapshot();
        // The pipeline counts what it handed to the ring; the export thread
        // what reached the sink.
        s.flows_exported = x.delivered.load(std::memory_order_relaxed);
        s.drops.n[static_cast<size_t>(DropReason::ExportRingFull)] += x.ring_full.load(std::memory_order_relaxed);
        return s;
    }
};

QueuePipelines::QueuePipelines(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QueuePipelines::~QueuePipelines() = default;

Result<std::unique_ptr<QueuePipelines>> QueuePipelines::create(const PipelineConfig& cfg, size_t queues, Sink sink)
{
    if (queues == 0 || queues > kMaxQueues)
        return invalid(std::to_string(queues) + " queue threads (1.." + std::to_string(kMaxQueues) + ")");
    if (cfg.tap)
        return invalid("per-queue threads take no reader tap (IDS egress needs one reader)");
    if (cfg.export_ring_size < 16)
        return invalid("export ring size too small");
    if (!sink)
        return invalid("queue pipelines need a flow sink");
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    impl->sink = std::move(sink);
    PipelineConfig pc = cfg;
    pc.workers = 0;
    pc.cpus.clear(); // each queue thread pins itself
    for (size_t i = 0; i < queues; ++i) {
        auto x = std::make_unique<Impl::Queue>();
        x->ring = std::make_unique<RecordRing>(cfg.export_ring_size);
        Impl::Queue* xp = x.get();
        const bool lossless = cfg.lossless;
        const uint16_t id = static_cast<uint16_t>(i);
        // Random sampling: each queue its own sequence, so that queues fed
        // in lockstep do not pick the same positions.
        const uint64_t base_seed = cfg.sampling.seed ? cfg.sampling.seed : 0x9e3779b97f4a7c15ULL;
        pc.sampling.seed = base_seed + 0xbf58476d1ce4e5b9ULL * (i + 1);
        auto p = Pipeline::create(pc, [xp, lossless, id](const FlowRecord& r) {
            FlowRecord c = r;
            c.worker = id; // the queue thread that owned the flow
            if (xp->ring->push(c))
                return;
            if (!lossless) {
                xp->ring_full.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            while (!xp->ring->push(c))
                std::this_thread::sleep_for(std::chrono::microseconds(20));
        });
        if (!p)
            return p.error();
        x->pipe = std::move(p.value());
        impl->q.push_back(std::move(x));
    }
    return std::unique_ptr<QueuePipelines>(new QueuePipelines(std::move(impl)));
}

PipelineStats QueuePipelines::run(std::span<PacketSource* const> sources)
{
    Impl& m = *impl_;
    PipelineStats total;
    if (m.ran.exchange(true) || sources.size() != m.q.size())
        return total;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    threads.reserve(m.q.size());
    for (size_t i = 0; i < m.q.size(); ++i) {
        const int cpu = i < m.cfg.cpus.size() ? m.cfg.cpus[i] : -1;
        threads.emplace_back([&m, i, cpu, src = sources[i]] {
            pin_self(cpu);
            Impl::Queue& x = *m.q[i];
            x.final_stats = x.pipe->run(*src);
            x.done.store(true, std::memory_order_release);
        });
    }
    // The export thread: every ring in turn until every queue thread is done
    // and its ring is empty. A done flag read before a drain covers every
    // record pushed before it was set.
    uint32_t idle = 0;
    for (;;) {
        bool all_done = true;
        for (const auto& x : m.q)
            all_done = all_done && x->done.load(std::memory_order_acquire);
        size_t got = 0;
        for (auto& x : m.q) {
            Impl::Queue& xq = *x;
            const size_t n = xq.ring->consume_all([&](const FlowRecord& r) { m.sink(r); });
            if (n) {
                xq.delivered.fetch_add(n, std::memory_order_relaxed);
                got += n;
            }
        }
        if (got) {
            idle = 0;
            continue;
        }
        if (all_done)
            break;
        if (++idle < 64)
            std::this_thread::yield();
        else
            std::this_thread::sleep_for(std::chrono::microseconds(idle < 1024 ? 50 : 500));
    }
    for (auto& t : threads)
        t.join();
    for (const auto& x : m.q)
        add_stats(total, m.queue_stats(*x));
    total.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.finished.store(true, std::memory_order_release);
    return total;
}

void QueuePipelines::stop() noexcept
{
    for (const auto& x : impl_->q)
        x->pipe->stop();
}

PipelineStats QueuePipelines::snapshot() const
{
    PipelineStats total;
    for (const auto& x : impl_->q)
        add_stats(total, impl_->queue_stats(*x));
    return total;
}

std::vector<PipelineStats> QueuePipelines::per_queue() const
{
    std::vector<PipelineStats> v;
    for (const auto& x : impl_->q)
        v.push_back(impl_->queue_stats(*x));
    return v;
}

size_t QueuePipelines::queues() const noexcept
{
    return impl_->q.size();
}

} // namespace weir::engine
