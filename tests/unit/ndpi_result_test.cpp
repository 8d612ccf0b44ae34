// Unit tests of the ndpiReader result parser used by the golden tests.
#include "../golden/ndpi_result.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {

using weir::test::looks_like_ndpi_flow_line;
using weir::test::parse_ndpi_flow_line;
using weir::test::read_ndpi_result;

std::array<uint8_t, 16> v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    return {a, b, c, d};
}

TEST(NdpiResult, Ipv4TcpWithVlanAndDpiFields)
{
    std::string err;
    auto f = parse_ndpi_flow_line(
        "\t1\tTCP 192.168.1.13:53096 <-> 178.62.197.130:443 [VLAN: 505][proto: 91.26/TLS.ntop][IP: 26/ntop]"
        "[Encrypted][Confidence: DPI][DPI packets: 6][cat: Network/14][316 pkts/28495 bytes <-> 351 pkts/429572 bytes]"
        "[Goodput ratio: 27/98][7.08 sec][Hostname/SNI: www.ntop.org][(Advertised) ALPNs: h2;http/1.1]"
        "[JA3C: 66918128f1b9b03303d77c6f2eefd128][JA4: t13d1516h2_8daaf6152771_e5627efa2ab1]"
        "[Plen Bins: 0,1,0]",
        &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->id, 1u);
    EXPECT_EQ(f->l4, "TCP");
    EXPECT_EQ(f->ip_proto, 6);
    EXPECT_EQ(f->src.ip_version, 4);
    EXPECT_EQ(f->src.addr, v4(192, 168, 1, 13));
    EXPECT_TRUE(f->src.has_port);
    EXPECT_EQ(f->src.port, 53096);
    EXPECT_EQ(f->dst.addr, v4(178, 62, 197, 130));
    EXPECT_EQ(f->dst.port, 443);
    EXPECT_TRUE(f->bidirectional);
    EXPECT_EQ(f->vlan, 505);
    EXPECT_EQ(f->dir[0].packets, 316u);
    EXPECT_EQ(f->dir[0].bytes, 28495u);
    EXPECT_EQ(f->dir[1].packets, 351u);
    EXPECT_EQ(f->dir[1].bytes, 429572u);
    EXPECT_EQ(f->proto, "91.26/TLS.ntop");
    EXPECT_EQ(f->tunnel, "");
    EXPECT_EQ(f->field("Hostname/SNI"), "www.ntop.org");
    EXPECT_EQ(f->field("JA3C"), "66918128f1b9b03303d77c6f2eefd128");
    EXPECT_EQ(f->field("JA4"), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    EXPECT_EQ(f->field("(Advertised) ALPNs"), "h2;http/1.1");
    EXPECT_EQ(f->field("Encrypted"), "");
    EXPECT_FALSE(f->field("URL"));
    EXPECT_EQ(f->endpoints_text(), "TCP 192.168.1.13:53096 <-> 178.62.197.130:443");
}

TEST(NdpiResult, Ipv6OneWayWithBracketedValue)
{
    std::string err;
    auto f = parse_ndpi_flow_line(
        "\t34\tUDP [fe80::9bd:81dd:2fdc:5750]:1900 -> [ff02::c]:1900 [proto: 12/SSDP][IP: 0/Unknown]"
        "[ClearText][16 pkts/8921 bytes -> 0 pkts/0 bytes][Goodput ratio: 89/0][8.40 sec]"
        "[Hostname/SNI: [ff02::c]:1900][URL: [ff02::c]:1900*][User-Agent: Microsoft-Windows/10.0 UPnP/1.0]",
        &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->ip_proto, 17);
    EXPECT_EQ(f->src.ip_version, 6);
    std::array<uint8_t, 16> fe80{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x09, 0xbd, 0x81, 0xdd, 0x2f, 0xdc, 0x57, 0x50};
    EXPECT_EQ(f->src.addr, fe80);
    EXPECT_EQ(f->src.port, 1900);
    std::array<uint8_t, 16> ff02{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c};
    EXPECT_EQ(f->dst.addr, ff02);
    EXPECT_FALSE(f->bidirectional);
    EXPECT_EQ(f->vlan, 0);
    EXPECT_EQ(f->dir[0].packets, 16u);
    EXPECT_EQ(f->dir[0].bytes, 8921u);
    EXPECT_EQ(f->dir[1].packets, 0u);
    EXPECT_EQ(f->field("Hostname/SNI"), "[ff02::c]:1900");
    EXPECT_EQ(f->field("URL"), "[ff02::c]:1900*");
    EXPECT_EQ(f->field("User-Agent"), "Microsoft-Windows/10.0 UPnP/1.0");
    EXPECT_EQ(f->endpoints_text(), "UDP [fe80::9bd:81dd:2fdc:5750]:1900 -> [ff02::c]:1900");
}

TEST(NdpiResult, IcmpWithZeroPortsAndWithout)
{
    auto a = parse_ndpi_flow_line("\t144\tICMP 172.16.42.1:0 -> 172.16.42.216:0 [proto: 81/ICMP][IP: 0/Unknown]"
                                  "[2 pkts/188 bytes -> 0 pkts/0 bytes][Risk: ** Susp Entropy **]");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->ip_proto, 1);
    EXPECT_TRUE(a->src.has_port);
    EXPECT_EQ(a->src.port, 0);
    EXPECT_EQ(a->field("Risk"), "** Susp Entropy **");

    auto b = parse_ndpi_flow_line("\t2\tICMP 10.0.0.1 <-> 10.0.0.2 [proto: 81/ICMP][4 pkts/392 bytes <-> 4 pkts/392 bytes]");
    ASSERT_TRUE(b);
    EXPECT_FALSE(b->src.has_port);
    EXPECT_EQ(b->src.addr, v4(10, 0, 0, 1));
    EXPECT_EQ(b->dst.addr, v4(10, 0, 0, 2));
    EXPECT_EQ(b->dir[1].packets, 4u);

    auto c = parse_ndpi_flow_line("\t3\tICMPV6 [2001:470:1f17:13f:3e97:eff:fe73:4dec]:0 <-> [2604:a880:1:20::224:b001]:0 "
                                  "[proto: 102/ICMPV6][23 pkts/3174 bytes <-> 23 pkts/3174 bytes]");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->ip_proto, 58);
    EXPECT_EQ(c->src.ip_version, 6);
    EXPECT_EQ(c->dst.ip_version, 6);

    auto d = parse_ndpi_flow_line("\t4\tICMPV6 fe80::1 -> ff02::1 [proto: 102/ICMPV6][1 pkts/86 bytes -> 0 pkts/0 bytes]");
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->src.has_port);
    EXPECT_EQ(d->src.ip_version, 6);
}

