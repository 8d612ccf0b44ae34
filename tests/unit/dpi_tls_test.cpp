// TLS ClientHello / ServerHello parsing, JA3 / JA3S / JA4, and TlsStream
// reassembly, on hand-built handshakes. Fingerprints are checked against
// strings assembled here by the JA3 and JA4 definitions, hashed with the
// (separately tested) MD5 and SHA-256.
#include <weir/engine/dpi/hash.hpp>
#include <weir/engine/dpi/tls.hpp>
#include <weir/engine/dpi_stage.hpp>
#include <weir/core/ndpi_vocab.hpp>

#include <gtest/gtest.h>

#include "dpi_bytes.hpp"

#include <memory>
#include <span>

#include <cstdint>
#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;
using namespace weir::test;

/// Handshake header + body. (Built by appending: g++ 12 reports a false
/// -Warray-bounds on inserting after an initializer-list vector.)
Buf handshake(uint8_t type, const Buf& body)
{
    Buf msg;
    msg.reserve(4 + body.size());
    msg.push_back(type);
    msg.push_back(static_cast<uint8_t>(body.size() >> 16));
    put16(msg, static_cast<uint16_t>(body.size()));
    for (uint8_t b : body)
        msg.push_back(b);
    return msg;
}

/// A ClientHello handshake message (header included).
struct HelloSpec {
    uint16_t version = 0x0303;
    std::vector<uint16_t> ciphers = {0x0a0a, 0x1301, 0x1302, 0xc02b, 0x002f};
    std::string sni = "www.example.org";
    std::vector<std::string> alpn = {"h2", "http/1.1"};
    std::vector<uint16_t> groups = {0x2a2a, 0x001d, 0x0017};
    std::vector<uint8_t> point_formats = {0};
    std::vector<uint16_t> sig_algs = {0x0403, 0x0804, 0x0401};
    std::vector<uint16_t> versions = {0x3a3a, 0x0304, 0x0303};
    bool grease_ext = true;
};

Buf client_hello(const HelloSpec& s)
{
    Buf body;
    put16(body, s.version);
    body.insert(body.end(), 32, 0x11);
    body.push_back(0); // session id
    put16(body, static_cast<uint16_t>(s.ciphers.size() * 2));
    for (auto c : s.ciphers)
        put16(body, c);
    body.push_back(1);
    body.push_back(0);
    Buf exts;
    if (s.grease_ext)
        put_ext(exts, 0xdada, {});
    if (!s.sni.empty()) {
        Buf d;
        put16(d, static_cast<uint16_t>(s.sni.size() + 3));
        d.push_back(0);
        put16(d, static_cast<uint16_t>(s.sni.size()));
        d.insert(d.end(), s.sni.begin(), s.sni.end());
        put_ext(exts, 0x0000, d);
    }
    {
        Buf d;
        put16(d, static_cast<uint16_t>(s.groups.size() * 2));
        for (auto g : s.groups)
            put16(d, g);
        put_ext(exts, 0x000a, d);
    }
    {
        Buf d{static_cast<uint8_t>(s.point_formats.size())};
        d.insert(d.end(), s.point_formats.begin(), s.point_formats.end());
        put_ext(exts, 0x000b, d);
    }
    {
        Buf d;
        put16(d, static_cast<uint16_t>(s.sig_algs.size() * 2));
        for (auto a : s.sig_algs)
            put16(d, a);
        put_ext(exts, 0x000d, d);
    }
    if (!s.alpn.empty()) {
        Buf list;
        for (const auto& a : s.alpn) {
            list.push_back(static_cast<uint8_t>(a.size()));
            list.insert(list.end(), a.begin(), a.end());
        }
        Buf d;
        put16(d, static_cast<uint16_t>(list.size()));
        d.insert(d.end(), list.begin(), list.end());
        put_ext(exts, 0x0010, d);
    }
    if (!s.versions.empty()) {
        Buf d{static_cast<uint8_t>(s.versions.size() * 2)};
        for (auto v : s.versions)
            put16(d, v);
        put_ext(exts, 0x002b, d);
    }
    put16(body, static_cast<uint16_t>(exts.size()));
    body.insert(body.end(), exts.begin(), exts.end());
    return handshake(dpi::kTlsHandshakeClientHello, body);
}

