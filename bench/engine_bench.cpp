// The engine on one core: decode + flow table update, per packet.
//
// BM_Engine_DecodeUpdate/<flows>: Ethernet/IPv4/TCP frames of <flows>
// distinct flows, visited in random order (the worst case for the table:
// every packet a cache miss), with every flow active in the table.
// BM_Engine_RealCaptures: the Ethernet captures of ../shared/pcaps/ndpi, all
// in memory, decoded and accounted again and again (real header mix).
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/flow_table.hpp>

#include "packet_builder.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <vector>

using namespace weir;
using namespace weir::engine;

namespace {

constexpr uint32_t kBurst = 32;
constexpr uint32_t kFrame = 64; // 54-byte Eth/IPv4/TCP frame, padded

struct Frames {
    std::vector<uint8_t> buf; // kFrame bytes per frame, in visiting order
    uint32_t count = 0;
    uint32_t len = 0;
};

// <flows> distinct flows: client 10.x.y.z:port -> 192.0.2.1:443. Every flow
// is visited once per round, in a random order that differs per round, for
// enough packets to defeat the caches. Frames are stored in visiting order,
// as a capture ring or a file holds them: reading a frame is sequential, the
// flow table access is what is random.
Frames make_frames(uint32_t flows)
{
    const auto proto = test::PacketBuilder().eth().ipv4("10.0.0.1", "192.0.2.1").tcp(1024, 443, kTcpAck).build();
    Frames f;
    f.len = static_cast<uint32_t>(proto.size());
    f.count = std::max<uint32_t>(flows, 1u << 22);
    f.buf.resize(std::size_t{f.count} * kFrame);
    std::mt19937 rng(42);
    std::vector<uint32_t> perm(flows);
    std::iota(perm.begin(), perm.end(), 0u);
    for (uint32_t off = 0; off < f.count; off += flows) {
        std::shuffle(perm.begin(), perm.end(), rng);
        for (uint32_t j = 0; j < flows && off + j < f.count; ++j) {
            const uint32_t i = perm[j];
            uint8_t* p = f.buf.data() + std::size_t{off + j} * kFrame;
            std::memcpy(p, proto.data(), proto.size());
            const uint32_t host = 0x0a000000u | (i >> 6);       // 10.0.0.0/8
            const uint16_t port = static_cast<uint16_t>(1024 + (i & 63) * 997 % 64000);
            p[26] = static_cast<uint8_t>(host >> 24);
            p[27] = static_cast<uint8_t>(host >> 16);
            p[28] = static_cast<uint8_t>(host >> 8);
            p[29] = static_cast<uint8_t>(host);
            p[34] = static_cast<uint8_t>(port >> 8);
            p[35] = static_cast<uint8_t>(port);
        }
    }
    return f;
}

void BM_Engine_DecodeUpdate(benchmark::State& state)
{
    const auto flows = static_cast<uint32_t>(state.range(0));
    const Frames f = make_frames(flows);
    FlowTableConfig cfg;
    cfg.capacity = flows; // every flow is created in the warm-up; none is evicted after
    cfg.idle_timeout_ns = 1ULL << 62;
    cfg.active_timeout_ns = 1ULL << 62;
    auto table = FlowTable::create(cfg).value();
    Decoder dec;
    const FlowSink sink = [](const FlowRecord& r) { benchmark::DoNotOptimize(&r); };

    RawPacket raw[kBurst];
    PacketMeta meta[kBurst];
    uint64_t ts = 1;
    auto run_burst = [&](uint32_t& pos) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < kBurst; ++i) {
            raw[i] = RawPacket{f.buf.data() + std::size_t{pos} * kFrame, f.len, f.len, ts += 100, 1};
            pos = pos + 1 == f.count ? 0 : pos + 1;
            m += dec.decode(raw[i], meta[m]) ? 1 : 0;
        }
        table->update_burst(meta, m, sink);
    };
    // Warm up: every flow active before timing starts.
    uint32_t pos = 0;
    for (uint32_t done = 0; done < flows; done += kBurst)
        run_burst(pos);
    for (auto _ : state)
        run_burst(pos);
    state.SetItemsProcessed(state.iterations() * kBurst);
    state.SetBytesProcessed(state.iterations() * kBurst * f.len);
    state.counters["active_flows"] = table->active();
    state.counters["table_bytes_per_flow"] = static_cast<double>(table->memory_bytes()) / table->capacity();
}
BENCHMARK(BM_Engine_DecodeUpdate)->Arg(10000)->Arg(1 << 20)->Arg(10000000)->Unit(benchmark::kNanosecond);
// A fixed amount of work, for instruction counts under callgrind
// (--benchmark_filter='DecodeUpdate/10000/iterations'): the warm-up is 1.5%
// of the packets, and the count does not depend on the machine's speed.
BENCHMARK(BM_Engine_DecodeUpdate)->Arg(10000)->Iterations(20000)->Unit(benchmark::kNanosecond);

void BM_Engine_RealCaptures(benchmark::State& state)
{
    const std::filesystem::path dir = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps" / "ndpi" / "pcap";
    if (!std::filesystem::exists(dir)) {
        state.SkipWithError("no captures in ../shared/pcaps/ndpi/pcap");
        return;
    }
    // Keep every frame of every Ethernet capture in memory.
    std::vector<std::vector<uint8_t>> frames;
    std::vector<uint32_t> wire;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        auto src = dataplane::open_pcap_file(e.path().string());
        if (!src || src.value()->linktypes() != std::vector<uint32_t>{1})
            continue;
        RawPacket r[64];
        uint32_t n;
        while ((n = src.value()->rx_burst(r, 64)) != 0) {
            for (uint32_t i = 0; i < n; ++i) {
                frames.emplace_back(r[i].data, r[i].data + r[i].caplen);
                wire.push_back(r[i].wire_len);
            }
        }
    }
    FlowTableConfig cfg;
    cfg.capacity = 1u << 16;
    auto table = FlowTable::create(cfg).value();
    Decoder dec;
    const FlowSink sink = [](const FlowRecord& r) { benchmark::DoNotOptimize(&r); };
    RawPacket raw[kBurst];
    PacketMeta meta[kBurst];
    uint64_t ts = 1;
    std::size_t pos = 0;
    uint64_t bytes = 0;
    for (auto _ : state) {
        uint32_t m = 0;
        for (uint32_t i = 0; i < kBurst; ++i) {
            const auto& fr = frames[pos];
            raw[i] = RawPacket{fr.data(), static_cast<uint32_t>(fr.size()), wire[pos], ts += 1000, 1};
            bytes += fr.size();
            pos = pos + 1 == frames.size() ? 0 : pos + 1;
            m += dec.decode(raw[i], meta[m]) ? 1 : 0;
        }
        table->update_burst(meta, m, sink);
        table->expire(ts, sink);
    }
    state.SetItemsProcessed(state.iterations() * kBurst);
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["frames"] = static_cast<double>(frames.size());
}
BENCHMARK(BM_Engine_RealCaptures)->Unit(benchmark::kNanosecond);

} // namespace

BENCHMARK_MAIN();
