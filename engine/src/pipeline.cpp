// Pipeline: reader (calling thread) -> N workers -> export thread.
// See pipeline.hpp for the contract; this file owns the threads and rings.
#include <weir/engine/pipeline.hpp>

#include <boost/lockfree/spsc_queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <pthread.h>
#include <sched.h>
#include <thread>

namespace weir::engine {

namespace {

using PacketRing = boost::lockfree::spsc_queue<PacketMeta>;
using RecordRing = boost::lockfree::spsc_queue<FlowRecord>;
using CoreRing = boost::lockfree::spsc_queue<FlowCore>; // DPI off: no L7 block to carry

// A DPI result on its way from a worker to the reader's tap.
struct L7Note {
    FlowKey key;
    uint32_t hash;
    char name[sizeof(L7Info::name)];
};
using L7Ring = boost::lockfree::spsc_queue<L7Note>;
// Notes are rare (at most two per inspected flow): a small ring per worker
// absorbs a burst of detections between two reader bursts.
constexpr uint32_t kL7RingSize = 4096;

struct L7Feed {
    L7Ring ring{kL7RingSize};
    std::atomic<uint64_t> lost{0}; ///< written by the worker
};

// DpiStage hook of a worker: a full ring loses the note (the flow keeps
// the decision it had), never waits.
void l7_to_ring(void* ctx, const PacketMeta& m, const L7Info& l7) noexcept
{
    auto* f = static_cast<L7Feed*>(ctx);
    L7Note n;
    n.key = m.key;
    n.hash = m.hash;
    std::memcpy(n.name, l7.name, sizeof(n.name));
    n.name[sizeof(n.name) - 1] = '\0';
    if (!f->ring.push(n))
        f->lost.fetch_add(1, std::memory_order_relaxed);
}

constexpr uint32_t kMaxWorkers = 64;

// Payload copies for a worker's DPI, in one single-producer single-consumer
// ring of bytes written and read in place: a record is a header and the
// copy, rounded up to a cache line, so a small copy takes little room and
// the ring's recently used bytes stay in cache. A record that would not fit
// before the end of the buffer leaves a wrap marker there and starts at 0.
// With nDPI a copy is up to kNdpiCopyMax bytes (TLS certificates in the
// large segments of offloading captures), at level 1 up to kDpiCopyMax.
constexpr uint32_t kNdpiCopyMax = 16384 - 16; // a 16 KB record with its header

class PayloadRing {
public:
    struct Record {
        uint64_t ts_ns; ///< of the packet it belongs to (with hash: matches records to packets)
        uint32_t hash;
        uint32_t len; ///< bytes of data; kWrap: none, the next record is at 0
        uint8_t* data() noexcept { return reinterpret_cast<uint8_t*>(this + 1); }
        const uint8_t* data() const noexcept { return reinterpret_cast<const uint8_t*>(this + 1); }
    };
    static_assert(sizeof(Record) == 16);
    static constexpr uint32_t kWrap = UINT32_MAX;
    static constexpr uint64_t record_bytes(uint32_t len) noexcept { return (sizeof(Record) + len + 63) & ~uint64_t{63}; }

