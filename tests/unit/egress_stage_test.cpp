// EgressStage decisions without a network: frames built and decoded by the
// real decoder, outputs that record what they were given.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/decoder.hpp>
#include <weir/engine/egress_stage.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/policy.hpp>

#include <packet_builder.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

using namespace weir;
using namespace weir::engine;
using namespace weir::test;

namespace {

// Keeps a copy of every frame it is given (what an IDS on that egress sees).
class RecordingOutput final : public EgressOutput {
public:
    void send(const uint8_t* data, uint32_t len) noexcept override
    {
        pending.emplace_back(data, data + len);
    }
    void flush() noexcept override
    {
        for (auto& f : pending)
            frames.push_back(std::move(f));
        pending.clear();
        ++flushes;
    }
    EgressCounters counters() const noexcept override
    {
        EgressCounters c;
        c.packets = frames.size();
        return c;
    }
    std::string describe() const override { return "recording"; }
    std::vector<Bytes> pending, frames;
    uint64_t flushes = 0;
};

struct Rig {
    explicit Rig(size_t n = 3, EgressStageConfig cfg = {}, const PolicyStore* store = nullptr)
    {
        outs.resize(n);
        std::vector<EgressOutput*> ptrs;
        for (auto& o : outs)
            ptrs.push_back(&o);
        if (cfg.names.empty())
            for (size_t i = 0; i < n; ++i)
                cfg.names.push_back("eg" + std::to_string(i));
        auto s = EgressStage::create(cfg, ptrs, store);
        EXPECT_TRUE(s) << (s ? "" : s.error().message());
        stage = std::move(s.value());
    }
    // Decodes and hands one frame to the stage, as the pipeline's reader does.
    void feed(const Bytes& frame, uint64_t ts_ns = 1, uint32_t linktype = lt::kEthernet)
    {
        RawPacket rp = raw(frame, linktype, ts_ns);
        PacketMeta m;
        if (dec.decode(rp, m))
            stage->packet(rp, &m);
        else
            stage->packet(rp, nullptr);
        stage->burst_end();
    }
    // Which outputs got frames since the last call (indices).
    std::set<size_t> hit()
    {
        std::set<size_t> r;
        for (size_t i = 0; i < outs.size(); ++i) {
            if (outs[i].frames.size() > seen[i])
                r.insert(i);
            seen[i] = outs[i].frames.size();
        }
        return r;
    }
    size_t total() const
    {
        size_t t = 0;
        for (auto& o : outs)
            t += o.frames.size();
        return t;
    }
    std::vector<RecordingOutput> outs;
    std::map<size_t, size_t> seen;
    std::unique_ptr<EgressStage> stage;
    Decoder dec;
};

Bytes tcp(const std::string& s, const std::string& d, uint16_t sp, uint16_t dp, size_t payload = 10)
{
    return PacketBuilder().eth().ipv4(s, d).tcp(sp, dp, kTcpAck).payload(Bytes(payload, 0x41)).build();
}

std::string host(uint32_t i)
{
    return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
           std::to_string(i & 255);
}

} // namespace

TEST(EgressStage, RejectsBadConfiguration)
{
    RecordingOutput o;
    EgressStageConfig c;
    EXPECT_FALSE(EgressStage::create(c, {}));
    EXPECT_FALSE(EgressStage::create(c, {nullptr}));
    c.hash_tuple = 3;
    EXPECT_FALSE(EgressStage::create(c, {&o}));
}

TEST(EgressStage, BothDirectionsOfAFlowGoToOneEgressAndFlowsSpreadEvenly)
{
    Rig r(3);
    constexpr uint32_t kFlows = 3000;
    for (uint32_t i = 0; i < kFlows; ++i) {
        const std::string a = host(i + 1), b = "192.168.1.1";
        const uint16_t sp = static_cast<uint16_t>(1024 + i % 50000);
        r.feed(tcp(a, b, sp, 80));
        const auto first = r.hit();
        ASSERT_EQ(first.size(), 1u);
        r.feed(tcp(b, a, 80, sp));
        r.feed(tcp(a, b, sp, 80, 100));
        EXPECT_EQ(r.hit(), first) << "flow " << i;
    }
    for (auto& o : r.outs) {
        const double flows = static_cast<double>(o.frames.size()) / 3;
        EXPECT_NEAR(flows, kFlows / 3.0, kFlows / 3.0 * 0.10);
    }
    const auto st = r.stage->stats();
    EXPECT_EQ(st.packets, kFlows * 3);
    EXPECT_EQ(st.delivered, kFlows * 3);
    EXPECT_EQ(st.egress_packets.size(), 3u);
    EXPECT_EQ(st.egress_packets[0] + st.egress_packets[1] + st.egress_packets[2], kFlows * 3);
}

