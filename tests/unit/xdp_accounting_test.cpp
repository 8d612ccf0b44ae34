// Packets the XDP program keeps from the capture (verdicts) going back into
// their flows: FlowTable::add_delta (bulk deltas), Pipeline::account (queued,
// handed to the owning worker by the reader, inline and threaded), and
// VerdictAccounting (per-direction deltas from the verdict entries'
// undelivered counters and TCP flags, poll / removal / reinstall).
#include <weir/dataplane/packet_source.hpp>
#include <weir/dataplane/verdict_map.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/flow_table.hpp>
#include <weir/engine/pipeline.hpp>

#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

using namespace weir;
using namespace weir::engine;
using weir::dataplane::FlowVerdict;
using weir::dataplane::UndeliveredDelta;
using weir::dataplane::VerdictAccounting;
using weir::test::Bytes;
using weir::test::PacketBuilder;

namespace {

constexpr uint64_t kSec = 1000000000ULL;
constexpr uint64_t kT0 = 1700000000ULL * kSec;

// 10.0.0.1 (side A) -> 10.0.0.2 (side B) UDP, or the reply.
Bytes udp(bool from_a, size_t payload = 10)
{
    PacketBuilder b;
    if (from_a)
        b.eth().ipv4("10.0.0.1", "10.0.0.2").udp(4000, 53);
    else
        b.eth(test::kMacB, test::kMacA).ipv4("10.0.0.2", "10.0.0.1").udp(53, 4000);
    return b.payload(std::string(payload, 'x')).build();
}

PacketMeta meta(const Bytes& frame, uint64_t ts)
{
    Decoder dec;
    PacketMeta m{};
    EXPECT_TRUE(dec.decode(test::raw(frame, test::lt::kEthernet, ts), m));
    return m;
}

PacketMeta delta(const FlowKey& key, bool from_a, uint32_t packets, uint32_t bytes, uint64_t ts, uint8_t flags = 0)
{
    PacketMeta d = make_delta(key, from_a, packets, bytes, ts, flags);
    d.hash = flow_hash(key);
    return d;
}

struct Table {
    std::unique_ptr<FlowTable> t;
    std::vector<FlowRecord> out;
    FlowSink sink = [this](const FlowRecord& r) { out.push_back(r); };

