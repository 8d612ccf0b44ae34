// Byte builders shared by the DPI parser tests: hex literals, big-endian
// integers and TLS extensions appended to a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weir::test {

using Buf = std::vector<uint8_t>;

// "16 03 01" or "160301": pairs of hex digits, blanks between them skipped.
inline Buf hex(const std::string& s)
{
    Buf b;
    for (std::size_t i = 0; i + 1 < s.size();) {
        if (s[i] == ' ') {
            ++i;
            continue;
        }
        b.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
        i += 2;
    }
    return b;
}

inline void put16(Buf& b, uint16_t v)
{
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

inline void put24(Buf& b, uint32_t v)
{
    b.push_back(static_cast<uint8_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}

// A TLS extension: type, 16-bit length, data.
inline void put_ext(Buf& b, uint16_t type, const Buf& data)
{
    put16(b, type);
    put16(b, static_cast<uint16_t>(data.size()));
    b.insert(b.end(), data.begin(), data.end());
}

}  // namespace weir::test
