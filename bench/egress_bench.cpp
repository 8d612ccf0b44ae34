// IDS egress stage: decision cost per packet on the reader thread
// (balancing, and with a policy the per-flow state lookup, the subnet
// decision once per flow and the action), frames already decoded, sent to
// an output that only counts them (the AF_PACKET TX cost is the kernel's:
// see docs/performance.md). Reports packets/s as items_per_second;
// BM_Egress_StartUp the state table's start-up cost against its first-flow
// cost, prefaulted or lazy.
//
//   egress_bench --benchmark_filter=Egress
#include <weir/engine/decoder.hpp>
#include <weir/engine/egress_stage.hpp>
#include <weir/engine/policy.hpp>

#include <packet_builder.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace weir;
using namespace weir::engine;
using namespace weir::test;

namespace {

class CountingOutput final : public EgressOutput {
public:
    void send(const uint8_t*, uint32_t len) noexcept override
    {
        ++packets;
        bytes += len;
    }
    void flush() noexcept override {}
    EgressCounters counters() const noexcept override { return {packets, bytes, 0, 0}; }
    std::string describe() const override { return "counting"; }
    uint64_t packets = 0, bytes = 0;
};

struct Input {
    std::vector<Bytes> frames;
    std::vector<RawPacket> raw;
    std::vector<PacketMeta> meta;
};

// `flows` TCP flows, both directions, interleaved so consecutive packets
// belong to different flows (the state table sees a working set of `flows`).
Input make_input(uint32_t flows)
{
    Input in;
    Decoder dec;
    for (uint32_t i = 0; i < flows; ++i) {
        const std::string a = "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
                              std::to_string(i & 255);
        const uint16_t sp = static_cast<uint16_t>(1024 + i % 60000);
        in.frames.push_back(PacketBuilder().eth().ipv4(a, "192.168.7.1").tcp(sp, 443, kTcpAck).payload(Bytes(100, 1)).build());
        in.frames.push_back(PacketBuilder().eth().ipv4("192.168.7.1", a).tcp(443, sp, kTcpAck).payload(Bytes(1000, 2)).build());
    }
    for (auto& f : in.frames) {
        RawPacket rp = raw(f, lt::kEthernet, 1000);
        PacketMeta m;
        if (dec.decode(rp, m)) {
            in.raw.push_back(rp);
            in.meta.push_back(m);
        }
    }
    return in;
}

void run(benchmark::State& state, uint8_t tuple, const char* policy_text)
{
    const uint32_t flows = static_cast<uint32_t>(state.range(0));
    Input in = make_input(flows);
    std::vector<CountingOutput> outs(4);
    std::vector<EgressOutput*> ptrs;
    for (auto& o : outs)
        ptrs.push_back(&o);
    std::unique_ptr<PolicyStore> store;
    if (policy_text) {
        auto p = Policy::parse(policy_text);
        if (!p) {
            state.SkipWithError(p.error().message().c_str());
            return;
        }
        store = std::make_unique<PolicyStore>(std::move(*p));
    }
    EgressStageConfig cfg;
    cfg.hash_tuple = tuple;
    cfg.max_flows = 1u << 20;
    auto st = EgressStage::create(cfg, ptrs, store.get());
    if (!st) {
        state.SkipWithError(st.error().message().c_str());
        return;
    }
    EgressStage& stage = *st.value();
    const size_t n = in.meta.size();
    constexpr size_t kBurst = 32;
    // Steady state: every flow seen (state slot taken, decision made) once
    // before timing, so the loop does not measure first-touch page faults.
    for (size_t i = 0; i < n; ++i)
        stage.packet(in.raw[i], &in.meta[i]);
    stage.burst_end();
    size_t pos = 0;
    for (auto _ : state) {
        for (size_t i = 0; i < kBurst; ++i) {
            stage.packet(in.raw[pos], &in.meta[pos]);
            if (++pos == n)
                pos = 0;
        }
        stage.burst_end();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
    benchmark::DoNotOptimize(outs[0].packets);
}

constexpr const char* kPolicy = R"(
[global]
default = forward
[subnet]
10.0.0.0/24 = discard
10.0.1.0/24 = shunt:4
10.0.2.0/24 = slice:l4
10.0.3.0/24 = egress:2
172.16.0.0/12 = discard
192.168.100.0/24 = discard
)";

// Start-up against the first flows, with the policy's default state table
// (1 M flows: 192 MiB on huge pages): range(0) 1 prefaults it at create()
// (live capture), 0 maps it lazily (files). Reported per iteration:
// create_ms (EgressStage::create) and first_ms (the first packet of 1000
// new flows, which touch about as many 2 MiB pages when lazy).
void BM_Egress_StartUp(benchmark::State& state)
{
    Input in = make_input(1000);
    std::vector<CountingOutput> outs(4);
    std::vector<EgressOutput*> ptrs;
    for (auto& o : outs)
        ptrs.push_back(&o);
    auto p = Policy::parse(kPolicy);
    if (!p) {
        state.SkipWithError(p.error().message().c_str());
        return;
    }
    PolicyStore store(std::move(*p));
    EgressStageConfig cfg;
    cfg.max_flows = 1u << 20;
    cfg.prefault = state.range(0) != 0;
    double create_s = 0, first_s = 0;
    using clock = std::chrono::steady_clock;
    for (auto _ : state) {
        const auto t0 = clock::now();
        auto st = EgressStage::create(cfg, ptrs, &store);
        const auto t1 = clock::now();
        if (!st) {
            state.SkipWithError(st.error().message().c_str());
            return;
        }
        for (size_t i = 0; i < in.meta.size(); i += 2) // one packet per flow
            st.value()->packet(in.raw[i], &in.meta[i]);
        st.value()->burst_end();
        const auto t2 = clock::now();
        create_s += std::chrono::duration<double>(t1 - t0).count();
        first_s += std::chrono::duration<double>(t2 - t1).count();
        state.SetIterationTime(std::chrono::duration<double>(t2 - t0).count());
        state.PauseTiming();
        st.value().reset(); // unmapping is not timed
        state.ResumeTiming();
    }
    const double n = static_cast<double>(state.iterations());
    state.counters["create_ms"] = create_s / n * 1e3;
    state.counters["first_ms"] = first_s / n * 1e3;
}

void BM_Egress_Balance5(benchmark::State& s) { run(s, 5, nullptr); }
void BM_Egress_Balance2(benchmark::State& s) { run(s, 2, nullptr); }
void BM_Egress_Policy(benchmark::State& s) { run(s, 5, kPolicy); }

} // namespace

BENCHMARK(BM_Egress_Balance5)->Arg(1024)->Arg(65536);
BENCHMARK(BM_Egress_Balance2)->Arg(1024)->Arg(65536);
BENCHMARK(BM_Egress_Policy)->Arg(1024)->Arg(65536)->Arg(262144);
BENCHMARK(BM_Egress_StartUp)->ArgName("prefault")->Arg(0)->Arg(1)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