    explicit Table(ByteCount bc = ByteCount::Wire)
    {
        FlowTableConfig c;
        c.capacity = 64;
        c.idle_timeout_ns = 10 * kSec;
        c.active_timeout_ns = 100 * kSec;
        c.byte_count = bc;
        auto r = FlowTable::create(c);
        EXPECT_TRUE(r.ok());
        t = std::move(r.value());
    }
};

TEST(FlowTableDelta, AddsToTheRightDirectionOfAnExistingFlow)
{
    Table tb;
    const Bytes q = udp(true), a = udp(false, 30);
    const PacketMeta mq = meta(q, kT0), ma = meta(a, kT0 + kSec);
    ASSERT_EQ(mq.src_is_a, 1);
    tb.t->update(mq, tb.sink);
    tb.t->update(ma, tb.sink);
    // XDP kept 7 more answers (B -> A) and 2 queries (A -> B).
    tb.t->add_delta(delta(mq.key, false, 7, 7 * uint32_t(a.size()), kT0 + 5 * kSec), tb.sink);
    tb.t->add_delta(delta(mq.key, true, 2, 2 * uint32_t(q.size()), kT0 + 4 * kSec), tb.sink);
    EXPECT_EQ(tb.t->active(), 1u);
    EXPECT_EQ(tb.t->stats().delta_packets, 9u);
    tb.t->flush(tb.sink);
    ASSERT_EQ(tb.out.size(), 1u);
    const FlowRecord& r = tb.out[0];
    EXPECT_EQ(r.client_is_a, 1);
    EXPECT_EQ(r.dir[0].packets, 3u);
    EXPECT_EQ(r.dir[0].bytes, 3 * q.size());
    EXPECT_EQ(r.dir[1].packets, 8u);
    EXPECT_EQ(r.dir[1].bytes, 8 * a.size());
    EXPECT_EQ(r.dir[0].last_ns, kT0 + 4 * kSec);
    EXPECT_EQ(r.last_ns(), kT0 + 5 * kSec);
    EXPECT_EQ(r.first_ns(), kT0);
    EXPECT_EQ(r.client_mac, test::kMacA) << "MACs come from the packets, not the delta";
}

// 10.0.0.1:40000 (side A) <-> 10.0.0.2:80 (side B) TCP.
Bytes tcp(bool from_a, uint8_t flags)
{
    PacketBuilder b;
    if (from_a)
        b.eth().ipv4("10.0.0.1", "10.0.0.2").tcp(40000, 80, flags);
    else
        b.eth(test::kMacB, test::kMacA).ipv4("10.0.0.2", "10.0.0.1").tcp(80, 40000, flags);
    return b.build();
}

TEST(FlowTableDelta, OrsTcpFlagsIntoTheRightDirection)
{
    constexpr uint8_t kUrg = 0x20, kEce = 0x40, kCwr = 0x80;
    Table tb;
    // Captured: the handshake. Side A is the client.
    const PacketMeta syn = meta(tcp(true, kTcpSyn), kT0);
    const PacketMeta synack = meta(tcp(false, kTcpSyn | kTcpAck), kT0 + 1000);
    ASSERT_EQ(syn.src_is_a, 1);
    tb.t->update(syn, tb.sink);
    tb.t->update(synack, tb.sink);
    // Kept by XDP: A's data with PSH/URG, B's with PSH/ECE; then B's CWR
    // alone (flags read a poll after their packets).
    tb.t->add_delta(delta(syn.key, true, 5, 500, kT0 + kSec, kTcpAck | kTcpPsh | kUrg), tb.sink);
    tb.t->add_delta(delta(syn.key, false, 3, 300, kT0 + 2 * kSec, kTcpAck | kTcpPsh | kEce), tb.sink);
    tb.t->add_delta(delta(syn.key, false, 0, 0, kT0 + 3 * kSec, kCwr), tb.sink);
    // A FIN among a delta's flags is a union over an interval: the flow
    // does not end on it.
    tb.t->add_delta(delta(syn.key, true, 1, 60, kT0 + 4 * kSec, kTcpFin | kTcpAck), tb.sink);
    EXPECT_EQ(tb.t->expire(kT0 + 5 * kSec, tb.sink), 0u);
    EXPECT_EQ(tb.t->stats().delta_packets, 9u);
    tb.t->flush(tb.sink);
    ASSERT_EQ(tb.out.size(), 1u);
    const FlowRecord& r = tb.out[0];
    ASSERT_EQ(r.client_is_a, 1);
    EXPECT_EQ(r.dir[0].tcp_flags, kTcpSyn | kTcpAck | kTcpPsh | kUrg | kTcpFin);
    EXPECT_EQ(r.dir[1].tcp_flags, kTcpSyn | kTcpAck | kTcpPsh | kEce | kCwr);
    EXPECT_EQ(r.dir[0].packets, 7u);
    EXPECT_EQ(r.dir[1].packets, 4u);
    EXPECT_EQ(r.dir[1].last_ns, kT0 + 2 * kSec) << "flags alone carry no time";
    EXPECT_EQ(r.end_reason, EndReason::ForcedEnd) << "a FIN among delta flags does not end the flow";

    // Flags alone never start a flow.
    tb.t->add_delta(delta(syn.key, true, 0, 0, kT0 + 6 * kSec, kTcpPsh), tb.sink);
    EXPECT_EQ(tb.t->active(), 0u);
}

TEST(FlowTableDelta, CreatesAFlowAndKeepsItAlive)
{
    Table tb;
    const Bytes a = udp(false);
    const FlowKey key = meta(a, kT0).key;
    // Only a delta so far: the sender (side B) is the client.
    tb.t->add_delta(delta(key, false, 4, 400, kT0), tb.sink);
    ASSERT_EQ(tb.t->active(), 1u);
    // Deltas refresh the last activity: no idle timeout 10 s after the first.
    tb.t->add_delta(delta(key, false, 1, 100, kT0 + 8 * kSec), tb.sink);
    EXPECT_EQ(tb.t->expire(kT0 + 15 * kSec, tb.sink), 0u);
    EXPECT_EQ(tb.t->expire(kT0 + 18 * kSec, tb.sink), 1u);
    ASSERT_EQ(tb.out.size(), 1u);
    EXPECT_EQ(tb.out[0].client_is_a, 0);
    EXPECT_EQ(tb.out[0].dir[0].packets, 5u);
    EXPECT_EQ(tb.out[0].dir[0].bytes, 500u);
    EXPECT_EQ(tb.out[0].dir[1].packets, 0u);
    EXPECT_EQ(tb.out[0].end_reason, EndReason::IdleTimeout);
    // An empty delta changes nothing.
    tb.t->add_delta(delta(key, true, 0, 0, kT0 + 20 * kSec), tb.sink);
    EXPECT_EQ(tb.t->active(), 0u);
}

TEST(FlowTableDelta, TimeoutsAndCounterWrap)
{
    Table tb;
    const Bytes q = udp(true);
    const PacketMeta mq = meta(q, kT0);
    tb.t->update(mq, tb.sink);
    // A delta after the idle timeout ends the old flow and starts a new one.
    tb.t->add_delta(delta(mq.key, true, 3, 300, kT0 + 11 * kSec), tb.sink);
    ASSERT_EQ(tb.out.size(), 1u);
    EXPECT_EQ(tb.out[0].dir[0].packets, 1u);
    EXPECT_EQ(tb.out[0].end_reason, EndReason::IdleTimeout);
    // 32-bit packet counters: a delta that would wrap exports first.
    tb.t->add_delta(delta(mq.key, true, UINT32_MAX - 3, 1000, kT0 + 12 * kSec), tb.sink);
    EXPECT_EQ(tb.out.size(), 1u);
    tb.t->add_delta(delta(mq.key, true, 5, 50, kT0 + 13 * kSec), tb.sink);
    ASSERT_EQ(tb.out.size(), 2u);
    EXPECT_EQ(tb.out[1].dir[0].packets, uint64_t(UINT32_MAX));
    EXPECT_EQ(tb.out[1].dir[0].bytes, 1300u);
    EXPECT_EQ(tb.out[1].end_reason, EndReason::ActiveTimeout);
    tb.t->flush(tb.sink);
    ASSERT_EQ(tb.out.size(), 3u);
    EXPECT_EQ(tb.out[2].dir[0].packets, 5u);
}

TEST(FlowTableDelta, IpByteCountTakesOffTheEthernetHeaders)
{
    Table tb(ByteCount::Ip);
    const FlowKey key = meta(udp(true), kT0).key;
    tb.t->add_delta(delta(key, true, 10, 1000, kT0), tb.sink);
    tb.t->flush(tb.sink);
    ASSERT_EQ(tb.out.size(), 1u);
    EXPECT_EQ(tb.out[0].dir[0].bytes, 1000u - 10 * 14);
}

// A PacketSource over frames in memory; calls a hook before each burst.
class MemorySource final : public PacketSource {
public:
    explicit MemorySource(std::vector<std::pair<Bytes, uint64_t>> frames) : frames_(std::move(frames)) {}
    std::function<void(size_t)> before_burst;

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        if (before_burst)
            before_burst(pos_);
        uint32_t i = 0;
        for (; i < n && pos_ < frames_.size(); ++i, ++pos_)
            out[i] = test::raw(frames_[pos_].first, test::lt::kEthernet, frames_[pos_].second);
        return i;
    }
    bool finished() const noexcept override { return pos_ >= frames_.size(); }
    std::optional<Error> error() const override { return std::nullopt; }
    SourceStats stats() const noexcept override { return {}; }
    std::vector<uint32_t> linktypes() const override { return {1}; }
    std::string describe() const override { return "memory"; }

private:
    std::vector<std::pair<Bytes, uint64_t>> frames_;
    size_t pos_ = 0;
};

