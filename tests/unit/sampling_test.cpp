// Packet sampling: the sampler's selection (systematic 1 in N takes exactly
// ceil(count / N); random takes one per window of N), the pipeline's
// accounting of sampled and unsampled packets with and without workers, and
// the sampling interval on the wire: NetFlow v5 header field, v9 options
// template and record (34/35), IPFIX PSAMP and 34/35 options templates and
// records, checked byte for byte.
#include <weir/core/packet_source.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/engine/sampler.hpp>
#include <weir/exporters/ipfix.hpp>
#include <weir/exporters/netflow.hpp>

#include "packet_builder.hpp"
#include <datagram_bytes.hpp>

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <vector>

namespace {

using namespace weir;
using namespace weir::engine;
using namespace weir::exporters;
using Bytes = std::vector<uint8_t>;

// --- the sampler -------------------------------------------------------------

TEST(PacketSampler, SystematicTakesExactlyCeilOfCountOverN)
{
    for (uint32_t n : {1u, 2u, 3u, 7u, 10u, 100u, 1000u}) {
        PacketSampler s({n, false, 0});
        uint64_t taken = 0;
        for (uint64_t c = 1; c <= 5000; ++c) {
            const bool t = s.take();
            // The 1st, N+1st, 2N+1st ... packet.
            ASSERT_EQ(t, (c - 1) % n == 0) << "n=" << n << " packet " << c;
            taken += t;
            ASSERT_EQ(taken, (c + n - 1) / n) << "n=" << n << " after " << c;
        }
    }
}

TEST(PacketSampler, IntervalZeroAndOneTakeEverything)
{
    for (uint32_t n : {0u, 1u}) {
        PacketSampler s({n, true, 5});
        EXPECT_FALSE(s.active());
        for (int i = 0; i < 100; ++i)
            ASSERT_TRUE(s.take());
    }
}

TEST(PacketSampler, RandomTakesOnePerWindowAtSpreadPositions)
{
    constexpr uint32_t n = 10;
    constexpr uint32_t windows = 20000;
    PacketSampler s({n, true, 12345});
    std::vector<uint32_t> at(n, 0);
    uint64_t taken = 0;
    for (uint32_t w = 0; w < windows; ++w) {
        uint32_t in_window = 0;
        for (uint32_t i = 0; i < n; ++i) {
            if (s.take()) {
                ++in_window;
                ++at[i];
            }
        }
        ASSERT_EQ(in_window, 1u) << "window " << w;
        taken += in_window;
        // Of c packets, floor(c/N) or ceil(c/N) are taken.
        const uint64_t c = uint64_t{w + 1} * n;
        ASSERT_EQ(taken, c / n);
    }
    // Every position of the window is picked about windows/N = 2000 times
    // (binomial sd 42: +-300 is 7 sd).
    for (uint32_t i = 0; i < n; ++i)
        EXPECT_NEAR(at[i], windows / n, 300) << "position " << i;
    // A partial window: floor or ceil.
    PacketSampler p({n, true, 99});
    uint64_t t = 0;
    for (uint32_t c = 1; c <= 1234; ++c) {
        t += p.take();
        ASSERT_GE(t, c / n);
        ASSERT_LE(t, (c + n - 1) / n);
    }
}

TEST(PacketSampler, RandomSeedsGiveDifferentSelections)
{
    PacketSampler a({16, true, 1}), b({16, true, 2});
    int differ = 0;
    for (int i = 0; i < 16 * 64; ++i)
        differ += a.take() != b.take();
    EXPECT_GT(differ, 0);
}

// --- the pipeline --------------------------------------------------------------

class MemorySource final : public PacketSource {
public:
    explicit MemorySource(std::vector<Bytes> frames) : frames_(std::move(frames)) {}
    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        uint32_t i = 0;
        for (; i < n && pos_ < frames_.size(); ++i, ++pos_) {
            const Bytes& f = frames_[pos_];
            out[i] = RawPacket{f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()),
                               kT0 + pos_ * 1000, 1};
        }
        return i;
    }
    bool finished() const noexcept override { return pos_ >= frames_.size(); }
    std::optional<Error> error() const override { return std::nullopt; }
    SourceStats stats() const noexcept override { return {}; }
    std::vector<uint32_t> linktypes() const override { return {1}; }
    std::string describe() const override { return "memory"; }
    static constexpr uint64_t kT0 = 1700000000ULL * 1000000000ULL;