TEST(EgressStage, TwoTupleKeepsEveryFlowBetweenTwoHostsTogether)
{
    EgressStageConfig c;
    c.hash_tuple = 2;
    Rig two(4, c);
    Rig five(4);
    std::set<size_t> used2, used5;
    for (uint16_t p = 1000; p < 1100; ++p) {
        two.feed(tcp("10.0.0.1", "10.0.0.2", p, 443));
        two.feed(tcp("10.0.0.2", "10.0.0.1", 443, p));
        five.feed(tcp("10.0.0.1", "10.0.0.2", p, 443));
        for (size_t e : two.hit())
            used2.insert(e);
        for (size_t e : five.hit())
            used5.insert(e);
    }
    EXPECT_EQ(used2.size(), 1u);
    EXPECT_GT(used5.size(), 1u);
}

TEST(EgressStage, FragmentsFollowTheirFlow)
{
    Rig r(8);
    // Pick several datagrams so at least one would land elsewhere by ports 0.
    for (uint16_t id = 1; id <= 16; ++id) {
        const uint16_t sp = static_cast<uint16_t>(5000 + id * 7);
        Bytes first = PacketBuilder().eth().ipv4("10.1.0.1", "10.1.0.2").ip_id(id).frag(0, true)
                          .udp(sp, 53).payload(Bytes(64, 1)).build();
        Bytes later = PacketBuilder().eth().ipv4("10.1.0.1", "10.1.0.2").ip_id(id).frag(72, false)
                          .ip_proto(17).payload(Bytes(40, 2)).build();
        Bytes whole = PacketBuilder().eth().ipv4("10.1.0.2", "10.1.0.1").udp(53, sp).payload(Bytes(8, 3)).build();
        r.feed(whole);
        const auto e = r.hit();
        r.feed(first);
        EXPECT_EQ(r.hit(), e);
        r.feed(later);
        EXPECT_EQ(r.hit(), e) << "datagram " << id;
    }
}

TEST(EgressStage, UnkeyedFramesGoToEgressZeroAndOtherLinkTypesAreCounted)
{
    Rig r(3);
    Bytes arp = PacketBuilder().eth(kMacA, kMacB, 0x0806).payload(Bytes(28, 0)).build();
    r.feed(arp);
    EXPECT_EQ(r.hit(), std::set<size_t>{0});
    Bytes rawip = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build();
    r.feed(rawip, 1, lt::kRaw);
    EXPECT_TRUE(r.hit().empty());
    const auto st = r.stage->stats();
    EXPECT_EQ(st.unkeyed, 1u);
    EXPECT_EQ(st.not_ethernet, 1u);
    EXPECT_EQ(st.delivered, 1u);
}

