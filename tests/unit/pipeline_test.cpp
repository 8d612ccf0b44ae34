// Pipeline: reader -> workers -> exporter gives the same flows whatever the
// number of workers, loses nothing in lossless mode, counts what it loses
// otherwise, and ends every flow when stopped.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/pipeline.hpp>

#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <tuple>

using namespace weir;
using namespace weir::engine;
using weir::test::PacketBuilder;

namespace {

// A PacketSource over frames held in memory, handing them out in bursts.
class MemorySource final : public PacketSource {
public:
    struct Frame {
        std::vector<uint8_t> bytes;
        uint64_t ts_ns;
    };
    explicit MemorySource(std::vector<Frame> frames) : frames_(std::move(frames)) {}

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        uint32_t i = 0;
        for (; i < n && pos_ < frames_.size(); ++i, ++pos_) {
            const Frame& f = frames_[pos_];
            out[i] = RawPacket{f.bytes.data(), static_cast<uint32_t>(f.bytes.size()),
                static_cast<uint32_t>(f.bytes.size()), f.ts_ns, 1};
        }
        return i;
    }
    bool finished() const noexcept override { return pos_ >= frames_.size(); }
    std::optional<Error> error() const override { return std::nullopt; }
    SourceStats stats() const noexcept override { return {}; }
    std::vector<uint32_t> linktypes() const override { return {1}; }
    std::string describe() const override { return "memory"; }

private:
    std::vector<Frame> frames_;
    size_t pos_ = 0;
};

using Row = std::tuple<std::string, uint16_t, uint16_t, uint8_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
    uint64_t, int>;

Row row(const FlowRecord& r)
{
    std::string a(reinterpret_cast<const char*>(r.client_addr().data()), 16);
    a += std::string(reinterpret_cast<const char*>(r.server_addr().data()), 16);
    return {a, r.client_port(), r.server_port(), r.key.proto, r.dir[0].packets, r.dir[0].bytes, r.dir[1].packets,
        r.dir[1].bytes, r.first_ns(), r.last_ns(), static_cast<int>(r.end_reason)};
}

struct RunResult {
    std::vector<Row> rows;
    PipelineStats stats;
};

RunResult run(PacketSource& src, PipelineConfig cfg)
{
    RunResult out;
    std::mutex mu; // the sink runs on one thread; the mutex only documents it
    auto p = Pipeline::create(cfg, [&](const FlowRecord& r) {
        std::lock_guard lk(mu);
        out.rows.push_back(row(r));
    });
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok())
        return out;
    out.stats = p.value()->run(src);
    std::sort(out.rows.begin(), out.rows.end());
    return out;
}

// Many flows over simulated minutes: some idle out and come back, TCP
// sessions close, UDP keeps going; shuffled arrival within small windows.
std::vector<MemorySource::Frame> traffic(uint32_t flows, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::vector<MemorySource::Frame> frames;
    uint64_t ts = 1700000000ULL * 1000000000ULL;
    for (uint32_t round = 0; round < 6; ++round) {
        for (uint32_t f = 0; f < flows; ++f) {
            const std::string c = "10.1." + std::to_string(f / 250) + "." + std::to_string(f % 250 + 1);
            const uint16_t cport = static_cast<uint16_t>(20000 + f);
            const bool tcp = f % 3 != 0;
            const int pkts = 1 + static_cast<int>(rng() % 4);
            for (int i = 0; i < pkts; ++i) {
                ts += 1000 + rng() % 100000;
                PacketBuilder fwd, rev;
                fwd.eth().ipv4(c, "192.0.2.10");
                rev.eth(test::kMacB, test::kMacA).ipv4("192.0.2.10", c);
                if (tcp) {
                    const uint8_t fl = (round == 5 && i == pkts - 1) ? (kTcpFin | kTcpAck) : kTcpAck;
                    fwd.tcp(cport, 443, fl).payload("hello");
                    rev.tcp(443, cport, fl).payload("world!");
                } else {
                    fwd.udp(cport, 53).payload("q");
                    rev.udp(53, cport).payload("answer");
                }
                frames.push_back({fwd.build(), ts});
                frames.push_back({rev.build(), ts + 10});
            }
        }
        // Every other round a long silence makes every flow idle out.
        ts += (round % 2) ? 200ULL * 1000000000ULL : 5ULL * 1000000000ULL;
    }
    return frames;
}

PipelineConfig config(uint16_t workers)
{
    PipelineConfig cfg;
    cfg.workers = workers;
    cfg.table.capacity = 1u << 14;
    cfg.table.idle_timeout_ns = 60ULL * 1000000000ULL;
    cfg.table.active_timeout_ns = 120ULL * 1000000000ULL;
    return cfg;
}

} // namespace

