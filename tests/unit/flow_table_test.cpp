// Unit tests of weir::engine::FlowTable: accounting of both directions,
// client/server naming, every ending rule, eviction order, hash collisions
// and deletions, and a long randomized churn run against a reference model.
#include <weir/engine/flow_table.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <fstream>
#include <list>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using weir::EndReason;
using weir::FlowKey;
using weir::FlowRecord;
using weir::PacketMeta;
using weir::engine::ByteCount;
using weir::engine::FlowTable;
using weir::engine::FlowTableConfig;

constexpr uint8_t kUdp = 17;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kSyn = weir::kTcpSyn;
constexpr uint8_t kAck = weir::kTcpAck;
constexpr uint8_t kFin = weir::kTcpFin;
constexpr uint8_t kRst = weir::kTcpRst;
constexpr uint8_t kPsh = weir::kTcpPsh;

const std::array<uint8_t, 6> kMacA{0x02, 0, 0, 0, 0, 0xaa};
const std::array<uint8_t, 6> kMacB{0x02, 0, 0, 0, 0, 0xbb};

/// IPv4 key 10.x.y.z:port_a <-> 192.168.x.y:port_b, distinct for each i.
FlowKey make_key(uint32_t i, uint8_t proto = kUdp)
{
    FlowKey k;
    k.addr_a = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    k.addr_b = {192, 168, static_cast<uint8_t>(i >> 24), 1};
    k.port_a = static_cast<uint16_t>(1024 + (i % 50000));
    k.port_b = proto == kTcp ? 443 : 53;
    k.proto = proto;
    k.ip_version = 4;
    return k;
}

struct P {
    bool from_a = true;
    uint64_t ts = 0;
    uint8_t flags = 0;
    uint32_t wire_len = 100;
    uint8_t ttl = 64;
    uint8_t tos = 0;
    bool frag = false;
};

PacketMeta make_pkt(const FlowKey& k, const P& p)
{
    PacketMeta m;
    m.key = k;
    m.hash = weir::flow_hash(k);
    m.ts_ns = p.ts;
    m.wire_len = p.wire_len;
    m.ip_len = p.wire_len - 14;
    m.src_is_a = p.from_a ? 1 : 0;
    m.src_mac = p.from_a ? kMacA : kMacB;
    m.dst_mac = p.from_a ? kMacB : kMacA;
    m.tcp_flags = p.flags;
    m.ttl = p.ttl;
    m.tos = p.tos;
    m.is_fragment = p.frag ? 1 : 0;
    return m;
}

FlowTableConfig small_cfg(uint32_t capacity = 1024)
{
    FlowTableConfig c;
    c.capacity = capacity;
    c.idle_timeout_ns = 1000;
    c.active_timeout_ns = 1000000;
    c.tcp_end_linger_ns = 200;
    return c;
}

/// A table plus the records its sink received.
struct Harness {
    std::unique_ptr<FlowTable> table;
    std::vector<FlowRecord> out;
    weir::engine::FlowSink sink;

    explicit Harness(const FlowTableConfig& cfg, uint16_t worker = 0)
    {
        auto r = FlowTable::create(cfg, worker);
        if (!r.ok())
            throw std::runtime_error(r.error().message());
        table = std::move(r.value());
        sink = [this](const FlowRecord& rec) { out.push_back(rec); };
    }
    void feed(const PacketMeta& m) { table->update(m, sink); }
    void feed(const FlowKey& k, const P& p) { feed(make_pkt(k, p)); }
    uint32_t flush() { return table->flush(sink); }
};

uint64_t total_packets(const FlowRecord& r) { return r.dir[0].packets + r.dir[1].packets; }

TEST(FlowTable, BothDirectionsInOneRecord)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(1);
    h.feed(k, {.from_a = true, .ts = 100, .wire_len = 60});
    h.feed(k, {.from_a = false, .ts = 150, .wire_len = 1500});
    h.feed(k, {.from_a = true, .ts = 200, .wire_len = 70});
    h.feed(k, {.from_a = false, .ts = 260, .wire_len = 1400});
    h.feed(k, {.from_a = true, .ts = 300, .wire_len = 80});
    EXPECT_EQ(h.table->active(), 1u);
    EXPECT_TRUE(h.out.empty());
    ASSERT_EQ(h.flush(), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.key, k);
    EXPECT_EQ(r.client_is_a, 1);
    EXPECT_EQ(r.client_addr(), k.addr_a);
    EXPECT_EQ(r.dir[0].packets, 3u);
    EXPECT_EQ(r.dir[0].bytes, 210u);
    EXPECT_EQ(r.dir[0].first_ns, 100u);
    EXPECT_EQ(r.dir[0].last_ns, 300u);
    EXPECT_EQ(r.dir[1].packets, 2u);
    EXPECT_EQ(r.dir[1].bytes, 2900u);
    EXPECT_EQ(r.dir[1].first_ns, 150u);
    EXPECT_EQ(r.dir[1].last_ns, 260u);
    EXPECT_EQ(r.first_ns(), 100u);
    EXPECT_EQ(r.last_ns(), 300u);
    EXPECT_EQ(r.end_reason, EndReason::ForcedEnd);
    EXPECT_EQ(h.table->active(), 0u);

    const auto& s = h.table->stats();
    EXPECT_EQ(s.packets, 5u);
    EXPECT_EQ(s.bytes, 3110u);
    EXPECT_EQ(s.flows_created, 1u);
    EXPECT_EQ(s.exported[static_cast<int>(EndReason::ForcedEnd)], 1u);
}

