// Shared checks of the live capture back-ends (AF_PACKET, libpcap): replay a
// capture file into a veth pair from inside its namespace with tcpreplay,
// capture on the outer end, and compare with the file itself.
//
// Frames are compared as multisets of (bytes, wire length) hashes: fanout
// sockets deliver flows in any interleaving, but every frame must come back
// exactly once and byte for byte. Flow comparisons run the engine's Pipeline
// on the live source and on the file and compare per-flow packets and bytes
// in each direction; timeouts are far longer than the test so neither side
// ends a flow early.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/packet_source.hpp>
#include <weir/dataplane/live.hpp>
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/pipeline.hpp>

#include <netns.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace weir::test::live {

using Opener = std::function<Result<std::unique_ptr<PacketSource>>(const std::string&, const dataplane::LiveOptions&)>;

inline std::string shared_pcap(const std::string& rel)
{
    return std::string(WEIR_SHARED_DIR) + "/pcaps/" + rel;
}

inline uint64_t frame_hash(const uint8_t* d, uint32_t caplen, uint32_t wire_len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ wire_len;
    for (uint32_t i = 0; i < caplen; ++i) {
        h ^= d[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (uint64_t(caplen) << 40);
}

/// The frame hashes of a capture file, optionally through `tcpdump -r F -w
/// out EXPR` (the reference for what a filter lets through).
inline std::multiset<uint64_t> file_hashes(const std::string& path, const std::string& filter = "")
{
    std::string src = path;
    std::string tmp;
    if (!filter.empty()) {
        tmp = std::string("/tmp/wa-filtered-") + std::to_string(::getpid()) + ".pcap";
        const int rc = sh("tcpdump -r " + path + " -w " + tmp + " '" + filter + "' >/dev/null 2>&1");
        EXPECT_EQ(rc, 0) << "tcpdump could not filter " << path << " with " << filter;
        src = tmp;
    }
    std::multiset<uint64_t> out;
    auto s = dataplane::open_capture_files(src);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    if (s.ok()) {
        RawPacket b[64];
        while (!s.value()->finished()) {
            const uint32_t n = s.value()->rx_burst(b, 64);
            for (uint32_t i = 0; i < n; ++i)
                out.insert(frame_hash(b[i].data, b[i].caplen, b[i].wire_len));
        }
    }
    if (!tmp.empty())
        ::unlink(tmp.c_str());
    return out;
}

/// Sends every frame of `path` out of the inner end, at a bounded rate.
inline bool replay(const VethPair& v, const std::string& path)
{
    return v.in_ns("tcpreplay -q -p 20000 -i " + v.inner + " " + path + " >/dev/null 2>&1") == 0;
}

/// Makes the veth pair and checks the tools a replay test needs; empty
/// pointer and `why` set when the test must skip.
inline std::unique_ptr<VethPair> make_veth(const std::string& tag, std::string* why)
{
    if (!have_tool("tcpreplay")) {
        *why = "tcpreplay not installed";
        return nullptr;
    }
    if (!have_tool("tcpdump")) {
        *why = "tcpdump not installed";
        return nullptr;
    }
    auto v = VethPair::create(tag, 1, why);
    if (!v)
        return nullptr;
    // Room for every frame of the shared captures (tags included).
    sh("ip link set " + v->outer + " mtu 9000");
    v->in_ns("ip link set " + v->inner + " mtu 9000");
    return v;
}

/// Small rings: tests run next to each other on a small machine.
inline dataplane::LiveOptions small_options()
{
    dataplane::LiveOptions o;
    o.afp_block_size = 256u << 10;  // 64 blocks: 256 ms of traffic at the 4 ms retire timeout
    o.afp_block_count = 64;
    o.pcap_buffer_bytes = 32u << 20;
    o.poll_timeout_ms = 10;
    return o;
}

struct Captured {
    std::multiset<uint64_t> hashes;
    uint64_t packets = 0;
    uint64_t drops = 0;
    std::vector<std::vector<uint8_t>> frames; ///< copies, for the checks on tags
    std::vector<uint64_t> ts_ns;              ///< capture stamps, in delivery order
    uint64_t wall_start_ns = 0;               ///< wall clock around the capture
    uint64_t wall_end_ns = 0;
    bool traffic_ok = false;
};

/// Runs `traffic` on a thread while reading `src`; stops once `expect`
/// frames (+ drops) came and nothing more arrived for 300 ms, or after
/// `limit_ms` of silence-free waiting.
inline Captured capture_while(PacketSource& src, const std::function<bool()>& traffic, uint64_t expect,
                              int limit_ms = 15000)
{
    Captured c;
    c.wall_start_ns = dataplane::wall_clock_ns();
    std::atomic<bool> done{false};
    std::thread t([&] {
        c.traffic_ok = traffic();
        done = true;
    });
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::milliseconds(limit_ms);
    auto last_frame = clock::now();
    RawPacket b[64];
    while (clock::now() < deadline) {
        const uint32_t n = src.rx_burst(b, 64);
        for (uint32_t i = 0; i < n; ++i) {
            c.hashes.insert(frame_hash(b[i].data, b[i].caplen, b[i].wire_len));
            c.frames.emplace_back(b[i].data, b[i].data + b[i].caplen);
            c.ts_ns.push_back(b[i].ts_ns);
        }
        c.packets += n;
        if (n != 0)
            last_frame = clock::now();
        if (done && clock::now() - last_frame > std::chrono::milliseconds(300) &&
            c.packets + src.stats().drops >= expect)
            break;
        if (src.finished())
            break;
    }
    t.join();
    c.drops = src.stats().drops;
    c.wall_end_ns = dataplane::wall_clock_ns();
    return c;
}

// ---- flows ------------------------------------------------------------------

struct FlowRow {
    uint64_t pkts[2] = {0, 0};
    uint64_t bytes[2] = {0, 0};
    bool operator==(const FlowRow& o) const
    {
        return pkts[0] == o.pkts[0] && pkts[1] == o.pkts[1] && bytes[0] == o.bytes[0] && bytes[1] == o.bytes[1];
    }
};
using FlowMap = std::map<std::string, FlowRow>;

inline std::string key_bytes(const FlowKey& k)
{
    return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

inline engine::PipelineConfig pipeline_config(bool lossless)
{
    engine::PipelineConfig cfg;
    cfg.workers = 1;
    cfg.lossless = lossless;
    cfg.table.capacity = 1u << 14;
    cfg.table.idle_timeout_ns = 3600ULL * 1000000000ULL;
    cfg.table.active_timeout_ns = 3600ULL * 1000000000ULL;
    cfg.table.tcp_end_linger_ns = 3600ULL * 1000000000ULL;
    return cfg;
}

/// Runs the Pipeline on `src` until it ends or stop_when() says so; the
/// flows it exported, keyed by canonical key (directions summed per key).
inline FlowMap run_pipeline(PacketSource& src, bool lossless, const std::function<void(engine::Pipeline&)>& driver,
                            engine::PipelineStats* stats_out = nullptr)
{
    FlowMap flows;
    std::mutex mu;
    auto p = engine::Pipeline::create(pipeline_config(lossless), [&](const FlowRecord& r) {
        std::lock_guard<std::mutex> lock(mu);
        FlowRow& row = flows[key_bytes(r.key)];
        for (int d = 0; d < 2; ++d) {
            row.pkts[d] += r.dir[d].packets;
            row.bytes[d] += r.dir[d].bytes;
        }
    });
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    if (!p.ok())
        return flows;
    engine::Pipeline& pl = *p.value();
    std::thread t;
    if (driver)
        t = std::thread([&] { driver(pl); });
    const engine::PipelineStats st = pl.run(src);
    if (t.joinable())
        t.join();
    if (stats_out)
        *stats_out = st;
    return flows;
}

inline FlowMap file_flows(const std::string& path)
{
    auto s = dataplane::open_capture_files(path);
    EXPECT_TRUE(s.ok());
    if (!s.ok())
        return {};
    return run_pipeline(*s.value(), true, nullptr);
}

/// Replays `path` while the Pipeline reads the live source; stops it once
/// every frame was read (or after 20 s).
inline FlowMap live_flows(PacketSource& src, const VethPair& v, const std::string& path, uint64_t expect,
                          engine::PipelineStats* st)
{
    return run_pipeline(src, false, [&](engine::Pipeline& pl) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50)); // run() is reading
        EXPECT_TRUE(replay(v, path));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline &&
               pl.snapshot().packets + src.stats().drops < expect)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::this_thread::sleep_for(std::chrono::milliseconds(200)); // nothing extra may follow
        pl.stop();
    }, st);
}

