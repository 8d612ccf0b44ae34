// Verdict channel requests: parsing, flow key canonicalisation (the same
// key as the decoder builds), subnets, and garbage that must give an error
// and never a crash. Pure functions: no root, no kernel map.
#include <weir/dataplane/verdict_server.hpp>
#include <weir/engine/decoder.hpp>

#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <random>
#include <string>

using namespace weir::dataplane;
using weir::FlowKey;

namespace {

std::string parse_error(const std::string& line)
{
    auto r = parse_verdict_request(line);
    EXPECT_FALSE(r.ok()) << "accepted: " << line;
    return r.ok() ? std::string() : r.error().context;
}

} // namespace

TEST(VerdictProto, FlowKeyIsCanonical)
{
    auto a = make_flow_key("10.0.0.2", "10.0.0.1", 80, 1234, 6);
    auto b = make_flow_key("10.0.0.1", "10.0.0.2", 1234, 80, 6);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(*a == *b);
    uint8_t lo[4];
    inet_pton(AF_INET, "10.0.0.1", lo);
    EXPECT_EQ(std::memcmp(a->addr_a.data(), lo, 4), 0);
    EXPECT_EQ(a->port_a, 1234);
    EXPECT_EQ(a->port_b, 80);
    EXPECT_EQ(a->ip_version, 4);
    for (int i = 4; i < 16; ++i)
        EXPECT_EQ(a->addr_a[i], 0);
    // Same address: the lower port is side A.
    auto c = make_flow_key("10.0.0.1", "10.0.0.1", 5000, 53, 17);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->port_a, 53);
    // Addresses compare as big-endian byte strings (9.x < 10.x, not as text).
    auto d = make_flow_key("10.0.0.1", "9.255.0.1", 1, 2, 6);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->addr_a[0], 9);
    auto v6 = make_flow_key("2001:db8::2", "2001:db8::1", 443, 50000, 6, 12);
    ASSERT_TRUE(v6.ok());
    EXPECT_EQ(v6->ip_version, 6);
    EXPECT_EQ(v6->addr_a[15], 1);
    EXPECT_EQ(v6->vlan, 12);
    EXPECT_FALSE(make_flow_key("10.0.0.1", "2001:db8::1", 1, 2, 6).ok());
    EXPECT_FALSE(make_flow_key("10.0.0", "10.0.0.1", 1, 2, 6).ok());
    EXPECT_FALSE(make_flow_key("10.0.0.1", "10.0.0.2", 1, 2, 6, 4096).ok());
}

TEST(VerdictProto, FlowKeyMatchesTheDecoder)
{
    // The key an IDS names must be the key the decoder (and XDP) builds,
    // in both directions of the flow.
    using namespace weir::test;
    weir::engine::Decoder dec;
    for (bool reverse : {false, true}) {
        PacketBuilder pb;
        if (!reverse)
            pb.eth().vlan(7).ipv4("192.168.1.20", "10.1.1.1").tcp(51000, 443, weir::kTcpSyn);
        else
            pb.eth().vlan(7).ipv4("10.1.1.1", "192.168.1.20").tcp(443, 51000, static_cast<uint8_t>(weir::kTcpSyn | weir::kTcpAck));
        const Bytes frame = pb.build();
        const weir::RawPacket pkt = raw(frame);
        weir::PacketMeta meta;
        ASSERT_TRUE(dec.decode(pkt, meta));
        auto k = make_flow_key("192.168.1.20", "10.1.1.1", 51000, 443, 6, 7);
        ASSERT_TRUE(k.ok());
        EXPECT_TRUE(*k == meta.key) << "reverse=" << reverse;
    }
}

