// v9/IPFIX export of ntop L7 fields (PEN 35632 / v9 57472 + n), options
// templates and records (exporting process statistics, RFC 5610 type
// records), session restarts, TCP reconnect, pacing and a late collector.
// Bytes are checked by hand where the layout matters and by the
// FlowDecoder (weir-collector's decoder) for what a collector reads back;
// tshark, when installed, must decode the datagrams without a malformed
// packet.
#include <weir/exporters/exporter.hpp>
#include <weir/exporters/flow_decoder.hpp>
#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include <datagram_bytes.hpp>
#include <pcap_writer.hpp>

#include <gtest/gtest.h>

#include <map>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;

using namespace weir::test;

struct Flows final : FlowRecordSink {
    std::vector<FlowRecord> r;
    void on_flow(const FlowRecord& f, const FlowOrigin&) noexcept override { r.push_back(f); }
};

constexpr uint64_t kSec = 1000000000ULL;
constexpr uint64_t kMs = 1000000ULL;
constexpr uint64_t kT0 = 1700000000ULL * kSec;
const ExportClock kClock{kT0 + 10005 * kMs, kT0};

template <std::size_t N>
void put(char (&dst)[N], std::string_view s)
{
    const std::size_t n = std::min(s.size(), N - 1);
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

FlowRecord tcp4(uint8_t last = 1)
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 6;
    r.key.addr_a = {192, 0, 2, last};
    r.key.addr_b = {198, 51, 100, 2};
    r.key.port_a = 40000;
    r.key.port_b = 443;
    r.client_is_a = 1;
    r.dir[0] = {10, 1000, kT0 + 1000 * kMs, kT0 + 2000 * kMs, 0x1b, 60, 64, 0x00};
    r.dir[1] = {8, 6000, kT0 + 1100 * kMs, kT0 + 2500 * kMs, 0x1a, 50, 52, 0x20};
    r.end_reason = EndReason::EndOfFlow;
    return r;
}

FlowRecord tls4()
{
    FlowRecord r = tcp4(7);
    r.l7.master = 91;
    r.l7.app = 126;
    put(r.l7.name, "TLS.Google");
    put(r.l7.server_name, "www.google.com");
    put(r.l7.ja3c, "771a8f2e5f0c8a36d5d0b1a0b2c3d4e5f");
    put(r.l7.ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    r.l7.category = 5;             // Web
    r.l7.confidence = 4;           // DPI
    r.l7.risk = 1ULL << 5 | 1ULL << 24; // non-standard port, missing SNI (made up for the test)
    r.l7.risk_score = 100;
    return r;
}

FlowRecord http6()
{
    FlowRecord r{};
    r.key.ip_version = 6;
    r.key.proto = 6;
    r.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    r.key.addr_b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    r.key.port_a = 50000;
    r.key.port_b = 80;
    r.client_is_a = 1;
    r.dir[0] = {4, 600, kT0 + 3000 * kMs, kT0 + 3100 * kMs, 0x1b, 64, 64, 0};
    r.dir[1] = {3, 4000, kT0 + 3050 * kMs, kT0 + 3150 * kMs, 0x1b, 64, 64, 0};
    r.l7.app = 7;
    put(r.l7.name, "HTTP");
    put(r.l7.server_name, "www.example.org");
    // 255 bytes: the longest URL, written with IPFIX's 3-byte length.
    std::string url = "www.example.org/";
    url.append(255 - url.size(), 'a');
    put(r.l7.url, url);
    put(r.l7.user_agent, "curl/8.5.0");
    r.l7.http_method = 5; // POST
    r.l7.http_status = 404;
    return r;
}

FlowRecord dns4()
{
    FlowRecord r = tcp4(9);
    r.key.proto = 17;
    r.key.port_b = 53;
    r.l7.app = 5;
    put(r.l7.name, "DNS");
    put(r.l7.server_name, "example.com");
    r.l7.dns_qtype = 28;
    r.l7.dns_rcode = 3;
    return r;
}

std::unique_ptr<Encoder> make(ExportFormat f, EncoderOptions o = {})
{
    auto e = make_encoder(f, o);
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message());
    return std::move(e.value());
}

std::unique_ptr<FlowDecoder> decoder()
{
    auto d = FlowDecoder::create({});
    EXPECT_TRUE(d.ok());
    return std::move(d.value());
}

FlowSourceStats decode_all(FlowDecoder& dec, const std::vector<Bytes>& dgrams, Flows& flows)
{
    ExporterAddress from{};
    from.addr = {127, 0, 0, 1};
    for (const Bytes& d : dgrams)
        EXPECT_EQ(dec.decode(from, {d.data(), d.size()}, kT0, flows), DecodeStatus::Ok);
    FlowSourceStats st{};
    dec.for_each_source([&](const FlowSourceInfo& i) { st = i.stats; });
    return st;
}

/// Sets of one message: (set id, offset of the set header, length).
struct Set {
    uint16_t id;
    std::size_t at;
    uint16_t len;
};

std::vector<Set> sets(const Bytes& d, std::size_t header)
{
    std::vector<Set> out;
    std::size_t at = header;
    while (at + 4 <= d.size()) {
        const uint16_t len = rd16(d, at + 2);
        EXPECT_GE(len, 4);
        if (len < 4)
            break;
        out.push_back({rd16(d, at), at, len});
        at += len;
    }
    EXPECT_EQ(at, d.size()) << "set lengths add up to the message";
    return out;
}

