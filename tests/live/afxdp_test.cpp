// AF_XDP back-end on veth pairs the test makes (tag "wx"): a real capture
// replayed with tcpreplay from inside the namespace arrives whole (received
// + counted drops == sent), and the engine makes the same flows of it as of
// the capture file; plus the errors (ENODEV, EINVAL, EBUSY with the other
// program left in place), generic mode, link down/up, and nothing left
// attached once the source is gone. Needs root, iproute2 and tcpreplay.
#include <weir/dataplane/live.hpp>
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/pipeline.hpp>

#include "netns.hpp"

#if WEIR_HAVE_AFXDP
#include <weir/dataplane/afxdp.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#endif
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

namespace {

#if WEIR_HAVE_AFXDP

using namespace weir::test;
using weir::dataplane::LiveOptions;
using weir::dataplane::open_afxdp;

// Plain Ethernet, IPv4 and IPv6, TCP, UDP and ICMP, no frame above 1514 bytes.
const std::string kCapture = std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/anyconnect-vpn.pcap";

uint32_t xdp_prog_id(const std::string& ifname)
{
    uint32_t id = 0;
    const unsigned idx = if_nametoindex(ifname.c_str());
    if (idx == 0 || bpf_xdp_query_id(int(idx), 0, &id) != 0)
        return 0;
    return id;
}

std::string skip_reason()
{
    if (geteuid() != 0)
        return "needs root (CAP_NET_ADMIN, CAP_BPF)";
    if (!have_tool("tcpreplay"))
        return "tcpreplay not installed";
    if (::access(kCapture.c_str(), R_OK) != 0)
        return "capture " + kCapture + " missing";
    return {};
}

/// Replays the capture from the inner end; returns the frames tcpreplay sent.
int64_t replay(const VethPair& v, const std::string& extra = "--topspeed")
{
    const std::string out = "/tmp/" + v.ns + "-tcpreplay.txt";
    const int rc = v.in_ns("timeout 60 tcpreplay -i " + v.inner + " " + extra + " " + kCapture + " > " + out + " 2>&1");
    std::ifstream f(out);
    std::stringstream ss;
    ss << f.rdbuf();
    ::unlink(out.c_str());
    std::smatch m;
    const std::string text = ss.str();
    if (rc != 0 || !std::regex_search(text, m, std::regex("Successful packets:\\s+([0-9]+)"))) {
        ADD_FAILURE() << "tcpreplay failed (" << rc << "): " << text;
        return -1;
    }
    return std::stoll(m[1]);
}

/// Per canonical key: packets and bytes A->B and B->A, summed over records.
using Totals = std::map<std::string, std::array<uint64_t, 4>>;

std::string key_bytes(const weir::FlowKey& k)
{
    return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

weir::engine::PipelineConfig pipeline_config(uint16_t workers, bool lossless)
{
    weir::engine::PipelineConfig c;
    c.workers = workers;
    c.lossless = lossless;
    c.table.capacity = 1u << 12;
    // Live stamps are the wall clock, the file's are the capture's: with
    // no timeout short enough to split a flow, both runs end every flow at
    // the end of input and their records can be compared.
    c.table.idle_timeout_ns = 1'000'000ULL * 1'000'000'000ULL;
    c.table.active_timeout_ns = 1'000'000ULL * 1'000'000'000ULL;
    c.table.tcp_end_linger_ns = 1'000'000ULL * 1'000'000'000ULL;
    return c;
}

void add(Totals& t, const weir::FlowRecord& r)
{
    auto& v = t[key_bytes(r.key)];
    const auto& ab = r.client_is_a ? r.dir[0] : r.dir[1];
    const auto& ba = r.client_is_a ? r.dir[1] : r.dir[0];
    v[0] += ab.packets;
    v[1] += ab.bytes;
    v[2] += ba.packets;
    v[3] += ba.bytes;
}

Totals file_flows()
{
    Totals t;
    auto src = weir::dataplane::open_capture_files(kCapture);
    EXPECT_TRUE(src) << src.error().message();
    if (!src)
        return t;
    auto p = weir::engine::Pipeline::create(pipeline_config(0, true), [&](const weir::FlowRecord& r) { add(t, r); });
    EXPECT_TRUE(p);
    p.value()->run(*src.value());
    return t;
}

struct CaptureCase {
    unsigned queues;
    uint32_t sockets_per_queue;
    uint16_t workers;
    bool busy_poll = false;
    bool default_sizes = false;  ///< rings and UMEM left to weir (the sizes the start line names)
};

void PrintTo(const CaptureCase& c, std::ostream* os)
{
    *os << c.queues << " queues, " << c.sockets_per_queue << " sockets per queue, " << c.workers << " workers"
        << (c.busy_poll ? ", busy polling" : "") << (c.default_sizes ? ", default sizes" : "");
}

class AfXdpCapture : public ::testing::TestWithParam<CaptureCase> {};

TEST_P(AfXdpCapture, ReplayArrivesWholeAndMakesTheFileFlows)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    const CaptureCase cc = GetParam();
    std::string why;
    auto v = VethPair::create("wx" + std::to_string(cc.queues) + std::to_string(cc.sockets_per_queue), cc.queues, &why);
    if (!v)
        GTEST_SKIP() << why;

    LiveOptions opt;
    opt.xdp_sockets_per_queue = cc.sockets_per_queue;
    if (!cc.default_sizes) {
        opt.xdp_ring_size = 2048;
        opt.xdp_umem_frames = 4096;
    }
    opt.xdp_busy_poll = cc.busy_poll;
    ::testing::internal::CaptureStderr();
    auto src = open_afxdp(v->outer, {}, opt);
    const std::string said = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(src) << src.error().message();
    // Sizes weir chose are named at the start, given ones are not.
    const std::string sizes =
        cc.queues == 1 ? "rings of 65536 entries, UMEM 65536 x 4096 B = 256 MiB per queue (1 queue, 256 MiB in all)"
                       : "rings of 32768 entries, UMEM 32768 x 4096 B = 128 MiB per queue (2 queues, 256 MiB in all)";
    if (cc.default_sizes) {
        EXPECT_NE(said.find("xdp:" + v->outer + ": " + sizes + " (default sizes for this queue count; set "
                            "--xdp-ring-size and --xdp-umem-frames to override)"),
                  std::string::npos)
            << said;
    } else {
        EXPECT_EQ(said.find("rings of"), std::string::npos) << said;
    }
    weir::PacketSource& s = *src.value();
    const std::string d = s.describe();
    EXPECT_NE(d.find("xdp:" + v->outer + (cc.queues == 1 ? "@0 " : "@0-1 ")), std::string::npos) << d;
    EXPECT_NE(d.find("copy mode"), std::string::npos) << d;  // veth: no zero-copy
    EXPECT_NE(d.find("native XDP"), std::string::npos) << d;
    EXPECT_TRUE(s.live());
    EXPECT_FALSE(s.finished());
    EXPECT_NE(xdp_prog_id(v->outer), 0u);

    Totals live;
    auto p = weir::engine::Pipeline::create(pipeline_config(cc.workers, false),
                                            [&](const weir::FlowRecord& r) { add(live, r); });
    ASSERT_TRUE(p) << p.error().message();
    weir::engine::PipelineStats ps;
    std::thread reader([&] { ps = p.value()->run(s); });

    const int64_t sent = replay(*v);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        const auto st = s.stats();
        if (sent >= 0 && int64_t(st.packets + st.drops) >= sent)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Anything late would show up as a surplus below.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    p.value()->stop();
    reader.join();

    const auto st = s.stats();
    ASSERT_GT(sent, 0);
    EXPECT_EQ(int64_t(st.packets + st.drops), sent) << "received " << st.packets << ", dropped " << st.drops;
    EXPECT_EQ(st.drops, 0u) << "nothing should be lost at this rate with rings larger than the capture";
    EXPECT_EQ(ps.packets, st.packets);

    // Per queue: the sockets add up to the source, the program saw (and
    // redirected) at least what the sockets got.
    const auto qs = s.queue_stats();
    ASSERT_EQ(qs.size(), size_t(cc.queues * cc.sockets_per_queue));
    uint64_t qp = 0, xp = 0;
    for (const auto& q : qs) {
        qp += q.packets;
        xp += q.xdp_packets;
        EXPECT_EQ(q.invalid_descs, 0u) << q.name;
        std::fprintf(stderr, "  %s: %lu packets, %lu bytes, xdp %lu, ring full %lu, fill empty %lu\n", q.name.c_str(),
                     (unsigned long)q.packets, (unsigned long)q.bytes, (unsigned long)q.xdp_packets,
                     (unsigned long)q.rx_ring_full, (unsigned long)q.fill_ring_empty);
    }
    EXPECT_EQ(qp, st.packets);
    EXPECT_GE(xp, st.packets);

    const Totals file = file_flows();
    ASSERT_FALSE(file.empty());
    EXPECT_EQ(live.size(), file.size());
    size_t mismatched = 0;
    for (const auto& [k, f] : file) {
        auto it = live.find(k);
        if (it == live.end() || it->second != f)
            ++mismatched;
    }
    EXPECT_EQ(mismatched, 0u) << "of " << file.size() << " flows";
    std::fprintf(stderr, "  %zu flows, the same from the interface and from the file\n", file.size() - mismatched);
    if (!said.empty())
        std::fprintf(stderr, "  %s", said.c_str());

    src.value().reset();
    EXPECT_EQ(xdp_prog_id(v->outer), 0u) << "XDP program left attached";
}

INSTANTIATE_TEST_SUITE_P(Veth, AfXdpCapture,
                         ::testing::Values(CaptureCase{1, 1, 0}, CaptureCase{2, 1, 1}, CaptureCase{1, 2, 1},
                                           CaptureCase{2, 2, 1, true}, CaptureCase{1, 1, 0, false, true},
                                           CaptureCase{2, 2, 1, false, true}),
                         [](const auto& i) {
                             return "q" + std::to_string(i.param.queues) + "_spq" +
                                    std::to_string(i.param.sockets_per_queue) + "_w" + std::to_string(i.param.workers) +
                                    (i.param.busy_poll ? "_busypoll" : "") +
                                    (i.param.default_sizes ? "_defaultsizes" : "");
                         });

TEST(AfXdp, NoSuchInterface)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root";
    auto r = open_afxdp("wxnosuch0", {}, LiveOptions{});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::no_such_device) << r.error().message();
    EXPECT_NE(r.error().message().find("wxnosuch0"), std::string::npos);
}

