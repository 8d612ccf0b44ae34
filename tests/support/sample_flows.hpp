// A fixed, varied set of flow records for encoder benchmarks and tests:
// TCP, UDP and ICMP, one in five IPv6, two-way, with MACs and TCP flags;
// and one fixed TCP flow for byte-exact encoder tests.
#pragma once

#include <weir/core/flow_record.hpp>

#include <cstdint>
#include <vector>

namespace weir::test {

inline std::vector<FlowRecord> sample_flows(uint32_t n = 4096)
{
    constexpr uint64_t kT0 = 1700000000ULL * 1000000000ULL;
    std::vector<FlowRecord> v(n);
    for (uint32_t i = 0; i < v.size(); ++i) {
        FlowRecord& r = v[i];
        const bool v6 = i % 5 == 0;
        r.key.ip_version = v6 ? 6 : 4;
        r.key.proto = i % 17 == 0 ? (v6 ? 58 : 1) : (i % 3 ? 6 : 17);
        r.key.addr_a = {10, uint8_t(i >> 8), uint8_t(i), 1};
        r.key.addr_b = {192, 0, 2, uint8_t(i)};
        if (v6) {
            r.key.addr_a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(i >> 8), uint8_t(i)};
            r.key.addr_b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        }
        r.key.port_a = uint16_t(1024 + i);
        r.key.port_b = 443;
        r.client_is_a = 1;
        const uint64_t t = kT0 + uint64_t(i) * 1000000ULL;
        r.dir[0] = {10 + i % 7, 1500 + i, t, t + 5000000000ULL, 0x1b, 60, 64, 0};
        r.dir[1] = {8 + i % 5, 9000 + i, t + 1000000ULL, t + 5000000000ULL, 0x1a, 50, 52, 0};
        r.client_mac = {0x02, 0, 0, 0, uint8_t(i >> 8), uint8_t(i)};
        r.server_mac = {0x02, 0, 0, 0, 0, 1};
        r.end_reason = EndReason::IdleTimeout;
    }
    return v;
}

/// One TCP/IPv4 flow for byte-exact encoder tests: 192.0.2.1:40000 (the
/// client, key side B) <-> 198.51.100.2:443 on VLAN 7, with MACs, flags,
/// TTLs and a server ToS; packets between 1 s and 2.5 s after t0_ns.
inline FlowRecord tcp4_flow(uint64_t t0_ns)
{
    constexpr uint64_t kMs = 1000000ULL;
    FlowRecord r{};
    r.key.ip_version = 4;
    r.key.proto = 6;
    r.key.addr_a = {198, 51, 100, 2};
    r.key.addr_b = {192, 0, 2, 1};
    r.key.port_a = 443;
    r.key.port_b = 40000;
    r.key.vlan = 7;
    r.client_is_a = 0;
    r.client_mac = {0x02, 0, 0, 0, 0, 0x01};
    r.server_mac = {0x02, 0, 0, 0, 0, 0x02};
    r.dir[0] = {10, 1000, t0_ns + 1000 * kMs, t0_ns + 2000 * kMs, 0x1b, 60, 64, 0x00};
    r.dir[1] = {8, 6000, t0_ns + 1100 * kMs, t0_ns + 2500 * kMs, 0x1a, 50, 52, 0x20};
    r.end_reason = EndReason::EndOfFlow;
    return r;
}

} // namespace weir::test
