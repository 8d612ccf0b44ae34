// micro-DPI parsers on payloads of the real captures: ns per parsed
// payload for the TLS ClientHello (SNI, ALPN, JA3, JA4), ServerHello
// (JA3S), HTTP request and DNS parsers. Payloads are collected from
// ../shared/pcaps/ndpi before timing; each case cycles through its set.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;
namespace fs = std::filesystem;

struct Corpus {
    std::vector<std::vector<uint8_t>> client_hello, server_hello, http, dns;
    std::size_t bytes(const std::vector<std::vector<uint8_t>>& v) const
    {
        std::size_t n = 0;
        for (const auto& p : v)
            n += p.size();
        return n;
    }
};

const Corpus& corpus()
{
    static const Corpus c = [] {
        Corpus c;
        fs::path dir = fs::path(WEIR_SHARED_DIR) / "pcaps" / "ndpi" / "pcap";
        if (!fs::is_directory(dir))
            return c;
        weir::engine::Decoder decoder;
        std::array<weir::RawPacket, 64> burst;
        weir::PacketMeta m;
        for (const auto& e : fs::directory_iterator(dir)) {
            auto src = weir::dataplane::open_pcap_file(e.path().string());
            if (!src)
                continue;
            while (!(*src)->finished()) {
                uint32_t n = (*src)->rx_burst(burst.data(), static_cast<uint32_t>(burst.size()));
                for (uint32_t i = 0; i < n; ++i) {
                    if (!decoder.decode(burst[i], m) || m.l4_payload_len == 0 || m.l4_payload_offset == 0)
                        continue;
                    std::size_t len = std::min<std::size_t>(m.l4_payload_len, burst[i].caplen - m.l4_payload_offset);
                    std::vector<uint8_t> p(burst[i].data + m.l4_payload_offset,
                                           burst[i].data + m.l4_payload_offset + len);
                    dpi::TlsClientHello ch;
                    dpi::TlsServerHello sh;
                    dpi::HttpRequest req;
                    dpi::DnsMessage dns;
                    if (m.key.proto == 6 && dpi::parse_tls_client_hello(p, ch) == dpi::ParseStatus::Ok)
                        c.client_hello.push_back(std::move(p));
                    else if (m.key.proto == 6 && dpi::parse_tls_server_hello(p, sh) == dpi::ParseStatus::Ok)
                        c.server_hello.push_back(std::move(p));
                    else if (m.key.proto == 6 && dpi::parse_http_request(p, req) == dpi::ParseStatus::Ok)
                        c.http.push_back(std::move(p));
                    else if (m.key.proto == 17 && (m.key.port_a == 53 || m.key.port_b == 53) &&
                             dpi::parse_dns(p, dns) == dpi::ParseStatus::Ok)
                        c.dns.push_back(std::move(p));
                }
            }
        }
        return c;
    }();
    return c;
}

template <class Result, class Parse>
void run(benchmark::State& state, const std::vector<std::vector<uint8_t>>& set, Parse parse)
{
    if (set.empty()) {
        state.SkipWithError("no payloads: captures missing under WEIR_SHARED_DIR");
        return;
    }
    auto out = std::make_unique<Result>();
    std::size_t i = 0, bytes = 0;
    for (auto _ : state) {
        const auto& p = set[i];
        benchmark::DoNotOptimize(parse(dpi::Bytes(p.data(), p.size()), *out));
        benchmark::DoNotOptimize(out.get());
        bytes += p.size();
        if (++i == set.size())
            i = 0;
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    state.counters["payloads"] = static_cast<double>(set.size());
}

void BM_Dpi_TlsClientHello(benchmark::State& state)
{
    run<dpi::TlsClientHello>(state, corpus().client_hello,
                             [](dpi::Bytes b, dpi::TlsClientHello& o) { return dpi::parse_tls_client_hello(b, o); });
}
void BM_Dpi_TlsServerHello(benchmark::State& state)
{
    run<dpi::TlsServerHello>(state, corpus().server_hello,
                             [](dpi::Bytes b, dpi::TlsServerHello& o) { return dpi::parse_tls_server_hello(b, o); });
}
void BM_Dpi_HttpRequest(benchmark::State& state)
{
    run<dpi::HttpRequest>(state, corpus().http,
                          [](dpi::Bytes b, dpi::HttpRequest& o) { return dpi::parse_http_request(b, o); });
}
void BM_Dpi_Dns(benchmark::State& state)
{
    run<dpi::DnsMessage>(state, corpus().dns, [](dpi::Bytes b, dpi::DnsMessage& o) { return dpi::parse_dns(b, o); });
}
/// A payload that is none of them, through all four parsers: the cost of
/// looking at a flow micro-DPI does not recognise.
void BM_Dpi_RejectAll(benchmark::State& state)
{
    std::vector<uint8_t> junk(512, 0x5a);
    auto ch = std::make_unique<dpi::TlsClientHello>();
    auto req = std::make_unique<dpi::HttpRequest>();
    auto dns = std::make_unique<dpi::DnsMessage>();
    for (auto _ : state) {
        benchmark::DoNotOptimize(dpi::parse_tls_client_hello(junk, *ch));
        benchmark::DoNotOptimize(dpi::parse_http_request(junk, *req));
        benchmark::DoNotOptimize(dpi::parse_dns(junk, *dns));
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

BENCHMARK(BM_Dpi_TlsClientHello);
BENCHMARK(BM_Dpi_TlsServerHello);
BENCHMARK(BM_Dpi_HttpRequest);
BENCHMARK(BM_Dpi_Dns);
BENCHMARK(BM_Dpi_RejectAll);

} // namespace

BENCHMARK_MAIN();