TEST(AfXdp, QueueOutOfRangeAndBadOptions)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto v = VethPair::create("wxq", 2, &why);
    if (!v)
        GTEST_SKIP() << why;
    auto r = open_afxdp(v->outer, {0, 2}, LiveOptions{});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::invalid_argument);
    EXPECT_NE(r.error().message().find("RX queue 2"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("has 2 RX queues"), std::string::npos) << r.error().message();

    LiveOptions o;
    o.xdp_frame_size = 3000;
    EXPECT_EQ(open_afxdp(v->outer, {0}, o).error().code, std::errc::invalid_argument);
    o = LiveOptions{};
    o.xdp_ring_size = 1000;
    auto bad = open_afxdp(v->outer, {0}, o);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, std::errc::invalid_argument);
    EXPECT_NE(bad.error().message().find("ring size 1000 (a power of two from 64 to 1048576"), std::string::npos)
        << bad.error().message();
    o.xdp_ring_size = 4096;
    o.xdp_umem_frames = 32;
    EXPECT_EQ(open_afxdp(v->outer, {0}, o).error().code, std::errc::invalid_argument);
    o = LiveOptions{};
    o.xdp_sockets_per_queue = 0;
    EXPECT_EQ(open_afxdp(v->outer, {0}, o).error().code, std::errc::invalid_argument);
    // veth has no zero-copy: demanded, it is an error, and nothing stays attached.
    o = LiveOptions{};
    o.xdp_zero_copy = LiveOptions::ZeroCopy::On;
    auto z = open_afxdp(v->outer, {0}, o);
    ASSERT_FALSE(z);
    EXPECT_EQ(z.error().code.value(), EOPNOTSUPP) << z.error().message();
    EXPECT_EQ(xdp_prog_id(v->outer), 0u);

    // Through the -i syntax and the dispatcher too.
    auto d = weir::dataplane::open_input("xdp:" + v->outer + "@5", LiveOptions{});
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().code, std::errc::invalid_argument) << d.error().message();
}