TEST(FlowTable, ClientIsFirstSenderEvenWhenSideB)
{
    Harness h(small_cfg(), 7);
    const FlowKey k = make_key(2);
    h.feed(k, {.from_a = false, .ts = 10});
    h.feed(k, {.from_a = true, .ts = 20});
    h.feed(k, {.from_a = true, .ts = 30});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.client_is_a, 0);
    EXPECT_EQ(r.client_addr(), k.addr_b);
    EXPECT_EQ(r.server_port(), k.port_a);
    EXPECT_EQ(r.dir[0].packets, 1u);
    EXPECT_EQ(r.dir[0].first_ns, 10u);
    EXPECT_EQ(r.dir[1].packets, 2u);
    EXPECT_EQ(r.client_mac, kMacB);
    EXPECT_EQ(r.server_mac, kMacA);
    EXPECT_EQ(r.worker, 7);
}

TEST(FlowTable, SynAckFirstNamesItsReceiverClient)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(3, kTcp);
    h.feed(k, {.from_a = true, .ts = 10, .flags = kSyn | kAck});
    // The client's own first packet carries different MACs (another tap
    // side): the record must name the MACs of the client's first packet.
    PacketMeta ack = make_pkt(k, {.from_a = false, .ts = 20, .flags = kAck});
    ack.src_mac = {0x02, 1, 1, 1, 1, 1};
    ack.dst_mac = {0x02, 2, 2, 2, 2, 2};
    h.feed(ack);
    h.feed(k, {.from_a = false, .ts = 30, .flags = kAck | kPsh});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.client_is_a, 0);
    EXPECT_EQ(r.dir[0].packets, 2u);
    EXPECT_EQ(r.dir[0].tcp_flags, kAck | kPsh);
    EXPECT_EQ(r.dir[1].packets, 1u);
    EXPECT_EQ(r.dir[1].tcp_flags, kSyn | kAck);
    EXPECT_EQ(r.client_mac, ack.src_mac);
    EXPECT_EQ(r.server_mac, ack.dst_mac);
}

TEST(FlowTable, SynAckOnlyFlowKeepsReversedMacs)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(4, kTcp);
    h.feed(k, {.from_a = true, .ts = 10, .flags = kSyn | kAck});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].client_is_a, 0);
    EXPECT_EQ(h.out[0].dir[0].packets, 0u);
    EXPECT_EQ(h.out[0].dir[0].first_ns, 0u);
    EXPECT_EQ(h.out[0].client_mac, kMacB);
    EXPECT_EQ(h.out[0].server_mac, kMacA);
}

TEST(FlowTable, LateSynFromServerSideSwapsRoles)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(5, kTcp);
    // Mid-stream start: A speaks first, so A is the client for now.
    h.feed(k, {.from_a = true, .ts = 10, .flags = kAck, .wire_len = 200, .ttl = 60, .tos = 4});
    h.feed(k, {.from_a = true, .ts = 20, .flags = kAck | kFin, .wire_len = 300, .ttl = 60, .tos = 4});
    // B opens a connection: B is the real client.
    h.feed(k, {.from_a = false, .ts = 30, .flags = kSyn, .wire_len = 74, .ttl = 120, .tos = 8});
    h.feed(k, {.from_a = true, .ts = 40, .flags = kSyn | kAck, .wire_len = 74, .ttl = 60});
    h.feed(k, {.from_a = false, .ts = 50, .flags = kAck, .wire_len = 66, .ttl = 120});
    EXPECT_EQ(h.table->active(), 1u);
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.client_is_a, 0);
    EXPECT_EQ(r.dir[0].packets, 2u);
    EXPECT_EQ(r.dir[0].bytes, 140u);
    EXPECT_EQ(r.dir[0].tcp_flags, kSyn | kAck);
    EXPECT_EQ(r.dir[0].tos, 8);
    EXPECT_EQ(r.dir[0].min_ttl, 120);
    EXPECT_EQ(r.dir[1].packets, 3u);
    EXPECT_EQ(r.dir[1].bytes, 574u);
    EXPECT_EQ(r.dir[1].first_ns, 10u);
    EXPECT_EQ(r.dir[1].tcp_flags, kAck | kFin | kSyn);
    EXPECT_EQ(r.dir[1].tos, 4);
    EXPECT_EQ(r.client_mac, kMacB);
    EXPECT_EQ(r.server_mac, kMacA);
    // A's FIN now counts as the server's FIN: B's FIN ends the flow.
    EXPECT_EQ(r.end_reason, EndReason::ForcedEnd);
}

TEST(FlowTable, SwappedFinStateEndsFlowOnOtherSidesFin)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(6, kTcp);
    h.feed(k, {.from_a = true, .ts = 10, .flags = kAck | kFin});
    h.feed(k, {.from_a = false, .ts = 20, .flags = kSyn}); // swap: A's FIN is the server's
    h.feed(k, {.from_a = false, .ts = 30, .flags = kAck | kFin});
    // FIN seen both ways: ended, lingering; ends at last + linger.
    EXPECT_EQ(h.table->expire(30 + 199, h.sink), 0u);
    EXPECT_EQ(h.table->expire(30 + 200, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::EndOfFlow);
    EXPECT_EQ(h.out[0].client_is_a, 0);
}

TEST(FlowTable, SynFromClientPreventsSwap)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(7, kTcp);
    h.feed(k, {.from_a = true, .ts = 10, .flags = kSyn});
    h.feed(k, {.from_a = false, .ts = 20, .flags = kSyn}); // simultaneous open
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].client_is_a, 1);
    EXPECT_EQ(h.out[0].dir[0].packets, 1u);
    EXPECT_EQ(h.out[0].dir[1].packets, 1u);
}

