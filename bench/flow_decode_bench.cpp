// NetFlow v5 / v9 / IPFIX decoding: export records decoded per second
// (items = data records, bytes = datagram bytes in). The datagrams are made
// once, outside the timed loop, by weir's own encoders from 4096 sample
// flows (one in five IPv6, both directions); the loop hands them to one
// FlowDecoder in order, as a collector receives one exporter's stream, and
// the sink touches each FlowRecord so the work is not optimised away.
#include <weir/exporters/encoder.hpp>
#include <weir/exporters/flow_decoder.hpp>

#include "datagram_bytes.hpp"
#include "sample_flows.hpp"

#include <benchmark/benchmark.h>

#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

using test::Collect;

struct Touch final : FlowRecordSink {
    uint64_t packets = 0;
    void on_flow(const FlowRecord& r, const FlowOrigin&) noexcept override
    {
        packets += r.dir[0].packets + r.dir[1].packets;
        benchmark::DoNotOptimize(&r);
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
    Collect c;
    const ExportClock clk{flows.back().dir[0].last_ns, flows.front().dir[0].first_ns - 1000000000ULL};
    for (const FlowRecord& r : flows)
        enc.value()->add(r, clk, c);
    enc.value()->flush(clk, c);
    const uint64_t records_per_round = enc.value()->stats().records;
    uint64_t bytes_per_round = 0;
    for (const auto& d : c.d)
        bytes_per_round += d.size();

    auto dec = FlowDecoder::create({});
    if (!dec.ok()) {
        state.SkipWithError(dec.error().message().c_str());
        return;
    }
    ExporterAddress from;
    from.addr = {192, 0, 2, 1};
    Touch sink;
    uint64_t rounds = 0;
    for (auto _ : state) {
        for (const auto& d : c.d)
            dec.value()->decode(from, d, clk.now_ns, sink);
        ++rounds;
    }
    state.SetItemsProcessed(int64_t(rounds * records_per_round));
    state.SetBytesProcessed(int64_t(rounds * bytes_per_round));
    state.counters["datagrams_per_round"] = double(c.d.size());
    state.counters["records_per_round"] = double(records_per_round);
    if (dec.value()->totals().flows != rounds * records_per_round)
        state.SkipWithError("decoder lost records");
}

void BM_FlowDecode_V5(benchmark::State& s) { run(s, ExportFormat::NetflowV5, BiflowMode::OneWay); }
void BM_FlowDecode_V9_InOut(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::InOut); }
void BM_FlowDecode_Ipfix_Rfc5103(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::Rfc5103); }
void BM_FlowDecode_Ipfix_InOut(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::InOut); }
void BM_FlowDecode_Ipfix_OneWay(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::OneWay); }

} // namespace

BENCHMARK(BM_FlowDecode_V5);
BENCHMARK(BM_FlowDecode_V9_InOut);
BENCHMARK(BM_FlowDecode_Ipfix_Rfc5103);
BENCHMARK(BM_FlowDecode_Ipfix_InOut);
BENCHMARK(BM_FlowDecode_Ipfix_OneWay);

BENCHMARK_MAIN();
