// weir's XDP program and its packet parser through BPF_PROG_RUN
// (bpf_prog_test_run_opts), with no traffic:
//  - flow_parse.h (run by the weir_parse_test program) builds byte for byte
//    the FlowKey the C++ decoder builds, on crafted Ethernet/VLAN/IPv4/IPv6
//    TCP/UDP/SCTP/ICMP frames, IPv4 options and fragments, IPv6 extension
//    headers, and rejects what the decoder rejects with the same reason;
//  - the fan-out hash is the same for both directions of a flow;
//  - weir_xdp, loaded by XdpProgram with every rodata configuration, counts
//    per RX queue and passes frames when no socket is registered.
// Needs root (CAP_BPF, CAP_NET_ADMIN) and a veth pair for RX queue ids.
#include <weir/engine/decoder.hpp>

#if WEIR_HAVE_AFXDP
#include <weir/dataplane/afxdp.hpp>
#include <weir/dataplane/packet_source.hpp>
#include <weir/dataplane/xdp_program.hpp>
#endif
#if WEIR_TEST_HAVE_PARSE_PROG
#include <weir/abi/xdp.h>
#include <weir/bpf/weir_parse_test.skel.h>
#endif

#include "netns.hpp"
#include "packet_builder.hpp"

#if WEIR_HAVE_AFXDP || WEIR_TEST_HAVE_PARSE_PROG
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#endif
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

namespace {

using namespace weir::test;

[[maybe_unused]] Bytes tcp4(const char* s, const char* d, uint16_t sp, uint16_t dp)
{
    return PacketBuilder().eth().ipv4(s, d).tcp(sp, dp).payload("abc").build();
}

#if WEIR_TEST_HAVE_PARSE_PROG

std::string key_str(const weir::FlowKey& k)
{
    std::string s;
    char buf[8];
    const auto* b = reinterpret_cast<const uint8_t*>(&k);
    for (size_t i = 0; i < sizeof(k); ++i) {
        std::snprintf(buf, sizeof(buf), "%02x%s", b[i], (i == 15 || i == 31 || i == 35 || i == 39) ? " " : "");
        s += buf;
    }
    return s;
}

class ParseProg {
public:
    static std::unique_ptr<ParseProg> open(std::string* why)
    {
        auto p = std::unique_ptr<ParseProg>(new ParseProg);
        p->skel_ = weir_parse_test__open_and_load();
        if (!p->skel_) {
            *why = "cannot load weir_parse_test (needs root / CAP_BPF): " + std::string(std::strerror(errno));
            return nullptr;
        }
        return p;
    }
    ~ParseProg()
    {
        if (skel_)
            weir_parse_test__destroy(skel_);
    }

    /// Runs the parser on one frame.
    weir_xdp_parse_result run(const Bytes& frame)
    {
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
                    .repeat = 1);
        const int rc = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.weir_parse_test), &o);
        EXPECT_EQ(rc, 0) << std::strerror(errno);
        EXPECT_EQ(o.retval, uint32_t(XDP_PASS));
        weir_xdp_parse_result r{};
        const uint32_t zero = 0;
        EXPECT_EQ(bpf_map__lookup_elem(skel_->maps.weir_parse_out, &zero, sizeof(zero), &r, sizeof(r), 0), 0);
        return r;
    }

private:
    ParseProg() = default;
    weir_parse_test* skel_ = nullptr;
};

struct Case {
    const char* what;
    Bytes frame;
    bool decap = true;  // decoder config: tunnels decapsulated
};

