// STUN message recognition and attributes (see stun.hpp).
#include <weir/engine/dpi/stun.hpp>

#include <string_view>

namespace weir::engine::dpi {

namespace {

constexpr uint16_t kAttrUsername = 0x0006;
constexpr uint16_t kAttrRealm = 0x0014;
constexpr uint16_t kAttrSoftware = 0x8022;

constexpr uint32_t be32(const uint8_t* p) noexcept
{
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

/// RFC 3489's message types: Binding and Shared Secret request, response,
/// error response.
constexpr bool classic_type(uint16_t t) noexcept
{
    return t == 0x0001 || t == 0x0101 || t == 0x0111 || t == 0x0002 || t == 0x0102 || t == 0x0112;
}

bool contains(std::string_view s, std::string_view what) noexcept
{
    return s.find(what) != std::string_view::npos;
}

/// nDPI 4.2's attribute rules; Unknown when the attribute says nothing.
AppProtocol classify(const StunMessage& m, uint16_t attr, const uint8_t* v, std::size_t vlen) noexcept
{
    switch (attr) {
    case 0x0103:
        return AppProtocol::Zoom;
    case 0x4000:
    case 0x4001:
    case 0x4002:
        return AppProtocol::WhatsAppCall;
    case kAttrRealm: {
        const std::string_view r = m.realm.view();
        if (contains(r, "google.com"))
            return AppProtocol::GoogleHangoutDuo;
        if (contains(r, "whispersystems.org") || contains(r, "signal.org"))
            return AppProtocol::SignalVoip;
        if (contains(r, "facebook"))
            return AppProtocol::FacebookVoip;
        return AppProtocol::Unknown;
    }
    case 0xC057:
        return m.type == 0x0001 && (m.length == 100 || m.length == 104) ? AppProtocol::FacebookVoip
                                                                         : AppProtocol::Unknown;
    case 0x8054:
        return vlen == 4 && v[1] == 0 && v[2] == 0 && v[3] == 0 ? AppProtocol::SkypeCall : AppProtocol::Unknown;
    case 0x24DF:
    case 0x3802:
    case 0x8036:
    case 0x8095:
    case 0x0800:
    case 0x8006:
        return AppProtocol::SkypeCall;
    case 0x8070:
        return vlen == 4 && v[0] == 0 && v[1] == 0 && v[2] == 0 && (v[3] == 2 || v[3] == 3) ? AppProtocol::SkypeCall
                                                                                            : AppProtocol::Unknown;
    case 0xFF03:
        return AppProtocol::GoogleHangoutDuo;
    default:
        return AppProtocol::Unknown;
    }
}

/// One message at the start of `d`; `exact`: it must end where `d` ends.
ParseStatus parse_message(Bytes d, bool exact, StunMessage& m) noexcept
{
    if (d.size() < kStunHeader)
        return ParseStatus::NotMatched;
    const uint8_t* p = d.data();
    const uint16_t type = be16(p);
    const uint16_t len = be16(p + 2);
    if ((type & 0xC000) != 0 || (len & 3) != 0 || len > d.size() - kStunHeader ||
        (exact && len != d.size() - kStunHeader))
        return ParseStatus::NotMatched;
    const bool cookie = be32(p + 4) == kStunMagicCookie;
    const uint16_t method = static_cast<uint16_t>(type & 0x3EEF);
    if (cookie) {
        if ((method == 0 || method > 0x000C) && type != 0x0800)
            return ParseStatus::NotMatched;
    } else if (!classic_type(type) || len == 0) {
        return ParseStatus::NotMatched;
    }
    // Reset only now: a rejection (most payloads) writes nothing.
    m = StunMessage{};
    m.type = type;
    m.length = len;
    m.classic = cookie ? 0 : 1;
    std::memcpy(m.transaction_id, p + 8, sizeof(m.transaction_id));
    if (type == 0x0800)
        m.sub = AppProtocol::WhatsAppCall;

    const uint8_t* a = p + kStunHeader;
    std::size_t left = len;
    while (left >= 4) {
        const uint16_t attr = be16(a);
        const std::size_t vlen = be16(a + 2);
        const std::size_t padded = (vlen + 3) & ~std::size_t{3};
        if (vlen > left - 4) {
            // An attribute running past the message: a classic message has
            // no cookie to vouch for it.
            if (m.classic)
                return ParseStatus::Malformed;
            break;
        }
        const uint8_t* v = a + 4;
        ++m.attributes;
        switch (attr) {
        case kAttrRealm:
            if (m.realm.empty())
                m.realm.assign(Bytes{v, vlen});
            break;
        case kAttrSoftware:
            if (m.software.empty())
                m.software.assign(Bytes{v, vlen});
            break;
        case kAttrUsername:
            if (m.username.empty())
                m.username.assign(Bytes{v, vlen});
            break;
        default:
            break;
        }
        if (m.sub == AppProtocol::Unknown)
            m.sub = classify(m, attr, v, vlen);
        // left and left - 4 are multiples of 4 (the length is), so the
        // padded value fits whenever the value does.
        a += 4 + padded;
        left -= 4 + padded;
    }
    if (m.classic && left != 0)
        return ParseStatus::Malformed;
    return ParseStatus::Ok;
}

} // namespace

ParseStatus parse_stun(Bytes datagram, StunMessage& m) noexcept
{
    return parse_message(datagram, true, m);
}

ParseStatus parse_stun_tcp(Bytes payload, StunMessage& m) noexcept
{
    // In place (RFC 5389 over TCP): the cookie is required there, since
    // classic STUN did not run over TCP.
    if (parse_message(payload, false, m) == ParseStatus::Ok && !m.classic)
        return ParseStatus::Ok;
    // RFC 4571 framing (ICE-TCP), as nDPI reads it: a 2-byte length, then
    // the message.
    if (payload.size() >= 2 + kStunHeader) {
        const std::size_t framed = be16(payload.data());
        if (framed >= kStunHeader && framed <= payload.size() - 2) {
            const ParseStatus st = parse_message(payload.subspan(2, framed), true, m);
            if (st == ParseStatus::Ok)
                m.tcp_framed = 1;
            return st;
        }
    }
    return ParseStatus::NotMatched;
}

} // namespace weir::engine::dpi
