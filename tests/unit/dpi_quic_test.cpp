// QUIC Initial and DTLS hello reading for micro-DPI: Initial keys against
// the RFC 9001 / RFC 9369 vectors; client Initials protected here with
// libcrypto (AES-128-GCM, AES-128-ECB header protection) around hand-built
// ClientHellos: one packet, shuffled CRYPTO frames, two packets, coalesced
// packets; every truncation, corrupt tags, unknown versions, oversized
// hellos; DTLS fragments out of order, HelloVerifyRequest and a resent
// ClientHello; Google QUIC's clear CHLO; the User-Agent transport parameter.
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/quic.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <gtest/gtest.h>

#include "dpi_bytes.hpp"
#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

namespace dpi = weir::engine::dpi;
using namespace weir::test;

/// QUIC varint, 2-byte form (values < 16384) or 4-byte form.
void put_varint(Buf& b, uint64_t v)
{
    if (v < 64) {
        b.push_back(static_cast<uint8_t>(v));
    } else if (v < 16384) {
        put16(b, static_cast<uint16_t>(0x4000 | v));
    } else {
        b.push_back(static_cast<uint8_t>(0x80 | v >> 24));
        put24(b, static_cast<uint32_t>(v & 0xffffff));
    }
}

/// A ClientHello (TLS handshake form); `dtls` adds the cookie field,
/// `padding` an extension making the hello that much longer.
Buf client_hello(const std::string& sni, bool dtls = false, std::size_t padding = 0, const std::string& ua = "")
{
    Buf body;
    put16(body, dtls ? 0xfefd : 0x0303);
    body.insert(body.end(), 32, 0x11);
    body.push_back(0); // session id
    if (dtls)
        body.push_back(0); // cookie
    put16(body, 6);
    put16(body, 0x1301);
    put16(body, 0x1302);
    put16(body, 0x1303);
    body.push_back(1);
    body.push_back(0);
    Buf exts;
    {
        Buf d;
        put16(d, static_cast<uint16_t>(sni.size() + 3));
        d.push_back(0);
        put16(d, static_cast<uint16_t>(sni.size()));
        d.insert(d.end(), sni.begin(), sni.end());
        put_ext(exts, 0x0000, d);
    }
    {
        Buf d;
        put16(d, 3);
        d.push_back(2);
        d.push_back('h');
        d.push_back('3');
        put_ext(exts, 0x0010, d);
    }
    {
        Buf d{2};
        put16(d, 0x0304);
        put_ext(exts, 0x002b, d);
    }
    if (!ua.empty()) {
        Buf d;
        put_varint(d, 0x01); // max_idle_timeout
        put_varint(d, 1);
        d.push_back(30);
        put_varint(d, 0x3129);
        put_varint(d, ua.size());
        d.insert(d.end(), ua.begin(), ua.end());
        put_ext(exts, 0x0039, d);
    }
    if (padding)
        put_ext(exts, 0x0015, Buf(padding, 0));
    put16(body, static_cast<uint16_t>(exts.size()));
    body.insert(body.end(), exts.begin(), exts.end());
    Buf msg{dpi::kTlsHandshakeClientHello};
    put24(msg, static_cast<uint32_t>(body.size()));
    msg.insert(msg.end(), body.begin(), body.end());
    return msg;
}

Buf crypto_frame(const Buf& msg, std::size_t off, std::size_t len)
{
    Buf f{0x06};
    put_varint(f, off);
    put_varint(f, len);
    f.insert(f.end(), msg.begin() + static_cast<long>(off), msg.begin() + static_cast<long>(off + len));
    return f;
}

const Buf kDcid = hex("8394c8f03e515708");