private:
    std::vector<Bytes> frames_;
    size_t pos_ = 0;
};

TEST(PipelineSampling, FlowsCountOnlySampledPacketsAndTheRestIsCounted)
{
    // 8 UDP flows, 1000 keyed packets of 60 bytes in all, and 37 ARP frames
    // (not keyed: never candidates for sampling).
    std::vector<Bytes> frames;
    uint64_t keyed = 0, keyed_bytes = 0;
    for (int i = 0; i < 1037; ++i) {
        test::PacketBuilder b;
        if (i % 28 == 27) {
            frames.push_back(b.eth(test::kMacA, test::kMacB, 0x0806).payload(std::string(46, 'a')).build());
            continue;
        }
        const std::string src = "10.0.0." + std::to_string(1 + i % 8);
        frames.push_back(b.eth().ipv4(src, "192.0.2.1").udp(static_cast<uint16_t>(5000 + i % 8), 53).payload("xx").build());
        ++keyed;
        keyed_bytes += frames.back().size();
    }
    ASSERT_EQ(keyed, 1000u);
    for (bool random : {false, true}) {
        for (uint16_t workers : {0, 1, 3}) {
            PipelineConfig cfg;
            cfg.workers = workers;
            cfg.sampling = {7, random, 42};
            uint64_t flow_packets = 0, flow_bytes = 0;
            std::mutex mu;
            auto p = Pipeline::create(cfg, [&](const FlowRecord& r) {
                std::lock_guard g(mu);
                flow_packets += r.dir[0].packets + r.dir[1].packets;
                flow_bytes += r.dir[0].bytes + r.dir[1].bytes;
            });
            ASSERT_TRUE(p.ok()) << p.error().message();
            MemorySource src(frames);
            const PipelineStats st = p.value()->run(src);
            const std::string what = std::string(random ? "random" : "systematic") + " workers " + std::to_string(workers);
            if (!random)
                EXPECT_EQ(flow_packets, (keyed + 6) / 7) << what; // ceil(1000 / 7) = 143
            else
                EXPECT_TRUE(flow_packets == keyed / 7 || flow_packets == (keyed + 6) / 7) << what << ": " << flow_packets;
            EXPECT_EQ(st.decoded, flow_packets) << what;
            EXPECT_EQ(st.unsampled, keyed - flow_packets) << what;
            EXPECT_EQ(st.unsampled_bytes + flow_bytes, keyed_bytes) << what;
            EXPECT_EQ(st.packets, 1037u) << what;
        }
    }
}

// --- on the wire ------------------------------------------------------------------

using test::Be;
using test::Collect;
using test::rd16;
using test::rd32;

constexpr uint64_t kSec = 1000000000ULL;
const ExportClock kClock{1700000010ULL * kSec, 1700000000ULL * kSec};

FlowRecord udp4()
{
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 17;
    r.key.addr_a = {198, 51, 100, 2};
    r.key.addr_b = {192, 0, 2, 1};
    r.key.port_a = 53;
    r.key.port_b = 40000;
    r.client_is_a = 0;
    r.dir[0] = {3, 300, 1700000001ULL * kSec, 1700000002ULL * kSec, 0, 64, 64, 0};
    r.dir[1] = {2, 500, 1700000001ULL * kSec, 1700000002ULL * kSec, 0, 60, 60, 0};
    r.end_reason = EndReason::IdleTimeout;
    return r;
}

std::vector<Bytes> encode(ExportFormat f, const EncoderOptions& o, int flows = 1)
{
    auto e = make_encoder(f, o);
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message());
    Collect c;
    for (int i = 0; i < flows; ++i) {
        e.value()->add(udp4(), kClock, c);
        e.value()->flush(kClock, c);
    }
    return c.d;
}

