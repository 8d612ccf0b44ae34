// AF_PACKET (TPACKET_V3) capture on a veth pair: real captures replayed with
// tcpreplay come back complete and byte-identical with one socket and with a
// two-socket fanout group, VLAN tags the kernel strips are put back, -B
// filters let through what tcpdump lets through, the engine's flows match
// the file's, and link down/up and bad input behave.
#include <weir/dataplane/afpacket.hpp>

#include "live_capture.hpp"

#include <packet_builder.hpp>
#include <pcap_writer.hpp>

#include <gtest/gtest.h>

namespace {

using namespace weir::test;
using namespace weir::test::live;
using weir::dataplane::LiveOptions;
using weir::dataplane::open_afpacket;

const Opener kOpen = [](const std::string& ifname, const LiveOptions& o) { return open_afpacket(ifname, o); };

LiveOptions sockets(uint32_t n)
{
    LiveOptions o = small_options();
    o.afp_sockets = n;
    return o;
}

TEST(AfPacket, ReplayOneSocketIsComplete)
{
    expect_replay_identical(kOpen, "wa", sockets(1), shared_pcap("misc/test.pcap"));
}

TEST(AfPacket, ReplayTwoFanoutSocketsIsComplete)
{
    expect_replay_identical(kOpen, "wa", sockets(2), shared_pcap("misc/test.pcap"));
}

TEST(AfPacket, FanoutSpreadsFlowsOverBothSockets)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    auto src = open_afpacket(v->outer, sockets(2));
    ASSERT_TRUE(src.ok()) << src.error().message();
    // 64 UDP flows of 4 frames: the chance that the flow hash puts all of
    // them on one socket is 2^-63.
    TempPath file(".pcap");
    std::vector<PcapFrame> frames;
    for (uint16_t f = 0; f < 64; ++f)
        for (int i = 0; i < 4; ++i)
            frames.push_back(PcapFrame{PacketBuilder()
                                           .eth()
                                           .ipv4("10.1.0.1", "10.2.0." + std::to_string(f % 200 + 1))
                                           .udp(uint16_t(10000 + f), 53)
                                           .payload("flow " + std::to_string(f))
                                           .build(),
                                       uint64_t(1700000000) * 1000000000ULL + uint64_t(f * 4 + i) * 1000, {}});
    write_pcap(file.path(), frames);
    const std::string path = file.path();
    const auto want = file_hashes(path);
    const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, want.size());
    EXPECT_TRUE(included(c.hashes, want));
    const auto q = src.value()->queue_stats();
    ASSERT_EQ(q.size(), 2u);
    EXPECT_EQ(q[0].packets + q[1].packets, c.packets);
    EXPECT_EQ(q[0].packets + q[1].packets + q[0].drops + q[1].drops, want.size());
    EXPECT_GT(q[0].packets, 0u);
    EXPECT_GT(q[1].packets, 0u);
    EXPECT_NE(q[0].name, q[1].name);
    EXPECT_NE(src.value()->describe().find("fanout"), std::string::npos) << src.value()->describe();
}

TEST(AfPacket, VlanTagsComeBack)
{
    // bot.pcap: every frame 802.1Q-tagged (VLAN 77); dns.pcap: QinQ and untagged.
    expect_replay_identical(kOpen, "wa", sockets(1), shared_pcap("ndpi/pcap/bot.pcap"));
}

TEST(AfPacket, QinQOuterTagComesBack)
{
    expect_replay_identical(kOpen, "wa", sockets(2), shared_pcap("ndpi/pcap/dns.pcap"));
}

TEST(AfPacket, VlanTagBytesAreOnTheWire)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    auto src = open_afpacket(v->outer, sockets(1));
    ASSERT_TRUE(src.ok()) << src.error().message();
    const std::string path = shared_pcap("ndpi/pcap/bot.pcap");
    const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, file_hashes(path).size());
    ASSERT_FALSE(c.frames.empty());
    for (const auto& f : c.frames) {
        ASSERT_GE(f.size(), 18u);
        EXPECT_EQ(f[12], 0x81);
        EXPECT_EQ(f[13], 0x00);
        EXPECT_EQ(((f[14] << 8) | f[15]) & 0x0fff, 77);
    }
}

TEST(AfPacket, PipelineFlowsMatchFile)
{
    expect_pipeline_flows_match_file(kOpen, "wa", sockets(1), shared_pcap("misc/test.pcap"));
}

TEST(AfPacket, PipelineFlowsMatchFileWithFanout)
{
    expect_pipeline_flows_match_file(kOpen, "wa", sockets(2), shared_pcap("ndpi/pcap/bot.pcap"));
}

TEST(AfPacket, FilterUdp)
{
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("misc/test.pcap"), "udp");
}

TEST(AfPacket, FilterTcpPort80)
{
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("misc/test.pcap"), "tcp port 80");
}

TEST(AfPacket, FilterSeesTheTagAsOnTheWire)
{
    // The kernel strips the tag before socket filters run: "tcp" alone would
    // match bot.pcap's tagged frames there, but matches none in tcpdump -r.
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("ndpi/pcap/bot.pcap"), "tcp");
    // And "vlan 77 ..." must match although the kernel no longer sees the tag.
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("ndpi/pcap/bot.pcap"), "vlan 77 and src port 80");
    // dns.pcap: three untagged UDP frames and two QinQ frames.
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("ndpi/pcap/dns.pcap"), "udp");
    expect_filter_matches_tcpdump(kOpen, "wa", shared_pcap("ndpi/pcap/dns.pcap"), "vlan");
}

