// Toeplitz RSS hashing in software: the hash NICs compute over the packet's
// addresses and ports to pick an RX queue. Used to decide whether a device's
// RSS key sends both directions of a connection to the same queue (a flow
// probe needs that: one worker must see the client and the server half).
//
// A key whose 16-bit halves repeat (0x6d5a6d5a...) gives
// hash(src, dst, sport, dport) == hash(dst, src, dport, sport): swapping the
// addresses shifts the input by a multiple of 16 bits, and the key window a
// bit sees repeats with that period.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace weir::nics {

/// The 40-byte key from Microsoft's RSS specification (most drivers' default).
inline constexpr std::array<uint8_t, 40> kMicrosoftRssKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/// Toeplitz hash of `data` (bytes in network order, as the NIC reads them:
/// src address, dst address, src port, dst port) under `key`. Key bits past
/// the end of the key count as zero, as in hardware with a short key.
[[nodiscard]] uint32_t toeplitz_hash(std::span<const uint8_t> key, std::span<const uint8_t> data) noexcept;

/// True when the key's 16-bit halves all repeat (key[i] == key[i % 2]),
/// which makes the hash symmetric for address and port swaps. False for an
/// empty key or one of odd length.
[[nodiscard]] bool is_symmetric_key(std::span<const uint8_t> key) noexcept;

/// The symmetric key of `size` bytes: 0x6d 0x5a repeated.
[[nodiscard]] std::vector<uint8_t> symmetric_key(size_t size);

} // namespace weir::nics