TEST(NdpiResult, TunnelPrefixAndNumericProtocol)
{
    auto f = parse_ndpi_flow_line("\t1\tTCP 192.168.147.177:58496 <-> 151.121.193.160:443 [proto: GTP:91/TLS]"
                                  "[13 pkts/3520 bytes <-> 14 pkts/3446 bytes]");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->tunnel, "GTP");
    EXPECT_EQ(f->proto, "91/TLS");

    auto g = parse_ndpi_flow_line("\t7\t115 10.0.0.1:0 -> 10.0.0.2:0 [proto: 0/Unknown][1 pkts/60 bytes -> 0 pkts/0 bytes]");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->l4, "115");
    EXPECT_EQ(g->ip_proto, 115);
}

TEST(NdpiResult, UnbalancedBracketsInTruncatedValues)
{
    // ndpiReader truncates long values, which can cut a bracket pair in half.
    std::string err;
    auto f = parse_ndpi_flow_line(
        "\t74\tTCP 127.0.0.1:50568 -> 127.0.0.1:8080 [proto: 7/HTTP][1 pkts/359 bytes -> 0 pkts/0 bytes]"
        "[URL: 127.0.0.1/index.action][Req Content-Type: %{#context['com.opensymphony.xwork2.dispatcher.HttpServletRespo]"
        "[User-Agent: Mozilla/5.00 (Nikto/2.1.6)][x]y]]*z][Plen Bins: 0,100]",
        &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->field("Req Content-Type"), "%{#context['com.opensymphony.xwork2.dispatcher.HttpServletRespo");
    EXPECT_EQ(f->field("User-Agent"), "Mozilla/5.00 (Nikto/2.1.6)");
    EXPECT_TRUE(f->field("x]y]]*z"));
    EXPECT_EQ(f->field("Plen Bins"), "0,100");
    EXPECT_EQ(f->dir[0].bytes, 359u);
}

