// The IDS kernel egress's DIVERT verdicts inside weir's XDP program
// (weir_xdp.bpf.c), by BPF_PROG_RUN: with WEIR_VERDICT_F_TCP_CONTROL a
// DIVERT captures TCP SYN, FIN and RST as usual (weir's reader sends them to
// the same egress, and its flow table sees them) and redirects every other
// frame of the flow, both directions; without the flag (an IDS's DIVERT)
// every frame is redirected, control packets included. Counters: only the
// redirected frames are undelivered, the captured ones count as forward.
// Needs root (CAP_BPF, CAP_NET_ADMIN).
#include <weir/engine/decoder.hpp>

#if WEIR_HAVE_AFXDP
#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>
#include <weir/dataplane/verdict_map.hpp>
#include <weir/dataplane/xdp_program.hpp>

#include <linux/bpf.h>
#endif

#include "netns.hpp"
#include "packet_builder.hpp"
#if WEIR_HAVE_AFXDP
#include "xdp_verdict_rig.hpp"
#endif

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace {

using namespace weir::test;

#if WEIR_HAVE_AFXDP

using weir::dataplane::Verdict;
using weir::dataplane::VerdictMap;
using weir::dataplane::XdpProgram;

TEST(XdpDivertControl, TcpControlStaysInTheCaptureOnlyWithTheFlag)
{
    if (auto w = why_cant_run(); !w.empty())
        GTEST_SKIP() << w;
    std::string why;
    auto eg = VethPair::create("eodc", 1, &why); // a real ifindex for the egress DEVMAP
    if (!eg)
        GTEST_SKIP() << why;
    std::optional<VerdictMap> vm;
    ASSERT_EQ(make_verdict_maps(vm, 1024), "");
    XdpProgram::Config c;
    c.verdict_map_fd = vm->fd();
    c.subnet_verdict_map_fd = vm->subnet_fd();
    c.egress_ifaces = {eg->outer};
    auto p = XdpProgram::load(c);
    ASSERT_TRUE(p) << p.error().message();
    const int fd = p.value()->prog_fd();

    // Policy DIVERT (flag set) on one TCP and one UDP flow; an IDS DIVERT
    // (no flag) on another TCP flow.
    const char* a = "10.0.0.1";
    const char* b = "10.0.0.2";
    const Bytes syn = tcp4(a, b, 1000, 80, weir::kTcpSyn);
    const Bytes synack = tcp4(b, a, 80, 1000, weir::kTcpSyn | weir::kTcpAck);
    const Bytes data = tcp4(a, b, 1000, 80, weir::kTcpAck | weir::kTcpPsh);
    const Bytes data_rev = tcp4(b, a, 80, 1000, weir::kTcpAck);
    const Bytes fin = tcp4(a, b, 1000, 80, weir::kTcpFin | weir::kTcpAck);
    const Bytes rst = tcp4(b, a, 80, 1000, weir::kTcpRst);
    const Bytes udp = udp4(a, b, 2000, 53);
    const Bytes api_syn = tcp4(a, b, 1001, 80, weir::kTcpSyn);
    const Bytes api_data = tcp4(a, b, 1001, 80, weir::kTcpAck);
    const Bytes api_fin = tcp4(b, a, 80, 1001, weir::kTcpFin | weir::kTcpAck);

    Verdict pol = verdict(WEIR_VERDICT_DIVERT);
    pol.source = WEIR_VERDICT_SRC_POLICY;
    pol.flags = WEIR_VERDICT_F_TCP_CONTROL;
    ASSERT_TRUE(vm->install(key_of(syn), pol));
    ASSERT_TRUE(vm->install(key_of(udp), pol));
    ASSERT_TRUE(vm->install(key_of(api_syn), verdict(WEIR_VERDICT_DIVERT)));

    // No AF_XDP socket is registered: a captured frame is XDP_PASS here.
    EXPECT_EQ(xdp_run(fd, syn), uint32_t(XDP_PASS)) << "SYN captured";
    EXPECT_EQ(xdp_run(fd, synack), uint32_t(XDP_PASS)) << "SYN-ACK captured";
    EXPECT_EQ(xdp_run(fd, data), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(xdp_run(fd, data_rev), uint32_t(XDP_REDIRECT)) << "both directions";
    EXPECT_EQ(xdp_run(fd, data), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(xdp_run(fd, fin), uint32_t(XDP_PASS)) << "FIN captured";
    EXPECT_EQ(xdp_run(fd, rst), uint32_t(XDP_PASS)) << "RST captured";
    EXPECT_EQ(xdp_run(fd, udp), uint32_t(XDP_REDIRECT)) << "the flag concerns TCP only";
    EXPECT_EQ(xdp_run(fd, api_syn), uint32_t(XDP_REDIRECT)) << "without the flag a SYN is diverted";
    EXPECT_EQ(xdp_run(fd, api_data), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(xdp_run(fd, api_fin), uint32_t(XDP_REDIRECT));

    const Verdict t = entry(*vm, key_of(syn));
    EXPECT_EQ(t.packets, 7u) << "every frame is matched";
    EXPECT_EQ(t.undelivered, 3u) << "only the redirected data frames are kept from the capture";
    EXPECT_EQ(t.undelivered_bytes, 2 * data.size() + data_rev.size());
    EXPECT_EQ(t.ba_undelivered, 1u);
    EXPECT_EQ(t.bypassed, 0u) << "a DIVERT delivers to the IDS";
    EXPECT_EQ(entry(*vm, key_of(udp)).undelivered, 1u);
    EXPECT_EQ(entry(*vm, key_of(api_syn)).undelivered, 3u);

    const auto q = p.value()->counters(0);
    EXPECT_EQ(q.verdict_divert, 7u);
    EXPECT_EQ(q.verdict_forward, 4u) << "the captured control frames";
    EXPECT_EQ(q.divert_failed, 0u);
}

#else

TEST(XdpDivertControl, NotBuilt)
{
    GTEST_SKIP() << "built without the AF_XDP back-end";
}

#endif

} // namespace
