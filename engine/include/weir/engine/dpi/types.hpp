// Common types of weir's micro-DPI: fixed-capacity strings the parsers fill,
// the parse status every parser returns, and the application protocols with
// nDPI's ids and names (so exporters and ntopng show the same names whether
// a flow was classified by nDPI or by micro-DPI). Fast-path types: no
// allocation, trivially copyable.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace weir::engine::dpi {

using Bytes = std::span<const uint8_t>;

/// Outcome of one parse call.
enum class ParseStatus : uint8_t {
    Ok = 0,          ///< the message was parsed; the result struct is filled
    NeedMore = 1,    ///< looks like the protocol, but the message continues past the bytes given
    NotMatched = 2,  ///< not this protocol (or not the message this parser reads)
    Malformed = 3,   ///< this protocol, but a length or field is inconsistent
};

/// A string of at most N-1 bytes stored inline. Longer input is cut at N-1
/// and `truncated` is set; the text is always NUL-terminated.
template <std::size_t N>
struct FixedString {
    static_assert(N >= 2 && N <= 65535);
    uint16_t len = 0;
    uint8_t truncated = 0;
    char data[N]{};

    static constexpr std::size_t capacity() noexcept { return N - 1; }
    [[nodiscard]] std::string_view view() const noexcept { return {data, len}; }
    [[nodiscard]] bool empty() const noexcept { return len == 0; }
    void clear() noexcept
    {
        len = 0;
        truncated = 0;
        data[0] = '\0';
    }
    void assign(std::string_view s) noexcept
    {
        clear();
        append(s);
    }
    void append(std::string_view s) noexcept
    {
        std::size_t room = capacity() - len;
        std::size_t n = std::min(room, s.size());
        std::memcpy(data + len, s.data(), n);
        len = static_cast<uint16_t>(len + n);
        data[len] = '\0';
        if (n < s.size())
            truncated = 1;
    }
    void assign(Bytes b) noexcept
    {
        assign(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
};

/// Application protocols micro-DPI recognises. The values are nDPI's
/// protocol ids (ndpi_protocol_ids.h), so a record carries the same number
/// in both classification modes.
enum class AppProtocol : uint16_t {
    Unknown = 0,
    Dns = 5,
    Http = 7,
    Mdns = 8,
    Dtls = 30,
    SkypeCall = 38,        ///< STUN sub-classification (nDPI 4.2 names)
    WhatsAppCall = 45,
    Stun = 78,
    Tls = 91,
    Ssh = 92,
    HttpConnect = 130,
    HttpProxy = 131,
    Llmnr = 154,
    Quic = 188,
    Zoom = 189,
    GoogleHangoutDuo = 201,
    FacebookVoip = 268,
    SignalVoip = 269,
};

/// nDPI's name for the protocol ("TLS", "HTTP", ...); "Unknown" otherwise.
std::string_view app_protocol_name(AppProtocol p) noexcept;

/// nDPI 4.2's default category id of the protocol (ndpi_get_proto_category()
/// for it alone), 0 = Unspecified for Unknown.
uint16_t app_protocol_category(AppProtocol p) noexcept;

/// Every protocol micro-DPI names (not Unknown).
std::vector<AppProtocol> app_protocols();

/// Reverse of app_protocol_name(); Unknown when the name is not one of ours.
AppProtocol app_protocol_from_name(std::string_view name) noexcept;

/// The protocol nDPI 4.2's port guess gives for `port` over TCP (6) or UDP
/// (17): the nDPI id of the protocol that has it among its default ports, 0
/// when none has.
uint16_t ndpi_port_protocol(uint8_t l4_proto, uint16_t port) noexcept;

/// nDPI 4.2's default ports of a protocol micro-DPI names over TCP (6) or UDP
/// (17); unused places 0, all 0 when it has none.
std::array<uint16_t, 2> app_protocol_default_ports(AppProtocol p, uint8_t l4_proto) noexcept;

/// nDPI 4.2's "Known Protocol on Non Standard Port" for a flow found as
/// master.app (nDPI ids; master 0 when there is none): one of its ports is a
/// default port of another protocol (the server's port looked up first), or
/// neither is one of the protocol's own default ports (the master's when
/// there is one). Protocols without default ports never are.
bool known_protocol_on_non_standard_port(uint8_t l4_proto, uint16_t master, uint16_t app, uint16_t server_port,
                                         uint16_t client_port) noexcept;

/// RFC 8701 GREASE values (0x0a0a, 0x1a1a, ... 0xfafa), which JA3 and JA4 skip.
constexpr bool is_grease(uint16_t v) noexcept
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/// Big-endian reads; callers check the bounds.
constexpr uint16_t be16(const uint8_t* p) noexcept
{
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
constexpr uint32_t be24(const uint8_t* p) noexcept
{
    return static_cast<uint32_t>(p[0]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[2];
}

} // namespace weir::engine::dpi