TEST(ExportL7, IpfixL7TemplatesVariableLengthStringsAndRoundTrip)
{
    auto enc = make(ExportFormat::Ipfix);
    Collect out;
    enc->add(tcp4(), kClock, out);  // no L7: plain template 256
    enc->add(tls4(), kClock, out);  // first L7 flow: announced, new datagram
    enc->add(http6(), kClock, out);
    enc->add(dns4(), kClock, out);
    enc->flush(kClock, out);
    // 1: plain flow; 2: both template sets, TLS record; 3: the long HTTP record.
    ASSERT_GE(out.d.size(), 2u);
    EXPECT_EQ(enc->stats().l7_records, 3u);
    EXPECT_EQ(enc->stats().template_sends, 2u);

    // Second message: template sets (256/257, then 272/273), then data.
    const Bytes& m = out.d[1];
    const auto s = sets(m, 16);
    ASSERT_GE(s.size(), 3u);
    EXPECT_EQ(s[0].id, 2);
    EXPECT_EQ(s[1].id, 2);
    EXPECT_EQ(rd16(m, s[1].at + 4), 272) << "IPv4 L7 template = base + 16";
    const uint16_t nfields = rd16(m, s[1].at + 6);
    EXPECT_EQ(nfields, 29 + 21);
    // The L7 fields follow the 29 biflow fields: enterprise bit, PEN 35632.
    std::size_t at = s[1].at + 8;
    for (int i = 0; i < 29; ++i)
        at += (rd16(m, at) & 0x8000) ? 8 : 4;
    // Then CLIENT/SERVER_NW_LATENCY_MS and APPL_LATENCY_MS, 4 bytes each.
    // L7_PROTO, L7_PROTO_NAME, L7_PROTO_CATEGORY, L7_CONFIDENCE (u8),
    // L7_PROTO_RISK (u64), L7_RISK_SCORE, then the strings and latencies.
    const uint16_t ids[] = {118, 119, 501, 560, 509, 527, 205, 207, 208, 188, 187,
                            180, 360, 181, 183, 489, 490, 576, 123, 124, 125};
    const uint16_t len[] = {2,     65535, 65535, 1,     8,     2,     65535, 2,     1, 65535, 65535,
                            65535, 65535, 2,     65535, 65535, 65535, 65535, 4,     4, 4};
    for (int i = 0; i < 21; ++i, at += 8) {
        EXPECT_EQ(rd16(m, at), 0x8000 | ids[i]) << i;
        EXPECT_EQ(rd16(m, at + 2), len[i]) << i;
        EXPECT_EQ(rd32(m, at + 4), 35632u) << i;
    }

    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    EXPECT_EQ(st.unknown_template, 0u);
    EXPECT_EQ(st.sequence_gaps, 0u);
    ASSERT_EQ(flows.r.size(), 4u);
    EXPECT_EQ(flows.r[0].l7.app, 0);
    const L7Info& tls = flows.r[1].l7;
    EXPECT_EQ(tls.app, 126);
    EXPECT_STREQ(tls.name, "TLS.Google");
    EXPECT_STREQ(tls.server_name, "www.google.com");
    EXPECT_STREQ(tls.ja3c, tls4().l7.ja3c);
    EXPECT_STREQ(tls.ja4, tls4().l7.ja4);
    EXPECT_EQ(tls.category, 5);
    EXPECT_EQ(tls.confidence, 4);
    EXPECT_EQ(tls.risk, tls4().l7.risk);
    EXPECT_EQ(tls.risk_score, 100);
    const L7Info& http = flows.r[2].l7;
    EXPECT_EQ(http.category, 0);
    EXPECT_EQ(http.risk, 0u);
    EXPECT_EQ(http.app, 7);
    EXPECT_STREQ(http.url, http6().l7.url) << "255-byte string (3-byte length) survives";
    EXPECT_EQ(std::strlen(http.url), 255u);
    EXPECT_STREQ(http.user_agent, "curl/8.5.0");
    EXPECT_STREQ(http.server_name, "www.example.org");
    EXPECT_EQ(http.http_method, 5) << "HTTP_METHOD \"POST\"";
    EXPECT_EQ(http.http_status, 404);
    const L7Info& dns = flows.r[3].l7;
    EXPECT_STREQ(dns.server_name, "example.com");
    EXPECT_EQ(dns.dns_qtype, 28);
    EXPECT_EQ(dns.dns_rcode, 3);
}

