// Capture filter compiler: tcpdump expressions through libpcap, verdicts on
// crafted frames, the kernel variant's VLAN prefix, and compilation from
// several threads at once.
#include "../../dataplane/src/bpf_filter.hpp"

#include <packet_builder.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

using weir::dataplane::BpfProgram;
using weir::dataplane::compile_filter;
using weir::dataplane::kernel_program;
using weir::dataplane::matches;
using namespace weir::test;

BpfProgram compile_ok(const std::string& expr, uint32_t linktype = lt::kEthernet, uint32_t snaplen = 65535)
{
    auto p = compile_filter(expr, linktype, snaplen);
    EXPECT_TRUE(p.ok()) << expr << ": " << (p.ok() ? "" : p.error().message());
    return p.ok() ? p.value() : BpfProgram{};
}

Bytes udp_frame(uint16_t sport, uint16_t dport)
{
    return PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(sport, dport).payload("hello").build();
}

Bytes tcp_frame(uint16_t sport, uint16_t dport)
{
    return PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(sport, dport, weir::kTcpSyn).build();
}

TEST(BpfFilter, CompilesGoodExpressions)
{
    for (const char* e : {"udp", "tcp port 80", "host 10.0.0.1 and not port 22", "vlan 10 and udp", "ip6", "icmp",
                          "ether host 02:00:00:00:00:0a", "tcp[tcpflags] & tcp-syn != 0"}) {
        const BpfProgram p = compile_ok(e);
        EXPECT_FALSE(p.insns.empty()) << e;
        EXPECT_EQ(p.expression, e);
    }
}

TEST(BpfFilter, EmptyExpressionAcceptsEverything)
{
    const BpfProgram p = compile_ok("", lt::kEthernet, 1500);
    ASSERT_EQ(p.insns.size(), 1u);
    EXPECT_EQ(p.insns[0].code, BPF_RET | BPF_K);
    EXPECT_EQ(p.insns[0].k, 1500u);
    const Bytes f = udp_frame(1, 2);
    EXPECT_TRUE(matches(p, raw(f)));
}

TEST(BpfFilter, BadExpressionIsEinvalWithPcapsMessage)
{
    for (const char* e : {"tcp port", "udp and and", "port 99999999", "nonsense_keyword", "((udp"}) {
        auto p = compile_filter(e, lt::kEthernet, 65535);
        ASSERT_FALSE(p.ok()) << e;
        EXPECT_EQ(p.error().code, std::errc::invalid_argument) << e;
        const std::string m = p.error().message();
        EXPECT_NE(m.find(std::string("bad filter '") + e + "'"), std::string::npos) << m;
        // libpcap's own words follow the quote.
        EXPECT_GT(m.size(), std::string("bad filter '': ").size() + std::strlen(e) + 5) << m;
    }
    auto p = compile_filter("udp and and", lt::kEthernet, 65535);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("syntax error"), std::string::npos) << p.error().message();
}

TEST(BpfFilter, BadSnaplenIsEinval)
{
    EXPECT_FALSE(compile_filter("udp", lt::kEthernet, 0).ok());
    EXPECT_FALSE(compile_filter("udp", lt::kEthernet, 262145).ok());
}

TEST(BpfFilter, VerdictsOnCraftedFrames)
{
    struct Case {
        const char* expr;
        Bytes frame;
        bool want;
    };
    const std::vector<Case> cases = {
        {"udp", udp_frame(5000, 53), true},
        {"udp", tcp_frame(5000, 80), false},
        {"tcp port 80", tcp_frame(5000, 80), true},
        {"tcp port 80", tcp_frame(80, 5000), true},
        {"tcp port 80", tcp_frame(5000, 443), false},
        {"tcp port 80", udp_frame(5000, 80), false},
        {"udp port 53", udp_frame(5000, 53), true},
        {"src host 10.0.0.1", udp_frame(1, 2), true},
        {"dst host 10.0.0.1", udp_frame(1, 2), false},
        {"ip6", PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build(), true},
        {"ip6 and udp", PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build(), true},
        {"ip", PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).build(), false},
        // Wire semantics: a tag is part of the frame, as tcpdump reads files.
        {"udp", PacketBuilder().eth().vlan(10).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build(), false},
        {"vlan and udp", PacketBuilder().eth().vlan(10).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build(), true},
        {"vlan 10 and udp", PacketBuilder().eth().vlan(10).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build(), true},
        {"vlan 11 and udp", PacketBuilder().eth().vlan(10).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build(), false},
        {"tcp[tcpflags] & tcp-syn != 0", tcp_frame(1, 2), true},
        {"ether src 02:00:00:00:00:0a", udp_frame(1, 2), true},
        {"ether src 02:00:00:00:00:0b", udp_frame(1, 2), false},
    };
    for (const Case& c : cases) {
        const BpfProgram p = compile_ok(c.expr);
        EXPECT_EQ(matches(p, raw(c.frame)), c.want) << c.expr;
    }
}

TEST(BpfFilter, RawIpLinkType)
{
    const BpfProgram p = compile_ok("udp port 53", lt::kRaw);
    const Bytes yes = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1000, 53).build();
    const Bytes no = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1000, 53).build();
    EXPECT_TRUE(matches(p, raw(yes, lt::kRaw)));
    EXPECT_FALSE(matches(p, raw(no, lt::kRaw)));
}

TEST(BpfFilter, TruncatedFrameCannotMatchPastItsEnd)
{
    const BpfProgram p = compile_ok("udp port 53");
    const Bytes f = udp_frame(1000, 53);
    weir::RawPacket r = raw(f);
    EXPECT_TRUE(matches(p, r));
    r.caplen = 30; // cut inside the IP header: the port load falls outside
    EXPECT_FALSE(matches(p, r));
}

TEST(BpfFilter, KernelProgramPrefixesTheVlanCheck)
{
    const BpfProgram p = compile_ok("udp", lt::kEthernet, 2000);
    const BpfProgram k = kernel_program(p);
    ASSERT_EQ(k.insns.size(), p.insns.size() + 3);
    EXPECT_EQ(k.insns[0].code, BPF_LD | BPF_B | BPF_ABS);
    EXPECT_EQ(k.insns[0].k, uint32_t(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT));
    EXPECT_EQ(k.insns[1].code, BPF_JMP | BPF_JEQ | BPF_K);
    EXPECT_EQ(k.insns[1].jt, 1);
    EXPECT_EQ(k.insns[2].code, BPF_RET | BPF_K);
    EXPECT_EQ(k.insns[2].k, 2000u);
    for (size_t i = 0; i < p.insns.size(); ++i) {
        EXPECT_EQ(k.insns[i + 3].code, p.insns[i].code);
        EXPECT_EQ(k.insns[i + 3].k, p.insns[i].k);
    }
    // "Accept all" needs no prefix.
    EXPECT_EQ(kernel_program(compile_ok("")).insns.size(), 1u);
}

TEST(BpfFilter, CompilesFromManyThreads)
{
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    const Bytes f80 = tcp_frame(5000, 80);
    const Bytes f443 = tcp_frame(5000, 443);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                const uint16_t port = (i + t) % 2 == 0 ? 80 : 443;
                auto p = compile_filter("tcp port " + std::to_string(port), lt::kEthernet, 65535);
                if (!p.ok() || matches(p.value(), raw(f80)) != (port == 80) ||
                    matches(p.value(), raw(f443)) != (port == 443))
                    failures.fetch_add(1);
                if (compile_filter("tcp port", lt::kEthernet, 65535).ok())
                    failures.fetch_add(1);
            }
        });
    }
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(failures.load(), 0);
}

} // namespace