    explicit PayloadRing(uint64_t min_bytes)
    {
        n_ = 4096;
        while (n_ < min_bytes)
            n_ <<= 1;
        buf_.reset(static_cast<uint8_t*>(::operator new[](n_, std::align_val_t{64})));
    }
    /// Bytes free for the producer (records and wrap markers take them).
    uint64_t free_bytes() noexcept
    {
        head_cache_ = head_.load(std::memory_order_acquire);
        return n_ - (tail_ - head_cache_);
    }
    /// Room for a copy of `len` bytes, or nullptr when the ring has none.
    /// The record is the consumer's after commit() and publish().
    Record* reserve(uint32_t len) noexcept
    {
        const uint64_t need = record_bytes(len);
        const uint64_t at = tail_ & (n_ - 1);
        const uint64_t to_end = n_ - at;
        const uint64_t skip = need > to_end ? to_end : 0;
        // The consumer's position is read again only when the last one
        // read leaves too little room: its cache line stays put.
        if (n_ - (tail_ - head_cache_) < need + skip && free_bytes() < need + skip)
            return nullptr;
        if (skip) {
            record_at(at)->len = kWrap; // to_end >= 64: records are whole lines
            tail_ += skip;
        }
        pending_ = need;
        return record_at(tail_ & (n_ - 1));
    }
    void commit() noexcept { tail_ += pending_; }
    /// Makes the committed records the consumer's (once per burst, before
    /// their packets are pushed).
    void publish() noexcept
    {
        if (tail_ != tail_pub_cache_)
            tail_pub_.store(tail_pub_cache_ = tail_, std::memory_order_release);
    }
    /// The oldest published record, or nullptr.
    const Record* front() noexcept
    {
        for (;;) {
            if (head_local_ == tail_seen_ && head_local_ == (tail_seen_ = tail_pub_.load(std::memory_order_acquire)))
                return nullptr;
            const uint64_t at = head_local_ & (n_ - 1);
            const Record* r = record_at(at);
            if (r->len != kWrap)
                return r;
            head_local_ += n_ - at;
        }
    }
    /// Frees the record front() returned; the producer sees it after release().
    void pop(const Record* r) noexcept { head_local_ += record_bytes(r->len); }
    void release() noexcept
    {
        if (head_local_ != head_pub_)
            head_.store(head_pub_ = head_local_, std::memory_order_release);
    }

private:
    Record* record_at(uint64_t at) const noexcept { return reinterpret_cast<Record*>(buf_.get() + at); }
    struct Free {
        void operator()(uint8_t* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
    };
    uint64_t n_ = 0;
    std::unique_ptr<uint8_t[], Free> buf_;
    // Each side's own positions and its last view of the other's on a line
    // of its own; the published positions on lines of their own.
    alignas(64) std::atomic<uint64_t> head_{0};     // consumer position, published
    alignas(64) std::atomic<uint64_t> tail_pub_{0}; // producer position, published
    alignas(64) uint64_t head_local_ = 0;           // consumer: its position,
    uint64_t head_pub_ = 0;                         //   what it published,
    uint64_t tail_seen_ = 0;                        //   the producer's last seen
    alignas(64) uint64_t tail_ = 0;                 // producer: its position,
    uint64_t tail_pub_cache_ = 0;                   //   what it published,
    uint64_t head_cache_ = 0;                       //   the consumer's last seen
    uint64_t pending_ = 0;                          //   bytes of the reserved record
};

// FlowTable::AfterPacket calling a lambda.
template <typename F>
void after_packet(void* ctx, const PacketMeta& m, uint32_t i, uint32_t flow) noexcept
{
    (*static_cast<F*>(ctx))(m, i, flow);
}

// Largest copy per packet at a DPI level.
constexpr uint32_t max_copy(uint8_t level) noexcept { return level == 2 ? kNdpiCopyMax : kDpiCopyMax; }

// A lossless reader (files) makes sure, before each burst, that a whole
// burst of the largest copies fits (and waits for the worker otherwise);
// every byte then held belongs to a packet already pushed, so the wait
// ends. The ring is a few such bursts: small, so it stays in cache. A lossy
// reader (live capture) never waits: its ring has room for a kDpiCopyMax
// copy of every packet that can be in the packet ring, in the reader's
// staging block or in the worker's hands, and drops (counts) only longer
// nDPI copies it cannot fit, after trying them cut to kDpiCopyMax.
uint64_t burst_copy_bytes(const PipelineConfig& c) noexcept
{
    return (uint64_t{c.burst} + 2) * PayloadRing::record_bytes(max_copy(c.dpi.level));
}
uint64_t payload_ring_bytes(const PipelineConfig& c) noexcept
{
    if (c.lossless)
        return c.dpi_ring_bytes ? std::max(c.dpi_ring_bytes, burst_copy_bytes(c) + 64)
                                : std::max<uint64_t>(1u << 20, 4 * burst_copy_bytes(c));
    return (uint64_t{c.ring_size} + c.burst + 128) * PayloadRing::record_bytes(kDpiCopyMax);
}

// Reader-side guess of which packets a worker's DPI still wants: payload
// counts per direction of recently seen flows, direct-mapped by hash. A
// flow pushed out by another restarts its counts and gets a few copies
// more than needed, which the worker ignores; no wanted packet is missed.
// nDPI (level 2) takes every packet of a flow, both directions counted
// together, up to its give-up bound.
class CopyFilter {
public:
    explicit CopyFilter(const DpiConfig& c)
        : per_flow_(c.level == 2),
          limit_(c.level == 2 ? std::max(c.ndpi_tcp_packets, c.ndpi_udp_packets) + 1u : c.packets_per_direction),
          slots_(kSlots)
    {
    }
    /// Asks for the slot want(m) reads: the reader decodes a burst, then
    /// copies, so the slots of a whole burst come in at once.
    void prefetch(const PacketMeta& m) const noexcept
    {
        const Slot* s = &slots_[m.hash & (kSlots - 1)];
        __builtin_prefetch(s, 1);
        __builtin_prefetch(reinterpret_cast<const uint8_t*>(s) + sizeof(Slot) - 1, 1);
    }
    bool want(const PacketMeta& m) noexcept
    {
        Slot& s = slots_[m.hash & (kSlots - 1)];
        if (!s.used || !(s.key == m.key)) {
            s.key = m.key;
            s.used = 1;
            s.count[0] = s.count[1] = 0;
        }
        uint16_t& c = s.count[per_flow_ || m.src_is_a ? 0 : 1];
        if (c >= limit_)
            return false;
        ++c;
        return true;
    }

private:
    static constexpr uint32_t kSlots = 1u << 16;
    struct Slot {
        FlowKey key;
        uint8_t used = 0;
        uint16_t count[2]{};
    };
    bool per_flow_;
    uint32_t limit_;
    std::vector<Slot> slots_;
};

// A cut copy of an IP packet for nDPI: its length field made to match the
// copy, so nDPI reads the first kDpiCopyMax bytes as a whole (shorter)
// packet instead of refusing a header that claims more than it was given.
void fit_ip_length(uint8_t* ip, uint32_t len) noexcept
{
    const unsigned version = ip[0] >> 4;
    uint32_t v = len;
    if (version == 6)
        v = len - 40; // len >= kDpiCopyMax > 40
    else if (version != 4)
        return;
    const uint32_t cur = static_cast<uint32_t>(ip[version == 4 ? 2 : 4]) << 8 | ip[version == 4 ? 3 : 5];
    if (cur == 0 || cur <= v)
        return; // 0: offloaded super-frame, bounded by the frame already
    ip[version == 4 ? 2 : 4] = static_cast<uint8_t>(v >> 8);
    ip[version == 4 ? 3 : 5] = static_cast<uint8_t>(v);
}

// Spin a little, then yield, then sleep: a consumer with nothing to do must
// not burn the core a producer needs (this machine class has two).
class Backoff {
public:
    void reset() noexcept { n_ = 0; }
    void wait() noexcept
    {
        ++n_;
        if (n_ < 64) {
            __builtin_ia32_pause();
        } else if (n_ < 256) {
            std::this_thread::yield();
        } else {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

private:
    uint32_t n_ = 0;
};

void pin_to_cpu(std::thread& t, int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t.native_handle(), sizeof(set), &set);
}

// Counters a worker publishes for snapshot() readers on other threads.
struct alignas(64) WorkerShared {
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> flows_created{0};
    std::atomic<uint64_t> active{0};
    std::atomic<uint64_t> export_ring_full{0};
    std::atomic<bool> input_done{false}; ///< set by the reader after its last push
    std::atomic<bool> exited{false};     ///< set by the worker after its last export push
};

} // namespace

struct Pipeline::Impl {
    PipelineConfig cfg;
    Sink sink;

