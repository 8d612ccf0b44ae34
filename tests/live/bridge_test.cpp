// The inline bridge program (weir_bridge.bpf.c) and its loader (Bridge):
//  - BPF_PROG_RUN tables: a miss, FORWARD, DROP (both directions), SHUNT
//    after K, DIVERT to a DEVMAP slot and to an empty one, an expired
//    entry, a subnet DROP, TCP control packets kept, a frame without a key,
//    a frame from an interface that is not a port; the per-direction
//    counters and the verdict entries' counters;
//  - the fail-closed watchdog (stale heartbeat drops, a heartbeat revives);
//  - attach / replace / stop / detach on veth ports and reading the
//    counters through the attached program as weirctl does;
//  - per-flow accounting (weir_br_flows): records with both directions,
//    the client side, TCP flags, idle/forced ends, entries deleted;
//  - loader errors;
//  - per-packet cost with 1 M flow verdicts installed (printed;
//    docs/performance.md).
// Forwarding between namespaces is checked end to end by tests/e2e/bridge.sh.
// Needs root (CAP_BPF, CAP_NET_ADMIN).
#include <weir/engine/decoder.hpp>

#if WEIR_HAVE_BRIDGE
#include <weir/abi/bridge.h>
#include <weir/abi/verdict.h>
#include <weir/dataplane/bridge.hpp>
#include <weir/dataplane/verdict_map.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#endif

#include "netns.hpp"
#include "packet_builder.hpp"
#if WEIR_HAVE_BRIDGE
#include "xdp_verdict_rig.hpp"
#endif

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace weir::test;

#if WEIR_HAVE_BRIDGE

using weir::dataplane::Bridge;
using weir::dataplane::BridgeCounters;
using weir::dataplane::BridgeFail;
using weir::dataplane::Verdict;
using weir::dataplane::VerdictMap;

// Runs the bridge program once on a frame as if it arrived on ifindex.
uint32_t run(const Bridge& b, const Bytes& frame, uint32_t ifindex, uint32_t repeat = 1, double* ns = nullptr)
{
    xdp_md ctx{};
    ctx.data_end = uint32_t(frame.size());  // no metadata before the frame
    ctx.ingress_ifindex = ifindex;
    return xdp_run(b.prog_fd(), frame, &ctx, repeat, ns);
}

// Two veth pairs whose outer ends are the ports, one more as a DIVERT egress.
struct Ports {
    std::unique_ptr<VethPair> a, b, e;
    std::string why;
    bool make(bool egress = true)
    {
        a = VethPair::create("wbrta", 1, &why);
        b = a ? VethPair::create("wbrtb", 1, &why) : nullptr;
        e = b && egress ? VethPair::create("wbrte", 1, &why) : nullptr;
        return a && b && (!egress || e);
    }
    // "" when the test can run (root, the verdict maps, the ports made), else why not.
    std::string ready(bool egress = true)
    {
        if (auto w = why_cant_run(); !w.empty())
            return w;
        return make(egress) ? std::string() : why;
    }
    // A bridge between the two ports, defaults otherwise.
    Bridge::Config config() const
    {
        Bridge::Config c;
        c.if_a = a->outer;
        c.if_b = b->outer;
        return c;
    }
};

struct Rig {
    std::optional<VerdictMap> vm;
    std::unique_ptr<Bridge> br;
};

