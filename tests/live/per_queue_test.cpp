// Per-queue capture threads (weir --per-queue) on a veth pair with two RX
// queues: weir-gen sends bounded, rate-limited UDP from the pair's namespace
// through an AF_XDP socket on TX queue Q of the inner end, and veth delivers
// those frames on RX queue Q of the outer end (frames redirected by XDP
// would land on the queue of the sending CPU instead). Checks, against what
// weir-gen reports sent:
//   - AF_XDP, flows kept to one queue each: every frame is received or
//     counted as dropped, each queue thread holds the flows of its queue,
//     and the flows (packets and bytes per direction) equal those of the
//     inline single-thread mode (-w 0) on the same traffic;
//   - AF_XDP, the same flows sent on both queues: each flow is accounted in
//     both queue tables and exported twice (once per queue thread), packets
//     summing to what was sent: the split that docs/capture.md describes;
//   - AF_PACKET, the same flows sent on both queues: the fanout group's flow
//     hash keeps each flow on one socket, so one record per flow;
//   - DPDK net_pcap with one capture file per RX queue: each queue thread
//     accounts exactly the flows of its file, as the file read on its own.
// Needs root, weir-gen and AF_XDP support; skips with the reason otherwise.
#include "netns.hpp"

#include <weir/core/flow_record.hpp>
#include <weir/dataplane/live.hpp>
#if WEIR_HAVE_DPDK
#include <weir/dataplane/dpdk.hpp>
#endif
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/queue_pipelines.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using weir::test::sh;
using weir::test::VethPair;
namespace engine = weir::engine;
namespace dataplane = weir::dataplane;

const std::string kGen = WEIR_BINARY_DIR "/tools/weir-gen/weir-gen";

struct Row {
    uint64_t pkts[2] = {0, 0};
    uint64_t bytes[2] = {0, 0};
    uint32_t records = 0;
    uint32_t queue_mask = 0; ///< bit q: a record came from queue thread q
    bool operator==(const Row& o) const
    {
        return pkts[0] == o.pkts[0] && pkts[1] == o.pkts[1] && bytes[0] == o.bytes[0] && bytes[1] == o.bytes[1];
    }
};
using Flows = std::map<std::string, Row>;

std::string key_bytes(const weir::FlowKey& k)
{
    return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

void add(Flows& f, const weir::FlowRecord& r)
{
    Row& row = f[key_bytes(r.key)];
    for (int d = 0; d < 2; ++d) {
        row.pkts[d] += r.dir[d].packets;
        row.bytes[d] += r.dir[d].bytes;
    }
    ++row.records;
    row.queue_mask |= 1u << (r.worker & 31);
}

engine::PipelineConfig config()
{
    engine::PipelineConfig cfg;
    cfg.workers = 0;
    cfg.lossless = false; // live capture: as weir runs it
    cfg.table.capacity = 1u << 14;
    cfg.table.idle_timeout_ns = 3600ULL * 1000000000ULL;
    cfg.table.active_timeout_ns = 3600ULL * 1000000000ULL;
    return cfg;
}

dataplane::LiveOptions options()
{
    dataplane::LiveOptions o;
    o.xdp_umem_frames = 4096;
    o.xdp_ring_size = 2048;
    o.afp_block_size = 256u << 10;
    o.afp_block_count = 64;
    return o;
}

/// One generator run on TX queue `queue` of the inner end (its frames land
/// on RX queue `queue` of the outer end); returns the frames weir-gen
/// reports sent, -1 on failure.
int64_t gen(const VethPair& v, unsigned queue, const std::string& src_ip, uint32_t flows, uint32_t count)
{
    const std::string out = "/tmp/pq_test_gen_" + std::to_string(getpid()) + ".json";
    const int rc = sh("ip netns exec " + v.ns + " " + kGen + " -i " + v.inner + " --mode afxdp --queue " +
                      std::to_string(queue) + " --count " + std::to_string(count) + " --flows " + std::to_string(flows) +
                      " --rate 20000 --src-ip " + src_ip + " --json >" + out + " 2>/dev/null");
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    ::unlink(out.c_str());
    if (rc != 0)
        return -1;
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.contains("sent"))
        return -1;
    return j["sent"].get<int64_t>();
}

struct Capture {
    Flows flows;
    uint64_t packets = 0;      ///< frames the engine read
    uint64_t drops = 0;        ///< capture drops (kernel, rings)
    uint64_t records = 0;
    int64_t sent = 0;
    std::vector<uint64_t> queue_packets; ///< per queue thread (per-queue mode)
};

