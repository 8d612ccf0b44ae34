// DPDK back-end on the virtual devices this platform runs (no UIO/VFIO):
// net_pcap replays real captures (frames must arrive byte for byte, and the
// engine must build the same flows as from the file), net_null gives two
// RX queues, net_af_packet reads a veth that tcpreplay feeds from a network
// namespace. Bad device arguments, bad queues and a busy port must fail
// cleanly and leave nothing probed; bad EAL arguments must return EINVAL
// rather than end the process (checked in a child process, since the EAL
// can only be brought up once per process).
//
// One EAL per process: every test shares the one brought up by eal()
// (no hugepages, no PCI scan, a file prefix of its own); a test skips with
// the reason when DPDK is not built or the EAL cannot start.
#include <weir/dataplane/live.hpp>
#include <weir/dataplane/packet_source.hpp>
#if WEIR_HAVE_DPDK
#include <weir/dataplane/dpdk.hpp>
#endif
#include <weir/engine/pipeline.hpp>

#include "netns.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace weir;
using namespace weir::dataplane;
using Clock = std::chrono::steady_clock;

#if WEIR_HAVE_DPDK

namespace {

const std::string kPcaps = std::string(WEIR_SHARED_DIR) + "/pcaps";

LiveOptions base_options()
{
    LiveOptions o;
    o.eal_args = {"-l", "0", "--no-huge", "-m", "512", "--no-pci", "--file-prefix",
                  "wdtest" + std::to_string(getpid()), "--log-level=*:error"};
    o.poll_timeout_ms = 5;
    return o;
}

/// The process's EAL, brought up on first use; how long it took, in ms.
const Result<void>& eal(double* ms = nullptr)
{
    static double took = 0;
    static const Result<void> r = [] {
        const auto t0 = Clock::now();
        Result<void> x = dpdk_init(base_options());
        took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        return x;
    }();
    if (ms != nullptr)
        *ms = took;
    return r;
}
#define NEED_EAL()                                                                                 \
    do {                                                                                           \
        if (!eal())                                                                                \
            GTEST_SKIP() << "DPDK EAL did not start: " << eal().error().message();                 \
    } while (0)

std::set<std::string> port_set()
{
    auto v = dpdk_port_names();
    return {v.begin(), v.end()};
}

struct FileFrames {
    std::multiset<std::string> frames;
    size_t count = 0;
    bool complete = true; ///< every record has caplen == wire length
};

FileFrames read_file(const std::string& path)
{
    FileFrames f;
    auto s = open_capture_files(path);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    if (!s.ok())
        return f;
    RawPacket buf[64];
    while (!s.value()->finished()) {
        const uint32_t n = s.value()->rx_burst(buf, 64);
        for (uint32_t i = 0; i < n; ++i) {
            f.frames.emplace(reinterpret_cast<const char*>(buf[i].data), buf[i].caplen);
            f.complete = f.complete && buf[i].caplen == buf[i].wire_len;
            ++f.count;
        }
    }
    return f;
}

/// Pulls from `src` until `want` frames came or `limit` passed, then for
/// `linger` more to catch any extra frame.
std::vector<std::string> pull(PacketSource& src, size_t want, std::chrono::milliseconds limit,
                              std::chrono::milliseconds linger = std::chrono::milliseconds(100))
{
    std::vector<std::string> got;
    RawPacket buf[64];
    const auto end = Clock::now() + limit;
    auto stop_at = end;
    while (Clock::now() < stop_at) {
        const uint32_t n = src.rx_burst(buf, 64);
        for (uint32_t i = 0; i < n; ++i) {
            EXPECT_EQ(buf[i].caplen, buf[i].wire_len);
            EXPECT_EQ(buf[i].linktype, 1u);
            EXPECT_NE(buf[i].ts_ns, 0u);
            got.emplace_back(reinterpret_cast<const char*>(buf[i].data), buf[i].caplen);
        }
        if (got.size() >= want && stop_at == end)
            stop_at = std::min(end, Clock::now() + linger);
    }
    return got;
}

// Flows as the engine reports them: key, then packets and bytes each way.
using Row = std::tuple<std::string, uint16_t, uint16_t, uint8_t, uint64_t, uint64_t, uint64_t, uint64_t>;

engine::PipelineConfig pipeline_config()
{
    engine::PipelineConfig cfg;
    cfg.workers = 1;
    cfg.lossless = false;
    cfg.table.capacity = 1u << 14;
    // Live frames all arrive within a second while the file spans minutes:
    // timeouts longer than any capture keep flows whole in both runs.
    cfg.table.idle_timeout_ns = 100000ULL * 1000000000ULL;
    cfg.table.active_timeout_ns = 100000ULL * 1000000000ULL;
    return cfg;
}

struct FlowRun {
    std::vector<Row> rows;
    engine::PipelineStats stats;
};

/// Runs the pipeline on `src`; for live sources, stops it once `want`
/// packets were read (or after `limit`).
FlowRun flows(PacketSource& src, uint64_t want, std::chrono::milliseconds limit)
{
    FlowRun out;
    std::mutex mu;
    auto p = engine::Pipeline::create(pipeline_config(), [&](const FlowRecord& r) {
        std::lock_guard lk(mu);
        std::string a(reinterpret_cast<const char*>(r.client_addr().data()), 16);
        a += std::string(reinterpret_cast<const char*>(r.server_addr().data()), 16);
        out.rows.emplace_back(a, r.client_port(), r.server_port(), r.key.proto, r.dir[0].packets, r.dir[0].bytes,
                              r.dir[1].packets, r.dir[1].bytes);
    });
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok())
        return out;
    engine::Pipeline& pipe = *p.value();
    std::atomic<bool> done{false};
    std::thread stopper;
    if (src.live()) {
        stopper = std::thread([&] {
            const auto end = Clock::now() + limit;
            while (!done.load() && Clock::now() < end && pipe.snapshot().packets < want)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            std::this_thread::sleep_for(std::chrono::milliseconds(50)); // let extra frames show
            pipe.stop();
        });
    }
    out.stats = pipe.run(src);
    done = true;
    if (stopper.joinable())
        stopper.join();
    std::sort(out.rows.begin(), out.rows.end());
    return out;
}