TEST(ExportL7, V9FixedWidthStringsCutToTheTemplate)
{
    auto enc = make(ExportFormat::NetflowV9);
    Collect out;
    enc->add(http6(), kClock, out);
    enc->add(tls4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_GE(out.d.size(), 1u);
    const Bytes& m = out.d[0];
    const auto s = sets(m, 20);
    ASSERT_GE(s.size(), 3u);
    EXPECT_EQ(s[1].id, 0);
    EXPECT_EQ(rd16(m, s[1].at + 4), 258 + 16) << "v9 biflow is inout: base 258";
    // The L7 fields are plain v9 types 57472 + n.
    std::size_t at = s[1].at + 8 + 23 * 4;
    EXPECT_EQ(rd16(m, at), 57590) << "L7_PROTO";
    EXPECT_EQ(rd16(m, at + 2), 2);
    EXPECT_EQ(rd16(m, at + 4), 57591) << "L7_PROTO_NAME";
    EXPECT_EQ(rd16(m, at + 6), 24);
    for (const Set& x : s)
        EXPECT_EQ(x.len % 4, 0) << "v9 flowsets padded";

    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    ASSERT_EQ(flows.r.size(), 2u);
    EXPECT_EQ(flows.r[0].l7.app, 7);
    EXPECT_STREQ(flows.r[0].l7.name, "HTTP");
    EXPECT_EQ(std::string(flows.r[0].l7.url), std::string(http6().l7.url).substr(0, 128)) << "HTTP_URL is 128 wide";
    EXPECT_EQ(flows.r[0].l7.http_method, 5);
    EXPECT_EQ(flows.r[0].l7.http_status, 404);
    EXPECT_STREQ(flows.r[1].l7.server_name, "www.google.com");
    EXPECT_STREQ(flows.r[1].l7.ja4, tls4().l7.ja4);
}

TEST(ExportL7, V9CompactTemplateForFlowsWithOnlyAProtocol)
{
    // A port guess or a DPI result without strings: the protocol's fields
    // only (template base + 24), not ~500 bytes of padding.
    FlowRecord guess = tcp4(3);
    guess.l7.app = 91;
    guess.l7.guessed = 1;
    put(guess.l7.name, "TLS");
    auto enc = make(ExportFormat::NetflowV9);
    Collect out;
    for (int i = 0; i < 40; ++i)
        enc->add(guess, kClock, out);
    enc->add(tls4(), kClock, out); // strings: the full L7 template
    enc->flush(kClock, out);
    EXPECT_EQ(enc->stats().l7_records, 41u);
    // 138-byte compact records: about 10 to a datagram (a full L7 record
    // is about 650 bytes: two to a datagram, 21 datagrams for these flows).
    ASSERT_LE(out.d.size(), 7u);
    const Bytes& m = out.d[0];
    const auto s = sets(m, 20);
    ASSERT_GE(s.size(), 3u);
    EXPECT_EQ(s[1].id, 0);
    EXPECT_EQ(rd16(m, s[1].at + 4), 258 + 24) << "IPv4 compact L7 template = base + 24";
    EXPECT_EQ(rd16(m, s[1].at + 6), 23 + 7)
        << "the flow fields, L7_PROTO, L7_PROTO_NAME, L7_PROTO_CATEGORY, L7_CONFIDENCE, three latencies";
    EXPECT_EQ(rd16(m, s[1].at + 8 + 23 * 4), 57590);
    EXPECT_EQ(rd16(m, s[1].at + 8 + 24 * 4), 57591);
    EXPECT_EQ(rd16(m, s[1].at + 8 + 25 * 4), 57973);
    EXPECT_EQ(rd16(m, s[1].at + 10 + 25 * 4), 16);
    EXPECT_EQ(rd16(m, s[1].at + 8 + 26 * 4), 58032);
    EXPECT_EQ(rd16(m, s[1].at + 10 + 26 * 4), 1);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(rd16(m, s[1].at + 8 + (27 + i) * 4), 57595 + i);
        EXPECT_EQ(rd16(m, s[1].at + 10 + (27 + i) * 4), 4);
    }

    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    EXPECT_EQ(st.unknown_template, 0u);
    ASSERT_EQ(flows.r.size(), 41u);
    EXPECT_EQ(flows.r[0].l7.app, 91);
    EXPECT_STREQ(flows.r[0].l7.name, "TLS");
    EXPECT_STREQ(flows.r[0].l7.server_name, "");
    EXPECT_STREQ(flows.r[40].l7.server_name, "www.google.com");
    EXPECT_STREQ(flows.r[40].l7.ja4, tls4().l7.ja4);
}

TEST(ExportL7, RisksTakeTheFullTemplateEvenWithoutAProtocol)
{
    // nDPI may flag a flow it could not classify: its risks need the L7
    // template (plain would lose them); with a protocol and no strings the
    // v9 compact template has no room for them either.
    FlowRecord unknown = tcp4(4);
    unknown.l7.risk = 1ULL << 17; // Malformed Packet
    unknown.l7.risk_score = 10;
    FlowRecord named = tcp4(5);
    named.l7.app = 91;
    put(named.l7.name, "TLS");
    named.l7.category = 5;
    named.l7.confidence = 4;
    named.l7.risk = 1ULL << 24; // Missing SNI TLS Extension
    named.l7.risk_score = 50;
    for (ExportFormat f : {ExportFormat::NetflowV9, ExportFormat::Ipfix}) {
        auto enc = make(f);
        Collect out;
        enc->add(unknown, kClock, out);
        enc->add(named, kClock, out);
        enc->flush(kClock, out);
        EXPECT_EQ(enc->stats().l7_records, 2u);
        auto dec = decoder();
        Flows flows;
        const FlowSourceStats st = decode_all(*dec, out.d, flows);
        EXPECT_EQ(st.malformed, 0u);
        ASSERT_EQ(flows.r.size(), 2u);
        EXPECT_EQ(flows.r[0].l7.app, 0);
        EXPECT_EQ(flows.r[0].l7.risk, 1ULL << 17);
        EXPECT_EQ(flows.r[0].l7.risk_score, 10);
        EXPECT_EQ(flows.r[1].l7.app, 91);
        EXPECT_EQ(flows.r[1].l7.risk, 1ULL << 24);
        EXPECT_EQ(flows.r[1].l7.risk_score, 50);
        EXPECT_EQ(flows.r[1].l7.category, 5);
        EXPECT_EQ(flows.r[1].l7.confidence, 4);
        if (f == ExportFormat::NetflowV9) {
            for (const Set& x : sets(out.d[0], 20))
                EXPECT_NE(x.id, 258 + 24) << "no compact template for a flow with risks";
        }
    }
}

