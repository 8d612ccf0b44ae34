// ZMQ flow encoder: FlowRecords encoded per second (items = flows in,
// bytes = payload bytes out), as bare records, as whole messages, and as
// zlib-compressed messages, for TLV and for JSON (numeric keys and labels)
// side by side. Records are built once outside the timed
// loop: 4096 flows, one in five IPv6, a few ICMP, both directions populated,
// MAC addresses set.
#include <weir/exporters/zmq_encoder.hpp>

#include "sample_flows.hpp"

#include <benchmark/benchmark.h>

#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

struct CountingSink final : ZmqMessageSink {
    uint64_t bytes = 0;
    uint64_t messages = 0;
    void on_message(std::span<const uint8_t> h, std::span<const uint8_t> p, uint32_t) noexcept override
    {
        bytes += h.size() + p.size();
        ++messages;
        benchmark::DoNotOptimize(p.data());
    }
};

void BM_ZmqEncode_Record(benchmark::State& state)
{
    const auto flows = weir::test::sample_flows();
    std::vector<uint8_t> buf(ZmqFlowEncoder::kMaxRecord);
    std::size_t i = 0;
    uint64_t bytes = 0;
    for (auto _ : state) {
        const std::size_t n = ZmqFlowEncoder::encode_record(flows[i], buf.data(), buf.size());
        benchmark::DoNotOptimize(buf.data());
        bytes += n;
        i = (i + 1) & (flows.size() - 1);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ZmqEncode_Record);

void BM_ZmqEncode_JsonRecord(benchmark::State& state, bool labels)
{
    const auto flows = weir::test::sample_flows();
    std::vector<uint8_t> buf(16384);
    std::size_t i = 0;
    uint64_t bytes = 0;
    for (auto _ : state) {
        const std::size_t n = ZmqFlowEncoder::encode_json_record(flows[i], labels, buf.data(), buf.size());
        benchmark::DoNotOptimize(buf.data());
        bytes += n;
        i = (i + 1) & (flows.size() - 1);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK_CAPTURE(BM_ZmqEncode_JsonRecord, numeric, false);
BENCHMARK_CAPTURE(BM_ZmqEncode_JsonRecord, labels, true);

void BM_ZmqEncode_Message(benchmark::State& state, ZmqPayloadFormat format, bool compress)
{
    const auto flows = weir::test::sample_flows();
    ZmqEncoderOptions o;
    o.format = format;
    o.compress = compress;
    auto enc = ZmqFlowEncoder::create(o);
    if (!enc.ok()) {
        state.SkipWithError(enc.error().message().c_str());
        return;
    }
    CountingSink sink;
    std::size_t i = 0;
    for (auto _ : state) {
        enc.value()->add(flows[i], sink);
        i = (i + 1) & (flows.size() - 1);
    }
    enc.value()->flush(sink);
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(sink.bytes));
    state.counters["flows_per_msg"] =
        sink.messages ? static_cast<double>(state.iterations()) / static_cast<double>(sink.messages) : 0;
    state.counters["bytes_per_flow"] =
        static_cast<double>(enc.value()->stats().raw_bytes) / static_cast<double>(state.iterations());
}
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, plain, ZmqPayloadFormat::Tlv, false);
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, zlib, ZmqPayloadFormat::Tlv, true);
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, json_plain, ZmqPayloadFormat::Json, false);
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, json_zlib, ZmqPayloadFormat::Json, true);
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, json_labels_plain, ZmqPayloadFormat::JsonLabels, false);

} // namespace

BENCHMARK_MAIN();
