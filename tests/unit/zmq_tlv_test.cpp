// TLV serializer, ZMQ v3 header and the TLV flow encoder/decoder pair.
#include <weir/exporters/flow_format.hpp>
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_decoder.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include <tlv_map.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace weir;
using namespace weir::exporters;

namespace {

std::vector<uint8_t> from_hex(std::string_view h)
{
    std::vector<uint8_t> out;
    std::string digits;
    for (char c : h)
        if (std::isxdigit(static_cast<unsigned char>(c)))
            digits.push_back(c);
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    return out;
}

FlowRecord make_flow(uint8_t last_octet, uint16_t cport, uint8_t proto = 6)
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = proto;
    r.key.addr_a = {10, 0, 0, last_octet};
    r.key.addr_b = {192, 168, 1, 200};
    r.key.port_a = cport;
    r.key.port_b = 443;
    r.client_is_a = 1;
    r.dir[0] = {5, 700, 1700000000'100000000ULL, 1700000003'900000000ULL, 0x1a, 64, 64, 0};
    r.dir[1] = {4, 5000000000ULL, 1700000000'200000000ULL, 1700000004'500000000ULL, 0x12, 50, 50, 0x10};
    r.client_mac = {0x02, 0, 0, 0, 0, 1};
    r.server_mac = {0x02, 0, 0, 0, 0, 2};
    return r;
}

struct Captured {
    std::vector<uint8_t> header;
    std::vector<uint8_t> payload;
    uint32_t flows;
};

struct CaptureSink final : ZmqMessageSink {
    std::vector<Captured> msgs;
    void on_message(std::span<const uint8_t> h, std::span<const uint8_t> p, uint32_t flows) noexcept override
    {
        msgs.push_back({{h.begin(), h.end()}, {p.begin(), p.end()}, flows});
    }
};

using test::MapVisitor;

} // namespace

// Byte-exact against nDPI's serializer (the "Verified TLV example" of the notes).
TEST(ZmqTlv, MatchesNdpiSerializerExample)
{
    uint8_t buf[256];
    tlv::Writer w(buf, sizeof(buf));
    ASSERT_TRUE(w.preamble());
    ASSERT_TRUE(w.put_string(8u, "192.168.1.10"));
    ASSERT_TRUE(w.put_uint(7u, 40000));
    ASSERT_TRUE(w.put_uint(4u, 6));
    ASSERT_TRUE(w.put_uint(1u, 5000000000ULL));
    ASSERT_TRUE(w.put_uint(57550u, 0x1a));
    ASSERT_TRUE(w.put_string(57590u, "91.126"));
    ASSERT_TRUE(w.put_float(57595u, 1.5f));
    ASSERT_TRUE(w.put_uint(std::string_view("IN_PKTS"), 10));
    ASSERT_TRUE(w.end_record());
    const auto want = from_hex("0101 2b 08 000c 3139322e3136382e312e3130 | 23 07 9c40 | 22 04 06 | "
                               "25 01 000000012a05f200 | 32 e0ce 1a | 3b e0f6 0006 39312e313236 | "
                               "3a e0fb 0000c03f | b2 0007 494e5f504b5453 0a | 01");
    ASSERT_EQ(w.size(), want.size());
    EXPECT_EQ(0, std::memcmp(buf, want.data(), want.size()));

    // And the reader gives the same items back.
    MapVisitor v;
    const auto res = walk_tlv_records({buf, w.size()}, v);
    EXPECT_EQ(res.error, tlv::ReadError::None);
    ASSERT_EQ(res.records, 1u);
    auto& rec = v.records[0];
    EXPECT_EQ(rec["IPV4_SRC_ADDR"], "192.168.1.10");
    EXPECT_EQ(rec["L4_SRC_PORT"], "40000");
    EXPECT_EQ(rec["IN_BYTES"], "5000000000");
    EXPECT_EQ(rec["CLIENT_TCP_FLAGS"], "26");
    EXPECT_EQ(rec["L7_PROTO"], "91.126");
    EXPECT_EQ(rec["CLIENT_NW_LATENCY_MS"], std::to_string(1.5f));
    EXPECT_EQ(rec["IN_PKTS"], "10");
}