/// A protected client Initial carrying `frames` (padded to 1162 bytes of
/// payload as clients do), packet number `pn` in 2 bytes.
Buf initial(uint32_t version, const Buf& dcid, Buf frames, uint32_t pn = 2, bool pad = true)
{
    dpi::QuicInitialKeys k{};
    EXPECT_TRUE(dpi::quic_initial_keys(version, dcid, false, k));
    const bool v2 = version == 0x6b3343cf;
    if (pad && frames.size() < 1162)
        frames.resize(1162, 0); // PADDING
    Buf h{static_cast<uint8_t>(0xc0 | (v2 ? 0x10 : 0x00) | 0x01)}; // pn length 2
    put16(h, static_cast<uint16_t>(version >> 16));
    put16(h, static_cast<uint16_t>(version));
    h.push_back(static_cast<uint8_t>(dcid.size()));
    h.insert(h.end(), dcid.begin(), dcid.end());
    h.push_back(0); // SCID
    h.push_back(0); // token
    put_varint(h, 2 + frames.size() + 16);
    const std::size_t pn_off = h.size();
    put16(h, static_cast<uint16_t>(pn));
    uint8_t nonce[12];
    std::copy(k.iv, k.iv + 12, nonce);
    nonce[10] ^= static_cast<uint8_t>(pn >> 8);
    nonce[11] ^= static_cast<uint8_t>(pn);
    Buf ct(frames.size() + 16);
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    int len = 0;
    EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, k.key, nonce), 1);
    EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &len, h.data(), static_cast<int>(h.size())), 1);
    EXPECT_EQ(EVP_EncryptUpdate(c, ct.data(), &len, frames.data(), static_cast<int>(frames.size())), 1);
    EXPECT_EQ(EVP_EncryptFinal_ex(c, ct.data() + len, &len), 1);
    EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct.data() + frames.size()), 1);
    Buf pkt = h;
    pkt.insert(pkt.end(), ct.begin(), ct.end());
    // Header protection: mask from the sample at pn_off + 4.
    uint8_t mask[16];
    EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), nullptr, k.hp, nullptr), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    EXPECT_EQ(EVP_EncryptUpdate(c, mask, &len, pkt.data() + pn_off + 4, 16), 1);
    EVP_CIPHER_CTX_free(c);
    pkt[0] ^= mask[0] & 0x0f;
    pkt[pn_off] ^= mask[1];
    pkt[pn_off + 1] ^= mask[2];
    return pkt;
}

std::string to_hex(const uint8_t* p, std::size_t n)
{
    static const char* d = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += d[p[i] >> 4];
        s += d[p[i] & 15];
    }
    return s;
}

dpi::TlsClientHello parse_quic_hello(const dpi::HelloAssembler& h)
{
    dpi::TlsClientHello ch;
    EXPECT_EQ(dpi::parse_client_hello_message(h.message(), dpi::TlsTransport::Quic, ch), dpi::ParseStatus::Ok);
    return ch;
}

} // namespace

TEST(DpiQuic, InitialKeysMatchRfcVectors)
{
    dpi::QuicInitialKeys k{};
    ASSERT_TRUE(dpi::quic_initial_keys(0x00000001, kDcid, false, k));
    EXPECT_EQ(to_hex(k.key, 16), "1f369613dd76d5467730efcbe3b1a22d"); // RFC 9001 A.1
    EXPECT_EQ(to_hex(k.iv, 12), "fa044b2f42a3fd3b46fb255c");
    EXPECT_EQ(to_hex(k.hp, 16), "9f50449e04a0e810283a1e9933adedd2");
    ASSERT_TRUE(dpi::quic_initial_keys(0x00000001, kDcid, true, k));
    EXPECT_EQ(to_hex(k.key, 16), "cf3a5331653c364c88f0f379b6067e37");
    EXPECT_EQ(to_hex(k.iv, 12), "0ac1493ca1905853b0bba03e");
    EXPECT_EQ(to_hex(k.hp, 16), "c206b8d9b9f0f37644430b490eeaa314");
    ASSERT_TRUE(dpi::quic_initial_keys(0x6b3343cf, kDcid, false, k)); // RFC 9369 A.1
    EXPECT_EQ(to_hex(k.key, 16), "8b1a0bc121284290a29e0971b5cd045d");
    EXPECT_EQ(to_hex(k.iv, 12), "91f73e2351d8fa91660e909f");
    EXPECT_EQ(to_hex(k.hp, 16), "45b95e15235d6f45a6b19cbcb0294ba9");
    EXPECT_FALSE(dpi::quic_initial_keys(0x12345678, kDcid, false, k));
    EXPECT_TRUE(dpi::quic_version_info(0xff00001d).known);
    EXPECT_FALSE(dpi::quic_version_info(0xff000015).known);
}