TEST(FlowTable, IdleTimeoutBoundary)
{
    Harness h(small_cfg()); // idle 1000 ns
    const FlowKey k = make_key(8);
    h.feed(k, {.ts = 5000});
    h.feed(k, {.from_a = false, .ts = 5400});
    EXPECT_EQ(h.table->expire(6399, h.sink), 0u);
    EXPECT_TRUE(h.out.empty());
    EXPECT_EQ(h.table->active(), 1u);
    EXPECT_EQ(h.table->expire(6400, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::IdleTimeout);
    EXPECT_EQ(total_packets(h.out[0]), 2u);
    EXPECT_EQ(h.table->active(), 0u);
    // A later packet of the same key is a new flow.
    h.feed(k, {.from_a = false, .ts = 7000});
    EXPECT_EQ(h.table->stats().flows_created, 2u);
    h.flush();
    ASSERT_EQ(h.out.size(), 2u);
    EXPECT_EQ(h.out[1].client_is_a, 0);
}

TEST(FlowTable, ExpireStopsAtFirstActiveFlowAndHonoursBudget)
{
    Harness h(small_cfg());
    for (uint32_t i = 0; i < 10; ++i)
        h.feed(make_key(100 + i), {.ts = 1000 + i * 10});
    // Flows 0..4 idle at 2045 (last <= 1045), 5..9 not.
    EXPECT_EQ(h.table->expire(2045, h.sink, 2), 2u);
    EXPECT_EQ(h.table->expire(2045, h.sink), 3u);
    ASSERT_EQ(h.out.size(), 5u);
    for (uint32_t i = 0; i < 5; ++i)
        EXPECT_EQ(h.out[i].key, make_key(100 + i)) << i;
    EXPECT_EQ(h.table->active(), 5u);
}

TEST(FlowTable, ActiveTimeoutSplitsLongFlow)
{
    FlowTableConfig cfg = small_cfg();
    cfg.idle_timeout_ns = 500;
    cfg.active_timeout_ns = 1000;
    Harness h(cfg);
    const FlowKey k = make_key(9);
    uint64_t sent_bytes = 0;
    // 26 packets, one every 100 ns, alternating directions, B first.
    for (uint32_t i = 0; i <= 25; ++i) {
        const uint32_t len = 60 + i;
        h.feed(k, {.from_a = (i % 2) == 1, .ts = i * 100ULL, .wire_len = len});
        sent_bytes += len;
    }
    h.flush();
    ASSERT_EQ(h.out.size(), 3u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::ActiveTimeout);
    EXPECT_EQ(h.out[1].end_reason, EndReason::ActiveTimeout);
    EXPECT_EQ(h.out[2].end_reason, EndReason::ForcedEnd);
    // [0, 900], [1000, 1900], [2000, 2500].
    EXPECT_EQ(total_packets(h.out[0]), 10u);
    EXPECT_EQ(total_packets(h.out[1]), 10u);
    EXPECT_EQ(total_packets(h.out[2]), 6u);
    EXPECT_EQ(h.out[1].first_ns(), 1000u);
    EXPECT_EQ(h.out[1].last_ns(), 1900u);
    EXPECT_EQ(h.out[2].first_ns(), 2000u);
    uint64_t bytes = 0;
    for (const auto& r : h.out) {
        EXPECT_EQ(r.client_is_a, 0) << "the client stays the same across splits";
        EXPECT_EQ(r.key, k);
        bytes += r.dir[0].bytes + r.dir[1].bytes;
    }
    EXPECT_EQ(bytes, sent_bytes);
    // The restarted flows also count direction 0 from the original client.
    EXPECT_EQ(h.out[1].dir[0].first_ns, 1000u);
    EXPECT_EQ(h.out[1].dir[1].first_ns, 1100u);
    EXPECT_EQ(h.table->stats().flows_created, 3u);
    EXPECT_EQ(h.table->stats().exported[static_cast<int>(EndReason::ActiveTimeout)], 2u);
}

TEST(FlowTable, FinBothWaysLingersAndAbsorbsFinalAck)
{
    Harness h(small_cfg()); // linger 200, idle 1000
    const FlowKey k = make_key(10, kTcp);
    h.feed(k, {.from_a = true, .ts = 100, .flags = kSyn});
    h.feed(k, {.from_a = false, .ts = 110, .flags = kSyn | kAck});
    h.feed(k, {.from_a = true, .ts = 120, .flags = kAck});
    h.feed(k, {.from_a = true, .ts = 130, .flags = kFin | kAck});
    h.feed(k, {.from_a = false, .ts = 140, .flags = kAck});
    EXPECT_EQ(h.table->expire(140 + 200, h.sink), 0u) << "one FIN does not end a flow";
    h.feed(k, {.from_a = false, .ts = 150, .flags = kFin | kAck});
    EXPECT_EQ(h.table->active(), 1u);
    EXPECT_TRUE(h.out.empty());
    h.feed(k, {.from_a = true, .ts = 160, .flags = kAck}); // final ACK
    EXPECT_EQ(h.table->stats().flows_created, 1u);
    EXPECT_EQ(h.table->expire(359, h.sink), 0u);
    EXPECT_EQ(h.table->expire(360, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.end_reason, EndReason::EndOfFlow);
    EXPECT_EQ(r.dir[0].packets, 4u);
    EXPECT_EQ(r.dir[1].packets, 3u);
    EXPECT_EQ(r.dir[0].tcp_flags, kSyn | kAck | kFin);
    EXPECT_EQ(r.dir[1].tcp_flags, kSyn | kAck | kFin);
    EXPECT_EQ(r.last_ns(), 160u);
    EXPECT_EQ(h.table->stats().exported[static_cast<int>(EndReason::EndOfFlow)], 1u);
}

TEST(FlowTable, EndedFlowLingersEvenPastIdleOrder)
{
    // Ended flows wait for the linger, independently of the idle list.
    FlowTableConfig cfg = small_cfg();
    cfg.idle_timeout_ns = 100;
    cfg.tcp_end_linger_ns = 500;
    Harness h(cfg);
    const FlowKey t = make_key(11, kTcp);
    const FlowKey u = make_key(12);
    h.feed(t, {.from_a = true, .ts = 0, .flags = kRst});
    h.feed(u, {.ts = 0});
    EXPECT_EQ(h.table->expire(100, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].key, u);
    EXPECT_EQ(h.table->expire(499, h.sink), 0u);
    EXPECT_EQ(h.table->expire(500, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 2u);
    EXPECT_EQ(h.out[1].key, t);
    EXPECT_EQ(h.out[1].end_reason, EndReason::EndOfFlow);
}

TEST(FlowTable, RstEndsFlow)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(13, kTcp);
    h.feed(k, {.from_a = true, .ts = 100, .flags = kSyn});
    h.feed(k, {.from_a = false, .ts = 110, .flags = kRst | kAck});
    EXPECT_EQ(h.table->expire(309, h.sink), 0u);
    EXPECT_EQ(h.table->expire(310, h.sink), 1u);
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::EndOfFlow);
    EXPECT_EQ(h.out[0].dir[1].tcp_flags, kRst | kAck);
}

TEST(FlowTable, PureSynOnEndedFlowStartsNewFlow)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(14, kTcp);
    h.feed(k, {.from_a = true, .ts = 100, .flags = kSyn});
    h.feed(k, {.from_a = false, .ts = 110, .flags = kRst | kAck});
    h.feed(k, {.from_a = true, .ts = 115, .flags = kAck}); // absorbed
    // SYN+ACK is not a new connection: absorbed too.
    h.feed(k, {.from_a = false, .ts = 118, .flags = kSyn | kAck});
    EXPECT_TRUE(h.out.empty());
    // B now opens a new connection on the same 5-tuple.
    h.feed(k, {.from_a = false, .ts = 120, .flags = kSyn});
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::EndOfFlow);
    EXPECT_EQ(h.out[0].client_is_a, 1);
    EXPECT_EQ(total_packets(h.out[0]), 4u);
    EXPECT_EQ(h.table->active(), 1u);
    EXPECT_EQ(h.table->stats().flows_created, 2u);
    // The new flow is live (not ended): it outlives the linger.
    EXPECT_EQ(h.table->expire(120 + 999, h.sink), 0u);
    h.feed(k, {.from_a = true, .ts = 130, .flags = kSyn | kAck});
    h.flush();
    ASSERT_EQ(h.out.size(), 2u);
    const FlowRecord& r = h.out[1];
    EXPECT_EQ(r.end_reason, EndReason::ForcedEnd);
    EXPECT_EQ(r.client_is_a, 0);
    EXPECT_EQ(r.dir[0].packets, 1u);
    EXPECT_EQ(r.dir[0].first_ns, 120u);
    EXPECT_EQ(r.dir[0].tcp_flags, kSyn);
    EXPECT_EQ(r.dir[1].tcp_flags, kSyn | kAck);
    EXPECT_EQ(r.client_mac, kMacB);
}

