// STUN for micro-DPI: RFC 5769's sample request, hand-built messages for
// each of nDPI 4.2's attribute rules, classic RFC 3489 messages, TCP in
// place and behind RFC 4571's length, rejections and every truncation; the
// DpiStage naming flows "STUN" / "STUN.Sub" (nDPI's ids) with REALM as the
// host name; and DTLS 1.3 (RFC 9147): a hello offering 0xfefc, and unified
// header records that must not be read as DTLSPlaintext.
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/stun.hpp>
#include <weir/engine/dpi/tls.hpp>
#include <weir/engine/dpi_stage.hpp>

#include <gtest/gtest.h>

#include "dpi_bytes.hpp"

#include <cstring>
#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;
using namespace weir::test;

struct Attr {
    uint16_t type;
    Buf value;
};

Buf text(const std::string& s) { return {s.begin(), s.end()}; }

/// A STUN message; `cookie` false gives RFC 3489's form (random first 32
/// bits of the transaction ID instead).
Buf stun(uint16_t type, const std::vector<Attr>& attrs, bool cookie = true)
{
    Buf body;
    for (const auto& a : attrs) {
        put16(body, a.type);
        put16(body, static_cast<uint16_t>(a.value.size()));
        body.insert(body.end(), a.value.begin(), a.value.end());
        while (body.size() % 4)
            body.push_back(0);
    }
    Buf m;
    put16(m, type);
    put16(m, static_cast<uint16_t>(body.size()));
    if (cookie)
        m.insert(m.end(), {0x21, 0x12, 0xa4, 0x42});
    else
        m.insert(m.end(), {0x5a, 0x17, 0x03, 0x99});
    for (uint8_t i = 0; i < 12; ++i)
        m.push_back(static_cast<uint8_t>(0xb0 + i));
    m.insert(m.end(), body.begin(), body.end());
    return m;
}

// RFC 5769 §2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED,
// USERNAME, MESSAGE-INTEGRITY, FINGERPRINT).
const Buf kRfc5769Request = hex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf");