// ---- the scenarios both back-ends run ------------------------------------------
//
// On a shared 2-CPU machine the reader can be descheduled long enough for a
// ring to fill, and the kernel then drops (and counts) frames. A run with
// drops must still add up (nothing counted twice, nothing foreign) but
// cannot show that every frame came back: it is run again on a fresh pair,
// up to kAttempts times, and the exact checks apply to a run without drops.

inline constexpr int kAttempts = 3;

/// True when `part` is contained in `all` (multiset inclusion).
inline bool included(const std::multiset<uint64_t>& part, const std::multiset<uint64_t>& all)
{
    return std::includes(all.begin(), all.end(), part.begin(), part.end());
}

inline void expect_replay_identical(const Opener& open, const std::string& tag, const dataplane::LiveOptions& opt,
                                    const std::string& path)
{
    const std::multiset<uint64_t> want = file_hashes(path);
    ASSERT_FALSE(want.empty());
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
        std::string why;
        auto v = make_veth(tag, &why);
        if (!v)
            GTEST_SKIP() << why;
        auto src = open(v->outer, opt);
        ASSERT_TRUE(src.ok()) << src.error().message();
        EXPECT_TRUE(src.value()->live());
        EXPECT_FALSE(src.value()->finished());
        const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, want.size());
        EXPECT_TRUE(c.traffic_ok);
        // Every frame sent was either delivered or counted as dropped.
        EXPECT_EQ(c.packets + c.drops, want.size());
        EXPECT_TRUE(included(c.hashes, want)) << "frames that are not in " << path;
        // Live stamps: wall clock at capture, not the file's.
        for (uint64_t ts : c.ts_ns) {
            EXPECT_GE(ts, c.wall_start_ns);
            EXPECT_LE(ts, c.wall_end_ns);
        }
        const SourceStats st = src.value()->stats();
        EXPECT_EQ(st.packets, c.packets);
        uint64_t qp = 0, qd = 0;
        for (const QueueStats& q : src.value()->queue_stats()) {
            qp += q.packets;
            qd += q.drops;
        }
        EXPECT_EQ(qp, c.packets);
        EXPECT_EQ(qd, st.drops);
        if (c.drops == 0) {
            EXPECT_TRUE(c.hashes == want) << "frames differ from " << path << ": got " << c.hashes.size()
                                          << ", want " << want.size();
            return;
        }
        std::fprintf(stderr, "attempt %d: %llu of %zu frames dropped in the kernel, again\n", attempt,
                     (unsigned long long)c.drops, want.size());
    }
    ADD_FAILURE() << "frames were dropped in every one of " << kAttempts << " attempts";
}

