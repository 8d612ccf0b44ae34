// STUN (RFC 5389 / 8489, TURN's methods of RFC 8656 and 6062, and the
// classic RFC 3489 form without the magic cookie): recognises one message
// and reads the attributes nDPI reports or classifies by.
//
// A message is taken as STUN when:
//  - it has the 20-byte header, the two top bits of the type are zero, and
//    the length is a multiple of 4 whose message fills the datagram exactly
//    (as nDPI requires over UDP); over TCP it may be followed by more;
//  - with the magic cookie 0x2112A442: the method is one RFC 5389/8656/6062
//    define (Binding, Allocate ... ConnectionAttempt, 0x001-0x00c), or
//    0x800 (nDPI's WhatsApp call message);
//  - without it (RFC 3489): the type is one of 3489's six (Binding and
//    Shared Secret requests, responses and error responses), the length is
//    not zero, and the attributes tile the message exactly.
// With the cookie, attributes are walked until one runs past the message
// (then the walk stops; the header alone already matched).
//
// nDPI 4.2 sub-classifies STUN by attributes (stun.c), and micro-DPI follows
// the rules that need only the message itself: REALM containing
// "google.com" -> GoogleHangoutDuo, "whispersystems.org" or "signal.org" ->
// SignalVoip, "facebook" -> FacebookVoip; 0x0103 -> Zoom; 0x4000-0x4002 ->
// WhatsAppCall, as the message type 0x0800; 0x8054 (4 bytes, last three
// zero), 0x8070 (value 2 or 3), 0x24DF, 0x3802, 0x8036, 0x8095, 0x0800,
// 0x8006 -> SkypeCall; 0xC057 in a Binding request of length 100 or 104 ->
// FacebookVoip; 0xFF03 -> GoogleHangoutDuo. The first rule met in attribute
// order wins, as in nDPI. Rules from IP addresses, nDPI's per-address
// cache and packet counting are not reproduced. REALM becomes nDPI's
// host name (ndpi_hostname()).
#pragma once

#include <weir/engine/dpi/types.hpp>

namespace weir::engine::dpi {

inline constexpr uint32_t kStunMagicCookie = 0x2112A442;
inline constexpr std::size_t kStunHeader = 20;

struct StunMessage {
    uint16_t type = 0;          ///< message type (class and method bits)
    uint16_t length = 0;        ///< attribute bytes after the header
    uint8_t classic = 0;        ///< RFC 3489: no magic cookie
    uint8_t tcp_framed = 0;     ///< TCP: behind a 2-byte length (RFC 4571), as nDPI reads it
    uint8_t transaction_id[12]{}; ///< RFC 5389's 96 bits (RFC 3489: the last 96 of its 128)
    uint16_t attributes = 0;    ///< attributes walked
    FixedString<128> realm;     ///< REALM (0x0014)
    FixedString<128> software;  ///< SOFTWARE (0x8022)
    FixedString<128> username;  ///< USERNAME (0x0006), raw bytes
    AppProtocol sub = AppProtocol::Unknown; ///< nDPI's sub-classification (see above), Unknown when none

    [[nodiscard]] uint16_t method() const noexcept { return static_cast<uint16_t>(type & 0x3EEF); }
};

/// The cheap part of parse_stun()'s test (size, top type bits, length
/// filling the datagram): false means not STUN, before a StunMessage (about
/// 420 bytes to clear) is made for it.
constexpr bool stun_may_be(Bytes datagram) noexcept
{
    return datagram.size() >= kStunHeader && (datagram[0] & 0xC0) == 0 &&
           be16(datagram.data() + 2) + kStunHeader == datagram.size();
}

/// The same for parse_stun_tcp(): a message in place, or behind a 2-byte
/// length that fits the payload.
constexpr bool stun_tcp_may_be(Bytes payload) noexcept
{
    if (payload.size() < kStunHeader)
        return false;
    if ((payload[0] & 0xC0) == 0)
        return true;
    const std::size_t framed = be16(payload.data());
    return framed >= kStunHeader && framed + 2 <= payload.size() && (payload[2] & 0xC0) == 0;
}

/// One STUN message at the start of a UDP datagram, filling it exactly.
/// NotMatched when the bytes are not STUN (`m` is then left as it was, so a
/// rejection costs a few compares); Malformed for a classic message whose
/// attributes do not tile it (`m` then holds what was read).
ParseStatus parse_stun(Bytes datagram, StunMessage& m) noexcept;

/// The first STUN message of a TCP payload: either in place (RFC 5389 over
/// TCP; the cookie is required) or behind RFC 4571's 2-byte length as nDPI
/// reads it (the length covering the rest of the payload). More messages
/// may follow; they are not read.
ParseStatus parse_stun_tcp(Bytes payload, StunMessage& m) noexcept;

} // namespace weir::engine::dpi