std::string make_rig(Rig& r, const Ports& p, uint32_t max_flows, BridgeFail fail = BridgeFail::Open,
                     uint64_t watchdog_ns = 3'000'000'000ULL, uint32_t bridge_flows = 0)
{
    if (auto w = make_verdict_maps(r.vm, max_flows); !w.empty())
        return w;
    Bridge::Config c = p.config();
    c.fail = fail;
    c.watchdog_ns = watchdog_ns;
    c.max_flows = bridge_flows;
    c.verdict_map_fd = r.vm->fd();
    c.subnet_verdict_map_fd = r.vm->subnet_fd();
    if (p.e)
        c.egress_ifaces = {p.e->outer};
    auto b = Bridge::load(c);
    if (!b)
        return "Bridge::load: " + b.error().message();
    r.br = std::move(b.value());
    return {};
}

void expect_balanced(const BridgeCounters& c, const char* what)
{
    EXPECT_EQ(c.packets, c.forwarded + c.diverted + c.dropped + c.redirect_errors)
        << what << ": every frame in exactly one outcome";
    EXPECT_EQ(c.dropped, c.verdict_drop + c.verdict_shunt + c.watchdog_drop) << what;
}

TEST(Bridge, VerdictTable)
{
    Ports p;
    if (auto w = p.ready(); !w.empty())
        GTEST_SKIP() << w;
    Rig r;
    ASSERT_EQ(make_rig(r, p, 1024), "");
    const uint32_t A = r.br->ifindex(0), B = r.br->ifindex(1);
    ASSERT_NE(A, 0u);
    ASSERT_NE(B, 0u);

    const Bytes miss = udp4("10.0.0.1", "10.0.0.8", 1006, 53);
    const Bytes fwd = udp4("10.0.0.1", "10.0.0.2", 1000, 53);
    const Bytes drop = udp4("10.0.0.1", "10.0.0.3", 1001, 53);
    const Bytes drop_rev = udp4("10.0.0.3", "10.0.0.1", 53, 1001);
    const Bytes shunt = udp4("10.0.0.1", "10.0.0.4", 1002, 53);
    const Bytes divert = udp4("10.0.0.1", "10.0.0.5", 1003, 53);
    const Bytes divert_empty = udp4("10.0.0.1", "10.0.0.6", 1004, 53);
    const Bytes expired = udp4("10.0.0.1", "10.0.0.7", 1005, 53);
    const Bytes subnet = udp4("10.0.0.1", "192.0.2.9", 1008, 53);
    const Bytes syn = tcp4("10.0.0.1", "10.0.0.9", 1007, 80, weir::kTcpSyn);
    const Bytes ack = tcp4("10.0.0.1", "10.0.0.9", 1007, 80, weir::kTcpAck);
    const Bytes arp = PacketBuilder().eth(kMacA, kMacB, 0x0806).payload(Bytes(28, 1)).build();

    constexpr uint32_t kShuntAfter = 2;
    ASSERT_TRUE(r.vm->install(key_of(fwd), verdict(WEIR_VERDICT_FORWARD)));
    ASSERT_TRUE(r.vm->install(key_of(drop), verdict(WEIR_VERDICT_DROP)));
    ASSERT_TRUE(r.vm->install(key_of(shunt), verdict(WEIR_VERDICT_SHUNT, kShuntAfter)));
    ASSERT_TRUE(r.vm->install(key_of(divert), verdict(WEIR_VERDICT_DIVERT, 0, 0, 0)));
    ASSERT_TRUE(r.vm->install(key_of(divert_empty), verdict(WEIR_VERDICT_DIVERT, 0, 0, 5)));  // no slot 5
    ASSERT_TRUE(r.vm->install(key_of(expired), verdict(WEIR_VERDICT_DROP, 0, VerdictMap::now_ns() - 1)));
    Verdict ctl = verdict(WEIR_VERDICT_DROP);
    ctl.flags = WEIR_VERDICT_F_TCP_CONTROL;
    ASSERT_TRUE(r.vm->install(key_of(syn), ctl));
    auto sn = weir::dataplane::parse_subnet("192.0.2.0/24");
    ASSERT_TRUE(sn);
    ASSERT_TRUE(r.vm->add_subnet(sn.value(), verdict(WEIR_VERDICT_DROP)));

    constexpr int kN = 4;
    for (int i = 0; i < kN; ++i) {
        EXPECT_EQ(run(*r.br, miss, A), uint32_t(XDP_REDIRECT)) << "a miss is bridged";
        EXPECT_EQ(run(*r.br, fwd, B), uint32_t(XDP_REDIRECT));
        EXPECT_EQ(run(*r.br, drop, A), uint32_t(XDP_DROP));
        EXPECT_EQ(run(*r.br, drop_rev, B), uint32_t(XDP_DROP)) << "both directions share the canonical key";
        EXPECT_EQ(run(*r.br, shunt, A), uint32_t(i < int(kShuntAfter) ? XDP_REDIRECT : XDP_DROP)) << "frame " << i;
        EXPECT_EQ(run(*r.br, divert, A), uint32_t(XDP_REDIRECT));
        EXPECT_EQ(run(*r.br, divert_empty, A), uint32_t(XDP_REDIRECT)) << "an empty egress slot: bridged";
        EXPECT_EQ(run(*r.br, expired, B), uint32_t(XDP_REDIRECT));
        EXPECT_EQ(run(*r.br, subnet, B), uint32_t(XDP_DROP));
    }
    EXPECT_EQ(run(*r.br, syn, A), uint32_t(XDP_REDIRECT)) << "SYN kept by WEIR_VERDICT_F_TCP_CONTROL";
    EXPECT_EQ(run(*r.br, ack, A), uint32_t(XDP_DROP));
    EXPECT_EQ(run(*r.br, arp, A), uint32_t(XDP_REDIRECT)) << "ARP crosses unseen";
    EXPECT_EQ(run(*r.br, miss, 1 /* lo: not a port */), uint32_t(XDP_PASS));

    const BridgeCounters a = r.br->counters(0), b = r.br->counters(1);
    // Port A: miss, drop, shunt, divert, divert_empty per round, then syn, ack, arp.
    EXPECT_EQ(a.packets, uint64_t(5 * kN + 3));
    EXPECT_EQ(a.bytes, uint64_t(kN) * (miss.size() + drop.size() + shunt.size() + divert.size() + divert_empty.size()) +
                           syn.size() + ack.size() + arp.size());
    EXPECT_EQ(a.verdict_drop, uint64_t(kN + 1));
    EXPECT_EQ(a.verdict_shunt, uint64_t(kN - kShuntAfter));
    EXPECT_EQ(a.diverted, uint64_t(kN));
    EXPECT_EQ(a.divert_failed, uint64_t(kN));
    EXPECT_EQ(a.forwarded, uint64_t(kN + kShuntAfter + kN + 2));  // miss, shunt under K, divert_empty, syn, arp
    EXPECT_EQ(a.unparsed, 1u);
    EXPECT_EQ(a.redirect_errors, 0u);
    EXPECT_EQ(a.watchdog_drop, 0u);
    expect_balanced(a, "port A");
    // Port B: fwd, drop_rev, expired, subnet per round.
    EXPECT_EQ(b.packets, uint64_t(4 * kN));
    EXPECT_EQ(b.verdict_drop, uint64_t(2 * kN));
    EXPECT_EQ(b.forwarded, uint64_t(2 * kN));
    expect_balanced(b, "port B");

    EXPECT_EQ(entry(*r.vm, key_of(fwd)).packets, uint64_t(kN));
    const Verdict d = entry(*r.vm, key_of(drop));
    EXPECT_EQ(d.packets, uint64_t(2 * kN));
    EXPECT_EQ(d.bypassed, uint64_t(2 * kN));
    const Verdict s = entry(*r.vm, key_of(shunt));
    EXPECT_EQ(s.packets, uint64_t(kN));
    EXPECT_EQ(s.bypassed, uint64_t(kN - kShuntAfter));
    EXPECT_EQ(entry(*r.vm, key_of(expired)).packets, 0u) << "an expired entry is a miss";
    EXPECT_EQ(entry(*r.vm, key_of(syn)).packets, 2u);

    // Removing the DROP makes the flow a miss: bridged again.
    ASSERT_TRUE(r.vm->remove(key_of(drop)));
    EXPECT_EQ(run(*r.br, drop, A), uint32_t(XDP_REDIRECT));
}

uint64_t realtime_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

const weir::FlowRecord* find(const std::vector<weir::FlowRecord>& v, const weir::FlowKey& k)
{
    for (const auto& r : v)
        if (r.key == k)
            return &r;
    return nullptr;
}

TEST(Bridge, FlowAccounting)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    Rig r;
    ASSERT_EQ(make_rig(r, p, 64, BridgeFail::Open, 3'000'000'000ULL, 1024), "");
    const uint32_t A = r.br->ifindex(0), B = r.br->ifindex(1);
    const Bytes req = udp4("10.0.0.1", "10.0.0.2", 1000, 53), rep = udp4("10.0.0.2", "10.0.0.1", 53, 1000);
    const Bytes rev_first = udp4("10.0.0.9", "10.0.0.1", 2000, 80);  // client is key side B
    const Bytes syn = tcp4("10.0.0.1", "10.0.0.3", 3000, 443, weir::kTcpSyn);
    const Bytes synack = tcp4("10.0.0.3", "10.0.0.1", 443, 3000, weir::kTcpSyn | weir::kTcpAck);
    const Bytes ack = tcp4("10.0.0.1", "10.0.0.3", 3000, 443, weir::kTcpAck);
    const Bytes dropped = udp4("10.0.0.1", "10.0.0.4", 1001, 53);
    ASSERT_TRUE(r.vm->install(key_of(dropped), verdict(WEIR_VERDICT_DROP)));

    const uint64_t t0 = realtime_ns();
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(run(*r.br, req, A), uint32_t(XDP_REDIRECT));
    for (int i = 0; i < 2; ++i)
        EXPECT_EQ(run(*r.br, rep, B), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, rev_first, B), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, syn, A), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, synack, B), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, ack, A), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, dropped, A), uint32_t(XDP_DROP));
    EXPECT_EQ(run(*r.br, dropped, A), uint32_t(XDP_DROP));
    const uint64_t t1 = realtime_ns();

    std::vector<weir::FlowRecord> out;
    auto n = r.br->collect_flows(60'000'000'000ULL, 60'000'000'000ULL, false, out);
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(n.value(), 0u) << "nothing idle or old yet";
    n = r.br->collect_flows(0, 60'000'000'000ULL, false, out);  // idle 0: every flow ends
    ASSERT_TRUE(n);
    ASSERT_EQ(n.value(), 4u);
    ASSERT_EQ(out.size(), 4u);

    const weir::FlowRecord* u = find(out, key_of(req));
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->end_reason, weir::EndReason::IdleTimeout);
    EXPECT_EQ(u->client_is_a, 1);
    EXPECT_EQ(u->dir[0].packets, 3u);
    EXPECT_EQ(u->dir[0].bytes, 3 * req.size());
    EXPECT_EQ(u->dir[1].packets, 2u);
    EXPECT_EQ(u->dir[1].bytes, 2 * rep.size());
    EXPECT_GE(u->first_ns() + 1'000'000, t0) << "CLOCK_REALTIME (1 ms slack for the clock conversion)";
    EXPECT_LE(u->last_ns(), t1 + 1'000'000);
    EXPECT_LE(u->dir[0].first_ns, u->dir[1].first_ns);

    const weir::FlowRecord* v = find(out, key_of(rev_first));
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->client_is_a, 0) << "the first frame came from key side B";
    EXPECT_EQ(v->dir[0].packets, 1u);
    EXPECT_EQ(v->dir[1].packets, 0u);
    EXPECT_EQ(v->dir[1].first_ns, 0u);
    char buf[16];
    EXPECT_STREQ(inet_ntop(AF_INET, v->client_addr().data(), buf, sizeof(buf)), "10.0.0.9");

    const weir::FlowRecord* t = find(out, key_of(syn));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dir[0].packets, 2u);
    EXPECT_EQ(t->dir[0].tcp_flags, weir::kTcpSyn | weir::kTcpAck);
    EXPECT_EQ(t->dir[1].tcp_flags, weir::kTcpSyn | weir::kTcpAck);

    const weir::FlowRecord* d = find(out, key_of(dropped));
    ASSERT_NE(d, nullptr) << "a dropped flow is still accounted";
    EXPECT_EQ(d->dir[0].packets, 2u);

    out.clear();
    n = r.br->collect_flows(0, 0, true, out);
    ASSERT_TRUE(n);
    EXPECT_EQ(n.value(), 0u) << "collected entries are deleted";
    EXPECT_EQ(run(*r.br, req, A), uint32_t(XDP_REDIRECT));
    n = r.br->collect_flows(60'000'000'000ULL, 60'000'000'000ULL, true, out);
    ASSERT_TRUE(n);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].end_reason, weir::EndReason::ForcedEnd);
    EXPECT_EQ(out[0].dir[0].packets, 1u);
}

