// EgressStage kernel egress (EgressStageConfig::divert) without a network:
// frames built and decoded by the real decoder, outputs that record what
// they were given, an offload that records the verdicts asked for.
#include <weir/engine/decoder.hpp>
#include <weir/engine/egress_stage.hpp>
#include <weir/engine/policy.hpp>

#include <packet_builder.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

using namespace weir;
using namespace weir::engine;
using namespace weir::test;

namespace {

class RecordingOutput final : public EgressOutput {
public:
    void send(const uint8_t* data, uint32_t len) noexcept override { frames.emplace_back(data, data + len); }
    void flush() noexcept override {}
    EgressCounters counters() const noexcept override
    {
        EgressCounters c;
        c.packets = frames.size();
        return c;
    }
    std::string describe() const override { return "recording"; }
    std::vector<Bytes> frames;
};

enum class Op { Drop, Divert, Remove };

struct Call {
    Op op;
    FlowKey key;
    uint32_t egress;
};

class RecordingOffload final : public EgressOffload {
public:
    Result<bool> install(const FlowKey& key, uint64_t) override { return record({Op::Drop, key, 0}); }
    Result<bool> divert(const FlowKey& key, uint32_t egress, uint64_t) override
    {
        return record({Op::Divert, key, egress});
    }
    Result<bool> remove(const FlowKey& key) override { return record({Op::Remove, key, 0}); }
    std::vector<Call> take()
    {
        std::lock_guard g(mu);
        return std::exchange(calls, {});
    }
    std::mutex mu;
    std::vector<Call> calls;
    bool full = false;

private:
    Result<bool> record(Call c)
    {
        std::lock_guard g(mu);
        calls.push_back(c);
        if (full && c.op != Op::Remove)
            return from_errno(ENOSPC, "table full");
        return true;
    }
};

struct Rig {
    Rig(size_t n, EgressStageConfig cfg, const PolicyStore* store = nullptr)
    {
        outs.resize(n);
        std::vector<EgressOutput*> ptrs;
        for (auto& o : outs)
            ptrs.push_back(&o);
        for (size_t i = 0; i < n; ++i)
            cfg.names.push_back("eg" + std::to_string(i));
        cfg.offload = &off;
        auto s = EgressStage::create(cfg, ptrs, store);
        EXPECT_TRUE(s) << (s ? "" : s.error().message());
        stage = std::move(s.value());
    }
    PacketMeta feed(const Bytes& frame, uint64_t ts_ns = 1)
    {
        RawPacket rp = raw(frame, lt::kEthernet, ts_ns);
        PacketMeta m;
        EXPECT_TRUE(dec.decode(rp, m));
        stage->packet(rp, &m);
        stage->burst_end();
        return m;
    }
    // The egress whose frame count grew by one since the last call, or -1.
    int last_egress()
    {
        int hit = -1;
        for (size_t i = 0; i < outs.size(); ++i) {
            if (outs[i].frames.size() != seen[i])
                hit = static_cast<int>(i);
            seen[i] = outs[i].frames.size();
        }
        return hit;
    }
    std::vector<Call> calls()
    {
        stage->offload_sync();
        return off.take();
    }
    std::vector<RecordingOutput> outs;
    size_t seen[8] = {};
    RecordingOffload off;
    std::unique_ptr<EgressStage> stage;
    Decoder dec;
};

Bytes udp(const std::string& s, const std::string& d, uint16_t sp, uint16_t dp)
{
    return PacketBuilder().eth().ipv4(s, d).udp(sp, dp).payload(Bytes(20, 0x42)).build();
}

EgressStageConfig divert_cfg()
{
    EgressStageConfig c;
    c.divert = true;
    c.max_flows = 4096;
    return c;
}

} // namespace