TEST(ZmqTlv, IntegerWidthsAndSignedValues)
{
    uint8_t buf[128];
    tlv::Writer w(buf, sizeof(buf));
    ASSERT_TRUE(w.preamble());
    ASSERT_TRUE(w.put_uint(70000u, 0x10000));  // u32 key, u32 value
    ASSERT_TRUE(w.put_int(3u, -2));            // i8
    ASSERT_TRUE(w.put_int(3u, -40000));        // i32
    ASSERT_TRUE(w.end_record());
    const auto want = from_hex("0101 44 00011170 00010000 | 26 03 fe | 28 03 ffff63c0 | 01");
    ASSERT_EQ(w.size(), want.size());
    EXPECT_EQ(0, std::memcmp(buf, want.data(), want.size()));
    tlv::Reader rd({buf, w.size()});
    ASSERT_TRUE(rd.preamble());
    tlv::Item it;
    ASSERT_EQ(rd.next(it), tlv::Reader::Next::Item);
    EXPECT_EQ(it.key, 70000u);
    EXPECT_EQ(it.u, 0x10000u);
    ASSERT_EQ(rd.next(it), tlv::Reader::Next::Item);
    EXPECT_EQ(it.i, -2);
    ASSERT_EQ(rd.next(it), tlv::Reader::Next::Item);
    EXPECT_EQ(it.i, -40000);
    EXPECT_EQ(rd.next(it), tlv::Reader::Next::EndOfRecord);
    EXPECT_EQ(rd.next(it), tlv::Reader::Next::End);
}

TEST(ZmqTlv, WriterRefusesWhatDoesNotFit)
{
    uint8_t buf[8];
    tlv::Writer w(buf, sizeof(buf));
    ASSERT_TRUE(w.preamble());
    EXPECT_FALSE(w.put_string(8u, "192.168.1.10"));
    EXPECT_EQ(w.size(), 2u); // nothing partial
    EXPECT_TRUE(w.put_uint(4u, 6));
}

TEST(ZmqTlv, ReaderRejectsBadInput)
{
    MapVisitor v;
    const auto bad_pre = from_hex("0201 2204 06 01");
    EXPECT_EQ(walk_tlv_records(bad_pre, v).error, tlv::ReadError::BadPreamble);
    const auto truncated = from_hex("0101 2b 08 000c 3139322e");
    EXPECT_EQ(walk_tlv_records(truncated, v).error, tlv::ReadError::Truncated);
    const auto block = from_hex("0101 2c 08 01");
    EXPECT_EQ(walk_tlv_records(block, v).error, tlv::ReadError::BadValueType);
    const auto badkey = from_hex("0101 52 08 01");
    EXPECT_EQ(walk_tlv_records(badkey, v).error, tlv::ReadError::BadKeyType);
    const auto unterminated = from_hex("0101 22 04 06 01 22 04 11");
    const auto r = walk_tlv_records(unterminated, v);
    EXPECT_EQ(r.error, tlv::ReadError::None);
    EXPECT_EQ(r.records, 1u);
    EXPECT_TRUE(r.unterminated);
    // A type byte 0 ends the payload, as in ntopng.
    const auto zero_end = from_hex("0101 22 04 06 01 00 ff ff");
    EXPECT_EQ(walk_tlv_records(zero_end, v).records, 1u);
}