TEST(VerdictProto, AddFlow)
{
    auto r = parse_verdict_request(
        R"({"op":"add","flow":{"src":"10.0.0.2","dst":"10.0.0.1","sport":80,"dport":1234,"proto":"TCP","vlan":5},)"
        R"("verdict":"shunt","after":10,"ttl":1.5,"reason":"tls handshake done","tcp_control":true})");
    ASSERT_TRUE(r.ok()) << r.error().context;
    EXPECT_EQ(r->op, VerdictOp::Add);
    ASSERT_EQ(r->items.size(), 1u);
    const VerdictItem& it = r->items[0];
    EXPECT_EQ(it.target.kind, VerdictTarget::Kind::Flow);
    auto want = make_flow_key("10.0.0.1", "10.0.0.2", 1234, 80, 6, 5);
    EXPECT_TRUE(it.target.key == *want);
    EXPECT_EQ(it.verdict.action, WEIR_VERDICT_SHUNT);
    EXPECT_EQ(it.verdict.shunt_after, 10u);
    EXPECT_EQ(it.verdict.source, WEIR_VERDICT_SRC_API);
    EXPECT_EQ(it.verdict.flags, WEIR_VERDICT_F_TCP_CONTROL);
    EXPECT_EQ(it.ttl_ns, 1'500'000'000u);
    EXPECT_EQ(it.reason, "tls handshake done");
    EXPECT_EQ(it.verdict.packets, 0u);
    EXPECT_EQ(it.verdict.expires_ns, 0u);  // set when applied
}

TEST(VerdictProto, JsonReaderDecodesAndRejectsLikeRfc8259)
{
    auto r = parse_verdict_request(
        "{ \"op\" : \"add\" ,\r\n \"host\":\"10.0.0.1\",\"verdict\":\"drop\",\"ttl\":1.5e2,"
        "\"reason\":\"a\\\"b\\\\c\\/\\u00e9\\ud83d\\ude00 \xc3\xa9\\n\",\"unknown\":[null,true,-1.0e-400,{}]}\t");
    ASSERT_TRUE(r.ok()) << r.error().context;
    EXPECT_EQ(r->items[0].ttl_ns, 150'000'000'000u);
    EXPECT_EQ(r->items[0].reason, "a\"b\\c/\xc3\xa9\xf0\x9f\x98\x80 \xc3\xa9\n");
    // The last of a repeated member counts.
    auto dup = parse_verdict_request(R"({"op":"add","host":"10.0.0.1","verdict":"forward","verdict":"drop"})");
    ASSERT_TRUE(dup.ok());
    EXPECT_EQ(dup->items[0].verdict.action, WEIR_VERDICT_DROP);
    for (const char* bad : {
             "{\"op\":\"stats\"} x", "{\"op\":\"stats\",}", "{'op':'stats'}", "{\"op\":\"st\x01ts\"}",
             "{\"op\":\"\\ud83d\"}", "{\"op\":\"\\ude00\"}", "{\"op\":\"\\u12\"}", "{\"op\":\"\\x41\"}",
             "{\"op\":\"\xc3\"}", "{\"op\":\"\xed\xa0\x80\"}", "{\"op\":\"\xc0\xaf\"}", "{\"a\":01}", "{\"a\":1.}",
             "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":1e400}", "{\"a\":tru}", "{\"a\" 1}", "[1 2]"}) {
        auto b = parse_verdict_request(bad);
        ASSERT_FALSE(b.ok()) << bad;
        EXPECT_EQ(b.error().context, "not valid JSON") << bad;
    }
    std::string deep = std::string(40, '[') + std::string(40, ']');
    auto d = parse_verdict_request(deep);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.error().context.find("nesting deeper"), std::string::npos);
}

TEST(VerdictProto, HostSubnetAndBatch)
{
    auto r = parse_verdict_request(R"({"op":"add","items":[
        {"host":"10.0.0.9","verdict":"drop","reason":7},
        {"subnet":"2001:db8::/32","verdict":"divert","egress":3},
        {"flow":{"src":"::1","dst":"::2","sport":1,"dport":2,"proto":17},"verdict":"forward"}]})");
    ASSERT_TRUE(r.ok()) << r.error().context;
    ASSERT_EQ(r->items.size(), 3u);
    EXPECT_EQ(r->items[0].target.kind, VerdictTarget::Kind::Subnet);
    EXPECT_EQ(r->items[0].target.subnet.prefix_len, 32);
    EXPECT_EQ(r->items[0].verdict.reason, 7);
    EXPECT_EQ(r->items[1].target.subnet.ip_version, 6);
    EXPECT_EQ(r->items[1].target.subnet.prefix_len, 32);
    EXPECT_EQ(r->items[1].verdict.action, WEIR_VERDICT_DIVERT);
    EXPECT_EQ(r->items[1].verdict.egress, 3u);
    EXPECT_EQ(r->items[2].target.key.proto, 17);
    EXPECT_EQ(r->items[2].target.key.ip_version, 6);

    auto del = parse_verdict_request(R"({"op":"del","subnet":"10.0.0.0/8"})");
    ASSERT_TRUE(del.ok());
    EXPECT_EQ(del->op, VerdictOp::Del);
    EXPECT_EQ(del->items[0].target.subnet.prefix_len, 8);
    for (const char* op : {"list", "stats", "expire"}) {
        auto o = parse_verdict_request(std::string(R"({"op":")") + op + "\"}");
        ASSERT_TRUE(o.ok()) << op;
        EXPECT_TRUE(o->items.empty());
    }
}