TEST(EgressStage, DiscardShuntSliceAndSteer)
{
    auto p = Policy::parse(R"(
[global]
default = forward
[subnet]
10.9.0.0/16 = discard
10.8.0.0/16 = shunt:3
10.7.0.1 = slice:l3
10.7.0.2 = slice:l4
10.7.0.3 = slice:20
10.7.0.4 = slice:5
10.6.0.1 = egress:eg2
10.6.0.2 = egress:1
10.6.0.3 = egress:7
10.6.0.4 = egress:nosuch
)");
    ASSERT_TRUE(p) << p.error().message();
    PolicyStore store(std::move(*p));
    Rig r(3, {}, &store);

    for (int i = 0; i < 10; ++i)
        r.feed(tcp(i % 2 ? "10.9.1.1" : "1.1.1.1", i % 2 ? "1.1.1.1" : "10.9.1.1", i % 2 ? 80 : 999, i % 2 ? 999 : 80));
    EXPECT_EQ(r.total(), 0u);

    // Shunt: exactly 3 packets of the flow, both directions counted.
    for (int i = 0; i < 10; ++i)
        r.feed(i % 2 ? tcp("10.8.1.1", "2.2.2.2", 1234, 80) : tcp("2.2.2.2", "10.8.1.1", 80, 1234));
    EXPECT_EQ(r.total(), 3u);
    r.hit();

    // Slices: Ethernet 14 + IPv4 20 + TCP 20 (+ 10 payload bytes).
    auto last_len = [&](const Bytes& f) -> size_t {
        r.feed(f);
        const auto h = r.hit();
        if (h.size() != 1)
            return 0;
        return r.outs[*h.begin()].frames.back().size();
    };
    EXPECT_EQ(last_len(tcp("10.7.0.1", "3.3.3.3", 1, 2)), 34u);
    EXPECT_EQ(last_len(tcp("10.7.0.2", "3.3.3.3", 1, 2)), 54u);
    EXPECT_EQ(last_len(tcp("10.7.0.3", "3.3.3.3", 1, 2)), 20u);
    EXPECT_EQ(last_len(tcp("10.7.0.4", "3.3.3.3", 1, 2)), 14u);
    EXPECT_EQ(last_len(tcp("3.3.3.3", "10.7.0.2", 2, 1, 0)), 54u);

    // Steering: by name, by index; a bad one falls back to the balanced egress.
    r.feed(tcp("10.6.0.1", "4.4.4.4", 1, 2));
    EXPECT_EQ(r.hit(), std::set<size_t>{2});
    r.feed(tcp("4.4.4.4", "10.6.0.2", 2, 1));
    EXPECT_EQ(r.hit(), std::set<size_t>{1});
    r.feed(tcp("10.6.0.3", "4.4.4.4", 1, 2));
    EXPECT_EQ(r.hit().size(), 1u);
    r.feed(tcp("10.6.0.4", "4.4.4.4", 1, 2));
    EXPECT_EQ(r.hit().size(), 1u);

    const auto st = r.stage->stats();
    EXPECT_EQ(st.discarded, 10u);
    EXPECT_EQ(st.shunted, 7u);
    EXPECT_EQ(st.sliced, 5u);
    EXPECT_EQ(st.bad_egress, 2u);
}

TEST(EgressStage, ReloadRedecidesFlowsAndKeepsTheirCounts)
{
    PolicyStore store;
    Rig r(2, {}, &store);
    for (int i = 0; i < 5; ++i)
        r.feed(tcp("10.0.0.1", "10.0.0.2", 1000, 80));
    EXPECT_EQ(r.total(), 5u);
    ASSERT_TRUE(store.reload_text("[global]\ndefault = shunt:7\n"));
    // The stage applies the new generation from the next packet on.
    for (int i = 0; i < 5; ++i)
        r.feed(tcp("10.0.0.2", "10.0.0.1", 80, 1000));
    EXPECT_EQ(r.total(), 7u) << "5 before the reload, then 2 more up to K = 7";
    for (int i = 0; i < 9; ++i)
        r.feed(tcp("10.0.0.3", "10.0.0.2", 1000, 80));
    EXPECT_EQ(r.total(), 14u) << "a new flow gets its 7";
    // A bad reload keeps the running policy.
    auto bad = store.reload_text("[global]\ndefault = discrad\n");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find(":2:"), std::string::npos) << bad.error().message();
    r.feed(tcp("10.0.0.4", "10.0.0.2", 1000, 80));
    EXPECT_EQ(r.total(), 15u);
    const auto st = r.stage->stats();
    EXPECT_EQ(st.redecided, 1u);
    EXPECT_EQ(st.policy_generation, 1u);
    EXPECT_EQ(st.flows, 3u);
}

TEST(EgressStage, FullTableForwardsStatelesslyAndIdleSlotsAreReused)
{
    auto p = Policy::parse("[global]\ndefault = shunt:1\n");
    ASSERT_TRUE(p);
    PolicyStore store(std::move(*p));
    EgressStageConfig c;
    c.max_flows = 16; // 64 slots
    c.idle_timeout_ns = 1000;
    Rig r(2, c, &store);
    constexpr uint32_t kFlows = 500;
    for (uint32_t i = 0; i < kFlows; ++i)
        for (int k = 0; k < 2; ++k)
            r.feed(tcp(host(i + 1), "10.200.0.1", 40000, 80), 10);
    auto st = r.stage->stats();
    EXPECT_GT(st.table_full, 0u);
    EXPECT_LE(st.flows, 64u);
    // Flows with state got 1 packet each, the others both (stateless forward).
    EXPECT_EQ(r.total(), st.flows + st.table_full);
    EXPECT_EQ(st.shunted, st.flows);
    // Much later (past the idle timeout) slots are reused: new flows get state.
    const uint64_t flows_before = st.flows;
    r.feed(tcp("10.250.0.1", "10.200.0.1", 40000, 80), 1000000);
    st = r.stage->stats();
    EXPECT_EQ(st.flows, flows_before + 1);
}

