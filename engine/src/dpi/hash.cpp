// MD5 and SHA-256 for the TLS fingerprints (see hash.hpp). The compression
// functions are libcrypto's low-level MD5/SHA256 ones, which pick the CPU's
// SHA extensions or vector code at run time (the portable loops they replace
// were a quarter of micro-DPI's instructions on the throughput capture); the
// EVP interface would allocate a context per fingerprint. Checked against the
// RFC 1321 / FIPS 180-4 vectors in tests/unit/dpi_hash_test.cpp.
#include <weir/engine/dpi/hash.hpp>

// MD5_Init/SHA256_Init and friends are deprecated in OpenSSL 3 in favour of
// EVP, but stay in its API and need no allocation.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/md5.h>
#include <openssl/sha.h>

#include <cstring>
#include <new>

namespace weir::engine::dpi {

namespace {

template <class Ctx>
Ctx* ctx_of(uint8_t* storage) noexcept
{
    return std::launder(reinterpret_cast<Ctx*>(storage));
}

/// Gathers small pieces into buf (64 bytes) and hands whole blocks to
/// `blocks(p, len)` (len a multiple of 64), straight from the input when
/// the buffer is empty.
template <class Blocks>
void gather(uint8_t* buf, uint32_t& have, const void* data, std::size_t len, Blocks blocks) noexcept
{
    const auto* p = static_cast<const uint8_t*>(data);
    if (have + len < 64) {
        std::memcpy(buf + have, p, len);
        have += static_cast<uint32_t>(len);
        return;
    }
    if (have) {
        const std::size_t n = 64 - have;
        std::memcpy(buf + have, p, n);
        blocks(buf, 64);
        p += n;
        len -= n;
        have = 0;
    }
    const std::size_t whole = len & ~std::size_t{63};
    if (whole)
        blocks(p, whole);
    std::memcpy(buf, p + whole, len - whole);
    have = static_cast<uint32_t>(len - whole);
}

} // namespace

Md5::Md5() noexcept : ctx_{}, buf_{}
{
    static_assert(sizeof(MD5_CTX) <= sizeof(ctx_) && alignof(MD5_CTX) <= 8);
    MD5_Init(new (ctx_) MD5_CTX);
}

void Md5::update(const void* data, std::size_t len) noexcept
{
    MD5_CTX* c = ctx_of<MD5_CTX>(ctx_);
    gather(buf_, have_, data, len, [c](const uint8_t* p, std::size_t n) { MD5_Update(c, p, n); });
}

std::array<uint8_t, 16> Md5::finish() noexcept
{
    MD5_CTX* c = ctx_of<MD5_CTX>(ctx_);
    MD5_Update(c, buf_, have_);
    have_ = 0;
    std::array<uint8_t, 16> out{};
    MD5_Final(out.data(), c);
    return out;
}

Sha256::Sha256() noexcept : ctx_{}, buf_{}
{
    static_assert(sizeof(SHA256_CTX) <= sizeof(ctx_) && alignof(SHA256_CTX) <= 8);
    SHA256_Init(new (ctx_) SHA256_CTX);
}

void Sha256::update(const void* data, std::size_t len) noexcept
{
    SHA256_CTX* c = ctx_of<SHA256_CTX>(ctx_);
    gather(buf_, have_, data, len, [c](const uint8_t* p, std::size_t n) { SHA256_Update(c, p, n); });
}

std::array<uint8_t, 32> Sha256::finish() noexcept
{
    SHA256_CTX* c = ctx_of<SHA256_CTX>(ctx_);
    SHA256_Update(c, buf_, have_);
    have_ = 0;
    std::array<uint8_t, 32> out{};
    SHA256_Final(out.data(), c);
    return out;
}

void to_hex(const uint8_t* data, std::size_t len, char* out) noexcept
{
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < len; ++i) {
        out[2 * i] = kHex[data[i] >> 4];
        out[2 * i + 1] = kHex[data[i] & 15];
    }
}

} // namespace weir::engine::dpi