TEST(Bridge, WithoutVerdictsEverythingCrosses)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    Bridge::Config c = p.config();
    auto b = Bridge::load(c);
    ASSERT_TRUE(b) << b.error().message();
    const Bytes f = udp4("10.0.0.1", "10.0.0.2", 1, 2);
    const Bytes arp = PacketBuilder().eth(kMacA, kMacB, 0x0806).payload(Bytes(28, 1)).build();
    EXPECT_EQ(run(*b.value(), f, b.value()->ifindex(0)), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*b.value(), arp, b.value()->ifindex(1)), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(b.value()->counters(0).forwarded, 1u);
    EXPECT_EQ(b.value()->counters(1).forwarded, 1u);
    EXPECT_EQ(b.value()->counters(1).unparsed, 0u) << "nothing is parsed without verdicts";
}

TEST(Bridge, FailClosedWatchdog)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    Rig r;
    ASSERT_EQ(make_rig(r, p, 64, BridgeFail::Closed, 200'000'000ULL), "");
    const Bytes f = udp4("10.0.0.1", "10.0.0.2", 1, 2);
    const uint32_t A = r.br->ifindex(0);
    r.br->heartbeat();
    EXPECT_EQ(run(*r.br, f, A), uint32_t(XDP_REDIRECT)) << "fresh heartbeat: forwarding";
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_EQ(run(*r.br, f, A), uint32_t(XDP_DROP)) << "stale heartbeat: weir is gone, fail closed";
    r.br->heartbeat();
    EXPECT_EQ(run(*r.br, f, A), uint32_t(XDP_REDIRECT)) << "a new heartbeat revives it";
    const BridgeCounters c = r.br->counters(0);
    EXPECT_EQ(c.watchdog_drop, 1u);
    EXPECT_EQ(c.forwarded, 2u);
    expect_balanced(c, "port A");
}