/// The sets of a v9/IPFIX datagram, in order, whole (header included).
std::vector<Bytes> sets(const Bytes& d, std::size_t header)
{
    std::vector<Bytes> out;
    for (std::size_t at = header; at + 4 <= d.size();) {
        const uint16_t len = rd16(d, at + 2);
        if (len < 4 || at + len > d.size()) {
            ADD_FAILURE() << "bad set length " << len << " at " << at;
            break;
        }
        out.emplace_back(d.begin() + static_cast<long>(at), d.begin() + static_cast<long>(at + len));
        at += len;
    }
    return out;
}

TEST(SamplingWire, NetflowV5HeaderCarriesModeAndInterval)
{
    EncoderOptions o;
    EXPECT_EQ(rd16(encode(ExportFormat::NetflowV5, o).at(0), 22), 0x0000);
    o.sampling_interval = 1; // not sampled
    EXPECT_EQ(rd16(encode(ExportFormat::NetflowV5, o).at(0), 22), 0x0000);
    o.sampling_interval = 10;
    const Bytes d = encode(ExportFormat::NetflowV5, o).at(0);
    EXPECT_EQ(d[22], 0x40); // mode 01: deterministic
    EXPECT_EQ(d[23], 0x0a);
    // The records keep the sampled counters (the collector scales).
    EXPECT_EQ(rd32(d, 24 + 16), 3u);
    EXPECT_EQ(rd32(d, 24 + 20), 300u);
    o.sampling_random = true;
    o.sampling_interval = 100;
    EXPECT_EQ(rd16(encode(ExportFormat::NetflowV5, o).at(0), 22), 0x8064); // mode 10: random
    o.sampling_interval = 16383;
    EXPECT_EQ(rd16(encode(ExportFormat::NetflowV5, o).at(0), 22), 0xbfff);
    o.sampling_interval = 16384;
    auto bad = make_encoder(ExportFormat::NetflowV5, o);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find("16383"), std::string::npos) << bad.error().message();
}

TEST(SamplingWire, NetflowV9OptionsTemplateAndRecord)
{
    EncoderOptions o;
    o.domain_id = 0x01020304;
    o.biflow = BiflowMode::InOut; // base 258: sampling template 258 + 40
    o.sampling_interval = 10;
    const auto ds = encode(ExportFormat::NetflowV9, o, 2);
    ASSERT_EQ(ds.size(), 2u);
    const auto s = sets(ds[0], v9::kHeaderSize);
    ASSERT_EQ(s.size(), 4u); // templates, options template, options data, flow data
    EXPECT_EQ(rd16(s[0], 0), v9::kTemplateFlowSetId);
    const Bytes tmpl = Be{}.u16(1).u16(24).u16(298).u16(4).u16(8)
        .u16(1).u16(4).u16(34).u16(4).u16(35).u16(1).zeros(2).b;
    EXPECT_EQ(s[1], tmpl);
    const Bytes rec = Be{}.u16(298).u16(16).u32(0x01020304).u32(10).u8(1).zeros(3).b;
    EXPECT_EQ(s[2], rec);
    EXPECT_EQ(rd16(s[3], 0), 258);
    // Header count: 2 templates + options template + options record + flow record.
    EXPECT_EQ(rd16(ds[0], 2), 5);
    // The next datagram (no refresh due) has the flow only.
    EXPECT_EQ(sets(ds[1], v9::kHeaderSize).size(), 1u);
    EXPECT_EQ(rd16(ds[1], 2), 1);

    o.sampling_random = true;
    o.sampling_interval = 1000;
    const auto r = sets(encode(ExportFormat::NetflowV9, o).at(0), v9::kHeaderSize);
    EXPECT_EQ(r[2], Be{}.u16(298).u16(16).u32(0x01020304).u32(1000).u8(2).zeros(3).b);

    // No sampling: no options at all (options_records is off).
    o.sampling_interval = 0;
    EXPECT_EQ(sets(encode(ExportFormat::NetflowV9, o).at(0), v9::kHeaderSize).size(), 2u);
}

