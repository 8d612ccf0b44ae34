// Flow export encoders: FlowRecords encoded per second, per format and
// biflow mode (items = flows in, bytes = datagram bytes out). The records
// are built once outside the timed loop: 4096 flows, one in five IPv6, a
// few ICMP, with both directions populated.
#include <weir/exporters/encoder.hpp>

#include <benchmark/benchmark.h>

#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

struct CountingSink final : DatagramSink {
    uint64_t bytes = 0;
    uint64_t datagrams = 0;
    void on_datagram(std::span<const uint8_t> d) noexcept override
    {
        bytes += d.size();
        ++datagrams;
        benchmark::DoNotOptimize(d.data());
    }
};

std::vector<FlowRecord> make_flows()
{
    constexpr uint64_t kT0 = 1700000000ULL * 1000000000ULL;
    std::vector<FlowRecord> v(4096);
    for (uint32_t i = 0; i < v.size(); ++i) {
        FlowRecord& r = v[i];
        const bool v6 = i % 5 == 0;
        r.key.ip_version = v6 ? 6 : 4;
        r.key.proto = i % 17 == 0 ? (v6 ? 58 : 1) : (i % 3 ? 6 : 17);
        r.key.addr_a = {10, uint8_t(i >> 8), uint8_t(i), 1};
        r.key.addr_b = {192, 0, 2, uint8_t(i)};
        if (v6) {
            r.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(i >> 8), uint8_t(i)};
            r.key.addr_b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        }
        r.key.port_a = uint16_t(1024 + i);
        r.key.port_b = 443;
        r.client_is_a = 1;
        const uint64_t t = kT0 + uint64_t(i) * 1000000ULL;
        r.dir[0] = {10 + i % 7, 1500 + i, t, t + 5000000000ULL, 0x1b, 60, 64, 0};
        r.dir[1] = {8 + i % 5, 9000 + i, t + 1000000ULL, t + 5000000000ULL, 0x1a, 50, 52, 0};
        r.end_reason = EndReason::IdleTimeout;
    }
    return v;
}

void run(benchmark::State& state, ExportFormat f, BiflowMode mode)
{
    const auto flows = make_flows();
    EncoderOptions o;
    o.biflow = mode;
    auto enc = make_encoder(f, o);
    if (!enc.ok()) {
        state.SkipWithError(enc.error().message().c_str());
        return;
    }
    CountingSink sink;
    ExportClock clk{flows.back().dir[0].last_ns, flows.front().dir[0].first_ns - 1000000000ULL};
    std::size_t i = 0;
    for (auto _ : state) {
        enc.value()->add(flows[i], clk, sink);
        i = (i + 1) & (flows.size() - 1);
    }
    enc.value()->flush(clk, sink);
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.SetBytesProcessed(int64_t(sink.bytes));
    state.counters["datagrams"] = double(sink.datagrams);
    state.counters["records_per_flow"] =
        double(enc.value()->stats().records) / double(std::max<uint64_t>(1, enc.value()->stats().flows_in));
}

void BM_ExportEncode_V5(benchmark::State& s) { run(s, ExportFormat::NetflowV5, BiflowMode::OneWay); }
void BM_ExportEncode_V9_InOut(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::InOut); }
void BM_ExportEncode_V9_OneWay(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::OneWay); }
void BM_ExportEncode_Ipfix_Rfc5103(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::Rfc5103); }
void BM_ExportEncode_Ipfix_InOut(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::InOut); }
void BM_ExportEncode_Ipfix_OneWay(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::OneWay); }

BENCHMARK(BM_ExportEncode_V5);
BENCHMARK(BM_ExportEncode_V9_InOut);
BENCHMARK(BM_ExportEncode_V9_OneWay);
BENCHMARK(BM_ExportEncode_Ipfix_Rfc5103);
BENCHMARK(BM_ExportEncode_Ipfix_InOut);
BENCHMARK(BM_ExportEncode_Ipfix_OneWay);

} // namespace

BENCHMARK_MAIN();