    // Per worker: input ring, flow table, export ring, published counters.
    std::vector<std::unique_ptr<PacketRing>> in_rings;
    // Per worker, one of: whole records (DPI on), records without their L7
    // block (DPI off).
    std::vector<std::unique_ptr<RecordRing>> out_rings;
    std::vector<std::unique_ptr<CoreRing>> core_rings;
    std::vector<std::unique_ptr<FlowTable>> tables;
    std::vector<std::unique_ptr<DpiStage>> dpis;           ///< one per table
    std::vector<std::unique_ptr<PayloadRing>> payload_rings; ///< per worker, DPI level >= 1 only
    std::unique_ptr<WorkerShared[]> shared;
    std::vector<std::unique_ptr<L7Feed>> l7_feeds; ///< per worker, with a tap and DPI level >= 1
    std::atomic<uint64_t> l7_notes{0};             ///< written by the reader

    Decoder decoder;
    std::atomic<bool> stop_requested{false};
    bool ran = false;
    std::atomic<bool> run_finished{false}; ///< every thread joined: tables may be read

    // Reader-side counters, published for snapshot().
    std::atomic<uint64_t> rd_packets{0};
    std::atomic<uint64_t> rd_bytes{0};
    std::atomic<uint64_t> rd_decoded{0};
    std::atomic<uint64_t> rd_ring_full{0};
    // Packet sampling (reader only), and what it left out.
    PacketSampler sampler;
    std::atomic<uint64_t> rd_unsampled{0};
    std::atomic<uint64_t> rd_unsampled_bytes{0};
    uint64_t rd_copies_dropped = 0; ///< read after run() only
    std::atomic<uint64_t> exported{0};
    std::atomic<uint64_t> first_ts{0};
    std::atomic<uint64_t> last_ts{0};

    // Bulk deltas from account(), any thread -> reader. The flag keeps the
    // reader's per-burst check to one relaxed load.
    std::mutex delta_mu;
    std::vector<PacketMeta> delta_q;   ///< guarded by delta_mu
    bool deltas_closed = false;        ///< guarded by delta_mu: run() has flushed
    std::atomic<bool> delta_pending{false};
    std::atomic<uint64_t> deltas_late{0};
    std::vector<PacketMeta> delta_work; ///< reader only
    std::function<void()> before_flush;

    /// Takes the queued deltas into delta_work (reader thread).
    void take_deltas()
    {
        std::lock_guard g(delta_mu);
        delta_work.insert(delta_work.end(), delta_q.begin(), delta_q.end());
        delta_q.clear();
        delta_pending.store(false, std::memory_order_relaxed);
    }
    /// Inline mode: applies queued deltas to the one table.
    void drain_deltas_inline(FlowTable& table, const FlowSink& fsink)
    {
        take_deltas();
        for (const PacketMeta& d : delta_work)
            table.add_delta(d, fsink);
        delta_work.clear();
    }
    /// Threaded mode: pushes queued deltas to their workers' rings; what
    /// does not fit waits for the next burst (or, with wait, is waited for).
    void drain_deltas_threaded(bool wait)
    {
        take_deltas();
        size_t kept = 0;
        for (const PacketMeta& d : delta_work) {
            PacketRing& ring = *in_rings[worker_of(d.hash)];
            bool ok = ring.push(d);
            if (!ok && wait) {
                Backoff b;
                while (!(ok = ring.push(d)))
                    b.wait();
            }
            if (!ok)
                delta_work[kept++] = d;
        }
        delta_work.resize(kept);
        if (kept)
            delta_pending.store(true, std::memory_order_relaxed);
    }
    /// Reading is over: last call for deltas, then no more.
    void close_deltas()
    {
        if (before_flush)
            before_flush();
        std::lock_guard g(delta_mu);
        deltas_closed = true;
    }

    explicit Impl(const PipelineConfig& c, Sink s)
        : cfg(c), sink(std::move(s)), decoder(c.decoder), sampler(c.sampling)
    {
    }

    uint32_t nworkers() const noexcept { return cfg.workers; }

