// QUIC Initial decryption and CRYPTO reassembly; Google QUIC clear CHLO
// (see quic.hpp).
#include <weir/engine/dpi/quic.hpp>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>

namespace weir::engine::dpi {

namespace {

// Initial salts (RFC 9001 §5.2, RFC 9369 §3.3.1, the drafts, Google's T05x).
constexpr uint8_t kSaltV1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr uint8_t kSaltV2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};
constexpr uint8_t kSaltDraft22[20] = {0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a,
                                      0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd, 0x7a, 0x02, 0x64, 0x4a};
constexpr uint8_t kSaltDraft23[20] = {0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7,
                                      0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02};
constexpr uint8_t kSaltDraft29[20] = {0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97,
                                      0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99};
constexpr uint8_t kSaltT50[20] = {0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80,
                                  0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c, 0x60, 0x48, 0x83, 0x10};
constexpr uint8_t kSaltQ050[20] = {0x50, 0x45, 0x74, 0xef, 0xd0, 0x66, 0xfe, 0x2f, 0x9d, 0x94,
                                   0x5c, 0xfc, 0xdb, 0xd3, 0xa7, 0xf0, 0xd3, 0xb5, 0x6b, 0x45};
constexpr uint8_t kSaltT51[20] = {0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50,
                                  0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d};

constexpr uint32_t kVersionV1 = 0x00000001;
constexpr uint32_t kVersionV2 = 0x6b3343cf;
constexpr uint32_t kVersionMvfst22 = 0xfaceb001;
constexpr uint32_t kVersionMvfst27 = 0xfaceb002;
constexpr uint32_t kVersionMvfstExp = 0xfaceb00e;
constexpr uint32_t kVersionT050 = 0x54303530;
constexpr uint32_t kVersionQ050 = 0x51303530;
constexpr uint32_t kVersionT051 = 0x54303531;

/// Largest QUIC packet decrypted (a copy on the stack): Initial datagrams
/// are 1200..1500 bytes; loopback captures reach a few KB.
constexpr std::size_t kMaxPacket = 4096;
constexpr std::size_t kTagLen = 16;

constexpr uint32_t be32(const uint8_t* p) noexcept
{
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

constexpr uint32_t le32(const uint8_t* p) noexcept
{
    return static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[1]) << 8 | p[0];
}

/// QUIC variable-length integer (RFC 9000 §16) at p[pos]; false past `n`.
bool varint(const uint8_t* p, std::size_t n, std::size_t& pos, uint64_t& v) noexcept
{
    if (pos >= n)
        return false;
    const std::size_t len = std::size_t{1} << (p[pos] >> 6);
    if (n - pos < len)
        return false;
    v = p[pos] & 0x3f;
    for (std::size_t i = 1; i < len; ++i)
        v = v << 8 | p[pos + i];
    pos += len;
    return true;
}

/// libcrypto contexts of one thread, created on first use and reused: a
/// context per packet would allocate on the fast path.
struct CryptoContexts {
    EVP_MAC_CTX* hmac = nullptr;
    EVP_CIPHER_CTX* ecb = nullptr;
    EVP_CIPHER_CTX* gcm = nullptr;
    bool ready = false;
    bool failed = false;

    CryptoContexts() = default;
    CryptoContexts(const CryptoContexts&) = delete;
    CryptoContexts& operator=(const CryptoContexts&) = delete;
    ~CryptoContexts()
    {
        EVP_MAC_CTX_free(hmac);
        EVP_CIPHER_CTX_free(ecb);
        EVP_CIPHER_CTX_free(gcm);
    }