TEST(ExportL7, V9LatenciesAndTunnelIdByteExactAndRoundTrip)
{
    FlowRecord r = tcp4();
    r.key.tunnel_id = 4242;
    r.key.tunnel_type = TunnelType::Vxlan;
    r.l7.app = 91;
    put(r.l7.name, "TLS");
    r.l7.category = 5;
    r.l7.confidence = 4;
    r.l7.client_nw_latency_us = 1500;  // 1 ms on the wire (truncated)
    r.l7.server_nw_latency_us = 12345; // 12 ms
    r.l7.appl_latency_us = 40000;      // 40 ms
    auto enc = make(ExportFormat::NetflowV9);
    Collect out;
    enc->add(r, kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    const Bytes& m = out.d[0];
    const auto s = sets(m, 20);
    // Plain templates, the compact L7 tunnel pair (base + 72/73), one data set.
    ASSERT_EQ(s.size(), 3u);
    EXPECT_EQ(s[1].id, 0);
    EXPECT_EQ(rd16(m, s[1].at + 4), 258 + 72) << "IPv4 compact L7 tunnel template = base + 72";
    const uint16_t n = rd16(m, s[1].at + 6);
    ASSERT_EQ(n, 23 + 1 + 7)
        << "flow fields, UPSTREAM_TUNNEL_ID, L7_PROTO, L7_PROTO_NAME, L7_PROTO_CATEGORY, L7_CONFIDENCE, three latencies";
    uint32_t rec_len = 0;
    std::vector<uint16_t> ids;
    for (uint16_t i = 0; i < n; ++i) {
        ids.push_back(rd16(m, s[1].at + 8 + 4 * i));
        rec_len += rd16(m, s[1].at + 10 + 4 * i);
    }
    EXPECT_EQ(ids[23], 57578);
    EXPECT_EQ(ids[24], 57590);
    EXPECT_EQ(ids[25], 57591);
    EXPECT_EQ(ids[26], 57973);
    EXPECT_EQ(ids[27], 58032);
    EXPECT_EQ(ids[28], 57595);
    EXPECT_EQ(ids[29], 57596);
    EXPECT_EQ(ids[30], 57597);
    EXPECT_EQ(s[2].id, 258 + 72);
    const std::size_t end = s[2].at + 4 + rec_len;
    ASSERT_LE(end, m.size());
    const Bytes tail(m.begin() + static_cast<long>(end - 59), m.begin() + static_cast<long>(end));
    const Bytes want = {0, 0, 0x10, 0x92, // tunnel id 4242
                        0, 91, 'T', 'L', 'S', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        'W', 'e', 'b', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // category, 16 wide
                        4,                                                    // confidence: DPI
                        0, 0, 0, 1, 0, 0, 0, 12, 0, 0, 0, 40};
    EXPECT_EQ(tail, want);

    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    ASSERT_EQ(flows.r.size(), 1u);
    EXPECT_EQ(flows.r[0].key.tunnel_id, 4242u);
    EXPECT_EQ(flows.r[0].l7.client_nw_latency_us, 1000u);
    EXPECT_EQ(flows.r[0].l7.server_nw_latency_us, 12000u);
    EXPECT_EQ(flows.r[0].l7.appl_latency_us, 40000u);
    EXPECT_EQ(flows.r[0].l7.category, 5);
    EXPECT_EQ(flows.r[0].l7.confidence, 4);

    // IPFIX: the full L7 tunnel pair (base + 64), the elements under PEN 35632.
    auto ipf = make(ExportFormat::Ipfix);
    Collect out2;
    ipf->add(r, kClock, out2);
    ipf->flush(kClock, out2);
    Flows back;
    auto dec2 = decoder();
    decode_all(*dec2, out2.d, back);
    ASSERT_EQ(back.r.size(), 1u);
    EXPECT_EQ(back.r[0].key.tunnel_id, 4242u);
    EXPECT_EQ(back.r[0].l7.server_nw_latency_us, 12000u);
    EXPECT_EQ(back.r[0].l7.appl_latency_us, 40000u);
    EXPECT_EQ(rd16(out2.d[0], sets(out2.d[0], 16)[1].at + 4), 256 + 64);
}

TEST(ExportL7, L7FieldsOffKeepsPlainTemplates)
{
    auto enc = make(ExportFormat::Ipfix, EncoderOptions{.l7_fields = false});
    Collect out;
    enc->add(tls4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    EXPECT_EQ(enc->stats().l7_records, 0u);
    const auto s = sets(out.d[0], 16);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[1].id, 256);
}

TEST(ExportL7, SmallMtuSendsL7FlowsWithoutTheirFields)
{
    // 400 bytes hold the v9 templates and a plain record, not an L7 one.
    auto enc = make(ExportFormat::NetflowV9, EncoderOptions{.mtu = 400});
    Collect out;
    enc->add(tls4(), kClock, out);
    enc->flush(kClock, out);
    EXPECT_EQ(enc->stats().records, 1u);
    EXPECT_EQ(enc->stats().l7_records, 0u);
    for (const Bytes& d : out.d)
        EXPECT_LE(d.size(), 400u);
}

TEST(ExportOptions, IpfixStatisticsAndTypeRecords)
{
    EncoderOptions o;
    o.options_records = true;
    o.domain_id = 7;
    o.template_refresh_packets = 2;
    auto enc = make(ExportFormat::Ipfix, o);
    ProcessCounters pc;
    pc.ignored_packets = 11;
    pc.not_sent_flows = 3;
    enc->set_process_counters(pc);
    Collect out;
    for (int i = 0; i < 10; ++i) {
        enc->add(tcp4(uint8_t(i + 1)), kClock, out);
        if (i == 4)
            enc->add(tls4(), kClock, out);
        enc->flush(kClock, out);
    }
    // The first message: templates, options template (set 3), statistics.
    const Bytes& m = out.d[0];
    const auto s = sets(m, 16);
    ASSERT_GE(s.size(), 4u);
    EXPECT_EQ(s[1].id, 3);
    EXPECT_EQ(rd16(m, s[1].at + 4), 288) << "statistics template = base + 32";
    EXPECT_EQ(rd16(m, s[1].at + 6), 9) << "scope + 8 counters";
    EXPECT_EQ(rd16(m, s[1].at + 8), 1) << "scope field count";
    EXPECT_EQ(rd16(m, s[1].at + 10), 149) << "scope observationDomainId";
    const uint16_t want[] = {40, 41, 42, 164, 165, 166, 167, 168};
    for (int i = 0; i < 8; ++i)
        EXPECT_EQ(rd16(m, s[1].at + 14 + 4 * i), want[i]);
    EXPECT_EQ(s[2].id, 288);
    EXPECT_EQ(rd32(m, s[2].at + 4), 7u) << "observation domain";
    EXPECT_EQ(rd64(m, s[2].at + 8 + 3 * 8), 11u) << "ignoredPacketTotalCount";
    EXPECT_EQ(rd64(m, s[2].at + 8 + 5 * 8), 3u) << "notSentFlowTotalCount";

    // Some message after the first L7 flow has the RFC 5610 type records.
    bool types = false;
    for (const Bytes& d : out.d) {
        for (const Set& x : sets(d, 16)) {
            if (x.id != 289)
                continue;
            types = true;
            EXPECT_EQ(rd16(d, x.at + 4), 118) << "informationElementId L7_PROTO";
            EXPECT_EQ(rd32(d, x.at + 6), 35632u) << "privateEnterpriseNumber";
            EXPECT_EQ(d[x.at + 10], 2) << "unsigned16";
            EXPECT_EQ(d[x.at + 14], 8) << "name length";
            EXPECT_EQ(std::string(reinterpret_cast<const char*>(&d[x.at + 15]), 8), "L7_PROTO");
            // Every record: id, PEN, type, semantics, units, name (varlen).
            std::map<std::string, std::pair<int, int>> by_name;
            for (std::size_t at = x.at + 4; at + 11 <= x.at + x.len && d[at + 10] != 255;) {
                const std::size_t n = d[at + 10];
                by_name[std::string(reinterpret_cast<const char*>(&d[at + 11]), n)] = {d[at + 6], d[at + 7]};
                at += 11 + n;
            }
            EXPECT_EQ(by_name["L7_PROTO_RISK"], std::pair(4, 5)) << "unsigned64, flags";
            EXPECT_EQ(by_name["L7_RISK_SCORE"], std::pair(2, 1)) << "unsigned16, quantity";
            EXPECT_EQ(by_name["L7_CONFIDENCE"], std::pair(1, 4)) << "unsigned8, identifier";
            EXPECT_EQ(by_name["L7_PROTO_CATEGORY"], std::pair(13, 0)) << "string";
        }
    }
    EXPECT_TRUE(types);

    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    EXPECT_EQ(st.unknown_template, 0u);
    EXPECT_EQ(st.sequence_gaps, 0u) << "sequence numbers count options records too";
    EXPECT_EQ(st.sequence_resets, 0u);
    EXPECT_EQ(flows.r.size(), 11u);
    EXPECT_GE(st.options_templates, 5u);
    EXPECT_EQ(st.options_records, enc->stats().options_records);
    EXPECT_GE(enc->stats().options_records, 5u + 12u);
}

TEST(ExportOptions, V9OptionsTemplateScopeSystem)
{
    EncoderOptions o;
    o.options_records = true;
    o.domain_id = 0x01020304;
    auto enc = make(ExportFormat::NetflowV9, o);
    Collect out;
    enc->add(tcp4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 1u);
    const Bytes& m = out.d[0];
    EXPECT_EQ(rd16(m, 2), 2 + 1 + 1 + 1) << "count: 2 templates, options template, options record, flow";
    const auto s = sets(m, 20);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[1].id, 1);
    EXPECT_EQ(rd16(m, s[1].at + 4), 258 + 32);
    EXPECT_EQ(rd16(m, s[1].at + 6), 4) << "option scope length (bytes)";
    EXPECT_EQ(rd16(m, s[1].at + 8), 32) << "option length (bytes)";
    EXPECT_EQ(rd16(m, s[1].at + 10), 1) << "scope System";
    EXPECT_EQ(rd16(m, s[1].at + 14), 40) << "exportedOctetTotalCount / TOTAL_BYTES_EXP";
    EXPECT_EQ(s[2].id, 258 + 32);
    EXPECT_EQ(rd32(m, s[2].at + 4), 0x01020304u);
    for (const Set& x : s)
        EXPECT_EQ(x.len % 4, 0);
    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, out.d, flows);
    EXPECT_EQ(st.malformed, 0u);
    EXPECT_EQ(st.options_templates, 1u);
    EXPECT_EQ(st.options_records, 1u);
    EXPECT_EQ(flows.r.size(), 1u);
}