TEST(NdpiResult, RejectsMalformedLines)
{
    std::string err;
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\t 192.168.5.16             \t 2      ", &err));
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3.4:1 <=> 5.6.7.8:2 [1 pkts/60 bytes <-> 1 pkts/60 bytes]", &err));
    EXPECT_NE(err.find("arrow"), std::string::npos);
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3.4:1 <-> 5.6.7.8:2 [proto: 7/HTTP]", &err));
    EXPECT_NE(err.find("pkts"), std::string::npos);
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3.4:99999 <-> 5.6.7.8:2 [1 pkts/60 bytes <-> 1 pkts/60 bytes]", &err));
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3:1 <-> 5.6.7.8:2 [1 pkts/60 bytes <-> 1 pkts/60 bytes]", &err));
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tFOO 1.2.3.4:1 <-> 5.6.7.8:2 [1 pkts/60 bytes <-> 1 pkts/60 bytes]", &err));
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3.4:1 -> 5.6.7.8:2 [1 pkts/60 bytes <-> 1 pkts/60 bytes]", &err));
    EXPECT_FALSE(parse_ndpi_flow_line("\t1\tTCP 1.2.3.4:1 -> 5.6.7.8:2 [1 pkts/60 bytes -> 0 pkts/0 bytes][VLAN: 5000]", &err));
    EXPECT_FALSE(looks_like_ndpi_flow_line("Undetected flows:"));
    EXPECT_FALSE(looks_like_ndpi_flow_line("\tTCP 1.2.3.4:1"));
}

TEST(NdpiResult, ReadsBothSectionsAndSkipsOtherTables)
{
    auto path = std::filesystem::temp_directory_path() / ("ndpi_result_test_" + std::to_string(::getpid()) + ".out");
    {
        std::ofstream o(path);
        o << "DPI Packets (TCP):\t408\t(4.16 pkts/flow)\n\n"
             "JA3 Host Stats: \n\t\t IP Address                  \t # JA3C     \n"
             "\t1\t 192.168.5.16             \t 2      \n\n\n"
             "\t1\tTCP 10.0.0.1:1234 <-> 10.0.0.2:80 [proto: 7/HTTP][3 pkts/180 bytes <-> 2 pkts/120 bytes]\n"
             "\n\nUndetected flows:\n"
             "\t1\tUDP 10.0.0.3:5 -> 10.0.0.4:6 [proto: 0/Unknown][1 pkts/60 bytes -> 0 pkts/0 bytes]\n"
             "\t2\tUDP 10.0.0.3:7 -> 10.0.0.4:8 [proto: 0/Unknown]\n";
    }
    auto r = read_ndpi_result(path.string());
    std::filesystem::remove(path);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->flows.size(), 2u);
    EXPECT_FALSE(r->flows[0].undetected);
    EXPECT_EQ(r->flows[0].dir[1].bytes, 120u);
    EXPECT_TRUE(r->flows[1].undetected);
    EXPECT_EQ(r->flows[1].src.port, 5);
    ASSERT_EQ(r->errors.size(), 1u);
    EXPECT_NE(r->errors[0].find("line 13"), std::string::npos) << r->errors[0];

    EXPECT_FALSE(read_ndpi_result("/nonexistent/ndpi.out"));
}

TEST(NdpiResult, ParsesEveryRealResultFile)
{
    std::filesystem::path dir = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps/ndpi/result";
    if (!std::filesystem::is_directory(dir))
        GTEST_SKIP() << "no nDPI result files in " << dir;
    std::size_t files = 0, flows = 0, v6 = 0, vlan = 0, oneway = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        auto r = read_ndpi_result(e.path().string());
        ASSERT_TRUE(r) << r.error().message();
        for (const auto& why : r->errors)
            ADD_FAILURE() << e.path().filename() << " " << why;
        for (const auto& f : r->flows) {
            v6 += f.src.ip_version == 6;
            vlan += f.vlan != 0;
            oneway += !f.bidirectional;
            // One-way flows never have packets back; two-way ones always do.
            EXPECT_EQ(f.bidirectional, f.dir[1].packets > 0) << e.path().filename() << " " << f.endpoints_text();
        }
        flows += r->flows.size();
        ++files;
    }
    // The suite holds hundreds of captures and thousands of flows of every
    // kind; a parser that silently skipped a kind of line would show here.
    EXPECT_GT(files, 400u);
    EXPECT_GT(flows, 6000u);
    EXPECT_GT(v6, 100u);
    EXPECT_GT(vlan, 10u);
    EXPECT_GT(oneway, 1000u);
}

} // namespace
