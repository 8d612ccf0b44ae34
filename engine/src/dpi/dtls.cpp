// DTLS handshake records and fragment reassembly (see dtls.hpp).
#include <weir/engine/dpi/dtls.hpp>
#include <weir/engine/dpi/tls.hpp>

namespace weir::engine::dpi {

namespace {

constexpr std::size_t kRecordHeader = 13;
constexpr std::size_t kHandshakeHeader = 12;
constexpr uint8_t kContentHandshake = 22;

/// DTLS record versions: 0xfeff (1.0), 0xfefd (1.2), 0xfefc (1.3), and
/// OpenSSL's pre-standard 0x0100.
bool dtls_version(uint16_t v) noexcept
{
    return v == 0xfeff || v == 0xfefd || v == 0xfefc || v == 0x0100;
}

/// DTLS 1.3's unified header (RFC 9147 §4): first byte 001CSLEE. Records
/// in this form are encrypted; their connection ID length is known only to
/// the endpoints, so nothing after the first one can be located.
constexpr bool unified_header(uint8_t b) noexcept
{
    return (b & 0xE0) == 0x20;
}

constexpr uint32_t tag_of(uint8_t type, uint16_t seq) noexcept
{
    return 0x01000000u | static_cast<uint32_t>(type) << 16 | seq;
}

} // namespace

bool dtls_looks_handshake(Bytes d) noexcept
{
    return d.size() >= kRecordHeader && d[0] == kContentHandshake && dtls_version(be16(d.data() + 1)) &&
           be16(d.data() + 3) == 0; // epoch 0: the cleartext hellos
}

ParseStatus dtls_read_handshake(Bytes datagram, HelloAssembler& hello, DtlsDatagramInfo& info) noexcept
{
    info = DtlsDatagramInfo{};
    const uint8_t* d = datagram.data();
    const std::size_t n = datagram.size();
    std::size_t off = 0;
    bool any = false;
    while (n - off >= kRecordHeader) {
        const uint8_t* r = d + off;
        // A DTLS 1.3 ciphertext record ends the walk: its bytes after the
        // first are a connection ID or sequence number, not a version and
        // length, even when they happen to read as 0xfefd.
        if (unified_header(r[0]))
            break;
        const uint16_t version = be16(r + 1);
        if (!dtls_version(version))
            break;
        const std::size_t len = be16(r + 11);
        if (len > n - off - kRecordHeader)
            return any ? hello.status() : ParseStatus::Malformed;
        off += kRecordHeader + len;
        // Only epoch-0 handshake records are in clear; ChangeCipherSpec,
        // alerts and encrypted records are skipped.
        if (r[0] != kContentHandshake || be16(r + 3) != 0)
            continue;
        if (!any)
            info.version = version;
        any = true;
        if (info.records < UINT8_MAX)
            ++info.records;
        const uint8_t* h = r + kRecordHeader;
        std::size_t left = len;
        while (left >= kHandshakeHeader) {
            const uint8_t* hh = h;
            const uint8_t type = hh[0];
            const uint32_t msg_len = be24(hh + 1);
            const uint16_t seq = be16(hh + 4);
            const uint32_t frag_off = be24(hh + 6);
            const uint32_t frag_len = be24(hh + 9);
            if (frag_len > left - kHandshakeHeader || frag_off > msg_len || frag_len > msg_len - frag_off)
                return ParseStatus::Malformed;
            const uint8_t* body = hh + kHandshakeHeader;
            h += kHandshakeHeader + frag_len;
            left -= kHandshakeHeader + frag_len;
            if (type != kTlsHandshakeClientHello && type != kTlsHandshakeServerHello)
                continue;
            if (hello.tag == 0)
                hello.tag = tag_of(type, seq);
            else if (hello.tag != tag_of(type, seq))
                continue; // another hello (a ClientHello resent with the cookie)
            // The TLS form of the header: type and the message's full length.
            const uint8_t hdr[4] = {type, hh[1], hh[2], hh[3]};
            hello.add(0, {hdr, 4});
            if (frag_len)
                hello.add(4 + static_cast<uint64_t>(frag_off), {body, frag_len});
            if (info.fragments < UINT8_MAX)
                ++info.fragments;
            if (hello.status() != ParseStatus::NeedMore)
                return hello.status();
        }
    }
    if (!any)
        return ParseStatus::NotMatched;
    return hello.status();
}

} // namespace weir::engine::dpi