TEST(DpiQuic, ClientHelloInOneInitial)
{
    for (uint32_t version : {0x00000001u, 0x6b3343cfu, 0xff00001du, 0xff00001bu, 0xfaceb002u}) {
        const Buf ch = client_hello("quic.example.org", false, 0, "Chrome/120 Linux");
        const Buf pkt = initial(version, kDcid, crypto_frame(ch, 0, ch.size()));
        ASSERT_TRUE(dpi::quic_looks_initial(pkt));
        dpi::HelloAssembler h;
        dpi::QuicDatagramInfo info;
        ASSERT_EQ(dpi::quic_read_initial(pkt, h, info), dpi::ParseStatus::Ok) << std::hex << version;
        EXPECT_EQ(info.version, version);
        EXPECT_EQ(info.initials, 1);
        auto hello = parse_quic_hello(h);
        EXPECT_EQ(hello.sni.view(), "quic.example.org");
        EXPECT_EQ(hello.alpn.view(), "h3");
        // 'q', TLS 1.3, SNI, 3 ciphers, 4 extensions, nDPI's "h0" for a lone "h3".
        EXPECT_EQ(std::string(hello.ja4).substr(0, 10), "q13d0304h0");
        EXPECT_EQ(std::string(hello.ja4_foxio).substr(0, 10), "q13d0304h3");
        dpi::FixedString<256> ua;
        EXPECT_EQ(dpi::quic_user_agent(h.message(), ua), dpi::ParseStatus::Ok);
        EXPECT_EQ(ua.view(), "Chrome/120 Linux");
    }
}

TEST(DpiQuic, ShuffledFramesAndTwoPackets)
{
    const Buf ch = client_hello("split.example.org", false, 1500);
    ASSERT_GT(ch.size(), 1500u);
    // Packet 1: the second half then a PING then the first quarter; packet
    // 2 (another DCID after the server's Initial: keys stay the first's):
    // the remaining quarter, with an ACK before it.
    const std::size_t q = ch.size() / 4, half = ch.size() / 2;
    Buf f1 = crypto_frame(ch, half, ch.size() - half);
    f1.push_back(0x01);
    Buf first = crypto_frame(ch, 0, q);
    f1.insert(f1.end(), first.begin(), first.end());
    Buf f2{0x02, 0x00, 0x00, 0x00, 0x00}; // ACK largest 0, delay 0, 0 ranges, first 0
    Buf rest = crypto_frame(ch, q, half - q);
    f2.insert(f2.end(), rest.begin(), rest.end());
    dpi::HelloAssembler h;
    dpi::QuicDatagramInfo info;
    ASSERT_EQ(dpi::quic_read_initial(initial(1, kDcid, f1, 0, false), h, info), dpi::ParseStatus::NeedMore);
    EXPECT_EQ(info.crypto_frames, 2);
    ASSERT_EQ(dpi::quic_read_initial(initial(1, kDcid, f2, 1), h, info), dpi::ParseStatus::Ok);
    EXPECT_EQ(parse_quic_hello(h).sni.view(), "split.example.org");
    // A second datagram under a new DCID also works when the first is unknown.
    dpi::HelloAssembler h2;
    ASSERT_EQ(dpi::quic_read_initial(initial(1, hex("0102030405"), crypto_frame(ch, 0, ch.size()), 0, false), h2,
                                     info),
              dpi::ParseStatus::Ok);
}

