// Flow export encoders: FlowRecords encoded per second, per format and
// biflow mode (items = flows in, bytes = datagram bytes out). The records
// are built once outside the timed loop: 4096 flows, one in five IPv6, a
// few ICMP, with both directions populated.
#include <weir/exporters/encoder.hpp>

#include "sample_flows.hpp"

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

void run(benchmark::State& state, ExportFormat f, BiflowMode mode)
{
    const auto flows = weir::test::sample_flows();
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