/// Wraps handshake bytes into TLS records of at most `max_record` bytes.
Buf records(const Buf& hs, std::size_t max_record = 16384)
{
    Buf out;
    for (std::size_t pos = 0; pos < hs.size(); pos += max_record) {
        std::size_t n = std::min(max_record, hs.size() - pos);
        out.push_back(0x16);
        put16(out, 0x0301);
        put16(out, static_cast<uint16_t>(n));
        out.insert(out.end(), hs.begin() + static_cast<long>(pos), hs.begin() + static_cast<long>(pos + n));
    }
    return out;
}

std::string md5_hex(const std::string& s)
{
    dpi::Md5 h;
    h.update(s);
    auto d = h.finish();
    std::string out(32, '?');
    dpi::to_hex(d.data(), d.size(), out.data());
    return out;
}

std::string sha12(const std::string& s)
{
    dpi::Sha256 h;
    h.update(s);
    auto d = h.finish();
    std::string out(12, '?');
    dpi::to_hex(d.data(), 6, out.data());
    return out;
}

TEST(DpiTls, ClientHelloFieldsAndFingerprints)
{
    HelloSpec spec;
    Buf payload = records(client_hello(spec));
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_tls_client_hello(payload, ch), dpi::ParseStatus::Ok);
    EXPECT_EQ(ch.sni.view(), "www.example.org");
    EXPECT_EQ(ch.alpn.view(), "h2,http/1.1");
    EXPECT_EQ(ch.legacy_version, 0x0303);
    EXPECT_EQ(ch.supported_version, 0x0304);
    EXPECT_EQ(ch.cipher_count, 4); // GREASE skipped
    EXPECT_EQ(ch.extension_count, 6);

    // JA3: decimal, GREASE removed from ciphers, extensions and groups.
    EXPECT_EQ(std::string(ch.ja3), md5_hex("771,4865-4866-49195-47,0-10-11-13-16-43,29-23,0"));

    // JA4: t 13 d 04 06 h2 _ sorted ciphers _ sorted extensions w/o SNI and ALPN _ sig algs.
    std::string b = sha12("002f,1301,1302,c02b");
    std::string c = sha12("000a,000b,000d,002b_0403,0804,0401");
    EXPECT_EQ(std::string(ch.ja4_foxio), "t13d0406h2_" + b + "_" + c);
    EXPECT_EQ(std::string(ch.ja4), "t13d0406h2_" + b + "_" + c);
}

TEST(DpiTls, Ja4NdpiAndFoxioDiffer)
{
    HelloSpec spec;
    spec.sni = "10.1.2.3";
    spec.alpn = {"http/1.1"};
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_tls_client_hello(records(client_hello(spec)), ch), dpi::ParseStatus::Ok);
    EXPECT_EQ(std::string(ch.ja4_foxio).substr(0, 10), "t13d0406h1");
    EXPECT_EQ(std::string(ch.ja4).substr(0, 10), "t13i0406ht"); // IP-literal SNI, first two ALPN chars

    spec.sni.clear();
    ASSERT_EQ(dpi::parse_tls_client_hello(records(client_hello(spec)), ch), dpi::ParseStatus::Ok);
    EXPECT_EQ(std::string(ch.ja4_foxio).substr(0, 10), "t13i0405h1");
    EXPECT_EQ(std::string(ch.ja4).substr(0, 10), "t13d0405ht");
}

