// TLS ClientHello / ServerHello parsing, JA3, JA3S and JA4 (see tls.hpp).
//
// JA3 = MD5("version,ciphers,extensions,groups,point_formats"), decimal
// values joined by '-', GREASE skipped (Salesforce's definition, as nDPI
// computes it). JA3S = MD5("version,cipher,extensions").
// JA4 (FoxIO, JA4 spec v1): "<t|q|d><version><d|i><nn ciphers><nn exts><alpn>"
// "_" sha256(sorted ciphers)[:12] "_" sha256(sorted exts w/o SNI,ALPN "_" sig algs)[:12].
#include <weir/engine/dpi/hash.hpp>
#include <weir/engine/dpi/tls.hpp>

#include <algorithm>
#include <cstring>

namespace weir::engine::dpi {

namespace {

constexpr uint16_t kExtServerName = 0x0000;
constexpr uint16_t kExtSupportedGroups = 0x000a;
constexpr uint16_t kExtPointFormats = 0x000b;
constexpr uint16_t kExtSignatureAlgorithms = 0x000d;
constexpr uint16_t kExtAlpn = 0x0010;
constexpr uint16_t kExtSupportedVersions = 0x002b;
constexpr uint16_t kExtEncryptedServerName = 0xffce;

// Bounds for JA4's sorted lists. A ClientHello can in theory list 32767
// ciphers; real ones list < 100, and past these caps the fingerprint uses
// the first entries only.
constexpr std::size_t kMaxCiphers = 256;
constexpr std::size_t kMaxExtensions = 128;

/// Bounded big-endian cursor; any read past the end sets `bad`.
struct Reader {
    const uint8_t* p;
    std::size_t left;
    bool bad = false;

