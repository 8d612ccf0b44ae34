// FlowKey: the canonical, direction-free key of a bidirectional flow.
//
// Side A is the numerically lower (address, port) endpoint, side B the higher,
// so both directions of a flow produce the same key and the same hash.
// Which side is the client is stored in the flow, not in the key.
#pragma once

#include <weir/abi/flow_key.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace weir {

enum class TunnelType : uint8_t {
    None = 0,
    Gre = 1,     ///< GRE; id = GRE key when present
    Vxlan = 2,   ///< VXLAN; id = VNI
    GtpU = 3,    ///< GTP-U; id = 0 (TEIDs differ per direction, so they cannot key a two-way flow)
    IpInIp = 4,  ///< IPv4/IPv6 in IPv4/IPv6; id = 0
};

/// IPv4 addresses are stored in the first 4 bytes of addr, the rest zero.
struct FlowKey {
    std::array<uint8_t, 16> addr_a{};
    std::array<uint8_t, 16> addr_b{};
    uint16_t port_a = 0;     ///< host order; ICMP: type << 8 | code of side A's packets
    uint16_t port_b = 0;     ///< host order
    uint32_t tunnel_id = 0;  ///< VNI or GRE key of the outermost tunnel (0 for GTP-U)
    uint16_t vlan = 0;       ///< outer 802.1Q VLAN id (12 bits), 0 = none
    uint8_t proto = 0;       ///< IP protocol number (inner one for tunnels)
    uint8_t ip_version = 0;  ///< 4 or 6
    TunnelType tunnel_type = TunnelType::None;
    uint8_t pad_[3]{};       ///< always zero so keys compare and hash as bytes

    friend bool operator==(const FlowKey& a, const FlowKey& b) noexcept
    {
        return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
    }
};
static_assert(sizeof(FlowKey) == 48, "FlowKey layout");
static_assert(std::is_trivially_copyable_v<FlowKey>);
// The BPF programs build the same bytes (weir/abi/flow_key.h).
static_assert(sizeof(FlowKey) == sizeof(weir_flow_key));
static_assert(offsetof(FlowKey, port_a) == offsetof(weir_flow_key, port_a));
static_assert(offsetof(FlowKey, tunnel_id) == offsetof(weir_flow_key, tunnel_id));
static_assert(offsetof(FlowKey, vlan) == offsetof(weir_flow_key, vlan));
static_assert(offsetof(FlowKey, proto) == offsetof(weir_flow_key, proto));
static_assert(offsetof(FlowKey, ip_version) == offsetof(weir_flow_key, ip_version));
static_assert(offsetof(FlowKey, tunnel_type) == offsetof(weir_flow_key, tunnel_type));

/// 32-bit hash of the canonical key. Symmetric by construction (the key is
/// canonical), so both directions of a flow land on the same worker and slot.
/// With SSE4.2 it is two independent CRC32C chains over the key's six 8-byte
/// words (as DPDK's rte_hash_crc), folded by one multiply so the high bits
/// (worker choice) and the low bits (table slot) are both well mixed.
inline uint32_t flow_hash(const FlowKey& k) noexcept
{
    uint64_t w[6];
    std::memcpy(w, &k, sizeof(w));
#if defined(__SSE4_2__)
    uint64_t a = _mm_crc32_u64(0x9e3779b9u, w[0]);
    uint64_t b = _mm_crc32_u64(0x85ebca6bu, w[3]);
    a = _mm_crc32_u64(a, w[1]);
    b = _mm_crc32_u64(b, w[4]);
    a = _mm_crc32_u64(a, w[2]);
    b = _mm_crc32_u64(b, w[5]);
    const uint64_t x = ((a << 32) | b) * 0x9e3779b97f4a7c15ULL;
    return static_cast<uint32_t>(x >> 32);
#else
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint64_t x : w) {
        h ^= x;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return static_cast<uint32_t>(h ^ (h >> 32));
#endif
}

} // namespace weir