std::string pcap_path(const std::string& rel) { return kPcaps + "/" + rel; }

} // namespace

// ------------------------------------------------------------- net_pcap

class DpdkPcap : public ::testing::TestWithParam<const char*> {};

TEST_P(DpdkPcap, FramesAndFlowsMatchTheFile)
{
    NEED_EAL();
    const std::string path = pcap_path(GetParam());
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " not found";
    const FileFrames file = read_file(path);
    ASSERT_GT(file.count, 0u);
    ASSERT_TRUE(file.complete) << "the test captures have no truncated records";

    LiveOptions opt = base_options();
    const auto before = port_set();
    {
        auto s = open_dpdk("net_pcap0,rx_pcap=" + path, {}, opt);
        ASSERT_TRUE(s.ok()) << s.error().message();
        PacketSource& src = *s.value();
        EXPECT_TRUE(src.live());
        EXPECT_FALSE(src.finished());
        EXPECT_NE(src.describe().find("net_pcap"), std::string::npos) << src.describe();
        EXPECT_TRUE(port_set().count("net_pcap0"));

        const auto got = pull(src, file.count, std::chrono::seconds(10));
        ASSERT_EQ(got.size(), file.count) << src.describe();
        // net_pcap chains frames larger than one mbuf's 2 KB data room;
        // the source hands them out linearised.
        const size_t chained = size_t(std::count_if(file.frames.begin(), file.frames.end(),
                                                     [](const std::string& f) { return f.size() > 2048; }));
        if (chained != 0)
            EXPECT_NE(src.describe().find(std::to_string(chained) + " chained frames copied, 0 dropped"),
                      std::string::npos) << src.describe();
        else
            EXPECT_EQ(src.describe().find("chained"), std::string::npos) << src.describe();
        EXPECT_TRUE(std::multiset<std::string>(got.begin(), got.end()) == file.frames)
            << "frames differ from the file's";
        const SourceStats st = src.stats();
        EXPECT_EQ(st.packets, file.count);
        EXPECT_EQ(st.drops, 0u);
        const auto q = src.queue_stats();
        ASSERT_EQ(q.size(), 1u);
        EXPECT_EQ(q[0].name, "dpdk:net_pcap0@0");
        EXPECT_EQ(q[0].packets, file.count);
    }
    EXPECT_EQ(port_set(), before) << "the hot-plugged device is removed with its source";

    // The engine on the DPDK port and on the file: the same flows.
    auto from_file = open_capture_files(path);
    ASSERT_TRUE(from_file.ok());
    const FlowRun want = flows(*from_file.value(), file.count, std::chrono::seconds(0));
    auto s = open_dpdk("net_pcap1,rx_pcap=" + path, {}, opt);
    ASSERT_TRUE(s.ok()) << s.error().message();
    const FlowRun got = flows(*s.value(), file.count, std::chrono::seconds(20));
    EXPECT_EQ(got.stats.packets, file.count);
    EXPECT_EQ(got.stats.decoded, want.stats.decoded);
    ASSERT_FALSE(want.rows.empty());
    EXPECT_EQ(got.rows.size(), want.rows.size());
    EXPECT_TRUE(got.rows == want.rows) << "flows from DPDK differ from the file's";
}