    bool init() noexcept
    {
        if (ready || failed)
            return ready;
        failed = true;
        EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (!mac)
            return false;
        hmac = EVP_MAC_CTX_new(mac);
        EVP_MAC_free(mac); // the context keeps its own reference
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        if (!hmac || EVP_MAC_CTX_set_params(hmac, params) != 1)
            return false;
        ecb = EVP_CIPHER_CTX_new();
        gcm = EVP_CIPHER_CTX_new();
        if (!ecb || !gcm)
            return false;
        // Cipher set once; later calls only change key and IV.
        if (EVP_EncryptInit_ex(ecb, EVP_aes_128_ecb(), nullptr, nullptr, nullptr) != 1 ||
            EVP_CIPHER_CTX_set_padding(ecb, 0) != 1 ||
            EVP_DecryptInit_ex(gcm, EVP_aes_128_gcm(), nullptr, nullptr, nullptr) != 1)
            return false;
        failed = false;
        ready = true;
        return true;
    }
};

CryptoContexts& crypto() noexcept
{
    thread_local CryptoContexts c;
    return c;
}

/// HMAC-SHA-256(key, a || b).
bool hmac_sha256(CryptoContexts& c, const uint8_t* key, std::size_t key_len, const uint8_t* a, std::size_t a_len,
                 const uint8_t* b, std::size_t b_len, uint8_t (&out)[32]) noexcept
{
    std::size_t len = 0;
    return EVP_MAC_init(c.hmac, key, key_len, nullptr) == 1 && EVP_MAC_update(c.hmac, a, a_len) == 1 &&
           (b_len == 0 || EVP_MAC_update(c.hmac, b, b_len) == 1) && EVP_MAC_final(c.hmac, out, &len, 32) == 1 &&
           len == 32;
}

/// TLS 1.3 HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, for
/// outputs of at most one SHA-256 block: T(1) = HMAC(secret, info || 0x01).
bool expand_label(CryptoContexts& c, const uint8_t (&secret)[32], std::string_view label, uint8_t* out,
                  std::size_t out_len) noexcept
{
    uint8_t info[64];
    const std::size_t full = 6 + label.size();
    if (out_len > 32 || full > 255 || 4 + full + 1 > sizeof(info))
        return false;
    std::size_t n = 0;
    info[n++] = static_cast<uint8_t>(out_len >> 8);
    info[n++] = static_cast<uint8_t>(out_len);
    info[n++] = static_cast<uint8_t>(full);
    std::memcpy(info + n, "tls13 ", 6);
    n += 6;
    std::memcpy(info + n, label.data(), label.size());
    n += label.size();
    info[n++] = 0;  // context length
    info[n++] = 1;  // block counter
    uint8_t t[32];
    if (!hmac_sha256(c, secret, 32, info, n, nullptr, 0, t))
        return false;
    std::memcpy(out, t, out_len);
    return true;
}

bool aes_ecb_block(CryptoContexts& c, const uint8_t (&key)[16], const uint8_t* in, uint8_t (&out)[16]) noexcept
{
    int len = 0;
    return EVP_EncryptInit_ex(c.ecb, nullptr, nullptr, key, nullptr) == 1 &&
           EVP_EncryptUpdate(c.ecb, out, &len, in, 16) == 1 && len == 16;
}

/// AES-128-GCM open, in place (ct -> plain), 16-byte tag after the ciphertext.
bool aes_gcm_open(CryptoContexts& c, const QuicInitialKeys& k, const uint8_t (&nonce)[12], const uint8_t* aad,
                  std::size_t aad_len, uint8_t* ct, std::size_t ct_len, const uint8_t* tag) noexcept
{
    int len = 0;
    if (EVP_DecryptInit_ex(c.gcm, nullptr, nullptr, k.key, nonce) != 1 ||
        EVP_DecryptUpdate(c.gcm, nullptr, &len, aad, static_cast<int>(aad_len)) != 1 ||
        EVP_DecryptUpdate(c.gcm, ct, &len, ct, static_cast<int>(ct_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c.gcm, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagLen), const_cast<uint8_t*>(tag)) != 1)
        return false;
    int fin = 0;
    return EVP_DecryptFinal_ex(c.gcm, ct + len, &fin) == 1;
}

/// Walks the frames of a decrypted Initial payload, placing CRYPTO data.
QuicGiveUp read_frames(const uint8_t* p, std::size_t n, bool google_tls, HelloAssembler& hello,
                       QuicDatagramInfo& info) noexcept
{
    std::size_t pos = 0;
    while (pos < n) {
        if (p[pos] == 0x00) { // PADDING, usually a long run
            ++pos;
            continue;
        }
        uint64_t type = 0;
        if (!varint(p, n, pos, type))
            return QuicGiveUp::FrameInvalid;
        uint64_t a = 0, b = 0, c = 0;
        // Google's T050/T051 number CRYPTO 0x08 (IETF 0x06; 0x08 is STREAM there).
        if (google_tls && type == 0x08)
            type = 0x06;
        else if (google_tls && type == 0x06)
            return QuicGiveUp::FrameInvalid;
        switch (type) {
        case 0x01: // PING
            break;
        case 0x02:
        case 0x03: { // ACK: largest, delay, range count, first range, ranges, [ECN counts]
            uint64_t ranges = 0;
            if (!varint(p, n, pos, a) || !varint(p, n, pos, b) || !varint(p, n, pos, ranges) ||
                !varint(p, n, pos, c) || ranges > n)
                return QuicGiveUp::FrameInvalid;
            for (uint64_t i = 0; i < 2 * ranges + (type == 0x03 ? 3 : 0); ++i)
                if (!varint(p, n, pos, a))
                    return QuicGiveUp::FrameInvalid;
            break;
        }
        case 0x06: { // CRYPTO: offset, length, data
            if (!varint(p, n, pos, a) || !varint(p, n, pos, b) || b > n - pos)
                return QuicGiveUp::FrameInvalid;
            const auto st = hello.add(a, {p + pos, static_cast<std::size_t>(b)});
            pos += b;
            if (info.crypto_frames < UINT8_MAX)
                ++info.crypto_frames;
            if (st == ParseStatus::Malformed)
                return QuicGiveUp::TooLarge;
            break;
        }
        case 0x1c: { // CONNECTION_CLOSE: error, frame type, reason
            if (!varint(p, n, pos, a) || !varint(p, n, pos, b) || !varint(p, n, pos, c) || c > n - pos)
                return QuicGiveUp::FrameInvalid;
            return QuicGiveUp::None;
        }
        default:
            return QuicGiveUp::FrameInvalid;
        }
    }
    return QuicGiveUp::None;
}

/// Removes header protection and decrypts one Initial packet (p, packet_len
/// bytes, packet number at pn_off) with the client keys of `dcid` into pkt;
/// hdr_len is then the unprotected header length.
bool open_initial(uint32_t version, Bytes dcid, const uint8_t* p, std::size_t packet_len, std::size_t pn_off,
                  uint8_t (&pkt)[kMaxPacket], std::size_t& hdr_len) noexcept
{
    QuicInitialKeys keys;
    if (!quic_initial_keys(version, dcid, false, keys))
        return false;
    CryptoContexts& c = crypto();
    uint8_t mask[16];
    if (!aes_ecb_block(c, keys.hp, p + pn_off + 4, mask))
        return false;
    std::memcpy(pkt, p, packet_len);
    pkt[0] = static_cast<uint8_t>(pkt[0] ^ (mask[0] & 0x0f));
    const std::size_t pn_len = (pkt[0] & 3u) + 1;
    if (packet_len - pn_off < pn_len + kTagLen)
        return false;
    uint8_t nonce[12];
    std::memcpy(nonce, keys.iv, 12);
    for (std::size_t i = 0; i < pn_len; ++i) {
        pkt[pn_off + i] = static_cast<uint8_t>(pkt[pn_off + i] ^ mask[1 + i]);
        // The first Initials have small packet numbers: the truncated
        // number is the full one, right-aligned in the nonce.
        nonce[12 - pn_len + i] = static_cast<uint8_t>(nonce[12 - pn_len + i] ^ pkt[pn_off + i]);
    }
    hdr_len = pn_off + pn_len;
    const std::size_t ct_len = packet_len - hdr_len - kTagLen;
    return aes_gcm_open(c, keys, nonce, pkt, hdr_len, pkt + hdr_len, ct_len, pkt + hdr_len + ct_len);
}

} // namespace

