// Test support for the NetFlow / IPFIX encoder tests: expected bytes written
// field by field in network order (Be), a sink keeping every datagram an
// encoder finishes (Collect), and big-endian reads at a byte offset.
//
//   using namespace weir::test;
//   Collect c;
//   enc->flush(clock, c);
//   EXPECT_EQ(rd16(c.d[0], 0), 10); // IPFIX version
#pragma once

#include <weir/exporters/encoder.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

namespace weir::test {

using Bytes = std::vector<uint8_t>;

/// Expected bytes, written field by field in network order.
struct Be {
    Bytes b;
    Be& u8(uint8_t v) { b.push_back(v); return *this; }
    Be& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
    Be& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
    Be& u64(uint64_t v) { return u32(uint32_t(v >> 32)).u32(uint32_t(v)); }
    Be& raw(std::initializer_list<uint8_t> l) { b.insert(b.end(), l); return *this; }
    Be& zeros(int n) { b.insert(b.end(), n, 0); return *this; }
    /// A template field specifier: element id and length.
    Be& ie(uint16_t id, uint16_t len) { return u16(id).u16(len); }
    /// An RFC 5103 reverse element: enterprise bit and PEN 29305.
    Be& rev(uint16_t id, uint16_t len) { return u16(uint16_t(0x8000 | id)).u16(len).u32(29305); }
    Be& add(const Be& o) { b.insert(b.end(), o.b.begin(), o.b.end()); return *this; }
};

/// Keeps a copy of every datagram, in order.
struct Collect final : exporters::DatagramSink {
    std::vector<Bytes> d;
    void on_datagram(std::span<const uint8_t> x) noexcept override { d.emplace_back(x.begin(), x.end()); }
};

inline uint16_t rd16(const Bytes& b, std::size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }
inline uint32_t rd32(const Bytes& b, std::size_t at) { return uint32_t(rd16(b, at)) << 16 | rd16(b, at + 2); }
inline uint64_t rd64(const Bytes& b, std::size_t at) { return uint64_t(rd32(b, at)) << 32 | rd32(b, at + 4); }

} // namespace weir::test