TEST(ExportOptions, RestartSessionResendsTemplatesAndRestartsSequence)
{
    auto enc = make(ExportFormat::Ipfix, EncoderOptions{.template_refresh_packets = 0, .template_refresh_s = 0});
    Collect out;
    for (int i = 0; i < 3; ++i) {
        enc->add(tcp4(), kClock, out);
        enc->flush(kClock, out);
    }
    enc->restart_session();
    enc->add(tcp4(), kClock, out);
    enc->flush(kClock, out);
    ASSERT_EQ(out.d.size(), 4u);
    EXPECT_EQ(rd16(out.d[1], 16), 256) << "no templates without a refresh";
    EXPECT_EQ(rd32(out.d[2], 8), 2u);
    EXPECT_EQ(rd16(out.d[3], 16), 2) << "templates first in the new session";
    EXPECT_EQ(rd32(out.d[3], 8), 0u) << "sequence starts again";
    EXPECT_EQ(enc->stats().session_restarts, 1u);
}

TEST(ExportOptions, LateCollectorDecodesAfterTheNextTimedRefresh)
{
    // A collector that starts after the exporter: it misses the first
    // templates, counts the data it cannot read, and decodes from the next
    // refresh on (every second of export time here).
    auto enc = make(ExportFormat::Ipfix, EncoderOptions{.template_refresh_packets = 0, .template_refresh_s = 1});
    Collect out;
    for (int i = 0; i < 30; ++i) {
        const ExportClock c{kT0 + uint64_t(i) * 100 * kMs, kT0};
        enc->add(tcp4(uint8_t(i + 1)), c, out);
        enc->flush(c, out);
    }
    ASSERT_EQ(out.d.size(), 30u);
    auto dec = decoder();
    Flows flows;
    // The collector comes up at message 3 (templates went in message 0).
    std::vector<Bytes> late(out.d.begin() + 3, out.d.end());
    const FlowSourceStats st = decode_all(*dec, late, flows);
    EXPECT_EQ(st.unknown_template, 7u) << "messages 3..9 before the refresh at 1 s";
    EXPECT_EQ(flows.r.size(), 20u) << "messages 10..29";
    EXPECT_EQ(st.malformed, 0u);
}