// ---------------------------------------------------------------- assembler

void HelloAssembler::reset() noexcept
{
    status_ = ParseStatus::NeedMore;
    filled_ = 0;
    msg_len_ = 0;
    tag = 0;
    dcid_len = 0;
    std::memset(have_, 0, sizeof(have_));
}

void HelloAssembler::advance() noexcept
{
    while (filled_ < kCapacity && (filled_ & 7) == 0 && have_[filled_ / 8] == 0xff)
        filled_ += 8;
    while (filled_ < kCapacity && (have_[filled_ / 8] >> (filled_ & 7) & 1))
        ++filled_;
    if (msg_len_ == 0 && filled_ >= 4) {
        const uint32_t want = 4 + be24(buf_ + 1);
        if (want > kCapacity) {
            status_ = ParseStatus::Malformed;
            return;
        }
        msg_len_ = want;
    }
    if (msg_len_ && filled_ >= msg_len_)
        status_ = ParseStatus::Ok;
}

ParseStatus HelloAssembler::add(uint64_t offset, Bytes data) noexcept
{
    if (status_ != ParseStatus::NeedMore || data.empty())
        return status_;
    if (offset >= kCapacity || data.size() > kCapacity - offset)
        return status_ = ParseStatus::Malformed;
    const auto off = static_cast<uint32_t>(offset);
    const auto len = static_cast<uint32_t>(data.size());
    if (msg_len_ && off >= msg_len_)
        return status_; // past the message (a following handshake message)
    std::memcpy(buf_ + off, data.data(), len);
    for (uint32_t i = off; i < off + len; ++i)
        have_[i / 8] = static_cast<uint8_t>(have_[i / 8] | 1u << (i & 7));
    advance();
    return status_;
}