TEST(FlowTable, FullTableEvictsLeastRecentlyActive)
{
    Harness h(small_cfg(16));
    for (uint32_t i = 0; i < 16; ++i)
        h.feed(make_key(i), {.ts = 100 + i});
    EXPECT_EQ(h.table->active(), 16u);
    // Flows 0 and 1 become recent again: flow 2 is now the idlest.
    h.feed(make_key(0), {.from_a = false, .ts = 200});
    h.feed(make_key(1), {.ts = 201});
    h.feed(make_key(100), {.ts = 202});
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].key, make_key(2));
    EXPECT_EQ(h.out[0].end_reason, EndReason::LackOfResources);
    h.feed(make_key(101), {.ts = 203});
    ASSERT_EQ(h.out.size(), 2u);
    EXPECT_EQ(h.out[1].key, make_key(3));
    EXPECT_EQ(h.table->active(), 16u);
    EXPECT_EQ(h.table->stats().exported[static_cast<int>(EndReason::LackOfResources)], 2u);
    EXPECT_EQ(h.table->stats().drops.get(weir::DropReason::TableFull), 0u);
    // Flow 0 survived and still has both its packets.
    h.flush();
    bool found = false;
    for (const auto& r : h.out)
        if (r.key == make_key(0)) {
            found = true;
            EXPECT_EQ(total_packets(r), 2u);
        }
    EXPECT_TRUE(found);
}

TEST(FlowTable, FullTableEvictsEndedFlowsFirst)
{
    Harness h(small_cfg(16));
    for (uint32_t i = 0; i < 15; ++i)
        h.feed(make_key(i), {.ts = 100 + i});
    const FlowKey t = make_key(50, kTcp);
    h.feed(t, {.from_a = true, .ts = 300, .flags = kRst});
    h.feed(make_key(51), {.ts = 301});
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].key, t);
    EXPECT_EQ(h.out[0].end_reason, EndReason::EndOfFlow);
}

/// Keys all sharing a few hashes, two of them at the very end of the index
/// so clusters wrap around to slot 0, and one right at the start.
TEST(FlowTable, HashCollisionsAndDeletionsKeepOthersFindable)
{
    FlowTableConfig cfg = small_cfg(512); // 1024 slots
    cfg.idle_timeout_ns = 1000;
    Harness h(cfg);
    const uint32_t hashes[] = {0xFFFFFFFFu, 0x7FFFFFFEu, 0x00000000u, 0x12345678u};
    std::vector<PacketMeta> pk;
    for (uint32_t i = 0; i < 300; ++i) {
        PacketMeta m = make_pkt(make_key(i), {.ts = 0});
        m.hash = hashes[i % 4];
        pk.push_back(m);
    }
    // Even keys are fed early, odd ones late: expiring the early ones
    // deletes every other member of each cluster.
    for (uint32_t i = 0; i < pk.size(); i += 2) {
        pk[i].ts_ns = 100;
        h.feed(pk[i]);
    }
    for (uint32_t i = 1; i < pk.size(); i += 2) {
        pk[i].ts_ns = 600;
        h.feed(pk[i]);
    }
    EXPECT_EQ(h.table->active(), 300u);
    // A second packet to every flow, early ones first so activity order
    // stays even-then-odd; each must find its flow, not create one.
    for (uint32_t start : {0u, 1u})
        for (uint32_t i = start; i < pk.size(); i += 2) {
            pk[i].ts_ns += 1;
            pk[i].src_is_a = 0;
            h.feed(pk[i]);
        }
    EXPECT_EQ(h.table->stats().flows_created, 300u);
    EXPECT_EQ(h.table->expire(1101, h.sink), 150u);
    ASSERT_EQ(h.out.size(), 150u);
    for (const auto& r : h.out)
        EXPECT_EQ(r.key.port_a % 2, 0) << "only the early (even) flows expire";
    // The odd flows are still found after the deletions around them.
    for (uint32_t i = 1; i < pk.size(); i += 2) {
        pk[i].ts_ns = 700;
        h.feed(pk[i]);
    }
    EXPECT_EQ(h.table->stats().flows_created, 300u);
    EXPECT_EQ(h.table->active(), 150u);
    h.out.clear();
    h.flush();
    ASSERT_EQ(h.out.size(), 150u);
    for (const auto& r : h.out) {
        EXPECT_EQ(r.key.port_a % 2, 1);
        EXPECT_EQ(r.dir[0].packets, 1u);
        EXPECT_EQ(r.dir[1].packets, 2u);
    }
}

