// Egress policy: INI parsing, precedence (L7 > subnet > default), longest
// prefix, shunt thresholds, errors with line numbers, and reloads that keep
// the running policy when the new file is bad.
#include <weir/engine/policy.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

using weir::FlowKey;
using weir::engine::Decision;
using weir::engine::Policy;
using weir::engine::PolicyAction;
using weir::engine::PolicyLevel;
using weir::engine::PolicyStore;
using weir::engine::SliceMode;

namespace {

FlowKey key4(const char* a, const char* b, uint16_t pa, uint16_t pb, uint8_t proto)
{
    FlowKey k;
    inet_pton(AF_INET, a, k.addr_a.data());
    inet_pton(AF_INET, b, k.addr_b.data());
    k.port_a = pa;
    k.port_b = pb;
    k.proto = proto;
    k.ip_version = 4;
    return k;
}

FlowKey key6(const char* a, const char* b, uint8_t proto)
{
    FlowKey k;
    inet_pton(AF_INET6, a, k.addr_a.data());
    inet_pton(AF_INET6, b, k.addr_b.data());
    k.port_a = 1000;
    k.port_b = 443;
    k.proto = proto;
    k.ip_version = 6;
    return k;
}

Policy parse_ok(const std::string& text)
{
    auto p = Policy::parse(text, "t.conf");
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok())
        return Policy();
    return std::move(*p);
}

std::string parse_err(const std::string& text)
{
    auto p = Policy::parse(text, "t.conf");
    EXPECT_FALSE(p.ok()) << "accepted:\n" << text;
    return p.ok() ? std::string() : p.error().context;
}

const char* kCentoExample = R"(; Cento's documented example, in weir's spelling
[shunt]
default = 10
tcp = 12
udp = 2
HTTP = 40

[egress.balanced]
default = forward

[egress.balanced.subnet]
192.168.2/24 = discard

[egress.balanced.protocol]
SSL = discard
DNS = egress:eth1          ; steer DNS flows to egress NIC eth1
)";

} // namespace

TEST(Policy, BuiltInDefaultForwardsEverything)
{
    Policy p;
    const Decision d = p.decide(key4("10.0.0.1", "10.0.0.2", 1, 2, 6), "TLS");
    EXPECT_EQ(d.action, PolicyAction::Forward);
    EXPECT_EQ(d.level, PolicyLevel::Default);
    EXPECT_EQ(d.line, 0u);
    EXPECT_EQ(p.shunt_threshold(6, ""), 10u);
}

TEST(Policy, CentoExampleParsesWithAliases)
{
    Policy p = parse_ok(kCentoExample);
    EXPECT_EQ(p.subnet_rules(), 1u);
    EXPECT_EQ(p.protocol_rules(), 2u);
    // SSL is nDPI's old name for TLS: the rule matches "TLS".
    Decision d = p.decide(key4("10.0.0.1", "10.0.0.2", 40000, 443, 6), "TLS");
    EXPECT_EQ(d.action, PolicyAction::Discard);
    EXPECT_EQ(d.level, PolicyLevel::Protocol);
    EXPECT_EQ(d.line, 15u);
    d = p.decide(key4("10.0.0.1", "10.0.0.2", 40000, 53, 17), "DNS");
    EXPECT_EQ(d.action, PolicyAction::Egress);
    EXPECT_EQ(d.egress, "eth1");
    EXPECT_EQ(d.egress_index, -1);
    // The short CIDR 192.168.2/24, either endpoint.
    d = p.decide(key4("10.0.0.1", "192.168.2.77", 40000, 80, 6), "");
    EXPECT_EQ(d.action, PolicyAction::Discard);
    EXPECT_EQ(d.level, PolicyLevel::Subnet);
    EXPECT_EQ(d.line, 12u);
    d = p.decide(key4("192.168.2.5", "192.168.3.1", 40000, 80, 6), "");
    EXPECT_EQ(d.action, PolicyAction::Discard);
    d = p.decide(key4("192.168.3.5", "192.168.4.1", 40000, 80, 6), "");
    EXPECT_EQ(d.action, PolicyAction::Forward);
    EXPECT_EQ(d.level, PolicyLevel::Default);
}