TEST(DpiQuic, CoalescedPacketsAndGarbage)
{
    const Buf ch = client_hello("co.example.org");
    Buf d = initial(1, kDcid, crypto_frame(ch, 0, ch.size()), 0, false);
    // A 0-RTT packet after it (skipped by Length), then trailing zeros.
    Buf zero_rtt{0xd1, 0, 0, 0, 1, 8};
    zero_rtt.insert(zero_rtt.end(), kDcid.begin(), kDcid.end());
    zero_rtt.push_back(0);
    put_varint(zero_rtt, 40);
    zero_rtt.insert(zero_rtt.end(), 40, 0xaa);
    Buf both = zero_rtt;
    both.insert(both.end(), d.begin(), d.end());
    both.insert(both.end(), 100, 0);
    dpi::HelloAssembler h;
    dpi::QuicDatagramInfo info;
    ASSERT_EQ(dpi::quic_read_initial(both, h, info), dpi::ParseStatus::Ok);
    EXPECT_EQ(parse_quic_hello(h).sni.view(), "co.example.org");

    // Every truncation: never Ok, never a read past the end (ASan builds).
    for (std::size_t n = 0; n < d.size(); ++n) {
        dpi::HelloAssembler t;
        EXPECT_NE(dpi::quic_read_initial(dpi::Bytes(d.data(), n), t, info), dpi::ParseStatus::Ok) << n;
    }
    // A flipped ciphertext bit: the tag fails.
    Buf bad = d;
    bad[bad.size() - 30] ^= 1;
    dpi::HelloAssembler b;
    EXPECT_EQ(dpi::quic_read_initial(bad, b, info), dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::DecryptFailed);
    // Unknown version, version negotiation, short header, DCID > 20.
    Buf unk = d;
    unk[1] = 0x12;
    EXPECT_EQ(dpi::quic_read_initial(unk, b, info), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::UnknownVersion);
    Buf vn = d;
    vn[1] = vn[2] = vn[3] = vn[4] = 0;
    EXPECT_EQ(dpi::quic_read_initial(vn, b, info), dpi::ParseStatus::NotMatched);
    Buf sh = d;
    sh[0] = 0x40;
    EXPECT_EQ(dpi::quic_read_initial(sh, b, info), dpi::ParseStatus::NotMatched);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::NotLongHeader);
    Buf cid = d;
    cid[5] = 21;
    EXPECT_EQ(dpi::quic_read_initial(cid, b, info), dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::HeaderInvalid);
    // Random bytes behind a long-header v1 prefix.
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
        Buf r(1 + rng() % 1400);
        for (auto& x : r)
            x = static_cast<uint8_t>(rng());
        r[0] = 0xc0 | (r[0] & 0x3f);
        if (r.size() >= 5)
            r[1] = r[2] = r[3] = 0, r[4] = 1;
        dpi::HelloAssembler t;
        EXPECT_NE(dpi::quic_read_initial(r, t, info), dpi::ParseStatus::Ok);
    }
}

TEST(DpiQuic, HelloLargerThanTheAssemblerIsGivenUp)
{
    // A CRYPTO frame whose offset lies past the 4 KB buffer.
    Buf f{0x06};
    put_varint(f, dpi::HelloAssembler::kCapacity - 10);
    put_varint(f, 20);
    f.insert(f.end(), 20, 1);
    dpi::HelloAssembler h;
    dpi::QuicDatagramInfo info;
    EXPECT_EQ(dpi::quic_read_initial(initial(1, kDcid, f), h, info), dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::TooLarge);
    // A hello announcing more than the buffer holds.
    Buf big = client_hello("big.example.org", false, 5000);
    dpi::HelloAssembler h2;
    EXPECT_EQ(dpi::quic_read_initial(initial(1, kDcid, crypto_frame(big, 0, 1000)), h2, info),
              dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::TooLarge);
    // An unknown frame type in an Initial.
    Buf odd{0x1e};
    dpi::HelloAssembler h3;
    EXPECT_EQ(dpi::quic_read_initial(initial(1, kDcid, odd), h3, info), dpi::ParseStatus::Malformed);
    EXPECT_EQ(info.give_up, dpi::QuicGiveUp::FrameInvalid);
}

namespace {

Buf dtls_record(const Buf& fragments, uint16_t version = 0xfefd)
{
    Buf r{22};
    put16(r, version);
    put16(r, 0);        // epoch
    r.insert(r.end(), 6, 0); // sequence
    put16(r, static_cast<uint16_t>(fragments.size()));
    r.insert(r.end(), fragments.begin(), fragments.end());
    return r;
}

/// A DTLS handshake fragment of a TLS-form message `msg`.
Buf dtls_fragment(const Buf& msg, uint16_t seq, std::size_t off, std::size_t len)
{
    const std::size_t body = msg.size() - 4;
    Buf f{msg[0]};
    put24(f, static_cast<uint32_t>(body));
    put16(f, seq);
    put24(f, static_cast<uint32_t>(off));
    put24(f, static_cast<uint32_t>(len));
    f.insert(f.end(), msg.begin() + 4 + static_cast<long>(off), msg.begin() + 4 + static_cast<long>(off + len));
    return f;
}

} // namespace