TEST(EgressStage, SliceLengthIsBoundedByTheCapture)
{
    Bytes f = PacketBuilder().eth().ipv6("fd00::1", "fd00::2").udp(1, 2).payload(Bytes(100, 0)).build();
    RawPacket rp = raw(f);
    PacketMeta m;
    Decoder d;
    ASSERT_TRUE(d.decode(rp, m));
    EXPECT_EQ(egress_slice_length(Slice{SliceMode::L3, 0}, rp, m), 14u + 40u);
    EXPECT_EQ(egress_slice_length(Slice{SliceMode::L4, 0}, rp, m), 14u + 40u + 8u);
    EXPECT_EQ(egress_slice_length(Slice{SliceMode::Bytes, 60000}, rp, m), f.size());
}

namespace {

// The offload requests the stage's control thread makes, in order.
class RecordingOffload final : public EgressOffload {
public:
    Result<bool> install(const FlowKey& key, uint64_t ttl_ns) override
    {
        std::lock_guard g(mu);
        ops.emplace_back(key, ttl_ns);
        if (full)
            return from_errno(ENOSPC, "table full");
        return true;
    }
    Result<bool> remove(const FlowKey& key) override
    {
        std::lock_guard g(mu);
        ops.emplace_back(key, UINT64_MAX);
        return true;
    }
    // (key, ttl) per call; ttl UINT64_MAX marks a removal.
    std::vector<std::pair<FlowKey, uint64_t>> take()
    {
        std::lock_guard g(mu);
        return std::exchange(ops, {});
    }
    std::mutex mu;
    std::vector<std::pair<FlowKey, uint64_t>> ops;
    bool full = false;
};

PacketMeta meta_of(Decoder& dec, const Bytes& frame)
{
    PacketMeta m;
    EXPECT_TRUE(dec.decode(raw(frame, lt::kEthernet, 1), m));
    return m;
}

Bytes udp(const std::string& s, const std::string& d, uint16_t sp, uint16_t dp)
{
    return PacketBuilder().eth().ipv4(s, d).udp(sp, dp).payload(Bytes(20, 0x42)).build();
}

} // namespace

TEST(EgressStageL7, ProtocolRulesApplyOnceDetectedAndShuntCountsTheWholeFlow)
{
    auto pol = Policy::parse("[global]\ndefault = forward\n[subnet]\n10.9.0.0/16 = discard\n"
                             "[protocol]\nTLS = shunt:3\nDNS = discard\nYouTube = egress:2\n");
    ASSERT_TRUE(pol) << pol.error().message();
    PolicyStore store(std::move(*pol));
    EgressStageConfig cfg;
    cfg.l7_feedback = true;
    Rig r(3, cfg, &store);

    // TLS flow: two packets before detection are forwarded (default rule),
    // then TLS = shunt:3 counts them: one more, then nothing.
    const Bytes tls_a = tcp("10.1.0.1", "10.2.0.1", 40000, 443), tls_b = tcp("10.2.0.1", "10.1.0.1", 443, 40000);
    r.feed(tls_a);
    r.feed(tls_b);
    EXPECT_EQ(r.total(), 2u);
    const PacketMeta tm = meta_of(r.dec, tls_a);
    r.stage->on_l7(tm.key, tm.hash, "TLS");
    r.feed(tls_a);
    EXPECT_EQ(r.total(), 3u);
    r.feed(tls_b);
    r.feed(tls_a);
    EXPECT_EQ(r.total(), 3u);

    // DNS: forwarded until detected, then discarded.
    const Bytes dns = udp("10.1.0.2", "10.2.0.2", 5353, 53);
    r.feed(dns);
    EXPECT_EQ(r.total(), 4u);
    const PacketMeta dm = meta_of(r.dec, dns);
    r.stage->on_l7(dm.key, dm.hash, "DNS.Google"); // master.app: the master's rule
    r.feed(dns);
    r.feed(dns);
    EXPECT_EQ(r.total(), 4u);

    // master.app: the application's rule beats the master's.
    const Bytes yt = tcp("10.1.0.3", "10.2.0.3", 40001, 443);
    r.feed(yt);
    r.hit();
    const PacketMeta ym = meta_of(r.dec, yt);
    r.stage->on_l7(ym.key, ym.hash, "TLS.YouTube");
    r.feed(yt);
    EXPECT_EQ(r.hit(), std::set<size_t>{2});

    // Given up (empty name) changes nothing; a subnet discard with an
    // unmatched protocol stays discarded.
    const Bytes sub = udp("10.9.0.1", "10.2.0.4", 1000, 2000);
    r.feed(sub);
    const PacketMeta sm = meta_of(r.dec, sub);
    r.stage->on_l7(sm.key, sm.hash, "");
    r.stage->on_l7(sm.key, sm.hash, "NTP");
    r.feed(sub);
    EXPECT_EQ(r.total(), 6u);

    // A result for a flow the stage never saw is counted and ignored.
    const PacketMeta nm = meta_of(r.dec, udp("10.5.0.1", "10.5.0.2", 1, 2));
    r.stage->on_l7(nm.key, nm.hash, "DNS");

    const auto st = r.stage->stats();
    EXPECT_EQ(st.l7_notes, 6u);
    EXPECT_EQ(st.l7_redecided, 3u); // TLS, DNS, YouTube (NTP: no rule, still the subnet's discard)
    EXPECT_EQ(st.l7_no_flow, 1u);
    EXPECT_EQ(st.shunted, 2u);
    EXPECT_EQ(st.discarded, 2u + 2u);
}