TEST(EgressDivert, ForwardedFlowsAreDivertedToTheEgressUserSpaceChose)
{
    for (uint8_t tuple : {uint8_t{5}, uint8_t{2}}) {
        EgressStageConfig cfg = divert_cfg();
        cfg.hash_tuple = tuple;
        Rig r(3, cfg); // no policy: all forward, with per-flow state
        std::vector<int> per_egress(3, 0);
        for (uint16_t i = 0; i < 60; ++i) {
            const Bytes f = udp("10.1.0." + std::to_string(1 + i % 20), "10.2.0.1", uint16_t(1000 + i), 53);
            const PacketMeta m = r.feed(f);
            const int eg = r.last_egress();
            ASSERT_GE(eg, 0);
            ++per_egress[size_t(eg)];
            auto c = r.calls();
            ASSERT_EQ(c.size(), 1u) << "flow " << i;
            EXPECT_EQ(c[0].op, Op::Divert);
            EXPECT_EQ(c[0].key, m.key);
            EXPECT_EQ(c[0].egress, uint32_t(eg)) << "the kernel must use the egress user space used";
            // The other direction (a TCP control packet, a packet before the
            // verdict took hold): same egress, no second request.
            r.feed(udp("10.2.0.1", "10.1.0." + std::to_string(1 + i % 20), 53, uint16_t(1000 + i)));
            EXPECT_EQ(r.last_egress(), eg);
            EXPECT_TRUE(r.calls().empty());
        }
        for (int n : per_egress)
            EXPECT_GT(n, 0) << "hash " << int(tuple);
        const auto st = r.stage->stats();
        EXPECT_EQ(st.divert_installs, 60u);
        EXPECT_EQ(st.divert_failures, 0u);
        EXPECT_EQ(st.offload_installs, 0u);
        EXPECT_EQ(st.delivered, 120u);
    }
}

TEST(EgressDivert, AFullTableLeavesTheFlowOnUserSpaceTxCounted)
{
    Rig r(2, divert_cfg());
    r.off.full = true;
    const Bytes f = udp("10.1.0.1", "10.2.0.1", 1, 2);
    r.feed(f);
    const int eg = r.last_egress();
    EXPECT_EQ(r.calls().size(), 1u);
    for (int i = 0; i < 5; ++i) {
        r.feed(f);
        EXPECT_EQ(r.last_egress(), eg);
    }
    EXPECT_TRUE(r.calls().empty()) << "a refused flow is not asked again at every packet";
    const auto st = r.stage->stats();
    EXPECT_EQ(st.divert_failures, 1u);
    EXPECT_EQ(st.divert_installs, 0u);
    EXPECT_EQ(st.delivered, 6u);
    // Its verdict accounting is not kernel egress.
    r.stage->kernel_account(r.feed(f).key, 10, 1000);
    EXPECT_EQ(r.stage->stats().kernel_packets, 0u);
}

