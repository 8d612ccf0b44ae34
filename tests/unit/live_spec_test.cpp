// The -i syntax: interfaces with back-ends and queues, files, and errors.
#include <weir/dataplane/live.hpp>

#include <gtest/gtest.h>

#include <cerrno>

using weir::dataplane::Backend;
using weir::dataplane::parse_interface_list;

namespace {

std::vector<uint32_t> q(std::initializer_list<uint32_t> l) { return l; }

} // namespace

TEST(InterfaceSpec, PlainNameIsAuto)
{
    auto r = parse_interface_list("eth1");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ(r.value()[0].backend, Backend::Auto);
    EXPECT_EQ(r.value()[0].name, "eth1");
    EXPECT_TRUE(r.value()[0].queues.empty());
}

TEST(InterfaceSpec, PrefixesAndQueues)
{
    auto r = parse_interface_list("xdp:eth1@0-3,afpacket:eth2,pcap:eth3,xdp:eth4@2");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->size(), 4u);
    EXPECT_EQ(r.value()[0].backend, Backend::AfXdp);
    EXPECT_EQ(r.value()[0].name, "eth1");
    EXPECT_EQ(r.value()[0].queues, q({0, 1, 2, 3}));
    EXPECT_EQ(r.value()[1].backend, Backend::AfPacket);
    EXPECT_EQ(r.value()[2].backend, Backend::Pcap);
    EXPECT_EQ(r.value()[3].queues, q({2}));
}

TEST(InterfaceSpec, DpdkKeepsDeviceArgumentsWithCommas)
{
    auto r = parse_interface_list("dpdk:net_af_xdp0,iface=eth1,start_queue=0,queue_count=2");
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ(r.value()[0].backend, Backend::Dpdk);
    EXPECT_EQ(r.value()[0].name, "net_af_xdp0,iface=eth1,start_queue=0,queue_count=2");

    auto two = parse_interface_list("dpdk:net_pcap0,rx_pcap=/tmp/a.pcap,dpdk:net_pcap1,rx_pcap=/tmp/b.pcap");
    ASSERT_TRUE(two) << two.error().message();
    ASSERT_EQ(two->size(), 2u);
    EXPECT_EQ(two.value()[1].name, "net_pcap1,rx_pcap=/tmp/b.pcap");
}

TEST(InterfaceSpec, TapHalvesAndFiles)
{
    auto r = parse_interface_list("eth1,eth2");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ(r.value()[1].name, "eth2");

    auto f = parse_interface_list("a.pcap,dir/b.pcapng");
    ASSERT_TRUE(f);
    EXPECT_EQ(f.value()[0].backend, Backend::File);
    EXPECT_EQ(f.value()[1].backend, Backend::File);
    EXPECT_EQ(f.value()[1].name, "dir/b.pcapng");
}

TEST(InterfaceSpec, Errors)
{
    for (const char* bad : {"", "eth1,", ",eth1", "xdp:", "xdp:eth1@", "xdp:eth1@3-1", "xdp:eth1@x",
                            "bogus:eth1", "xdp:averyveryverylongname0", "xdp:eth1@0-5000"}) {
        auto r = parse_interface_list(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().code.value(), EINVAL) << bad;
        }
    }
}

TEST(InterfaceSpec, MissingInterfaceAndMixedInputs)
{
    weir::dataplane::LiveOptions o;
    auto r = weir::dataplane::open_input("afpacket:wnoexist0", o);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().code.value() == ENODEV || r.error().code.value() == ENOTSUP) << r.error().message();

    auto m = weir::dataplane::open_input("lo,x.pcap", o);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code.value(), EINVAL);
}