// The program attached to ifindex, by id and name ("" when none).
std::pair<uint32_t, std::string> xdp_on(const std::string& ifname)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(int(if_nametoindex(ifname.c_str())), 0, &q) != 0 || q.prog_id == 0)
        return {0, ""};
    const int fd = bpf_prog_get_fd_by_id(q.prog_id);
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    std::string name;
    if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
        name = info.name;
    if (fd >= 0)
        ::close(fd);
    return {q.prog_id, name};
}

TEST(Bridge, AttachReplaceStopDetach)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    Bridge::Config c = p.config();
    c.fail = BridgeFail::Closed;
    auto first = Bridge::load(c);
    ASSERT_TRUE(first) << first.error().message();
    std::vector<std::string> notes;
    ASSERT_TRUE(first.value()->attach(&notes)) << "attach";
    EXPECT_EQ(xdp_on(p.a->outer).second, WEIR_BRIDGE_PROG_NAME);
    EXPECT_EQ(xdp_on(p.b->outer).second, WEIR_BRIDGE_PROG_NAME);

    // Read back through the attached program, as weirctl bridge stats does.
    const Bytes f = udp4("10.0.0.1", "10.0.0.2", 1, 2);
    EXPECT_EQ(run(*first.value(), f, first.value()->ifindex(1)), uint32_t(XDP_REDIRECT));
    auto at = Bridge::attached(p.b->outer);
    ASSERT_TRUE(at) << at.error().message();
    EXPECT_EQ(at.value().ifindex[0], first.value()->ifindex(0));
    EXPECT_EQ(at.value().ifindex[1], first.value()->ifindex(1));
    EXPECT_EQ(at.value().counters[1].forwarded, 1u);

    // A second bridge (a restart) replaces the left-over program in place.
    c.fail = BridgeFail::Open;
    auto second = Bridge::load(c);
    ASSERT_TRUE(second) << second.error().message();
    notes.clear();
    ASSERT_TRUE(second.value()->attach(&notes));
    bool replaced = false;
    for (const auto& n : notes)
        replaced |= n.find("replaced the left-over") != std::string::npos;
    EXPECT_TRUE(replaced);
    EXPECT_EQ(Bridge::attached(p.a->outer).value().counters[1].forwarded, 0u) << "the new program's counters";

    // The first one's fail-closed stop names its own program as the one to
    // replace: the kernel refuses, the second bridge stays.
    EXPECT_FALSE(first.value()->stop());
    EXPECT_EQ(xdp_on(p.a->outer).second, WEIR_BRIDGE_PROG_NAME);
    first.value().reset();

    // Fail open: stop() leaves it attached, the process may go.
    EXPECT_TRUE(second.value()->stop());
    second.value().reset();
    EXPECT_EQ(xdp_on(p.a->outer).second, WEIR_BRIDGE_PROG_NAME) << "fail open outlives the loader";
    EXPECT_TRUE(Bridge::attached(p.a->outer)) << "counters readable without the loader";

    // Fail closed: stop() leaves the drop program.
    c.fail = BridgeFail::Closed;
    auto third = Bridge::load(c);
    ASSERT_TRUE(third);
    ASSERT_TRUE(third.value()->attach());
    ASSERT_TRUE(third.value()->stop());
    third.value().reset();
    EXPECT_EQ(xdp_on(p.a->outer).second, WEIR_BRIDGE_DROP_PROG_NAME);
    EXPECT_EQ(xdp_on(p.b->outer).second, WEIR_BRIDGE_DROP_PROG_NAME);
    auto gone = Bridge::attached(p.a->outer);
    ASSERT_FALSE(gone);
    EXPECT_NE(gone.error().message().find("drop program"), std::string::npos) << gone.error().message();

    ASSERT_TRUE(Bridge::detach_ports(p.a->outer, p.b->outer));
    EXPECT_EQ(xdp_on(p.a->outer).first, 0u);
    EXPECT_EQ(xdp_on(p.b->outer).first, 0u);
    EXPECT_EQ(Bridge::detach_ports(p.a->outer, p.b->outer).error().code, std::errc::no_such_file_or_directory);
}