TEST(DpiDtls, FragmentedClientHelloOutOfOrder)
{
    const Buf ch = client_hello("dtls.example.org", true);
    const std::size_t body = ch.size() - 4, cut = body / 3;
    // Datagram 1: the last two thirds; datagram 2: the first third.
    const Buf d1 = dtls_record(dtls_fragment(ch, 0, cut, body - cut));
    const Buf d2 = dtls_record(dtls_fragment(ch, 0, 0, cut));
    ASSERT_TRUE(dpi::dtls_looks_handshake(d1));
    dpi::HelloAssembler h;
    h.reset();
    dpi::DtlsDatagramInfo info;
    ASSERT_EQ(dpi::dtls_read_handshake(d1, h, info), dpi::ParseStatus::NeedMore);
    EXPECT_EQ(info.version, 0xfefd);
    ASSERT_EQ(dpi::dtls_read_handshake(d2, h, info), dpi::ParseStatus::Ok);
    dpi::TlsClientHello hello;
    ASSERT_EQ(dpi::parse_client_hello_message(h.message(), dpi::TlsTransport::Dtls, hello), dpi::ParseStatus::Ok);
    EXPECT_EQ(hello.sni.view(), "dtls.example.org");
    EXPECT_EQ(hello.legacy_version, 0xfefd);
    EXPECT_EQ(std::string(hello.ja4).substr(0, 4), "d13d");
    // Without the cookie field skipped the hello would not parse as DTLS's.
    dpi::TlsClientHello as_tls;
    EXPECT_NE(dpi::parse_client_hello_message(h.message(), dpi::TlsTransport::Tcp, as_tls), dpi::ParseStatus::Ok);
}

TEST(DpiDtls, VerifyRequestSkippedAndResentHelloIgnored)
{
    // Server side: HelloVerifyRequest (type 3), then ServerHello in one record
    // with Certificate (type 11) after it.
    Buf sh_body;
    put16(sh_body, 0xfefd);
    sh_body.insert(sh_body.end(), 32, 0x22);
    sh_body.push_back(0);
    put16(sh_body, 0xc02b);
    sh_body.push_back(0);
    put16(sh_body, 0);
    Buf sh{dpi::kTlsHandshakeServerHello};
    put24(sh, static_cast<uint32_t>(sh_body.size()));
    sh.insert(sh.end(), sh_body.begin(), sh_body.end());
    Buf hvr{3, 0, 0, 3, 0xfe, 0xfd, 0};
    Buf cert{11, 0, 0, 3, 0, 0, 0};
    Buf frags = dtls_fragment(hvr, 0, 0, 3);
    dpi::HelloAssembler h;
    h.reset();
    dpi::DtlsDatagramInfo info;
    EXPECT_EQ(dpi::dtls_read_handshake(dtls_record(frags), h, info), dpi::ParseStatus::NeedMore);
    Buf f2 = dtls_fragment(sh, 1, 0, sh.size() - 4);
    Buf f3 = dtls_fragment(cert, 2, 0, 3);
    f2.insert(f2.end(), f3.begin(), f3.end());
    ASSERT_EQ(dpi::dtls_read_handshake(dtls_record(f2), h, info), dpi::ParseStatus::Ok);
    dpi::TlsServerHello hello;
    ASSERT_EQ(dpi::parse_server_hello_message(h.message(), hello), dpi::ParseStatus::Ok);
    EXPECT_EQ(hello.cipher, 0xc02b);

    // Client side: the first ClientHello's first half, then the resent one
    // (message_seq 1, with a cookie) is ignored until the first completes.
    const Buf ch = client_hello("first.example.org", true);
    const Buf ch2 = client_hello("second.example.org", true);
    dpi::HelloAssembler c;
    c.reset();
    const std::size_t half = (ch.size() - 4) / 2;
    EXPECT_EQ(dpi::dtls_read_handshake(dtls_record(dtls_fragment(ch, 0, 0, half)), c, info),
              dpi::ParseStatus::NeedMore);
    EXPECT_EQ(dpi::dtls_read_handshake(dtls_record(dtls_fragment(ch2, 1, 0, ch2.size() - 4)), c, info),
              dpi::ParseStatus::NeedMore);
    ASSERT_EQ(dpi::dtls_read_handshake(dtls_record(dtls_fragment(ch, 0, half, ch.size() - 4 - half)), c, info),
              dpi::ParseStatus::Ok);
    dpi::TlsClientHello hello2;
    ASSERT_EQ(dpi::parse_client_hello_message(c.message(), dpi::TlsTransport::Dtls, hello2), dpi::ParseStatus::Ok);
    EXPECT_EQ(hello2.sni.view(), "first.example.org");
}

