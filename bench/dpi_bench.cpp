// micro-DPI parsers on payloads of the real captures: ns per parsed
// payload for the TLS ClientHello (SNI, ALPN, JA3, JA4), ServerHello
// (JA3S), HTTP request and DNS parsers. Payloads are collected from
// ../shared/pcaps/ndpi before timing; each case cycles through its set.
//
// BM_DpiStage_Capture/L: a whole real capture (1kxun.pcap: 80 s of an
// Android app, mostly HTTP and TLS) through a fresh DpiStage at level L
// (1 = micro-DPI, 2 = nDPI), as a worker runs it: ns per packet of the
// capture, every packet offered (the stage skips what it no longer wants),
// every flow finished at the end. Decoding and stage set-up are outside
// the timing.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi_stage.hpp>
#include <weir/engine/dpi/dns.hpp>
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/http.hpp>
#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/stun.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <set>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;
namespace fs = std::filesystem;

struct Corpus {
    std::vector<std::vector<uint8_t>> client_hello, server_hello, http, dns;
    std::vector<std::vector<uint8_t>> quic_initial, dtls_hello; ///< datagrams holding a whole hello
    std::vector<std::vector<uint8_t>> stun;                     ///< UDP datagrams holding a STUN message
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
                    else if (dpi::StunMessage sm; m.key.proto == 17 && dpi::parse_stun(p, sm) == dpi::ParseStatus::Ok)
                        c.stun.push_back(std::move(p));
                    else if (m.key.proto == 17 && dpi::quic_looks_initial(p)) {
                        auto h = std::make_unique<dpi::HelloAssembler>();
                        dpi::QuicDatagramInfo qi;
                        if (dpi::quic_read_initial(p, *h, qi) == dpi::ParseStatus::Ok)
                            c.quic_initial.push_back(std::move(p));
                    } else if (m.key.proto == 17 && dpi::dtls_looks_handshake(p)) {
                        auto h = std::make_unique<dpi::HelloAssembler>();
                        dpi::DtlsDatagramInfo di;
                        if (dpi::dtls_read_handshake(p, *h, di) == dpi::ParseStatus::Ok)
                            c.dtls_hello.push_back(std::move(p));
                    }
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
/// One client Initial datagram: keys from the DCID (HKDF), header
/// protection, AES-GCM, CRYPTO frames, then the ClientHello parser.
void BM_Dpi_QuicInitial(benchmark::State& state)
{
    auto h = std::make_unique<dpi::HelloAssembler>();
    run<dpi::TlsClientHello>(state, corpus().quic_initial, [&h](dpi::Bytes b, dpi::TlsClientHello& o) {
        h->reset();
        dpi::QuicDatagramInfo qi;
        if (dpi::quic_read_initial(b, *h, qi) != dpi::ParseStatus::Ok)
            return dpi::ParseStatus::Malformed;
        return dpi::parse_client_hello_message(h->message(), dpi::TlsTransport::Quic, o);
    });
}
/// One DTLS datagram holding a whole ClientHello or ServerHello.
void BM_Dpi_DtlsHello(benchmark::State& state)
{
    auto h = std::make_unique<dpi::HelloAssembler>();
    run<dpi::TlsClientHello>(state, corpus().dtls_hello, [&h](dpi::Bytes b, dpi::TlsClientHello& o) {
        h->reset();
        dpi::DtlsDatagramInfo di;
        if (dpi::dtls_read_handshake(b, *h, di) != dpi::ParseStatus::Ok)
            return dpi::ParseStatus::Malformed;
        if (h->message()[0] == dpi::kTlsHandshakeClientHello)
            return dpi::parse_client_hello_message(h->message(), dpi::TlsTransport::Dtls, o);
        dpi::TlsServerHello sh;
        return dpi::parse_server_hello_message(h->message(), sh);
    });
}
/// STUN datagrams of the captures: header checks, attribute walk, REALM /
/// SOFTWARE / USERNAME copies and nDPI's sub-classification rules.
void BM_Dpi_Stun(benchmark::State& state)
{
    run<dpi::StunMessage>(state, corpus().stun, [](dpi::Bytes b, dpi::StunMessage& o) { return dpi::parse_stun(b, o); });
}

/// What the STUN check adds to every other UDP payload micro-DPI looks at
/// (DNS messages and QUIC Initials of the captures): its rejection.
void BM_Dpi_StunReject(benchmark::State& state)
{
    static const auto set = [] {
        auto v = corpus().dns;
        v.insert(v.end(), corpus().quic_initial.begin(), corpus().quic_initial.end());
        return v;
    }();
    run<dpi::StunMessage>(state, set, [](dpi::Bytes b, dpi::StunMessage& o) { return dpi::parse_stun(b, o); });
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

struct Capture {
    std::vector<std::vector<uint8_t>> frames;
    std::vector<weir::PacketMeta> metas;
    std::vector<weir::FlowKey> flows; ///< one per flow, in first-packet order
};

const Capture& capture()
{
    static const Capture c = [] {
        Capture c;
        auto src = weir::dataplane::open_pcap_file((fs::path(WEIR_SHARED_DIR) / "pcaps/ndpi/pcap/1kxun.pcap").string());
        if (!src)
            return c;
        weir::engine::Decoder decoder;
        std::array<weir::RawPacket, 64> burst;
        std::set<std::string> seen;
        while (!(*src)->finished()) {
            uint32_t n = (*src)->rx_burst(burst.data(), static_cast<uint32_t>(burst.size()));
            for (uint32_t i = 0; i < n; ++i) {
                weir::PacketMeta m;
                if (!decoder.decode(burst[i], m))
                    continue;
                c.frames.emplace_back(burst[i].data, burst[i].data + burst[i].caplen);
                c.metas.push_back(m);
                if (seen.emplace(reinterpret_cast<const char*>(&m.key), sizeof(m.key)).second)
                    c.flows.push_back(m.key);
            }
        }
        return c;
    }();
    return c;
}

void BM_DpiStage_Capture(benchmark::State& state)
{
    const Capture& c = capture();
    if (c.metas.empty()) {
        state.SkipWithError("1kxun.pcap missing under WEIR_SHARED_DIR");
        return;
    }
    weir::engine::DpiConfig cfg;
    cfg.level = static_cast<uint8_t>(state.range(0));
    uint64_t inspected = 0, detected = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto s = weir::engine::DpiStage::create(cfg);
        if (!s) {
            state.SkipWithError(s.error().message().c_str());
            return;
        }
        state.ResumeTiming();
        for (std::size_t i = 0; i < c.metas.size(); ++i) {
            const auto& f = c.frames[i];
            const auto bytes = weir::engine::DpiStage::input(cfg.level, c.metas[i], f.data(), static_cast<uint32_t>(f.size()));
            if (!bytes.empty())
                (*s)->inspect(c.metas[i], bytes);
        }
        for (const auto& k : c.flows) {
            weir::FlowRecord r;
            r.key = k;
            r.end_reason = weir::EndReason::IdleTimeout;
            (*s)->finish(r);
            benchmark::DoNotOptimize(r.l7.app);
        }
        state.PauseTiming();
        inspected = (*s)->stats().payloads;
        detected = (*s)->stats().detected;
        s.value().reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * c.metas.size()));
    state.counters["packets"] = static_cast<double>(c.metas.size());
    state.counters["flows"] = static_cast<double>(c.flows.size());
    state.counters["inspected"] = static_cast<double>(inspected);
    state.counters["detected"] = static_cast<double>(detected);
    state.counters["ns_per_inspected"] = benchmark::Counter(static_cast<double>(inspected) * static_cast<double>(state.iterations()),
                                                             benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    if (cfg.level == 2)
        state.counters["ndpi_flow_bytes"] = weir::engine::ndpi_flow_state_size();
}

BENCHMARK(BM_DpiStage_Capture)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Dpi_TlsClientHello);
BENCHMARK(BM_Dpi_TlsServerHello);
BENCHMARK(BM_Dpi_HttpRequest);
BENCHMARK(BM_Dpi_Dns);
BENCHMARK(BM_Dpi_QuicInitial);
BENCHMARK(BM_Dpi_DtlsHello);
BENCHMARK(BM_Dpi_RejectAll);
BENCHMARK(BM_Dpi_Stun);
BENCHMARK(BM_Dpi_StunReject);

} // namespace

BENCHMARK_MAIN();