// ---------------------------------------------------------------- versions

std::string_view quic_give_up_name(QuicGiveUp r) noexcept
{
    switch (r) {
    case QuicGiveUp::None: return "none";
    case QuicGiveUp::NotLongHeader: return "not-long-header";
    case QuicGiveUp::UnknownVersion: return "unknown-version";
    case QuicGiveUp::NotInitial: return "not-initial";
    case QuicGiveUp::Truncated: return "truncated";
    case QuicGiveUp::HeaderInvalid: return "header-invalid";
    case QuicGiveUp::DecryptFailed: return "decrypt-failed";
    case QuicGiveUp::FrameInvalid: return "frame-invalid";
    case QuicGiveUp::TooLarge: return "too-large";
    }
    return "?";
}

QuicVersionInfo quic_version_info(uint32_t version) noexcept
{
    QuicVersionInfo v;
    v.known = true;
    if (version == kVersionV1) {
        v.salt = kSaltV1;
    } else if (version == kVersionV2) {
        v.salt = kSaltV2;
        v.v2 = true;
    } else if (version == kVersionQ050) {
        v.salt = kSaltQ050;
        v.gquic = true;
    } else if (version == kVersionT050) {
        v.salt = kSaltT50;
    } else if (version == kVersionT051) {
        v.salt = kSaltT51;
    } else if (version == kVersionMvfst22) {
        v.salt = kSaltDraft22;
    } else if (version == kVersionMvfst27 || version == kVersionMvfstExp) {
        v.salt = kSaltDraft23;
    } else if ((version >> 8) == 0xff0000) {
        const uint32_t d = version & 0xff;
        if (d == 22)
            v.salt = kSaltDraft22;
        else if (d >= 23 && d <= 28)
            v.salt = kSaltDraft23;
        else if (d >= 29 && d <= 32)
            v.salt = kSaltDraft29;
        else if (d == 33 || d == 34)
            v.salt = kSaltV1;
        else
            v.known = false;
    } else if ((version & 0x0f0f0f0f) == 0x0a0a0a0a) {
        // Reserved "forcing version negotiation" versions: nDPI reads them
        // with draft-29's keys, as some clients send them with those.
        v.salt = kSaltDraft29;
    } else {
        v.known = false;
    }
    return v;
}

