// Link types the decoder fuzzer exercises. The first byte of a fuzz input
// selects one (modulo the count); fuzz_seeds writes that byte in front of
// frames taken from real captures, so both must use this one table.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weir::fuzz {

inline constexpr uint32_t kLinktypes[] = {
    1,   // Ethernet
    101, // raw IP
    12,  // DLT_RAW (Linux)
    14,  // DLT_RAW (OpenBSD)
    228, // IPv4
    229, // IPv6
    113, // Linux SLL
    276, // Linux SLL2
    0,   // BSD null
    108, // OpenBSD loop
    9,   // PPP
    50,  // PPP in HDLC framing
    192, // PPI
    104, // Cisco HDLC
};
inline constexpr size_t kLinktypeCount = sizeof(kLinktypes) / sizeof(kLinktypes[0]);

/// Index of a link type in kLinktypes, or -1.
inline int linktype_index(uint32_t lt)
{
    for (size_t i = 0; i < kLinktypeCount; ++i)
        if (kLinktypes[i] == lt)
            return static_cast<int>(i);
    return -1;
}

} // namespace weir::fuzz