TEST(FlowTable, FlushForcedEndAndEndedFlowsKeepTheirReason)
{
    Harness h(small_cfg());
    for (uint32_t i = 0; i < 3; ++i)
        h.feed(make_key(i), {.ts = i});
    const FlowKey t = make_key(9, kTcp);
    h.feed(t, {.from_a = true, .ts = 5, .flags = kRst});
    EXPECT_EQ(h.flush(), 4u);
    ASSERT_EQ(h.out.size(), 4u);
    int forced = 0;
    for (const auto& r : h.out) {
        if (r.key == t) {
            EXPECT_EQ(r.end_reason, EndReason::EndOfFlow);
        } else {
            EXPECT_EQ(r.end_reason, EndReason::ForcedEnd);
            ++forced;
        }
    }
    EXPECT_EQ(forced, 3);
    EXPECT_EQ(h.table->active(), 0u);
    EXPECT_EQ(h.flush(), 0u);
    // The table is reusable after a flush.
    h.feed(make_key(0), {.ts = 10});
    EXPECT_EQ(h.table->active(), 1u);
    EXPECT_EQ(h.table->flush(h.sink, EndReason::LackOfResources), 1u);
    EXPECT_EQ(h.out.back().end_reason, EndReason::LackOfResources);
}

TEST(FlowTable, MemoryBoundPerFlow)
{
    for (uint32_t cap : {1u << 4, 1u << 10, 1u << 16}) {
        FlowTableConfig cfg = small_cfg(cap);
        auto t = FlowTable::create(cfg);
        ASSERT_TRUE(t.ok()) << t.error().message();
        EXPECT_EQ((*t)->capacity(), cap);
        EXPECT_GT((*t)->memory_bytes(), 0u);
        EXPECT_LE((*t)->memory_bytes() / (*t)->capacity(), 160u) << cap;
    }
}

TEST(FlowTable, CreateRejectsBadConfig)
{
    auto expect_einval = [](const FlowTableConfig& c) {
        auto r = FlowTable::create(c);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, std::errc::invalid_argument) << r.error().message();
    };
    FlowTableConfig c = small_cfg(15);
    expect_einval(c);
    c.capacity = (1u << 30) + 1;
    expect_einval(c);
    c = small_cfg(16);
    EXPECT_TRUE(FlowTable::create(c).ok());
    c.idle_timeout_ns = 0;
    expect_einval(c);
    c = small_cfg(16);
    c.active_timeout_ns = 0;
    expect_einval(c);
    c = small_cfg(16);
    c.tcp_end_linger_ns = 0;
    expect_einval(c);
}

TEST(FlowTable, CreateReportsEnomem)
{
    // 2^30 flows need 160 GiB; with heuristic or strict overcommit a machine
    // with less memory than that refuses the mapping up front.
    std::ifstream oc("/proc/sys/vm/overcommit_memory");
    int mode = -1;
    oc >> mode;
    if (mode != 0 && mode != 2)
        GTEST_SKIP() << "overcommit_memory=" << mode << " would accept the mapping";
    std::ifstream mi("/proc/meminfo");
    std::string name;
    uint64_t kb = 0, total_kb = 0;
    std::string unit;
    while (mi >> name >> kb) {
        if (name == "MemTotal:" || name == "SwapTotal:")
            total_kb += kb;
        std::getline(mi, unit);
    }
    if (total_kb == 0 || total_kb > (150ULL << 20))
        GTEST_SKIP() << "this machine could hold 2^30 flows";
    auto r = FlowTable::create(small_cfg(1u << 30));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, std::errc::not_enough_memory) << r.error().message();
}

TEST(FlowTable, TtlFlagsTosPerDirection)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(20, kTcp);
    h.feed(k, {.from_a = true, .ts = 1, .flags = kSyn, .ttl = 64, .tos = 0x10});
    h.feed(k, {.from_a = false, .ts = 2, .flags = kSyn | kAck, .ttl = 50, .tos = 0x20});
    h.feed(k, {.from_a = true, .ts = 3, .flags = kAck | kPsh, .ttl = 61, .tos = 0xb8});
    h.feed(k, {.from_a = true, .ts = 4, .flags = kAck, .ttl = 70, .tos = 0});
    h.feed(k, {.from_a = false, .ts = 5, .flags = kAck | 0x40, .ttl = 50, .tos = 0});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    const FlowRecord& r = h.out[0];
    EXPECT_EQ(r.dir[0].min_ttl, 61);
    EXPECT_EQ(r.dir[0].max_ttl, 70);
    EXPECT_EQ(r.dir[0].tos, 0x10);
    EXPECT_EQ(r.dir[0].tcp_flags, kSyn | kAck | kPsh);
    EXPECT_EQ(r.dir[1].min_ttl, 50);
    EXPECT_EQ(r.dir[1].max_ttl, 50);
    EXPECT_EQ(r.dir[1].tos, 0x20);
    EXPECT_EQ(r.dir[1].tcp_flags, kSyn | kAck | 0x40);
}