bool quic_initial_keys(uint32_t version, Bytes dcid, bool server, QuicInitialKeys& out) noexcept
{
    const QuicVersionInfo v = quic_version_info(version);
    if (!v.known)
        return false;
    CryptoContexts& c = crypto();
    if (!c.init())
        return false;
    // HKDF-Extract(salt, DCID) = HMAC(salt, DCID).
    uint8_t initial[32];
    if (!hmac_sha256(c, v.salt, 20, dcid.data(), dcid.size(), nullptr, 0, initial))
        return false;
    uint8_t secret[32];
    if (!expand_label(c, initial, server ? "server in" : "client in", secret, 32))
        return false;
    return expand_label(c, secret, v.v2 ? "quicv2 key" : "quic key", out.key, 16) &&
           expand_label(c, secret, v.v2 ? "quicv2 iv" : "quic iv", out.iv, 12) &&
           expand_label(c, secret, v.v2 ? "quicv2 hp" : "quic hp", out.hp, 16);
}

bool quic_looks_initial(Bytes d) noexcept
{
    // Long header with the fixed bit (gQUIC T05x sets it too), a known version.
    if (d.size() < 7 || (d[0] & 0xc0) != 0xc0)
        return false;
    const QuicVersionInfo v = quic_version_info(be32(d.data() + 1));
    return v.known && !v.gquic;
}

// ---------------------------------------------------------------- packets

ParseStatus quic_read_initial(Bytes datagram, HelloAssembler& hello, QuicDatagramInfo& info) noexcept
{
    info = QuicDatagramInfo{};
    const uint8_t* d = datagram.data();
    const std::size_t n = datagram.size();
    std::size_t off = 0;
    QuicGiveUp give_up = QuicGiveUp::None;
    bool long_seen = false;
    while (off < n && give_up == QuicGiveUp::None) {
        const uint8_t* p = d + off;
        const std::size_t left = n - off;
        if (left < 7 || !(p[0] & 0x80)) {
            if (!long_seen)
                give_up = QuicGiveUp::NotLongHeader;
            break; // a short-header packet (or trailing padding) ends the datagram's long packets
        }
        const uint32_t version = be32(p + 1);
        const QuicVersionInfo v = quic_version_info(version);
        if (!v.known || v.gquic) {
            give_up = long_seen ? QuicGiveUp::None : QuicGiveUp::UnknownVersion;
            break;
        }
        long_seen = true;
        info.version = version;
        std::size_t pos = 5;
        const uint8_t dcid_len = p[pos++];
        if (dcid_len > 20 || left - pos < dcid_len + 1u) {
            give_up = dcid_len > 20 ? QuicGiveUp::HeaderInvalid : QuicGiveUp::Truncated;
            break;
        }
        const Bytes dcid(p + pos, dcid_len);
        pos += dcid_len;
        const uint8_t scid_len = p[pos++];
        if (scid_len > 20 || left - pos < scid_len) {
            give_up = scid_len > 20 ? QuicGiveUp::HeaderInvalid : QuicGiveUp::Truncated;
            break;
        }
        pos += scid_len;
        const uint8_t type = (p[0] >> 4) & 3;
        const bool initial = v.v2 ? type == 1 : type == 0;
        const bool retry = v.v2 ? type == 0 : type == 3;
        if (retry)
            break; // no Length field: it fills the datagram
        uint64_t token_len = 0;
        if (initial && (!varint(p, left, pos, token_len) || token_len > left - pos)) {
            give_up = QuicGiveUp::Truncated;
            break;
        }
        pos += token_len;
        uint64_t length = 0;
        if (!varint(p, left, pos, length) || length > left - pos) {
            give_up = QuicGiveUp::Truncated;
            break;
        }
        const std::size_t pn_off = pos;
        const std::size_t packet_len = pn_off + static_cast<std::size_t>(length);
        off += packet_len;
        if (!initial)
            continue; // 0-RTT or Handshake coalesced after the Initial
        // Sample at pn_off + 4 (RFC 9001 §5.4.2); the packet must also hold
        // a 1-byte packet number and the tag.
        if (length < 4 + 16 || length < 1 + kTagLen) {
            give_up = QuicGiveUp::HeaderInvalid;
            break;
        }
        if (packet_len > kMaxPacket) {
            give_up = QuicGiveUp::TooLarge;
            break;
        }
        // Keys of the client's first DCID, then of this packet's own DCID
        // (a new connection attempt on the same addresses).
        const Bytes first(hello.dcid, hello.dcid_len);
        const bool same = first.size() == dcid.size() && std::equal(first.begin(), first.end(), dcid.begin());
        uint8_t pkt[kMaxPacket];
        std::size_t hdr_len = 0;
        give_up = QuicGiveUp::DecryptFailed;
        for (int attempt = hello.dcid_len && !same ? 0 : 1; attempt < 2; ++attempt) {
            if (open_initial(version, attempt == 0 ? first : dcid, p, packet_len, pn_off, pkt, hdr_len)) {
                give_up = QuicGiveUp::None;
                break;
            }
        }
        if (give_up != QuicGiveUp::None)
            break;
        if (hello.dcid_len == 0) {
            std::memcpy(hello.dcid, dcid.data(), dcid.size());
            hello.dcid_len = static_cast<uint8_t>(dcid.size());
        }
        if (info.initials < UINT8_MAX)
            ++info.initials;
        const bool google_tls = version == kVersionT050 || version == kVersionT051;
        give_up = read_frames(pkt + hdr_len, packet_len - hdr_len - kTagLen, google_tls, hello, info);
    }
    if (hello.status() == ParseStatus::Ok)
        return ParseStatus::Ok;
    if (give_up == QuicGiveUp::None && info.initials == 0)
        give_up = long_seen ? QuicGiveUp::NotInitial : QuicGiveUp::NotLongHeader;
    info.give_up = give_up;
    switch (give_up) {
    case QuicGiveUp::None:
        return ParseStatus::NeedMore;
    case QuicGiveUp::NotLongHeader:
    case QuicGiveUp::UnknownVersion:
    case QuicGiveUp::NotInitial:
        return ParseStatus::NotMatched;
    default:
        return ParseStatus::Malformed;
    }
}