TEST(DpiDtls, BadLengthsAndTruncation)
{
    const Buf ch = client_hello("t.example.org", true);
    const Buf d = dtls_record(dtls_fragment(ch, 0, 0, ch.size() - 4));
    dpi::DtlsDatagramInfo info;
    for (std::size_t n = 0; n < d.size(); ++n) {
        dpi::HelloAssembler h;
        h.reset();
        EXPECT_NE(dpi::dtls_read_handshake(dpi::Bytes(d.data(), n), h, info), dpi::ParseStatus::Ok) << n;
    }
    // A fragment running past its message.
    Buf bad = d;
    bad[13 + 11] = 0xff; // fragment_length low byte
    dpi::HelloAssembler h;
    h.reset();
    EXPECT_EQ(dpi::dtls_read_handshake(bad, h, info), dpi::ParseStatus::Malformed);
    // Not DTLS: a TLS record, an application-data record, an epoch-1 record.
    Buf tls{0x16, 0x03, 0x01, 0, 0};
    tls.resize(40);
    EXPECT_FALSE(dpi::dtls_looks_handshake(tls));
    Buf app = d;
    app[0] = 23;
    dpi::HelloAssembler h2;
    h2.reset();
    EXPECT_EQ(dpi::dtls_read_handshake(app, h2, info), dpi::ParseStatus::NotMatched);
}

TEST(DpiQuic, GoogleQuicClearChlo)
{
    // Q046 long header, then a STREAM frame holding the CHLO tag message.
    Buf p{0xc3, 'Q', '0', '4', '6', 0x50};
    p.insert(p.end(), 8, 0x42);
    p.insert(p.end(), {0, 0, 0, 1, 0xa0, 0x01, 0x04, 0x00});
    const std::string sni = "www.example.com", ua = "Chrome/80.0 Linux";
    Buf chlo{'C', 'H', 'L', 'O', 2, 0, 0, 0};
    chlo.insert(chlo.end(), {'S', 'N', 'I', 0});
    chlo.insert(chlo.end(), {static_cast<uint8_t>(sni.size()), 0, 0, 0});
    chlo.insert(chlo.end(), {'U', 'A', 'I', 'D'});
    chlo.insert(chlo.end(), {static_cast<uint8_t>(sni.size() + ua.size()), 0, 0, 0});
    chlo.insert(chlo.end(), sni.begin(), sni.end());
    chlo.insert(chlo.end(), ua.begin(), ua.end());
    p.insert(p.end(), chlo.begin(), chlo.end());
    dpi::GquicChlo out;
    ASSERT_EQ(dpi::parse_gquic_chlo(p, out), dpi::ParseStatus::Ok);
    EXPECT_EQ(out.sni.view(), sni);
    EXPECT_EQ(out.uaid.view(), ua);
    for (std::size_t n = 0; n + 1 < p.size(); ++n)
        EXPECT_NE(dpi::parse_gquic_chlo(dpi::Bytes(p.data(), n), out), dpi::ParseStatus::Ok) << n;
    Buf bad = p;
    bad[p.size() - chlo.size() + 20] = 0xff; // UAID end offset past the data
    EXPECT_EQ(dpi::parse_gquic_chlo(bad, out), dpi::ParseStatus::Malformed);
}

// ---------------------------------------------------------------- DpiStage

#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/dpi_stage.hpp>

#include <filesystem>