// Plain Ethernet, VLAN-tagged (every frame), and frames over 2 KB that
// net_pcap chains over several mbufs (1kxun up to 37 KB, ultrasurf VLAN too).
INSTANTIATE_TEST_SUITE_P(Captures, DpdkPcap,
                         ::testing::Values("misc/test.pcap", "ndpi/pcap/bot.pcap", "ndpi/pcap/1kxun.pcap",
                                           "ndpi/pcap/ultrasurf.pcap"),
                         [](const auto& info) {
                             std::string n = std::filesystem::path(info.param).stem().string();
                             std::replace_if(n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
                             return n;
                         });

TEST(Dpdk, EalInitTimeAndPcapReplayRate)
{
    NEED_EAL();
    double ms = 0;
    (void)eal(&ms);
    std::printf("EAL initialisation: %.0f ms\n", ms);
    RecordProperty("eal_init_ms", std::to_string(ms));
    const std::string path = pcap_path("misc/test.pcap");
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " not found";
    LiveOptions opt = base_options();
    opt.poll_timeout_ms = 0;
    auto s = open_dpdk("net_pcap2,rx_pcap=" + path + ",infinite_rx=1", {}, opt);
    ASSERT_TRUE(s.ok()) << s.error().message();
    PacketSource& src = *s.value();
    RawPacket buf[64];
    uint64_t n = 0, bytes = 0;
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::seconds(3);
    while (Clock::now() < end) {
        for (int i = 0; i < 64; ++i) {
            const uint32_t k = src.rx_burst(buf, 64);
            n += k;
            for (uint32_t j = 0; j < k; ++j)
                bytes += buf[j].data[0] + buf[j].caplen; // touch every frame
        }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double mpps = double(n) / secs / 1e6;
    std::printf("net_pcap infinite_rx: %.2f Mpps through rx_burst (%llu frames in %.2f s)\n", mpps,
                static_cast<unsigned long long>(n), secs);
    RecordProperty("net_pcap_infinite_rx_mpps", std::to_string(mpps));
    EXPECT_GT(n, 179u * 10) << "the capture loops";
    EXPECT_GT(bytes, 0u);
    EXPECT_EQ(src.stats().packets, n);
}

TEST(Dpdk, OpenedThroughTheInterfaceList)
{
    NEED_EAL();
    const std::string path = pcap_path("misc/test.pcap");
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " not found";
    const FileFrames file = read_file(path);
    auto s = open_input("dpdk:net_pcap5,rx_pcap=" + path, base_options());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_NE(s.value()->describe().find("dpdk:net_pcap5"), std::string::npos) << s.value()->describe();
    EXPECT_EQ(pull(*s.value(), file.count, std::chrono::seconds(10)).size(), file.count);
}

// ------------------------------------------------------------- queues

TEST(Dpdk, TwoQueuesOnNetNull)
{
    NEED_EAL();
    LiveOptions opt = base_options();
    opt.dpdk_rx_queues = 2;
    auto s = open_dpdk("net_null0", {}, opt);
    ASSERT_TRUE(s.ok()) << s.error().message();
    PacketSource& src = *s.value();
    EXPECT_NE(src.describe().find("2 RX queues"), std::string::npos) << src.describe();
    // net_null accepts an RSS configuration: the port is set up with the
    // symmetric key over the hash functions it offers.
    EXPECT_NE(src.describe().find("RSS symmetric Toeplitz 40-byte key"), std::string::npos) << src.describe();
    RawPacket buf[64];
    uint64_t n = 0;
    const auto end = Clock::now() + std::chrono::milliseconds(300);
    while (Clock::now() < end)
        n += src.rx_burst(buf, 64);
    ASSERT_GT(n, 0u);
    const auto q = src.queue_stats();
    ASSERT_EQ(q.size(), 2u);
    EXPECT_EQ(q[0].name, "dpdk:net_null0@0");
    EXPECT_EQ(q[1].name, "dpdk:net_null0@1");
    EXPECT_GT(q[0].packets, 0u);
    EXPECT_GT(q[1].packets, 0u) << "both queues are polled";
    EXPECT_EQ(q[0].packets + q[1].packets, n);
    EXPECT_EQ(src.stats().packets, n);
    // Round-robin: neither queue starves the other.
    EXPECT_LT(std::max(q[0].packets, q[1].packets), 2 * std::min(q[0].packets, q[1].packets) + 64);
}

TEST(Dpdk, ExplicitQueueList)
{
    NEED_EAL();
    auto s = open_dpdk("net_null1", {1, 0}, base_options());
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s.value()->queue_stats().size(), 2u);
}

TEST(Dpdk, QueueOutOfRangeIsEinvalAndLeavesNothingProbed)
{
    NEED_EAL();
    const auto before = port_set();
    for (const std::vector<uint32_t>& qs : {std::vector<uint32_t>{5}, {0, 2}, {1, 1}}) {
        auto s = open_dpdk("net_null3", qs, base_options());
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.error().code, std::errc::invalid_argument) << s.error().message();
        EXPECT_NE(s.error().message().find("out of range"), std::string::npos) << s.error().message();
    }
    // net_pcap has one RX queue per rx_pcap argument.
    LiveOptions opt = base_options();
    opt.dpdk_rx_queues = 2;
    auto p = open_dpdk("net_pcap3,rx_pcap=" + pcap_path("misc/test.pcap"), {}, opt);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code, std::errc::invalid_argument) << p.error().message();
    EXPECT_NE(p.error().message().find("at most 1"), std::string::npos) << p.error().message();
    EXPECT_EQ(port_set(), before);
}