TEST(EgressStageL7, ResultsSurviveAReload)
{
    PolicyStore store(Policy::parse("[protocol]\nDNS = forward\n").value());
    EgressStageConfig cfg;
    cfg.l7_feedback = true;
    Rig r(2, cfg, &store);
    const Bytes dns = udp("10.1.0.2", "10.2.0.2", 5353, 53);
    r.feed(dns);
    const PacketMeta dm = meta_of(r.dec, dns);
    r.stage->on_l7(dm.key, dm.hash, "DNS");
    r.feed(dns);
    EXPECT_EQ(r.total(), 2u);
    ASSERT_TRUE(store.reload_text("[protocol]\nDNS = discard\n"));
    r.feed(dns); // decided again with the name it has
    EXPECT_EQ(r.total(), 2u);
}

TEST(EgressStageOffload, DiscardAndShuntPastKBecomeVerdictsOnceSettled)
{
    PolicyStore store(Policy::parse("[global]\ndefault = forward\n[subnet]\n10.9.0.0/16 = discard\n"
                                     "10.8.0.0/16 = shunt:2\n[protocol]\nDNS = discard\n").value());
    RecordingOffload off;
    EgressStageConfig cfg;
    cfg.l7_feedback = true;
    cfg.offload = &off;
    cfg.offload_ttl_ns = 5'000'000'000ULL;
    Rig r(2, cfg, &store);

    // Subnet discard: with [protocol] rules and DPI on, not offloaded
    // until the flow's L7 result says no protocol rule changes it.
    const Bytes sub = udp("10.9.0.1", "10.2.0.4", 1000, 2000);
    r.feed(sub);
    r.stage->offload_sync();
    EXPECT_TRUE(off.take().empty());
    const PacketMeta sm = meta_of(r.dec, sub);
    r.stage->on_l7(sm.key, sm.hash, "");
    r.stage->offload_sync();
    auto ops = off.take();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].first, sm.key);
    EXPECT_EQ(ops[0].second, 5'000'000'000ULL);

    // DNS detected on a forwarded flow: discard, offloaded at once.
    const Bytes dns = udp("10.1.0.2", "10.2.0.2", 5353, 53);
    r.feed(dns);
    const PacketMeta dm = meta_of(r.dec, dns);
    r.stage->on_l7(dm.key, dm.hash, "DNS");
    r.stage->offload_sync();
    ops = off.take();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].first, dm.key);

    // Shunt:2, settled by its result: the verdict comes with packet 2.
    const Bytes sh = udp("10.8.0.1", "10.2.0.5", 1000, 2000);
    r.feed(sh);
    const PacketMeta hm = meta_of(r.dec, sh);
    r.stage->on_l7(hm.key, hm.hash, "");
    r.stage->offload_sync();
    EXPECT_TRUE(off.take().empty());
    r.feed(sh);
    r.stage->offload_sync();
    ops = off.take();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].first, hm.key);
    r.feed(sh); // still reaching user space (say, before the verdict): no second request
    r.stage->offload_sync();
    EXPECT_TRUE(off.take().empty());

    // Reload: the subnet discard becomes forward (its verdict goes), the
    // shunt stays; the reload pass runs at the next packet read.
    ASSERT_TRUE(store.reload_text("[global]\ndefault = forward\n[subnet]\n10.8.0.0/16 = shunt:2\n"
                                  "[protocol]\nDNS = discard\n"));
    r.feed(udp("10.1.0.9", "10.2.0.9", 7, 7));
    r.stage->offload_sync();
    ops = off.take();
    ASSERT_EQ(ops.size(), 1u);
    EXPECT_EQ(ops[0].first, sm.key);
    EXPECT_EQ(ops[0].second, UINT64_MAX);

    const auto st = r.stage->stats();
    EXPECT_EQ(st.offload_installs, 3u);
    EXPECT_EQ(st.offload_removals, 1u);
    EXPECT_EQ(st.offload_failures, 0u);
    EXPECT_EQ(st.offload_lost, 0u);
}