TEST(DpiTls, ServerHelloJa3s)
{
    Buf body;
    put16(body, 0x0303);
    body.insert(body.end(), 32, 0x22);
    body.push_back(0);
    put16(body, 0x1301);
    body.push_back(0);
    Buf exts;
    put_ext(exts, 0x002b, {0x03, 0x04});
    put_ext(exts, 0x0033, {0, 0x1d, 0, 0});
    put16(body, static_cast<uint16_t>(exts.size()));
    body.insert(body.end(), exts.begin(), exts.end());
    Buf msg = handshake(dpi::kTlsHandshakeServerHello, body);
    dpi::TlsServerHello sh;
    ASSERT_EQ(dpi::parse_tls_server_hello(records(msg), sh), dpi::ParseStatus::Ok);
    EXPECT_EQ(sh.cipher, 0x1301);
    EXPECT_EQ(sh.selected_version, 0x0304);
    EXPECT_EQ(std::string(sh.ja3s), md5_hex("771,4865,43-51"));
    dpi::TlsClientHello ch;
    EXPECT_EQ(dpi::parse_tls_client_hello(records(msg), ch), dpi::ParseStatus::NotMatched);

    // A warning alert (unrecognized_name) and a ChangeCipherSpec before the
    // ServerHello in the same segment (http_ipv6.pcap): skipped, as nDPI.
    Buf seg = {21, 3, 3, 0, 2, 1, 112, 20, 3, 3, 0, 1, 1};
    const Buf sh_rec = records(msg);
    seg.insert(seg.end(), sh_rec.begin(), sh_rec.end());
    EXPECT_EQ(dpi::parse_tls_server_hello(seg, sh), dpi::ParseStatus::NotMatched);
    const dpi::Bytes rest = dpi::tls_skip_leading_records(seg);
    EXPECT_EQ(rest.size(), sh_rec.size());
    ASSERT_EQ(dpi::parse_tls_server_hello(rest, sh), dpi::ParseStatus::Ok);
    EXPECT_EQ(std::string(sh.ja3s), md5_hex("771,4865,43-51"));
    // An alert cut by the segment end, or a handshake record first: unchanged.
    const Buf cut = {21, 3, 3, 0, 2, 1};
    EXPECT_EQ(dpi::tls_skip_leading_records(cut).size(), cut.size());
    EXPECT_EQ(dpi::tls_skip_leading_records(sh_rec).size(), sh_rec.size());
    EXPECT_TRUE(dpi::tls_skip_leading_records(dpi::Bytes(seg.data(), 7)).empty());
}

TEST(DpiTls, StreamReassemblesSplitRecordsAndSegments)
{
    HelloSpec spec;
    spec.sni = std::string(200, 'a') + ".example";
    Buf hs = client_hello(spec);
    dpi::TlsClientHello whole;
    ASSERT_EQ(dpi::parse_client_hello_message(hs, dpi::TlsTransport::Tcp, whole), dpi::ParseStatus::Ok);

    // Records of 100 bytes, delivered in segments of 7 bytes: headers and
    // bodies both straddle segment boundaries.
    Buf wire = records(hs, 100);
    dpi::TlsClientHello partial;
    dpi::ParseStatus single = dpi::parse_tls_client_hello(std::span(wire.data(), 7 * 20), partial);
    EXPECT_EQ(single, dpi::ParseStatus::NeedMore);

    auto stream = std::make_unique<dpi::TlsStream>();
    dpi::ParseStatus st = dpi::ParseStatus::NeedMore;
    std::size_t pos = 0;
    for (; pos < wire.size() && st == dpi::ParseStatus::NeedMore; pos += 7)
        st = stream->feed(std::span(wire.data() + pos, std::min<std::size_t>(7, wire.size() - pos)));
    ASSERT_EQ(st, dpi::ParseStatus::Ok);
    EXPECT_EQ(stream->message_type(), dpi::kTlsHandshakeClientHello);
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_client_hello_message(stream->message(), dpi::TlsTransport::Tcp, ch), dpi::ParseStatus::Ok);
    EXPECT_EQ(ch.sni.view(), std::string(200, 'a') + ".example");
    EXPECT_EQ(std::string(ch.ja3), std::string(whole.ja3));
    EXPECT_EQ(std::string(ch.ja4), std::string(whole.ja4));
}

