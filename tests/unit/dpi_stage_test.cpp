// DpiStage: the bounded per-worker DPI state (pool exhaustion, release after
// N payloads per direction, detection over both directions, export).
#include <weir/core/ndpi_vocab.hpp>
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/dpi_stage.hpp>
#include <weir/engine/pipeline.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace {

using weir::engine::DpiConfig;
using weir::engine::DpiStage;

weir::PacketMeta make_meta(uint8_t proto, uint8_t last_octet_a, uint16_t port_a, uint16_t port_b, bool from_a)
{
    weir::PacketMeta m;
    m.key.ip_version = 4;
    m.key.proto = proto;
    m.key.addr_a = {10, 0, 0, last_octet_a};
    m.key.addr_b = {10, 0, 1, 1};
    m.key.port_a = port_a;
    m.key.port_b = port_b;
    m.hash = weir::flow_hash(m.key);
    m.src_is_a = from_a ? 1 : 0;
    m.l4_payload_offset = 42;
    m.l4_payload_len = 16; // wants() reads it; inspect() takes the span given
    return m;
}

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

std::unique_ptr<DpiStage> make_stage(const DpiConfig& cfg)
{
    auto s = DpiStage::create(cfg);
    EXPECT_TRUE(s) << (s ? "" : s.error().message());
    return s ? std::move(s.value()) : nullptr;
}

weir::FlowRecord record_of(const weir::PacketMeta& m, weir::EndReason reason = weir::EndReason::IdleTimeout)
{
    weir::FlowRecord r;
    r.key = m.key;
    r.client_is_a = 1;
    r.end_reason = reason;
    return r;
}

// A DNS query for example.com (type A), or its response with one answer.
std::vector<uint8_t> dns_message(bool response)
{
    std::vector<uint8_t> v = {0x12, 0x34, static_cast<uint8_t>(response ? 0x81 : 0x01), static_cast<uint8_t>(response ? 0x80 : 0x00),
                              0, 1, 0, static_cast<uint8_t>(response ? 1 : 0), 0, 0, 0, 0};
    for (uint8_t c : std::string_view("\x07" "example" "\x03" "com"))
        v.push_back(c);
    v.insert(v.end(), {0, 0, 1, 0, 1});
    if (response)
        v.insert(v.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34});
    return v;
}

TEST(DpiStage, RejectsBadConfig)
{
    DpiConfig c;
    c.level = 3; // 2 is nDPI (tests/unit/ndpi_stage_test.cpp)
    EXPECT_FALSE(DpiStage::create(c));
    c.level = 1;
    c.max_inspections = 0;
    EXPECT_FALSE(DpiStage::create(c));
    c.max_inspections = 4;
    c.packets_per_direction = 0;
    EXPECT_FALSE(DpiStage::create(c));
}

TEST(DpiStage, FullPoolSkipsAndCountsNewFlows)
{
    DpiConfig c;
    c.level = 1;
    c.max_inspections = 2;
    c.max_flows = 64;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto junk = bytes("not a protocol micro-DPI knows");
    auto m1 = make_meta(6, 1, 40001, 9999, true);
    auto m2 = make_meta(6, 2, 40002, 9999, true);
    auto m3 = make_meta(6, 3, 40003, 9999, true);
    s->inspect(m1, junk);
    s->inspect(m2, junk);
    EXPECT_EQ(s->inspections(), 2u);
    EXPECT_TRUE(s->wants(m3));
    s->inspect(m3, junk);
    EXPECT_EQ(s->inspections(), 2u);
    EXPECT_EQ(s->stats().not_inspected, 1u);
    EXPECT_EQ(s->stats().inspected, 2u);
    // Exporting a flow returns its inspection to the pool.
    auto r1 = record_of(m1);
    s->finish(r1);
    EXPECT_EQ(s->inspections(), 1u);
    EXPECT_EQ(s->flows(), 1u);
    s->inspect(m3, junk);
    EXPECT_EQ(s->inspections(), 2u);
    EXPECT_EQ(s->stats().inspected, 3u);
    EXPECT_EQ(s->stats().not_inspected, 1u);
}