TEST(AfXdp, OtherProgramAttachedIsBusyAndLeftAlone)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto v = VethPair::create("wxb", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    // Someone else's program: "return XDP_PASS".
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "wx_other", "GPL", insns, 2, nullptr);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const int ifindex = int(if_nametoindex(v->outer.c_str()));
    ASSERT_EQ(bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr), 0);
    const uint32_t other = xdp_prog_id(v->outer);
    ASSERT_NE(other, 0u);

    auto r = open_afxdp(v->outer, {}, LiveOptions{});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::device_or_resource_busy) << r.error().message();
    EXPECT_NE(r.error().message().find(std::to_string(other)), std::string::npos) << r.error().message();
    EXPECT_EQ(xdp_prog_id(v->outer), other) << "the other program must stay attached";

    // In generic mode the same.
    LiveOptions g;
    g.xdp_mode = LiveOptions::XdpMode::Generic;
    EXPECT_EQ(open_afxdp(v->outer, {}, g).error().code, std::errc::device_or_resource_busy);
    EXPECT_EQ(xdp_prog_id(v->outer), other);

    bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
    ::close(fd);
    EXPECT_EQ(xdp_prog_id(v->outer), 0u);
}

/// Reads until `want` frames arrived or 10 s passed.
uint64_t drain(weir::PacketSource& s, uint64_t want)
{
    std::array<weir::RawPacket, 64> b;
    uint64_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got < want && std::chrono::steady_clock::now() < deadline)
        got += s.rx_burst(b.data(), uint32_t(b.size()));
    return got;
}