TEST(DpiStun, Rfc5769SampleRequest)
{
    dpi::StunMessage m;
    ASSERT_EQ(dpi::parse_stun(kRfc5769Request, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.type, 0x0001);
    EXPECT_EQ(m.method(), 0x0001);
    EXPECT_EQ(m.length, 0x58);
    EXPECT_EQ(m.classic, 0);
    EXPECT_EQ(m.attributes, 6);
    EXPECT_EQ(m.software.view(), "STUN test client");
    EXPECT_EQ(m.username.view(), "evtj:h6vY");
    EXPECT_TRUE(m.realm.empty());
    EXPECT_EQ(m.sub, dpi::AppProtocol::Unknown);
    EXPECT_EQ(m.transaction_id[0], 0xb7);
    EXPECT_EQ(m.transaction_id[11], 0xae);

    EXPECT_TRUE(dpi::stun_may_be(kRfc5769Request));
    // Every cut: the length no longer fills the datagram.
    for (std::size_t n = 0; n < kRfc5769Request.size(); ++n) {
        EXPECT_EQ(dpi::parse_stun({kRfc5769Request.data(), n}, m), dpi::ParseStatus::NotMatched) << n;
        EXPECT_FALSE(dpi::stun_may_be({kRfc5769Request.data(), n})) << n;
    }
    // Trailing bytes over UDP: not STUN (nDPI wants the message to fill it).
    Buf longer = kRfc5769Request;
    longer.insert(longer.end(), 4, 0);
    EXPECT_EQ(dpi::parse_stun(longer, m), dpi::ParseStatus::NotMatched);
}

TEST(DpiStun, RealmAndSubClassification)
{
    struct Case {
        uint16_t type;
        std::vector<Attr> attrs;
        dpi::AppProtocol want;
    };
    const std::vector<Case> cases = {
        {0x0113, {{0x0014, text("turn.l.google.com")}}, dpi::AppProtocol::GoogleHangoutDuo},
        {0x0113, {{0x0014, text("whispersystems.org")}}, dpi::AppProtocol::SignalVoip},
        {0x0113, {{0x0014, text("signal.org")}}, dpi::AppProtocol::SignalVoip},
        {0x0113, {{0x0014, text("turner.facebook")}}, dpi::AppProtocol::FacebookVoip},
        {0x0113, {{0x0014, text("apps-host.com")}}, dpi::AppProtocol::Unknown},
        {0x0001, {{0x0103, Buf(4, 1)}}, dpi::AppProtocol::Zoom},
        {0x0001, {{0x4000, Buf(4, 0)}}, dpi::AppProtocol::WhatsAppCall},
        {0x0101, {{0x4002, Buf(8, 0)}}, dpi::AppProtocol::WhatsAppCall},
        {0x0001, {{0x8054, {7, 0, 0, 0}}}, dpi::AppProtocol::SkypeCall},
        {0x0001, {{0x8054, {7, 1, 0, 0}}}, dpi::AppProtocol::Unknown},
        {0x0001, {{0x8070, {0, 0, 0, 2}}}, dpi::AppProtocol::SkypeCall},
        {0x0001, {{0x8070, {0, 0, 0, 4}}}, dpi::AppProtocol::Unknown},
        {0x0001, {{0x8006, Buf(4, 0)}}, dpi::AppProtocol::SkypeCall},
        {0x0001, {{0x24DF, Buf(4, 0)}}, dpi::AppProtocol::SkypeCall},
        {0x0001, {{0xFF03, Buf(4, 0)}}, dpi::AppProtocol::GoogleHangoutDuo},
        {0x0001, {{0xC057, Buf(4, 0)}, {0x0022, Buf(92, 0)}}, dpi::AppProtocol::FacebookVoip}, // length 100
        {0x0001, {{0xC057, Buf(4, 0)}}, dpi::AppProtocol::Unknown},
        {0x0101, {{0xC057, Buf(4, 0)}, {0x0022, Buf(92, 0)}}, dpi::AppProtocol::Unknown}, // not a request
        // First rule in attribute order wins.
        {0x0001, {{0x8022, text("x")}, {0x0103, Buf(4, 0)}, {0x4000, Buf(4, 0)}}, dpi::AppProtocol::Zoom},
        {0x0800, {{0x8022, text("x")}}, dpi::AppProtocol::WhatsAppCall},
        // TURN methods: Allocate, Refresh, Send indication, ChannelBind, ConnectionAttempt.
        {0x0003, {}, dpi::AppProtocol::Unknown},
        {0x0004, {}, dpi::AppProtocol::Unknown},
        {0x0016, {{0x0012, Buf(8, 0)}}, dpi::AppProtocol::Unknown},
        {0x0109, {}, dpi::AppProtocol::Unknown},
        {0x001c, {}, dpi::AppProtocol::Unknown},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const Buf b = stun(cases[i].type, cases[i].attrs);
        dpi::StunMessage m;
        ASSERT_EQ(dpi::parse_stun(b, m), dpi::ParseStatus::Ok) << i;
        EXPECT_EQ(m.sub, cases[i].want) << i;
        EXPECT_EQ(m.attributes, cases[i].attrs.size()) << i;
    }
    dpi::StunMessage m;
    ASSERT_EQ(dpi::parse_stun(stun(0x0113, {{0x0009, Buf(4, 0)}, {0x0014, text("turn.l.google.com")}}), m),
              dpi::ParseStatus::Ok);
    EXPECT_EQ(m.realm.view(), "turn.l.google.com");
}

TEST(DpiStun, ClassicRfc3489)
{
    dpi::StunMessage m;
    // Binding request with CHANGE-REQUEST; Binding response with
    // MAPPED-ADDRESS and SOURCE-ADDRESS.
    ASSERT_EQ(dpi::parse_stun(stun(0x0001, {{0x0003, Buf(4, 0)}}, false), m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.classic, 1);
    ASSERT_EQ(dpi::parse_stun(stun(0x0101, {{0x0001, Buf(8, 1)}, {0x0004, Buf(8, 2)}}, false), m),
              dpi::ParseStatus::Ok);
    EXPECT_EQ(m.attributes, 2);
    // Without the cookie: empty, a type 3489 did not have, or attributes
    // that do not tile the message.
    EXPECT_EQ(dpi::parse_stun(stun(0x0001, {}, false), m), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_stun(stun(0x0003, {{0x0003, Buf(4, 0)}}, false), m), dpi::ParseStatus::NotMatched);
    Buf bad = stun(0x0001, {{0x0003, Buf(4, 0)}}, false);
    bad[23] = 8; // CHANGE-REQUEST claims 8 bytes of 4
    EXPECT_EQ(dpi::parse_stun(bad, m), dpi::ParseStatus::Malformed);
    // With the cookie the header vouches: the walk stops at such an attribute.
    Buf ok = stun(0x0001, {{0x0003, Buf(4, 0)}, {0x8022, text("abcd")}});
    ok[31] = 40;
    ASSERT_EQ(dpi::parse_stun(ok, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.attributes, 1);
    EXPECT_TRUE(m.software.empty());
}

TEST(DpiStun, NotStun)
{
    dpi::StunMessage m;
    Buf b = stun(0x0001, {{0x0003, Buf(4, 0)}});
    Buf t = b;
    t[0] |= 0x40; // top bits set (RTP, QUIC, ...)
    EXPECT_EQ(dpi::parse_stun(t, m), dpi::ParseStatus::NotMatched);
    t = b;
    t[3] = 6; // length not a multiple of 4
    EXPECT_EQ(dpi::parse_stun(t, m), dpi::ParseStatus::NotMatched);
    t = b;
    t[1] = 0x0f; // method 0x00f: not one STUN/TURN defines
    EXPECT_EQ(dpi::parse_stun(t, m), dpi::ParseStatus::NotMatched);
    t = b;
    t[0] = 0;
    t[1] = 0; // method 0
    EXPECT_EQ(dpi::parse_stun(t, m), dpi::ParseStatus::NotMatched);
    // RTP, a DNS query, a DTLS record.
    EXPECT_EQ(dpi::parse_stun(hex("80e0a1b200001f40deadbeef00000000000000000000000000000000"), m),
              dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_stun(hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001"), m),
              dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_stun(hex("16fefd000000000000000000080100000000000000"), m), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_stun({}, m), dpi::ParseStatus::NotMatched);
}

TEST(DpiStun, Tcp)
{
    dpi::StunMessage m;
    // RFC 5389 over TCP: in place, another message may follow.
    Buf two = stun(0x0001, {{0x8022, text("first")}});
    const Buf second = stun(0x0101, {{0x0020, Buf(8, 0)}});
    two.insert(two.end(), second.begin(), second.end());
    ASSERT_EQ(dpi::parse_stun_tcp(two, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.tcp_framed, 0);
    EXPECT_EQ(m.software.view(), "first");
    // RFC 4571 framing (ICE-TCP): a 2-byte length, then the message.
    const Buf msg = stun(0x0113, {{0x0014, text("apps-host.com")}});
    Buf framed;
    put16(framed, static_cast<uint16_t>(msg.size()));
    framed.insert(framed.end(), msg.begin(), msg.end());
    ASSERT_EQ(dpi::parse_stun_tcp(framed, m), dpi::ParseStatus::Ok);
    EXPECT_TRUE(dpi::stun_tcp_may_be(framed));
    EXPECT_TRUE(dpi::stun_tcp_may_be(two));
    EXPECT_EQ(m.tcp_framed, 1);
    EXPECT_EQ(m.realm.view(), "apps-host.com");
    // Several framed messages in one segment: the first is read.
    Buf more = framed;
    more.insert(more.end(), framed.begin(), framed.end());
    ASSERT_EQ(dpi::parse_stun_tcp(more, m), dpi::ParseStatus::Ok);
    EXPECT_EQ(m.realm.view(), "apps-host.com");
    // Classic STUN never ran in place over TCP.
    EXPECT_EQ(dpi::parse_stun_tcp(stun(0x0001, {{0x0003, Buf(4, 0)}}, false), m), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(dpi::parse_stun_tcp(text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), m),
              dpi::ParseStatus::NotMatched);
    for (std::size_t n = 0; n < framed.size(); ++n)
        EXPECT_NE(dpi::parse_stun_tcp({framed.data(), n}, m), dpi::ParseStatus::Ok) << n;
}

// ---------------------------------------------------------------- stage

weir::PacketMeta udp_meta(uint16_t port_a, uint16_t port_b, bool from_a)
{
    weir::PacketMeta m;
    m.key.ip_version = 4;
    m.key.proto = 17;
    m.key.addr_a = {10, 0, 0, 1};
    m.key.addr_b = {10, 0, 1, 1};
    m.key.port_a = port_a;
    m.key.port_b = port_b;
    m.hash = weir::flow_hash(m.key);
    m.src_is_a = from_a ? 1 : 0;
    m.l4_payload_offset = 42;
    m.l4_payload_len = 16;
    return m;
}

std::unique_ptr<weir::engine::DpiStage> stage()
{
    weir::engine::DpiConfig cfg;
    cfg.level = 1;
    cfg.max_flows = 64;
    cfg.max_inspections = 16;
    cfg.tls_streams = 4;
    auto s = weir::engine::DpiStage::create(cfg);
    EXPECT_TRUE(s);
    return s ? std::move(s.value()) : nullptr;
}

weir::FlowRecord finish(weir::engine::DpiStage& s, const weir::PacketMeta& m)
{
    weir::FlowRecord r;
    r.key = m.key;
    r.end_reason = weir::EndReason::IdleTimeout;
    s.finish(r);
    return r;
}

TEST(DpiStunStage, NamesAndRealm)
{
    auto s = stage();
    ASSERT_TRUE(s);
    // Plain STUN first, then the 401 with REALM, then a sub-classifying
    // attribute: "STUN.Zoom", which a later plain message keeps.
    const auto a = udp_meta(50000, 3478, true), b = udp_meta(50000, 3478, false);
    s->inspect(a, stun(0x0001, {{0x8022, text("client")}}));
    s->inspect(b, stun(0x0111, {{0x0014, text("Turn.Example.ORG")}, {0x0009, Buf(4, 0)}}));
    s->inspect(a, stun(0x0001, {{0x0103, Buf(4, 0)}}));
    s->inspect(a, stun(0x0001, {}));
    auto r = finish(*s, a);
    EXPECT_STREQ(r.l7.name, "STUN.Zoom");
    EXPECT_EQ(r.l7.master, 78);
    EXPECT_EQ(r.l7.app, 189);
    EXPECT_EQ(r.l7.guessed, 0);
    EXPECT_STREQ(r.l7.server_name, "turn.example.org");

    // Only plain messages: "STUN", id 78.
    const auto c = udp_meta(50002, 19302, true);
    s->inspect(c, stun(0x0001, {{0x0024, Buf(4, 0)}}));
    r = finish(*s, c);
    EXPECT_STREQ(r.l7.name, "STUN");
    EXPECT_EQ(r.l7.app, 78);
    EXPECT_EQ(r.l7.master, 0);
    EXPECT_EQ(s->stats().detected, 2u);
}

Buf dtls13_client_hello(const std::string& sni)
{
    Buf body;
    put16(body, 0xfefd); // legacy_version
    body.insert(body.end(), 32, 0x22);
    body.push_back(0); // session id
    body.push_back(0); // cookie
    put16(body, 4);
    put16(body, 0x1301);
    put16(body, 0x1302);
    body.push_back(1);
    body.push_back(0);
    Buf exts;
    {
        Buf d;
        put16(d, static_cast<uint16_t>(sni.size() + 3));
        d.push_back(0);
        put16(d, static_cast<uint16_t>(sni.size()));
        d.insert(d.end(), sni.begin(), sni.end());
        put16(exts, 0x0000);
        put16(exts, static_cast<uint16_t>(d.size()));
        exts.insert(exts.end(), d.begin(), d.end());
    }
    // supported_versions: DTLS 1.3 (0xfefc), 1.2.
    exts.insert(exts.end(), {0x00, 0x2b, 0x00, 0x05, 0x04, 0xfe, 0xfc, 0xfe, 0xfd});
    put16(body, static_cast<uint16_t>(exts.size()));
    body.insert(body.end(), exts.begin(), exts.end());
    // One DTLSPlaintext record, one unfragmented handshake message.
    Buf hs{dpi::kTlsHandshakeClientHello};
    put24(hs, static_cast<uint32_t>(body.size()));
    put16(hs, 0);                                       // message_seq
    put24(hs, 0);                                       // fragment_offset
    put24(hs, static_cast<uint32_t>(body.size()));      // fragment_length
    hs.insert(hs.end(), body.begin(), body.end());
    Buf r{22};
    put16(r, 0xfefd);
    put16(r, 0);
    r.insert(r.end(), 6, 0);
    put16(r, static_cast<uint16_t>(hs.size()));
    r.insert(r.end(), hs.begin(), hs.end());
    return r;
}

TEST(DpiDtls13, HelloOfferingDtls13)
{
    const Buf d = dtls13_client_hello("dtls13.example.net");
    ASSERT_TRUE(dpi::dtls_looks_handshake(d));
    dpi::HelloAssembler h;
    h.reset();
    dpi::DtlsDatagramInfo info;
    ASSERT_EQ(dpi::dtls_read_handshake(d, h, info), dpi::ParseStatus::Ok);
    EXPECT_EQ(info.version, 0xfefd); // the record's legacy version
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_client_hello_message(h.message(), dpi::TlsTransport::Dtls, ch), dpi::ParseStatus::Ok);
    EXPECT_EQ(ch.sni.view(), "dtls13.example.net");
    EXPECT_EQ(ch.supported_version, 0xfefc);
    EXPECT_EQ(std::string_view(ch.ja4).substr(0, 4), "dd3d");
    EXPECT_EQ(std::string_view(ch.ja4_foxio).substr(0, 4), "dd3d");

    // Through the stage: DTLS, the SNI, JA4 "dd3".
    auto s = stage();
    ASSERT_TRUE(s);
    const auto a = udp_meta(40000, 4433, true);
    s->inspect(a, d);
    auto r = finish(*s, a);
    EXPECT_STREQ(r.l7.name, "DTLS");
    EXPECT_STREQ(r.l7.server_name, "dtls13.example.net");
    EXPECT_EQ(std::string_view(r.l7.ja4).substr(0, 3), "dd3");
}

// A corrupt hello datagram that places no fragment (stun.pcap's Zoom flow
// sends one, then the hello whole): counted, and the direction stays open
// for the retransmission.
TEST(DpiDtlsStage, CorruptHelloThenRetransmission)
{
    const Buf good = dtls13_client_hello("retry.example.com");
    Buf bad = good;
    bad[13 + 9] = 0xff; // fragment_length past the record
    dpi::HelloAssembler h;
    h.reset();
    dpi::DtlsDatagramInfo info;
    ASSERT_EQ(dpi::dtls_read_handshake(bad, h, info), dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.fragments, 0);
    auto s = stage();
    ASSERT_TRUE(s);
    const auto a = udp_meta(48854, 8801, true);
    s->inspect(a, bad);
    EXPECT_EQ(s->stats().hello_gave_up, 1u);
    s->inspect(a, good);
    auto r = finish(*s, a);
    EXPECT_STREQ(r.l7.name, "DTLS");
    EXPECT_STREQ(r.l7.server_name, "retry.example.com");
    EXPECT_EQ(std::strlen(r.l7.ja3c), 32u);
}

TEST(DpiDtls13, UnifiedHeaderIsNotPlaintext)
{
    dpi::HelloAssembler h;
    dpi::DtlsDatagramInfo info;
    // Unified header records (001CSLEE) whose next bytes read as a DTLS
    // version and a length: not a handshake, not a record to skip by.
    for (uint8_t first : {0x20, 0x2c, 0x2f, 0x3f}) {
        Buf u{first, 0xfe, 0xfd, 0x00, 0x00, 0x16, 0xfe, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x10};
        u.insert(u.end(), 64, 0x5a);
        h.reset();
        EXPECT_FALSE(dpi::dtls_looks_handshake(u)) << int(first);
        EXPECT_EQ(dpi::dtls_read_handshake(u, h, info), dpi::ParseStatus::NotMatched) << int(first);
        dpi::StunMessage m;
        EXPECT_EQ(dpi::parse_stun(u, m), dpi::ParseStatus::NotMatched) << int(first);
    }
    // The hello followed in the same datagram by a unified-header record
    // claiming more bytes than are left: the hello is read, the rest not.
    Buf d = dtls13_client_hello("x.example");
    d.insert(d.end(), {0x2e, 0xfe, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 1, 2, 3});
    h.reset();
    ASSERT_EQ(dpi::dtls_read_handshake(d, h, info), dpi::ParseStatus::Ok);
    EXPECT_EQ(info.records, 1);
    // A first fragment, then a unified-header record: still waiting for
    // the rest of the hello, not malformed.
    Buf frag = dtls13_client_hello("y.example");
    const std::size_t body = frag.size() - 25;
    frag[13 + 11] = 0x10; // fragment_length 16 of body
    frag[13 + 10] = 0;
    frag[13 + 9] = 0;
    frag.resize(25 + 16);
    frag[11] = 0;
    frag[12] = 12 + 16;
    frag.insert(frag.end(), {0x2c, 0xfe, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 9});
    ASSERT_GT(body, 16u);
    h.reset();
    EXPECT_EQ(dpi::dtls_read_handshake(frag, h, info), dpi::ParseStatus::NeedMore);
}

} // namespace
