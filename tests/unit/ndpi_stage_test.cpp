// DpiStage in nDPI mode (level 2): crafted frames go through the Decoder and
// DpiStage::input() as the pipeline feeds them, and nDPI classifies them;
// its per-flow states are freed once detection ends, at the give-up bound,
// or when the flow ends; tunnels show nDPI the inner packet; custom rules
// load; the threaded pipeline (IP copies through the payload ring) agrees
// with the inline one on a real capture. Skipped in a build without libndpi.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi_stage.hpp>
#include <weir/engine/pipeline.hpp>

#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using weir::engine::DpiConfig;
using weir::engine::DpiStage;
using weir::test::Bytes;
using weir::test::PacketBuilder;

constexpr uint8_t kSyn = weir::kTcpSyn, kAck = weir::kTcpAck, kPsh = weir::kTcpPsh;

std::unique_ptr<DpiStage> make_stage(const DpiConfig& cfg)
{
    auto s = DpiStage::create(cfg);
    if (!s)
        return nullptr;
    return std::move(s.value());
}

#define REQUIRE_NDPI(stage_ptr)                                                                 \
    do {                                                                                        \
        if (!(stage_ptr)) {                                                                     \
            auto r = DpiStage::create(level2());                                                \
            if (!r && r.error().code == std::errc::not_supported)                     \
                GTEST_SKIP() << r.error().message();                                            \
            FAIL() << (r ? "stage" : r.error().message());                                      \
        }                                                                                       \
    } while (0)

DpiConfig level2()
{
    DpiConfig c;
    c.level = 2;
    return c;
}

// Decodes frames and feeds them to a stage the way the pipeline does.
struct Feeder {
    explicit Feeder(DpiStage& s) : stage(s) {}
    weir::engine::Decoder dec;
    DpiStage& stage;
    uint64_t ts_ns = 1700000000ULL * 1000000000ULL;
    weir::PacketMeta last{};

    void operator()(const Bytes& frame)
    {
        weir::PacketMeta m;
        ts_ns += 1000000;
        auto r = weir::test::raw(frame, weir::test::lt::kEthernet, ts_ns);
        ASSERT_TRUE(dec.decode(r, m));
        last = m;
        stage.inspect(m, DpiStage::input(2, m, r.data, r.caplen));
    }
    weir::FlowRecord finish(weir::EndReason reason = weir::EndReason::EndOfFlow)
    {
        weir::FlowRecord r;
        r.key = last.key;
        r.end_reason = reason;
        stage.finish(r);
        return r;
    }
};

// A TCP connection from 10.0.0.1:40000 to 10.0.0.2:port with correct
// sequence numbers (nDPI tracks them and ignores what looks retransmitted).
struct TcpConn {
    Feeder& feed;
    uint16_t port;
    uint32_t cseq = 1000, sseq = 50000;

    Bytes c2s(uint8_t flags, const Bytes& payload = {})
    {
        Bytes f = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(40000, port, flags, {}, cseq, sseq).payload(payload).build();
        cseq += static_cast<uint32_t>(payload.size()) + ((flags & kSyn) ? 1 : 0);
        return f;
    }
    Bytes s2c(uint8_t flags, const Bytes& payload = {})
    {
        Bytes f = PacketBuilder().eth(weir::test::kMacB, weir::test::kMacA).ipv4("10.0.0.2", "10.0.0.1")
                      .tcp(port, 40000, flags, {}, sseq, cseq).payload(payload).build();
        sseq += static_cast<uint32_t>(payload.size()) + ((flags & kSyn) ? 1 : 0);
        return f;
    }
    void handshake()
    {
        feed(c2s(kSyn));
        feed(s2c(kSyn | kAck));
        feed(c2s(kAck));
    }
};

Bytes text(std::string_view s) { return {s.begin(), s.end()}; }

void put16(Bytes& b, size_t n) { b.push_back(static_cast<uint8_t>(n >> 8)); b.push_back(static_cast<uint8_t>(n)); }