TEST(SamplingWire, IpfixPsampAndOlderOptionsRecords)
{
    EncoderOptions o;
    o.domain_id = 7;
    o.sampling_interval = 10; // rfc5103: base 256, sampling templates 296/297
    const auto ds = encode(ExportFormat::Ipfix, o, 2);
    ASSERT_EQ(ds.size(), 2u);
    const auto s = sets(ds[0], ipfix::kHeaderSize);
    ASSERT_EQ(s.size(), 6u);
    EXPECT_EQ(rd16(s[0], 0), ipfix::kTemplateSetId);
    EXPECT_EQ(s[1], Be{}.u16(3).u16(26).u16(296).u16(4).u16(1)
                        .u16(149).u16(4).u16(304).u16(2).u16(305).u16(4).u16(306).u16(4).b);
    EXPECT_EQ(s[2], Be{}.u16(3).u16(22).u16(297).u16(3).u16(1)
                        .u16(149).u16(4).u16(34).u16(4).u16(35).u16(1).b);
    // Systematic count-based: 1 packet selected, then 9 skipped.
    EXPECT_EQ(s[3], Be{}.u16(296).u16(18).u32(7).u16(1).u32(1).u32(9).b);
    EXPECT_EQ(s[4], Be{}.u16(297).u16(13).u32(7).u32(10).u8(1).b);
    EXPECT_EQ(rd16(s[5], 0), 256);
    // Sequence numbers count the two options data records (RFC 7011 s.3.1).
    EXPECT_EQ(rd32(ds[0], 8), 0u);
    EXPECT_EQ(rd32(ds[1], 8), 3u);

    o.sampling_random = true;
    o.sampling_interval = 64;
    const auto r = sets(encode(ExportFormat::Ipfix, o).at(0), ipfix::kHeaderSize);
    ASSERT_EQ(r.size(), 6u);
    // Random n-out-of-N with n = 1: samplingSize 1, samplingPopulation N.
    EXPECT_EQ(r[1], Be{}.u16(3).u16(26).u16(296).u16(4).u16(1)
                        .u16(149).u16(4).u16(304).u16(2).u16(309).u16(4).u16(310).u16(4).b);
    EXPECT_EQ(r[3], Be{}.u16(296).u16(18).u32(7).u16(3).u32(1).u32(64).b);
    EXPECT_EQ(r[4], Be{}.u16(297).u16(13).u32(7).u32(64).u8(2).b);
}

TEST(SamplingWire, SentAgainWithEveryTemplateRefresh)
{
    EncoderOptions o;
    o.sampling_interval = 5;
    o.template_refresh_packets = 2;
    const auto ds = encode(ExportFormat::Ipfix, o, 5);
    ASSERT_EQ(ds.size(), 5u);
    for (std::size_t i = 0; i < ds.size(); ++i) {
        const bool announce = i % 2 == 0;
        EXPECT_EQ(sets(ds[i], ipfix::kHeaderSize).size(), announce ? 6u : 1u) << "datagram " << i;
    }
}

TEST(SamplingWire, OptionsSpillIntoTheNextDatagramAtSmallMtu)
{
    // v9 at an MTU that holds the header, templates and one record but not
    // the sampling sets too: they go on in the next datagram, whole.
    EncoderOptions o;
    o.biflow = BiflowMode::InOut;
    o.sampling_interval = 3;
    auto probe = make_encoder(ExportFormat::NetflowV9, o);
    ASSERT_TRUE(probe.ok());
    const auto full = encode(ExportFormat::NetflowV9, o).at(0);
    o.mtu = static_cast<uint32_t>(full.size() - 8);
    const auto ds = encode(ExportFormat::NetflowV9, o);
    ASSERT_GE(ds.size(), 2u);
    std::map<uint16_t, int> ids;
    for (const auto& d : ds) {
        EXPECT_LE(d.size(), o.mtu);
        for (const auto& s : sets(d, v9::kHeaderSize))
            ++ids[rd16(s, 0)];
    }
    EXPECT_EQ(ids[1], 1);
    EXPECT_EQ(ids[298], 1);
    EXPECT_EQ(ids[258], 1);
}

} // namespace
