// weir::nics pure logic: the software Toeplitz hash against Microsoft's RSS
// verification suite, key symmetry, and the capture warnings derived from a
// NicInfo.
#include <weir/nics/nic.hpp>
#include <weir/nics/rss.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/ethtool.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using weir::nics::is_symmetric_key;
using weir::nics::kMicrosoftRssKey;
using weir::nics::symmetric_key;
using weir::nics::toeplitz_hash;

/// Hash input as the NIC reads it: src addr, dst addr, [src port, dst port].
std::vector<uint8_t> tuple(int af, const char* src, const char* dst, int sport = -1, int dport = -1)
{
    const size_t alen = af == AF_INET ? 4 : 16;
    std::vector<uint8_t> out(2 * alen);
    EXPECT_EQ(inet_pton(af, src, out.data()), 1) << src;
    EXPECT_EQ(inet_pton(af, dst, out.data() + alen), 1) << dst;
    if (sport >= 0) {
        out.push_back(static_cast<uint8_t>(sport >> 8));
        out.push_back(static_cast<uint8_t>(sport));
        out.push_back(static_cast<uint8_t>(dport >> 8));
        out.push_back(static_cast<uint8_t>(dport));
    }
    return out;
}

struct Vector {
    int af;
    const char* src;
    const char* dst;
    int sport, dport;
    uint32_t ip_hash;  ///< addresses only
    uint32_t l4_hash;  ///< addresses and ports
};