/// Waits until `read() + drops() >= expect` (or 15 s), then a little more
/// so that nothing extra can hide, and calls stop().
void settle(const std::function<uint64_t()>& seen, uint64_t expect, const std::function<void()>& stop)
{
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline && seen() < expect)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop();
}

using Traffic = std::function<int64_t()>;

Capture run_per_queue(const std::string& input, const Traffic& traffic, size_t want_queues)
{
    Capture out;
    auto in = dataplane::open_input_queues(input, options());
    EXPECT_TRUE(in.ok()) << (in.ok() ? "" : in.error().message());
    if (!in.ok())
        return out;
    EXPECT_EQ(in.value().queues.size(), want_queues);
    weir::PacketSource& all = *in.value().all;
    auto qp = engine::QueuePipelines::create(config(), in.value().queues.size(), [&](const weir::FlowRecord& r) {
        add(out.flows, r); // the export thread: this test's run() caller
        ++out.records;
    });
    EXPECT_TRUE(qp.ok()) << (qp.ok() ? "" : qp.error().message());
    if (!qp.ok())
        return out;
    engine::QueuePipelines& q = *qp.value();
    std::thread driver([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the queue threads are reading
        out.sent = traffic();
        settle([&] { return q.snapshot().packets + all.stats().drops; }, uint64_t(std::max<int64_t>(out.sent, 0)),
               [&] { q.stop(); });
    });
    const auto st = q.run(std::span<weir::PacketSource* const>(in.value().queues));
    driver.join();
    out.packets = st.packets;
    out.drops = all.stats().drops;
    for (const auto& s : q.per_queue())
        out.queue_packets.push_back(s.packets);
    EXPECT_EQ(st.flows_exported, out.records);
    EXPECT_EQ(st.flows_created, out.records) << "every flow created was exported at the end";
    return out;
}

Capture run_inline(const std::string& input, const Traffic& traffic)
{
    Capture out;
    auto src = dataplane::open_input(input, options());
    EXPECT_TRUE(src.ok()) << (src.ok() ? "" : src.error().message());
    if (!src.ok())
        return out;
    weir::PacketSource& s = *src.value();
    auto p = engine::Pipeline::create(config(), [&](const weir::FlowRecord& r) {
        add(out.flows, r);
        ++out.records;
    });
    EXPECT_TRUE(p.ok());
    if (!p.ok())
        return out;
    engine::Pipeline& pl = *p.value();
    std::thread driver([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        out.sent = traffic();
        settle([&] { return pl.snapshot().packets + s.stats().drops; }, uint64_t(std::max<int64_t>(out.sent, 0)),
               [&] { pl.stop(); });
    });
    const auto st = pl.run(s);
    driver.join();
    out.packets = st.packets;
    out.drops = s.stats().drops;
    return out;
}