// Flow mode: flows found by their flow table entry. The same results as by
// key; a packet without an entry is not inspected; a state whose entry went
// to another flow without finish() is dropped (counted), not mixed in.
TEST(DpiStage, FlowModeFindsFlowsByTableEntry)
{
    DpiConfig c;
    c.level = 1;
    c.max_flows = 16;
    c.flow_slots = 8;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    const auto q = dns_message(false), a = dns_message(true);
    auto m1 = make_meta(17, 1, 40001, 53, true);
    auto m2 = make_meta(17, 2, 40002, 53, true);
    s->inspect(m1, q, 3);
    s->inspect(m2, q, 5);
    EXPECT_EQ(s->flows(), 2u);
    // No entry, or one past the table: nothing happens.
    s->inspect(make_meta(17, 9, 40009, 53, true), q);
    s->inspect(make_meta(17, 9, 40009, 53, true), q, 8);
    EXPECT_FALSE(s->wants(m1));
    EXPECT_EQ(s->flows(), 2u);
    auto r1 = m1;
    r1.src_is_a = 0;
    s->inspect(r1, a, 3);
    auto rec = record_of(m1);
    rec.table_entry = 3;
    s->finish(rec);
    EXPECT_STREQ(rec.l7.name, "DNS");
    EXPECT_STREQ(rec.l7.server_name, "example.com");
    EXPECT_EQ(s->flows(), 1u);
    // Entry 5 given to another flow: m2's state goes, the new flow starts clean.
    auto m3 = make_meta(17, 3, 40003, 4444, true);
    s->inspect(m3, bytes("not a protocol micro-DPI knows"), 5);
    EXPECT_EQ(s->stats().stale, 1u);
    EXPECT_EQ(s->flows(), 1u);
    auto rec3 = record_of(m3);
    rec3.table_entry = 5;
    s->finish(rec3);
    EXPECT_STRNE(rec3.l7.name, "DNS");
    EXPECT_EQ(s->flows(), 0u);
    EXPECT_EQ(s->inspections(), 0u);
    // A record naming the wrong entry finds nothing there.
    s->inspect(m1, q, 3);
    auto wrong = record_of(m1);
    wrong.table_entry = 4;
    s->finish(wrong);
    EXPECT_EQ(wrong.l7.server_name[0], '\0');
    EXPECT_EQ(s->flows(), 1u);
}

TEST(DpiStage, FullFlowMapSkipsAndCountsNewFlows)
{
    DpiConfig c;
    c.level = 1;
    c.max_inspections = 8;
    c.max_flows = 1;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto junk = bytes("xyz");
    s->inspect(make_meta(17, 1, 1000, 2000, true), junk);
    s->inspect(make_meta(17, 2, 1000, 2000, true), junk);
    EXPECT_EQ(s->flows(), 1u);
    EXPECT_EQ(s->stats().not_inspected, 1u);
}

TEST(DpiStage, ReleasesAfterNPayloadsInEachDirection)
{
    DpiConfig c;
    c.level = 1;
    c.packets_per_direction = 3;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto junk = bytes("no protocol here");
    auto a = make_meta(6, 1, 40000, 7000, true);
    auto b = make_meta(6, 1, 40000, 7000, false);
    for (int i = 0; i < 5; ++i) // payloads past N in one direction are not looked at
        s->inspect(a, junk);
    EXPECT_EQ(s->inspections(), 1u);
    EXPECT_FALSE(s->wants(a));
    EXPECT_TRUE(s->wants(b));
    s->inspect(b, junk);
    s->inspect(b, junk);
    EXPECT_EQ(s->inspections(), 1u);
    s->inspect(b, junk);
    EXPECT_EQ(s->inspections(), 0u);
    EXPECT_EQ(s->flows(), 1u); // the entry stays until export: no new inspection for the flow
    EXPECT_FALSE(s->wants(b));
    s->inspect(b, junk);
    EXPECT_EQ(s->stats().inspected, 1u);
    EXPECT_EQ(s->stats().payloads, 6u);
    auto r = record_of(a);
    s->finish(r);
    EXPECT_EQ(s->flows(), 0u);
    EXPECT_EQ(r.l7.app, 0); // nothing found, and port 7000 gives no guess
}

TEST(DpiStage, DnsQueryAndResponseEndDetection)
{
    DpiConfig c;
    c.level = 1;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto q = make_meta(17, 1, 33333, 53, true);
    auto resp = make_meta(17, 1, 33333, 53, false);
    s->inspect(q, dns_message(false));
    EXPECT_EQ(s->inspections(), 1u);
    s->inspect(resp, dns_message(true));
    EXPECT_EQ(s->inspections(), 0u) << "a DNS response ends detection";
    EXPECT_EQ(s->stats().detected, 1u);
    auto r = record_of(q);
    s->finish(r);
    EXPECT_EQ(r.l7.app, 5);
    EXPECT_EQ(r.l7.guessed, 0);
    EXPECT_STREQ(r.l7.name, "DNS");
    EXPECT_STREQ(r.l7.server_name, "example.com");
    EXPECT_EQ(r.l7.dns_qtype, 1);
    EXPECT_EQ(s->flows(), 0u);
}