// A TLS 1.2 ClientHello record with an SNI extension.
Bytes client_hello(std::string_view sni)
{
    Bytes ext;
    // server_name
    put16(ext, 0);
    put16(ext, sni.size() + 5);
    put16(ext, sni.size() + 3);
    ext.push_back(0);
    put16(ext, sni.size());
    ext.insert(ext.end(), sni.begin(), sni.end());
    // supported_groups: x25519, secp256r1
    for (uint8_t v : {0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17})
        ext.push_back(v);
    // ec_point_formats: uncompressed
    for (uint8_t v : {0x00, 0x0b, 0x00, 0x02, 0x01, 0x00})
        ext.push_back(v);
    Bytes body = {0x03, 0x03};
    for (int i = 0; i < 32; ++i)
        body.push_back(static_cast<uint8_t>(i * 7));
    body.push_back(0); // session id
    put16(body, 4);
    for (uint8_t v : {0xc0, 0x2f, 0x00, 0x9c})
        body.push_back(v);
    body.push_back(1); // compression methods
    body.push_back(0);
    put16(body, ext.size());
    body.insert(body.end(), ext.begin(), ext.end());
    Bytes hs = {0x01, 0, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
    hs.insert(hs.end(), body.begin(), body.end());
    Bytes rec = {0x16, 0x03, 0x01};
    put16(rec, hs.size());
    rec.insert(rec.end(), hs.begin(), hs.end());
    return rec;
}

// A DNS query (type A) for `name`, or its response with one A record.
Bytes dns(std::string_view name, bool response)
{
    Bytes v = {0x12, 0x34, static_cast<uint8_t>(response ? 0x81 : 0x01), static_cast<uint8_t>(response ? 0x80 : 0x00),
               0, 1, 0, static_cast<uint8_t>(response ? 1 : 0), 0, 0, 0, 0};
    size_t start = 0;
    while (start < name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string_view::npos)
            dot = name.size();
        v.push_back(static_cast<uint8_t>(dot - start));
        v.insert(v.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
        start = dot + 1;
    }
    for (uint8_t c : {0, 0, 1, 0, 1})
        v.push_back(c);
    if (response)
        for (uint8_t c : {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34})
            v.push_back(c);
    return v;
}

TEST(NdpiStage, HttpRequestClassifiedAndStateFreedAfterResponse)
{
    auto s = make_stage(level2());
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    TcpConn c{feed, 80};
    c.handshake();
    EXPECT_EQ(s->inspections(), 1u);
    feed(c.c2s(kPsh | kAck, text("GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.org\r\n"
                                 "User-Agent: weir-test/1.0\r\nAccept: */*\r\n\r\n")));
    feed(c.s2c(kPsh | kAck, text("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok")));
    feed(c.c2s(kAck));
    // Detection is over once the response is read: the nDPI state is gone,
    // the result stays in the flow's entry until export.
    EXPECT_EQ(s->inspections(), 0u);
    EXPECT_EQ(s->flows(), 1u);
    EXPECT_FALSE(s->wants(feed.last));
    const auto r = feed.finish();
    EXPECT_STREQ(r.l7.name, "HTTP");
    EXPECT_EQ(r.l7.app, 7);
    EXPECT_EQ(r.l7.guessed, 0);
    EXPECT_STREQ(r.l7.server_name, "www.example.org");
    EXPECT_STREQ(r.l7.url, "www.example.org/index.html?q=1");
    EXPECT_STREQ(r.l7.user_agent, "weir-test/1.0");
    EXPECT_NE(r.l7.category, 0); // Web
    EXPECT_EQ(s->flows(), 0u);
    EXPECT_EQ(s->stats().detected, 1u);
}

TEST(NdpiStage, TlsClientHelloGivesMasterAppNameSniAndJa3)
{
    auto s = make_stage(level2());
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    TcpConn c{feed, 443};
    c.handshake();
    feed(c.c2s(kPsh | kAck, client_hello("www.google.com")));
    // nDPI keeps reading for the server's hello and certificate.
    EXPECT_EQ(s->inspections(), 1u);
    const auto r = feed.finish();
    EXPECT_STREQ(r.l7.name, "TLS.Google");
    EXPECT_EQ(r.l7.master, 91);
    EXPECT_STREQ(r.l7.server_name, "www.google.com");
    EXPECT_EQ(std::string(r.l7.ja3c).size(), 32u) << r.l7.ja3c;
    EXPECT_EQ(r.l7.ja3s[0], '\0');
    // The flow ended: its nDPI state went with it.
    EXPECT_EQ(s->inspections(), 0u);
    EXPECT_EQ(s->flows(), 0u);
}

TEST(NdpiStage, DnsOverVxlanSeesTheInnerPacket)
{
    auto s = make_stage(level2());
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    auto frame = [](bool response) {
        PacketBuilder b;
        b.eth().ipv4("192.0.2.1", "192.0.2.2").udp(50000, 4789).vxlan(42).eth();
        if (response)
            b.ipv4("10.1.0.53", "10.1.0.7").udp(53, 33333);
        else
            b.ipv4("10.1.0.7", "10.1.0.53").udp(33333, 53);
        return b.payload(dns("mail.example.net", response)).build();
    };
    feed(frame(false));
    // The flow is the inner one, and nDPI was handed its IP header.
    EXPECT_EQ(feed.last.key.tunnel_type, weir::TunnelType::Vxlan);
    EXPECT_EQ(feed.last.l3_offset, 14 + 20 + 8 + 8 + 14);
    feed(frame(true));
    EXPECT_EQ(s->inspections(), 0u);
    const auto r = feed.finish();
    EXPECT_STREQ(r.l7.name, "DNS");
    EXPECT_STREQ(r.l7.server_name, "mail.example.net");
    EXPECT_EQ(r.l7.dns_qtype, 1);
    EXPECT_EQ(r.l7.dns_rcode, 0);
}

TEST(NdpiStage, GivesUpAtThePacketBound)
{
    DpiConfig cfg = level2();
    cfg.ndpi_udp_packets = 5;
    cfg.ndpi_tcp_packets = 6;
    auto s = make_stage(cfg);
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    Bytes junk(40);
    for (size_t i = 0; i < junk.size(); ++i)
        junk[i] = static_cast<uint8_t>(0x9d ^ (i * 31));
    for (int i = 0; i < 20; ++i) {
        feed(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(41000, 47001).payload(junk).build());
        if (i < 5)
            EXPECT_EQ(s->inspections(), 1u) << i;
        else
            EXPECT_EQ(s->inspections(), 0u) << i;
    }
    // More than 5 packets: the sixth ends detection, and nothing later is read.
    EXPECT_EQ(s->stats().payloads, 6u);
    EXPECT_EQ(s->stats().gave_up, 1u);
    auto r = feed.finish();
    EXPECT_EQ(r.l7.app, 0) << r.l7.name; // unknown, and not replaced by weir's port guess
    EXPECT_EQ(s->flows(), 0u);

    TcpConn c{feed, 47002};
    c.handshake();
    for (int i = 0; i < 10; ++i)
        feed(c.c2s(kPsh | kAck, junk));
    EXPECT_EQ(s->stats().payloads, 6u + 7u);
    EXPECT_EQ(s->stats().gave_up, 2u);
    EXPECT_EQ(s->inspections(), 0u);
    feed.finish();
    EXPECT_EQ(s->flows(), 0u);
}

TEST(NdpiStage, ManyFlowsKeepNoNdpiStateOnceDetected)
{
    auto s = make_stage(level2());
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    constexpr int kFlows = 5000;
    std::vector<weir::PacketMeta> metas;
    for (int i = 0; i < kFlows; ++i) {
        const std::string cli = "10.2." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
        const auto port = static_cast<uint16_t>(20000 + i % 30000);
        feed(PacketBuilder().eth().ipv4(cli, "10.9.9.9").udp(port, 53).payload(dns("a" + std::to_string(i) + ".example.com", false)).build());
        feed(PacketBuilder().eth().ipv4("10.9.9.9", cli).udp(53, port).payload(dns("a" + std::to_string(i) + ".example.com", true)).build());
        metas.push_back(feed.last);
    }
    EXPECT_EQ(s->inspections(), 0u);
    EXPECT_EQ(s->flows(), static_cast<uint32_t>(kFlows));
    EXPECT_EQ(s->stats().detected, static_cast<uint64_t>(kFlows));
    for (const auto& m : metas) {
        weir::FlowRecord r;
        r.key = m.key;
        r.end_reason = weir::EndReason::IdleTimeout;
        s->finish(r);
        ASSERT_STREQ(r.l7.name, "DNS");
    }
    EXPECT_EQ(s->flows(), 0u);
}

TEST(NdpiStage, InspectionPoolBoundsLiveStates)
{
    DpiConfig cfg = level2();
    cfg.max_inspections = 4;
    auto s = make_stage(cfg);
    REQUIRE_NDPI(s);
    Feeder feed{*s};
    for (int i = 0; i < 10; ++i)
        feed(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(static_cast<uint16_t>(30000 + i), 443, kSyn).build());
    EXPECT_EQ(s->inspections(), 4u);
    EXPECT_EQ(s->stats().inspected, 4u);
    EXPECT_EQ(s->stats().not_inspected, 6u);
    // A flow nDPI never saw gets weir's port guess.
    auto r = feed.finish();
    EXPECT_EQ(r.l7.guessed, 1);
    EXPECT_STREQ(r.l7.name, "TLS");
    // Destroying the stage frees the states of flows never finished (ASan
    // checks it).
}

TEST(NdpiStage, CustomProtocolsFile)
{
    if (!make_stage(level2()))
        GTEST_SKIP() << "no nDPI in this build";
    const auto path = std::filesystem::temp_directory_path() / ("weir_ndpi_protos_" + std::to_string(::getpid()) + ".txt");
    {
        std::ofstream f(path);
        f << "# test rules\ntcp:47555@WeirTestProto\n";
    }
    auto protos = weir::engine::ndpi_protocols(path.string());
    ASSERT_TRUE(protos) << protos.error().message();
    bool listed = false;
    for (const auto& p : *protos)
        listed |= p.name == "WeirTestProto";
    EXPECT_TRUE(listed);

    DpiConfig cfg = level2();
    cfg.ndpi_protocols_file = path.string();
    auto s = make_stage(cfg);
    ASSERT_TRUE(s);
    Feeder feed{*s};
    TcpConn c{feed, 47555};
    c.handshake();
    for (int i = 0; i < 3; ++i) {
        feed(c.c2s(kPsh | kAck, text("hello there, custom protocol")));
        feed(c.s2c(kPsh | kAck, text("hi")));
    }
    auto r = feed.finish();
    EXPECT_STREQ(r.l7.name, "WeirTestProto");
    std::filesystem::remove(path);

    cfg.ndpi_protocols_file = "/nonexistent/weir/protos.txt";
    auto bad = DpiStage::create(cfg);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, std::errc::invalid_argument);
}