// --- transports: TCP reconnect, pacing --------------------------------------

struct TcpListener {
    int fd = -1;
    uint16_t port = 0;
    explicit TcpListener(uint16_t want = 0)
    {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(want);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4) != 0) {
            ::close(fd);
            fd = -1;
            return;
        }
        socklen_t l = sizeof(a);
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
        port = ntohs(a.sin_port);
    }
    ~TcpListener()
    {
        if (fd >= 0)
            ::close(fd);
    }
    int accept_one(int timeout_ms) const
    {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0)
            return -1;
        return ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
};

/// Reads whole IPFIX messages from a stream until `want` or a timeout.
std::vector<Bytes> read_messages(int fd, std::size_t want, int timeout_ms)
{
    std::vector<Bytes> out;
    Bytes buf;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.size() < want && std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        uint8_t tmp[65536];
        const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0)
            break;
        buf.insert(buf.end(), tmp, tmp + n);
        while (buf.size() >= 4 && buf.size() >= rd16(buf, 2)) {
            const uint16_t len = rd16(buf, 2);
            out.emplace_back(buf.begin(), buf.begin() + len);
            buf.erase(buf.begin(), buf.begin() + len);
        }
    }
    return out;
}

TEST(ExportTransport, TcpReconnectsAndStartsANewSessionWithTemplates)
{
    auto l1 = std::make_unique<TcpListener>();
    ASSERT_GE(l1->fd, 0);
    const uint16_t port = l1->port;
    ExporterOptions o;
    o.boot_ns = kT0;
    o.encoder.options_records = true;
    o.encoder.template_refresh_packets = 0;
    o.encoder.template_refresh_s = 0;
    o.transport.backoff_min_ms = 20;
    o.transport.backoff_max_ms = 40;
    auto ex = Exporter::create(ExportFormat::Ipfix, "tcp://127.0.0.1:" + std::to_string(port), o);
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    Exporter& e = *ex.value();
    const int c1 = l1->accept_one(2000);
    ASSERT_GE(c1, 0);
    for (int i = 0; i < 3; ++i) {
        e.export_flow(tcp4(uint8_t(i + 1)));
        e.flush();
    }
    auto first = read_messages(c1, 3, 2000);
    ASSERT_EQ(first.size(), 3u);
    EXPECT_EQ(rd16(first[0], 16), 2);

    // The collector goes away (process killed: its sockets close).
    ::close(c1);
    l1.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int i = 0; i < 5; ++i) {
        e.export_flow(tcp4(uint8_t(10 + i)));
        e.flush();
    }
    EXPECT_GE(e.stats().disconnects, 1u);
    EXPECT_GE(e.stats().not_sent_records, 5u);

    // ... and comes back on the same port.
    TcpListener l2(port);
    ASSERT_GE(l2.fd, 0) << "port " << port << " taken meanwhile";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int c2 = -1;
    for (int i = 0; i < 50 && c2 < 0; ++i) {
        e.export_flow(tcp4(uint8_t(20 + i)));
        e.flush();
        c2 = l2.accept_one(20);
    }
    ASSERT_GE(c2, 0) << "exporter did not reconnect";
    EXPECT_EQ(e.stats().reconnects, 1u);
    for (int i = 0; i < 3; ++i) {
        e.export_flow(tcp4(uint8_t(100 + i)));
        e.flush();
    }
    auto second = read_messages(c2, 3, 2000);
    ::close(c2);
    ASSERT_GE(second.size(), 1u);
    EXPECT_EQ(rd32(second[0], 8), 0u) << "new session: sequence 0";
    EXPECT_EQ(rd16(second[0], 16), 2) << "new session: templates first";
    // The statistics record reports what was lost while the collector was away.
    bool found = false;
    for (const Set& s : sets(second[0], 16)) {
        if (s.id == 288) {
            found = true;
            EXPECT_GE(rd64(second[0], s.at + 8 + 5 * 8), 5u) << "notSentFlowTotalCount";
        }
    }
    EXPECT_TRUE(found);
    // A collector decodes the new session from its first message.
    auto dec = decoder();
    Flows flows;
    const FlowSourceStats st = decode_all(*dec, second, flows);
    EXPECT_EQ(st.unknown_template, 0u);
    EXPECT_EQ(st.malformed, 0u);
    EXPECT_EQ(flows.r.size(), second.size());
}

