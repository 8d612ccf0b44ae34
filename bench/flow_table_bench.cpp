// Benchmarks of weir::engine::FlowTable.
//
// BM_FlowTable_Update/<flows>/<burst>: update_burst on a table holding
//   <flows> active flows, packets hitting them in random order. Inputs are
//   prebuilt (several million PacketMeta, cycled) and the table is warmed
//   before timing, so only flow lookup + accounting + LRU move is measured.
// BM_FlowTable_Churn/<capacity>/<mode>: every packet opens a new flow.
//   mode 0: expire() after each burst keeps about half the capacity active
//   (idle-timeout churn); mode 1: the table is full and every new flow
//   evicts the least recently active one.
#include <weir/engine/flow_table.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

namespace {

using weir::FlowKey;
using weir::FlowRecord;
using weir::PacketMeta;
using weir::engine::FlowTable;
using weir::engine::FlowTableConfig;

constexpr std::size_t kPackets = std::size_t{4} << 20;
constexpr uint64_t kT0 = 1700000000ULL * 1000000000ULL;
constexpr uint64_t kForever = 1000000ULL * 1000000000ULL; // 11.6 days

FlowKey make_key(uint64_t i)
{
    FlowKey k;
    k.addr_a = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    k.addr_b = {172, 16, static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 32)};
    k.port_a = static_cast<uint16_t>(1024 + (i % 60000));
    k.port_b = 443;
    k.proto = 17;
    k.ip_version = 4;
    return k;
}

PacketMeta make_pkt(uint64_t flow, bool from_a, uint64_t ts)
{
    PacketMeta m;
    m.key = make_key(flow);
    m.hash = weir::flow_hash(m.key);
    m.ts_ns = ts;
    m.wire_len = 64 + static_cast<uint32_t>(flow % 1400);
    m.ip_len = m.wire_len - 14;
    m.src_is_a = from_a ? 1 : 0;
    m.ttl = 64;
    return m;
}

std::unique_ptr<FlowTable> make_table(uint32_t capacity, uint64_t idle)
{
    FlowTableConfig cfg;
    cfg.capacity = capacity;
    cfg.idle_timeout_ns = idle;
    cfg.active_timeout_ns = kForever;
    auto t = FlowTable::create(cfg);
    if (!t.ok())
        throw std::runtime_error(t.error().message());
    return std::move(t.value());
}

/// Table warmed with N flows plus the packets to replay; kept across the
/// repetitions of one argument set because building 10 M flows takes seconds.
struct UpdateFixture {
    uint32_t flows = 0;
    std::unique_ptr<FlowTable> table;
    std::vector<PacketMeta> pkts;
};

UpdateFixture& fixture_storage()
{
    static UpdateFixture f;
    return f;
}

void release_update_fixture()
{
    UpdateFixture& f = fixture_storage();
    f.table.reset();
    f.pkts = {};
    f.flows = 0;
}

UpdateFixture& update_fixture(uint32_t flows)
{
    UpdateFixture& f = fixture_storage();
    if (f.flows == flows)
        return f;
    release_update_fixture();
    f.flows = flows;
    f.table = make_table(flows, kForever);
    const weir::engine::FlowSink none;
    std::vector<PacketMeta> warm;
    warm.reserve(1024);
    for (uint32_t i = 0; i < flows; ++i) {
        warm.push_back(make_pkt(i, true, kT0));
        if (warm.size() == 1024 || i + 1 == flows) {
            f.table->update_burst(warm.data(), static_cast<uint32_t>(warm.size()), none);
            warm.clear();
        }
    }
    std::mt19937_64 rng(1);
    f.pkts.reserve(kPackets);
    for (std::size_t j = 0; j < kPackets; ++j)
        f.pkts.push_back(make_pkt(rng() % flows, (rng() & 1) != 0, kT0 + 1 + j));
    return f;
}

void BM_FlowTable_Update(benchmark::State& state)
{
    const auto flows = static_cast<uint32_t>(state.range(0));
    const auto burst = static_cast<uint32_t>(state.range(1));
    UpdateFixture& f = update_fixture(flows);
    uint64_t exported = 0;
    const weir::engine::FlowSink sink = [&exported](const FlowRecord&) { ++exported; };
    const std::size_t n = f.pkts.size() - f.pkts.size() % burst;
    std::size_t pos = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(f.table->update_burst(f.pkts.data() + pos, burst, sink));
        pos += burst;
        if (pos == n)
            pos = 0;
    }
    if (exported != 0 || f.table->active() != flows)
        state.SkipWithError("flows ended during the update benchmark");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * burst);
    state.counters["active_flows"] = f.table->active();
    state.counters["bytes_per_flow"] = static_cast<double>(f.table->memory_bytes()) / flows;
}
BENCHMARK(BM_FlowTable_Update)
    ->ArgNames({"flows", "burst"})
    ->Args({10000, 32})
    ->Args({1000000, 32})
    ->Args({10000000, 32})
    ->Unit(benchmark::kNanosecond);

void BM_FlowTable_Churn(benchmark::State& state)
{
    // Free the update fixture first: the 10 M-flow table is 1.6 GB.
    release_update_fixture();
    const auto capacity = static_cast<uint32_t>(state.range(0));
    const bool evict = state.range(1) != 0;
    constexpr uint32_t kBurst = 32;
    constexpr uint64_t kGap = 100; // ns between packets
    // Idle expiry: flows live capacity/2 packets. Eviction: never idle.
    const uint64_t idle = evict ? kForever : uint64_t{capacity} / 2 * kGap;
    auto table = make_table(capacity, idle);
    // Unique keys, cycled: a key comes back long after its flow has gone.
    std::vector<PacketMeta> pkts;
    pkts.reserve(kPackets);
    std::mt19937_64 rng(2);
    for (std::size_t j = 0; j < kPackets; ++j)
        pkts.push_back(make_pkt((uint64_t{1} << 32) + j, (rng() & 1) != 0, 0));
    uint64_t exported = 0;
    const weir::engine::FlowSink sink = [&exported](const FlowRecord&) { ++exported; };
    std::size_t pos = 0;
    uint64_t ts = kT0;
    // Fill to steady state outside the timed loop.
    for (uint32_t i = 0; i < capacity + capacity / 2; i += kBurst) {
        for (uint32_t k = 0; k < kBurst; ++k)
            pkts[pos + k].ts_ns = ts += kGap;
        table->update_burst(pkts.data() + pos, kBurst, sink);
        table->expire(ts, sink);
        pos = (pos + kBurst) % pkts.size();
    }
    exported = 0;
    for (auto _ : state) {
        for (uint32_t k = 0; k < kBurst; ++k)
            pkts[pos + k].ts_ns = ts += kGap;
        table->update_burst(pkts.data() + pos, kBurst, sink);
        if (!evict)
            benchmark::DoNotOptimize(table->expire(ts, sink));
        pos = (pos + kBurst) % pkts.size();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurst);
    state.counters["active_flows"] = table->active();
    state.counters["exported_per_pkt"] =
        static_cast<double>(exported) / (static_cast<double>(state.iterations()) * kBurst);
    state.counters["bytes_per_flow"] = static_cast<double>(table->memory_bytes()) / capacity;
}
BENCHMARK(BM_FlowTable_Churn)
    ->ArgNames({"capacity", "evict"})
    ->Args({1 << 20, 0})
    ->Args({1 << 20, 1})
    ->Unit(benchmark::kNanosecond);

} // namespace

BENCHMARK_MAIN();