TEST(NdpiStage, ProtocolListHasNamesAndCategories)
{
    auto protos = weir::engine::ndpi_protocols();
    if (!protos && protos.error().code == std::errc::not_supported)
        GTEST_SKIP() << protos.error().message();
    ASSERT_TRUE(protos) << protos.error().message();
    std::map<uint16_t, std::pair<std::string, std::string>> by_id;
    for (const auto& p : *protos)
        by_id[p.id] = {p.name, p.category};
    EXPECT_GT(by_id.size(), 200u);
    EXPECT_EQ(by_id[7].first, "HTTP");
    EXPECT_EQ(by_id[91].first, "TLS");
    EXPECT_EQ(by_id[5].first, "DNS");
    EXPECT_FALSE(by_id[91].second.empty());
    EXPECT_GT(weir::engine::ndpi_flow_state_size(), 0u);
}

// The threaded pipeline hands each worker copies of the IP packets (up to
// 16 KB each in its payload ring); the inline one hands nDPI the frame
// itself. Same results, also with a payload ring of a few bursts that the
// copies wrap around many times. waze.pcap has 3 KB segments carrying the TLS
// certificate that names the application (TLS.Waze).
class NdpiPipeline : public ::testing::TestWithParam<const char*> {};

TEST_P(NdpiPipeline, ThreadedMatchesInline)
{
    if (!make_stage(level2()))
        GTEST_SKIP() << "no nDPI in this build";
    const std::string path = std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/" + GetParam();
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " missing";
    auto run = [&](uint16_t workers, uint64_t ring_bytes = 0) {
        std::map<std::string, std::string> out;
        auto src = weir::dataplane::open_pcap_file(path);
        EXPECT_TRUE(src);
        weir::engine::PipelineConfig cfg;
        cfg.workers = workers;
        cfg.table.capacity = 1u << 16;
        cfg.dpi.level = 2;
        cfg.ring_size = 1024;
        cfg.export_ring_size = 1024;
        if (ring_bytes) {
            cfg.burst = 4;
            cfg.dpi_ring_bytes = ring_bytes;
        }
        auto pipe = weir::engine::Pipeline::create(cfg, [&out](const weir::FlowRecord& r) {
            std::string k(reinterpret_cast<const char*>(&r.key), sizeof(r.key));
            k += std::to_string(r.first_ns());
            out[k] = std::string(r.l7.name) + "|" + r.l7.server_name + "|" + r.l7.url;
        });
        EXPECT_TRUE(pipe);
        auto st = (*pipe)->run(**src);
        EXPECT_EQ(st.dpi_copies_dropped, 0u);
        EXPECT_GT(st.dpi.detected, 0u);
        return out;
    };
    const auto inline_run = run(0);
    const auto threaded = run(2);
    ASSERT_GT(inline_run.size(), 10u);
    EXPECT_EQ(inline_run, threaded);
    EXPECT_EQ(inline_run, run(1, 128 * 1024));
    if (std::string(GetParam()) == "waze.pcap") {
        std::size_t waze = 0;
        for (const auto& [k, v] : threaded)
            waze += v.rfind("TLS.Waze|", 0) == 0;
        EXPECT_GE(waze, 3u);
    }
}

INSTANTIATE_TEST_SUITE_P(Captures, NdpiPipeline, ::testing::Values("1kxun.pcap", "waze.pcap"));

} // namespace
