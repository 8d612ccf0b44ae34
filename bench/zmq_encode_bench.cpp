// ZMQ TLV flow encoder: FlowRecords encoded per second (items = flows in,
// bytes = payload bytes out), as bare TLV records, as whole messages, and
// as zlib-compressed messages. Records are built once outside the timed
// loop: 4096 flows, one in five IPv6, a few ICMP, both directions populated,
// MAC addresses set.
#include <weir/exporters/zmq_encoder.hpp>

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
        r.client_mac = {0x02, 0, 0, 0, uint8_t(i >> 8), uint8_t(i)};
        r.server_mac = {0x02, 0, 0, 0, 0, 1};
    }
    return v;
}

void BM_ZmqEncode_Record(benchmark::State& state)
{
    const auto flows = make_flows();
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

void BM_ZmqEncode_Message(benchmark::State& state, bool compress)
{
    const auto flows = make_flows();
    ZmqEncoderOptions o;
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
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, plain, false);
BENCHMARK_CAPTURE(BM_ZmqEncode_Message, zlib, true);

} // namespace

BENCHMARK_MAIN();