TEST(Bridge, LeavesForeignProgramsAlone)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    // Someone else's program on port B: a minimal XDP_PASS (BPF_MOV64_IMM r0, 2; BPF_EXIT).
    const bpf_insn insns[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_PASS}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    const int foreign = bpf_prog_load(BPF_PROG_TYPE_XDP, "other_prog", "GPL", insns, 2, nullptr);
    ASSERT_GE(foreign, 0) << std::strerror(errno);
    const int ixb = int(if_nametoindex(p.b->outer.c_str()));
    ASSERT_EQ(bpf_xdp_attach(ixb, foreign, XDP_FLAGS_DRV_MODE, nullptr), 0);
    Bridge::Config c = p.config();
    auto b = Bridge::load(c);
    ASSERT_TRUE(b);
    auto r = b.value()->attach();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, std::errc::device_or_resource_busy) << r.error().message();
    EXPECT_EQ(xdp_on(p.b->outer).second, "other_prog");
    EXPECT_EQ(Bridge::detach_ports(p.a->outer, p.b->outer).error().code, std::errc::device_or_resource_busy);
    EXPECT_EQ(xdp_on(p.b->outer).second, "other_prog") << "never removed";
    (void)b.value()->detach();  // port A, attached before B refused
    EXPECT_EQ(xdp_on(p.a->outer).first, 0u);
    bpf_xdp_detach(ixb, XDP_FLAGS_DRV_MODE, nullptr);
    ::close(foreign);
}