TEST(EgressDivert, PolicyDecidesWhatIsDivertedAndReloadReplacesOrRemoves)
{
    PolicyStore store(Policy::parse("[global]\ndefault = forward\n[subnet]\n10.9.0.0/16 = discard\n"
                                    "10.8.0.0/16 = egress:eg1\n10.7.0.0/16 = slice:l4\n10.6.0.0/16 = shunt:2\n")
                          .value());
    Rig r(2, divert_cfg(), &store);
    const PacketMeta steer = r.feed(udp("10.8.0.1", "10.2.0.1", 1, 2));
    EXPECT_EQ(r.last_egress(), 1);
    auto c = r.calls();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].op, Op::Divert);
    EXPECT_EQ(c[0].egress, 1u);

    const PacketMeta drop = r.feed(udp("10.9.0.1", "10.2.0.1", 1, 2));
    c = r.calls();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].op, Op::Drop);

    // A slice needs user space (XDP does not cut frames): never diverted.
    const PacketMeta sl = r.feed(udp("10.7.0.1", "10.2.0.1", 1, 2));
    r.feed(udp("10.7.0.1", "10.2.0.1", 1, 2));
    EXPECT_TRUE(r.calls().empty());

    // A shunt delivers its K packets in user space, then DROP (not DIVERT).
    const Bytes sh = udp("10.6.0.1", "10.2.0.1", 1, 2);
    const PacketMeta shm = r.feed(sh);
    EXPECT_TRUE(r.calls().empty());
    r.feed(sh);
    c = r.calls();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].op, Op::Drop);

    // Kernel-egress accounting counts the diverted flow only.
    r.stage->kernel_account(steer.key, 7, 700);
    r.stage->kernel_account(drop.key, 5, 500);
    r.stage->kernel_account(sl.key, 3, 300);
    EXPECT_EQ(r.stage->stats().kernel_packets, 7u);
    EXPECT_EQ(r.stage->stats().kernel_bytes, 700u);

    // Reload: the steered subnet is discarded now (its DIVERT is replaced by
    // a DROP: the server replaces its own entries), the discarded one goes
    // to egress 0 (DROP replaced by DIVERT), the rest forward.
    ASSERT_TRUE(store.reload_text("[global]\ndefault = forward\n[subnet]\n10.8.0.0/16 = discard\n"
                                  "10.9.0.0/16 = egress:0\n"));
    r.feed(udp("10.1.0.99", "10.2.0.99", 9, 9)); // the reload pass runs at the next packet
    c = r.calls();
    bool steer_dropped = false, drop_diverted = false, shunt_diverted = false;
    for (const Call& x : c) {
        steer_dropped |= x.key == steer.key && x.op == Op::Drop;
        drop_diverted |= x.key == drop.key && x.op == Op::Divert && x.egress == 0;
        shunt_diverted |= x.key == shm.key && x.op == Op::Divert;
    }
    EXPECT_TRUE(steer_dropped);
    EXPECT_TRUE(drop_diverted);
    EXPECT_TRUE(shunt_diverted) << "the shunt is a forward now";
    // The flow that lost its DIVERT is no longer kernel egress.
    r.stage->kernel_account(steer.key, 1, 100);
    r.stage->kernel_account(drop.key, 2, 200);
    EXPECT_EQ(r.stage->stats().kernel_packets, 9u);

    // Reload to a slice: offloaded flows lose their verdicts.
    ASSERT_TRUE(store.reload_text("[global]\ndefault = slice:l3\n"));
    r.feed(udp("10.1.0.98", "10.2.0.98", 9, 9));
    c = r.calls();
    size_t removes = 0;
    for (const Call& x : c)
        removes += x.op == Op::Remove;
    EXPECT_GE(removes, 3u) << "steer, drop and the shunt past K lose their verdicts";
}

TEST(EgressDivert, WithProtocolRulesAFlowIsDivertedOnlyOnceItsL7ResultCame)
{
    PolicyStore store(Policy::parse("[global]\ndefault = forward\n[protocol]\nDNS = discard\nTLS = egress:1\n").value());
    EgressStageConfig cfg = divert_cfg();
    cfg.l7_feedback = true;
    Rig r(2, cfg, &store);
    const Bytes f = udp("10.1.0.1", "10.2.0.1", 1000, 443);
    const PacketMeta m = r.feed(f);
    r.feed(f);
    EXPECT_TRUE(r.calls().empty()) << "DPI still needs the packets";
    r.stage->on_l7(m.key, m.hash, "TLS");
    auto c = r.calls();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].op, Op::Divert);
    EXPECT_EQ(c[0].egress, 1u);

    const Bytes g = udp("10.1.0.2", "10.2.0.1", 1000, 80);
    const PacketMeta n = r.feed(g);
    r.stage->on_l7(n.key, n.hash, ""); // given up: forward, settled
    c = r.calls();
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].op, Op::Divert);
    EXPECT_EQ(c[0].egress, uint32_t(r.stage->balance(n)));
}

TEST(EgressDivert, OffWithoutDivertNothingForwardedIsOffloaded)
{
    PolicyStore store(Policy::parse("[global]\ndefault = forward\n").value());
    EgressStageConfig cfg;
    cfg.max_flows = 64;
    Rig r(2, cfg, &store);
    r.feed(udp("10.1.0.1", "10.2.0.1", 1, 2));
    EXPECT_TRUE(r.calls().empty());
    EXPECT_EQ(r.stage->stats().divert_installs, 0u);
}

TEST(EgressDivert, ConfigErrors)
{
    RecordingOutput o;
    EgressStageConfig cfg;
    cfg.divert = true; // without an offload
    EXPECT_FALSE(EgressStage::create(cfg, {&o}));
}