struct UdpSink {
    int fd = -1;
    uint16_t port = 0;
    UdpSink()
    {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const int rcv = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        socklen_t l = sizeof(a);
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
        port = ntohs(a.sin_port);
    }
    ~UdpSink() { ::close(fd); }
    std::size_t drain() const
    {
        std::size_t n = 0;
        uint8_t buf[65536];
        while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ++n;
        return n;
    }
};

TEST(ExportTransport, PacingSpacesDatagrams)
{
    UdpSink sink;
    ASSERT_GE(sink.fd, 0);
    ExporterOptions o;
    o.boot_ns = kT0;
    o.max_datagrams_per_s = 500; // 2 ms apart, bursts of 10
    auto ex = Exporter::create(ExportFormat::Ipfix, "127.0.0.1:" + std::to_string(sink.port), o);
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 110; ++i) {
        ex.value()->export_flow(tcp4(uint8_t(i)));
        ex.value()->flush();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // 110 datagrams, 10 in the first burst, then 100 at 2 ms: >= 0.2 s.
    EXPECT_GE(secs, 0.19);
    EXPECT_LT(secs, 2.0);
    EXPECT_NE(ex.value()->describe().find("at most 500 datagrams/s"), std::string::npos) << ex.value()->describe();
    const ExporterStats st = ex.value()->stats();
    EXPECT_EQ(st.datagrams, 110u);
    EXPECT_GT(st.paced_waits, 0u); // how many depends on how fast this loop runs
    EXPECT_EQ(sink.drain(), 110u);

    // Unpaced, the same export takes a fraction of that.
    UdpSink sink2;
    ExporterOptions fast;
    fast.boot_ns = kT0;
    auto ex2 = Exporter::create(ExportFormat::Ipfix, "127.0.0.1:" + std::to_string(sink2.port), fast);
    ASSERT_TRUE(ex2.ok());
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < 110; ++i) {
        ex2.value()->export_flow(tcp4(uint8_t(i)));
        ex2.value()->flush();
    }
    const double secs2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    EXPECT_LT(secs2, 0.1);
    EXPECT_EQ(ex2.value()->stats().paced_waits, 0u);
}

