// First-fragment cache of the packet decoder (private to weir::engine).
//
// Maps (src, dst, IP id, protocol, VLAN, tunnel id) of a fragmented datagram
// to the L4 ports its first fragment carried, so later fragments (which have
// no L4 header) are accounted to the same flow. Direct-mapped and fixed-size:
// a colliding datagram simply overwrites the slot, which at worst makes a
// later fragment port-less (counted as FragNoFirst), never wrong ports for an
// unrelated datagram, because the whole tag is compared on lookup.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>

namespace weir::engine::detail {

/// Identity of one fragmented datagram. IPv4 addresses use the first 4 bytes.
struct FragTag {
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    uint32_t id = 0;         ///< IPv4 16-bit id or IPv6 32-bit identification
    uint32_t tunnel_id = 0;  ///< outermost tunnel id, so overlays do not mix
    uint16_t vlan = 0;
    uint8_t key_proto = 0;   ///< IPv4 protocol / IPv6 fragment header next header
    uint8_t version = 0;     ///< 4 or 6; 0 marks an empty slot

    friend bool operator==(const FragTag& a, const FragTag& b) noexcept
    {
        return std::memcmp(&a, &b, sizeof(FragTag)) == 0;
    }
};
static_assert(sizeof(FragTag) == 44, "FragTag must have no padding (compared as bytes)");

struct FragPorts {
    uint16_t sport = 0;
    uint16_t dport = 0;
    uint8_t l4_proto = 0;  ///< protocol after the IPv6 extension chain (IPv4: same as key_proto)
};

class FragCache {
public:
    explicit FragCache(uint32_t entries)
    {
        uint32_t n = 1;
        while (n < entries && n < (1u << 24))
            n <<= 1;
        mask_ = n - 1;
        slots_ = std::make_unique<Slot[]>(n);
    }

    void insert(const FragTag& tag, const FragPorts& ports) noexcept
    {
        Slot& s = slots_[index(tag)];
        s.tag = tag;
        s.ports = ports;
    }

    /// Ports of the datagram's first fragment, or nullptr when not cached.
    [[nodiscard]] const FragPorts* find(const FragTag& tag) const noexcept
    {
        const Slot& s = slots_[index(tag)];
        return s.tag == tag ? &s.ports : nullptr;
    }

private:
    struct Slot {
        FragTag tag;
        FragPorts ports;
    };

    [[nodiscard]] uint32_t index(const FragTag& t) const noexcept
    {
        uint64_t w[4];
        std::memcpy(w, t.src.data(), 16);
        std::memcpy(w + 2, t.dst.data(), 16);
        uint64_t h = (w[0] ^ w[1] ^ (w[2] * 0x9e3779b97f4a7c15ULL) ^ w[3]) +
                     (static_cast<uint64_t>(t.id) << 8 | t.key_proto) + (uint64_t{t.tunnel_id} << 32) + t.vlan;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        return static_cast<uint32_t>(h >> 32) & mask_;
    }

    std::unique_ptr<Slot[]> slots_;
    uint32_t mask_ = 0;
};

} // namespace weir::engine::detail