TEST(ZmqHeader, LayoutOfEveryField)
{
    ZmqHeader h;
    std::memcpy(h.topic.data(), "flow", 4);
    h.flags = kZmqFlagTlv | kZmqFlagCompressed;
    h.uncompressed_size = 0x01020304;
    h.size_field = 0x05060708;
    h.msg_id = 0x0a0b0c0d;
    h.source_id = 0x11223344;
    std::array<uint8_t, kZmqHeaderSize> b;
    write_zmq_header(h, b);
    const auto want = from_hex("666c6f77 00000000 00000000 00000000 | 04 06 0000 | 04030201 | 08070605 | "
                               "0a0b0c0d | 44332211");
    ASSERT_EQ(want.size(), kZmqHeaderSize);
    EXPECT_EQ(0, std::memcmp(b.data(), want.data(), kZmqHeaderSize));

    ZmqParsedHeader p;
    ASSERT_EQ(parse_zmq_header(b, p), ZmqError::None);
    EXPECT_EQ(p.h.topic_view(), "flow");
    EXPECT_EQ(p.h.version, 4);
    EXPECT_TRUE(p.tlv);
    EXPECT_TRUE(p.compressed);
    EXPECT_EQ(p.h.uncompressed_size, 0x01020304u);
    EXPECT_EQ(p.h.size_field, 0x05060708u);
    EXPECT_EQ(p.h.msg_id, 0x0a0b0c0du);
    EXPECT_EQ(p.h.source_id, 0x11223344u);

    b[16] = 5;
    EXPECT_EQ(parse_zmq_header(b, p), ZmqError::BadVersion);
    EXPECT_EQ(parse_zmq_header(std::span<const uint8_t>(b.data(), 30), p), ZmqError::BadHeaderLength);
}

TEST(ZmqHeader, OlderLayoutsAsNtopngReadsThem)
{
    // v1-size (24 bytes) header as ntopng's json2tlv sends: version 3 = TLV.
    std::vector<uint8_t> h24(24, 0);
    std::memcpy(h24.data(), "flow", 4);
    h24[16] = 3;
    h24[17] = 7;
    h24[20] = 0, h24[21] = 0, h24[22] = 1, h24[23] = 2; // big-endian 258
    ZmqParsedHeader p;
    ASSERT_EQ(parse_zmq_header(h24, p), ZmqError::None);
    EXPECT_TRUE(p.tlv);
    EXPECT_EQ(p.h.msg_id, 258u);
    EXPECT_EQ(p.h.source_id, 7u);
    h24[16] = 2;
    ASSERT_EQ(parse_zmq_header(h24, p), ZmqError::None);
    EXPECT_FALSE(p.tlv);
    EXPECT_TRUE(p.compat_zero_prefix);
}

class ZmqEncoderTest : public ::testing::TestWithParam<bool> {};