TEST(Policy, ProtocolBeatsSubnetBeatsDefault)
{
    Policy p = parse_ok(R"(
[global]
default = shunt
[subnet]
10.0.0.0/8 = discard
[protocol]
HTTP = forward
)");
    const FlowKey in_subnet = key4("10.1.2.3", "172.16.0.1", 40000, 80, 6);
    const FlowKey outside = key4("172.16.0.9", "172.16.0.1", 40000, 80, 6);
    EXPECT_EQ(p.decide(in_subnet, "HTTP").action, PolicyAction::Forward);
    EXPECT_EQ(p.decide(in_subnet, "HTTP").level, PolicyLevel::Protocol);
    EXPECT_EQ(p.decide(in_subnet, "TLS").action, PolicyAction::Discard);
    EXPECT_EQ(p.decide(outside, "TLS").action, PolicyAction::Shunt);
    // Until the protocol is known, protocol rules do not apply.
    EXPECT_EQ(p.decide(in_subnet, "").action, PolicyAction::Discard);
    EXPECT_EQ(p.decide(in_subnet, "Unknown").action, PolicyAction::Discard);
    // Case-insensitive names; nDPI "master.app" names match the app, then the master.
    EXPECT_EQ(p.decide(outside, "http").action, PolicyAction::Forward);
    EXPECT_EQ(p.decide(outside, "HTTP.YouTube").action, PolicyAction::Forward);
}

TEST(Policy, LongestPrefixWins)
{
    Policy p = parse_ok(R"(
[subnet]
10.0.0.0/8 = discard
10.1.0.0/16 = forward
10.1.2.0/24 = shunt:3
10.1.2.128/25 = egress:4
2001:db8::/32 = discard
2001:db8:1::/48 = forward
)");
    EXPECT_EQ(p.decide(key4("10.9.9.9", "8.8.8.8", 1, 2, 17)).action, PolicyAction::Discard);
    EXPECT_EQ(p.decide(key4("10.1.9.9", "8.8.8.8", 1, 2, 17)).action, PolicyAction::Forward);
    Decision d = p.decide(key4("10.1.2.9", "8.8.8.8", 1, 2, 17));
    EXPECT_EQ(d.action, PolicyAction::Shunt);
    EXPECT_EQ(d.shunt_after, 3u);
    d = p.decide(key4("10.1.2.200", "8.8.8.8", 1, 2, 17));
    EXPECT_EQ(d.action, PolicyAction::Egress);
    EXPECT_EQ(d.egress_index, 4);
    // The longest match over both endpoints: A in /8, B in /24.
    EXPECT_EQ(p.decide(key4("10.9.0.1", "10.1.2.3", 1, 2, 6)).action, PolicyAction::Shunt);
    EXPECT_EQ(p.decide(key6("2001:db8:1::1", "2001:4860::1", 6)).action, PolicyAction::Forward);
    EXPECT_EQ(p.decide(key6("2001:db8:2::1", "2001:4860::1", 6)).action, PolicyAction::Discard);
    // An IPv4 rule never matches an IPv6 flow and the other way round.
    EXPECT_EQ(p.decide(key6("a00::1", "b00::1", 6)).action, PolicyAction::Forward);
    EXPECT_EQ(p.decide(key6("a00::1", "b00::1", 6)).level, PolicyLevel::Default);
}

