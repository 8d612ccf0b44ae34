// FlowDecoder against weir's own NetFlow v5, v9 and IPFIX encoders (every
// biflow mode): the decoded FlowRecords must equal the encoded ones in every
// field the format carries. Then templates that come late, are withdrawn or
// expire; sequence gaps; hand-built IPFIX with variable-length and
// enterprise elements; truncated, garbage and absurd messages (counted, no
// crash); and FlowListener over UDP and TCP on loopback.
#include <weir/exporters/encoder.hpp>
#include <weir/exporters/flow_decoder.hpp>
#include <weir/exporters/flow_listener.hpp>
#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include <datagram_bytes.hpp>
#include <sample_flows.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace weir;
using namespace weir::exporters;
using Bytes = std::vector<uint8_t>;
using test::Collect;

constexpr uint64_t kSec = 1000000000ULL;
constexpr uint64_t kMs = 1000000ULL;
constexpr uint64_t kT0 = 1700000000ULL * kSec;

struct Flows final : FlowRecordSink {
    std::vector<FlowRecord> v;
    std::vector<uint16_t> tids;
    void on_flow(const FlowRecord& r, const FlowOrigin& o) noexcept override
    {
        v.push_back(r);
        tids.push_back(o.template_id);
    }
};

/// Sample flows with realistic ICMP keys (echo: client port 0, server
/// port = type/code, as weir's decoder keys them), ToS, VLANs, end reasons.
std::vector<FlowRecord> flows(uint32_t n = 600)
{
    auto v = test::sample_flows(n);
    for (uint32_t i = 0; i < v.size(); ++i) {
        FlowRecord& r = v[i];
        if (r.key.proto == 1 || r.key.proto == 58) {
            r.key.port_a = 0;
            r.key.port_b = r.key.proto == 1 ? 0x0800 : 0x8000;
        }
        r.dir[0].tos = uint8_t(i % 4 * 8);
        r.dir[1].tos = 0x10;
        r.key.vlan = i % 3 ? 0 : uint16_t(100 + i % 50);
        r.end_reason = static_cast<EndReason>(1 + i % 5);
        if (i % 11 == 0)
            r.dir[1] = {}; // one-way flow
    }
    return v;
}

/// The comparable view of a record: client/server sides, both directions.
struct View {
    std::array<uint8_t, 16> c, s;
    uint16_t cp, sp;
    uint8_t proto, ver;
    uint16_t vlan;
    uint64_t p0, b0, p1, b1, f0, l0, f1, l1;
    uint8_t fl0, fl1, tos0, tos1, mn0, mx0, mn1, mx1;
    std::array<uint8_t, 6> cm, sm;
    uint8_t reason;
    auto tie() const
    {
        return std::tie(c, s, cp, sp, proto, ver, vlan, p0, b0, p1, b1, f0, l0, f1, l1, fl0, fl1, tos0, tos1, mn0,
                        mx0, mn1, mx1, cm, sm, reason);
    }
    bool operator<(const View& o) const { return tie() < o.tie(); }
    bool operator==(const View& o) const { return tie() == o.tie(); }
};

View view(const FlowRecord& r)
{
    View v{};
    v.c = r.client_addr();
    v.s = r.server_addr();
    v.cp = r.client_port();
    v.sp = r.server_port();
    v.proto = r.key.proto;
    v.ver = r.key.ip_version;
    v.vlan = r.key.vlan;
    v.p0 = r.dir[0].packets; v.b0 = r.dir[0].bytes; v.p1 = r.dir[1].packets; v.b1 = r.dir[1].bytes;
    v.f0 = r.dir[0].first_ns; v.l0 = r.dir[0].last_ns; v.f1 = r.dir[1].first_ns; v.l1 = r.dir[1].last_ns;
    v.fl0 = r.dir[0].tcp_flags; v.fl1 = r.dir[1].tcp_flags;
    v.tos0 = r.dir[0].tos; v.tos1 = r.dir[1].tos;
    v.mn0 = r.dir[0].min_ttl; v.mx0 = r.dir[0].max_ttl; v.mn1 = r.dir[1].min_ttl; v.mx1 = r.dir[1].max_ttl;
    v.cm = r.client_mac;
    v.sm = r.server_mac;
    v.reason = static_cast<uint8_t>(r.end_reason);
    return v;
}