class PipelineAccount : public ::testing::TestWithParam<uint16_t> {};

TEST_P(PipelineAccount, DeltasReachTheFlowsWorker)
{
    // 40 flows, 4 packets each way; XDP "kept" more of every even flow.
    constexpr int kFlows = 40;
    std::vector<std::pair<Bytes, uint64_t>> frames;
    std::vector<FlowKey> keys;
    uint64_t ts = kT0;
    for (int f = 0; f < kFlows; ++f) {
        const std::string c = "10.9.0." + std::to_string(f + 1);
        for (int i = 0; i < 4; ++i) {
            frames.push_back({PacketBuilder().eth().ipv4(c, "192.0.2.1").udp(uint16_t(5000 + f), 53).payload("q").build(), ts += 1000});
            frames.push_back({PacketBuilder().eth(test::kMacB, test::kMacA).ipv4("192.0.2.1", c).udp(53, uint16_t(5000 + f)).payload("answer").build(), ts += 1000});
        }
        keys.push_back(meta(frames.back().first, 0).key);
    }
    MemorySource src(std::move(frames));

    PipelineConfig cfg;
    cfg.workers = GetParam();
    cfg.table.capacity = 1024;
    cfg.burst = 16;
    cfg.ring_size = 64;
    std::mutex mu;
    std::map<std::string, FlowRecord> got;
    auto p = Pipeline::create(cfg, [&](const FlowRecord& r) {
        std::lock_guard g(mu);
        got[std::string(reinterpret_cast<const char*>(&r.key), sizeof(r.key))] = r;
    });
    ASSERT_TRUE(p.ok()) << p.error().message();
    Pipeline& pipe = *p.value();
    // Mid-run from another thread (as the verdict poller does), and a last
    // one once reading stops. 192.0.2.1 is side B of every key.
    src.before_burst = [&](size_t pos) {
        if (pos == 160) {
            std::thread t([&] {
                for (int f = 0; f < kFlows; f += 2)
                    pipe.account(keys[f], {3, 5}, {3 * 60, 5 * 65}, kT0 + kSec, {uint8_t{0x08}, uint8_t(f == 0 ? 0x40 : 0)});
            });
            t.join();
        }
    };
    pipe.set_before_flush([&] { pipe.account(keys[1], {0, 1}, {0, 6ULL << 30}, kT0 + 2 * kSec); });
    const PipelineStats st = pipe.run(src);
    pipe.account(keys[3], {1, 1}, {1, 1}, kT0 + 3 * kSec);

    ASSERT_EQ(got.size(), size_t(kFlows));
    for (int f = 0; f < kFlows; ++f) {
        const FlowRecord& r = got[std::string(reinterpret_cast<const char*>(&keys[f]), sizeof(keys[f]))];
        // The client (10.9.0.x, side A) sent the queries: dir 0.
        ASSERT_EQ(r.client_is_a, 1) << f;
        const Bytes qf = PacketBuilder().eth().ipv4("10.9.0.1", "192.0.2.1").udp(5000, 53).payload("q").build();
        const Bytes af = PacketBuilder().eth().ipv4("192.0.2.1", "10.9.0.1").udp(53, 5000).payload("answer").build();
        const bool even = f % 2 == 0;
        EXPECT_EQ(r.dir[0].packets, even ? 7u : 4u) << f;
        EXPECT_EQ(r.dir[0].bytes, 4 * qf.size() + (even ? 180u : 0u)) << f;
        EXPECT_EQ(r.dir[1].packets, (even ? 9u : 4u) + (f == 1 ? 1u : 0u)) << f;
        EXPECT_EQ(r.dir[1].bytes, 4 * af.size() + (even ? 325u : 0u) + (f == 1 ? (6ULL << 30) : 0u))
            << f << ": a delta over 32 bits is split, not cut";
        // UDP flows here, but the flags a delta carries are ORed as given.
        EXPECT_EQ(r.dir[0].tcp_flags, even ? 0x08 : 0) << f;
        EXPECT_EQ(r.dir[1].tcp_flags, f == 0 ? 0x40 : 0) << f;
    }
    EXPECT_EQ(st.delta_packets, uint64_t(kFlows / 2 * 8 + 1));
    EXPECT_EQ(pipe.snapshot().deltas_late, 1u) << "after the flush: counted, not applied";
}