TEST(Policy, ShuntThresholds)
{
    Policy p = parse_ok(R"(
[global]
default = shunt
[shunt]
default = 7
tcp = 12
udp = 2
HTTP = 40
SSL = 5
[protocol]
QUIC = shunt:1
DNS = shunt
)");
    const FlowKey tcp = key4("10.0.0.1", "10.0.0.2", 1, 2, 6);
    const FlowKey udp = key4("10.0.0.1", "10.0.0.2", 1, 2, 17);
    const FlowKey icmp = key4("10.0.0.1", "10.0.0.2", 0, 0, 1);
    EXPECT_EQ(p.decide(tcp, "").shunt_after, 12u);
    EXPECT_EQ(p.decide(udp, "").shunt_after, 2u);
    EXPECT_EQ(p.decide(icmp, "").shunt_after, 7u);
    EXPECT_EQ(p.decide(tcp, "HTTP").shunt_after, 40u);   // L7 threshold beats tcp
    EXPECT_EQ(p.decide(tcp, "TLS").shunt_after, 5u);     // SSL = TLS
    EXPECT_EQ(p.decide(udp, "QUIC").shunt_after, 1u);    // explicit shunt:K beats [shunt]
    EXPECT_EQ(p.decide(udp, "DNS").shunt_after, 2u);     // bare shunt: udp
    EXPECT_EQ(p.decide(udp, "DNS").level, PolicyLevel::Protocol);
}

TEST(Policy, SliceActions)
{
    Policy p = parse_ok(R"(
[global]
default = slice
slice = 128
[protocol]
TLS = slice:l3
HTTP = slice-l4
DNS = slice:64
)");
    const FlowKey k = key4("10.0.0.1", "10.0.0.2", 1, 2, 6);
    Decision d = p.decide(k, "");
    EXPECT_EQ(d.action, PolicyAction::Slice);
    EXPECT_EQ(d.slice.mode, SliceMode::Bytes);
    EXPECT_EQ(d.slice.bytes, 128);
    EXPECT_EQ(p.decide(k, "TLS").slice.mode, SliceMode::L3);
    EXPECT_EQ(p.decide(k, "HTTP").slice.mode, SliceMode::L4);
    EXPECT_EQ(p.decide(k, "DNS").slice.bytes, 64);
    // Without [global] slice, a bare slice keeps through L4.
    Policy q = parse_ok("[global]\ndefault = slice\n");
    EXPECT_EQ(q.decide(k, "").slice.mode, SliceMode::L4);
}

TEST(Policy, CommentsAndWhitespace)
{
    Policy p = parse_ok("\r\n  # comment\n[ Subnet ]   ; trailing\n\t10.0.0.1 = drop # host\r\n\n");
    EXPECT_EQ(p.subnet_rules(), 1u);
    EXPECT_EQ(p.decide(key4("10.0.0.1", "10.0.0.2", 1, 2, 6)).action, PolicyAction::Discard);
    EXPECT_EQ(p.decide(key4("10.0.0.3", "10.0.0.2", 1, 2, 6)).action, PolicyAction::Forward);
    // Bare queue index (Cento) = egress index.
    Policy q = parse_ok("[protocol]\nDNS = 3\n");
    EXPECT_EQ(q.decide(key4("1.1.1.1", "2.2.2.2", 1, 53, 17), "DNS").egress_index, 3);
}