    bool need(std::size_t n) noexcept
    {
        if (bad || left < n) {
            bad = true;
            return false;
        }
        return true;
    }
    uint8_t u8() noexcept
    {
        if (!need(1))
            return 0;
        --left;
        return *p++;
    }
    uint16_t u16() noexcept
    {
        if (!need(2))
            return 0;
        uint16_t v = be16(p);
        p += 2;
        left -= 2;
        return v;
    }
    uint32_t u24() noexcept
    {
        if (!need(3))
            return 0;
        uint32_t v = be24(p);
        p += 3;
        left -= 3;
        return v;
    }
    Bytes take(std::size_t n) noexcept
    {
        if (!need(n))
            return {};
        Bytes b(p, n);
        p += n;
        left -= n;
        return b;
    }
};

/// Decimal of v without allocation.
std::string_view dec(uint32_t v, char (&buf)[12]) noexcept
{
    char* end = buf + sizeof(buf);
    char* q = end;
    do {
        *--q = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    return {q, static_cast<std::size_t>(end - q)};
}

/// Hashes "a-b-c" of the non-GREASE 16-bit values in `list` (or 8-bit when `wide` is false).
template <class H>
void hash_dash_list(H& h, Bytes list, bool wide) noexcept
{
    bool first = true;
    std::size_t step = wide ? 2 : 1;
    for (std::size_t i = 0; i + step <= list.size(); i += step) {
        uint16_t v = wide ? be16(list.data() + i) : list[i];
        if (wide && is_grease(v))
            continue;
        char buf[12];
        if (!first)
            h.update("-", 1);
        h.update(dec(v, buf));
        first = false;
    }
}

void hex4(uint16_t v, char* out) noexcept
{
    static constexpr char kHex[] = "0123456789abcdef";
    out[0] = kHex[v >> 12];
    out[1] = kHex[(v >> 8) & 15];
    out[2] = kHex[(v >> 4) & 15];
    out[3] = kHex[v & 15];
}

/// First 12 hex characters of sha256("xxxx,yyyy,...") over `v`, optionally
/// followed by "_" and `tail` (already comma-joined hex values).
void ja4_hash(const uint16_t* v, std::size_t n, Bytes sig_algs, char* out, bool zeros_when_empty = true) noexcept
{
    if (n == 0 && zeros_when_empty) {
        std::memset(out, '0', 12);
        return;
    }
    Sha256 h;
    for (std::size_t i = 0; i < n; ++i) {
        char buf[5];
        hex4(v[i], buf);
        buf[4] = ',';
        h.update(buf, i + 1 < n ? 5 : 4);
    }
    if (!sig_algs.empty()) {
        bool first = true;
        for (std::size_t i = 0; i + 2 <= sig_algs.size(); i += 2) {
            uint16_t s = be16(sig_algs.data() + i);
            if (is_grease(s))
                continue;
            char buf[5];
            buf[0] = first ? '_' : ',';
            hex4(s, buf + 1);
            h.update(buf, 5);
            first = false;
        }
    }
    auto d = h.finish();
    to_hex(d.data(), 6, out);
}

const char* ja4_version(uint16_t v) noexcept
{
    switch (v) {
    case 0x0304: return "13";
    case 0x0303: return "12";
    case 0x0302: return "11";
    case 0x0301: return "10";
    case 0x0300: return "s3";
    case 0x0002: return "s2";
    case 0xfeff: return "d1";
    case 0xfefd: return "d2";
    case 0xfefc: return "d3";
    default: return "00";
    }
}

/// Orders versions by age: DTLS numbers count down (0xfeff 1.0, 0xfefd
/// 1.2, 0xfefc 1.3), so a DTLS 1.3 hello offering {0xfefc, 0xfefd} is 1.3.
constexpr uint32_t version_rank(uint16_t v) noexcept
{
    return v >= 0xfe00 ? 0x10000u + (0xffffu - v) : v;
}

bool is_alnum(uint8_t c) noexcept
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// An IPv4 dotted quad or an IPv6 literal (what nDPI flags as a numeric host).
bool is_ip_literal(std::string_view s) noexcept
{
    if (s.empty())
        return false;
    if (s.find(':') != std::string_view::npos) {
        for (char c : s)
            if (!(c == ':' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                return false;
        return true;
    }
    int dots = 0, digits = 0;
    for (char c : s) {
        if (c == '.') {
            if (digits == 0)
                return false;
            ++dots;
            digits = 0;
        } else if (c >= '0' && c <= '9') {
            if (++digits > 3)
                return false;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

/// Checks the handshake header; on Ok `body` is the message body.
ParseStatus handshake_body(Bytes msg, uint8_t type, Bytes& body) noexcept
{
    if (msg.size() < 4)
        return ParseStatus::NeedMore;
    if (msg[0] != type)
        return ParseStatus::NotMatched;
    uint32_t len = be24(msg.data() + 1);
    if (msg.size() - 4 < len)
        return ParseStatus::NeedMore;
    body = msg.subspan(4, len);
    return ParseStatus::Ok;
}

/// The first record's body when it is a complete handshake record.
ParseStatus first_record(Bytes payload, Bytes& body) noexcept
{
    if (payload.size() < 5)
        return payload.empty() || payload[0] == 0x16 ? ParseStatus::NeedMore : ParseStatus::NotMatched;
    if (payload[0] != 0x16 || payload[1] != 0x03 || payload[2] > 0x04)
        return ParseStatus::NotMatched;
    uint16_t len = be16(payload.data() + 3);
    if (len == 0)
        return ParseStatus::Malformed;
    if (payload.size() - 5 < len) {
        // A handshake message that ends inside the bytes present can be
        // parsed before the record is complete (ServerHello then Certificate).
        body = payload.subspan(5);
        return ParseStatus::NeedMore;
    }
    body = payload.subspan(5, len);
    return ParseStatus::Ok;
}

} // namespace

uint8_t tls_cipher_safety(uint16_t cipher) noexcept
{
    switch (cipher) {
    case 0x0004: // TLS_RSA_WITH_RC4_128_MD5
    case 0x0005: // TLS_RSA_WITH_RC4_128_SHA
    case 0xc011: // TLS_ECDHE_RSA_WITH_RC4_128_SHA
        return 2;
    case 0x0007: // TLS_RSA_WITH_IDEA_CBC_SHA
    case 0x000a: // TLS_RSA_WITH_3DES_EDE_CBC_SHA
    case 0x0016: // TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA
    case 0x002f: // TLS_RSA_WITH_AES_128_CBC_SHA
    case 0x0035: // TLS_RSA_WITH_AES_256_CBC_SHA
    case 0x003c: // TLS_RSA_WITH_AES_128_CBC_SHA256
    case 0x003d: // TLS_RSA_WITH_AES_256_CBC_SHA256
    case 0x0041: // TLS_RSA_WITH_CAMELLIA_128_CBC_SHA
    case 0x0084: // TLS_RSA_WITH_CAMELLIA_256_CBC_SHA
    case 0x0096: // TLS_RSA_WITH_SEED_CBC_SHA
    case 0x009c: // TLS_RSA_WITH_AES_128_GCM_SHA256
    case 0x009d: // TLS_RSA_WITH_AES_256_GCM_SHA384
    case 0xc012: // TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
        return 1;
    default:
        return 0;
    }
}

ParseStatus parse_client_hello_message(Bytes msg, TlsTransport transport, TlsClientHello& out) noexcept
{
    out = TlsClientHello{};
    Bytes body;
    if (auto st = handshake_body(msg, kTlsHandshakeClientHello, body); st != ParseStatus::Ok)
        return st;
    Reader r{body.data(), body.size()};
    out.legacy_version = r.u16();
    r.take(32); // random
    r.take(r.u8()); // session id
    if (transport == TlsTransport::Dtls)
        r.take(r.u8()); // cookie (RFC 6347 §4.2.1)
    Bytes ciphers = r.take(r.u16());
    r.take(r.u8()); // compression methods
    if (r.bad || (ciphers.size() & 1))
        return ParseStatus::Malformed;
    // Extensions are optional (SSLv3-era hellos end here).
    Bytes exts;
    if (r.left >= 2)
        exts = r.take(r.u16());
    if (r.bad)
        return ParseStatus::Malformed;

    uint16_t cipher_v[kMaxCiphers];
    std::size_t n_ciphers = 0;
    for (std::size_t i = 0; i + 2 <= ciphers.size(); i += 2) {
        uint16_t c = be16(ciphers.data() + i);
        if (is_grease(c))
            continue;
        if (n_ciphers < kMaxCiphers)
            cipher_v[n_ciphers] = c;
        ++n_ciphers;
    }

    uint16_t ext_v[kMaxExtensions];
    std::size_t n_ext = 0, n_ext_sorted = 0;
    Bytes groups, point_formats, sig_algs;
    Reader e{exts.data(), exts.size()};
    while (e.left > 0 && !e.bad) {
        uint16_t type = e.u16();
        Bytes data = e.take(e.u16());
        if (e.bad)
            return ParseStatus::Malformed;
        if (is_grease(type))
            continue;
        ++n_ext;
        if (type != kExtServerName && type != kExtAlpn && n_ext_sorted < kMaxExtensions)
            ext_v[n_ext_sorted++] = type;
        Reader x{data.data(), data.size()};
        switch (type) {
        case kExtServerName: {
            Reader list{nullptr, 0};
            Bytes l = x.take(x.u16());
            list = Reader{l.data(), l.size()};
            while (list.left > 0 && !list.bad) {
                uint8_t name_type = list.u8();
                Bytes name = list.take(list.u16());
                if (!list.bad && name_type == 0 && out.sni.empty()) {
                    out.sni.assign(name);
                    break;
                }
            }
            break;
        }
        case kExtAlpn: {
            out.alpn_present = true;
            Bytes l = x.take(x.u16());
            Reader list{l.data(), l.size()};
            while (list.left > 0 && !list.bad) {
                Bytes proto = list.take(list.u8());
                if (list.bad)
                    break;
                if (!out.alpn.empty())
                    out.alpn.append(",");
                out.alpn.append(std::string_view(reinterpret_cast<const char*>(proto.data()), proto.size()));
            }
            break;
        }
        case kExtEncryptedServerName: {
            // Counted as nDPI does: cipher suite, group, key exchange and
            // record digest must be readable, and the encrypted name must
            // reach the extension's end without passing the message's.
            x.take(4);
            x.take(x.u16());
            x.take(x.u16());
            const std::size_t n = x.u16();
            out.esni_present = !x.bad && n >= x.left && n < x.left + e.left;
            break;
        }
        case kExtSupportedGroups:
            groups = x.take(x.u16());
            break;
        case kExtPointFormats:
            point_formats = x.take(x.u8());
            break;
        case kExtSignatureAlgorithms:
            sig_algs = x.take(x.u16());
            break;
        case kExtSupportedVersions: {
            Bytes l = x.take(x.u8());
            for (std::size_t i = 0; i + 2 <= l.size(); i += 2) {
                uint16_t v = be16(l.data() + i);
                if (!is_grease(v) && version_rank(v) > version_rank(out.supported_version))
                    out.supported_version = v;
            }
            break;
        }
        default:
            break;
        }
    }
    out.cipher_count = static_cast<uint16_t>(std::min<std::size_t>(n_ciphers, UINT16_MAX));
    out.extension_count = static_cast<uint16_t>(std::min<std::size_t>(n_ext, UINT16_MAX));

    // JA3: the extension list is walked again rather than stored.
    {
        Md5 h;
        char buf[12];
        h.update(dec(out.legacy_version, buf));
        h.update(",", 1);
        hash_dash_list(h, ciphers, true);
        h.update(",", 1);
        bool first = true;
        Reader w{exts.data(), exts.size()};
        while (w.left >= 4) {
            uint16_t type = w.u16();
            w.take(w.u16());
            if (w.bad)
                break;
            if (is_grease(type))
                continue;
            if (!first)
                h.update("-", 1);
            h.update(dec(type, buf));
            first = false;
        }
        h.update(",", 1);
        hash_dash_list(h, groups, true);
        h.update(",", 1);
        hash_dash_list(h, point_formats, false);
        auto d = h.finish();
        to_hex(d.data(), d.size(), out.ja3);
        out.ja3[32] = '\0';
    }

    // JA4_a, FoxIO's version; nDPI's differs in two places, patched below.
    char* j = out.ja4_foxio;
    j[0] = transport == TlsTransport::Quic ? 'q' : transport == TlsTransport::Dtls ? 'd' : 't';
    const char* ver = ja4_version(out.supported_version ? out.supported_version : out.legacy_version);
    j[1] = ver[0];
    j[2] = ver[1];
    j[3] = out.sni.empty() ? 'i' : 'd';
    std::size_t nc = std::min<std::size_t>(n_ciphers, 99), ne = std::min<std::size_t>(n_ext, 99);
    j[4] = static_cast<char>('0' + nc / 10);
    j[5] = static_cast<char>('0' + nc % 10);
    j[6] = static_cast<char>('0' + ne / 10);
    j[7] = static_cast<char>('0' + ne % 10);
    std::string_view alpn = out.alpn.view().substr(0, out.alpn.view().find(','));
    if (alpn.empty()) {
        j[8] = j[9] = '0';
    } else {
        auto first = static_cast<uint8_t>(alpn.front()), last = static_cast<uint8_t>(alpn.back());
        if (is_alnum(first) && is_alnum(last)) {
            j[8] = static_cast<char>(first);
            j[9] = static_cast<char>(last);
        } else {
            static constexpr char kHex[] = "0123456789abcdef";
            j[8] = kHex[first >> 4];
            j[9] = kHex[last & 15];
        }
    }
    j[10] = '_';
    std::size_t sorted_c = std::min(n_ciphers, kMaxCiphers);
    std::sort(cipher_v, cipher_v + sorted_c);
    ja4_hash(cipher_v, sorted_c, {}, j + 11);
    j[23] = '_';
    std::sort(ext_v, ext_v + n_ext_sorted);
    ja4_hash(ext_v, n_ext_sorted, sig_algs, j + 24);
    j[36] = '\0';

    // nDPI 4.11 sets 'i' from its "numeric IP host" risk, and takes the
    // first two characters of the ALPN value.
    std::memcpy(out.ja4, out.ja4_foxio, sizeof(out.ja4));
    out.ja4[3] = is_ip_literal(out.sni.view()) ? 'i' : 'd';
    // nDPI hashes the empty list (sha256("")) where FoxIO writes zeros.
    if (n_ext_sorted == 0)
        ja4_hash(ext_v, 0, sig_algs, out.ja4 + 24, false);
    // nDPI copies the whole offered list ("h2,http/1.1") less its last
    // character and prints its first two characters, '0' for a missing one:
    // a lone "h3" or "h2" gives "h0". Non-alphanumeric bytes keep FoxIO's
    // hex pair, so the string stays printable and NUL-free.
    std::string_view list = out.alpn.view();
    if (!list.empty()) {
        list.remove_suffix(1);
        const char a = list.size() >= 1 ? list[0] : '0', b = list.size() >= 2 ? list[1] : '0';
        if (is_alnum(static_cast<uint8_t>(a)) && is_alnum(static_cast<uint8_t>(b))) {
            out.ja4[8] = a;
            out.ja4[9] = b;
        }
    }
    return ParseStatus::Ok;
}

ParseStatus parse_server_hello_message(Bytes msg, TlsServerHello& out) noexcept
{
    out = TlsServerHello{};
    Bytes body;
    if (auto st = handshake_body(msg, kTlsHandshakeServerHello, body); st != ParseStatus::Ok)
        return st;
    Reader r{body.data(), body.size()};
    out.legacy_version = r.u16();
    r.take(32);
    r.take(r.u8());
    out.cipher = r.u16();
    r.u8(); // compression
    Bytes exts;
    if (r.left >= 2)
        exts = r.take(r.u16());
    if (r.bad)
        return ParseStatus::Malformed;
    out.selected_version = out.legacy_version;

    Md5 h;
    char buf[12];
    h.update(dec(out.legacy_version, buf));
    h.update(",", 1);
    h.update(dec(out.cipher, buf));
    h.update(",", 1);
    bool first = true;
    Reader e{exts.data(), exts.size()};
    while (e.left > 0) {
        uint16_t type = e.u16();
        Bytes data = e.take(e.u16());
        if (e.bad)
            return ParseStatus::Malformed;
        if (is_grease(type))
            continue;
        ++out.extension_count;
        if (!first)
            h.update("-", 1);
        h.update(dec(type, buf));
        first = false;
        if (type == kExtSupportedVersions && data.size() >= 2) {
            out.selected_version = be16(data.data());
        } else if (type == kExtAlpn) {
            Reader x{data.data(), data.size()};
            Bytes l = x.take(x.u16());
            Reader list{l.data(), l.size()};
            Bytes proto = list.take(list.u8());
            if (!list.bad)
                out.alpn.assign(proto);
        }
    }
    auto d = h.finish();
    to_hex(d.data(), d.size(), out.ja3s);
    out.ja3s[32] = '\0';
    return ParseStatus::Ok;
}

ParseStatus parse_tls_client_hello(Bytes payload, TlsClientHello& out) noexcept
{
    Bytes body;
    auto st = first_record(payload, body);
    if (st == ParseStatus::NotMatched || st == ParseStatus::Malformed)
        return st;
    auto hs = parse_client_hello_message(body, TlsTransport::Tcp, out);
    // A message cut by the record end while the record is complete spans
    // records: the caller needs TlsStream for it.
    return hs;
}

ParseStatus parse_tls_server_hello(Bytes payload, TlsServerHello& out) noexcept
{
    Bytes body;
    auto st = first_record(payload, body);
    if (st == ParseStatus::NotMatched || st == ParseStatus::Malformed)
        return st;
    return parse_server_hello_message(body, out);
}

Bytes tls_skip_leading_records(Bytes payload) noexcept
{
    while (payload.size() >= 5 && (payload[0] == 20 || payload[0] == 21) && payload[1] == 3) {
        const std::size_t len = be16(payload.data() + 3);
        if (len > payload.size() - 5)
            break;
        payload = payload.subspan(5 + len);
    }
    return payload;
}

void TlsStream::reset() noexcept
{
    status_ = ParseStatus::NeedMore;
    hdr_len_ = 0;
    body_left_ = 0;
    len_ = 0;
    msg_len_ = 0;
}

ParseStatus TlsStream::feed(Bytes payload) noexcept
{
    if (status_ != ParseStatus::NeedMore)
        return status_;
    const uint8_t* p = payload.data();
    std::size_t left = payload.size();
    while (left > 0) {
        if (body_left_ == 0) {
            // Collect the 5-byte record header, possibly across payloads.
            std::size_t n = std::min<std::size_t>(5u - hdr_len_, left);
            std::memcpy(hdr_ + hdr_len_, p, n);
            hdr_len_ = static_cast<uint8_t>(hdr_len_ + n);
            p += n;
            left -= n;
            if (hdr_len_ < 5)
                break;
            hdr_len_ = 0;
            if (hdr_[0] != 0x16 || hdr_[1] != 0x03 || hdr_[2] > 0x04)
                return status_ = len_ == 0 ? ParseStatus::NotMatched : ParseStatus::Malformed;
            body_left_ = be16(hdr_ + 3);
            if (body_left_ == 0)
                return status_ = ParseStatus::Malformed;
            continue;
        }
        std::size_t n = std::min<std::size_t>(body_left_, left);
        if (n > kCapacity - len_)
            n = kCapacity - len_;
        std::memcpy(buf_ + len_, p, n);
        len_ += static_cast<uint32_t>(n);
        body_left_ = static_cast<uint16_t>(body_left_ - n);
        p += n;
        left -= n;
        if (len_ >= 4) {
            uint32_t want = 4 + be24(buf_ + 1);
            if (want > kCapacity)
                return status_ = ParseStatus::Malformed;
            if (len_ >= want) {
                msg_len_ = want;
                return status_ = ParseStatus::Ok;
            }
        }
        if (len_ == kCapacity)
            return status_ = ParseStatus::Malformed;
    }
    return status_;
}

} // namespace weir::engine::dpi
