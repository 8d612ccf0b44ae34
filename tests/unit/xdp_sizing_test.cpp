// AF_XDP ring and UMEM sizes: the defaults by queue count and RAM, given
// sizes kept, bad sizes refused with the accepted range.
#include <weir/dataplane/xdp_sizing.hpp>

#include <gtest/gtest.h>

using weir::dataplane::LiveOptions;
using weir::dataplane::xdp_sizing;
using weir::dataplane::XdpSizing;

namespace {

constexpr uint64_t GiB = uint64_t(1) << 30;

XdpSizing sized(const LiveOptions& o, uint32_t queues, uint64_t ram = 16 * GiB)
{
    auto r = xdp_sizing("eth1", o, queues, ram);
    EXPECT_TRUE(r) << r.error().message();
    return r ? r.value() : XdpSizing{};
}

std::string refused(const LiveOptions& o)
{
    auto r = xdp_sizing("eth1", o, 1, 16 * GiB);
    EXPECT_FALSE(r);
    if (r)
        return {};
    EXPECT_EQ(r.error().code, std::errc::invalid_argument);
    return r.error().message();
}

} // namespace

TEST(XdpSizing, OneQueueGetsLosslessRings)
{
    const XdpSizing s = sized(LiveOptions{}, 1);
    EXPECT_EQ(s.ring_size, 65536u);
    EXPECT_EQ(s.umem_frames, 65536u);
    EXPECT_EQ(s.frame_size, 4096u);
    EXPECT_EQ(s.umem_bytes(), uint64_t(256) << 20);
    EXPECT_TRUE(s.ring_default);
    EXPECT_TRUE(s.umem_default);
    EXPECT_EQ(s.describe(), "rings of 65536 entries, UMEM 65536 x 4096 B = 256 MiB per queue (1 queue, 256 MiB in all)");
    // 2048-byte frames: the same rings in half the memory.
    LiveOptions o;
    o.xdp_frame_size = 2048;
    EXPECT_EQ(sized(o, 1).umem_bytes(), uint64_t(128) << 20);
}

TEST(XdpSizing, QueuesShareTheBudgetDownToTheFormerDefaults)
{
    struct Case { uint32_t queues, ring, frames; };
    for (const Case& c : {Case{2, 32768, 32768}, Case{3, 16384, 16384}, Case{4, 16384, 16384}, Case{8, 8192, 8192},
                          Case{16, 4096, 8192}, Case{64, 4096, 8192}}) {
        const XdpSizing s = sized(LiveOptions{}, c.queues);
        EXPECT_EQ(s.ring_size, c.ring) << c.queues << " queues";
        EXPECT_EQ(s.umem_frames, c.frames) << c.queues << " queues";
        EXPECT_EQ(s.queues, c.queues);
    }
    EXPECT_EQ(sized(LiveOptions{}, 0).ring_size, 65536u); // unknown count: one queue
}

TEST(XdpSizing, RamBoundsTheDefaults)
{
    // 1 GiB: an eighth is 128 MiB, so one queue gets 32768 frames of 4096.
    EXPECT_EQ(sized(LiveOptions{}, 1, 1 * GiB).ring_size, 32768u);
    EXPECT_EQ(sized(LiveOptions{}, 1, 1 * GiB).umem_frames, 32768u);
    // 2 GiB: 256 MiB fits.
    EXPECT_EQ(sized(LiveOptions{}, 1, 2 * GiB).ring_size, 65536u);
    // Never below the former defaults, however small the machine.
    const XdpSizing tiny = sized(LiveOptions{}, 4, 64u << 20);
    EXPECT_EQ(tiny.ring_size, 4096u);
    EXPECT_EQ(tiny.umem_frames, 8192u);
    // RAM unknown: no bound.
    EXPECT_EQ(sized(LiveOptions{}, 1, 0).ring_size, 65536u);
}

TEST(XdpSizing, GivenSizesAreKept)
{
    LiveOptions o;
    o.xdp_ring_size = 2048;
    o.xdp_umem_frames = 4096;
    XdpSizing s = sized(o, 1);
    EXPECT_EQ(s.ring_size, 2048u);
    EXPECT_EQ(s.umem_frames, 4096u);
    EXPECT_FALSE(s.ring_default);
    EXPECT_FALSE(s.umem_default);
    // Kept on many queues and on a small machine too.
    s = sized(o, 64, 64u << 20);
    EXPECT_EQ(s.ring_size, 2048u);
    EXPECT_EQ(s.umem_frames, 4096u);

    // A given ring: the UMEM follows it (at least the former 8192 frames).
    o = LiveOptions{};
    o.xdp_ring_size = 131072;
    s = sized(o, 8);
    EXPECT_EQ(s.ring_size, 131072u);
    EXPECT_EQ(s.umem_frames, 131072u);
    EXPECT_TRUE(s.umem_default);
    o.xdp_ring_size = 1024;
    EXPECT_EQ(sized(o, 1).umem_frames, 8192u);

    // A given UMEM: the default ring is no larger than its frames.
    o = LiveOptions{};
    o.xdp_umem_frames = 20000;
    s = sized(o, 1);
    EXPECT_EQ(s.ring_size, 16384u);
    EXPECT_EQ(s.umem_frames, 20000u);
    EXPECT_TRUE(s.ring_default);
    o.xdp_umem_frames = 1u << 20;
    EXPECT_EQ(sized(o, 1).ring_size, 65536u);
    EXPECT_EQ(sized(o, 1, 1 * GiB).ring_size, 65536u); // the given UMEM is the user's call
}

TEST(XdpSizing, BadSizesAreRefusedWithTheRange)
{
    LiveOptions o;
    o.xdp_ring_size = 1000;
    EXPECT_NE(refused(o).find("ring size 1000 (a power of two from 64 to 1048576"), std::string::npos) << refused(o);
    o.xdp_ring_size = 32;
    EXPECT_NE(refused(o).find("ring size 32"), std::string::npos);
    o.xdp_ring_size = 1u << 21;
    EXPECT_NE(refused(o).find("ring size 2097152"), std::string::npos);
    EXPECT_NE(refused(o).find("xdp:eth1"), std::string::npos);

    o = LiveOptions{};
    o.xdp_umem_frames = 10;
    EXPECT_NE(refused(o).find("10 UMEM frames (at least 64, at most 4 GiB per queue: 1048576 frames"),
              std::string::npos)
        << refused(o);
    o.xdp_umem_frames = (1u << 20) + 1; // 4 GiB + 4 KiB
    EXPECT_NE(refused(o).find("1048577 UMEM frames"), std::string::npos);
    o.xdp_frame_size = 2048; // the same frame count fits in 2 KiB frames
    EXPECT_TRUE(xdp_sizing("eth1", o, 1, 16 * GiB));

    o = LiveOptions{};
    o.xdp_frame_size = 3000;
    EXPECT_NE(refused(o).find("frame size 3000 (2048 or 4096)"), std::string::npos);
}