// ---------------------------------------------------------------- transport parameters

ParseStatus quic_user_agent(Bytes msg, FixedString<256>& out) noexcept
{
    out.clear();
    if (msg.size() < 4 || msg[0] != kTlsHandshakeClientHello)
        return ParseStatus::NotMatched;
    const std::size_t n = std::min<std::size_t>(msg.size(), 4 + be24(msg.data() + 1));
    const uint8_t* p = msg.data();
    std::size_t pos = 4 + 2 + 32; // header, legacy_version, random
    auto skip8 = [&] { return pos < n && (pos += 1 + p[pos]) <= n; };
    auto skip16 = [&] { return pos + 2 <= n && (pos += 2 + be16(p + pos)) <= n; };
    if (pos > n || !skip8() || !skip16() || !skip8() || pos + 2 > n)
        return ParseStatus::Malformed;
    const std::size_t ext_end = pos + 2 + be16(p + pos);
    pos += 2;
    if (ext_end > n)
        return ParseStatus::Malformed;
    while (pos + 4 <= ext_end) {
        const uint16_t type = be16(p + pos);
        const std::size_t len = be16(p + pos + 2);
        pos += 4;
        if (len > ext_end - pos)
            return ParseStatus::Malformed;
        // quic_transport_parameters: 0x39 (RFC 9001), 0xffa5 (drafts).
        if (type == 0x0039 || type == 0xffa5) {
            const std::size_t end = pos + len;
            std::size_t q = pos;
            while (q < end) {
                uint64_t id = 0, plen = 0;
                if (!varint(p, end, q, id) || !varint(p, end, q, plen) || plen > end - q)
                    return ParseStatus::Malformed;
                if (id == 0x3129) {
                    out.assign(Bytes(p + q, static_cast<std::size_t>(plen)));
                    return ParseStatus::Ok;
                }
                q += plen;
            }
            return ParseStatus::NotMatched;
        }
        pos += len;
    }
    return ParseStatus::NotMatched;
}

// ---------------------------------------------------------------- gQUIC