TEST(ExportTransport, IgnoredCountersReachTheStatisticsRecord)
{
    UdpSink sink;
    ASSERT_GE(sink.fd, 0);
    ExporterOptions o;
    o.boot_ns = kT0;
    o.encoder.options_records = true;
    o.encoder.domain_id = 5;
    auto ex = Exporter::create(ExportFormat::Ipfix, "127.0.0.1:" + std::to_string(sink.port), o);
    ASSERT_TRUE(ex.ok()) << ex.error().message();
    ex.value()->set_ignored(100, 5000);
    ex.value()->export_flow(tcp4());
    ex.value()->flush();
    Bytes d(65536);
    const ssize_t n = ::recv(sink.fd, d.data(), d.size(), 0);
    ASSERT_GT(n, 0);
    d.resize(std::size_t(n));
    bool found = false;
    for (const Set& s : sets(d, 16)) {
        if (s.id != 288)
            continue;
        found = true;
        EXPECT_EQ(rd32(d, s.at + 4), 5u);
        EXPECT_EQ(rd64(d, s.at + 8 + 3 * 8), 100u) << "ignoredPacketTotalCount";
        EXPECT_EQ(rd64(d, s.at + 8 + 4 * 8), 5000u) << "ignoredOctetTotalCount";
    }
    EXPECT_TRUE(found);
    EXPECT_EQ(ex.value()->stats().options_records, 1u);
}

// --- tshark -------------------------------------------------------------------

bool have_tshark()
{
    return std::system("command -v tshark >/dev/null 2>&1") == 0;
}

/// Raw-IP pcap of the datagrams, UDP 127.0.0.1:50000 -> 127.0.0.1:port.
void write_udp_pcap(const std::string& path, const std::vector<Bytes>& dgrams, uint16_t port)
{
    std::vector<test::PcapFrame> frames;
    uint64_t ts = kT0;
    for (const Bytes& d : dgrams) {
        Bytes f;
        const uint16_t total = uint16_t(20 + 8 + d.size());
        const uint8_t ip[20] = {0x45, 0, uint8_t(total >> 8), uint8_t(total), 0, 0, 0x40, 0, 64, 17, 0, 0,
                                127, 0, 0, 1, 127, 0, 0, 1};
        f.insert(f.end(), ip, ip + 20);
        uint32_t sum = 0;
        for (int i = 0; i < 20; i += 2)
            sum += uint32_t(ip[i] << 8 | ip[i + 1]);
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        f[10] = uint8_t(~sum >> 8);
        f[11] = uint8_t(~sum);
        const uint16_t ulen = uint16_t(8 + d.size());
        const uint8_t udp[8] = {0xc3, 0x50, uint8_t(port >> 8), uint8_t(port), uint8_t(ulen >> 8), uint8_t(ulen), 0, 0};
        f.insert(f.end(), udp, udp + 8);
        f.insert(f.end(), d.begin(), d.end());
        frames.push_back({f, ts, std::nullopt});
        ts += kMs;
    }
    test::PcapOptions po;
    po.linktype = 101; // raw IP
    test::write_pcap(path, frames, po);
}

std::string run(const std::string& cmd)
{
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr)
        return out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0)
        out.append(buf, n);
    ::pclose(p);
    return out;
}

TEST(ExportTshark, DecodesL7AndOptionsWithoutMalformed)
{
    if (!have_tshark())
        GTEST_SKIP() << "tshark not installed";
    for (ExportFormat f : {ExportFormat::Ipfix, ExportFormat::NetflowV9}) {
        SCOPED_TRACE(std::string(export_format_name(f)));
        EncoderOptions o;
        o.options_records = true;
        auto enc = make(f, o);
        ProcessCounters pc;
        pc.not_sent_flows = 5;
        enc->set_process_counters(pc);
        Collect out;
        enc->add(tcp4(), kClock, out);
        enc->add(tls4(), kClock, out);
        enc->add(http6(), kClock, out);
        enc->add(dns4(), kClock, out);
        enc->flush(kClock, out);
        test::TempPath pcap(".pcap");
        const uint16_t port = f == ExportFormat::Ipfix ? 4739 : 2055;
        write_udp_pcap(pcap.path(), out.d, port);
        const std::string text = run("tshark -n -r " + pcap.path() + " -d udp.port==" + std::to_string(port)
                                     + ",cflow -V 2>&1");
        ASSERT_FALSE(text.empty());
        EXPECT_EQ(text.find("Malformed"), std::string::npos) << text.substr(0, 4000);
        EXPECT_EQ(text.find("malformed"), std::string::npos);
        EXPECT_EQ(text.find("Expert Info (Warn"), std::string::npos) << text.substr(0, 4000);
        EXPECT_NE(text.find("www.google.com"), std::string::npos) << "TLS server name decoded";
        // The statistics record and the ntop fields, by Wireshark's names
        // (its table has PEN 35632 118..208 and v9 57590..57680; not JA3/JA4).
        EXPECT_NE(text.find("FlowsExp: "), std::string::npos);
        EXPECT_NE(text.find("Not Sent Flows: 5"), std::string::npos);
        EXPECT_NE(text.find("Layer 7 protocol name: TLS.Google"), std::string::npos);
        EXPECT_NE(text.find("DNS query: example.com"), std::string::npos);
        EXPECT_NE(text.find("HTTP User Agent: curl/8.5.0"), std::string::npos);
        EXPECT_NE(text.find("HTTP METHOD: POST"), std::string::npos) << "ntop 360 / v9 57832";
        EXPECT_NE(text.find("HTTP return code: 404"), std::string::npos) << "ntop 181 / v9 57653";
        if (f == ExportFormat::Ipfix) {
            EXPECT_NE(text.find("Information Element Data Type: 13"), std::string::npos) << "RFC 5610 records";
        }
    }
}

} // namespace
