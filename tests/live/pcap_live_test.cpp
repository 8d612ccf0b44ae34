// libpcap live capture on a veth pair: replayed captures come back complete
// and byte-identical (VLAN tags included), -B filters let through what
// tcpdump lets through, the engine's flows match the file's, and link
// down/up and bad input behave.
#include <weir/dataplane/pcap_live.hpp>

#include "live_capture.hpp"

#include <gtest/gtest.h>

namespace {

using namespace weir::test;
using namespace weir::test::live;
using weir::dataplane::LiveOptions;
using weir::dataplane::open_pcap_live;

const Opener kOpen = [](const std::string& ifname, const LiveOptions& o) { return open_pcap_live(ifname, o); };

TEST(PcapLive, ReplayIsComplete)
{
    expect_replay_identical(kOpen, "wap", small_options(), shared_pcap("misc/test.pcap"));
}

TEST(PcapLive, VlanTagsComeBack)
{
    expect_replay_identical(kOpen, "wap", small_options(), shared_pcap("ndpi/pcap/bot.pcap"));
    expect_replay_identical(kOpen, "wap", small_options(), shared_pcap("ndpi/pcap/dns.pcap"));
}

TEST(PcapLive, NanosecondStampsNearNow)
{
    std::string why;
    auto v = make_veth("wap", &why);
    if (!v)
        GTEST_SKIP() << why;
    auto src = open_pcap_live(v->outer, small_options());
    ASSERT_TRUE(src.ok()) << src.error().message();
    const std::string path = shared_pcap("misc/test_fragroute.pcap");
    const uint64_t t0 = src.value()->now_ns();
    const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, file_hashes(path).size());
    EXPECT_EQ(c.packets, file_hashes(path).size());
    EXPECT_NE(src.value()->describe().find("pcap:" + v->outer), std::string::npos);
    EXPECT_NE(src.value()->describe().find("ns stamps"), std::string::npos) << src.value()->describe();
    EXPECT_GE(src.value()->now_ns(), t0);
    // Nanosecond stamps: sub-microsecond digits show up (all of them being
    // whole microseconds has a chance of 1000^-n).
    ASSERT_FALSE(c.ts_ns.empty());
    size_t sub_us = 0;
    for (uint64_t ts : c.ts_ns) {
        EXPECT_GE(ts, t0);
        EXPECT_LE(ts, c.wall_end_ns);
        sub_us += ts % 1000 != 0;
    }
    EXPECT_GT(sub_us, 0u);
}

TEST(PcapLive, PipelineFlowsMatchFile)
{
    expect_pipeline_flows_match_file(kOpen, "wap", small_options(), shared_pcap("misc/test.pcap"));
}

TEST(PcapLive, FilterUdp)
{
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("misc/test.pcap"), "udp");
}

TEST(PcapLive, FilterTcpPort80)
{
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("misc/test.pcap"), "tcp port 80");
}

TEST(PcapLive, FilterSeesTheTagAsOnTheWire)
{
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("ndpi/pcap/bot.pcap"), "tcp");
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("ndpi/pcap/bot.pcap"), "vlan 77 and src port 80");
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("ndpi/pcap/dns.pcap"), "udp");
    expect_filter_matches_tcpdump(kOpen, "wap", shared_pcap("ndpi/pcap/dns.pcap"), "vlan");
}

TEST(PcapLive, NoSuchInterfaceIsEnodev)
{
    auto s = open_pcap_live("wanosuch0", small_options());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, std::errc::no_such_device) << s.error().message();
    EXPECT_NE(s.error().message().find("wanosuch0"), std::string::npos);
}

TEST(PcapLive, BadFilterIsEinvalWithPcapsText)
{
    std::string why;
    auto v = make_veth("wap", &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o = small_options();
    o.bpf_filter = "udp and and";
    auto s = open_pcap_live(v->outer, o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, std::errc::invalid_argument);
    EXPECT_NE(s.error().message().find("bad filter 'udp and and'"), std::string::npos) << s.error().message();
    EXPECT_NE(s.error().message().find("syntax error"), std::string::npos) << s.error().message();
}

TEST(PcapLive, LinkDownUpResumes)
{
    expect_link_down_up_resumes(kOpen, "wap", shared_pcap("misc/test.pcap"));
}

} // namespace

namespace {

TEST(PcapLive, InterfaceDeletedEndsTheSource)
{
    std::string why;
    auto v = weir::test::live::make_veth("wap", &why);
    if (!v)
        GTEST_SKIP() << why;
    auto src = weir::dataplane::open_pcap_live(v->outer, weir::test::live::small_options());
    ASSERT_TRUE(src.ok()) << src.error().message();
    ASSERT_EQ(weir::test::sh("ip link del " + v->outer), 0);
    weir::RawPacket b[8];
    for (int i = 0; i < 100 && !src.value()->finished(); ++i)
        src.value()->rx_burst(b, 8);
    EXPECT_TRUE(src.value()->finished());
    ASSERT_TRUE(src.value()->error().has_value());
    EXPECT_EQ(src.value()->error()->code, std::errc::no_such_device) << src.value()->error()->message();
}

} // namespace
