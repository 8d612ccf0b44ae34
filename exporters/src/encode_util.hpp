// Private helpers shared by the NetFlow and IPFIX encoders: a big-endian
// writer over a preallocated buffer and one-way views of a FlowRecord.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/exporters/encoder.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace weir::exporters::detail {

/// Big-endian writes into a buffer sized once at construction. Callers check
/// room before writing (the encoders size every write in advance).
class ByteWriter {
public:
    explicit ByteWriter(std::size_t capacity) : buf_(capacity, 0) {}

    // One byte-swapped store per field: byte-by-byte stores through
    // uint8_t* alias pos_ and force a reload after every byte.
    void u8(uint8_t v) noexcept { buf_[pos_++] = v; }
    void u16(uint16_t v) noexcept { store(__builtin_bswap16(v)); }
    void u32(uint32_t v) noexcept { store(__builtin_bswap32(v)); }
    void u64(uint64_t v) noexcept { store(__builtin_bswap64(v)); }
    void bytes(const uint8_t* p, std::size_t n) noexcept
    {
        std::memcpy(buf_.data() + pos_, p, n);
        pos_ += n;
    }
    void zeros(std::size_t n) noexcept
    {
        std::memset(buf_.data() + pos_, 0, n);
        pos_ += n;
    }
    void put_u8_at(std::size_t at, uint8_t v) noexcept { buf_[at] = v; }
    void put_u16_at(std::size_t at, uint16_t v) noexcept
    {
        const uint16_t be = __builtin_bswap16(v);
        std::memcpy(buf_.data() + at, &be, 2);
    }
    void put_u32_at(std::size_t at, uint32_t v) noexcept
    {
        put_u16_at(at, static_cast<uint16_t>(v >> 16));
        put_u16_at(at + 2, static_cast<uint16_t>(v));
    }

    [[nodiscard]] std::size_t size() const noexcept { return pos_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return buf_.size(); }
    [[nodiscard]] const uint8_t* data() const noexcept { return buf_.data(); }
    void reset() noexcept { pos_ = 0; }

private:
    template <typename T>
    void store(T v) noexcept
    {
        std::memcpy(buf_.data() + pos_, &v, sizeof(v));
        pos_ += sizeof(v);
    }

    std::vector<uint8_t> buf_;
    std::size_t pos_ = 0;
};

inline bool is_icmp(const FlowKey& k) noexcept { return k.proto == 1 || k.proto == 58; }

/// ICMP type/code of the answer to a request, for the server->client side:
/// the key only holds the request's type/code (see the decoder), so the
/// reply is derived for the request/reply pairs and left 0 otherwise.
inline uint16_t icmp_reply(uint16_t request, uint8_t proto) noexcept
{
    const uint8_t type = static_cast<uint8_t>(request >> 8);
    if (proto == 1) {
        switch (type) {
        case 8: return 0;          // echo -> echo reply
        case 13: return 14 << 8;   // timestamp
        case 15: return 16 << 8;   // information
        case 17: return 18 << 8;   // address mask
        default: return 0;
        }
    }
    if (type == 128) return 129 << 8; // ICMPv6 echo
    return 0;
}

/// The client's ICMP type/code, as the JSON writer reports it.
inline uint16_t icmp_client(const FlowRecord& r) noexcept
{
    return r.client_port() ? r.client_port() : r.server_port();
}

/// One direction of a flow, seen as a one-way record (src = sender).
struct OneWay {
    const std::array<uint8_t, 16>* src;
    const std::array<uint8_t, 16>* dst;
    const std::array<uint8_t, 6>* src_mac;
    const std::array<uint8_t, 6>* dst_mac;
    const DirCounters* c;
    uint16_t sport;
    uint16_t dport;
    uint16_t icmp; ///< type << 8 | code, ICMP only
};

/// d = 0: client -> server; d = 1: server -> client. Ports are 0 for ICMP.
inline OneWay one_way(const FlowRecord& r, int d) noexcept
{
    const bool icmp = is_icmp(r.key);
    OneWay w{};
    if (d == 0) {
        w = {&r.client_addr(), &r.server_addr(), &r.client_mac, &r.server_mac, &r.dir[0],
             r.client_port(), r.server_port(), 0};
    } else {
        w = {&r.server_addr(), &r.client_addr(), &r.server_mac, &r.client_mac, &r.dir[1],
             r.server_port(), r.client_port(), 0};
    }
    if (icmp) {
        const uint16_t req = icmp_client(r);
        w.icmp = d == 0 ? req : icmp_reply(req, r.key.proto);
        w.sport = 0;
        w.dport = 0;
    }
    return w;
}

/// ms since boot as a wrapping 32-bit sysUptime value; times before boot
/// are sent as 0 and counted.
inline uint32_t uptime_ms(uint64_t t_ns, uint64_t boot_ns, uint64_t& clamped) noexcept
{
    if (t_ns < boot_ns) {
        ++clamped;
        return 0;
    }
    return static_cast<uint32_t>((t_ns - boot_ns) / 1000000ULL);
}

} // namespace weir::exporters::detail