TEST(Bridge, LoaderErrors)
{
    if (auto w = why_cant_run(); !w.empty())
        GTEST_SKIP() << w;
    Bridge::Config c;
    c.if_a = "lo";
    c.if_b = "lo";
    EXPECT_EQ(Bridge::load(c).error().code, std::errc::invalid_argument) << "same port twice";
    c.if_b = "wbr-no-such";
    EXPECT_EQ(Bridge::load(c).error().code, std::errc::no_such_device);
    EXPECT_FALSE(weir::dataplane::parse_bridge_ports("eth0"));
    EXPECT_FALSE(weir::dataplane::parse_bridge_ports("eth0:"));
    EXPECT_FALSE(weir::dataplane::parse_bridge_ports("a:b:c"));
    EXPECT_FALSE(weir::dataplane::parse_bridge_ports("a:a"));
    auto ok = weir::dataplane::parse_bridge_ports("a:b");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok.value()[1], "b");
    Ports p;
    if (!p.make(false))
        GTEST_SKIP() << p.why;
    c.if_a = p.a->outer;
    c.if_b = p.b->outer;
    c.verdict_map_fd = 0;  // only one of the two maps
    EXPECT_EQ(Bridge::load(c).error().code, std::errc::invalid_argument);
    c.verdict_map_fd = -1;
    c.egress_ifaces = {p.a->outer};
    EXPECT_EQ(Bridge::load(c).error().code, std::errc::invalid_argument) << "egress without verdicts";
    EXPECT_EQ(Bridge::attached(p.a->outer).error().code, std::errc::no_such_file_or_directory);
}