inline void expect_filter_matches_tcpdump(const Opener& open, const std::string& tag, const std::string& path,
                                          const std::string& expr)
{
    const std::multiset<uint64_t> want = file_hashes(path, expr);
    const std::multiset<uint64_t> all = file_hashes(path);
    ASSERT_LT(want.size(), all.size()) << "the filter must leave something out to be tested";
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
        std::string why;
        auto v = make_veth(tag, &why);
        if (!v)
            GTEST_SKIP() << why;
        dataplane::LiveOptions opt = small_options();
        opt.bpf_filter = expr;
        auto src = open(v->outer, opt);
        ASSERT_TRUE(src.ok()) << src.error().message();
        // Waits for the whole replay (the filter may let nothing through).
        const Captured c = capture_while(*src.value(), [&] { return replay(*v, path); }, want.size());
        EXPECT_TRUE(c.traffic_ok);
        EXPECT_TRUE(included(c.hashes, want)) << "'" << expr << "' let through frames tcpdump -r does not";
        EXPECT_LE(c.packets + c.drops, all.size());
        if (c.drops == 0) {
            EXPECT_EQ(c.packets, want.size()) << expr;
            EXPECT_TRUE(c.hashes == want) << "'" << expr << "' let through other frames than tcpdump -r";
            return;
        }
        std::fprintf(stderr, "attempt %d: %llu frames dropped in the kernel, again\n", attempt,
                     (unsigned long long)c.drops);
    }
    ADD_FAILURE() << "frames were dropped in every one of " << kAttempts << " attempts";
}