namespace {

struct StageRun {
    std::vector<weir::FlowRecord> records;
    weir::engine::DpiStats stats;
};

/// A capture through a level-1 DpiStage as a worker feeds it; every flow
/// finished at the end.
StageRun run_stage(const std::string& name, const weir::engine::DpiConfig& cfg)
{
    StageRun run;
    const auto path = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps/ndpi/pcap" / name;
    auto src = weir::dataplane::open_pcap_file(path.string());
    if (!src)
        return run;
    auto stage = weir::engine::DpiStage::create(cfg);
    EXPECT_TRUE(stage);
    weir::engine::Decoder decoder;
    std::array<weir::RawPacket, 64> burst;
    weir::PacketMeta m;
    std::vector<weir::FlowKey> keys;
    while (!(*src)->finished()) {
        const uint32_t n = (*src)->rx_burst(burst.data(), static_cast<uint32_t>(burst.size()));
        for (uint32_t i = 0; i < n; ++i) {
            if (!decoder.decode(burst[i], m))
                continue;
            if (std::find(keys.begin(), keys.end(), m.key) == keys.end())
                keys.push_back(m.key);
            if ((*stage)->wants(m))
                (*stage)->inspect(m, weir::engine::DpiStage::input(1, m, burst[i].data, burst[i].caplen));
        }
    }
    for (const auto& k : keys) {
        weir::FlowRecord r;
        r.key = k;
        r.end_reason = weir::EndReason::IdleTimeout;
        (*stage)->finish(r);
        run.records.push_back(r);
    }
    run.stats = (*stage)->stats();
    return run;
}

const weir::FlowRecord* find_l7(const StageRun& run, std::string_view name)
{
    for (const auto& r : run.records)
        if (std::string_view(r.l7.name) == name && !r.l7.guessed)
            return &r;
    return nullptr;
}

} // namespace

TEST(DpiQuicStage, ClientHelloOverTwoInitialsUsesOnePoolAssembler)
{
    if (!std::filesystem::exists(std::filesystem::path(WEIR_SHARED_DIR) / "pcaps/ndpi/pcap"))
        GTEST_SKIP() << "shared captures missing";
    weir::engine::DpiConfig cfg;
    cfg.level = 1;
    cfg.max_flows = 64;
    cfg.max_inspections = 16;
    cfg.tls_streams = 4;
    // The ClientHello spans two client Initials; the server's Initial in
    // between does not decrypt with client keys and is counted.
    auto run = run_stage("quic_frags_different_dcid.pcapng", cfg);
    const auto* r = find_l7(run, "QUIC");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->l7.app, 188);
    EXPECT_STREQ(r->l7.server_name, "cdnjs.cloudflare.com");
    EXPECT_STREQ(r->l7.ja4, "q13d0311h0_55b375c5d22e_5a1f323ef56d");
    EXPECT_EQ(run.stats.tls_stream_full, 0u);
    EXPECT_GE(run.stats.hello_gave_up, 1u);

    // One assembler per worker is enough for one split hello at a time.
    cfg.tls_streams = 1;
    run = run_stage("quic_frags_different_dcid.pcapng", cfg);
    EXPECT_NE(find_l7(run, "QUIC"), nullptr);

    // Google QUIC Q046: SNI and UAID from the clear CHLO; QUIC v2; DTLS.
    run = run_stage("quic046.pcap", cfg);
    r = find_l7(run, "QUIC");
    ASSERT_NE(r, nullptr);
    EXPECT_STREQ(r->l7.server_name, "i.ytimg.com");
    EXPECT_STREQ(r->l7.user_agent, "Chrome/80.0.3987.132 Windows NT 6.3; Win64; x64");
    // Q050: the CHLO inside an Initial protected with Q050's salt.
    run = run_stage("quic_q50.pcap", cfg);
    r = find_l7(run, "QUIC");
    ASSERT_NE(r, nullptr);
    EXPECT_STREQ(r->l7.server_name, "www.googletagmanager.com");
    EXPECT_STREQ(r->l7.user_agent, "Chrome/83.0.4103.101 Android 8.0.0; LDN-L21");
    run = run_stage("quic-v2.pcapng", cfg);
    r = find_l7(run, "QUIC");
    ASSERT_NE(r, nullptr);
    EXPECT_STREQ(r->l7.server_name, "test");
    run = run_stage("dtls2.pcap", cfg);
    r = find_l7(run, "DTLS");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->l7.app, 30);
    EXPECT_STREQ(r->l7.ja3c, "1b45c913a0c0fde5f263502e65999485");
    EXPECT_STREQ(r->l7.ja3s, "749bd1edea60396ffaa65213b7971718");
}