TEST(Bridge, CostWithAMillionVerdicts)
{
    Ports p;
    if (auto w = p.ready(false); !w.empty())
        GTEST_SKIP() << w;
    constexpr uint32_t kFlows = 1u << 20;
    Rig r;
    ASSERT_EQ(make_rig(r, p, kFlows), "");
    const Bytes hit_fwd = udp4("10.0.0.1", "10.0.0.2", 1000, 53);
    const Bytes hit_drop = udp4("10.0.0.1", "10.0.0.3", 1000, 53);
    const Bytes miss = udp4("10.9.9.9", "10.0.0.2", 1000, 53);
    std::vector<weir::FlowKey> keys;
    std::vector<Verdict> vals;
    cost_verdicts(hit_fwd, hit_drop, kFlows, keys, vals);
    auto n = r.vm->install_batch(keys, vals);
    ASSERT_TRUE(n) << n.error().message();
    ASSERT_EQ(n.value(), size_t(kFlows));

    Bridge::Config c = p.config();
    auto off = Bridge::load(c);
    ASSERT_TRUE(off);
    c.fail = BridgeFail::Closed;
    c.verdict_map_fd = r.vm->fd();
    c.subnet_verdict_map_fd = r.vm->subnet_fd();
    auto closed = Bridge::load(c);
    ASSERT_TRUE(closed);
    c.fail = BridgeFail::Open;
    c.max_flows = kFlows;
    auto flows = Bridge::load(c);
    ASSERT_TRUE(flows);
    const uint32_t A = r.br->ifindex(0);
    constexpr uint32_t kRepeat = 2'000'000;
    double base = 0, fwd = 0, drop = 0, m = 0, fc = 0, fl = 0;
    EXPECT_EQ(run(*off.value(), hit_fwd, A, kRepeat, &base), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, hit_fwd, A, kRepeat, &fwd), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*r.br, hit_drop, A, kRepeat, &drop), uint32_t(XDP_DROP));
    EXPECT_EQ(run(*r.br, miss, A, kRepeat, &m), uint32_t(XDP_REDIRECT));
    closed.value()->heartbeat();
    EXPECT_EQ(run(*closed.value(), miss, A, kRepeat, &fc), uint32_t(XDP_REDIRECT));
    EXPECT_EQ(run(*flows.value(), hit_fwd, A, kRepeat, &fl), uint32_t(XDP_REDIRECT));
    std::printf("[ cost     ] weir_bridge ns/packet (BPF_PROG_RUN, %u runs, 60-byte UDP, %u flow verdicts): "
                "verdicts off %.1f, hit FORWARD %.1f, hit DROP %.1f, miss (flow + 2 subnet lookups) %.1f, "
                "miss + fail-closed watchdog %.1f, hit FORWARD + flow accounting %.1f\n",
                kRepeat, kFlows, base, fwd, drop, m, fc, fl);
    EXPECT_EQ(entry(*r.vm, keys[0]).packets, uint64_t(2) * kRepeat) << "hit FORWARD, with and without flow accounting";
    EXPECT_EQ(r.br->counters(0).packets, uint64_t(3) * kRepeat);
    std::vector<weir::FlowRecord> recs;
    ASSERT_TRUE(flows.value()->collect_flows(0, 0, true, recs));
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].dir[0].packets, uint64_t(kRepeat));
    // Smoke bound only (shared 2-vCPU machines are noisy).
    EXPECT_LT(fwd, 2000.0);
    EXPECT_LT(m, 2000.0);
}

#else

TEST(Bridge, NotBuilt)
{
    GTEST_SKIP() << "built without the BPF toolchain (no inline bridge)";
}

#endif

} // namespace