TEST(DpiStage, HttpRequestThenResponse)
{
    DpiConfig c;
    c.level = 1;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto req = make_meta(6, 1, 50000, 8080, true);
    auto resp = make_meta(6, 1, 50000, 8080, false);
    s->inspect(req, bytes("GET /a?b=\"c\" HTTP/1.1\r\nHost: WWW.Example.org:8080\r\nUser-Agent: test/1.0\r\n\r\n"));
    s->inspect(resp, bytes("HTTP/1.1 404 Not Found\r\nServer: x\r\n\r\n"));
    EXPECT_EQ(s->inspections(), 0u);
    // A later request on the same flow no longer changes the result (nDPI's rule).
    s->inspect(req, bytes("POST /other HTTP/1.1\r\nHost: other\r\n\r\n"));
    auto r = record_of(req, weir::EndReason::ActiveTimeout);
    s->finish(r);
    EXPECT_STREQ(r.l7.name, "HTTP");
    EXPECT_STREQ(r.l7.url, "WWW.Example.org:8080/a?b=\"c\"");
    EXPECT_STREQ(r.l7.server_name, "www.example.org");
    EXPECT_STREQ(r.l7.user_agent, "test/1.0");
    EXPECT_EQ(r.l7.http_method, 2) << "GET (ndpi_http_method)";
    EXPECT_EQ(r.l7.http_status, 404) << "the first response's";
    EXPECT_EQ(r.l7.category, 5) << "Web";
    EXPECT_EQ(r.l7.confidence, 4) << "DPI";
    EXPECT_EQ(s->flows(), 1u) << "an active-timeout export keeps the result for the flow's next record";
    auto r2 = record_of(req);
    s->finish(r2);
    EXPECT_STREQ(r2.l7.url, r.l7.url);
    EXPECT_EQ(s->flows(), 0u);
}

TEST(DpiStage, LevelZeroGuessesByPortOnly)
{
    DpiConfig c;
    c.level = 0;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto m = make_meta(17, 1, 33333, 53, true);
    s->inspect(m, dns_message(false));
    EXPECT_EQ(s->flows(), 0u);
    auto r = record_of(m);
    s->finish(r);
    EXPECT_EQ(r.l7.app, 5);
    EXPECT_EQ(r.l7.guessed, 1);
    EXPECT_STREQ(r.l7.server_name, "");
    auto t = record_of(make_meta(6, 1, 443, 51000, true));
    s->finish(t);
    EXPECT_STREQ(t.l7.name, "TLS");
    EXPECT_EQ(t.l7.guessed, 1);
}

TEST(DpiStage, ManyFlowsReuseTheMapAfterExport)
{
    // Insert and erase in every order the open-addressing map sees, and
    // check each flow still finds its own result.
    DpiConfig c;
    c.level = 1;
    c.max_flows = 40;
    c.max_inspections = 40;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    for (int round = 0; round < 20; ++round) {
        std::vector<weir::PacketMeta> ms;
        for (int i = 0; i < 40; ++i) {
            auto m = make_meta(17, static_cast<uint8_t>(i), static_cast<uint16_t>(1024 + round * 40 + i), 53, true);
            s->inspect(m, dns_message(false));
            ms.push_back(m);
        }
        EXPECT_EQ(s->flows(), 40u);
        for (int i = 0; i < 40; ++i) {
            auto& m = ms[(i * 7 + round) % 40];
            auto r = record_of(m);
            s->finish(r);
            ASSERT_STREQ(r.l7.server_name, "example.com") << round << " " << i;
            ASSERT_EQ(r.l7.guessed, 0);
        }
        EXPECT_EQ(s->flows(), 0u);
        EXPECT_EQ(s->inspections(), 0u);
    }
    EXPECT_EQ(s->stats().not_inspected, 0u);
}

