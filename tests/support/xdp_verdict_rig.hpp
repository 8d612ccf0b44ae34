// Helpers of the tests that run weir's XDP programs with IDS verdicts
// (tests/live/xdp_verdict_test.cpp for weir_xdp, tests/live/bridge_test.cpp
// for weir_bridge): the skip reason, verdict values, frames and their
// canonical keys, the verdict maps, entry look-ups and one BPF_PROG_RUN.
// Include only where the BPF programs are built (WEIR_HAVE_AFXDP or
// WEIR_HAVE_BRIDGE): it needs libbpf and the verdict maps.
#pragma once

#include "packet_builder.hpp"

#include <weir/abi/verdict.h>
#include <weir/dataplane/verdict_map.hpp>
#include <weir/engine/decoder.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace weir::test {

/// Why the verdict tests cannot run here, or "" when they can.
inline std::string why_cant_run()
{
    if (geteuid() != 0)
        return "needs root (CAP_BPF, CAP_NET_ADMIN) to load BPF programs";
    if (!weir::dataplane::verdicts_supported())
        return "built without the verdict maps (WEIR_HAVE_VERDICTS)";
    return {};
}

/// The canonical flow key weir's decoder gives a frame.
inline weir::FlowKey key_of(const Bytes& frame)
{
    weir::engine::Decoder dec;
    weir::PacketMeta m{};
    EXPECT_TRUE(dec.decode(raw(frame), m));
    return m.key;
}

/// A verdict as the API installs it.
inline weir::dataplane::Verdict verdict(uint8_t action, uint32_t shunt_after = 0, uint64_t expires_ns = 0,
                                        uint32_t egress = 0)
{
    weir::dataplane::Verdict v{};
    v.action = action;
    v.source = WEIR_VERDICT_SRC_API;
    v.shunt_after = shunt_after;
    v.expires_ns = expires_ns;
    v.egress = egress;
    v.installed_ns = weir::dataplane::VerdictMap::now_ns();
    return v;
}

inline Bytes udp4(const char* s, const char* d, uint16_t sp, uint16_t dp, size_t payload = 18)
{
    return PacketBuilder().eth().ipv4(s, d).udp(sp, dp).payload(std::string(payload, 'u')).build();
}

inline Bytes tcp4(const char* s, const char* d, uint16_t sp, uint16_t dp, uint8_t flags = weir::kTcpAck)
{
    return PacketBuilder().eth().ipv4(s, d).tcp(sp, dp, flags).payload("abc").build();
}

/// Creates the flow (max_flows) and subnet (1024) verdict maps into vm;
/// returns "" or what failed.
inline std::string make_verdict_maps(std::optional<weir::dataplane::VerdictMap>& vm, uint32_t max_flows)
{
    weir::dataplane::VerdictMapOptions vo;
    vo.max_flows = max_flows;
    vo.max_subnets = 1024;
    auto m = weir::dataplane::VerdictMap::create(vo);
    if (!m)
        return "VerdictMap::create: " + m.error().message();
    vm.emplace(std::move(m.value()));
    return {};
}

/// The flow entry of k (counters included); a missing one fails the test.
inline weir::dataplane::Verdict entry(const weir::dataplane::VerdictMap& vm, const weir::FlowKey& k)
{
    auto v = vm.lookup(k);
    EXPECT_TRUE(v && v.value().has_value()) << "no verdict entry";
    return v && v.value() ? *v.value() : weir::dataplane::Verdict{};
}

/// The subnet entry of cidr; a missing one fails the test.
inline weir::dataplane::Verdict subnet_entry(const weir::dataplane::VerdictMap& vm, const char* cidr)
{
    auto s = weir::dataplane::parse_subnet(cidr);
    EXPECT_TRUE(s) << cidr;
    auto v = vm.lookup_subnet(s.value());
    EXPECT_TRUE(v && v.value().has_value()) << "no subnet entry " << cidr;
    return v && v.value() ? *v.value() : weir::dataplane::Verdict{};
}

/// The flow verdicts of the per-packet cost tests, n of them (n >= 2):
/// FORWARD for hit_fwd's key, DROP for hit_drop's, and FORWARD for n - 2
/// more keys that differ from hit_fwd's in address b (172.16.x.y) and port
/// b, so that the table is full and no test frame hits them.
inline void cost_verdicts(const Bytes& hit_fwd, const Bytes& hit_drop, uint32_t n, std::vector<weir::FlowKey>& keys,
                          std::vector<weir::dataplane::Verdict>& vals)
{
    keys.assign(n, weir::FlowKey{});
    vals.assign(n, verdict(WEIR_VERDICT_FORWARD));
    keys[0] = key_of(hit_fwd);
    keys[1] = key_of(hit_drop);
    vals[1] = verdict(WEIR_VERDICT_DROP);
    for (uint32_t i = 2; i < n; ++i) {
        weir::FlowKey k = keys[0];
        k.addr_b = {172, 16, uint8_t(i >> 16), uint8_t(i >> 8)};
        k.port_b = uint16_t(i);
        keys[i] = k;
    }
}

/// Runs an XDP program `repeat` times on one frame (BPF_PROG_RUN) and
/// returns its action. ctx, when given, is the xdp_md the program sees
/// (ingress_ifindex, ...); *ns gets the kernel's mean time per run.
inline uint32_t xdp_run(int prog_fd, const Bytes& frame, const xdp_md* ctx = nullptr, uint32_t repeat = 1,
                        double* ns = nullptr)
{
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
                .ctx_in = ctx, .ctx_size_in = ctx ? uint32_t(sizeof(*ctx)) : 0u, .repeat = int(repeat));
    const int rc = bpf_prog_test_run_opts(prog_fd, &o);
    EXPECT_EQ(rc, 0) << std::strerror(errno);
    if (ns)
        *ns = double(o.duration);  // the kernel reports the mean per run
    return o.retval;
}

} // namespace weir::test