TEST(Pipeline, SameFlowsWithAnyNumberOfWorkers)
{
    const auto frames = traffic(1500, 7);
    MemorySource s0(frames);
    const auto base = run(s0, config(0));
    ASSERT_EQ(base.rows.size(), 1500u * 3) << "two long silences split every flow in three";
    EXPECT_EQ(base.stats.packets, frames.size());
    EXPECT_EQ(base.stats.decoded, frames.size());
    EXPECT_EQ(base.stats.flows_exported, base.rows.size());
    EXPECT_GT(base.stats.exported_by_reason[static_cast<int>(EndReason::IdleTimeout)], 0u);
    EXPECT_GT(base.stats.exported_by_reason[static_cast<int>(EndReason::ForcedEnd)], 0u);
    for (uint16_t w : {1, 2, 3, 4}) {
        MemorySource s(frames);
        const auto r = run(s, config(w));
        EXPECT_EQ(r.stats.packets, frames.size()) << w << " workers";
        EXPECT_EQ(r.rows, base.rows) << w << " workers";
        EXPECT_EQ(r.stats.flows_exported, base.stats.flows_exported);
        uint64_t pk = 0;
        for (const Row& x : r.rows)
            pk += std::get<4>(x) + std::get<6>(x);
        EXPECT_EQ(pk, frames.size()) << "every packet lands in exactly one flow";
    }
}

TEST(Pipeline, LossyModeCountsWhatItDrops)
{
    const auto frames = traffic(800, 11);
    MemorySource s(frames);
    auto cfg = config(2);
    cfg.lossless = false;
    cfg.ring_size = 64;          // tiny rings: the reader outruns the workers
    cfg.export_ring_size = 16;
    const auto r = run(s, cfg);
    uint64_t accounted = 0;
    for (const Row& x : r.rows)
        accounted += std::get<4>(x) + std::get<6>(x);
    const uint64_t ring_full = r.stats.drops.get(DropReason::RingFull);
    const uint64_t lost_flows = r.stats.drops.get(DropReason::ExportRingFull);
    // Every packet is either dropped at the ring, or in a flow that was either
    // exported or counted as lost at the export ring.
    EXPECT_LE(accounted + ring_full, frames.size());
    if (lost_flows == 0) {
        EXPECT_EQ(accounted + ring_full, frames.size());
    }
    EXPECT_EQ(r.stats.flows_exported, r.rows.size());
    EXPECT_EQ(r.stats.flows_created, r.rows.size() + lost_flows);
}

TEST(Pipeline, StopEndsEveryFlowAsForcedEnd)
{
    // An endless source: the pipeline must stop on request and flush.
    class Endless final : public PacketSource {
    public:
        uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
        {
            for (uint32_t i = 0; i < n; ++i) {
                ts_ += 1000;
                out[i] = test::raw(frames_[i_++ % frames_.size()], 1, ts_);
            }
            return n;
        }
        bool finished() const noexcept override { return false; }
        std::optional<Error> error() const override { return std::nullopt; }
        SourceStats stats() const noexcept override { return {}; }
        std::vector<uint32_t> linktypes() const override { return {1}; }
        std::string describe() const override { return "endless"; }
        std::vector<std::vector<uint8_t>> frames_ = {
            PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(1000, 2000).payload("a").build(),
            PacketBuilder().eth().ipv4("10.0.0.3", "10.0.0.2").udp(1001, 2000).payload("b").build(),
        };
        uint64_t ts_ = 1;
        size_t i_ = 0;
    } src;
    std::vector<FlowRecord> got;
    auto p = Pipeline::create(config(2), [&](const FlowRecord& r) { got.push_back(r); });
    ASSERT_TRUE(p.ok());
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        p.value()->stop();
    });
    const auto st = p.value()->run(src);
    stopper.join();
    ASSERT_EQ(got.size(), 2u);
    uint64_t pk = 0;
    for (const auto& r : got) {
        EXPECT_EQ(r.end_reason, EndReason::ForcedEnd);
        pk += r.dir[0].packets;
    }
    EXPECT_EQ(pk, st.decoded);
    EXPECT_GT(st.packets, 0u);
}

TEST(Pipeline, RejectsBadConfiguration)
{
    auto sink = [](const FlowRecord&) {};
    auto c = config(65);
    EXPECT_FALSE(Pipeline::create(c, sink).ok());
    c = config(1);
    c.ring_size = 4;
    EXPECT_FALSE(Pipeline::create(c, sink).ok());
    c = config(1);
    c.table.capacity = 1;
    EXPECT_FALSE(Pipeline::create(c, sink).ok());
    EXPECT_FALSE(Pipeline::create(config(1), nullptr).ok());
}

TEST(Pipeline, RealCapturesSameWithTwoWorkers)
{
    const std::filesystem::path dir = std::filesystem::path(WEIR_SHARED_DIR) / "pcaps" / "ndpi" / "pcap";
    if (!std::filesystem::exists(dir))
        GTEST_SKIP() << "no real captures at " << dir;
    int checked = 0;
    for (const char* name : {"1kxun.pcap", "443-chrome.pcap", "dns_long_domainname.pcap", "ipv6_in_gtp.pcap",
             "gre_no_options.pcapng", "tls_long_cert.pcap", "quic.pcap"}) {
        const auto path = dir / name;
        if (!std::filesystem::exists(path))
            continue;
        auto a = dataplane::open_pcap_file(path.string());
        auto b = dataplane::open_pcap_file(path.string());
        ASSERT_TRUE(a.ok() && b.ok()) << path;
        const auto r0 = run(*a.value(), config(0));
        const auto r2 = run(*b.value(), config(2));
        EXPECT_FALSE(r0.rows.empty()) << name;
        EXPECT_EQ(r0.rows, r2.rows) << name;
        EXPECT_EQ(r0.stats.decoded, r2.stats.decoded) << name;
        ++checked;
    }
    EXPECT_GE(checked, 3);
}