// A request whose headers come in the client's next segments: Host (port
// dropped) and User-Agent taken from them; the server's segments and lines
// after the headers' end are not read as the request's.
TEST(DpiStage, HttpHeadersInLaterSegments)
{
    DpiConfig cfg;
    cfg.level = 1;
    cfg.max_flows = 16;
    cfg.max_inspections = 16;
    cfg.tls_streams = 1;
    auto s = make_stage(cfg);
    ASSERT_TRUE(s);
    auto a = make_meta(6, 1, 40000, 80, true), b = make_meta(6, 1, 40000, 80, false);
    s->inspect(a, bytes("POST /ocsp HTTP/1.1\r\n"));
    s->inspect(b, bytes("Host: server.example.net\r\n")); // not the client's
    s->inspect(a, bytes("Content-Length: 83\r\nHost: ocsp.example.com:8080\r\n"));
    s->inspect(a, bytes("User-Agent: zbtls http\r\n\r\n"));
    s->inspect(a, bytes("User-Agent: body text\r\n"));
    auto r = record_of(a);
    s->finish(r);
    EXPECT_STREQ(r.l7.name, "HTTP");
    EXPECT_STREQ(r.l7.server_name, "ocsp.example.com");
    EXPECT_STREQ(r.l7.user_agent, "zbtls http");
    EXPECT_STREQ(r.l7.url, "/ocsp");

    // Headers complete in the first segment: later ones are not read.
    auto c = make_meta(6, 2, 40001, 80, true);
    s->inspect(c, bytes("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"));
    s->inspect(c, bytes("User-Agent: later\r\n"));
    r = record_of(c);
    s->finish(r);
    EXPECT_STREQ(r.l7.server_name, "a.example");
    EXPECT_STREQ(r.l7.user_agent, "");
}

// The L7 fields of every exported flow, by canonical key and start time.
std::map<std::string, std::string> run_pipeline(const std::string& path, uint16_t workers, uint8_t level,
                                                uint64_t& detected, weir::engine::PipelineStats* stats = nullptr,
                                                uint32_t burst = 32, uint64_t dpi_ring_bytes = 0)
{
    std::map<std::string, std::string> out;
    auto src = weir::dataplane::open_pcap_file(path);
    EXPECT_TRUE(src);
    if (!src)
        return out;
    weir::engine::PipelineConfig cfg;
    cfg.workers = workers;
    cfg.table.capacity = 1u << 12;
    cfg.dpi.level = level;
    cfg.ring_size = 256; // small rings: the reader often waits on the workers
    cfg.export_ring_size = 64;
    cfg.burst = burst;
    cfg.dpi_ring_bytes = dpi_ring_bytes;
    detected = 0;
    auto pipe = weir::engine::Pipeline::create(cfg, [&](const weir::FlowRecord& r) {
        std::string k(reinterpret_cast<const char*>(&r.key), sizeof(r.key));
        k += std::to_string(r.first_ns());
        const auto& l = r.l7;
        if (l.app && !l.guessed)
            ++detected;
        out[k] = std::to_string(l.app) + "|" + std::to_string(l.guessed) + "|" + l.name + "|" + l.server_name + "|" +
                 l.url + "|" + l.user_agent + "|" + l.ja3c + "|" + l.ja3s + "|" + l.ja4;
    });
    EXPECT_TRUE(pipe);
    if (!pipe)
        return out;
    auto st = (*pipe)->run(**src);
    EXPECT_EQ(st.dpi_copies_dropped, 0u);
    if (stats)
        *stats = st;
    return out;
}

TEST(DpiPipeline, SameResultsInlineAndThreaded)
{
    const std::filesystem::path dir = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps/ndpi/pcap";
    for (const char* name : {"tls_verylong_certificate.pcap", "1kxun.pcap", "dns-tunnel-iodine.pcap"}) {
        const auto path = dir / name;
        if (!std::filesystem::exists(path))
            GTEST_SKIP() << path << " not found";
        uint64_t d0 = 0, d1 = 0, d2 = 0, g = 0;
        auto inline_run = run_pipeline(path.string(), 0, 1, d0);
        auto one = run_pipeline(path.string(), 1, 1, d1);
        auto two = run_pipeline(path.string(), 2, 1, d2);
        EXPECT_GT(d0, 0u) << name;
        EXPECT_EQ(inline_run, one) << name;
        EXPECT_EQ(inline_run, two) << name;
        // A payload ring of 16 KiB (bursts of 4): copies wrap around it
        // many times and the reader waits on the worker for room.
        uint64_t d3 = 0;
        EXPECT_EQ(inline_run, run_pipeline(path.string(), 1, 1, d3, nullptr, 4, 16384)) << name;
        EXPECT_EQ(inline_run, run_pipeline(path.string(), 2, 1, d3, nullptr, 4, 16384)) << name;
        // Level 0 reads no payload: every protocol it reports is a guess.
        auto guessed = run_pipeline(path.string(), 1, 0, g);
        EXPECT_EQ(g, 0u) << name;
        EXPECT_EQ(guessed.size(), inline_run.size()) << name;
        // Threaded, the records cross to the export thread without their L7
        // block and get a blank one there: the same guesses as inline, none
        // left over from the record before.
        EXPECT_EQ(guessed, run_pipeline(path.string(), 0, 0, g)) << name;
        EXPECT_EQ(guessed, run_pipeline(path.string(), 2, 0, g)) << name;
    }
}