TEST(Policy, ErrorsNameTheLineAndText)
{
    struct Case {
        const char* text;
        const char* want;  // substring of the error
    } cases[] = {
        {"[global]\ndefault = discrad\n", "t.conf:2: unknown action 'discrad'"},
        {"[protocol]\nDNS = eth1\n", "write egress:eth1"},
        {"[subnet]\n10.0.0.0/33 = drop\n", "t.conf:2: prefix length over 32"},
        {"[subnet]\n10.0.0.1/8 = drop\n", "host bits set past /8"},
        {"[subnet]\n300.1.1.1 = drop\n", "bad IPv4 address"},
        {"[subnet]\n10.0.0.0/8 = drop\n10.0.0.0/8 = forward\n", "t.conf:3: duplicate subnet (first on line 2)"},
        {"default = forward\n", "t.conf:1: key outside any section"},
        {"[global]\n\n\ndefault = forward\n[bridge]\ndefault = discard\n",
         "t.conf:6: duplicate key 'default' (first on line 4)"},
        {"[nonsense]\n", "t.conf:1: unknown section 'nonsense'"},
        {"[global\n", "section header without ']'"},
        {"[global]\njust words\n", "t.conf:2: expected 'key = value'"},
        {"[global]\ndefault =\n", "empty value"},
        {"[shunt]\ntcp = -1\n", "packet counts"},
        {"[shunt]\ntcp = ten\n", "packet counts"},
        {"[global]\ndefault = shunt:x\n", "shunt needs a packet count"},
        {"[global]\ndefault = slice:l7\n", "slice takes l3, l4"},
        {"[global]\nslice = 0\n", "slice takes l3, l4"},
        {"[global]\nbanned-hosts = discard\n", "banned-hosts is not supported"},
        {"[global]\ncolour = blue\n", "unknown key 'colour'"},
        {"[protocol]\nTLS = drop\nSSL = forward\n", "t.conf:3: duplicate key 'TLS' (first on line 2)"},
        {"[protocol]\nbad name = drop\n", "bad protocol name"},
        {"[global]\ndefault = egress:\n", "egress takes an index or an interface name"},
    };
    for (const Case& c : cases) {
        const std::string e = parse_err(c.text);
        EXPECT_NE(e.find(c.want), std::string::npos) << "error '" << e << "' lacks '" << c.want << "'";
    }
    // The offending text is quoted.
    EXPECT_NE(parse_err("[global]\n  default = discrad   ; typo\n").find("in 'default = discrad   ; typo'"),
              std::string::npos);
}

TEST(Policy, GarbageNeverCrashes)
{
    std::string s;
    uint32_t x = 12345;
    for (int round = 0; round < 2000; ++round) {
        s.clear();
        const int len = static_cast<int>(x % 200);
        for (int i = 0; i < len; ++i) {
            x = x * 1103515245 + 12345;
            const char alphabet[] = "[]=;#:/.\n\r\t 0123456789abcdefslhuntforwardDISCARD\0\xff";
            s.push_back(alphabet[(x >> 16) % (sizeof(alphabet) - 1)]);
        }
        auto p = Policy::parse(s);
        if (!p.ok()) {
            EXPECT_FALSE(p.error().context.empty());
        }
    }
    EXPECT_FALSE(Policy::parse(std::string(5000, 'x')).ok());
}

TEST(Policy, LoadReportsMissingFile)
{
    auto p = Policy::load("/nonexistent/weir-policy.conf");
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("/nonexistent/weir-policy.conf"), std::string::npos);
}

TEST(PolicyStore, FailedReloadKeepsTheRunningPolicy)
{
    char dir[] = "/tmp/wv-policy-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string path = std::string(dir) + "/egress.conf";
    auto write = [&](const std::string& text) {
        std::ofstream(path, std::ios::trunc) << text;
    };
    write("[global]\ndefault = discard\n");
    PolicyStore store;
    const FlowKey k = key4("10.0.0.1", "10.0.0.2", 1, 2, 6);
    EXPECT_EQ(store.current()->decide(k).action, PolicyAction::Forward);
    ASSERT_TRUE(store.reload(path).ok());
    EXPECT_EQ(store.generation(), 1u);
    auto held = store.current();
    EXPECT_EQ(held->decide(k).action, PolicyAction::Discard);

    write("[global]\ndefault = discard\n[subnet]\n10.0.0.0/8 = bogus\n");
    auto r = store.reload(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().context.find(path + ":4: unknown action 'bogus'"), std::string::npos) << r.error().context;
    EXPECT_EQ(store.generation(), 1u);
    EXPECT_EQ(store.current().get(), held.get());
    EXPECT_EQ(store.current()->decide(k).action, PolicyAction::Discard);

    write("[global]\ndefault = shunt:4\n");
    ASSERT_TRUE(store.reload(path).ok());
    EXPECT_EQ(store.current()->decide(k).action, PolicyAction::Shunt);
    // The policy held before the reload is still usable.
    EXPECT_EQ(held->decide(k).action, PolicyAction::Discard);
    EXPECT_FALSE(store.reload_text("[x]\n").ok());
    EXPECT_EQ(store.current()->decide(k).shunt_after, 4u);

    std::remove(path.c_str());
    rmdir(dir);
}
