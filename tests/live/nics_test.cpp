// weir::nics on a veth pair: query, channels, offloads, promiscuous mode,
// RSS (veth has none: a clean "not supported"), XDP attachment and XDP
// features. Cross-checked with ethtool(8) and ip(8) where they are
// installed. Needs root; skips otherwise.
#include <weir/nics/nic.hpp>

#include <netns.hpp>

#include <gtest/gtest.h>

#include <linux/bpf.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace {

using weir::test::sh;
using weir::test::VethPair;
namespace nics = weir::nics;

constexpr unsigned kQueues = 4;

/// stdout of a shell command (first 64 KiB).
std::string capture(const std::string& cmd)
{
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536)
            out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s)
{
    return std::find(v.begin(), v.end(), s) != v.end();
}

class NicsLive : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string why;
        veth_ = VethPair::create("wnl", kQueues, &why);
        if (!veth_)
            GTEST_SKIP() << why;
    }
    std::unique_ptr<VethPair> veth_;
};

TEST_F(NicsLive, QueryVeth)
{
    auto r = nics::query(veth_->outer);
    ASSERT_TRUE(r) << r.error().message();
    const nics::NicInfo& n = *r;
    EXPECT_EQ(n.name, veth_->outer);
    EXPECT_EQ(n.ifindex, ::if_nametoindex(veth_->outer.c_str()));
    EXPECT_EQ(n.drvinfo_support, nics::Support::Supported);
    EXPECT_EQ(n.driver, "veth");
    EXPECT_EQ(n.rx_queues, kQueues);
    EXPECT_EQ(n.tx_queues, kQueues);
    EXPECT_EQ(n.mtu, 1500u);
    EXPECT_TRUE(n.admin_up);
    EXPECT_TRUE(n.lower_up);
    EXPECT_EQ(n.operstate, "up");
    EXPECT_EQ(n.mac.size(), 17u) << n.mac;

    // veth has RX and TX channels, no combined ones; the maximum is what
    // the pair was created with.
    ASSERT_EQ(n.channels.support, nics::Support::Supported) << n.channels.note;
    EXPECT_EQ(n.channels.max_rx, kQueues);
    EXPECT_EQ(n.channels.max_tx, kQueues);
    EXPECT_EQ(n.channels.rx, kQueues);
    EXPECT_EQ(n.channels.tx, kQueues);
    EXPECT_EQ(n.channels.max_combined, 0u);

    ASSERT_EQ(n.offloads.support, nics::Support::Supported) << n.offloads.note;
    const nics::Offload* lro = n.offloads.find("rx-lro");
    ASSERT_NE(lro, nullptr);
    EXPECT_TRUE(lro->fixed);
    EXPECT_FALSE(lro->active);
    ASSERT_NE(n.offloads.find("rx-gro"), nullptr);
    EXPECT_FALSE(n.offloads.find("rx-gro")->fixed);

    if (weir::test::have_tool("ethtool")) {
        const std::string k = capture("ethtool -k " + veth_->outer);
        const bool gso_on = k.find("generic-segmentation-offload: on") != std::string::npos;
        ASSERT_NE(n.offloads.find("tx-generic-segmentation"), nullptr);
        EXPECT_EQ(n.offloads.find("tx-generic-segmentation")->active, gso_on) << k;
    }
}

TEST_F(NicsLive, ChannelsSetAndGet)
{
    auto s = nics::set_channels(veth_->outer, 2);
    ASSERT_TRUE(s) << s.error().message();
    auto r = nics::query(veth_->outer);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->channels.rx, 2u);
    EXPECT_EQ(r->channels.tx, kQueues); // only RX asked for
    EXPECT_EQ(r->rx_queues, 2u);        // the stack sees it too
    if (weir::test::have_tool("ethtool")) {
        const std::string l = capture("ethtool -l " + veth_->outer);
        const auto cur = l.find("Current hardware settings");
        ASSERT_NE(cur, std::string::npos) << l;
        EXPECT_NE(l.find("RX:\t\t2", cur), std::string::npos) << l;
    }

    auto too_many = nics::set_channels(veth_->outer, kQueues + 1);
    ASSERT_FALSE(too_many);
    EXPECT_EQ(too_many.error().code, std::errc::invalid_argument);
    EXPECT_NE(too_many.error().context.find("at most 4"), std::string::npos) << too_many.error().message();
    auto zero = nics::set_channels(veth_->outer, 0);
    ASSERT_FALSE(zero);
    EXPECT_EQ(zero.error().code, std::errc::invalid_argument);

    ASSERT_TRUE(nics::set_channels(veth_->outer, kQueues));
    auto back = nics::query(veth_->outer);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->channels.rx, kQueues);
    EXPECT_EQ(back->rx_queues, kQueues);
}