TEST(DpiTls, StreamRejectsNonTlsAndOversizedMessages)
{
    auto stream = std::make_unique<dpi::TlsStream>();
    const uint8_t http[] = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
    EXPECT_EQ(stream->feed(http), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(stream->feed(http), dpi::ParseStatus::NotMatched); // sticky

    stream->reset();
    // A handshake header announcing 1 MiB: more than the stream holds.
    const uint8_t big[] = {0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x10, 0x00, 0x00, 0x03, 0x03, 0, 0};
    EXPECT_EQ(stream->feed(big), dpi::ParseStatus::Malformed);
}

TEST(DpiTls, MalformedLengthsAreRejectedNotRead)
{
    Buf hs = client_hello(HelloSpec{});
    dpi::TlsClientHello ch;
    // Every truncation of the message is NeedMore (header length says more),
    // never a read past the end (ASan checks the latter).
    for (std::size_t n = 0; n < hs.size(); ++n)
        EXPECT_EQ(dpi::parse_client_hello_message(std::span(hs.data(), n), dpi::TlsTransport::Tcp, ch),
                  dpi::ParseStatus::NeedMore)
            << n;
    // A cipher-suite length past the body is Malformed.
    Buf bad = hs;
    bad[4 + 2 + 32 + 1] = 0xff;
    EXPECT_EQ(dpi::parse_client_hello_message(bad, dpi::TlsTransport::Tcp, ch), dpi::ParseStatus::Malformed);
    // So is an extension length past the extension block.
    bad = hs;
    std::size_t ext_block = 4 + 2 + 32 + 1 + 2 + 10 + 2;
    bad[ext_block + 2 + 2] = 0xff; // first extension's length high byte
    EXPECT_EQ(dpi::parse_client_hello_message(bad, dpi::TlsTransport::Tcp, ch), dpi::ParseStatus::Malformed);
}

// --- risks micro-DPI flags, as nDPI 4.2's TLS dissector does ----------------

/// A ServerHello choosing `cipher`, wrapped in a record.
Buf server_hello_records(uint16_t cipher)
{
    Buf body;
    put16(body, 0x0303);
    body.insert(body.end(), 32, 0x22);
    body.push_back(0);
    put16(body, cipher);
    body.push_back(0);
    put16(body, 0);
    return records(handshake(dpi::kTlsHandshakeServerHello, body));
}

/// The risk bits and score of a TCP 443 flow after the given client and
/// server payloads go through a level-1 DpiStage.
std::pair<uint64_t, uint16_t> risks_of(const Buf& client, const Buf& server = {})
{
    weir::engine::DpiConfig c;
    c.level = 1;
    auto st = weir::engine::DpiStage::create(c);
    EXPECT_TRUE(st);
    if (!st)
        return {};
    weir::PacketMeta m;
    m.key.ip_version = 4;
    m.key.proto = 6;
    m.key.addr_a = {10, 0, 0, 1};
    m.key.addr_b = {10, 0, 1, 1};
    m.key.port_a = 50000;
    m.key.port_b = 443;
    m.hash = weir::flow_hash(m.key);
    m.src_is_a = 1;
    m.l4_payload_offset = 54;
    m.l4_payload_len = static_cast<uint16_t>(client.size());
    (*st)->inspect(m, client);
    if (!server.empty()) {
        m.src_is_a = 0;
        m.l4_payload_len = static_cast<uint16_t>(server.size());
        (*st)->inspect(m, server);
    }
    weir::FlowRecord r;
    r.key = m.key;
    r.client_is_a = 1;
    (*st)->finish(r);
    return {r.l7.risk, r.l7.risk_score};
}

constexpr uint64_t bit(unsigned b) { return 1ULL << b; }
namespace vr = weir::ndpi_vocab;

TEST(DpiTlsRisks, AModernHelloHasNone)
{
    HelloSpec spec;
    EXPECT_EQ(risks_of(records(client_hello(spec)), server_hello_records(0x1301)), (std::pair<uint64_t, uint16_t>{0, 0}));
}

TEST(DpiTlsRisks, ObsoleteVersionMissingSniNoAlpnAndWeakCipher)
{
    HelloSpec old;
    old.version = 0x0301; // TLS 1.0: obsolete; no ALPN needed below 1.2
    old.alpn.clear();
    old.versions.clear();
    EXPECT_EQ(risks_of(records(client_hello(old))).first, bit(vr::kRiskTlsObsoleteVersion));

    HelloSpec bare;
    bare.sni.clear();
    bare.alpn.clear();
    const auto [risk, score] = risks_of(records(client_hello(bare)), server_hello_records(0x002f));
    EXPECT_EQ(risk, bit(vr::kRiskTlsMissingSni) | bit(vr::kRiskTlsNotCarryingHttps) | bit(vr::kRiskTlsWeakCipher));
    EXPECT_EQ(score, 160) << "50 + 10 + 100, as ndpiReader prints for such a flow";

    // RC4 is "insecure" to nDPI, not "weak": its dissector flags weak only.
    EXPECT_EQ(risks_of(records(client_hello(HelloSpec{})), server_hello_records(0x0005)).first, 0u);
    EXPECT_EQ(dpi::tls_cipher_safety(0x0005), 2);
    EXPECT_EQ(dpi::tls_cipher_safety(0x009c), 1);
    EXPECT_EQ(dpi::tls_cipher_safety(0xc02f), 0);
}

TEST(DpiTlsRisks, EncryptedSniIsNotMissingSni)
{
    HelloSpec spec;
    spec.sni.clear();
    Buf hs = client_hello(spec);
    // Append an ESNI extension (cipher suite, group, 32-byte key share,
    // 32-byte record digest, 40-byte encrypted name) and a padding one, as
    // Firefox sent them.
    Buf esni;
    put16(esni, 0x1301);
    put16(esni, 0x001d);
    put16(esni, 32);
    esni.insert(esni.end(), 32, 0x33);
    put16(esni, 32);
    esni.insert(esni.end(), 32, 0x44);
    put16(esni, 40);
    esni.insert(esni.end(), 40, 0x55);
    Buf body(hs.begin() + 4, hs.end());
    const std::size_t ext_len_at = 2 + 32 + 1 + 2 + spec.ciphers.size() * 2 + 2;
    Buf exts;
    put_ext(exts, 0xffce, esni);
    put_ext(exts, 0x0015, {0, 0, 0, 0});
    const uint16_t old_len = static_cast<uint16_t>(body[ext_len_at] << 8 | body[ext_len_at + 1]);
    const uint16_t new_len = static_cast<uint16_t>(old_len + exts.size());
    body[ext_len_at] = static_cast<uint8_t>(new_len >> 8);
    body[ext_len_at + 1] = static_cast<uint8_t>(new_len);
    body.insert(body.end(), exts.begin(), exts.end());
    Buf msg = handshake(dpi::kTlsHandshakeClientHello, body);
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_client_hello_message(msg, dpi::TlsTransport::Tcp, ch), dpi::ParseStatus::Ok);
    EXPECT_TRUE(ch.esni_present);
    EXPECT_EQ(risks_of(records(msg)).first, 0u);
}

TEST(DpiTlsRisks, MalformedHelloStillShowsItsObsoleteVersion)
{
    HelloSpec spec;
    spec.version = 0x0301;
    Buf hs = client_hello(spec);
    hs[4 + 2 + 32 + 1 + 1] ^= 1; // odd cipher suites length
    dpi::TlsClientHello ch;
    ASSERT_EQ(dpi::parse_client_hello_message(hs, dpi::TlsTransport::Tcp, ch), dpi::ParseStatus::Malformed);
    EXPECT_EQ(ch.legacy_version, 0x0301);
    EXPECT_EQ(risks_of(records(hs)).first, bit(vr::kRiskTlsObsoleteVersion));
}

} // namespace