TEST(AfPacket, NoSuchInterfaceIsEnodev)
{
    auto s = open_afpacket("wanosuch0", small_options());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, std::errc::no_such_device);
    EXPECT_NE(s.error().message().find("wanosuch0"), std::string::npos);
}

TEST(AfPacket, BadFilterIsEinvalWithPcapsText)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o = small_options();
    o.bpf_filter = "tcp port";
    auto s = open_afpacket(v->outer, o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, std::errc::invalid_argument);
    EXPECT_NE(s.error().message().find("bad filter 'tcp port'"), std::string::npos) << s.error().message();
    EXPECT_NE(s.error().message().find("syntax error"), std::string::npos) << s.error().message();
}

TEST(AfPacket, BadRingGeometryIsEinval)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o = small_options();
    o.afp_block_size = 1000;
    EXPECT_EQ(open_afpacket(v->outer, o).error().code, std::errc::invalid_argument);
    o = small_options();
    o.afp_block_count = 0;
    EXPECT_EQ(open_afpacket(v->outer, o).error().code, std::errc::invalid_argument);
    o = small_options();
    o.afp_sockets = 0;
    EXPECT_EQ(open_afpacket(v->outer, o).error().code, std::errc::invalid_argument);
}

TEST(AfPacket, LinkDownUpResumes)
{
    expect_link_down_up_resumes(kOpen, "wa", shared_pcap("misc/test.pcap"));
}

TEST(AfPacket, InterfaceDeletedEndsTheSource)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    auto src = open_afpacket(v->outer, small_options());
    ASSERT_TRUE(src.ok()) << src.error().message();
    ASSERT_EQ(sh("ip link del " + v->outer), 0);
    weir::RawPacket b[8];
    for (int i = 0; i < 100 && !src.value()->finished(); ++i)
        src.value()->rx_burst(b, 8);
    EXPECT_TRUE(src.value()->finished());
    ASSERT_TRUE(src.value()->error().has_value());
    EXPECT_EQ(src.value()->error()->code, std::errc::no_such_device);
    EXPECT_NE(src.value()->error()->message().find("went away"), std::string::npos);
}

TEST(AfPacket, SnaplenCutsFrames)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o = sockets(1);
    o.snaplen = 64;
    auto src = open_afpacket(v->outer, o);
    ASSERT_TRUE(src.ok()) << src.error().message();
    const std::string path = shared_pcap("ndpi/pcap/bot.pcap");
    const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, file_hashes(path).size());
    EXPECT_EQ(c.packets, file_hashes(path).size());
    size_t longer = 0;
    for (const auto& f : c.frames)
        longer += f.size() > 64;
    EXPECT_EQ(longer, 0u);
}

} // namespace

namespace {

uint64_t rx_packets(const std::string& ifname)
{
    FILE* f = std::fopen(("/sys/class/net/" + ifname + "/statistics/rx_packets").c_str(), "r");
    unsigned long long v = 0;
    if (f) {
        if (std::fscanf(f, "%llu", &v) != 1)
            v = 0;
        std::fclose(f);
    }
    return v;
}

// Top-speed replay: whatever the reader keeps up with, every frame the
// interface received is delivered or counted as dropped, on every socket.
void expect_counts_add_up_at_top_speed(uint32_t sockets_n)
{
    std::string why;
    auto v = make_veth("wa", &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o = small_options();
    o.afp_sockets = sockets_n;
    o.afp_block_count = 8; // a small ring, so that a slow reader drops
    auto src = open_afpacket(v->outer, o);
    ASSERT_TRUE(src.ok()) << src.error().message();
    const std::string path = shared_pcap("misc/test.pcap");
    const uint64_t loops = 100;
    const uint64_t sent = loops * file_hashes(path).size();
    const uint64_t rx0 = rx_packets(v->outer);
    const auto t0 = std::chrono::steady_clock::now();
    const Captured c = capture_while(
        *src.value(),
        [&] {
            return v->in_ns("tcpreplay -q -t --preload-pcap -l " + std::to_string(loops) + " -i " + v->inner + " " +
                            path + " >/dev/null 2>&1") == 0;
        },
        sent, 30000);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - 0.3;
    const uint64_t rx = rx_packets(v->outer) - rx0;
    EXPECT_TRUE(c.traffic_ok);
    EXPECT_EQ(rx, sent) << "the veth itself lost frames";
    EXPECT_EQ(c.packets + c.drops, rx);
    std::fprintf(stderr, "%u socket(s): %llu frames in %.3f s (%.0f pps offered), %llu delivered, %llu dropped\n",
                 sockets_n, (unsigned long long)rx, secs, double(rx) / secs, (unsigned long long)c.packets,
                 (unsigned long long)c.drops);
}

TEST(AfPacket, CountsAddUpAtTopSpeedOneSocket)
{
    expect_counts_add_up_at_top_speed(1);
}

TEST(AfPacket, CountsAddUpAtTopSpeedFanout)
{
    expect_counts_add_up_at_top_speed(2);
}

} // namespace