// "Verifying the RSS Hash Calculation", Microsoft RSS specification (also
// the Intel 82599 datasheet, 7.1.2.8.3 RSS Verification Suite).
constexpr Vector kVectors[] = {
    {AF_INET, "66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178},
    {AF_INET, "199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea},
    {AF_INET, "24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
    {AF_INET, "38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f},
    {AF_INET, "153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2},
    {AF_INET6, "3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d},
    {AF_INET6, "3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf},
    {AF_INET6, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x4b61e985,
     0x02d1feef},
};

TEST(Toeplitz, MicrosoftVerificationSuite)
{
    for (const Vector& v : kVectors) {
        SCOPED_TRACE(std::string(v.src) + " -> " + v.dst);
        EXPECT_EQ(toeplitz_hash(kMicrosoftRssKey, tuple(v.af, v.src, v.dst)), v.ip_hash);
        EXPECT_EQ(toeplitz_hash(kMicrosoftRssKey, tuple(v.af, v.src, v.dst, v.sport, v.dport)), v.l4_hash);
    }
}

TEST(Toeplitz, ShortKeyBitsCountAsZero)
{
    // With a 4-byte key only the first input bit's window is the whole key;
    // a one-bit input in the MSB yields exactly the key.
    const std::array<uint8_t, 4> key{0x12, 0x34, 0x56, 0x78};
    const std::array<uint8_t, 1> msb{0x80};
    EXPECT_EQ(toeplitz_hash(key, msb), 0x12345678u);
    // The last input bit sees the key shifted left by 7, zeros shifted in.
    const std::array<uint8_t, 1> lsb{0x01};
    EXPECT_EQ(toeplitz_hash(key, lsb), 0x12345678u << 7);
    EXPECT_EQ(toeplitz_hash(key, {}), 0u);
}

std::vector<uint8_t> random_tuple(std::mt19937& rng, size_t alen)
{
    std::vector<uint8_t> t(2 * alen + 4);
    for (auto& b : t)
        b = static_cast<uint8_t>(rng());
    return t;
}

std::vector<uint8_t> reversed(const std::vector<uint8_t>& t, size_t alen)
{
    std::vector<uint8_t> r(t.size());
    std::memcpy(r.data(), t.data() + alen, alen);
    std::memcpy(r.data() + alen, t.data(), alen);
    std::memcpy(r.data() + 2 * alen, t.data() + 2 * alen + 2, 2);
    std::memcpy(r.data() + 2 * alen + 2, t.data() + 2 * alen, 2);
    return r;
}

TEST(Toeplitz, SymmetricKeyHashesBothDirectionsAlike)
{
    std::mt19937 rng(20261123);
    for (size_t key_size : {40u, 52u}) {
        const auto key = symmetric_key(key_size);
        ASSERT_TRUE(is_symmetric_key(key));
        for (size_t alen : {4u, 16u}) {
            for (int i = 0; i < 2000; ++i) {
                const auto t = random_tuple(rng, alen);
                ASSERT_EQ(toeplitz_hash(key, t), toeplitz_hash(key, reversed(t, alen)))
                    << "key " << key_size << " address bytes " << alen;
            }
        }
    }
}

TEST(Toeplitz, StandardKeyIsAsymmetric)
{
    EXPECT_FALSE(is_symmetric_key(kMicrosoftRssKey));
    std::mt19937 rng(7);
    for (size_t alen : {4u, 16u}) {
        int differ = 0;
        const int n = 1000;
        for (int i = 0; i < n; ++i) {
            const auto t = random_tuple(rng, alen);
            differ += toeplitz_hash(kMicrosoftRssKey, t) != toeplitz_hash(kMicrosoftRssKey, reversed(t, alen));
        }
        // A 32-bit hash of unrelated inputs collides about once in 2^32.
        EXPECT_GE(differ, n - 2) << "address bytes " << alen;
    }
    // The first published vector, reversed, lands elsewhere.
    const Vector& v = kVectors[0];
    EXPECT_NE(toeplitz_hash(kMicrosoftRssKey, tuple(v.af, v.dst, v.src, v.dport, v.sport)), v.l4_hash);
}

TEST(Toeplitz, SymmetricKeyShape)
{
    const auto k = symmetric_key(40);
    ASSERT_EQ(k.size(), 40u);
    for (size_t i = 0; i < k.size(); i += 2) {
        EXPECT_EQ(k[i], 0x6d);
        EXPECT_EQ(k[i + 1], 0x5a);
    }
    EXPECT_FALSE(is_symmetric_key(std::vector<uint8_t>{}));
    EXPECT_FALSE(is_symmetric_key(std::vector<uint8_t>{0x6d, 0x5a, 0x6d}));
    auto broken = k;
    broken[37] ^= 1;
    EXPECT_FALSE(is_symmetric_key(broken));
    // Any repeated 16-bit pattern is symmetric, not only 0x6d5a.
    EXPECT_TRUE(is_symmetric_key(std::vector<uint8_t>{0xab, 0xcd, 0xab, 0xcd}));
}

TEST(NicNames, HashFieldsAndXdpFeatures)
{
    using namespace weir::nics;
    EXPECT_EQ(hash_fields_name(RXH_IP_SRC | RXH_IP_DST | RXH_L4_B_0_1 | RXH_L4_B_2_3), "ip-src ip-dst l4-0-1 l4-2-3");
    EXPECT_EQ(hash_fields_name(0), "none");
    HashFields h;
    h.support = Support::Supported;
    h.fields = RXH_IP_SRC | RXH_IP_DST;
    EXPECT_FALSE(h.four_tuple());
    h.fields |= RXH_L4_B_0_1 | RXH_L4_B_2_3;
    EXPECT_TRUE(h.four_tuple());
    h.support = Support::NotSupported;
    EXPECT_FALSE(h.four_tuple());

    EXPECT_EQ(xdp_feature_names(kXdpActBasic | kXdpActRedirect | kXdpActXskZeroCopy),
              (std::vector<std::string>{"basic", "redirect", "xsk-zerocopy"}));
    EXPECT_EQ(xdp_feature_names(uint64_t{1} << 9), (std::vector<std::string>{"bit9"}));
}

/// A NIC with nothing to complain about.
weir::nics::NicInfo good_nic()
{
    using namespace weir::nics;
    NicInfo n;
    n.name = "eth9";
    n.admin_up = n.lower_up = true;
    n.operstate = "up";
    n.promisc = true;
    n.rx_queues = 4;
    n.rss.support = Support::Supported;
    n.rss.hfunc = 1; // toeplitz
    n.rss.hash_function = "toeplitz";
    n.rss.key = symmetric_key(40);
    n.rss.key_symmetric = true;
    for (const char* f : {"tcp4", "udp4", "tcp6", "udp6"})
        n.rss.hash_fields.push_back({f, Support::Supported, RXH_IP_SRC | RXH_IP_DST | RXH_L4_B_0_1 | RXH_L4_B_2_3});
    n.offloads.support = Support::Supported;
    for (const char* f : {"rx-gro", "rx-lro", "tx-generic-segmentation", "tx-tcp-segmentation"})
        n.offloads.features.push_back({f, false, false, false});
    n.xdp.features_support = Support::Supported;
    n.xdp.features = kXdpActBasic | kXdpActRedirect | kXdpActXskZeroCopy;
    return n;
}

bool mentions(const std::vector<std::string>& w, const std::string& what)
{
    return std::any_of(w.begin(), w.end(), [&](const std::string& s) { return s.find(what) != std::string::npos; });
}

TEST(NicWarnings, CleanNicHasNone)
{
    const auto w = weir::nics::warnings(good_nic(), {4, true});
    EXPECT_TRUE(w.empty()) << w.front();
}

TEST(NicWarnings, EachProblemIsReported)
{
    using namespace weir::nics;
    const CapturePlan plan{4, true};
    {
        auto n = good_nic();
        n.rss.key.assign(kMicrosoftRssKey.begin(), kMicrosoftRssKey.end());
        n.rss.key_symmetric = false;
        EXPECT_TRUE(mentions(warnings(n, plan), "RSS is not symmetric"));
        n.rss.input_xfrm = 1; // symmetric-xor input transform fixes it
        EXPECT_FALSE(mentions(warnings(n, plan), "RSS is not symmetric"));
    }
    {
        auto n = good_nic();
        n.rss.hash_fields[1].fields = RXH_IP_SRC | RXH_IP_DST;
        EXPECT_TRUE(mentions(warnings(n, plan), "RSS for udp4 hashes on ip-src ip-dst"));
    }
    for (const char* f : {"rx-gro", "rx-lro", "tx-generic-segmentation", "tx-tcp-segmentation"}) {
        auto n = good_nic();
        for (auto& o : n.offloads.features)
            o.active = o.name == f;
        EXPECT_TRUE(mentions(warnings(n, plan), std::string(f) + " is on")) << f;
    }
    {
        auto n = good_nic();
        n.rx_queues = 2;
        EXPECT_TRUE(mentions(warnings(n, plan), "2 RX queues for 4 workers"));
        EXPECT_FALSE(mentions(warnings(n, {2, true}), "RX queues for"));
        EXPECT_FALSE(mentions(warnings(n, {0, true}), "RX queues for"));
    }
    {
        auto n = good_nic();
        n.rss.indir = {0, 1, 0, 1, 0, 1, 0, 1};
        EXPECT_EQ(n.rss.table_queues(), 2u);
        EXPECT_TRUE(mentions(warnings(n, plan), "spreads flows over 2 queues only, for 4 workers"));
        n.rss.indir = {0, 1, 2, 3, 3, 2, 1, 0};
        EXPECT_EQ(n.rss.table_queues(), 4u);
        EXPECT_FALSE(mentions(warnings(n, plan), "spreads flows"));
    }
    {
        auto n = good_nic();
        n.xdp.attached = XdpAttach::Driver;
        n.xdp.prog_id = 42;
        EXPECT_TRUE(mentions(warnings(n, plan), "already attached (driver mode, id 42)"));
        EXPECT_FALSE(mentions(warnings(n, {4, false}), "already attached"));
    }
    {
        auto n = good_nic();
        n.xdp.features = kXdpActBasic | kXdpActRedirect;
        EXPECT_TRUE(mentions(warnings(n, plan), "copy mode"));
        n.xdp.features = 0;
        EXPECT_TRUE(mentions(warnings(n, plan), "no native XDP: AF_XDP falls back to generic"));
        n.driver = "veth";
        EXPECT_TRUE(mentions(warnings(n, plan), "veth needs as many RX queues"));
        n.xdp.features_support = Support::Unknown;
        EXPECT_TRUE(mentions(warnings(n, plan), "XDP features unknown"));
        EXPECT_FALSE(mentions(warnings(n, plan), "no native XDP"));
    }
    {
        auto n = good_nic();
        n.promisc = false;
        EXPECT_TRUE(mentions(warnings(n, plan), "promiscuous mode is off"));
    }
    {
        auto n = good_nic();
        n.lower_up = false;
        n.operstate = "lowerlayerdown";
        EXPECT_TRUE(mentions(warnings(n, plan), "link is down"));
        n.admin_up = false;
        EXPECT_TRUE(mentions(warnings(n, plan), "administratively down"));
    }
}

} // namespace