TEST(FlowTable, NonTcpFlagsNeverEndFlows)
{
    // A non-TCP flow ignores the flags byte for ending rules.
    Harness h(small_cfg());
    const FlowKey k = make_key(21, kUdp);
    h.feed(k, {.from_a = true, .ts = 1, .flags = kRst});
    h.feed(k, {.from_a = false, .ts = 2, .flags = kFin});
    h.feed(k, {.from_a = true, .ts = 3, .flags = kFin});
    EXPECT_EQ(h.table->expire(1000, h.sink), 0u) << "linger must not apply";
    EXPECT_EQ(h.table->expire(1003, h.sink), 1u);
    EXPECT_EQ(h.out[0].end_reason, EndReason::IdleTimeout);
}

TEST(FlowTable, MacsFromClientsFirstPacket)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(22);
    PacketMeta first = make_pkt(k, {.from_a = true, .ts = 1});
    first.src_mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    first.dst_mac = {0x02, 0x66, 0x77, 0x88, 0x99, 0xaa};
    h.feed(first);
    PacketMeta later = make_pkt(k, {.from_a = true, .ts = 2});
    later.src_mac = {0x02, 9, 9, 9, 9, 9};
    h.feed(later);
    h.feed(k, {.from_a = false, .ts = 3});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].client_mac, first.src_mac);
    EXPECT_EQ(h.out[0].server_mac, first.dst_mac);
}

TEST(FlowTable, FragmentsCountedBothWays)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(23);
    h.feed(k, {.from_a = true, .ts = 1, .frag = true});
    h.feed(k, {.from_a = true, .ts = 2, .frag = true});
    h.feed(k, {.from_a = true, .ts = 3});
    h.feed(k, {.from_a = false, .ts = 4, .frag = true});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].fragments, 3u);
}

TEST(FlowTable, ByteCountWireVersusIp)
{
    for (ByteCount bc : {ByteCount::Wire, ByteCount::Ip}) {
        FlowTableConfig cfg = small_cfg();
        cfg.byte_count = bc;
        Harness h(cfg);
        const FlowKey k = make_key(24);
        PacketMeta a = make_pkt(k, {.from_a = true, .ts = 1});
        a.wire_len = 1514;
        a.ip_len = 1500;
        PacketMeta b = make_pkt(k, {.from_a = false, .ts = 2});
        b.wire_len = 64; // padded minimum frame
        b.ip_len = 40;
        h.feed(a);
        h.feed(b);
        h.flush();
        ASSERT_EQ(h.out.size(), 1u);
        const bool wire = bc == ByteCount::Wire;
        EXPECT_EQ(h.out[0].dir[0].bytes, wire ? 1514u : 1500u);
        EXPECT_EQ(h.out[0].dir[1].bytes, wire ? 64u : 40u);
        EXPECT_EQ(h.table->stats().bytes, wire ? 1578u : 1540u);
    }
}

TEST(FlowTable, OutOfOrderTimestampsKeepFirstAndLast)
{
    Harness h(small_cfg());
    const FlowKey k = make_key(25);
    h.feed(k, {.from_a = true, .ts = 500});
    h.feed(k, {.from_a = true, .ts = 480});
    h.feed(k, {.from_a = true, .ts = 520});
    h.feed(k, {.from_a = true, .ts = 510});
    h.flush();
    ASSERT_EQ(h.out.size(), 1u);
    EXPECT_EQ(h.out[0].dir[0].first_ns, 480u);
    EXPECT_EQ(h.out[0].dir[0].last_ns, 520u);
}

bool same_record(const FlowRecord& a, const FlowRecord& b)
{
    if (!(a.key == b.key) || a.client_is_a != b.client_is_a || a.end_reason != b.end_reason ||
        a.fragments != b.fragments || a.client_mac != b.client_mac || a.server_mac != b.server_mac)
        return false;
    for (int d = 0; d < 2; ++d) {
        const auto& x = a.dir[d];
        const auto& y = b.dir[d];
        if (x.packets != y.packets || x.bytes != y.bytes || x.first_ns != y.first_ns ||
            x.last_ns != y.last_ns || x.tcp_flags != y.tcp_flags || x.min_ttl != y.min_ttl ||
            x.max_ttl != y.max_ttl || x.tos != y.tos)
            return false;
    }
    return true;
}