/// Direction d of r as a one-way record, as a collector sees it.
FlowRecord one_way(const FlowRecord& r, int d)
{
    const bool icmp = r.key.proto == 1 || r.key.proto == 58;
    FlowRecord o{};
    o.key = r.key;
    o.end_reason = r.end_reason;
    o.dir[0] = r.dir[d];
    if (d == 1) {
        o.client_is_a = r.client_is_a ? 0 : 1;
        o.client_mac = r.server_mac;
        o.server_mac = r.client_mac;
        if (icmp) { // the reply's type/code: echo reply 0
            const uint16_t req = r.server_port();
            uint16_t rep = 0;
            if (r.key.proto == 58 && (req >> 8) == 128)
                rep = 129 << 8;
            o.client_is_a = 1;
            o.key.addr_a = r.server_addr();
            o.key.addr_b = r.client_addr();
            o.key.port_a = 0;
            o.key.port_b = rep;
        }
    } else {
        o.client_is_a = r.client_is_a;
        o.client_mac = r.client_mac;
        o.server_mac = r.server_mac;
    }
    return o;
}

/// What the decoder must give for r in format f / mode m.
std::vector<View> expected(const FlowRecord& r, ExportFormat f, BiflowMode m)
{
    std::vector<View> out;
    if (f == ExportFormat::NetflowV9 && m == BiflowMode::Rfc5103)
        m = BiflowMode::InOut;
    if (f == ExportFormat::NetflowV5 || m == BiflowMode::OneWay) {
        if (f == ExportFormat::NetflowV5 && r.key.ip_version != 4)
            return out;
        for (int d = 0; d < 2; ++d) {
            if (r.dir[d].packets == 0)
                continue;
            View v = view(one_way(r, d));
            if (f == ExportFormat::NetflowV5) {
                v.vlan = 0; v.mn0 = v.mx0 = 0; v.cm = v.sm = {}; v.reason = 1;
            }
            out.push_back(v);
        }
        return out;
    }
    FlowRecord e = r;
    const uint64_t first = r.first_ns(), last = r.last_ns();
    e.dir[0].first_ns = first;
    e.dir[0].last_ns = last;
    if (m == BiflowMode::InOut) {
        e.dir[0].tcp_flags = r.dir[0].tcp_flags | r.dir[1].tcp_flags;
        if (e.dir[1].packets) {
            e.dir[1] = {r.dir[1].packets, r.dir[1].bytes, first, last, 0, 0, 0, 0};
        }
    }
    out.push_back(view(e));
    return out;
}

ExportClock clock_at(uint64_t now) { return {now, kT0 - 3600 * kSec}; }

std::vector<Bytes> encode(const std::vector<FlowRecord>& v, ExportFormat f, BiflowMode m, uint32_t refresh = 20,
                          uint32_t domain = 7)
{
    EncoderOptions o;
    o.biflow = m;
    o.domain_id = domain;
    o.template_refresh_packets = refresh;
    auto enc = make_encoder(f, o);
    EXPECT_TRUE(enc.ok());
    Collect c;
    const ExportClock clk = clock_at(kT0 + 100 * kSec);
    for (const FlowRecord& r : v)
        enc.value()->add(r, clk, c);
    enc.value()->flush(clk, c);
    return c.d;
}

ExporterAddress exporter(uint8_t last = 1, uint32_t session = 0)
{
    ExporterAddress a;
    a.addr = {127, 0, 0, last};
    a.family = 4;
    a.port = 9999;
    a.session = session;
    return a;
}

std::unique_ptr<FlowDecoder> decoder(DecoderOptions o = {})
{
    auto d = FlowDecoder::create(o);
    EXPECT_TRUE(d.ok());
    return std::move(d.value());
}

FlowSourceStats stats_of(const FlowDecoder& d)
{
    FlowSourceStats s{};
    d.for_each_source([&](const FlowSourceInfo& i) {
        s.messages += i.stats.messages; s.flows += i.stats.flows; s.unknown_template += i.stats.unknown_template;
        s.malformed += i.stats.malformed; s.sequence_gaps += i.stats.sequence_gaps;
        s.sequence_lost += i.stats.sequence_lost; s.sequence_resets += i.stats.sequence_resets;
        s.templates_expired += i.stats.templates_expired; s.template_withdrawals += i.stats.template_withdrawals;
        s.templates_refused += i.stats.templates_refused; s.templates += i.stats.templates;
        s.data_records += i.stats.data_records; s.options_records += i.stats.options_records;
    });
    return s;
}