TEST(AfXdp, LinkDownUpInEachMode)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto v = VethPair::create("wxg", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    for (auto mode : {LiveOptions::XdpMode::Generic, LiveOptions::XdpMode::Native}) {
        const bool generic = mode == LiveOptions::XdpMode::Generic;
        SCOPED_TRACE(generic ? "generic XDP" : "native XDP");
        LiveOptions o;
        o.xdp_mode = mode;
        o.xdp_zero_copy = LiveOptions::ZeroCopy::Off;
        o.poll_timeout_ms = 20;
        auto r = open_afxdp(v->outer, {0}, o);
        ASSERT_TRUE(r) << r.error().message();
        weir::PacketSource& s = *r.value();
        EXPECT_NE(s.describe().find(generic ? "generic XDP" : "native XDP"), std::string::npos) << s.describe();

        const int64_t sent = replay(*v);
        ASSERT_GT(sent, 0);
        EXPECT_EQ(drain(s, uint64_t(sent)), uint64_t(sent));

        // Link down: rx_burst waits (no spinning) and returns 0.
        ASSERT_EQ(sh("ip link set " + v->outer + " down"), 0);
        std::array<weir::RawPacket, 64> b;
        const auto t0 = std::chrono::steady_clock::now();
        uint32_t got = 0;
        for (int i = 0; i < 60; ++i)
            got += s.rx_burst(b.data(), uint32_t(b.size()));
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_EQ(got, 0u);
        EXPECT_GE(ms, 60 * 20 * 8 / 10) << "rx_burst must wait its poll timeout while the link is down";

        // Up again: capture goes on with the same sockets and program.
        ASSERT_EQ(sh("ip link set " + v->outer + " up"), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        const int64_t sent2 = replay(*v);
        ASSERT_GT(sent2, 0);
        EXPECT_EQ(drain(s, uint64_t(sent2)), uint64_t(sent2));
        EXPECT_EQ(s.stats().packets, uint64_t(sent + sent2));
        EXPECT_EQ(s.stats().drops, 0u);

        r.value().reset();
        EXPECT_EQ(xdp_prog_id(v->outer), 0u);
    }
}

TEST(AfXdp, ReopenRightAfterCloseAndSecondCaptureIsBusy)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto v = VethPair::create("wxo", 2, &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o;
    o.xdp_zero_copy = LiveOptions::ZeroCopy::Off;
    for (int i = 0; i < 5; ++i) {
        auto r = open_afxdp(v->outer, {}, o);
        ASSERT_TRUE(r) << "round " << i << ": " << r.error().message();
        // The interface is taken: a second capture is refused, the first goes on.
        auto second = open_afxdp(v->outer, {1}, o);
        ASSERT_FALSE(second);
        EXPECT_EQ(second.error().code, std::errc::device_or_resource_busy) << second.error().message();
        EXPECT_NE(xdp_prog_id(v->outer), 0u);
    }
    EXPECT_EQ(xdp_prog_id(v->outer), 0u);
}

TEST(AfXdp, InterfaceRemovedWhileCapturing)
{
    if (auto w = skip_reason(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto v = VethPair::create("wxr", 1, &why);
    if (!v)
        GTEST_SKIP() << why;
    LiveOptions o;
    o.poll_timeout_ms = 20;
    auto r = open_afxdp(v->outer, {}, o);
    ASSERT_TRUE(r) << r.error().message();
    weir::PacketSource& s = *r.value();
    ASSERT_EQ(sh("ip link del " + v->outer), 0);
    // No crash, no spinning: every call waits about its poll timeout.
    std::array<weir::RawPacket, 64> b;
    const auto t0 = std::chrono::steady_clock::now();
    uint32_t got = 0;
    for (int i = 0; i < 20; ++i)
        got += s.rx_burst(b.data(), uint32_t(b.size()));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(got, 0u);
    EXPECT_GE(ms, 20 * 20 * 8 / 10);
    EXPECT_EQ(s.stats().packets, 0u);
    (void)s.queue_stats();
    r.value().reset();  // detach finds no interface: fine
}

#endif // WEIR_HAVE_AFXDP

} // namespace