// ------------------------------------------------------------- errors

TEST(Dpdk, BadDeviceArgumentsFailCleanly)
{
    NEED_EAL();
    const auto before = port_set();
    auto a = open_dpdk("net_bogus0,foo=1", {}, base_options());
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.error().message().find("net_bogus0"), std::string::npos) << a.error().message();
    auto b = open_dpdk("net_pcap4,rx_pcap=/nonexistent/weir.pcap", {}, base_options());
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.error().message().find("net_pcap4"), std::string::npos) << b.error().message();
    auto c = open_dpdk("0000:42:00.0", {}, base_options()); // --no-pci: nothing scans PCI
    ASSERT_FALSE(c.ok());
    auto d = open_dpdk("", {}, base_options());
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, std::errc::invalid_argument);
    EXPECT_EQ(port_set(), before) << "a failed open leaves no device behind";
}

TEST(Dpdk, SecondSourceOnABusyPortIsEbusy)
{
    NEED_EAL();
    auto a = open_dpdk("net_null4", {}, base_options());
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto b = open_dpdk("net_null4", {}, base_options());
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().code, std::errc::device_or_resource_busy) << b.error().message();
    a.value().reset();
    EXPECT_EQ(port_set().count("net_null4"), 0u);
    auto c = open_dpdk("net_null4", {}, base_options()); // probed afresh
    EXPECT_TRUE(c.ok()) << c.error().message();
}

// In a child process with no EAL yet: bad EAL arguments come back as EINVAL
// (never exit or abort), "--help" is refused before DPDK can exit on it,
// and good arguments still work afterwards.
int bad_eal_arguments_child()
{
    LiveOptions bad;
    bad.eal_args = {"--weir-no-such-option", "--no-pci"};
    auto r = dpdk_init(bad);
    if (r.ok() || r.error().code != std::errc::invalid_argument)
        return 10;
    if (r.error().message().find("--weir-no-such-option") == std::string::npos)
        return 11;
    bad.eal_args = {"-l", "4096", "--no-huge", "--no-pci"};
    r = dpdk_init(bad);
    if (r.ok() || r.error().code != std::errc::invalid_argument)
        return 12;
    bad.eal_args = {"--help"};
    r = dpdk_init(bad);
    if (r.ok() || r.error().code != std::errc::invalid_argument)
        return 13;
    LiveOptions good = base_options();
    good.eal_args[7] += "child";
    r = dpdk_init(good);
    if (!r.ok()) {
        std::fprintf(stderr, "good arguments after bad ones: %s\n", r.error().message().c_str());
        return 14;
    }
    auto s = open_dpdk("net_null0", {}, good);
    return s.ok() ? 42 : 15; // not 0: DPDK's own exit(0) on --help must not pass for success
}