TEST_F(NicsLive, GroRoundTrip)
{
    auto on = nics::set_offloads(veth_->outer, {{"rx-gro", true}});
    ASSERT_TRUE(on) << on.error().message();
    EXPECT_TRUE(contains(on->changed, "rx-gro on") || contains(on->unchanged, "rx-gro on"));
    EXPECT_TRUE(on->refused.empty());
    auto q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    EXPECT_TRUE(q->offloads.find("rx-gro")->active);
    if (weir::test::have_tool("ethtool")) {
        EXPECT_NE(capture("ethtool -k " + veth_->outer).find("generic-receive-offload: on"), std::string::npos);
    }

    // ethtool's long name works too.
    auto off = nics::set_offloads(veth_->outer, {{"generic-receive-offload", false}});
    ASSERT_TRUE(off) << off.error().message();
    EXPECT_TRUE(contains(off->changed, "rx-gro off"));
    q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    EXPECT_FALSE(q->offloads.find("rx-gro")->active);
    if (weir::test::have_tool("ethtool")) {
        EXPECT_NE(capture("ethtool -k " + veth_->outer).find("generic-receive-offload: off"), std::string::npos);
    }

    // A fixed feature is refused, not an error; an unknown name is EINVAL.
    auto lro = nics::set_offloads(veth_->outer, {{"rx-lro", true}});
    ASSERT_TRUE(lro) << lro.error().message();
    EXPECT_TRUE(contains(lro->refused, "rx-lro on (fixed)"));
    auto bad = nics::set_offloads(veth_->outer, {{"rx-no-such-feature", true}});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, std::errc::invalid_argument);
    EXPECT_NE(bad.error().context.find("rx-no-such-feature"), std::string::npos);
    EXPECT_NE(bad.error().context.find(veth_->outer), std::string::npos);
}

TEST_F(NicsLive, CaptureOffloadsOff)
{
    ASSERT_TRUE(nics::set_offloads(veth_->outer, {{"rx-gro", true}, {"tcp-segmentation-offload", true}, {"gso", true}}));
    auto pre = nics::query(veth_->outer);
    ASSERT_TRUE(pre);
    ASSERT_TRUE(pre->offloads.find("tx-tcp-segmentation")->active);
    EXPECT_FALSE(nics::warnings(*pre, {}).empty());

    auto r = nics::capture_offloads_off(veth_->outer);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->refused.empty());
    EXPECT_TRUE(contains(r->changed, "rx-gro off"));
    EXPECT_TRUE(contains(r->changed, "tx-tcp-segmentation off"));
    EXPECT_TRUE(contains(r->changed, "tx-generic-segmentation off"));
    EXPECT_TRUE(contains(r->unchanged, "rx-lro off")); // fixed off on veth
    auto q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    for (const auto& name : nics::capture_offload_names()) {
        if (const nics::Offload* f = q->offloads.find(name)) {
            EXPECT_FALSE(f->active) << name;
        }
    }
    for (const auto& w : nics::warnings(*q, {}))
        EXPECT_EQ(w.find(" is on"), std::string::npos) << w;
}

TEST_F(NicsLive, RssNotSupportedOnVeth)
{
    auto q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->rss.support, nics::Support::NotSupported);
    EXPECT_NE(q->rss.note.find("ETHTOOL_GRSSH"), std::string::npos) << q->rss.note;
    EXPECT_FALSE(q->rss.symmetric());
    ASSERT_EQ(q->rss.hash_fields.size(), 4u);
    for (const auto& h : q->rss.hash_fields)
        EXPECT_EQ(h.support, nics::Support::NotSupported) << h.flow;

    auto s = nics::set_symmetric_rss(veth_->outer);
    ASSERT_FALSE(s);
    EXPECT_TRUE(nics::not_supported(s.error())) << s.error().message();
    EXPECT_NE(s.error().context.find(veth_->outer), std::string::npos);
    EXPECT_NE(s.error().context.find("ETHTOOL_GRSSH"), std::string::npos);
}

TEST_F(NicsLive, PromiscSetAndClear)
{
    ASSERT_TRUE(nics::set_promisc(veth_->outer, true));
    auto q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    EXPECT_TRUE(q->promisc);
    EXPECT_NE(capture("ip link show " + veth_->outer).find("PROMISC"), std::string::npos);
    ASSERT_TRUE(nics::set_promisc(veth_->outer, true)); // idempotent
    ASSERT_TRUE(nics::set_promisc(veth_->outer, false));
    q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    EXPECT_FALSE(q->promisc);
    EXPECT_EQ(capture("ip link show " + veth_->outer).find("PROMISC"), std::string::npos);
}