INSTANTIATE_TEST_SUITE_P(Workers, PipelineAccount, ::testing::Values(0, 1, 3));

weir_verdict entry(uint64_t installed, uint64_t und, uint64_t und_b, uint64_t ba, uint64_t ba_b, uint64_t last = 0)
{
    weir_verdict v{};
    v.action = WEIR_VERDICT_DROP;
    v.installed_ns = installed;
    v.undelivered = und;
    v.undelivered_bytes = und_b;
    v.ba_undelivered = ba;
    v.ba_undelivered_bytes = ba_b;
    v.last_ns = last;
    return v;
}

TEST(VerdictAccounting, DeltasByDirectionSincePreviousReport)
{
    const FlowKey k1 = meta(udp(true), 0).key;
    FlowKey k2 = k1;
    k2.port_a = 4001;
    VerdictAccounting acct;

    std::vector<FlowVerdict> l{{k1, entry(100, 10, 1000, 4, 240, 555)}, {k2, entry(100, 0, 0, 0, 0)}};
    auto d = acct.update(l);
    ASSERT_EQ(d.size(), 1u) << "an entry with nothing kept is not reported";
    EXPECT_TRUE(d[0].key == k1);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{6, 4}));
    EXPECT_EQ(d[0].bytes, (std::array<uint64_t, 2>{760, 240}));
    EXPECT_EQ(d[0].last_ns, 555u);
    EXPECT_EQ(acct.tracked(), 2u);

    // Grown by 2 A->B and 1 B->A; then nothing new.
    l[0].verdict = entry(100, 13, 1300, 5, 300);
    d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{2, 1}));
    EXPECT_EQ(d[0].bytes, (std::array<uint64_t, 2>{240, 60}));
    EXPECT_TRUE(acct.update(l).empty());

    // Read mid-update: B->A already counted, the total not yet. Nothing is
    // reported twice, and the final values settle the sums.
    l[0].verdict = entry(100, 13, 1300, 6, 360);
    d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{0, 1}));
    const std::vector<FlowVerdict> fin{{k1, entry(100, 15, 1500, 6, 360)}};
    d = acct.removed(fin);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{1, 0}));
    EXPECT_EQ(d[0].bytes, (std::array<uint64_t, 2>{140, 0})) << "A->B in all: 1500 - 360 = 760 + 240 + 140";
    EXPECT_EQ(acct.tracked(), 1u) << "a removed key is forgotten";

    // Removed before any poll: everything it counted.
    d = acct.removed(std::vector<FlowVerdict>{{k1, entry(200, 2, 200, 1, 100)}});
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{1, 1}));
}