inline void expect_pipeline_flows_match_file(const Opener& open, const std::string& tag,
                                             const dataplane::LiveOptions& opt, const std::string& path)
{
    const FlowMap want = file_flows(path);
    ASSERT_FALSE(want.empty());
    const uint64_t frames = file_hashes(path).size();
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
        std::string why;
        auto v = make_veth(tag, &why);
        if (!v)
            GTEST_SKIP() << why;
        auto src = open(v->outer, opt);
        ASSERT_TRUE(src.ok()) << src.error().message();
        engine::PipelineStats st;
        const FlowMap got = live_flows(*src.value(), *v, path, frames, &st);
        const uint64_t drops = src.value()->stats().drops;
        EXPECT_EQ(st.packets + drops, frames);
        if (drops != 0) {
            std::fprintf(stderr, "attempt %d: %llu frames dropped in the kernel, again\n", attempt,
                         (unsigned long long)drops);
            continue;
        }
        EXPECT_EQ(st.packets, frames);
        EXPECT_EQ(got.size(), want.size());
        size_t differ = 0;
        for (const auto& [k, row] : want) {
            auto it = got.find(k);
            if (it == got.end() || !(it->second == row))
                ++differ;
        }
        EXPECT_EQ(differ, 0u) << "flows differ between the live capture and the file";
        return;
    }
    ADD_FAILURE() << "frames were dropped in every one of " << kAttempts << " attempts";
}

/// Capture, link down (no spinning, one message), link up, capture again.
inline void expect_link_down_up_resumes(const Opener& open, const std::string& tag, const std::string& path)
{
    std::string why;
    auto v = make_veth(tag, &why);
    if (!v)
        GTEST_SKIP() << why;
    dataplane::LiveOptions opt = small_options();
    auto src = open(v->outer, opt);
    ASSERT_TRUE(src.ok()) << src.error().message();
    const std::multiset<uint64_t> want = file_hashes(path);
    const Captured first = capture_while(*src.value(), [&] { return replay(*v, path); }, want.size());
    EXPECT_TRUE(included(first.hashes, want));
    EXPECT_EQ(first.packets + first.drops, want.size());

    testing::internal::CaptureStderr();
    ASSERT_EQ(sh("ip link set " + v->outer + " down"), 0);
    RawPacket b[64];
    uint64_t calls = 0, got = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500)) {
        got += src.value()->rx_burst(b, 64);
        ++calls;
    }
    EXPECT_FALSE(src.value()->finished());
    ASSERT_EQ(sh("ip link set " + v->outer + " up"), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const Captured second = capture_while(*src.value(), [&] { return replay(*v, path); }, want.size());
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(got, 0u);
    // 500 ms at a 10 ms poll timeout: about 50 calls; a spinning loop makes thousands.
    EXPECT_LT(calls, 120u) << "rx_burst spins while the link is down";
    EXPECT_NE(err.find(v->outer + ": link down, waiting"), std::string::npos) << err;
    size_t count = 0;
    for (size_t p = err.find("link down"); p != std::string::npos; p = err.find("link down", p + 1))
        ++count;
    EXPECT_EQ(count, 1u) << err;
    EXPECT_TRUE(second.traffic_ok);
    // drops are cumulative: those of the second replay are the difference.
    EXPECT_EQ(second.packets + (second.drops - first.drops), want.size())
        << "capture did not resume after the link came back: got " << second.packets << " frames, want "
        << want.size();
    EXPECT_TRUE(included(second.hashes, want));
    EXPECT_GT(second.packets, 0u);
}

} // namespace weir::test::live