TEST(FlowTable, BurstUpdateMatchesSinglePacketUpdates)
{
    // Small table, colliding hashes, TCP endings and evictions inside bursts:
    // the prefetch pipeline must never change the outcome.
    std::mt19937_64 rng(42);
    std::vector<PacketMeta> pk;
    uint64_t ts = 0;
    for (int i = 0; i < 200000; ++i) {
        // A fifth of the packets keep 8 hot flows alive up to the active timeout.
        const uint32_t id = static_cast<uint32_t>(rng() % 5 == 0 ? rng() % 8 : rng() % 300);
        const FlowKey k = make_key(id, id % 3 == 0 ? kTcp : kUdp);
        ts += rng() % 3;
        static constexpr uint8_t kFlags[] = {kSyn, kSyn | kAck, kAck, kAck | kPsh, kFin | kAck, kRst, kAck, kAck};
        PacketMeta m = make_pkt(k, {.from_a = (rng() & 1) != 0, .ts = ts,
                                    .flags = k.proto == kTcp ? kFlags[rng() % 8] : uint8_t{0},
                                    .wire_len = 60 + static_cast<uint32_t>(rng() % 1400),
                                    .ttl = static_cast<uint8_t>(rng()), .frag = rng() % 16 == 0});
        if (id % 5 == 0)
            m.hash = 0xFFFFFFF0u + (id % 2); // clusters at the end of the index
        pk.push_back(m);
    }
    FlowTableConfig cfg = small_cfg(128);
    cfg.idle_timeout_ns = 150;
    cfg.active_timeout_ns = 2000;
    cfg.tcp_end_linger_ns = 40;
    Harness one(cfg, 3), burst(cfg, 3), after(cfg, 3);
    // The variant with a per-packet call (DPI) must call it once per packet,
    // in order, right after that packet's own records: the number of
    // records out at each call is the one-by-one run's after each packet.
    // Its `flow` is the flow's entry: below the capacity, and the same
    // flow's until a record that ends it (not an active timeout) names it.
    std::vector<std::size_t> out_after_one, out_after_call;
    struct Ctx {
        Harness* h;
        std::vector<std::size_t>* seen;
        const PacketMeta* base;
        uint32_t calls;
        std::vector<std::optional<FlowKey>> owner; ///< flow entry -> its flow's key
        std::size_t records_seen = 0;
        uint32_t wrong_flow = 0;
        /// Frees the entries of the flows ended by records out since the last look.
        void take_records()
        {
            for (; records_seen < h->out.size(); ++records_seen) {
                const FlowRecord& r = h->out[records_seen];
                if (r.table_entry >= owner.size() || !owner[r.table_entry] || !(*owner[r.table_entry] == r.key))
                    ++wrong_flow;
                else if (r.end_reason != EndReason::ActiveTimeout)
                    owner[r.table_entry].reset();
            }
        }
    } ctx{&after, &out_after_call, nullptr, 0, std::vector<std::optional<FlowKey>>(cfg.capacity)};
    const FlowTable::AfterPacket call = [](void* c, const PacketMeta& m, uint32_t i, uint32_t flow) noexcept {
        auto* x = static_cast<Ctx*>(c);
        if (&m != x->base + i || i != x->calls)
            x->seen->push_back(SIZE_MAX); // wrong packet or order: fails below
        ++x->calls;
        x->seen->push_back(x->h->out.size());
        x->take_records();
        if (flow >= x->owner.size() || (x->owner[flow] && !(*x->owner[flow] == m.key)))
            ++x->wrong_flow;
        else
            x->owner[flow] = m.key;
    };
    std::size_t off = 0;
    uint32_t round = 0;
    while (off < pk.size()) {
        const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(pk.size() - off), 1 + (round++ * 7) % 70);
        for (uint32_t i = 0; i < n; ++i) {
            one.feed(pk[off + i]);
            out_after_one.push_back(one.out.size());
        }
        EXPECT_EQ(burst.table->update_burst(pk.data() + off, n, burst.sink), n);
        ctx.base = pk.data() + off;
        ctx.calls = 0;
        EXPECT_EQ(after.table->update_burst(pk.data() + off, n, after.sink, call, &ctx), n);
        EXPECT_EQ(ctx.calls, n);
        off += n;
        const uint64_t now = pk[off - 1].ts_ns;
        const uint32_t ended = one.table->expire(now, one.sink, 5);
        EXPECT_EQ(ended, burst.table->expire(now, burst.sink, 5));
        EXPECT_EQ(ended, after.table->expire(now, after.sink, 5));
    }
    EXPECT_EQ(burst.table->update_burst(pk.data(), 0, burst.sink), 0u);
    EXPECT_TRUE(out_after_one == out_after_call);
    one.flush();
    burst.flush();
    after.flush();
    ctx.take_records();
    EXPECT_EQ(ctx.wrong_flow, 0u);
    EXPECT_TRUE(std::none_of(ctx.owner.begin(), ctx.owner.end(), [](const auto& o) { return o.has_value(); }))
        << "a flow entry never ended";
    ASSERT_EQ(one.out.size(), burst.out.size());
    ASSERT_EQ(one.out.size(), after.out.size());
    for (std::size_t i = 0; i < one.out.size(); ++i) {
        ASSERT_TRUE(same_record(one.out[i], burst.out[i])) << "record " << i;
        ASSERT_TRUE(same_record(one.out[i], after.out[i])) << "record " << i;
    }
    const auto& s = burst.table->stats();
    uint64_t exported = 0;
    for (int r = 1; r <= 5; ++r) {
        exported += s.exported[r];
        EXPECT_GT(s.exported[r], 0u) << "reason " << r << " never exercised";
    }
    EXPECT_EQ(exported, s.flows_created);
    EXPECT_EQ(s.packets, pk.size());
    EXPECT_EQ(one.out.front().worker, 3);
}

/// Reference model: a plain LRU over std::unordered_map and std::list, with
/// idle and active timeouts and eviction, for UDP flows.
class Model {
public:
    struct Flow {
        uint32_t id;
        uint8_t client_is_a;
        uint64_t packets[2];
        uint64_t bytes[2];
        uint64_t first;
        uint64_t last;
    };
    struct Expect {
        uint32_t id;
        EndReason reason;
        Flow flow;
    };

    Model(uint32_t cap, uint64_t idle, uint64_t active) : cap_(cap), idle_(idle), active_(active) {}

    void update(uint32_t id, bool from_a, uint64_t ts, uint32_t len, std::deque<Expect>& out)
    {
        auto it = map_.find(id);
        if (it == map_.end()) {
            if (map_.size() == cap_) {
                const Flow& victim = lru_.back();
                out.push_back({victim.id, EndReason::LackOfResources, victim});
                map_.erase(victim.id);
                lru_.pop_back();
            }
            lru_.push_front(Flow{id, static_cast<uint8_t>(from_a), {0, 0}, {0, 0}, ts, ts});
            it = map_.emplace(id, lru_.begin()).first;
            ++created_;
        } else {
            lru_.splice(lru_.begin(), lru_, it->second);
            Flow& f = *it->second;
            if (ts - f.last >= idle_) {
                // Idle past its timeout, even if expire() has not run yet.
                out.push_back({id, EndReason::IdleTimeout, f});
                f = Flow{id, static_cast<uint8_t>(from_a), {0, 0}, {0, 0}, ts, ts};
                ++created_;
            } else if (ts - f.first >= active_) {
                out.push_back({id, EndReason::ActiveTimeout, f});
                f = Flow{id, f.client_is_a, {0, 0}, {0, 0}, ts, ts};
                ++created_;
            }
        }
        Flow& f = *it->second;
        const int d = (from_a == (f.client_is_a != 0)) ? 0 : 1;
        f.packets[d] += 1;
        f.bytes[d] += len;
        f.last = ts;
    }

