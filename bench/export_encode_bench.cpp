// Flow export encoders: FlowRecords encoded per second, per format and
// biflow mode (items = flows in, bytes = datagram bytes out). The records
// are built once outside the timed loop: 4096 flows, one in five IPv6, a
// few ICMP, with both directions populated. The _L7 variants give half of
// the flows DPI results (TLS with SNI and JA3/JA4, HTTP with host, URL and
// user agent, DNS with the query), exported as ntop L7 fields; _Options
// adds the options records to every template announcement.
#include <weir/exporters/encoder.hpp>

#include "sample_flows.hpp"

#include <benchmark/benchmark.h>

#include <cstring>
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

template <std::size_t N>
void put(char (&dst)[N], const char* s)
{
    const std::size_t n = strnlen(s, N - 1);
    std::memcpy(dst, s, n);
    dst[n] = '\0';
}

void add_l7(std::vector<FlowRecord>& flows)
{
    for (std::size_t i = 0; i < flows.size(); i += 2) {
        L7Info& l = flows[i].l7;
        switch (i / 2 % 3) {
        case 0:
            l.master = 91;
            l.app = 126;
            put(l.name, "TLS.Google");
            put(l.server_name, "fonts.googleapis.com");
            put(l.ja3c, "b32309a26951912be7dba376398abc3b");
            put(l.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
            break;
        case 1:
            l.app = 7;
            put(l.name, "HTTP");
            put(l.server_name, "www.example.org");
            put(l.url, "www.example.org/static/js/app.3f2a9c.js?v=20231114");
            put(l.user_agent, "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0");
            break;
        default:
            l.app = 5;
            put(l.name, "DNS");
            put(l.server_name, "connectivity-check.ubuntu.com");
            l.dns_qtype = 1;
            break;
        }
    }
}

void run(benchmark::State& state, ExportFormat f, BiflowMode mode, bool l7 = false, bool options = false)
{
    auto flows = weir::test::sample_flows();
    if (l7)
        add_l7(flows);
    EncoderOptions o;
    o.biflow = mode;
    o.options_records = options;
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
    state.counters["l7_share"] =
        double(enc.value()->stats().l7_records) / double(std::max<uint64_t>(1, enc.value()->stats().records));
    state.counters["records_per_flow"] =
        double(enc.value()->stats().records) / double(std::max<uint64_t>(1, enc.value()->stats().flows_in));
}

void BM_ExportEncode_V5(benchmark::State& s) { run(s, ExportFormat::NetflowV5, BiflowMode::OneWay); }
void BM_ExportEncode_V9_InOut(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::InOut); }
void BM_ExportEncode_V9_OneWay(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::OneWay); }
void BM_ExportEncode_Ipfix_Rfc5103(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::Rfc5103); }
void BM_ExportEncode_Ipfix_InOut(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::InOut); }
void BM_ExportEncode_Ipfix_OneWay(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::OneWay); }

void BM_ExportEncode_V9_InOut_L7(benchmark::State& s) { run(s, ExportFormat::NetflowV9, BiflowMode::InOut, true); }
void BM_ExportEncode_Ipfix_Rfc5103_L7(benchmark::State& s) { run(s, ExportFormat::Ipfix, BiflowMode::Rfc5103, true); }
void BM_ExportEncode_Ipfix_Rfc5103_L7_Options(benchmark::State& s)
{
    run(s, ExportFormat::Ipfix, BiflowMode::Rfc5103, true, true);
}

BENCHMARK(BM_ExportEncode_V5);
BENCHMARK(BM_ExportEncode_V9_InOut);
BENCHMARK(BM_ExportEncode_V9_OneWay);
BENCHMARK(BM_ExportEncode_Ipfix_Rfc5103);
BENCHMARK(BM_ExportEncode_Ipfix_InOut);
BENCHMARK(BM_ExportEncode_Ipfix_OneWay);
BENCHMARK(BM_ExportEncode_V9_InOut_L7);
BENCHMARK(BM_ExportEncode_Ipfix_Rfc5103_L7);
BENCHMARK(BM_ExportEncode_Ipfix_Rfc5103_L7_Options);

} // namespace

BENCHMARK_MAIN();