TEST(VerdictProto, SubnetParsing)
{
    auto s = parse_subnet("10.1.0.0/16");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(format_subnet(*s), "10.1.0.0/16");
    const weir_subnet_key k = to_subnet_key(*s);
    EXPECT_EQ(k.prefixlen, 8u + 16u);
    EXPECT_EQ(k.ip_version, 4);
    EXPECT_EQ(from_subnet_key(k), *s);
    EXPECT_FALSE(parse_subnet("10.1.0.1/16").ok());  // host bits
    EXPECT_FALSE(parse_subnet("10.1.0.0/33").ok());
    EXPECT_FALSE(parse_subnet("::/129").ok());
    EXPECT_FALSE(parse_subnet("10.1.0.0/").ok());
    EXPECT_FALSE(parse_subnet("/8").ok());
    EXPECT_EQ(parse_subnet("::1")->prefix_len, 128);
}

TEST(VerdictProto, BadRequestsSayWhy)
{
    struct Case {
        const char* line;
        const char* want;
    } cases[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"[1,2]", "a request is a JSON object"},
        {R"({"verdict":"drop"})", "missing \"op\""},
        {R"({"op":5})", "missing \"op\""},
        {R"({"op":"nuke"})", "unknown op 'nuke'"},
        {R"({"op":"add","verdict":"drop"})", "exactly one of"},
        {R"({"op":"add","host":"10.0.0.1","subnet":"10.0.0.0/8","verdict":"drop"})", "exactly one of"},
        {R"({"op":"add","host":"10.0.0.1"})", "\"verdict\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"obliterate"})", "unknown verdict"},
        {R"({"op":"add","host":"10.0.0.0/8","verdict":"drop"})", "without a prefix"},
        {R"({"op":"add","host":"10.0.0.256","verdict":"drop"})", "bad IPv4"},
        {R"({"op":"add","subnet":"10.0.0.1/8","verdict":"drop"})", "host bits"},
        {R"({"op":"add","host":"10.0.0.1","verdict":"divert"})", "divert needs \"egress\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","egress":1})", "divert only"},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","after":3})", "shunt only"},
        {R"({"op":"add","host":"10.0.0.1","verdict":"shunt","after":-3})", "\"after\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"shunt","after":"3"})", "\"after\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","ttl":-1})", "\"ttl\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","ttl":"1"})", "\"ttl\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","reason":70000})", "\"reason\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","reason":{}})", "\"reason\""},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","tcp_control":1})", "tcp_control"},
        {R"({"op":"add","flow":{"src":"10.0.0.1","dst":"10.0.0.2","proto":"tcp","sport":70000},"verdict":"drop"})",
         "\"sport\""},
        {R"({"op":"add","flow":{"src":"10.0.0.1","dst":"10.0.0.2","sport":1},"verdict":"drop"})", "\"proto\""},
        {R"({"op":"add","flow":{"src":"10.0.0.1","dst":"10.0.0.2","proto":"tcpx"},"verdict":"drop"})", "\"proto\""},
        {R"({"op":"add","flow":{"src":"10.0.0.1","dst":"::1","proto":6},"verdict":"drop"})", "IP versions"},
        {R"({"op":"add","flow":{"src":"10.0.0.1","proto":6},"verdict":"drop"})", "\"src\" and \"dst\""},
        {R"({"op":"add","flow":[],"verdict":"drop"})", "must be an object"},
        {R"({"op":"add","flow":{"src":1,"dst":2,"proto":6},"verdict":"drop"})", "\"src\" and \"dst\""},
        {R"({"op":"add","items":{}})", "\"items\" must be an array"},
        {R"({"op":"add","items":[]})", "\"items\" is empty"},
        {R"({"op":"add","items":[5]})", "item 0: an item must be an object"},
        {R"({"op":"add","items":[{"host":"10.0.0.1","verdict":"drop"},{"host":"x","verdict":"drop"}]})",
         "item 1: bad IPv4"},
        {R"({"op":"add","host":"10.0.0.1","verdict":"drop","items":[{"host":"10.0.0.2","verdict":"drop"}]})",
         "not both"},
        {R"({"op":"del"})", "exactly one of"},
    };
    for (const Case& c : cases) {
        const std::string e = parse_error(c.line);
        EXPECT_NE(e.find(c.want), std::string::npos) << c.line << " -> '" << e << "' lacks '" << c.want << "'";
    }
    // Too many items.
    std::string many = R"({"op":"del","items":[)";
    for (int i = 0; i < 5; ++i)
        many += std::string(i ? "," : "") + R"({"host":"10.0.0.1"})";
    many += "]}";
    EXPECT_TRUE(parse_verdict_request(many).ok());
    auto r = parse_verdict_request(many, 4);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().context.find("more than 4 items"), std::string::npos);
}

