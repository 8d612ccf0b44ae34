// MD5 and SHA-256 of micro-DPI against the RFC 1321 and FIPS 180-2 vectors,
// including input fed in odd-sized pieces across block boundaries.
#include <weir/engine/dpi/hash.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using weir::engine::dpi::Md5;
using weir::engine::dpi::Sha256;

template <class H>
std::string hex_of(H h)
{
    auto d = h.finish();
    std::string s(d.size() * 2, '?');
    weir::engine::dpi::to_hex(d.data(), d.size(), s.data());
    return s;
}

std::string md5(const std::string& in)
{
    Md5 h;
    h.update(in);
    return hex_of(h);
}

std::string sha256(const std::string& in)
{
    Sha256 h;
    h.update(in);
    return hex_of(h);
}

TEST(DpiHash, Md5Rfc1321Vectors)
{
    EXPECT_EQ(md5(""), "d41d8cd98f00b204e9800998ecf8427e");
    EXPECT_EQ(md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
    EXPECT_EQ(md5("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
    EXPECT_EQ(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
              "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(DpiHash, Sha256FipsVectors)
{
    EXPECT_EQ(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(DpiHash, PiecewiseUpdatesEqualOneShot)
{
    std::string in;
    for (int i = 0; i < 300; ++i)
        in += static_cast<char>('a' + i % 26);
    for (std::size_t step : {1u, 3u, 63u, 64u, 65u, 127u}) {
        Md5 m;
        Sha256 s;
        for (std::size_t pos = 0; pos < in.size(); pos += step) {
            m.update(in.data() + pos, std::min(step, in.size() - pos));
            s.update(in.data() + pos, std::min(step, in.size() - pos));
        }
        EXPECT_EQ(hex_of(m), md5(in)) << step;
        EXPECT_EQ(hex_of(s), sha256(in)) << step;
    }
}

} // namespace
