// A fixed, varied set of flow records for encoder benchmarks and tests:
// TCP, UDP and ICMP, one in five IPv6, two-way, with MACs and TCP flags.
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

} // namespace weir::test