TEST(EgressStageOffload, WithoutProtocolRulesADiscardIsOffloadedAtOnceAndFailuresAreCounted)
{
    PolicyStore store(Policy::parse("[global]\ndefault = discard\n").value());
    RecordingOffload off;
    off.full = true;
    EgressStageConfig cfg;
    cfg.l7_feedback = true;
    cfg.offload = &off;
    cfg.max_flows = 64;
    cfg.idle_timeout_ns = 1000;
    Rig r(1, cfg, &store);
    const Bytes a = udp("10.1.0.1", "10.2.0.1", 1, 2);
    r.feed(a, 10);
    r.stage->offload_sync();
    EXPECT_EQ(off.take().size(), 1u);
    EXPECT_EQ(r.stage->stats().offload_failures, 1u);
    // The same key after the idle timeout: the flow went on in XDP, its
    // verdict is asked for again.
    r.feed(a, 5000);
    r.stage->offload_sync();
    EXPECT_EQ(off.take().size(), 1u);
    // Another flow reusing an idle slot removes the old flow's verdict.
    off.full = false;
    for (uint32_t i = 0; i < 2000; ++i)
        r.feed(udp(host(i + 100), "10.3.0.1", 1, 2), 100000);
    r.stage->offload_sync();
    size_t removals = 0;
    for (const auto& op : off.take())
        removals += op.second == UINT64_MAX && op.first == meta_of(r.dec, a).key;
    EXPECT_EQ(removals, 1u);
}

namespace {

// Records what the pipeline's L7 feedback hands to a tap.
class L7Tap final : public ReaderTap {
public:
    void packet(const RawPacket&, const PacketMeta*) noexcept override {}
    void burst_end() noexcept override {}
    void on_l7(const FlowKey& key, uint32_t hash, std::string_view l7) noexcept override
    {
        EXPECT_EQ(hash, flow_hash(key));
        if (!l7.empty())
            names[key] = std::string(l7);
        ++notes;
    }
    struct KeyLess {
        bool operator()(const FlowKey& a, const FlowKey& b) const { return std::memcmp(&a, &b, sizeof a) < 0; }
    };
    std::map<FlowKey, std::string, KeyLess> names;
    uint64_t notes = 0;
};

} // namespace

TEST(EgressStageL7, PipelineHandsWorkerDetectionsToTheReaderTap)
{
    const std::string cap = std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/netflix.pcap";
    if (!std::filesystem::exists(cap))
        GTEST_SKIP() << cap << " missing";
    for (uint16_t workers : {0, 1, 2}) {
        auto src = dataplane::open_pcap_file(cap);
        ASSERT_TRUE(src);
        L7Tap tap;
        PipelineConfig cfg;
        cfg.workers = workers;
        cfg.dpi.level = 1;
        cfg.tap = &tap;
        std::mutex mu;
        std::map<FlowKey, std::string, L7Tap::KeyLess> exported;
        auto p = Pipeline::create(cfg, [&](const FlowRecord& rec) {
            std::lock_guard g(mu);
            if (rec.l7.name[0] && !rec.l7.guessed)
                exported[rec.key] = rec.l7.name;
        });
        ASSERT_TRUE(p);
        const auto st = (*p)->run(*src.value());
        EXPECT_EQ(st.l7_notes_lost, 0u);
        EXPECT_EQ(st.l7_notes, tap.notes) << "workers " << workers;
        // Every detected flow was told to the tap, with its exported name
        // (DNS flows, TLS flows: some of each in this capture).
        EXPECT_GE(exported.size(), 20u) << "workers " << workers;
        for (const auto& [k, name] : exported)
            EXPECT_EQ(tap.names[k], name) << "workers " << workers;
        size_t dns = 0, tls = 0;
        for (const auto& [k, name] : tap.names) {
            dns += name.starts_with("DNS");
            tls += name.starts_with("TLS");
        }
        EXPECT_GT(dns, 0u);
        EXPECT_GT(tls, 0u);
    }
}