class PerQueue : public ::testing::Test {
protected:
    void SetUp() override
    {
        struct stat st{};
        if (::stat(kGen.c_str(), &st) != 0)
            GTEST_SKIP() << "weir-gen was not built (needs clang, bpftool, libbpf, libxdp)";
        std::string why;
        v_ = VethPair::create(tag(), 2, &why);
        if (!v_)
            GTEST_SKIP() << why;
        sh("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
    }
    virtual std::string tag() const = 0;
    std::unique_ptr<VethPair> v_;
};

class PerQueueXdp : public PerQueue {
protected:
    std::string tag() const override { return "pqx"; }
    void SetUp() override
    {
#if !WEIR_HAVE_AFXDP
        GTEST_SKIP() << "weir was built without AF_XDP";
#endif
        PerQueue::SetUp();
    }
};

class PerQueueAfPacket : public PerQueue {
protected:
    std::string tag() const override { return "pqa"; }
};

TEST_F(PerQueueXdp, FlowsKeptToOneQueueMatchInlineMode)
{
    constexpr uint32_t kFlows = 40, kEach = 4000;
    // Source 10.0.0.1 on queue 0, 10.1.0.1 on queue 1.
    const Traffic traffic = [&]() -> int64_t {
        const int64_t a = gen(*v_, 0, "10.0.0.1", kFlows, kEach);
        const int64_t b = gen(*v_, 1, "10.1.0.1", kFlows, kEach);
        return a < 0 || b < 0 ? -1 : a + b;
    };
    const std::string input = "xdp:" + v_->outer;
    const Capture pq = run_per_queue(input, traffic, 2);
    ASSERT_EQ(pq.sent, 2 * kEach) << "weir-gen failed";
    EXPECT_EQ(pq.packets + pq.drops, uint64_t(pq.sent)) << "every frame read or counted as dropped";
    ASSERT_EQ(pq.queue_packets.size(), 2u);
    EXPECT_GT(pq.queue_packets[0], 0u);
    EXPECT_GT(pq.queue_packets[1], 0u);
    for (const auto& [k, row] : pq.flows) {
        EXPECT_EQ(row.records, 1u) << "a flow kept to one queue is exported once";
        // 10.1.0.1's flows came on queue 1, 10.0.0.1's on queue 0.
        weir::FlowKey key{};
        std::memcpy(&key, k.data(), sizeof(key));
        const std::string addrs(reinterpret_cast<const char*>(key.addr_a.data()), 16);
        const std::string addrs_b(reinterpret_cast<const char*>(key.addr_b.data()), 16);
        const std::string b_src("\x0a\x01\x00\x01", 4);
        const bool from_b = addrs.find(b_src) != std::string::npos || addrs_b.find(b_src) != std::string::npos;
        EXPECT_EQ(row.queue_mask, from_b ? 2u : 1u);
    }
    if (pq.drops == 0) {
        EXPECT_EQ(pq.flows.size(), 2 * kFlows);
        EXPECT_EQ(pq.queue_packets[0], kEach);
        EXPECT_EQ(pq.queue_packets[1], kEach);
    }

    const Capture one = run_inline(input, traffic);
    ASSERT_EQ(one.sent, 2 * kEach);
    EXPECT_EQ(one.packets + one.drops, uint64_t(one.sent));
    if (pq.drops == 0 && one.drops == 0) {
        EXPECT_EQ(pq.flows.size(), one.flows.size());
        EXPECT_TRUE(pq.flows == one.flows) << "per-queue and inline mode account the same flows";
    } else {
        std::fprintf(stderr, "capture drops (per-queue %llu, inline %llu): flows not compared one to one\n",
                     (unsigned long long)pq.drops, (unsigned long long)one.drops);
    }
}

TEST_F(PerQueueXdp, FlowOnBothQueuesIsSplitBetweenTables)
{
    constexpr uint32_t kFlows = 30, kEach = 3000;
    // The same flows on both queues.
    const Traffic traffic = [&]() -> int64_t {
        const int64_t a = gen(*v_, 0, "10.2.0.1", kFlows, kEach);
        const int64_t b = gen(*v_, 1, "10.2.0.1", kFlows, kEach);
        return a < 0 || b < 0 ? -1 : a + b;
    };
    const Capture pq = run_per_queue("xdp:" + v_->outer, traffic, 2);
    ASSERT_EQ(pq.sent, 2 * kEach) << "weir-gen failed";
    EXPECT_EQ(pq.packets + pq.drops, uint64_t(pq.sent));
    uint64_t sum = 0;
    for (const auto& [k, row] : pq.flows)
        sum += row.pkts[0] + row.pkts[1];
    EXPECT_EQ(sum, pq.packets) << "packets are never lost or counted twice by the split";
    if (pq.drops == 0) {
        EXPECT_EQ(pq.flows.size(), kFlows);
        EXPECT_EQ(pq.records, 2 * kFlows) << "one record per flow per queue thread";
        for (const auto& [k, row] : pq.flows) {
            EXPECT_EQ(row.records, 2u);
            EXPECT_EQ(row.queue_mask, 3u) << "one record from each queue thread";
            EXPECT_EQ(row.pkts[0] + row.pkts[1], 2 * kEach / kFlows);
        }
    }
}

TEST_F(PerQueueAfPacket, FanoutKeepsEachFlowOnOneSocket)
{
    constexpr uint32_t kFlows = 30, kEach = 3000;
    const Traffic traffic = [&]() -> int64_t {
        const int64_t a = gen(*v_, 0, "10.3.0.1", kFlows, kEach);
        const int64_t b = gen(*v_, 1, "10.3.0.1", kFlows, kEach);
        return a < 0 || b < 0 ? -1 : a + b;
    };
    const Capture pq = run_per_queue("afpacket:" + v_->outer, traffic, 2);
    ASSERT_EQ(pq.sent, 2 * kEach) << "weir-gen failed";
    EXPECT_EQ(pq.packets + pq.drops, uint64_t(pq.sent));
    if (pq.drops == 0) {
        EXPECT_EQ(pq.flows.size(), kFlows);
        EXPECT_EQ(pq.records, kFlows) << "the fanout hash sends every packet of a flow to one socket";
        for (const auto& [k, row] : pq.flows)
            EXPECT_EQ(row.pkts[0] + row.pkts[1], 2 * kEach / kFlows);
    }
}

#if WEIR_HAVE_DPDK
/// The flows of a capture file read by the inline pipeline.
Flows file_flows(const std::string& path, uint64_t* packets)
{
    Flows f;
    auto src = dataplane::open_capture_files(path);
    EXPECT_TRUE(src.ok()) << (src.ok() ? "" : src.error().message());
    if (!src.ok())
        return f;
    engine::PipelineConfig cfg = config();
    cfg.lossless = true;
    auto p = engine::Pipeline::create(cfg, [&](const weir::FlowRecord& r) { add(f, r); });
    EXPECT_TRUE(p.ok());
    if (p.ok())
        *packets = p.value()->run(*src.value()).packets;
    return f;
}

// DPDK net_pcap gives one RX queue per rx_pcap file: two files, two queue
// threads, each must account exactly the flows of its file.
TEST(PerQueueDpdk, EachQueueThreadAccountsItsQueue)
{
    const std::string a = std::string(WEIR_SHARED_DIR) + "/pcaps/misc/test.pcap";
    const std::string b = std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/youtube_quic.pcap";
    struct stat st{};
    if (::stat(a.c_str(), &st) != 0 || ::stat(b.c_str(), &st) != 0)
        GTEST_SKIP() << "shared captures not found";
    dataplane::LiveOptions opt = options();
    opt.eal_args = {"-l", "0", "--no-huge", "-m", "512", "--no-pci", "--file-prefix",
                    "weir-pq-test-" + std::to_string(getpid())};
    opt.dpdk_rx_queues = 2;
    if (auto e = dataplane::dpdk_init(opt); !e)
        GTEST_SKIP() << "DPDK EAL did not start: " << e.error().message();
    uint64_t na = 0, nb = 0;
    const Flows fa = file_flows(a, &na), fb = file_flows(b, &nb);
    ASSERT_GT(na, 0u);
    ASSERT_GT(nb, 0u);

    auto in = dataplane::open_input_queues("dpdk:net_pcap9,rx_pcap=" + a + ",rx_pcap=" + b, opt);
    ASSERT_TRUE(in.ok()) << in.error().message();
    ASSERT_EQ(in.value().queues.size(), 2u);
    EXPECT_NE(in.value().queues[1]->describe().find("RX queue 1 of 2"), std::string::npos)
        << in.value().queues[1]->describe();
    std::vector<Flows> per(2);
    auto qp = engine::QueuePipelines::create(config(), 2, [&](const weir::FlowRecord& r) {
        ASSERT_LT(r.worker, 2u);
        add(per[r.worker], r);
    });
    ASSERT_TRUE(qp.ok()) << qp.error().message();
    engine::QueuePipelines& q = *qp.value();
    std::thread driver([&] {
        settle([&] { return q.snapshot().packets; }, na + nb, [&] { q.stop(); });
    });
    const auto total = q.run(std::span<weir::PacketSource* const>(in.value().queues));
    driver.join();
    EXPECT_EQ(total.packets, na + nb);
    const auto pq = q.per_queue();
    ASSERT_EQ(pq.size(), 2u);
    EXPECT_EQ(pq[0].packets, na);
    EXPECT_EQ(pq[1].packets, nb);
    EXPECT_EQ(in.value().queues[0]->stats().packets, na) << "a view counts what it delivered";
    EXPECT_EQ(in.value().all->stats().packets, na + nb);
    EXPECT_EQ(per[0].size(), fa.size());
    EXPECT_TRUE(per[0] == fa) << "queue 0 holds the flows of " << a;
    EXPECT_EQ(per[1].size(), fb.size());
    EXPECT_TRUE(per[1] == fb) << "queue 1 holds the flows of " << b;
}
#endif

TEST(PerQueueInput, RefusesWhatCannotBeSplit)
{
    auto f = dataplane::open_input_queues(std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/youtube_quic.pcap", {});
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.error().message().find("capture file"), std::string::npos) << f.error().message();
    auto p = dataplane::open_input_queues("pcap:lo", {});
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("cannot be split"), std::string::npos) << p.error().message();
    auto e = engine::QueuePipelines::create(config(), 0, [](const weir::FlowRecord&) {});
    EXPECT_FALSE(e.ok());
}

} // namespace