TEST(VerdictAccounting, TcpFlagsByDirectionOnce)
{
    const FlowKey k1 = meta(udp(true), 0).key;
    VerdictAccounting acct;
    weir_verdict v = entry(100, 4, 400, 1, 100);
    v.undelivered_tcp_flags = 0x18 | (0x50ULL << 8); // A: PSH|ACK, B: ACK|ECE
    std::vector<FlowVerdict> l{{k1, v}};
    auto d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].tcp_flags, (std::array<uint8_t, 2>{0x18, 0x50}));

    // A new bit alone (ORed after the counters were read): reported then,
    // without packets; the known bits are not repeated.
    l[0].verdict.undelivered_tcp_flags |= 0x80ULL << 8;
    d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{0, 0}));
    EXPECT_EQ(d[0].tcp_flags, (std::array<uint8_t, 2>{0, 0x80}));
    EXPECT_TRUE(acct.update(l).empty());

    // More packets with known flags: counts only.
    l[0].verdict.undelivered = 6;
    l[0].verdict.undelivered_bytes = 600;
    d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets, (std::array<uint64_t, 2>{2, 0}));
    EXPECT_EQ(d[0].tcp_flags, (std::array<uint8_t, 2>{0, 0}));

    // Removal reports the bits not seen yet; a reinstall starts over.
    l[0].verdict.undelivered_tcp_flags |= 0x01;
    d = acct.removed(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].tcp_flags, (std::array<uint8_t, 2>{0x01, 0}));
    l[0].verdict = entry(200, 1, 100, 0, 0);
    l[0].verdict.undelivered_tcp_flags = 0x18;
    d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].tcp_flags, (std::array<uint8_t, 2>{0x18, 0}));
}

TEST(VerdictAccounting, ReinstallAndForgetting)
{
    const FlowKey k1 = meta(udp(true), 0).key;
    VerdictAccounting acct;
    std::vector<FlowVerdict> l{{k1, entry(100, 10, 1000, 0, 0)}};
    ASSERT_EQ(acct.update(l).size(), 1u);
    // A reinstall zeroes the counters: counted again from zero.
    l[0].verdict = entry(200, 3, 300, 0, 0);
    auto d = acct.update(l);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].packets[0], 3u);
    // Gone from three polls in a row (removed without a report): forgotten.
    const std::vector<FlowVerdict> none;
    acct.update(none);
    acct.update(none);
    EXPECT_EQ(acct.tracked(), 1u);
    acct.update(none);
    EXPECT_EQ(acct.tracked(), 0u);
}

TEST(VerdictAccounting, MonotonicToWallClock)
{
    timespec m{}, r{};
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &r);
    const uint64_t mono = uint64_t(m.tv_sec) * kSec + uint64_t(m.tv_nsec);
    const uint64_t wall = uint64_t(r.tv_sec) * kSec + uint64_t(r.tv_nsec);
    const uint64_t w = VerdictAccounting::wall_ns(mono - 2 * kSec);
    EXPECT_NEAR(double(w), double(wall - 2 * kSec), 0.05 * kSec);
    EXPECT_GE(VerdictAccounting::wall_ns(0), wall);
}

} // namespace