namespace {

/// The tag list of a CHLO message: `chlo` starts at "CHLO", `left` bytes.
ParseStatus read_chlo_tags(const uint8_t* chlo, std::size_t left, GquicChlo& out) noexcept
{
    if (left < 8)
        return ParseStatus::Malformed;
    const std::size_t tags = static_cast<std::size_t>(chlo[4] | chlo[5] << 8);
    const std::size_t values = 8 + tags * 8;
    if (left < values)
        return ParseStatus::Malformed;
    uint32_t prev_end = 0;
    for (std::size_t i = 0; i < tags; ++i) {
        const uint8_t* e = chlo + 8 + i * 8;
        const uint32_t end = le32(e + 4);
        if (end < prev_end || end > left - values)
            return ParseStatus::Malformed;
        const Bytes value(chlo + values + prev_end, end - prev_end);
        if (std::memcmp(e, "SNI\0", 4) == 0)
            out.sni.assign(value);
        else if (std::memcmp(e, "UAID", 4) == 0)
            out.uaid.assign(value);
        prev_end = end;
    }
    return ParseStatus::Ok;
}

const uint8_t* find_chlo(const uint8_t* p, std::size_t n) noexcept
{
    for (std::size_t i = 0; i + 4 <= n; ++i)
        if (p[i] == 'C' && p[i + 1] == 'H' && p[i + 2] == 'L' && p[i + 3] == 'O')
            return p + i;
    return nullptr;
}

} // namespace

ParseStatus parse_gquic_chlo(Bytes datagram, GquicChlo& out) noexcept
{
    out = GquicChlo{};
    const uint8_t* d = datagram.data();
    const std::size_t n = datagram.size();
    // Q046/Q050 long header (version at 1), or the public header of Q043
    // and older with the version flag and an 8-byte connection ID (version at 9).
    auto is_q = [&](std::size_t at) { return n >= at + 4 && d[at] == 'Q' && d[at + 1] == '0'; };
    if (n >= 5 && (d[0] & 0x80) && is_q(1))
        out.version = be32(d + 1);
    else if (n >= 13 && (d[0] & 0x09) == 0x09 && is_q(9))
        out.version = be32(d + 9);
    else
        return ParseStatus::NotMatched;
    if (out.version == kVersionQ050) {
        // IETF-style Initial: DCID, SCID, token, Length, protected payload.
        std::size_t pos = 5;
        if (n < pos + 1 || d[pos] > 20 || n - pos - 1 < d[pos] + 1u)
            return ParseStatus::Malformed;
        const Bytes dcid(d + pos + 1, d[pos]);
        pos += 1 + d[pos];
        if (d[pos] > 20 || n - pos - 1 < d[pos])
            return ParseStatus::Malformed;
        pos += 1 + d[pos];
        uint64_t token = 0, length = 0;
        if (((d[0] >> 4) & 3) != 0)
            return ParseStatus::NotMatched; // not an Initial
        if (!varint(d, n, pos, token) || token > n - pos)
            return ParseStatus::Malformed;
        pos += token;
        if (!varint(d, n, pos, length) || length > n - pos || length < 4 + 16 || pos + length > kMaxPacket)
            return ParseStatus::Malformed;
        uint8_t pkt[kMaxPacket];
        std::size_t hdr_len = 0;
        const std::size_t packet_len = pos + static_cast<std::size_t>(length);
        if (!open_initial(kVersionQ050, dcid, d, packet_len, pos, pkt, hdr_len))
            return ParseStatus::Malformed;
        const std::size_t plain = packet_len - hdr_len - kTagLen;
        const uint8_t* chlo = find_chlo(pkt + hdr_len, plain);
        if (!chlo)
            return ParseStatus::NotMatched;
        return read_chlo_tags(chlo, plain - static_cast<std::size_t>(chlo - (pkt + hdr_len)), out);
    }
    // The CHLO sits in a STREAM frame after a few header and frame bytes.
    const uint8_t* chlo = find_chlo(d + 5, n - 5);
    if (!chlo)
        return ParseStatus::NotMatched;
    return read_chlo_tags(chlo, n - static_cast<std::size_t>(chlo - d), out);
}

} // namespace weir::engine::dpi