TEST(DpdkDeathTest, BadEalArgumentsReturnEinval)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe"); // a fresh process: the EAL is not up there yet
    EXPECT_EXIT(std::exit(bad_eal_arguments_child()), ::testing::ExitedWithCode(42), "");
}

// Without eal_args the EAL comes up with weir's defaults (its own file
// prefix, --no-huge when no hugepage is free) and its runtime directory is
// gone after a clean exit.
std::set<std::string> weir_runtime_dirs()
{
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/var/run/dpdk", ec))
        if (e.path().filename().string().rfind("weir-", 0) == 0)
            out.insert(e.path().filename().string());
    return out;
}

int default_eal_arguments_child()
{
    auto r = dpdk_init(LiveOptions{});
    if (!r.ok()) {
        std::fprintf(stderr, "default EAL arguments: %s\n", r.error().message().c_str());
        return 20;
    }
    if (!std::filesystem::exists("/var/run/dpdk/weir-" + std::to_string(getpid())))
        return 21;
    auto s = open_dpdk("net_null0", {}, LiveOptions{});
    if (!s.ok())
        return 22;
    RawPacket buf[8];
    if (s.value()->rx_burst(buf, 8) == 0)
        return 23;
    return 42;
}

TEST(DpdkDeathTest, DefaultEalArgumentsAndCleanExit)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    const auto before = weir_runtime_dirs();
    EXPECT_EXIT(std::exit(default_eal_arguments_child()), ::testing::ExitedWithCode(42), "EAL up in");
    EXPECT_EQ(weir_runtime_dirs(), before) << "the EAL runtime directory is removed at exit";
}

// ------------------------------------------------------------- af_packet

/// Opens `driver` on the outer end of a veth pair and replays a capture
/// into the inner end from the namespace: every frame is received or
/// counted as dropped, and the frames are those of the file.
void replay_through_veth(const std::string& tag, const std::string& devargs_fmt)
{
    if (!test::have_tool("tcpreplay"))
        GTEST_SKIP() << "tcpreplay not installed";
    const std::string path = pcap_path("misc/test.pcap");
    if (!std::filesystem::exists(path))
        GTEST_SKIP() << path << " not found";
    std::string why;
    auto veth = test::VethPair::create(tag, 1, &why);
    if (!veth)
        GTEST_SKIP() << why;
    const FileFrames file = read_file(path);

    std::string devargs = devargs_fmt;
    devargs.replace(devargs.find("IFACE"), 5, veth->outer);
    auto s = open_dpdk(devargs, {}, base_options());
    ASSERT_TRUE(s.ok()) << s.error().message();
    PacketSource& src = *s.value();
    // Bounded: a 179-frame capture at 2000 packets/s, at most 30 s.
    std::atomic<int> rc{-1};
    std::thread gen([&] { rc = veth->in_ns("timeout 30 tcpreplay -q -i " + veth->inner + " --pps=2000 " + path +
                                           " >/dev/null 2>&1"); });
    const auto got = pull(src, file.count, std::chrono::seconds(15), std::chrono::milliseconds(300));
    gen.join();
    ASSERT_EQ(rc.load(), 0) << "tcpreplay failed";
    const SourceStats st = src.stats();
    EXPECT_EQ(got.size() + st.drops, file.count) << src.describe();
    EXPECT_EQ(st.packets, got.size());
    EXPECT_TRUE(std::multiset<std::string>(got.begin(), got.end()) == file.frames) << "frames differ";
}

TEST(Dpdk, AfPacketOnVethSeesEveryReplayedFrame)
{
    NEED_EAL();
    replay_through_veth("wd", "net_af_packet0,iface=IFACE");
}

TEST(Dpdk, AfXdpOnVethSeesEveryReplayedFrame)
{
    NEED_EAL();
    replay_through_veth("wdx", "net_af_xdp0,iface=IFACE,start_queue=0,queue_count=1");
}

#else

TEST(Dpdk, NotBuilt)
{
    GTEST_SKIP() << "weir was built without DPDK (libdpdk-dev not found, or WEIR_WITH_DPDK=OFF)";
}

#endif // WEIR_HAVE_DPDK