// The pipeline's totals add up every worker's DPI counters, the QUIC/DTLS
// hellos given up included: the server Initial of this capture does not
// decrypt with the client's keys (one give-up), whatever the worker count.
TEST(DpiPipeline, StatsSumEveryWorker)
{
    const auto path = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps/ndpi/pcap/quic_frags_different_dcid.pcapng";
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " not found";
    for (uint16_t workers : {0, 1, 2}) {
        uint64_t detected = 0;
        weir::engine::PipelineStats st;
        run_pipeline(path.string(), workers, 1, detected, &st);
        EXPECT_EQ(detected, 1u) << workers;
        EXPECT_EQ(st.dpi.detected, 1u) << workers;
        EXPECT_GE(st.dpi.inspected, 1u) << workers;
        EXPECT_EQ(st.dpi.hello_gave_up, 1u) << workers;
        EXPECT_GT(st.dpi.payloads, 0u) << workers;
    }
}

} // namespace

namespace {

// One packet of a TCP flow for the timing tests: flags, time, payload or not.
weir::PacketMeta tcp_at(bool from_a, uint8_t flags, uint64_t t_us, uint16_t payload)
{
    weir::PacketMeta m = make_meta(6, 9, 40000, 80, from_a);
    m.tcp_flags = flags;
    m.ts_ns = 1'700'000'000'000'000'000ULL + t_us * 1000;
    m.l4_payload_len = payload;
    return m;
}

void feed(DpiStage& s, const weir::PacketMeta& m)
{
    static const auto req = bytes("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    static const auto resp = bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    if (m.l4_payload_len)
        s.inspect(m, m.src_is_a ? std::span<const uint8_t>(req) : std::span<const uint8_t>(resp));
    else
        s.observe(m);
}

} // namespace

TEST(DpiStageTiming, HandshakeHalvesAndResponseTimeWithARetransmittedSyn)
{
    for (uint8_t level : {uint8_t{1}, uint8_t{2}}) {
        DpiConfig cfg;
        cfg.level = level;
        cfg.max_flows = 16;
        cfg.max_inspections = 16;
        cfg.tls_streams = 2;
        auto s = DpiStage::create(cfg);
        if (!s) {
            EXPECT_EQ(level, 2) << s.error().message();
            continue; // no libndpi in this build: level 2 cannot run
        }
        DpiStage& st = **s;
        constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;
        // SYN, SYN again 1 s later (the one the server answers), SYN/ACK
        // 20 ms after it, the client's ACK 4 ms later, its request 1 ms
        // later, the response 30 ms after the request.
        const weir::PacketMeta pkts[] = {
            tcp_at(true, kSyn, 0, 0),          tcp_at(true, kSyn, 1'000'000, 0),
            tcp_at(false, kSyn | kAck, 1'020'000, 0), tcp_at(true, kAck, 1'024'000, 0),
            tcp_at(true, kAck | kPsh, 1'025'000, 36), tcp_at(false, kAck, 1'040'000, 0),
            tcp_at(false, kAck | kPsh, 1'055'000, 38),
        };
        for (const auto& p : pkts)
            level == 2 ? st.inspect(p, std::span<const uint8_t>()) : feed(st, p);
        auto r = record_of(pkts[0], weir::EndReason::EndOfFlow);
        st.finish(r);
        if (level == 2) {
            // nDPI reads whole IP packets, which these metas have not: only the timing counts.
            EXPECT_EQ(r.l7.server_nw_latency_us, 0u) << "inspect() at level 2 ignores empty input";
            continue;
        }
        EXPECT_EQ(r.l7.server_nw_latency_us, 10'000u) << "RTT/2 from the last SYN";
        EXPECT_EQ(r.l7.client_nw_latency_us, 2'000u);
        EXPECT_EQ(r.l7.appl_latency_us, 30'000u);
        EXPECT_EQ(r.l7.app, 7) << "HTTP still detected";
        // Roles swapped in the record: the halves follow the hosts.
        for (const auto& p : pkts)
            feed(st, p);
        auto sw = record_of(pkts[0], weir::EndReason::EndOfFlow);
        sw.client_is_a = 0;
        st.finish(sw);
        EXPECT_EQ(sw.l7.client_nw_latency_us, 10'000u);
        EXPECT_EQ(sw.l7.server_nw_latency_us, 2'000u);
    }
}

TEST(DpiStageTiming, MidStreamFlowHasNoLatency)
{
    DpiConfig cfg;
    cfg.level = 1;
    auto st = make_stage(cfg);
    ASSERT_TRUE(st);
    constexpr uint8_t kAck = 0x10, kPsh = 0x08;
    feed(*st, tcp_at(true, kAck | kPsh, 0, 36));
    feed(*st, tcp_at(false, kAck | kPsh, 5'000, 38));
    auto r = record_of(tcp_at(true, kAck, 0, 0), weir::EndReason::EndOfFlow);
    st->finish(r);
    EXPECT_EQ(r.l7.client_nw_latency_us, 0u);
    EXPECT_EQ(r.l7.server_nw_latency_us, 0u);
    EXPECT_EQ(r.l7.appl_latency_us, 0u);
    EXPECT_EQ(r.l7.app, 7);
}

namespace {

TEST(DpiStage, HttpNumericHostRiskAsNdpi)
{
    // nDPI checks the Host of the first request with a URL: a canonical
    // dotted quad (a port allowed, the whole under 21 characters).
    const std::vector<std::pair<std::string, bool>> hosts = {
        {"192.168.1.10", true},      {"10.0.0.1:8080", true},    {"8.8.8.8", true},
        {"255.255.255.255:65535", false}, // 21 characters: not looked at
        {"010.0.0.1", false},        {"1.2.3", false},           {"1.2.3.4.5", false},
        {"256.1.1.1", false},        {"example.org", false},     {"1example.org", false},
        {"[::1]:80", false},         {"1.2.3.", false},
    };
    for (const auto& [host, numeric] : hosts) {
        DpiConfig c;
        c.level = 1;
        auto s = make_stage(c);
        ASSERT_TRUE(s);
        auto req = make_meta(6, 1, 50000, 80, true);
        s->inspect(req, bytes("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
        auto r = record_of(req);
        s->finish(r);
        EXPECT_EQ(r.l7.risk, numeric ? 1ULL << 12 : 0u) << host;
        EXPECT_EQ(r.l7.risk_score, numeric ? 10 : 0) << host;
    }
    // Only the first request with a URL and a Host counts.
    DpiConfig c;
    c.level = 1;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto req = make_meta(6, 1, 50000, 80, true);
    s->inspect(req, bytes("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"));
    s->inspect(req, bytes("GET / HTTP/1.1\r\nHost: 10.1.1.1\r\n\r\n"));
    auto r = record_of(req);
    s->finish(r);
    EXPECT_EQ(r.l7.risk, 0u);
}

} // namespace

namespace {

// nDPI's "Known Protocol on Non Standard Port" on a found flow: HTTP on
// 8080 (HTTP_Proxy's port) and on 1234 (no protocol's port, not HTTP's 80);
// HTTP on 80 and a flow only guessed by port are not flagged.
TEST(DpiStage, KnownProtocolOnNonStandardPortAsNdpi)
{
    constexpr uint64_t kBit = 1ULL << weir::ndpi_vocab::kRiskKnownProtocolOnNonStandardPort;
    for (const auto& [port, flagged] : std::vector<std::pair<uint16_t, bool>>{{8080, true}, {1234, true}, {80, false}}) {
        DpiConfig c;
        c.level = 1;
        auto s = make_stage(c);
        ASSERT_TRUE(s);
        auto req = make_meta(6, 1, 50000, port, true);
        s->inspect(req, bytes("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"));
        auto r = record_of(req);
        s->finish(r);
        EXPECT_STREQ(r.l7.name, "HTTP") << port;
        EXPECT_EQ(r.l7.risk, flagged ? kBit : 0u) << port;
        EXPECT_EQ(r.l7.risk_score, flagged ? weir::ndpi_vocab::kRiskScores[5] : 0) << port;
    }
    DpiConfig c;
    c.level = 1;
    auto s = make_stage(c);
    ASSERT_TRUE(s);
    auto syn = make_meta(6, 1, 50000, 22, true);
    auto r = record_of(syn);
    s->finish(r);
    EXPECT_EQ(r.l7.guessed, 1);
    EXPECT_EQ(r.l7.risk, 0u);
}

} // namespace