std::vector<Case> same_key_cases()
{
    std::vector<Case> c;
    c.push_back({"ipv4 tcp", tcp4("10.0.0.1", "10.0.0.2", 40000, 80)});
    c.push_back({"ipv4 tcp reverse", tcp4("10.0.0.2", "10.0.0.1", 80, 40000)});
    c.push_back({"ipv4 tcp same host, ports order", tcp4("10.0.0.7", "10.0.0.7", 5000, 22)});
    c.push_back({"ipv4 udp", PacketBuilder().eth().ipv4("192.168.1.9", "8.8.8.8").udp(5353, 53).payload("q").build()});
    c.push_back({"ipv4 udp padded frame",
                 PacketBuilder().eth().ipv4("172.16.0.1", "172.16.0.2").udp(1, 2).trailer(Bytes(18, 0xee)).build()});
    c.push_back({"ipv4 sctp", PacketBuilder().eth().ipv4("10.1.0.1", "10.1.0.2").sctp(2905, 2905).build()});
    c.push_back({"icmp echo request", PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").icmp(8, 0, 7, 1).build()});
    c.push_back({"icmp echo reply", PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1").icmp(0, 0, 7, 1).build()});
    c.push_back({"icmp timestamp reply", PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1").icmp(14, 0).build()});
    c.push_back({"icmp unreachable", PacketBuilder().eth().ipv4("10.0.0.9", "10.0.0.1").icmp(3, 1).build()});
    c.push_back({"ipv4 options (record route)",
                 PacketBuilder()
                     .eth()
                     .ipv4("10.0.0.3", "10.0.0.4")
                     .ipv4_options({7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0})
                     .udp(1000, 2000)
                     .payload("x")
                     .build()});
    c.push_back({"ipv4 first fragment",
                 PacketBuilder().eth().ipv4("10.0.0.5", "10.0.0.6").ip_id(77).frag(0, true).udp(3000, 4000).payload(
                     std::string(64, 'f')).build()});
    c.push_back({"ipv4 later fragment alone",
                 PacketBuilder().eth().ipv4("10.0.0.5", "10.0.0.6").ip_id(77).frag(72, false).ip_proto(17).payload(
                     std::string(40, 'g')).build()});
    c.push_back({"vlan ipv4 tcp", PacketBuilder().eth().vlan(42).ipv4("10.2.0.1", "10.2.0.2").tcp(1, 2).build()});
    c.push_back({"qinq: outer id kept",
                 PacketBuilder().eth().vlan(100, 0x88a8).vlan(200).ipv4("10.3.0.1", "10.3.0.2").udp(7, 8).build()});
    c.push_back({"old qinq tpid", PacketBuilder().eth().vlan(3000, 0x9100).ipv6("2001:db8::1", "2001:db8::2").udp(9, 10).build()});
    c.push_back({"ipv6 tcp", PacketBuilder().eth().ipv6("2001:db8::10", "2001:db8::2").tcp(443, 51000).build()});
    c.push_back({"ipv6 addresses differ in the low half",
                 PacketBuilder().eth().ipv6("2001:db8::1:2", "2001:db8::1:1").udp(5, 5).build()});
    c.push_back({"ipv6 udp", PacketBuilder().eth().ipv6("fe80::1", "ff02::fb").udp(5353, 5353).payload("m").build()});
    c.push_back({"icmpv6 echo request", PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").icmpv6(128, 0, 1, 1).build()});
    c.push_back({"icmpv6 echo reply", PacketBuilder().eth().ipv6("2001:db8::2", "2001:db8::1").icmpv6(129, 0, 1, 1).build()});
    c.push_back({"icmpv6 neighbour solicitation",
                 PacketBuilder().eth().ipv6("fe80::1", "ff02::1:ff00:2").icmpv6(135).payload(Bytes(20, 0)).build()});
    c.push_back({"ipv6 hop-by-hop + destination options",
                 PacketBuilder()
                     .eth()
                     .ipv6("2001:db8::a", "2001:db8::b")
                     .ipv6_ext(0, Bytes(6, 0))
                     .ipv6_ext(60, Bytes(14, 0))
                     .udp(111, 222)
                     .build()});
    c.push_back({"ipv6 first fragment",
                 PacketBuilder().eth().ipv6("2001:db8::c", "2001:db8::d").ipv6_frag(0, true, 9).udp(333, 444).payload(
                     std::string(32, 'p')).build()});
    c.push_back({"ipv6 later fragment alone",
                 PacketBuilder().eth().ipv6("2001:db8::c", "2001:db8::d").ipv6_frag(40, false, 9).ip_proto(17).payload(
                     std::string(24, 'q')).build()});
    c.push_back({"gre not decapsulated (decoder told the same)",
                 PacketBuilder().eth().ipv4("10.9.0.1", "10.9.0.2").gre(5).ipv4("192.0.2.1", "192.0.2.2").udp(1, 2).build(),
                 false});
    return c;
}

// Frames the decoder skips: the parser rejects them with the same reason.
std::vector<Case> rejected_cases()
{
    std::vector<Case> c;
    c.push_back({"arp", PacketBuilder().eth(kMacA, kMacB, 0x0806).payload(Bytes(28, 1)).build()});
    Bytes t = tcp4("10.0.0.1", "10.0.0.2", 1, 2);
    t.resize(14 + 20 + 10);
    c.push_back({"tcp header cut", t});
    Bytes ip = tcp4("10.0.0.1", "10.0.0.2", 1, 2);
    ip.resize(14 + 12);
    c.push_back({"ipv4 header cut", ip});
    Bytes v = tcp4("10.0.0.1", "10.0.0.2", 1, 2);
    v[14] = 0x35;  // version 3
    c.push_back({"bad ip version", v});
    // (Frames shorter than an Ethernet header cannot be fed to BPF_PROG_RUN.)
    c.push_back({"vlan tag cut", PacketBuilder().eth(kMacA, kMacB, 0x8100).payload(Bytes(2, 0)).build()});
    Bytes icmp = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").icmp(8).build();
    icmp.resize(14 + 20 + 3);
    c.push_back({"icmp header cut", icmp});
    return c;
}

std::string why_cant_run();

/// The parser test program, loaded for each test; skips without root or
/// when the kernel refuses it.
class XdpParse : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (auto w = why_cant_run(); !w.empty())
            GTEST_SKIP() << w;
        std::string why;
        prog = ParseProg::open(&why);
        if (!prog)
            GTEST_SKIP() << why;
    }
    std::unique_ptr<ParseProg> prog;
};

TEST_F(XdpParse, KeyEqualsDecoderKey)
{
    for (const Case& c : same_key_cases()) {
        weir::engine::DecoderConfig dc;
        dc.decap_tunnels = c.decap;
        weir::engine::Decoder dec(dc);
        weir::PacketMeta m{};
        ASSERT_TRUE(dec.decode(raw(c.frame), m)) << c.what;
        const weir_xdp_parse_result r = prog->run(c.frame);
        EXPECT_EQ(r.reason, uint32_t(WEIR_DROP_NONE)) << c.what;
        weir::FlowKey bpf;
        std::memcpy(static_cast<void*>(&bpf), &r.key, sizeof(bpf));
        EXPECT_TRUE(bpf == m.key) << c.what << "\n  bpf " << key_str(bpf) << "\n  c++ " << key_str(m.key);
    }
}

TEST_F(XdpParse, RejectsWhatTheDecoderRejects)
{
    for (const Case& c : rejected_cases()) {
        weir::engine::Decoder dec;
        weir::PacketMeta m{};
        ASSERT_FALSE(dec.decode(raw(c.frame), m)) << c.what;
        uint32_t reason = 0;
        for (size_t i = 0; i < weir::kDropReasonCount; ++i)
            if (dec.stats().drops.n[i])
                reason = uint32_t(i);
        const weir_xdp_parse_result r = prog->run(c.frame);
        EXPECT_NE(r.reason, uint32_t(WEIR_DROP_NONE)) << c.what;
        EXPECT_EQ(r.reason, reason) << c.what;
    }
}

// What flow_parse.h leaves to the decoder, by design (see its header).
TEST_F(XdpParse, DocumentedDifferences)
{
    EXPECT_EQ(prog->run(PacketBuilder().eth().vlan(1, 0x88a8).vlan(2).vlan(3).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build())
                  .reason,
              uint32_t(WEIR_DROP_TOO_MANY_ENCAPS));
    EXPECT_EQ(prog->run(PacketBuilder().eth().mpls({16}).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build()).reason,
              uint32_t(WEIR_DROP_NON_IP));
    // A tunnel is keyed by its outer datagram.
    const Bytes gre = PacketBuilder().eth().ipv4("10.9.0.1", "10.9.0.2").gre(5).ipv4("192.0.2.1", "192.0.2.2").udp(1, 2).build();
    const auto r = prog->run(gre);
    ASSERT_EQ(r.reason, uint32_t(WEIR_DROP_NONE));
    EXPECT_EQ(r.key.proto, 47);
    EXPECT_EQ(r.key.tunnel_type, 0);
    EXPECT_EQ(r.key.port_a, 0);
    weir::engine::Decoder dec;
    weir::PacketMeta m{};
    ASSERT_TRUE(dec.decode(raw(gre), m));
    EXPECT_EQ(m.key.tunnel_type, weir::TunnelType::Gre);
}

TEST_F(XdpParse, HashIsSymmetric)
{
    std::vector<uint32_t> seen;
    for (uint16_t p = 1000; p < 1016; ++p) {
        const auto a = prog->run(tcp4("10.0.0.1", "10.0.0.2", p, 80));
        const auto b = prog->run(tcp4("10.0.0.2", "10.0.0.1", 80, p));
        ASSERT_EQ(a.reason, 0u);
        EXPECT_EQ(a.hash, b.hash) << "port " << p;
        seen.push_back(a.hash % 4);
    }
    // 16 flows over 4 slots: the hash spreads them (all in one slot would
    // make fan-out useless).
    std::sort(seen.begin(), seen.end());
    EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 1);
}

#endif // WEIR_TEST_HAVE_PARSE_PROG

#if WEIR_HAVE_AFXDP || WEIR_TEST_HAVE_PARSE_PROG
std::string why_cant_run()
{
    if (geteuid() != 0)
        return "needs root (CAP_BPF) to load BPF programs";
    return {};
}
#endif

#if WEIR_HAVE_AFXDP

using weir::dataplane::XdpProgram;

// Runs weir_xdp on one frame as if it arrived on rx queue q of ifindex.
uint32_t run_on_queue(const XdpProgram& p, const Bytes& frame, uint32_t ifindex, uint32_t q)
{
    xdp_md ctx{};
    ctx.data_end = uint32_t(frame.size());
    ctx.ingress_ifindex = ifindex;
    ctx.rx_queue_index = q;
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
    const int rc = bpf_prog_test_run_opts(p.prog_fd(), &o);
    EXPECT_EQ(rc, 0) << "queue " << q << ": " << std::strerror(errno);
    return o.retval;
}

TEST(XdpProgram, LoadsWithEveryConfiguration)
{
    if (auto w = why_cant_run(); !w.empty())
        GTEST_SKIP() << w;
    for (uint32_t spq : {1u, 2u, 3u, 64u}) {
        for (uint32_t nq : {1u, 4u, 256u}) {
            auto p = XdpProgram::load({nq, spq});
            ASSERT_TRUE(p) << nq << " queues, " << spq << " sockets per queue: " << p.error().message();
            EXPECT_GT(p.value()->prog_id(), 0u);
            EXPECT_EQ(p.value()->mode(), weir::dataplane::XdpAttachMode::None);
        }
    }
    EXPECT_EQ(XdpProgram::load({0, 1}).error().code, std::errc::invalid_argument);
    EXPECT_EQ(XdpProgram::load({1, 0}).error().code, std::errc::invalid_argument);
    EXPECT_EQ(XdpProgram::load({257, 1}).error().code, std::errc::invalid_argument);
}

TEST(XdpProgram, CountsPerQueueAndPassesWithoutSocket)
{
    if (auto w = why_cant_run(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto veth = VethPair::create("wxp", 2, &why);
    if (!veth)
        GTEST_SKIP() << why;
    const uint32_t ifindex = if_nametoindex(veth->outer.c_str());
    ASSERT_NE(ifindex, 0u);
    for (uint32_t spq : {1u, 2u}) {
        auto pr = XdpProgram::load({2, spq});
        ASSERT_TRUE(pr) << pr.error().message();
        const XdpProgram& p = *pr.value();
        const Bytes a = tcp4("10.0.0.1", "10.0.0.2", 1234, 80);
        const Bytes b = PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(5, 6).payload("hello").build();
        const Bytes arp = PacketBuilder().eth(kMacA, kMacB, 0x0806).payload(Bytes(28, 1)).build();
        for (int i = 0; i < 3; ++i)
            EXPECT_EQ(run_on_queue(p, a, ifindex, 0), uint32_t(XDP_PASS));
        EXPECT_EQ(run_on_queue(p, b, ifindex, 1), uint32_t(XDP_PASS));
        EXPECT_EQ(run_on_queue(p, arp, ifindex, 1), uint32_t(XDP_PASS));

        const auto q0 = p.counters(0), q1 = p.counters(1);
        EXPECT_EQ(q0.packets, 3u);
        EXPECT_EQ(q0.bytes, 3 * a.size());
        EXPECT_EQ(q0.passed, 3u);
        EXPECT_EQ(q0.redirected, 0u);
        EXPECT_EQ(q0.redirect_failed, 0u);
        EXPECT_EQ(q1.packets, 2u);
        EXPECT_EQ(q1.bytes, b.size() + arp.size());
        EXPECT_EQ(q1.passed, 2u);
        // Fan-out parses: the ARP frame has no key.
        EXPECT_EQ(q1.unparsed, spq > 1 ? 1u : 0u);
        EXPECT_EQ(p.counters(2).packets, 0u);  // outside the map: zeros
    }
}

#if WEIR_TEST_HAVE_PARSE_PROG

// Sockets sharing a queue get the frames the parser's hash assigns them:
// a real capture replayed onto a one-queue veth with two sockets, each
// socket's count compared with the slots the BPF parser computes for the
// capture's frames (frames without a key go to slot 0).
TEST(XdpProgram, FanOutFollowsTheFlowHash)
{
    if (auto w = why_cant_run(); !w.empty())
        GTEST_SKIP() << w;
    const std::string pcap = std::string(WEIR_SHARED_DIR) + "/pcaps/ndpi/pcap/anyconnect-vpn.pcap";
    if (!have_tool("tcpreplay") || ::access(pcap.c_str(), R_OK) != 0)
        GTEST_SKIP() << "needs tcpreplay and " << pcap;
    std::string why;
    auto prog = ParseProg::open(&why);
    if (!prog)
        GTEST_SKIP() << why;
    auto veth = VethPair::create("wxf", 1, &why);
    if (!veth)
        GTEST_SKIP() << why;

    constexpr uint32_t kSockets = 3;
    std::array<uint64_t, kSockets> expected{};
    uint64_t frames = 0;
    {
        auto file = weir::dataplane::open_pcap_file(pcap);
        ASSERT_TRUE(file) << file.error().message();
        std::array<weir::RawPacket, 64> b;
        while (!file.value()->finished()) {
            const uint32_t n = file.value()->rx_burst(b.data(), uint32_t(b.size()));
            for (uint32_t i = 0; i < n; ++i) {
                const auto r = prog->run(Bytes(b[i].data, b[i].data + b[i].caplen));
                ++expected[r.reason == WEIR_DROP_NONE ? r.hash % kSockets : 0];
                ++frames;
            }
        }
    }

    weir::dataplane::LiveOptions o;
    o.xdp_sockets_per_queue = kSockets;
    auto src = weir::dataplane::open_afxdp(veth->outer, {}, o);
    ASSERT_TRUE(src) << src.error().message();
    ASSERT_EQ(veth->in_ns("tcpreplay -q -i " + veth->inner + " --topspeed " + pcap + " >/dev/null 2>&1"), 0);
    std::array<weir::RawPacket, 64> b;
    uint64_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got < frames && std::chrono::steady_clock::now() < deadline)
        got += src.value()->rx_burst(b.data(), uint32_t(b.size()));
    ASSERT_EQ(got, frames);
    const auto qs = src.value()->queue_stats();
    ASSERT_EQ(qs.size(), size_t(kSockets));
    for (uint32_t j = 0; j < kSockets; ++j) {
        EXPECT_EQ(qs[j].packets, expected[j]) << qs[j].name;
        EXPECT_GT(expected[j], 0u) << "slot " << j << ": a capture of " << frames << " frames should reach every socket";
    }
}

#endif // WEIR_TEST_HAVE_PARSE_PROG

#endif // WEIR_HAVE_AFXDP

} // namespace