    uint32_t expire(uint64_t now, uint32_t budget, std::deque<Expect>& out)
    {
        uint32_t n = 0;
        while (n < budget && !lru_.empty() && lru_.back().last + idle_ <= now) {
            out.push_back({lru_.back().id, EndReason::IdleTimeout, lru_.back()});
            map_.erase(lru_.back().id);
            lru_.pop_back();
            ++n;
        }
        return n;
    }

    void flush(std::deque<Expect>& out)
    {
        while (!lru_.empty()) {
            out.push_back({lru_.back().id, EndReason::ForcedEnd, lru_.back()});
            lru_.pop_back();
        }
        map_.clear();
    }

    [[nodiscard]] std::size_t size() const { return map_.size(); }
    [[nodiscard]] uint64_t created() const { return created_; }

private:
    uint32_t cap_;
    uint64_t idle_;
    uint64_t active_;
    uint64_t created_ = 0;
    std::list<Flow> lru_;
    std::unordered_map<uint32_t, std::list<Flow>::iterator> map_;
};

TEST(FlowTable, ChurnMatchesReferenceModel)
{
    constexpr uint32_t kCap = 4096;  // 8192 index slots
    constexpr uint32_t kKeys = 12000;
    constexpr int kSteps = 2000000;
    FlowTableConfig cfg = small_cfg(kCap);
    cfg.idle_timeout_ns = 5000;
    cfg.active_timeout_ns = 200000;
    Harness h(cfg);
    Model model(kCap, cfg.idle_timeout_ns, cfg.active_timeout_ns);

    // A quarter of the keys share 32 hashes; a few of those sit at the end
    // and the start of the index so clusters wrap around.
    std::vector<FlowKey> keys(kKeys);
    std::vector<uint32_t> hashes(kKeys);
    for (uint32_t i = 0; i < kKeys; ++i) {
        keys[i] = make_key(i);
        hashes[i] = weir::flow_hash(keys[i]);
        if (i % 4 == 0) {
            const uint32_t g = (i / 4) % 32;
            hashes[i] = g < 4 ? 0xFFFFFFFFu - g : g < 8 ? g - 4 : weir::flow_hash(make_key(1000000 + g));
        }
    }

    std::mt19937_64 rng(20240611);
    std::deque<Model::Expect> expected;
    uint64_t ts = 1;
    uint64_t checked = 0;
    auto check_output = [&] {
        ASSERT_EQ(h.out.size(), expected.size());
        for (std::size_t i = 0; i < h.out.size(); ++i) {
            const FlowRecord& r = h.out[i];
            const Model::Expect& e = expected[i];
            ASSERT_EQ(r.key, keys[e.id]) << "export " << checked + i;
            ASSERT_EQ(r.end_reason, e.reason) << "export " << checked + i;
            ASSERT_EQ(r.client_is_a, e.flow.client_is_a);
            for (int d = 0; d < 2; ++d) {
                ASSERT_EQ(r.dir[d].packets, e.flow.packets[d]);
                ASSERT_EQ(r.dir[d].bytes, e.flow.bytes[d]);
            }
            ASSERT_EQ(r.first_ns(), e.flow.first);
            ASSERT_EQ(r.last_ns(), e.flow.last);
        }
        checked += h.out.size();
        h.out.clear();
        expected.clear();
    };

    for (int step = 0; step < kSteps; ++step) {
        // Alternate phases: dense traffic (table overflows, evictions) and
        // sparse traffic (idle expiry dominates).
        const bool dense = (step / 100000) % 2 == 0;
        ts += dense ? rng() % 2 : 1 + rng() % 4;
        // One packet in ten goes to 16 hot keys, whose flows live long
        // enough to hit the active timeout.
        const uint32_t id = static_cast<uint32_t>(rng() % 10 == 0 ? rng() % 16 : rng() % kKeys);
        const bool from_a = (rng() & 3) != 0;
        const uint32_t len = 60 + static_cast<uint32_t>(rng() % 1000);
        PacketMeta m = make_pkt(keys[id], {.from_a = from_a, .ts = ts, .wire_len = len});
        m.hash = hashes[id];
        h.feed(m);
        model.update(id, from_a, ts, len, expected);
        if (step % 64 == 63) {
            const uint32_t budget = (rng() % 4 == 0) ? static_cast<uint32_t>(rng() % 8) : UINT32_MAX;
            ASSERT_EQ(h.table->expire(ts, h.sink, budget), model.expire(ts, budget, expected));
        }
        if (!h.out.empty() || !expected.empty())
            check_output();
        if (HasFatalFailure())
            return;
        if (step % 4096 == 0) {
            ASSERT_EQ(h.table->active(), model.size());
        }
    }
    h.flush();
    model.flush(expected);
    check_output();
    const auto& s = h.table->stats();
    EXPECT_EQ(s.flows_created, model.created());
    EXPECT_EQ(s.packets, static_cast<uint64_t>(kSteps));
    EXPECT_GT(s.exported[static_cast<int>(EndReason::IdleTimeout)], 100000u);
    EXPECT_GT(s.exported[static_cast<int>(EndReason::LackOfResources)], 100000u);
    EXPECT_GT(s.exported[static_cast<int>(EndReason::ActiveTimeout)], 0u);
    EXPECT_GT(checked, 1000000u);
}

} // namespace