    /// Inline mode's DpiStage hook: straight to the tap (same thread).
    static void l7_to_tap(void* ctx, const PacketMeta& m, const L7Info& l7) noexcept
    {
        auto* self = static_cast<Impl*>(ctx);
        self->cfg.tap->on_l7(m.key, m.hash, std::string_view(l7.name, strnlen(l7.name, sizeof(l7.name))));
        self->l7_notes.store(self->l7_notes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    /// Threaded mode: hands the workers' DPI results to the tap (reader thread).
    void drain_l7() noexcept
    {
        uint64_t got = 0;
        for (auto& f : l7_feeds) {
            std::array<L7Note, 32> buf;
            size_t n;
            while ((n = f->ring.pop(buf.data(), buf.size())) > 0) {
                for (size_t i = 0; i < n; ++i)
                    cfg.tap->on_l7(buf[i].key, buf[i].hash, std::string_view(buf[i].name, strnlen(buf[i].name, sizeof(buf[i].name))));
                got += n;
            }
        }
        if (got)
            l7_notes.store(l7_notes.load(std::memory_order_relaxed) + got, std::memory_order_relaxed);
    }

    // Multiply-shift instead of modulo: the hash is uniform in 32 bits.
    uint32_t worker_of(uint32_t hash) const noexcept
    {
        return static_cast<uint32_t>((static_cast<uint64_t>(hash) * cfg.workers) >> 32);
    }

    void run_inline(PacketSource& source, PipelineStats& st);
    void run_threaded(PacketSource& source, PipelineStats& st);
    void worker_main(uint32_t w);
    void export_main();
    void note_time(uint64_t ts) noexcept
    {
        if (first_ts.load(std::memory_order_relaxed) == 0)
            first_ts.store(ts, std::memory_order_relaxed);
        if (ts > last_ts.load(std::memory_order_relaxed))
            last_ts.store(ts, std::memory_order_relaxed);
    }
    void collect(PipelineStats& st) const;
};

Result<std::unique_ptr<Pipeline>> Pipeline::create(const PipelineConfig& cfg, Sink sink)
{
    if (cfg.workers > kMaxWorkers)
        return invalid("workers must be at most 64");
    if (cfg.burst == 0 || cfg.burst > 1024)
        return invalid("burst must be 1..1024");
    if (cfg.workers > 0 && (cfg.ring_size < 2 * cfg.burst || cfg.export_ring_size < 16))
        return invalid("ring sizes too small");
    if (cfg.tick_ns == 0)
        return invalid("tick must be positive");
    if (!sink)
        return invalid("pipeline needs a flow sink");

    auto impl = std::make_unique<Impl>(cfg, std::move(sink));
    const uint32_t ntables = std::max<uint32_t>(cfg.workers, 1);
    for (uint32_t w = 0; w < ntables; ++w) {
        auto t = FlowTable::create(cfg.table, static_cast<uint16_t>(w));
        if (!t)
            return t.error();
        impl->tables.push_back(std::move(t.value()));
        // Flow mode: each stage finds its flows by their entry in its table.
        DpiConfig dc = cfg.dpi;
        dc.flow_slots = cfg.table.capacity;
        auto d = DpiStage::create(dc);
        if (!d)
            return d.error();
        impl->dpis.push_back(std::move(d.value()));
    }
    for (uint32_t w = 0; w < cfg.workers; ++w) {
        impl->in_rings.push_back(std::make_unique<PacketRing>(cfg.ring_size));
        if (cfg.dpi.level >= 1) {
            impl->out_rings.push_back(std::make_unique<RecordRing>(cfg.export_ring_size));
            impl->payload_rings.push_back(std::make_unique<PayloadRing>(payload_ring_bytes(cfg)));
        } else {
            impl->core_rings.push_back(std::make_unique<CoreRing>(cfg.export_ring_size));
        }
    }
    impl->shared = std::make_unique<WorkerShared[]>(ntables);
    // DPI results back to the reader's tap (the IDS egress policy's
    // [protocol] rules): only when someone listens.
    if (cfg.tap && cfg.dpi.level >= 1) {
        if (cfg.workers == 0) {
            impl->dpis[0]->set_l7_notify(&Impl::l7_to_tap, impl.get());
        } else {
            for (uint32_t w = 0; w < cfg.workers; ++w) {
                impl->l7_feeds.push_back(std::make_unique<L7Feed>());
                impl->dpis[w]->set_l7_notify(&l7_to_ring, impl->l7_feeds.back().get());
            }
        }
    }
    return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

void Pipeline::stop() noexcept { impl_->stop_requested.store(true, std::memory_order_relaxed); }

PipelineStats Pipeline::run(PacketSource& source)
{
    PipelineStats st;
    if (impl_->ran)
        return st;
    impl_->ran = true;
    const auto t0 = std::chrono::steady_clock::now();
    if (impl_->cfg.workers == 0)
        impl_->run_inline(source, st);
    else
        impl_->run_threaded(source, st);
    st.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    impl_->run_finished.store(true, std::memory_order_release);
    impl_->collect(st);
    return st;
}

void Pipeline::account(const FlowKey& key, const std::array<uint64_t, 2>& packets,
                       const std::array<uint64_t, 2>& bytes, uint64_t last_ns, const std::array<uint8_t, 2>& tcp_flags)
{
    Impl& m = *impl_;
    const uint32_t hash = flow_hash(key);
    std::lock_guard g(m.delta_mu);
    if (m.deltas_closed) {
        m.deltas_late.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    for (int d = 0; d < 2; ++d) {
        // A delta carries 32-bit counts: split larger ones (same sums); the
        // first carries the flags.
        uint64_t np = packets[d], nb = bytes[d];
        uint8_t fl = tcp_flags[d];
        while (np || nb || fl) {
            const uint32_t p32 = static_cast<uint32_t>(std::min<uint64_t>(np, UINT32_MAX));
            const uint32_t b32 = static_cast<uint32_t>(std::min<uint64_t>(nb, UINT32_MAX));
            PacketMeta pm = make_delta(key, d == 0, p32, b32, last_ns, fl);
            pm.hash = hash;
            m.delta_q.push_back(pm);
            np -= p32;
            nb -= b32;
            fl = 0;
        }
    }
    m.delta_pending.store(true, std::memory_order_relaxed);
}

void Pipeline::set_before_flush(std::function<void()> fn)
{
    impl_->before_flush = std::move(fn);
}

PipelineStats Pipeline::snapshot() const
{
    PipelineStats st;
    impl_->collect(st);
    return st;
}

void Pipeline::Impl::collect(PipelineStats& st) const
{
    st.packets = rd_packets.load(std::memory_order_relaxed);
    st.bytes = rd_bytes.load(std::memory_order_relaxed);
    st.decoded = rd_decoded.load(std::memory_order_relaxed);
    st.unsampled = rd_unsampled.load(std::memory_order_relaxed);
    st.unsampled_bytes = rd_unsampled_bytes.load(std::memory_order_relaxed);
    st.first_ts_ns = first_ts.load(std::memory_order_relaxed);
    st.last_ts_ns = last_ts.load(std::memory_order_relaxed);
    st.flows_exported = exported.load(std::memory_order_relaxed);
    st.flows_created = 0;
    st.active_flows = 0;
    const uint32_t ntables = std::max<uint32_t>(cfg.workers, 1);
    for (uint32_t w = 0; w < ntables; ++w) {
        st.flows_created += shared[w].flows_created.load(std::memory_order_relaxed);
        st.active_flows += shared[w].active.load(std::memory_order_relaxed);
    }
    // Per-reason detail is only read once run() has joined every thread,
    // when the tables and the decoder are no longer written.
    if (run_finished.load(std::memory_order_acquire)) {
        st.drops += decoder.stats().drops;
        for (const auto& t : tables) {
            st.drops += t->stats().drops;
            for (int r = 0; r < 6; ++r)
                st.exported_by_reason[r] += t->stats().exported[r];
        }
        for (const auto& d : dpis)
            st.dpi += d->stats();
        st.dpi_copies_dropped = rd_copies_dropped;
        for (const auto& t : tables) {
            st.delta_packets += t->stats().delta_packets;
            st.delta_bytes += t->stats().delta_bytes;
        }
    }
    st.deltas_late = deltas_late.load(std::memory_order_relaxed);
    st.l7_notes = l7_notes.load(std::memory_order_relaxed);
    st.l7_notes_lost = 0;
    for (const auto& f : l7_feeds)
        st.l7_notes_lost += f->lost.load(std::memory_order_relaxed);
    st.drops.n[static_cast<size_t>(DropReason::RingFull)] = rd_ring_full.load(std::memory_order_relaxed);
    uint64_t erf = 0;
    for (uint32_t w = 0; w < cfg.workers; ++w)
        erf += shared[w].export_ring_full.load(std::memory_order_relaxed);
    st.drops.n[static_cast<size_t>(DropReason::ExportRingFull)] = erf;
}

// ---------------------------------------------------------------------------
// Inline mode: decode, account and export on the calling thread.

void Pipeline::Impl::run_inline(PacketSource& source, PipelineStats&)
{
    FlowTable& table = *tables[0];
    DpiStage& dpi = *dpis[0];
    const bool inspect = cfg.dpi.level >= 1;
    WorkerShared& pub = shared[0];
    std::vector<RawPacket> raw(cfg.burst);
    std::vector<PacketMeta> metas(cfg.burst);
    std::vector<uint32_t> raw_of(cfg.burst); // metas[j] came from raw[raw_of[j]]
    const FlowSink fsink = [this, &dpi](const FlowRecord& r) {
        FlowRecord out = r;
        dpi.finish(out);
        sink(out);
        exported.fetch_add(1, std::memory_order_relaxed);
    };
    uint64_t packets = 0, bytes = 0, decoded = 0, now = 0;
    uint64_t unsampled = 0, unsampled_bytes = 0;

    const bool live = source.live();
    while (!stop_requested.load(std::memory_order_relaxed)) {
        if (delta_pending.load(std::memory_order_relaxed))
            drain_deltas_inline(table, fsink);
        const uint32_t n = source.rx_burst(raw.data(), cfg.burst);
        if (n == 0) {
            if (source.finished())
                break;
            if (live) {
                // A quiet link: the wall clock moves idle flows out.
                now = std::max(now, source.now_ns());
                note_time(now);
                table.expire(now, fsink);
                pub.active.store(table.active(), std::memory_order_relaxed);
            } else {
                std::this_thread::yield();
            }
            continue;
        }
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; ++i) {
            bytes += raw[i].wire_len;
            if (decoder.decode(raw[i], metas[m])) {
                now = std::max(now, metas[m].ts_ns);
                raw_of[m] = i;
                if (cfg.tap)
                    cfg.tap->packet(raw[i], &metas[m]);
                // Sampling after the tap: the IDS egress sees every frame.
                if (!sampler.take()) {
                    ++unsampled;
                    unsampled_bytes += raw[i].wire_len;
                    continue;
                }
                ++m;
            } else if (cfg.tap) {
                cfg.tap->packet(raw[i], nullptr);
            }
        }
        packets += n;
        decoded += m;
        if (cfg.tap)
            cfg.tap->burst_end();
        if (m) {
            note_time(metas[0].ts_ns);
            if (!inspect) {
                table.update_burst(metas.data(), m, fsink);
            } else {
                // Account first: a packet that ends a flow and starts the
                // next must not be inspected as part of the ended one.
                auto look = [&](const PacketMeta& pm, uint32_t j, uint32_t flow) noexcept {
                    const RawPacket& rp = raw[raw_of[j]];
                    const auto bytes = DpiStage::input(cfg.dpi.level, pm, rp.data, rp.caplen);
                    if (!bytes.empty())
                        dpi.inspect(pm, bytes, flow);
                    else
                        dpi.observe(pm, flow);
                };
                table.update_burst(metas.data(), m, fsink, after_packet<decltype(look)>, &look);
            }
            note_time(now);
        }
        table.expire(now, fsink);
        rd_packets.store(packets, std::memory_order_relaxed);
        rd_bytes.store(bytes, std::memory_order_relaxed);
        rd_decoded.store(decoded, std::memory_order_relaxed);
        rd_unsampled.store(unsampled, std::memory_order_relaxed);
        rd_unsampled_bytes.store(unsampled_bytes, std::memory_order_relaxed);
        pub.active.store(table.active(), std::memory_order_relaxed);
        pub.flows_created.store(table.stats().flows_created, std::memory_order_relaxed);
    }
    close_deltas();
    drain_deltas_inline(table, fsink);
    table.flush(fsink, EndReason::ForcedEnd);
    pub.active.store(table.active(), std::memory_order_relaxed);
    pub.flows_created.store(table.stats().flows_created, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// Threaded mode.

void Pipeline::Impl::worker_main(uint32_t w)
{
    PacketRing& in = *in_rings[w];
    FlowTable& table = *tables[w];
    DpiStage& dpi = *dpis[w];
    PayloadRing* payloads = cfg.dpi.level >= 1 ? payload_rings[w].get() : nullptr;
    WorkerShared& pub = shared[w];
    const bool lossless = cfg.lossless;

    const auto push = [&](auto& ring, const auto& r) {
        if (ring.push(r))
            return;
        if (!lossless) {
            pub.export_ring_full.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        Backoff b;
        while (!ring.push(r))
            b.wait();
    };
    const FlowSink fsink = [&](const FlowRecord& rec) {
        // Level 0 needs no per-flow state: the record goes without its L7
        // block, and the export thread adds a blank one and the port guess.
        // With DPI the record is copied once and filled in; raw storage, so
        // no flow pays for constructing a record first.
        if (!payloads) {
            push(*core_rings[w], static_cast<const FlowCore&>(rec));
            return;
        }
        alignas(FlowRecord) std::byte filled[sizeof(FlowRecord)];
        std::memcpy(filled, &rec, sizeof(rec)); // trivially copyable: the copy is a FlowRecord
        auto* f = std::launder(reinterpret_cast<FlowRecord*>(filled));
        dpi.finish(*f);
        push(*out_rings[w], *f);
    };

    constexpr uint32_t kPop = 64;
    std::array<PacketMeta, kPop> items;
    uint64_t now = 0, packets = 0;
    Backoff idle;

    // DPI: each packet inspected right after it is accounted, so a packet
    // that ends a flow and starts the next is not inspected as part of the
    // ended one (see run_inline).
    auto inspect = [&](const PacketMeta& it, uint32_t, uint32_t flow) noexcept {
        if (!it.dpi_copy) {
            dpi.observe(it, flow);
            return;
        }
        // Pushed before its packet: present once the packet is. A lossy
        // reader may have dropped packets whose copies are queued: those
        // are older, skip them.
        const PayloadRing::Record* rec;
        while ((rec = payloads->front()) && (rec->hash != it.hash || rec->ts_ns != it.ts_ns))
            payloads->pop(rec);
        if (rec) {
            dpi.inspect(it, {rec->data(), rec->len}, flow);
            payloads->pop(rec);
        } else {
            dpi.observe(it, flow); // its copy was lost
        }
    };
    auto account = [&](size_t from, size_t to) {
        if (to <= from)
            return;
        const auto k = static_cast<uint32_t>(to - from);
        if (payloads)
            table.update_burst(items.data() + from, k, fsink, after_packet<decltype(inspect)>, &inspect);
        else
            table.update_burst(items.data() + from, k, fsink);
        packets += k;
    };
    for (;;) {
        const size_t n = in.pop(items.data(), kPop);
        if (n == 0) {
            // The reader sets done only after its last push, so an empty ring
            // seen after done is final.
            if (pub.input_done.load(std::memory_order_acquire) && in.read_available() == 0)
                break;
            idle.wait();
            continue;
        }
        idle.reset();
        // Packets are accounted in place, in runs between clock ticks.
        size_t run = 0;
        for (size_t i = 0; i < n; ++i) {
            const PacketMeta& it = items[i];
            now = std::max(now, it.ts_ns);
            if (it.control) {
                // A clock tick or a bulk delta: account what came before
                // it, then expire or add the delta.
                account(run, i);
                run = i + 1;
                if (it.control == kCtlDelta)
                    table.add_delta(it, fsink);
                else
                    table.expire(now, fsink);
            }
        }
        account(run, n);
        if (payloads)
            payloads->release();
        table.expire(now, fsink);
        pub.packets.store(packets, std::memory_order_relaxed);
        pub.active.store(table.active(), std::memory_order_relaxed);
        pub.flows_created.store(table.stats().flows_created, std::memory_order_relaxed);
    }
    table.flush(fsink, EndReason::ForcedEnd);
    pub.active.store(table.active(), std::memory_order_relaxed);
    pub.flows_created.store(table.stats().flows_created, std::memory_order_relaxed);
    pub.exited.store(true, std::memory_order_release);
}

void Pipeline::Impl::export_main()
{
    constexpr size_t kPop = 256;
    // Whole records are read where the worker wrote them (no copy out of
    // the ring); each slot is the worker's again once its record is sunk.
    const auto take = [this](const FlowRecord& r) { sink(r); };
    // Records without DPI: completed here, in a record that stays in this
    // thread's cache, with a blank L7 block and the port guess.
    FlowRecord whole{};
    const auto take_core = [this, &whole](const FlowCore& c) {
        static_cast<FlowCore&>(whole) = c;
        whole.l7 = L7Info{};
        guess_l7_by_port(whole);
        sink(whole);
    };
    const bool cores = !core_rings.empty();
    std::vector<bool> finished(cfg.workers, false);
    uint32_t nfinished = 0;
    while (nfinished < cfg.workers) {
        size_t got = 0;
        for (uint32_t w = 0; w < cfg.workers; ++w) {
            if (finished[w])
                continue;
            // Read the flag before draining: a worker publishes "exited" only
            // after its last push, so a drained ring after that is final.
            const bool exited = shared[w].exited.load(std::memory_order_acquire);
            size_t n = 0;
            if (cores) {
                while (n < kPop && core_rings[w]->consume_one(take_core))
                    ++n;
            } else {
                while (n < kPop && out_rings[w]->consume_one(take))
                    ++n;
            }
            got += n;
            if (n)
                exported.fetch_add(n, std::memory_order_relaxed);
            const size_t left = cores ? core_rings[w]->read_available() : out_rings[w]->read_available();
            if (exited && n == 0 && left == 0) {
                finished[w] = true;
                ++nfinished;
            }
        }
        // Nothing to export: sleep rather than spin or yield. The records
        // wait at most this long, a ring holds thousands, and on a machine
        // of two cores the reader and the worker keep both of them.
        if (got == 0)
            std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

void Pipeline::Impl::run_threaded(PacketSource& source, PipelineStats&)
{
    const uint32_t nw = cfg.workers;
    std::vector<std::thread> workers;
    workers.reserve(nw);
    for (uint32_t w = 0; w < nw; ++w) {
        workers.emplace_back([this, w] { worker_main(w); });
        if (w < cfg.cpus.size())
            pin_to_cpu(workers.back(), cfg.cpus[w]);
    }
    std::thread exporter([this] { export_main(); });

    std::vector<RawPacket> raw(cfg.burst);
    std::vector<uint32_t> raw_of(cfg.burst);           // with DPI: packet j of the burst came from raw[raw_of[j]]
    std::vector<PacketMeta> decoded_burst(cfg.dpi.level >= 1 && nw > 1 ? cfg.burst : 0); // with DPI, several workers
    // Staging per worker, pushed as one block per burst.
    std::vector<std::vector<PacketMeta>> stage(nw, std::vector<PacketMeta>(cfg.burst + 1));
    std::vector<uint32_t> staged(nw, 0);
    uint64_t packets = 0, bytes = 0, decoded = 0, ring_full = 0;
    uint64_t unsampled = 0, unsampled_bytes = 0;
    uint64_t now = 0, next_tick = 0;

    auto push_all = [&](uint32_t w, const PacketMeta* p, uint32_t n) {
        PacketRing& ring = *in_rings[w];
        size_t done = ring.push(p, n);
        if (done == n)
            return;
        if (!cfg.lossless) {
            ring_full += n - done;
            return;
        }
        Backoff b;
        while (done < n) {
            done += ring.push(p + done, n - done);
            if (done < n)
                b.wait();
        }
    };

    // DPI: copy the payload of a packet a worker may still inspect.
    std::unique_ptr<CopyFilter> filter;
    if (cfg.dpi.level >= 1)
        filter = std::make_unique<CopyFilter>(cfg.dpi);
    const bool whole_ip = cfg.dpi.level == 2;
    uint64_t copies_dropped = 0;
    const uint32_t copy_max = max_copy(cfg.dpi.level);
    auto copy_payload = [&](const RawPacket& rp, PacketMeta& pm, uint32_t w) {
        // nDPI takes IPv4 first fragments too (DpiStage decides).
        if (!whole_ip && (pm.is_fragment || (pm.key.proto != 6 && pm.key.proto != 17)))
            return;
        const auto bytes = DpiStage::input(cfg.dpi.level, pm, rp.data, rp.caplen);
        if (bytes.empty() || !filter->want(pm))
            return;
        PayloadRing& ring = *payload_rings[w];
        uint32_t len = static_cast<uint32_t>(std::min<std::size_t>(bytes.size(), copy_max));
        PayloadRing::Record* rec = ring.reserve(len);
        if (!rec && len > kDpiCopyMax)
            rec = ring.reserve(len = kDpiCopyMax); // lossy only: see payload_ring_bytes
        if (!rec) {
            ++copies_dropped; // lossy only
            return;
        }
        std::memcpy(rec->data(), bytes.data(), len);
        if (whole_ip && len < bytes.size())
            fit_ip_length(rec->data(), len); // cut: its IP length made to match
        rec->len = len;
        rec->hash = pm.hash;
        rec->ts_ns = pm.ts_ns;
        ring.commit();
        pm.dpi_copy = 1;
    };
    // Lossless: room for a whole burst of copies before reading it (see
    // payload_ring_bytes); the worker frees what the last bursts took.
    auto copy_room = [&] {
        const uint64_t need = burst_copy_bytes(cfg);
        for (uint32_t w = 0; w < nw; ++w) {
            Backoff b;
            while (payload_rings[w]->free_bytes() < need)
                b.wait();
        }
    };

    PacketMeta tick{};
    tick.control = 1;
    auto send_ticks = [&] {
        tick.ts_ns = now;
        for (uint32_t w = 0; w < nw; ++w) {
            // Lossy mode may skip a tick on a full ring (the next one
            // will do); it is not a packet, so it is not counted.
            if (cfg.lossless)
                push_all(w, &tick, 1);
            else
                (void)in_rings[w]->push(tick);
        }
        next_tick = now + cfg.tick_ns;
    };
    const bool live = source.live();
    while (!stop_requested.load(std::memory_order_relaxed)) {
        if (delta_pending.load(std::memory_order_relaxed))
            drain_deltas_threaded(cfg.lossless);
        if (filter && cfg.lossless)
            copy_room();
        const uint32_t n = source.rx_burst(raw.data(), cfg.burst);
        // After the read (which may have waited for traffic): results that
        // came meanwhile apply to this burst already.
        if (!l7_feeds.empty())
            drain_l7();
        if (n == 0) {
            if (source.finished())
                break;
            if (live) {
                // A quiet link: the wall clock keeps the workers' clocks moving.
                now = std::max(now, source.now_ns());
                note_time(now);
                if (now >= next_tick)
                    send_ticks();
            } else {
                std::this_thread::yield();
            }
            continue;
        }
        // Decodes raw[i] into pm: false when it goes no further (not
        // decoded, or left out by sampling).
        auto take = [&](uint32_t i, PacketMeta& pm) {
            bytes += raw[i].wire_len;
            if (!decoder.decode(raw[i], pm)) {
                if (cfg.tap)
                    cfg.tap->packet(raw[i], nullptr);
                return false;
            }
            now = std::max(now, pm.ts_ns);
            if (cfg.tap)
                cfg.tap->packet(raw[i], &pm);
            // Sampling after the tap: the IDS egress sees every frame.
            if (!sampler.take()) {
                ++unsampled;
                unsampled_bytes += raw[i].wire_len;
                return false;
            }
            return true;
        };
        if (filter) {
            // DPI: the burst decoded first (one worker: straight into its
            // staging block), the copies' filter slots asked for meanwhile,
            // then the copies and the staging.
            PacketMeta* out = nw == 1 ? stage[0].data() : decoded_burst.data();
            uint32_t m = 0;
            for (uint32_t i = 0; i < n; ++i) {
                if (take(i, out[m])) {
                    filter->prefetch(out[m]);
                    raw_of[m++] = i;
                }
            }
            for (uint32_t j = 0; j < m; ++j) {
                const uint32_t w = nw == 1 ? 0 : worker_of(out[j].hash);
                copy_payload(raw[raw_of[j]], out[j], w);
                if (nw > 1)
                    stage[w][staged[w]++] = out[j];
            }
            if (nw == 1)
                staged[0] = m;
            decoded += m;
        } else if (nw == 1) {
            // One worker: decode straight into its staging block.
            PacketMeta* out = stage[0].data();
            uint32_t m = 0;
            for (uint32_t i = 0; i < n; ++i)
                m += take(i, out[m]);
            staged[0] = m;
            decoded += m;
        } else {
            for (uint32_t i = 0; i < n; ++i) {
                // Decode into the spare slot past the last worker's staged
                // packets (stage blocks hold burst + 1), and move it only
                // when the packet belongs to another worker.
                PacketMeta& tmp = stage[nw - 1][staged[nw - 1]];
                if (!take(i, tmp))
                    continue;
                const uint32_t w = worker_of(tmp.hash);
                if (w == nw - 1)
                    ++staged[w];
                else
                    stage[w][staged[w]++] = tmp;
                ++decoded;
            }
        }
        packets += n;
        // The egress tap sends before the next read invalidates the frames.
        if (cfg.tap)
            cfg.tap->burst_end();
        if (filter) {
            for (uint32_t w = 0; w < nw; ++w)
                payload_rings[w]->publish(); // copies before their packets
        }
        for (uint32_t w = 0; w < nw; ++w) {
            if (staged[w]) {
                push_all(w, stage[w].data(), staged[w]);
                staged[w] = 0;
            }
        }
        // In-band clock ticks keep idle expiry moving on quiet workers while
        // preserving order with the packets already queued.
        if (now >= next_tick)
            send_ticks();
        note_time(now);
        rd_packets.store(packets, std::memory_order_relaxed);
        rd_bytes.store(bytes, std::memory_order_relaxed);
        rd_decoded.store(decoded, std::memory_order_relaxed);
        rd_ring_full.store(ring_full, std::memory_order_relaxed);
        rd_unsampled.store(unsampled, std::memory_order_relaxed);
        rd_unsampled_bytes.store(unsampled_bytes, std::memory_order_relaxed);
    }
    rd_copies_dropped = copies_dropped;
    close_deltas();
    drain_deltas_threaded(true);
    for (uint32_t w = 0; w < nw; ++w)
        shared[w].input_done.store(true, std::memory_order_release);
    for (auto& t : workers)
        t.join();
    // The last results (of the last packets read): every note reaches the tap.
    if (!l7_feeds.empty())
        drain_l7();
    exporter.join();
}

} // namespace weir::engine