/// Loads "return XDP_PASS" with the raw bpf() syscall; returns the fd.
int load_xdp_pass(std::string* log)
{
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    char buf[4096] = {};
    bpf_attr attr{};
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insn_cnt = 2;
    attr.insns = reinterpret_cast<uint64_t>(insns);
    attr.license = reinterpret_cast<uint64_t>("GPL");
    attr.log_buf = reinterpret_cast<uint64_t>(buf);
    attr.log_size = sizeof buf;
    attr.log_level = 1;
    const int fd = static_cast<int>(::syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
    if (fd < 0)
        *log = std::string(std::strerror(errno)) + ": " + buf;
    return fd;
}

uint32_t prog_id(int fd)
{
    bpf_prog_info info{};
    bpf_attr attr{};
    attr.info.bpf_fd = static_cast<uint32_t>(fd);
    attr.info.info_len = sizeof info;
    attr.info.info = reinterpret_cast<uint64_t>(&info);
    if (::syscall(__NR_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof attr) < 0)
        return 0;
    return info.id;
}

TEST_F(NicsLive, XdpFeaturesAndAttachment)
{
    auto q = nics::query(veth_->outer);
    ASSERT_TRUE(q);
    if (q->xdp.features_support != nics::Support::Supported)
        GTEST_SKIP() << "no netdev generic netlink family (kernel before 6.3): " << q->xdp.note;
    EXPECT_EQ(q->xdp.attached, nics::XdpAttach::None);
    EXPECT_EQ(q->xdp.prog_id, 0u);
    // veth: native XDP and redirect, never AF_XDP zero-copy.
    EXPECT_TRUE(q->xdp.features & nics::kXdpActBasic);
    EXPECT_TRUE(q->xdp.features & nics::kXdpActRedirect);
    EXPECT_FALSE(q->xdp.zero_copy());
    const auto w = nics::warnings(*q, {});
    EXPECT_TRUE(std::any_of(w.begin(), w.end(), [](const std::string& s) { return s.find("copy mode") != std::string::npos; }));

    // veth accepts ndo_xdp_xmit (XDP_REDIRECT into it) once its peer has
    // GRO on or an XDP program.
    if (weir::test::have_tool("ethtool")) {
        EXPECT_FALSE(q->xdp.features & nics::kXdpActNdoXmit);
        ASSERT_EQ(veth_->in_ns("ethtool -K " + veth_->inner + " gro on"), 0);
        auto g = nics::query(veth_->outer);
        ASSERT_TRUE(g);
        EXPECT_TRUE(g->xdp.features & nics::kXdpActNdoXmit);
        const auto names = nics::xdp_feature_names(g->xdp.features);
        EXPECT_TRUE(contains(names, "ndo-xmit"));
    }

    // Attach a program (pinned, then ip link ... xdpdrv pinned) and see it.
    struct statfs fs{};
    if (::statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != 0xcafe4a11 /* BPF_FS_MAGIC */)
        ::mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr);
    std::string log;
    const int fd = load_xdp_pass(&log);
    if (fd < 0)
        GTEST_SKIP() << "cannot load an XDP program: " << log;
    const std::string pin = "/sys/fs/bpf/wnl_nics_test_xdp";
    ::unlink(pin.c_str());
    bpf_attr pa{};
    pa.pathname = reinterpret_cast<uint64_t>(pin.c_str());
    pa.bpf_fd = static_cast<uint32_t>(fd);
    const bool pinned = ::syscall(__NR_bpf, BPF_OBJ_PIN, &pa, sizeof pa) == 0;
    const uint32_t id = prog_id(fd);
    ::close(fd);
    if (!pinned)
        GTEST_SKIP() << "cannot pin to /sys/fs/bpf: " << std::strerror(errno);
    const int rc = sh("ip link set dev " + veth_->outer + " xdpdrv pinned " + pin);
    ::unlink(pin.c_str());
    ASSERT_EQ(rc, 0) << "ip link set xdpdrv pinned";

    auto a = nics::query(veth_->outer);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->xdp.attached, nics::XdpAttach::Driver);
    EXPECT_EQ(a->xdp.prog_id, id);
    EXPECT_NE(id, 0u);
    const auto wa = nics::warnings(*a, {});
    EXPECT_TRUE(std::any_of(wa.begin(), wa.end(),
                            [](const std::string& s) { return s.find("already attached") != std::string::npos; }));
    EXPECT_EQ(sh("ip link set dev " + veth_->outer + " xdpdrv off"), 0);
    auto d = nics::query(veth_->outer);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->xdp.attached, nics::XdpAttach::None);
}

TEST(NicsErrors, MissingInterfaceIsEnodev)
{
    const std::string name = "wnnosuch0";
    auto q = nics::query(name);
    ASSERT_FALSE(q);
    EXPECT_EQ(q.error().code, std::errc::no_such_device);
    EXPECT_NE(q.error().message().find(name), std::string::npos);
    EXPECT_EQ(nics::set_channels(name, 1).error().code, std::errc::no_such_device);
    EXPECT_EQ(nics::set_symmetric_rss(name).error().code, std::errc::no_such_device);
    EXPECT_EQ(nics::capture_offloads_off(name).error().code, std::errc::no_such_device);
    EXPECT_EQ(nics::set_promisc(name, true).error().code, std::errc::no_such_device);

    auto bad = nics::query("this-name-is-far-too-long");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, std::errc::invalid_argument);
    EXPECT_EQ(nics::query("").error().code, std::errc::invalid_argument);
}

} // namespace