struct Case {
    ExportFormat f;
    BiflowMode m;
};

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, DecodesWhatTheEncoderCarries)
{
    const auto [f, m] = GetParam();
    const auto in = flows();
    std::vector<View> want;
    for (const FlowRecord& r : in)
        for (const View& v : expected(r, f, m))
            want.push_back(v);
    const auto dgrams = encode(in, f, m);
    ASSERT_GT(dgrams.size(), 3u);
    auto dec = decoder();
    Flows got;
    for (const Bytes& d : dgrams)
        EXPECT_EQ(dec->decode(exporter(), d, kT0 + 100 * kSec, got), DecodeStatus::Ok);
    std::vector<View> have;
    for (const FlowRecord& r : got.v)
        have.push_back(view(r));
    std::sort(want.begin(), want.end());
    std::sort(have.begin(), have.end());
    ASSERT_EQ(have.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_TRUE(have[i] == want[i]) << "record " << i << " differs (format "
                                        << export_format_name(f) << ", " << biflow_mode_name(m) << ")";
    const FlowSourceStats s = stats_of(*dec);
    EXPECT_EQ(s.messages, dgrams.size());
    EXPECT_EQ(s.flows, want.size());
    EXPECT_EQ(s.sequence_gaps + s.sequence_resets + s.malformed + s.unknown_template, 0u);
    EXPECT_EQ(dec->source_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, RoundTrip,
    ::testing::Values(Case{ExportFormat::NetflowV5, BiflowMode::OneWay},
                      Case{ExportFormat::NetflowV9, BiflowMode::InOut},
                      Case{ExportFormat::NetflowV9, BiflowMode::OneWay},
                      Case{ExportFormat::NetflowV9, BiflowMode::Rfc5103},
                      Case{ExportFormat::Ipfix, BiflowMode::Rfc5103},
                      Case{ExportFormat::Ipfix, BiflowMode::InOut},
                      Case{ExportFormat::Ipfix, BiflowMode::OneWay}),
    [](const auto& info) {
        return std::string(export_format_name(info.param.f).substr(0, 7) == "netflow" ?
                               (info.param.f == ExportFormat::NetflowV5 ? "v5" : "v9") : "ipfix") +
               "_" + std::string(biflow_mode_name(info.param.m));
    });

TEST(FlowDecoder, V5TimesFromHeaderUptimeAcrossWrap)
{
    // sysUptime wrapped between the flow and the export: the age is still right.
    FlowRecord r = flows(1)[0];
    r.key.ip_version = 4;
    r.dir[1] = {};
    Collect c;
    auto enc = make_encoder(ExportFormat::NetflowV5, {});
    const uint64_t boot = kT0 - (uint64_t{1} << 32) * kMs + 50 * kMs; // uptime wraps 50 ms before kT0
    r.dir[0].first_ns = kT0 - 10 * kMs;
    r.dir[0].last_ns = kT0 + 20 * kMs;
    enc.value()->add(r, {kT0 + kSec, boot}, c);
    enc.value()->flush({kT0 + kSec, boot}, c);
    ASSERT_EQ(c.d.size(), 1u);
    auto dec = decoder();
    Flows got;
    ASSERT_EQ(dec->decode(exporter(), c.d[0], kT0, got), DecodeStatus::Ok);
    ASSERT_EQ(got.v.size(), 1u);
    EXPECT_EQ(got.v[0].dir[0].first_ns, kT0 - 10 * kMs);
    EXPECT_EQ(got.v[0].dir[0].last_ns, kT0 + 20 * kMs);
}

TEST(FlowDecoder, LateTemplateCountsUnknownThenDecodes)
{
    const auto in = flows(300);
    for (ExportFormat f : {ExportFormat::NetflowV9, ExportFormat::Ipfix}) {
        const auto d = encode(in, f, BiflowMode::Rfc5103, /*refresh=*/0);
        ASSERT_GT(d.size(), 2u);
        auto dec = decoder();
        Flows got;
        for (std::size_t i = 1; i < d.size(); ++i)
            dec->decode(exporter(), d[i], kT0, got);
        EXPECT_TRUE(got.v.empty());
        EXPECT_GE(stats_of(*dec).unknown_template, d.size() - 1);
        dec->decode(exporter(), d[0], kT0, got); // the templates
        const std::size_t first = got.v.size();
        EXPECT_GT(first, 0u);
        for (std::size_t i = 1; i < d.size(); ++i)
            dec->decode(exporter(), d[i], kT0, got);
        EXPECT_EQ(got.v.size(), in.size());
    }
}

TEST(FlowDecoder, TemplatesExpireOverUdpNotOverTcp)
{
    const auto d = encode(flows(300), ExportFormat::Ipfix, BiflowMode::Rfc5103, 0);
    ASSERT_GT(d.size(), 1u);
    DecoderOptions o;
    o.template_timeout_ns = 10 * kSec;
    for (uint32_t session : {0u, 5u}) {
        auto dec = decoder(o);
        Flows got;
        dec->decode(exporter(1, session), d[0], kT0, got);
        const std::size_t n0 = got.v.size();
        dec->decode(exporter(1, session), d[1], kT0 + 5 * kSec, got);
        EXPECT_GT(got.v.size(), n0);
        const std::size_t n1 = got.v.size();
        dec->decode(exporter(1, session), d[2 % d.size()], kT0 + 20 * kSec, got);
        const FlowSourceStats s = stats_of(*dec);
        if (session == 0) {
            EXPECT_EQ(got.v.size(), n1);
            EXPECT_EQ(s.templates_expired, 2u); // the IPv4 and the IPv6 template
            EXPECT_GE(s.unknown_template, 2u);  // every data set of the datagram
        } else {
            EXPECT_GT(got.v.size(), n1);
            EXPECT_EQ(s.templates_expired, 0u);
        }
    }
}

/// Hand-built IPFIX messages.
struct Msg {
    Bytes b;
    std::size_t set_at = 0;
    Msg& u8(uint8_t v) { b.push_back(v); return *this; }
    Msg& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
    Msg& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
    Msg& u64(uint64_t v) { return u32(uint32_t(v >> 32)).u32(uint32_t(v)); }
    Msg& raw(std::initializer_list<uint8_t> l) { b.insert(b.end(), l); return *this; }
    static Msg ipfix(uint32_t seq, uint32_t domain = 1)
    {
        Msg m;
        m.u16(10).u16(0).u32(1700000000).u32(seq).u32(domain);
        return m;
    }
    Msg& set(uint16_t id) { set_at = b.size(); return u16(id).u16(0); }
    Msg& end_set()
    {
        const auto len = uint16_t(b.size() - set_at);
        b[set_at + 2] = uint8_t(len >> 8);
        b[set_at + 3] = uint8_t(len);
        return *this;
    }
    Bytes done()
    {
        b[2] = uint8_t(b.size() >> 8);
        b[3] = uint8_t(b.size());
        return b;
    }
};

TEST(FlowDecoder, IpfixVariableLengthEnterpriseAndPadding)
{
    Msg m = Msg::ipfix(0);
    // Template 300: src/dst v4, unknown PEN element (4 bytes), applicationName
    // (96, variable), octets in 4 bytes (reduced size), packets, proto,
    // flowStartSeconds, flowEndSeconds, a variable-length ntop element.
    m.set(2).u16(300).u16(10)
        .u16(8).u16(4).u16(12).u16(4)
        .u16(0x8000 | 77).u16(4).u32(12345)
        .u16(96).u16(65535)
        .u16(1).u16(4).u16(2).u16(2).u16(4).u16(1)
        .u16(150).u16(4).u16(151).u16(4)
        .u16(0x8000 | 123).u16(65535).u32(35632)
        .end_set();
    m.set(300);
    // record 1: short variable-length forms
    m.raw({10, 0, 0, 1, 10, 0, 0, 2}).u32(0xdeadbeef).u8(3).raw({'d', 'n', 's'})
        .u32(1000).u16(10).u8(17).u32(1700000000).u32(1700000005).u8(0);
    // record 2: the 255 + u16 form, 300 bytes
    m.raw({10, 0, 0, 3, 10, 0, 0, 4}).u32(0).u8(255).u16(300);
    for (int i = 0; i < 300; ++i)
        m.u8('x');
    m.u32(2000).u16(20).u8(6).u32(1700000001).u32(1700000002).u8(1).u8('z');
    m.raw({0, 0, 0}); // padding
    m.end_set();
    auto dec = decoder();
    Flows got;
    ASSERT_EQ(dec->decode(exporter(), m.done(), kT0, got), DecodeStatus::Ok);
    ASSERT_EQ(got.v.size(), 2u);
    EXPECT_EQ(got.v[0].dir[0].bytes, 1000u);
    EXPECT_EQ(got.v[0].dir[0].packets, 10u);
    EXPECT_EQ(got.v[0].key.proto, 17);
    EXPECT_EQ(got.v[0].dir[0].first_ns, 1700000000ULL * kSec);
    EXPECT_EQ(got.v[0].dir[0].last_ns, 1700000005ULL * kSec);
    EXPECT_EQ(got.v[1].dir[0].bytes, 2000u);
    EXPECT_EQ(got.v[1].client_addr()[3], 3);
    EXPECT_EQ(got.v[1].dir[1].packets, 0u); // one-way stays one-way
    const FlowSourceStats s = stats_of(*dec);
    EXPECT_EQ(s.malformed, 0u);
    EXPECT_EQ(s.data_records, 2u);

    // Next message: sequence says 2 records came before; withdraw 300, then
    // data for it is unknown.
    Msg w = Msg::ipfix(2);
    w.set(2).u16(300).u16(0).end_set();
    w.set(300).raw({10, 0, 0, 1, 10, 0, 0, 2}).u32(0).u8(0).u32(1).u16(1).u8(6).u32(0).u32(0).u8(0).end_set();
    EXPECT_EQ(dec->decode(exporter(), w.done(), kT0, got), DecodeStatus::Ok);
    EXPECT_EQ(got.v.size(), 2u);
    const FlowSourceStats s2 = stats_of(*dec);
    EXPECT_EQ(s2.template_withdrawals, 1u);
    EXPECT_EQ(s2.unknown_template, 1u);
    EXPECT_EQ(s2.sequence_gaps, 0u);
}

TEST(FlowDecoder, IpfixWithdrawAllAndOptions)
{
    Msg m = Msg::ipfix(0);
    m.set(2).u16(256).u16(2).u16(8).u16(4).u16(12).u16(4).u16(257).u16(1).u16(8).u16(4).end_set();
    // options template 400: scope observationDomainId, exportedMessageTotalCount
    m.set(3).u16(400).u16(2).u16(1).u16(149).u16(4).u16(41).u16(8).end_set();
    m.set(400).u32(1).u64(99).end_set();
    auto dec = decoder();
    Flows got;
    EXPECT_EQ(dec->decode(exporter(), m.done(), kT0, got), DecodeStatus::Ok);
    FlowSourceStats s = stats_of(*dec);
    EXPECT_EQ(s.templates, 2u);
    EXPECT_EQ(s.options_records, 1u);
    EXPECT_TRUE(got.v.empty());
    Msg w = Msg::ipfix(1);
    w.set(2).u16(2).u16(0).end_set(); // all data templates
    EXPECT_EQ(dec->decode(exporter(), w.done(), kT0, got), DecodeStatus::Ok);
    s = stats_of(*dec);
    EXPECT_EQ(s.template_withdrawals, 2u);
    uint32_t live = 0;
    dec->for_each_source([&](const FlowSourceInfo& i) { live += i.live_templates; });
    EXPECT_EQ(live, 1u); // the options template stays
}

TEST(FlowDecoder, V9OptionsTemplateAndPadding)
{
    Msg m;
    // v9 header: count 4, sysUptime 10 s, unix secs, sequence 0, source id 3
    m.u16(9).u16(4).u32(10000).u32(1700000000).u32(0).u32(3);
    // options template 300: scope System (1, 4 bytes), SAMPLING_INTERVAL (34, 4); padded to 4
    m.set(1).u16(300).u16(4).u16(4).u16(1).u16(4).u16(34).u16(4).u16(0).end_set();
    m.set(300).u32(1).u32(100).end_set();
    // template 256: src, dst, bytes (4), packets (4), proto, first/last switched
    m.set(0).u16(256).u16(7).u16(8).u16(4).u16(12).u16(4).u16(1).u16(4).u16(2).u16(4).u16(4).u16(1)
        .u16(22).u16(4).u16(21).u16(4).end_set();
    m.set(256).raw({10, 0, 0, 1, 10, 0, 0, 2}).u32(1500).u32(3).u8(17).u32(8000).u32(9000).raw({0, 0, 0}).end_set();
    auto dec = decoder();
    Flows got;
    ASSERT_EQ(dec->decode(exporter(), m.b, kT0, got), DecodeStatus::Ok);
    ASSERT_EQ(got.v.size(), 1u);
    EXPECT_EQ(got.v[0].dir[0].bytes, 1500u);
    EXPECT_EQ(got.v[0].dir[0].packets, 3u);
    // First 8 s after boot, export at 10 s after boot = 1700000000 s.
    EXPECT_EQ(got.v[0].dir[0].first_ns, 1700000000ULL * kSec - 2 * kSec);
    EXPECT_EQ(got.v[0].dir[0].last_ns, 1700000000ULL * kSec - 1 * kSec);
    const FlowSourceStats s = stats_of(*dec);
    EXPECT_EQ(s.options_records, 1u);
    EXPECT_EQ(s.malformed, 0u);
    uint32_t domain = 0;
    dec->for_each_source([&](const FlowSourceInfo& i) { domain = i.domain; });
    EXPECT_EQ(domain, 3u);
}

TEST(FlowDecoder, SequenceGapsPerFormat)
{
    const auto in = flows(400);
    for (ExportFormat f : {ExportFormat::NetflowV5, ExportFormat::NetflowV9, ExportFormat::Ipfix}) {
        const auto d = encode(in, f, BiflowMode::OneWay, 1);
        ASSERT_GT(d.size(), 4u);
        auto dec = decoder();
        Flows got;
        std::size_t skipped_flows = 0;
        for (std::size_t i = 0; i < d.size(); ++i) {
            if (i == 2) { // lose one datagram
                auto probe = decoder();
                Flows tmp;
                probe->decode(exporter(), d[0], kT0, tmp); // templates
                tmp.v.clear();
                probe->decode(exporter(), d[i], kT0, tmp);
                skipped_flows = tmp.v.size();
                continue;
            }
            dec->decode(exporter(), d[i], kT0, got);
        }
        const FlowSourceStats s = stats_of(*dec);
        EXPECT_EQ(s.sequence_gaps, 1u) << export_format_name(f);
        EXPECT_EQ(s.sequence_lost, f == ExportFormat::NetflowV9 ? 1u : skipped_flows) << export_format_name(f);
        EXPECT_EQ(s.sequence_resets, 0u);
    }
}

TEST(FlowDecoder, SourcesAreKeptApartAndCapped)
{
    const auto d = encode(flows(50), ExportFormat::Ipfix, BiflowMode::Rfc5103);
    DecoderOptions o;
    o.max_sources = 2;
    auto dec = decoder(o);
    Flows got;
    EXPECT_EQ(dec->decode(exporter(1), d[0], kT0, got), DecodeStatus::Ok);
    EXPECT_EQ(dec->decode(exporter(2), d[0], kT0, got), DecodeStatus::Ok);
    EXPECT_EQ(dec->decode(exporter(3), d[0], kT0, got), DecodeStatus::SourceRefused);
    EXPECT_EQ(dec->totals().sources_refused, 1u);
    EXPECT_EQ(dec->source_count(), 2u);
    // A TCP session that ended makes room.
    EXPECT_EQ(dec->decode(exporter(1, 9), d[0], kT0, got), DecodeStatus::SourceRefused);
    DecoderOptions o3;
    o3.max_sources = 1;
    auto dec3 = decoder(o3);
    EXPECT_EQ(dec3->decode(exporter(1, 9), d[0], kT0, got), DecodeStatus::Ok);
    dec3->end_session(exporter(1, 9));
    EXPECT_EQ(dec3->decode(exporter(2, 10), d[0], kT0, got), DecodeStatus::Ok);
}

TEST(FlowDecoder, TemplateCapAndUselessTemplates)
{
    DecoderOptions o;
    o.max_templates = 3;
    auto dec = decoder(o);
    Msg m = Msg::ipfix(0);
    m.set(2);
    for (uint16_t id = 256; id < 262; ++id)
        m.u16(id).u16(1).u16(8).u16(4);
    m.u16(300).u16(2).u16(8).u16(0).u16(12).u16(0); // zero-length fields only: refused
    m.end_set();
    Flows got;
    EXPECT_EQ(dec->decode(exporter(), m.done(), kT0, got), DecodeStatus::Ok);
    const FlowSourceStats s = stats_of(*dec);
    EXPECT_EQ(s.templates, 7u);
    EXPECT_EQ(s.templates_refused, 4u);
    // Data for the zero-length template cannot loop forever: unknown.
    Msg d = Msg::ipfix(0);
    d.set(300).u32(0).end_set();
    EXPECT_EQ(dec->decode(exporter(), d.done(), kT0, got), DecodeStatus::Ok);
    EXPECT_EQ(stats_of(*dec).unknown_template, 1u);
}

TEST(FlowDecoder, AbsurdLengthsAreCounted)
{
    auto dec = decoder();
    Flows got;
    // IPFIX length field larger than the message.
    Bytes b = Msg::ipfix(0).done();
    b[2] = 0xff;
    EXPECT_EQ(dec->decode(exporter(), b, kT0, got), DecodeStatus::BadLength);
    // Set longer than the message.
    Msg m = Msg::ipfix(0);
    m.set(2).u16(256).u16(1).u16(8).u16(4);
    Bytes x = m.done();
    x[18] = 0xff;
    EXPECT_EQ(dec->decode(exporter(), x, kT0, got), DecodeStatus::Malformed);
    // Template with 65535 fields in a small set.
    Msg t = Msg::ipfix(0);
    t.set(2).u16(256).u16(65535).u16(8).u16(4).end_set();
    EXPECT_EQ(dec->decode(exporter(), t.done(), kT0, got), DecodeStatus::Malformed);
    // Variable-length field whose length runs past the set.
    Msg v = Msg::ipfix(0);
    v.set(2).u16(256).u16(2).u16(8).u16(4).u16(96).u16(65535).end_set();
    v.set(256).raw({1, 2, 3, 4}).u8(255).u16(60000).raw({1, 2}).end_set();
    EXPECT_EQ(dec->decode(exporter(), v.done(), kT0, got), DecodeStatus::Malformed);
    // v5 count beyond the datagram.
    Bytes v5(24 + 48, 0);
    v5[1] = 5;
    v5[3] = 30;
    EXPECT_EQ(dec->decode(exporter(), v5, kT0, got), DecodeStatus::BadLength);
    EXPECT_EQ(dec->decode(exporter(), Bytes{0, 7, 1, 2}, kT0, got), DecodeStatus::BadVersion);
    EXPECT_EQ(dec->decode(exporter(), Bytes{0}, kT0, got), DecodeStatus::TooShort);
    EXPECT_TRUE(got.v.empty());
    EXPECT_GE(stats_of(*dec).malformed, 3u);
}

TEST(FlowDecoder, TruncatedAndGarbageNeverCrash)
{
    auto in = flows(200);
    // Some with ntop L7 fields: IPFIX variable-length strings, v9 fixed ones.
    for (std::size_t i = 0; i < in.size(); i += 3) {
        L7Info& l = in[i].l7;
        l.app = 91;
        std::memcpy(l.name, "TLS", 4);
        std::memset(l.server_name, 'a', sizeof(l.server_name) - 1);
        std::memset(l.url, 'u', sizeof(l.url) - 1);
    }
    std::mt19937 rng(42);
    for (ExportFormat f : {ExportFormat::NetflowV5, ExportFormat::NetflowV9, ExportFormat::Ipfix}) {
        const auto d = encode(in, f, BiflowMode::Rfc5103);
        auto dec = decoder();
        Flows got;
        dec->decode(exporter(), d[0], kT0, got);
        for (const Bytes& x : d) {
            for (std::size_t n = 0; n < x.size(); n += 7) {
                Bytes cut(x.begin(), x.begin() + static_cast<long>(n));
                dec->decode(exporter(), cut, kT0, got);
            }
            for (int k = 0; k < 50; ++k) {
                Bytes y = x;
                for (int j = 0; j < 4; ++j)
                    y[4 + rng() % (y.size() - 4)] = static_cast<uint8_t>(rng());
                dec->decode(exporter(), y, kT0, got);
            }
        }
        for (int k = 0; k < 2000; ++k) {
            Bytes g(rng() % 300);
            for (auto& c : g)
                c = static_cast<uint8_t>(rng());
            if (g.size() >= 2) {
                g[0] = 0;
                g[1] = static_cast<uint8_t>(k % 3 == 0 ? 5 : k % 3 == 1 ? 9 : 10);
            }
            dec->decode(exporter(uint8_t(k % 4)), g, kT0, got);
        }
        EXPECT_GT(stats_of(*dec).malformed + dec->totals().bad_length + dec->totals().too_short, 0u);
    }
}

// --- FlowListener ---------------------------------------------------------------

int connect_tcp(uint16_t port)
{
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void pump(FlowListener& l, Flows& got, std::size_t want, int max_ms = 3000)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    while (got.v.size() < want && std::chrono::steady_clock::now() < until)
        l.poll(20, got);
}

TEST(FlowListener, SpecSyntax)
{
    EXPECT_TRUE(parse_listen_spec("udp://127.0.0.1:2055").ok());
    EXPECT_TRUE(parse_listen_spec("udp://[::1]:2055").ok());
    EXPECT_TRUE(parse_listen_spec("tcp://*:4739").ok());
    EXPECT_FALSE(parse_listen_spec("udp://::1:2055").ok());
    EXPECT_FALSE(parse_listen_spec("sctp://127.0.0.1:1").ok());
    EXPECT_FALSE(parse_listen_spec("udp://127.0.0.1:99999").ok());
    EXPECT_FALSE(parse_listen_spec("udp://host.example:2055").ok());
}

TEST(FlowListener, UdpAndTcpOnLoopback)
{
    ListenerOptions o;
    o.listen = {parse_listen_spec("udp://127.0.0.1:0").value(), parse_listen_spec("tcp://127.0.0.1:0").value()};
    auto lr = FlowListener::create(o);
    ASSERT_TRUE(lr.ok()) << lr.error().message();
    FlowListener& l = *lr.value();
    const auto ports = l.ports();
    ASSERT_EQ(ports.size(), 2u);

    const auto in = flows(300);
    const auto d = encode(in, ExportFormat::Ipfix, BiflowMode::Rfc5103);
    // UDP
    const int u = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(ports[0]);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (const Bytes& x : d)
        ASSERT_EQ(sendto(u, x.data(), x.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)), ssize_t(x.size()));
    close(u);
    Flows got;
    pump(l, got, in.size());
    EXPECT_EQ(got.v.size(), in.size());
    EXPECT_EQ(l.stats().datagrams, d.size());

    // TCP: the same messages as one stream written in odd-sized pieces.
    Bytes stream;
    for (const Bytes& x : d)
        stream.insert(stream.end(), x.begin(), x.end());
    const int t = connect_tcp(ports[1]);
    ASSERT_GE(t, 0);
    for (std::size_t off = 0; off < stream.size();) {
        const std::size_t n = std::min<std::size_t>(333, stream.size() - off);
        ASSERT_EQ(send(t, stream.data() + off, n, 0), ssize_t(n));
        off += n;
        l.poll(0, got);
    }
    pump(l, got, 2 * in.size());
    EXPECT_EQ(got.v.size(), 2 * in.size());
    EXPECT_EQ(l.stats().tcp_messages, d.size());
    // A bad header closes the connection.
    const uint8_t junk[16] = {0, 10, 0, 3};
    ASSERT_EQ(send(t, junk, sizeof(junk), 0), 16);
    for (int i = 0; i < 100 && l.stats().tcp_bad_length == 0; ++i)
        l.poll(10, got);
    EXPECT_EQ(l.stats().tcp_bad_length, 1u);
    char c;
    EXPECT_EQ(recv(t, &c, 1, 0), 0); // closed by the collector
    close(t);
    // UDP source and TCP session are two sources.
    EXPECT_EQ(l.decoder().source_count(), 2u);
}

TEST(FlowListener, TcpCloseReadsWhatTheExporterSendsUntilItCloses)
{
    ListenerOptions o;
    o.listen = {parse_listen_spec("tcp://127.0.0.1:0").value()};
    auto lr = FlowListener::create(o);
    ASSERT_TRUE(lr.ok()) << lr.error().message();
    FlowListener& l = *lr.value();
    const uint16_t port = l.ports()[0];
    const auto in = flows(40);
    const auto d = encode(in, ExportFormat::Ipfix, BiflowMode::Rfc5103);
    ASSERT_GE(d.size(), 2u);
    const int t = connect_tcp(port);
    ASSERT_GE(t, 0);
    Flows got;
    for (int i = 0; i < 100 && l.tcp_connections() == 0; ++i)
        l.poll(10, got);
    ASSERT_EQ(l.tcp_connections(), 1u);

    // The exporter writes its first message, then the rest once it has seen
    // the collector's FIN, then closes: the collector, already ending, reads
    // it all.
    ASSERT_EQ(send(t, d[0].data(), d[0].size(), 0), ssize_t(d[0].size()));
    std::thread exporter([&] {
        char c;
        const ssize_t eof = recv(t, &c, 1, 0); // blocks until the FIN
        for (std::size_t i = 1; i < d.size() && eof == 0; ++i)
            send(t, d[i].data(), d[i].size(), MSG_NOSIGNAL);
        close(t);
    });
    l.close_tcp(5000, got);
    exporter.join();
    EXPECT_EQ(got.v.size(), in.size());
    EXPECT_EQ(l.stats().tcp_messages, d.size());
    EXPECT_EQ(l.stats().tcp_closed, 1u);
    EXPECT_EQ(l.stats().tcp_abandoned, 0u);
    EXPECT_EQ(l.tcp_connections(), 0u);
    // No longer listening.
    EXPECT_LT(connect_tcp(port), 0);
}

TEST(FlowListener, TcpCloseGivesUpOnAnExporterThatStaysOpen)
{
    ListenerOptions o;
    o.listen = {parse_listen_spec("tcp://127.0.0.1:0").value()};
    auto lr = FlowListener::create(o);
    ASSERT_TRUE(lr.ok()) << lr.error().message();
    FlowListener& l = *lr.value();
    const int t = connect_tcp(l.ports()[0]);
    ASSERT_GE(t, 0);
    Flows got;
    for (int i = 0; i < 100 && l.tcp_connections() == 0; ++i)
        l.poll(10, got);
    ASSERT_EQ(l.tcp_connections(), 1u);
    const auto t0 = std::chrono::steady_clock::now();
    l.close_tcp(200, got);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 190);
    EXPECT_LT(ms, 3000);
    EXPECT_EQ(l.stats().tcp_abandoned, 1u);
    EXPECT_EQ(l.tcp_connections(), 0u);
    close(t);
}

} // namespace