TEST_P(ZmqEncoderTest, FlowsRoundTripThroughHeaderZlibAndTlv)
{
    const bool compress = GetParam();
    ZmqEncoderOptions o;
    o.compress = compress;
    o.source_id = 4242;
    o.max_payload = 4096;
    auto enc = ZmqFlowEncoder::create(o);
    ASSERT_TRUE(enc) << enc.error().message();
    CaptureSink sink;
    const int n = 200;
    for (int i = 0; i < n; ++i)
        enc.value()->add(make_flow(static_cast<uint8_t>(i), static_cast<uint16_t>(40000 + i)), sink);
    enc.value()->send_event(R"({"time":1})", sink);
    enc.value()->flush(sink);
    ASSERT_GE(sink.msgs.size(), 4u); // 200 records do not fit 4 KiB

    auto dec = ZmqPayloadDecoder::create(1 << 20);
    ASSERT_TRUE(dec);
    MapVisitor v;
    uint32_t expect_id = 1;
    uint32_t flows = 0;
    int events = 0;
    for (const auto& m : sink.msgs) {
        ASSERT_EQ(m.header.size(), kZmqHeaderSize);
        ZmqParsedHeader p;
        ASSERT_EQ(parse_zmq_header(m.header, p), ZmqError::None);
        EXPECT_EQ(p.h.msg_id, expect_id++);
        EXPECT_EQ(p.h.source_id, 4242u);
        EXPECT_LE(m.payload.size(), kZmqMaxPayload);
        std::span<const uint8_t> plain;
        ASSERT_EQ(dec.value()->payload(p, m.payload, plain), ZmqError::None);
        EXPECT_EQ(p.h.uncompressed_size, plain.size());
        EXPECT_EQ(p.h.size_field, plain.size()); // ntopng's quirk: uncompressed here too
        if (p.h.topic_view() == "event") {
            EXPECT_EQ(p.h.flags, 0);
            EXPECT_EQ(std::string(plain.begin(), plain.end()), R"({"time":1})");
            ++events;
            continue;
        }
        EXPECT_EQ(p.h.topic_view(), "flow");
        EXPECT_EQ(p.h.flags, compress ? (kZmqFlagTlv | kZmqFlagCompressed) : kZmqFlagTlv);
        EXPECT_LE(plain.size(), o.max_payload);
        if (compress) {
            EXPECT_LT(m.payload.size(), plain.size());
        }
        const auto r = walk_tlv_records(plain, v);
        EXPECT_EQ(r.error, tlv::ReadError::None);
        EXPECT_FALSE(r.unterminated);
        EXPECT_EQ(r.records, m.flows);
        flows += m.flows;
    }
    EXPECT_EQ(events, 1);
    ASSERT_EQ(flows, static_cast<uint32_t>(n));
    ASSERT_EQ(v.records.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto& rec = v.records[static_cast<std::size_t>(i)];
        EXPECT_EQ(rec["IPV4_SRC_ADDR"], "10.0.0." + std::to_string(i));
        EXPECT_EQ(rec["IPV4_DST_ADDR"], "192.168.1.200");
        EXPECT_EQ(rec["L4_SRC_PORT"], std::to_string(40000 + i));
        EXPECT_EQ(rec["L4_DST_PORT"], "443");
        EXPECT_EQ(rec["PROTOCOL"], "6");
        EXPECT_EQ(rec["IP_PROTOCOL_VERSION"], "4");
        EXPECT_EQ(rec["IN_PKTS"], "5");
        EXPECT_EQ(rec["IN_BYTES"], "700");
        EXPECT_EQ(rec["OUT_PKTS"], "4");
        EXPECT_EQ(rec["OUT_BYTES"], "5000000000");
        EXPECT_EQ(rec["FIRST_SWITCHED"], "1700000000");
        EXPECT_EQ(rec["LAST_SWITCHED"], "1700000004");
        EXPECT_EQ(rec["CLIENT_TCP_FLAGS"], "26");
        EXPECT_EQ(rec["SERVER_TCP_FLAGS"], "18");
        EXPECT_EQ(rec["TCP_FLAGS"], "26");
        EXPECT_EQ(rec["DST_TOS"], "16");
        EXPECT_EQ(rec["IN_SRC_MAC"], "02:00:00:00:00:01");
        EXPECT_EQ(rec["OUT_DST_MAC"], "02:00:00:00:00:02");
        EXPECT_EQ(rec.count("L7_PROTO"), 0u); // no DPI: never a made-up protocol
        EXPECT_EQ(rec.count("SRC_VLAN"), 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(PlainAndZlib, ZmqEncoderTest, ::testing::Bool());

TEST(ZmqEncoder, Ipv6IcmpVlanAndEmptyFlows)
{
    auto enc = ZmqFlowEncoder::create({});
    ASSERT_TRUE(enc);
    FlowRecord r = make_flow(1, 0x8000, 58);
    r.key.ip_version = 6;
    r.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    r.key.addr_b = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    r.key.vlan = 100;
    r.client_mac = {};
    r.server_mac = {};
    FlowRecord empty = make_flow(2, 1);
    empty.dir[0].packets = empty.dir[1].packets = 0;
    CaptureSink sink;
    enc.value()->add(r, sink);
    enc.value()->add(empty, sink);
    enc.value()->flush(sink);
    ASSERT_EQ(sink.msgs.size(), 1u);
    EXPECT_EQ(sink.msgs[0].flows, 1u);
    EXPECT_EQ(enc.value()->stats().skipped_empty, 1u);
    MapVisitor v;
    ASSERT_EQ(walk_tlv_records(sink.msgs[0].payload, v).records, 1u);
    auto& rec = v.records[0];
    EXPECT_EQ(rec["IPV6_SRC_ADDR"], "2001:db8::1");
    EXPECT_EQ(rec["IPV6_DST_ADDR"], "fe80::2");
    EXPECT_EQ(rec["L4_SRC_PORT"], "0"); // ICMP: ntopng zeroes ports anyway
    EXPECT_EQ(rec["L4_DST_PORT"], "0");
    EXPECT_EQ(rec["IP_PROTOCOL_VERSION"], "6");
    EXPECT_EQ(rec["SRC_VLAN"], "100");
    EXPECT_EQ(rec.count("IN_SRC_MAC"), 0u);
    EXPECT_EQ(rec.count("CLIENT_TCP_FLAGS"), 0u);
}

TEST(ZmqEncoder, MaxFlowsPerMessageAndMsgIdSequence)
{
    ZmqEncoderOptions o;
    o.max_flows = 3;
    auto enc = ZmqFlowEncoder::create(o);
    ASSERT_TRUE(enc);
    CaptureSink sink;
    for (int i = 0; i < 10; ++i)
        enc.value()->add(make_flow(static_cast<uint8_t>(i), 1000), sink);
    enc.value()->flush(sink);
    ASSERT_EQ(sink.msgs.size(), 4u);
    EXPECT_EQ(sink.msgs[0].flows, 3u);
    EXPECT_EQ(sink.msgs[3].flows, 1u);
    for (std::size_t i = 0; i < sink.msgs.size(); ++i) {
        ZmqParsedHeader p;
        ASSERT_EQ(parse_zmq_header(sink.msgs[i].header, p), ZmqError::None);
        EXPECT_EQ(p.h.msg_id, i + 1);
    }
    EXPECT_FALSE(ZmqFlowEncoder::create(ZmqEncoderOptions{.max_payload = 200000}));
    EXPECT_FALSE(ZmqFlowEncoder::create(ZmqEncoderOptions{.max_payload = 100}));
}

TEST(ZmqDecoder, DecompressionIsBounded)
{
    // 1 MiB of zeros compresses to about 1 KiB: a bomb for a small limit.
    std::vector<uint8_t> big(1 << 20, 0);
    big[0] = 1, big[1] = 1;
    uLongf zlen = compressBound(big.size());
    std::vector<uint8_t> z(zlen);
    ASSERT_EQ(compress(z.data(), &zlen, big.data(), big.size()), Z_OK);
    z.resize(zlen);

    ZmqParsedHeader p;
    p.length = kZmqHeaderSize;
    p.tlv = true;
    p.compressed = true;
    p.h.size_field = static_cast<uint32_t>(big.size());
    std::span<const uint8_t> out;
    auto small = ZmqPayloadDecoder::create(64 * 1024);
    ASSERT_TRUE(small);
    EXPECT_EQ(small.value()->payload(p, z, out), ZmqError::InflateTooBig);

    auto large = ZmqPayloadDecoder::create(2 << 20);
    ASSERT_TRUE(large);
    ASSERT_EQ(large.value()->payload(p, z, out), ZmqError::None);
    EXPECT_EQ(out.size(), big.size());
    // ntopng's quirk: the compressed length in the size field is too small.
    p.h.size_field = static_cast<uint32_t>(z.size());
    EXPECT_EQ(large.value()->payload(p, z, out), ZmqError::InflateTooBig);
    // Not zlib at all.
    std::vector<uint8_t> junk(100, 0xab);
    EXPECT_EQ(large.value()->payload(p, junk, out), ZmqError::Inflate);
    // Above ntopng's frame limit.
    std::vector<uint8_t> huge(kZmqMaxPayload + 1, 0);
    EXPECT_EQ(large.value()->payload(p, huge, out), ZmqError::PayloadTooBig);
}

// The encoder formats IPv6 itself; it must read exactly as weir's JSON
// (inet_ntop) for every zero-run pattern and the embedded IPv4 forms.
TEST(ZmqEncoder, Ipv6TextMatchesInetNtop)
{
    std::vector<std::array<uint8_t, 16>> addrs;
    // Every pattern of zero / non-zero 16-bit words, with varied digits.
    for (unsigned mask = 0; mask < 256; ++mask) {
        std::array<uint8_t, 16> a{};
        for (int k = 0; k < 8; ++k) {
            if (mask & (1u << k)) {
                a[2 * k] = static_cast<uint8_t>((mask * 7 + k) & (k % 2 ? 0x0f : 0xff));
                a[2 * k + 1] = static_cast<uint8_t>(mask + k + 1);
            }
        }
        addrs.push_back(a);
    }
    addrs.push_back({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}); // v4-mapped
    addrs.push_back({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1});       // v4-compatible
    addrs.push_back({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});         // ::1
    addrs.push_back({});                                                       // ::
    for (const auto& a : addrs) {
        FlowRecord r = make_flow(1, 1000, 17);
        r.key.ip_version = 6;
        r.key.addr_a = a;
        uint8_t buf[ZmqFlowEncoder::kMaxRecord + 2] = {1, 1};
        const std::size_t n = ZmqFlowEncoder::encode_record(r, buf + 2, sizeof(buf) - 2);
        ASSERT_GT(n, 0u);
        MapVisitor v;
        ASSERT_EQ(walk_tlv_records({buf, n + 2}, v).records, 1u);
        EXPECT_EQ(v.records[0]["IPV6_SRC_ADDR"], format_ip(a, 6));
    }
}

// ---- JSON flow payloads ------------------------------------------------------

namespace {

FlowRecord dpi_flow()
{
    FlowRecord r = make_flow(9, 51000);
    r.key.vlan = 12;
    r.l7.master = 91;
    r.l7.app = 126;
    std::strcpy(r.l7.name, "TLS.Google");
    // Text from the wire: a quote, a backslash, a control byte, valid UTF-8
    // and one invalid byte, which becomes U+FFFD.
    std::strcpy(r.l7.server_name, "a\"b\\c\x01\xc3\xa9\xff.example");
    std::strcpy(r.l7.ja4, "t13d1516h2_8daaf6152771_b186095e22b6");
    return r;
}

std::map<std::string, std::string> tlv_map(const FlowRecord& r)
{
    std::vector<uint8_t> buf(2 + ZmqFlowEncoder::kMaxRecord);
    buf[0] = 1;
    buf[1] = 1;
    const std::size_t n = ZmqFlowEncoder::encode_record(r, buf.data() + 2, buf.size() - 2);
    buf.resize(2 + n);
    MapVisitor v;
    walk_tlv_records(buf, v);
    return v.records.at(0);
}

} // namespace

// The JSON object carries the same keys and values as the TLV record, with
// numeric keys or labels, and the reader maps both back to the same items.
TEST(ZmqJson, SameFieldsAsTlvNumericAndLabels)
{
    for (const bool labels : {false, true}) {
        for (const FlowRecord& r : {make_flow(3, 40000), dpi_flow()}) {
            std::vector<uint8_t> buf(4096);
            const std::size_t n = ZmqFlowEncoder::encode_json_record(r, labels, buf.data(), buf.size());
            ASSERT_GT(n, 0u);
            const std::string text(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
            if (labels) {
                EXPECT_EQ(text.rfind(R"({"IPV4_SRC_ADDR":"10.0.0.)", 0), 0u) << text;
                EXPECT_NE(text.find(R"("OUT_BYTES":5000000000)"), std::string::npos) << text;
            } else {
                EXPECT_EQ(text.rfind(R"({"8":"10.0.0.)", 0), 0u) << text;
                EXPECT_NE(text.find(R"("57550":26)"), std::string::npos) << text;
                EXPECT_EQ(text.find("IPV4"), std::string::npos) << text;
            }
            JsonFlowReader rd(1 << 16);
            MapVisitor v;
            const JsonWalkResult res = rd.walk({buf.data(), n}, v);
            EXPECT_TRUE(res.error.empty()) << res.error << " at " << res.offset << ": " << text;
            ASSERT_EQ(res.records, 1u);
            auto want = tlv_map(r);
            auto got = v.records[0];
            if (r.l7.app) {
                // TLV carries the raw bytes, JSON the escaped text with U+FFFD.
                EXPECT_EQ(got["TLS_SERVER_NAME"], "a\"b\\c\x01\xc3\xa9\xef\xbf\xbd.example");
                want.erase("TLS_SERVER_NAME");
                got.erase("TLS_SERVER_NAME");
                EXPECT_EQ(got["L7_PROTO"], "91.126");
                EXPECT_EQ(got["SRC_VLAN"], "12");
            }
            EXPECT_EQ(got, want) << text;
        }
    }
}

TEST(ZmqJson, BatchedArraysUnderTheLimitWithAndWithoutZlib)
{
    for (const bool compress : {false, true}) {
        ZmqEncoderOptions o;
        o.format = ZmqPayloadFormat::Json;
        o.compress = compress;
        o.max_payload = 4096;
        o.source_id = 7;
        auto enc = ZmqFlowEncoder::create(o);
        ASSERT_TRUE(enc) << enc.error().message();
        CaptureSink sink;
        const int n = 150;
        for (int i = 0; i < n; ++i)
            enc.value()->add(i % 10 == 0 ? dpi_flow() : make_flow(static_cast<uint8_t>(i), 40000), sink);
        enc.value()->send_event(R"({"time":1})", sink);
        enc.value()->flush(sink);
        EXPECT_EQ(enc.value()->stats().records, static_cast<uint64_t>(n));
        EXPECT_EQ(enc.value()->stats().too_big, 0u);
        ASSERT_GE(sink.msgs.size(), 5u);
        auto dec = ZmqPayloadDecoder::create(1 << 20);
        ASSERT_TRUE(dec);
        JsonFlowReader rd(1 << 20);
        MapVisitor v;
        uint32_t expect_id = 1;
        for (const auto& m : sink.msgs) {
            ZmqParsedHeader p;
            ASSERT_EQ(parse_zmq_header(m.header, p), ZmqError::None);
            EXPECT_EQ(p.h.msg_id, expect_id++);
            std::span<const uint8_t> plain;
            ASSERT_EQ(dec.value()->payload(p, m.payload, plain), ZmqError::None);
            EXPECT_EQ(p.h.size_field, plain.size());
            if (p.h.topic_view() == "event")
                continue;
            EXPECT_FALSE(p.tlv);
            EXPECT_EQ(p.h.flags, compress ? kZmqFlagCompressed : 0);
            EXPECT_LE(plain.size(), o.max_payload);
            ASSERT_EQ(plain.front(), '[');
            ASSERT_EQ(plain.back(), ']');
            const JsonWalkResult r = rd.walk(plain, v);
            EXPECT_TRUE(r.error.empty()) << r.error;
            EXPECT_EQ(r.records, m.flows);
        }
        ASSERT_EQ(v.records.size(), static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            if (i % 10 == 0)
                continue;
            EXPECT_EQ(v.records[static_cast<std::size_t>(i)]["IPV4_SRC_ADDR"], "10.0.0." + std::to_string(i));
            EXPECT_EQ(v.records[static_cast<std::size_t>(i)]["OUT_BYTES"], "5000000000");
        }
    }
}

// Every payload size, so some message is filled to its last byte: records
// are never cut, the closing ']' always fits, nothing is written past the limit.
TEST(ZmqJson, EveryPayloadLimitFillsExactly)
{
    for (uint32_t limit = 1024; limit < 1400; ++limit) {
        ZmqEncoderOptions o;
        o.format = limit % 2 ? ZmqPayloadFormat::Json : ZmqPayloadFormat::JsonLabels;
        o.max_payload = limit;
        auto enc = ZmqFlowEncoder::create(o);
        ASSERT_TRUE(enc);
        CaptureSink sink;
        for (int i = 0; i < 40; ++i)
            enc.value()->add(i % 7 == 0 ? dpi_flow() : make_flow(static_cast<uint8_t>(i * 37), static_cast<uint16_t>(i * 1000)), sink);
        enc.value()->flush(sink);
        JsonFlowReader rd(1 << 16);
        MapVisitor v;
        for (const auto& m : sink.msgs) {
            ASSERT_LE(m.payload.size(), limit);
            const JsonWalkResult r = rd.walk(m.payload, v);
            ASSERT_TRUE(r.error.empty()) << limit << ": " << r.error;
            ASSERT_EQ(r.records, m.flows);
        }
        ASSERT_EQ(v.records.size(), 40u) << limit;
    }
}

TEST(ZmqJson, ReaderKeysValuesAndErrors)
{
    JsonFlowReader rd(4096);
    auto walk = [&](std::string_view s, MapVisitor& v) {
        return rd.walk({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, v);
    };
    MapVisitor v;
    auto r = walk(R"( {"8":"1.2.3.4", "35632.118":"7", "0.7":80, "IN_PKTS":3, "CUSTOM":-5, "F":1.5,)"
                  R"( "T":true, "N":null, "S":"\u00e9\u20ac\ud83d\ude00\n"} )",
                  v);
    ASSERT_TRUE(r.error.empty()) << r.error << " at " << r.offset;
    ASSERT_EQ(r.records, 1u);
    auto& m = v.records[0];
    EXPECT_EQ(m["IPV4_SRC_ADDR"], "1.2.3.4");
    EXPECT_EQ(m["L7_PROTO"], "7"); // 35632.118 = 57472 + 118
    EXPECT_EQ(m["L4_SRC_PORT"], "80");
    EXPECT_EQ(m["IN_PKTS"], "3");
    EXPECT_EQ(m["CUSTOM"], "-5");
    EXPECT_EQ(m["F"], std::to_string(1.5f));
    EXPECT_EQ(m["T"], "1");
    EXPECT_EQ(m.count("N"), 0u);
    EXPECT_EQ(m["S"], "\xe9\xe2\x82\xac\xf0\x9f\x98\x80\n"); // \u00XX is a raw byte, as weir escapes them

    MapVisitor e;
    EXPECT_TRUE(walk("[]", e).error.empty());
    EXPECT_TRUE(walk("[{}]", e).error.empty());
    EXPECT_EQ(e.records.size(), 0u);
    for (std::string_view bad :
         {"", "x", "[", "[{", R"([{"a":1},)", R"({"a":{"b":1}})", R"({"a":[1]})", R"({"a":1} x)", R"({"a":"b)",
          R"({"a":"\q"})", R"({"a":"\ud800"})", R"({"a":99999999999999999999})", R"({"a":-})", R"({"a":1.})",
          R"({"a":tru})", R"({a:1})", "{\"a\":\"\x01\"}", R"([{"a":1} {"b":2}])", R"([1])"}) {
        MapVisitor b;
        const auto br = walk(bad, b);
        EXPECT_FALSE(br.error.empty()) << "accepted: " << bad;
        EXPECT_LE(br.offset, bad.size());
    }
    // Records before an error are delivered, the cut one is not.
    MapVisitor p;
    const auto pr = walk(R"([{"a":1},{"b":2},{"c":)", p);
    EXPECT_FALSE(pr.error.empty());
    EXPECT_EQ(pr.records, 2u);
    EXPECT_EQ(p.records.size(), 2u);
    // Deep nesting is refused at the first level, never recursed into.
    const std::string deep(100001, '[');
    MapVisitor d;
    EXPECT_FALSE(walk(deep, d).error.empty());
    // Above the reader's limit.
    std::string big(5002, ' ');
    big.front() = '[';
    big.back() = ']';
    EXPECT_FALSE(walk(big, d).error.empty());
}
