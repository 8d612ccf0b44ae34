// IDS egress stage: balancing and per-flow policy on the reader thread.
// Contract and semantics in egress_stage.hpp and docs/ids.md.
#include <weir/engine/egress_stage.hpp>

#include <weir/core/flow_key.hpp>

#include "table_memory.hpp"

#include <boost/lockfree/spsc_queue.hpp>


#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_set>

namespace weir::engine {

namespace {

constexpr uint32_t kProbe = 32;        // slots a flow may live in, from its hash
constexpr uint32_t kMaxOutputs = 256;
constexpr uint32_t kEthernet = 1;      // LINKTYPE_ETHERNET
constexpr uint32_t kEthHeader = 14;
constexpr uint32_t kNoEgress = std::numeric_limits<uint32_t>::max();
constexpr size_t kMaxL7Names = 65535; // ids are 16-bit, 0 = none

// Entry::flags
constexpr uint8_t kOffloaded = 1; // a verdict (Entry::off_kind) was requested for the flow
constexpr uint8_t kListed = 2;    // the slot is in offloaded_
constexpr uint8_t kL7Known = 4;   // the flow's DPI result came (detected or given up)

// Entry::off_kind and OffloadOp::op
constexpr uint8_t kOpRemove = 0;
constexpr uint8_t kOpDrop = 1;   // DROP verdict: discard, shunt past K
constexpr uint8_t kOpDivert = 2; // DIVERT verdict to off_egress: forward, egress:X

struct OffloadOp {
    FlowKey key;
    uint32_t egress; // kOpDivert: the egress index
    uint8_t op;      // kOp*
};

struct KeyHash {
    size_t operator()(const FlowKey& k) const noexcept { return flow_hash(k); }
};

// Single writer (the reader thread): a plain add published with a relaxed
// store, so stats() may read from another thread without a locked add on
// the packet path.
inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept
{
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

} // namespace

struct EgressStage::Entry {
    FlowKey key;
    uint64_t last_ns;
    uint64_t packets;      // of the flow seen so far, both directions
    uint64_t gen;          // policy generation + 1 the decision is from; 0 = none yet
    uint32_t hash;
    uint32_t egress;       // Egress: the resolved index
    uint32_t shunt_after;
    uint16_t slice_bytes;
    uint16_t l7;           // interned L7 name, 0 = not known
    uint8_t used;
    uint8_t action;        // PolicyAction
    uint8_t slice_mode;    // SliceMode
    uint8_t flags;         // kOffloaded | kListed | kL7Known
    uint8_t off_kind;      // with kOffloaded: kOpDrop or kOpDivert
    uint8_t off_egress;    // kOpDivert: the egress index (< 256 outputs)
    uint16_t pad;
};

// Keys with a DIVERT verdict of the stage: written by the control thread,
// read by the verdict accounting to split kernel egress from drops.
struct EgressStage::Diverted {
    std::mutex mu;
    std::unordered_set<FlowKey, KeyHash> keys;
    std::atomic<uint64_t> packets{0}, bytes{0};
};

struct EgressStage::OffloadQueue {
    explicit OffloadQueue(uint32_t n) : ring(n) {}
    boost::lockfree::spsc_queue<OffloadOp> ring;
    std::atomic<uint64_t> pushed{0};  // by the reader
    std::atomic<uint64_t> handled{0}; // by the control thread
    std::atomic<bool> stop{false};
};

struct EgressStage::Counters {
    explicit Counters(size_t n)
        : egress_packets(std::make_unique<std::atomic<uint64_t>[]>(n)),
          egress_bytes(std::make_unique<std::atomic<uint64_t>[]>(n))
    {
    }
    std::atomic<uint64_t> packets{0}, delivered{0}, unkeyed{0}, not_ethernet{0}, discarded{0}, shunted{0},
        sliced{0}, steered{0}, bad_egress{0}, flows{0}, table_full{0}, redecided{0}, generation{0}, l7_notes{0},
        l7_redecided{0}, l7_no_flow{0}, offload_installs{0}, offload_removals{0}, offload_failures{0}, offload_lost{0},
        divert_installs{0}, divert_failures{0};
    std::unique_ptr<std::atomic<uint64_t>[]> egress_packets;
    std::unique_ptr<std::atomic<uint64_t>[]> egress_bytes;
};

uint32_t egress_slice_length(const Slice& s, const RawPacket& raw, const PacketMeta& m) noexcept
{
    uint32_t len = raw.caplen;
    if (s.mode == SliceMode::Bytes) {
        len = s.bytes;
    } else if (m.l3_offset < raw.caplen) {
        const uint8_t* ip = raw.data + m.l3_offset;
        // IPv6: the fixed header; extension headers count as L4 here.
        const uint32_t hl = (ip[0] >> 4) == 4 ? (ip[0] & 0x0fu) * 4u : 40u;
        const uint32_t l3_end = m.l3_offset + hl;
        len = l3_end;
        if (s.mode == SliceMode::L4 && m.l4_payload_offset > l3_end)
            len = m.l4_payload_offset;
    }
    // A packet socket refuses a frame shorter than the link header.
    return std::min(std::max(len, kEthHeader), raw.caplen);
}

Result<std::unique_ptr<EgressStage>> EgressStage::create(const EgressStageConfig& cfg,
                                                         std::vector<EgressOutput*> outputs,
                                                         const PolicyStore* policy)
{
    if (outputs.empty() || outputs.size() > kMaxOutputs)
        return invalid("IDS egress needs 1..256 egress outputs");
    if (std::any_of(outputs.begin(), outputs.end(), [](EgressOutput* o) { return o == nullptr; }))
        return invalid("IDS egress: null output");
    if (cfg.hash_tuple != 2 && cfg.hash_tuple != 5)
        return invalid("egress hash must be 2 (addresses) or 5 (5-tuple)");
    static_assert(sizeof(Entry) == 96, "per-flow state stays 96 bytes");
    if (cfg.divert && !cfg.offload)
        return invalid("kernel egress (divert) needs an offload");
    if (cfg.offload && ((!policy && !cfg.divert) || cfg.offload_queue < 2))
        return invalid("egress offload needs a policy and a request queue");
    if ((policy || cfg.divert) && cfg.max_flows == 0)
        return invalid("egress policy needs a flow capacity");
    std::unique_ptr<PolicyStore> own;
    if (cfg.divert && !policy) {
        // Per-flow state is what knows a flow's verdict: forward everything.
        try {
            own = std::make_unique<PolicyStore>();
        } catch (...) {
            return from_errno(ENOMEM, "egress policy");
        }
        policy = own.get();
    }
    auto st = std::unique_ptr<EgressStage>(new EgressStage(cfg, std::move(outputs), policy));
    st->own_store_ = std::move(own);
    if (policy) {
        // Twice the flows, so the probe window rarely fills before the
        // capacity is reached. Huge pages spare the TLB a miss per lookup
        // in a table of hundreds of MB (2.5x faster in egress_bench).
        // Without prefaulting, memory is taken only where touched; then no
        // huge pages when the state only serves the kernel egress (no
        // policy file): the reader sees a flow's first and TCP control
        // packets only, and their first touches of 2 MiB pages stalled
        // capture (table_memory.hpp). Prefaulted (live capture), both get
        // them.
        uint64_t slots = 64;
        while (slots < uint64_t{cfg.max_flows} * 2)
            slots <<= 1;
        const size_t bytes = slots * sizeof(Entry);
        detail::TableMemory::Options mo;
        mo.prefault = cfg.prefault;
        mo.huge_pages = cfg.prefault || !st->own_store_;
        mo.no_reserve = !cfg.prefault;
        auto mem = detail::TableMemory::map(bytes, mo, "egress flow state");
        if (!mem)
            return mem.error();
        try {
            st->table_mem_ = std::make_unique<detail::TableMemory>(std::move(mem.value()));
        } catch (...) {
            return from_errno(ENOMEM, "egress flow state");
        }
        st->table_ = reinterpret_cast<Entry*>(st->table_mem_->data());
        st->mask_ = slots - 1;
    }
    if (cfg.offload) {
        st->q_ = std::make_unique<OffloadQueue>(cfg.offload_queue);
        st->diverted_ = std::make_unique<Diverted>();
        st->control_ = std::thread([s = st.get()] { s->control_main(); });
    }
    return st;
}

EgressStage::EgressStage(const EgressStageConfig& cfg, std::vector<EgressOutput*> outputs, const PolicyStore* policy)
    : cfg_(cfg), outputs_(std::move(outputs)), store_(policy), c_(std::make_unique<Counters>(outputs_.size()))
{
    if (store_) {
        generation_ = store_->generation();
        policy_ = store_->current();
        c_->generation.store(generation_, std::memory_order_relaxed);
    }
}

EgressStage::~EgressStage()
{
    if (control_.joinable()) {
        q_->stop.store(true, std::memory_order_release);
        control_.join();
    }
}

uint32_t EgressStage::balance(const PacketMeta& m) const noexcept
{
    return balance_key(m.key, m.hash);
}

uint32_t EgressStage::balance_key(const FlowKey& key, uint32_t hash) const noexcept
{
    uint32_t h = hash;
    if (cfg_.hash_tuple == 2) {
        // Side A has the lower address (the key is canonical by address
        // first), so the pair hashes the same in both directions.
        FlowKey k{};
        k.addr_a = key.addr_a;
        k.addr_b = key.addr_b;
        k.ip_version = key.ip_version;
        h = flow_hash(k);
    }
    return static_cast<uint32_t>((uint64_t{h} * outputs_.size()) >> 32);
}

void EgressStage::deliver(uint32_t egress, const uint8_t* data, uint32_t len) noexcept
{
    outputs_[egress]->send(data, len);
    bump(c_->delivered);
    bump(c_->egress_packets[egress]);
    bump(c_->egress_bytes[egress], len);
}

EgressStage::Entry* EgressStage::find_or_add(const PacketMeta& m) noexcept
{
    // Slots are never emptied, only reused, so a flow's entry is always
    // before the first empty slot of its window.
    Entry* reuse = nullptr;
    for (uint32_t k = 0; k < kProbe; ++k) {
        Entry& e = table_[(m.hash + k) & mask_];
        if (!e.used) {
            if (!reuse)
                reuse = &e;
            break;
        }
        const bool idle = e.last_ns + cfg_.idle_timeout_ns < m.ts_ns;
        if (e.hash == m.hash && e.key == m.key) {
            if (idle && (e.flags & kOffloaded)) {
                // Its packets died in XDP, so the stage saw none: the flow
                // went on (its verdict expired). Same flow, same decision,
                // asked again of the kernel by sync_offload().
                e.flags &= static_cast<uint8_t>(~kOffloaded);
                e.last_ns = m.ts_ns;
            } else if (idle) {
                // Idle past the timeout: the flow table ended it; this is a new flow.
                e.packets = 0;
                e.gen = 0;
                e.last_ns = m.ts_ns;
                bump(c_->flows);
            }
            return &e;
        }
        if (!reuse && idle)
            reuse = &e;
    }
    if (!reuse)
        return nullptr;
    if (reuse->used && (reuse->flags & kOffloaded)) {
        // The old flow ended here: its verdict goes (if not expired yet).
        (void)request(reuse->key, kOpRemove);
    }
    reuse->key = m.key;
    reuse->hash = m.hash;
    reuse->used = 1;
    reuse->packets = 0;
    reuse->gen = 0;
    reuse->l7 = 0;
    reuse->flags &= kListed; // the slot may still be in offloaded_
    reuse->last_ns = m.ts_ns;
    bump(c_->flows);
    return reuse;
}

EgressStage::Entry* EgressStage::find(const FlowKey& key, uint32_t hash) noexcept
{
    for (uint32_t k = 0; k < kProbe; ++k) {
        Entry& e = table_[(hash + k) & mask_];
        if (!e.used)
            return nullptr;
        if (e.hash == hash && e.key == key)
            return &e;
    }
    return nullptr;
}

void EgressStage::decide(Entry& e) noexcept
{
    if (e.gen != 0)
        bump(c_->redecided);
    const Decision d = policy_->decide(e.key, l7_names_[e.l7]);
    e.action = static_cast<uint8_t>(d.action);
    e.shunt_after = d.shunt_after;
    e.slice_mode = static_cast<uint8_t>(d.slice.mode);
    e.slice_bytes = d.slice.bytes;
    e.egress = kNoEgress;
    if (d.action == PolicyAction::Egress) {
        if (!d.egress.empty()) {
            for (size_t i = 0; i < cfg_.names.size() && i < outputs_.size(); ++i)
                if (cfg_.names[i] == d.egress)
                    e.egress = static_cast<uint32_t>(i);
        } else if (d.egress_index >= 0 && static_cast<size_t>(d.egress_index) < outputs_.size()) {
            e.egress = static_cast<uint32_t>(d.egress_index);
        }
        if (e.egress == kNoEgress) {
            bump(c_->bad_egress);
            e.action = static_cast<uint8_t>(PolicyAction::Forward);
        }
    }
    e.gen = generation_ + 1;
}

void EgressStage::packet(const RawPacket& raw, const PacketMeta* meta) noexcept
{
    bump(c_->packets);
    if (raw.linktype != kEthernet) {
        // An egress is an Ethernet interface: other link layers would be garbage there.
        bump(c_->not_ethernet);
        return;
    }
    if (!meta) {
        bump(c_->unkeyed);
        deliver(0, raw.data, raw.caplen);
        return;
    }
    const uint32_t balanced = balance(*meta);
    if (store_ && store_->generation() != generation_)
        refresh_policy(); // a reload applies from the next packet on
    if (!policy_) {
        deliver(balanced, raw.data, raw.caplen);
        return;
    }
    Entry* e = find_or_add(*meta);
    if (!e) {
        bump(c_->table_full);
        deliver(balanced, raw.data, raw.caplen);
        return;
    }
    if (e->gen != generation_ + 1)
        decide(*e);
    e->last_ns = std::max(e->last_ns, meta->ts_ns);
    const uint64_t before = e->packets++;
    switch (static_cast<PolicyAction>(e->action)) {
    case PolicyAction::Forward:
        deliver(balanced, raw.data, raw.caplen);
        break;
    case PolicyAction::Discard:
        bump(c_->discarded);
        break;
    case PolicyAction::Shunt:
        if (before < e->shunt_after)
            deliver(balanced, raw.data, raw.caplen);
        else
            bump(c_->shunted);
        break;
    case PolicyAction::Slice: {
        const Slice s{static_cast<SliceMode>(e->slice_mode), e->slice_bytes};
        bump(c_->sliced);
        deliver(balanced, raw.data, egress_slice_length(s, raw, *meta));
        break;
    }
    case PolicyAction::Egress:
        if (e->egress != balanced)
            bump(c_->steered);
        deliver(e->egress, raw.data, raw.caplen);
        break;
    }
    if (q_)
        sync_offload(*e);
}

uint16_t EgressStage::intern_l7(std::string_view name) noexcept
{
    if (name.empty())
        return 0;
    try {
        const std::string key(name);
        if (auto it = l7_ids_.find(key); it != l7_ids_.end())
            return it->second;
        if (l7_names_.size() > kMaxL7Names)
            return 0; // more names than nDPI has: treated as not known
        const auto id = static_cast<uint16_t>(l7_names_.size());
        l7_names_.push_back(key);
        l7_ids_.emplace(key, id);
        return id;
    } catch (...) {
        return 0; // out of memory: the flow keeps its decision
    }
}

void EgressStage::on_l7(const FlowKey& key, uint32_t hash, std::string_view l7) noexcept
{
    bump(c_->l7_notes);
    if (!policy_)
        return;
    Entry* e = find(key, hash);
    if (!e) {
        bump(c_->l7_no_flow); // stateless (table full) or long gone
        return;
    }
    e->flags |= kL7Known;
    const uint16_t id = intern_l7(l7);
    // A flow detected earlier and then given up on keeps its name.
    if (id != 0 && id != e->l7) {
        e->l7 = id;
        const uint8_t before = e->action;
        const uint32_t k = e->shunt_after;
        const uint32_t eg = e->egress;
        decide(*e); // packets kept: a shunt limit counts the whole flow
        if (e->action != before || e->shunt_after != k || e->egress != eg)
            bump(c_->l7_redecided);
    }
    if (q_)
        sync_offload(*e);
}

bool EgressStage::request(const FlowKey& key, uint8_t op, uint32_t egress) noexcept
{
    if (!q_->ring.push(OffloadOp{key, egress, op})) {
        bump(c_->offload_lost);
        return false;
    }
    bump(q_->pushed);
    return true;
}

void EgressStage::sync_offload(Entry& e) noexcept
{
    const auto a = static_cast<PolicyAction>(e.action);
    // Settled: nothing the DPI may still say can change the decision.
    const bool settled = !cfg_.l7_feedback || policy_->protocol_rules() == 0 || (e.flags & kL7Known);
    uint8_t want = kOpRemove;
    uint32_t egress = 0;
    if (settled) {
        if (a == PolicyAction::Discard || (a == PolicyAction::Shunt && e.packets >= e.shunt_after)) {
            want = kOpDrop;
        } else if (cfg_.divert && (a == PolicyAction::Forward || a == PolicyAction::Egress)) {
            // The egress user space would pick, so the kernel and the
            // reader (TCP control packets, an expired verdict) agree.
            want = kOpDivert;
            egress = a == PolicyAction::Egress ? e.egress : balance_key(e.key, e.hash);
        }
    }
    const uint8_t have = (e.flags & kOffloaded) ? e.off_kind : kOpRemove;
    if (want == have && (want != kOpDivert || e.off_egress == egress))
        return;
    // A lost install is asked again at the flow's next packet; a lost
    // removal leaves the verdict to its TTL. A changed verdict is simply
    // installed again: the server replaces its own source's entry.
    if (!request(e.key, want, egress) && want != kOpRemove)
        return;
    if (want == kOpRemove) {
        e.flags &= static_cast<uint8_t>(~kOffloaded);
        return;
    }
    e.flags |= kOffloaded;
    e.off_kind = want;
    e.off_egress = static_cast<uint8_t>(egress);
    if (!(e.flags & kListed)) {
        if (offloaded_.size() >= offloaded_compact_at_) {
            std::erase_if(offloaded_, [this](uint64_t i) {
                Entry& x = table_[i];
                if (x.flags & kOffloaded)
                    return false;
                x.flags &= static_cast<uint8_t>(~kListed);
                return true;
            });
            offloaded_compact_at_ = std::max<size_t>(4096, offloaded_.size() * 2);
        }
        try {
            offloaded_.push_back(static_cast<uint64_t>(&e - table_));
            e.flags |= kListed;
        } catch (...) {
            // Not listed: a reload cannot revisit it; its verdict ends with its TTL.
        }
    }
}

void EgressStage::control_main() noexcept
{
    EgressOffload& off = *cfg_.offload;
    const uint64_t ttl = cfg_.offload_ttl_ns;
    std::array<OffloadOp, 64> ops;
    for (;;) {
        const bool stopping = q_->stop.load(std::memory_order_acquire);
        const size_t n = q_->ring.pop(ops.data(), ops.size());
        for (size_t i = 0; i < n; ++i) {
            const FlowKey& k = ops[i].key;
            if (ops[i].op == kOpDivert) {
                // Listed before the install, so the verdict accounting
                // counts from its first packet on.
                divert_mark(k, true);
                auto r = off.divert(k, ops[i].egress, ttl);
                const bool ok = r && *r;
                bump(ok ? c_->divert_installs : c_->divert_failures);
                if (!ok)
                    divert_mark(k, false); // the flow stays on user-space TX
            } else if (ops[i].op == kOpDrop) {
                // A DIVERT this replaces reports its final counters during
                // the install: unlisted only after it.
                auto r = off.install(k, ttl);
                bump(r && *r ? c_->offload_installs : c_->offload_failures);
                divert_mark(k, false);
            } else {
                auto r = off.remove(k);
                if (r && *r)
                    bump(c_->offload_removals);
                divert_mark(k, false);
            }
        }
        if (n)
            q_->handled.fetch_add(n, std::memory_order_release);
        else if (stopping)
            return;
        else
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

void EgressStage::divert_mark(const FlowKey& key, bool on) noexcept
{
    if (!cfg_.divert)
        return;
    std::lock_guard g(diverted_->mu);
    try {
        if (on)
            diverted_->keys.insert(key);
        else
            diverted_->keys.erase(key);
    } catch (...) {
        // Out of memory: the flow's kernel packets are not told apart from
        // drops in the counters; its verdict and its accounting are intact.
    }
}

void EgressStage::kernel_account(const FlowKey& key, uint64_t packets, uint64_t bytes) noexcept
{
    if (!diverted_ || !cfg_.divert)
        return;
    std::lock_guard g(diverted_->mu);
    if (!diverted_->keys.contains(key))
        return;
    diverted_->packets.fetch_add(packets, std::memory_order_relaxed);
    diverted_->bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void EgressStage::offload_sync() const noexcept
{
    if (!q_)
        return;
    while (q_->handled.load(std::memory_order_acquire) < q_->pushed.load(std::memory_order_relaxed))
        std::this_thread::sleep_for(std::chrono::microseconds(100));
}

void EgressStage::refresh_policy() noexcept
{
    if (!store_)
        return;
    const uint64_t g = store_->generation();
    if (g == generation_)
        return;
    // Flows are decided again lazily, each on its next packet.
    policy_ = store_->current();
    generation_ = g;
    c_->generation.store(g, std::memory_order_relaxed);
    if (!q_)
        return;
    // Except offloaded ones, whose packets no longer come here: each is
    // decided now, and loses its verdict if the decision changed.
    std::erase_if(offloaded_, [this](uint64_t i) {
        Entry& e = table_[i];
        if (e.flags & kOffloaded) {
            decide(e);
            sync_offload(e);
        }
        if (e.flags & kOffloaded)
            return false;
        e.flags &= static_cast<uint8_t>(~kListed);
        return true;
    });
}

void EgressStage::burst_end() noexcept
{
    for (EgressOutput* o : outputs_)
        o->flush();
}

EgressStageStats EgressStage::stats() const
{
    EgressStageStats s;
    const auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.packets = ld(c_->packets);
    s.delivered = ld(c_->delivered);
    s.unkeyed = ld(c_->unkeyed);
    s.not_ethernet = ld(c_->not_ethernet);
    s.discarded = ld(c_->discarded);
    s.shunted = ld(c_->shunted);
    s.sliced = ld(c_->sliced);
    s.steered = ld(c_->steered);
    s.bad_egress = ld(c_->bad_egress);
    s.flows = ld(c_->flows);
    s.table_full = ld(c_->table_full);
    s.redecided = ld(c_->redecided);
    s.policy_generation = ld(c_->generation);
    s.l7_notes = ld(c_->l7_notes);
    s.l7_redecided = ld(c_->l7_redecided);
    s.l7_no_flow = ld(c_->l7_no_flow);
    s.offload_installs = ld(c_->offload_installs);
    s.offload_removals = ld(c_->offload_removals);
    s.offload_failures = ld(c_->offload_failures);
    s.offload_lost = ld(c_->offload_lost);
    s.divert_installs = ld(c_->divert_installs);
    s.divert_failures = ld(c_->divert_failures);
    if (diverted_) {
        s.kernel_packets = ld(diverted_->packets);
        s.kernel_bytes = ld(diverted_->bytes);
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
        s.egress_packets.push_back(ld(c_->egress_packets[i]));
        s.egress_bytes.push_back(ld(c_->egress_bytes[i]));
    }
    return s;
}

} // namespace weir::engine
