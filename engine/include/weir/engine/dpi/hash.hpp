// MD5 (JA3/JA3S) and SHA-256 (JA4's truncated hashes), streaming and
// allocation-free, so fingerprints can be hashed while the ClientHello is
// walked without building the whole fingerprint string first. The block
// functions are OpenSSL's (SHA extensions / AVX2 where the CPU has them);
// the small pieces a fingerprint is fed in are gathered here into whole
// blocks first, so most update() calls are a copy of a few bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir::engine::dpi {

/// RFC 1321 MD5.
class Md5 {
public:
    Md5() noexcept;
    void update(const void* data, std::size_t len) noexcept;
    void update(std::string_view s) noexcept { update(s.data(), s.size()); }
    /// Finishes the digest; the object must not be updated afterwards.
    std::array<uint8_t, 16> finish() noexcept;

private:
    // OpenSSL's MD5_CTX (92 bytes; checked in hash.cpp), kept opaque here.
    alignas(8) uint8_t ctx_[96];
    uint32_t have_ = 0; ///< bytes waiting in buf_
    uint8_t buf_[64];
};

/// FIPS 180-4 SHA-256.
class Sha256 {
public:
    Sha256() noexcept;
    void update(const void* data, std::size_t len) noexcept;
    void update(std::string_view s) noexcept { update(s.data(), s.size()); }
    std::array<uint8_t, 32> finish() noexcept;

private:
    // OpenSSL's SHA256_CTX (112 bytes; checked in hash.cpp), kept opaque here.
    alignas(8) uint8_t ctx_[112];
    uint32_t have_ = 0; ///< bytes waiting in buf_
    uint8_t buf_[64];
};

/// Lower-case hex of `len` bytes into `out` (2*len chars, no NUL added).
void to_hex(const uint8_t* data, std::size_t len, char* out) noexcept;

} // namespace weir::engine::dpi
