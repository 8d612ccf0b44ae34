// Private memory layout of weir::engine::FlowTable: the flow entry, its cold
// side part and the index slot encoding. Included only by flow_table.cpp (and
// nothing public depends on it), so the layout may change freely.
//
// Budget: 160 bytes per flow of capacity, index included. A flow costs
//   128 bytes  hot entry (two cache lines: key and flow fields, then counters)
//     8 bytes  LRU links, in their own array: moving a flow to the list head
//              touches its two neighbours, and 8-byte links keep those
//              touches within a few MB that mostly stay in the last-level
//              cache, instead of two more random entry lines from DRAM
//     6 bytes  cold part (server MAC), touched at creation, role swap and
//              export only
//    16 bytes  index: two 8-byte slots per flow (load factor <= 0.5)
// = 158 bytes.
#pragma once

#include <weir/core/flow_key.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace weir::engine::detail {

/// End of an intrusive list, and "no entry".
inline constexpr uint32_t kNil = 0xFFFFFFFFu;

/// Per-direction counters as stored. Packets are 32-bit to keep the entry at
/// two cache lines; a direction about to wrap is exported early (as an active
/// timeout) and the flow restarts, so no count is ever lost.
struct DirState {
    uint64_t bytes;
    uint64_t first_ns;
    uint64_t last_ns;
    uint32_t packets;
    uint8_t tcp_flags;
    uint8_t min_ttl;
    uint8_t max_ttl;
    uint8_t tos;
};
static_assert(sizeof(DirState) == 32);

/// Flow state bits (FlowEntry::state). They survive an active-timeout
/// restart: the TCP connection goes on, only the counters start again.
inline constexpr uint8_t kStEnded = 0x01;          ///< RST or FIN both ways: on the ended list
inline constexpr uint8_t kStFinClient = 0x02;      ///< FIN seen client -> server
inline constexpr uint8_t kStFinServer = 0x04;      ///< FIN seen server -> client
inline constexpr uint8_t kStSynClient = 0x08;      ///< the client sent a SYN
inline constexpr uint8_t kStMacsFromClient = 0x10; ///< cold MACs come from a client packet

struct alignas(64) FlowEntry {
    // Line 0: what a lookup reads, and the per-flow fields.
    FlowKey key;
    uint32_t hash;
    uint32_t fragments;
    std::array<uint8_t, 6> client_mac;
    uint8_t client_is_a;
    uint8_t state;
    // Line 1: counters, [0] client -> server, [1] server -> client.
    DirState dir[2];
};
static_assert(sizeof(FlowEntry) == 128, "flow entry must stay two cache lines");
static_assert(offsetof(FlowEntry, dir) == 64, "counters start the second line");

/// Position of a flow in its list (LRU or ended).
struct Link {
    uint32_t prev; ///< towards the list head (more recently active)
    uint32_t next; ///< towards the list tail (less recently active)
};
static_assert(sizeof(Link) == 8);

using ServerMac = std::array<uint8_t, 6>;
static_assert(sizeof(ServerMac) == 6);

/// Index slot: low 32 bits the flow hash (tag, and home position), high 32
/// bits entry number + 1; 0 is an empty slot, so a zeroed index is empty.
using Slot = uint64_t;

inline constexpr Slot make_slot(uint32_t hash, uint32_t entry) noexcept
{
    return (static_cast<uint64_t>(entry + 1) << 32) | hash;
}
inline constexpr uint32_t slot_hash(Slot s) noexcept { return static_cast<uint32_t>(s); }
/// Entry number + 1, 0 when empty.
inline constexpr uint32_t slot_entry1(Slot s) noexcept { return static_cast<uint32_t>(s >> 32); }

} // namespace weir::engine::detail