TEST(VerdictProto, GarbageNeverCrashes)
{
    // Random bytes, and random mutations of valid requests.
    const std::string valid[] = {
        R"({"op":"add","flow":{"src":"10.0.0.2","dst":"10.0.0.1","sport":80,"dport":1234,"proto":"tcp"},"verdict":"drop"})",
        R"({"op":"add","items":[{"host":"10.0.0.9","verdict":"shunt","after":4,"ttl":3}]})",
        R"({"op":"del","subnet":"2001:db8::/32"})",
    };
    std::mt19937 rng(7);
    size_t accepted = 0, rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        if (i % 2 == 0) {
            const size_t len = rng() % 96;
            for (size_t j = 0; j < len; ++j)
                s.push_back(static_cast<char>(rng() & 0xff));
        } else {
            s = valid[rng() % 3];
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int e = 0; e < edits && !s.empty(); ++e) {
                const size_t pos = rng() % s.size();
                switch (rng() % 3) {
                case 0:
                    s[pos] = static_cast<char>(rng() & 0xff);
                    break;
                case 1:
                    s.erase(pos, 1 + rng() % 8);
                    break;
                default:
                    s.insert(pos, 1, "{}[]\":,0-9e.\\"[rng() % 14]);
                }
            }
        }
        auto r = parse_verdict_request(s);
        if (r.ok()) {
            ++accepted;
        } else {
            ++rejected;
            EXPECT_FALSE(r.error().context.empty());
        }
    }
    EXPECT_GT(rejected, 10000u);
    // Deeply nested JSON is refused, not a stack overflow.
    std::string deep(100000, '[');
    EXPECT_FALSE(parse_verdict_request(deep).ok());
    (void)accepted;
}
