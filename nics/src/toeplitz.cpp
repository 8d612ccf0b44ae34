// Software Toeplitz hash (see rss.hpp). Bit by bit: for every set input bit
// the 32-bit key window starting at that bit is XORed into the result; the
// window slides one key bit per input bit. Control-plane speed is enough:
// this checks keys and predicts queues, it is not on the packet path.
#include <weir/nics/rss.hpp>

namespace weir::nics {

uint32_t toeplitz_hash(std::span<const uint8_t> key, std::span<const uint8_t> data) noexcept
{
    auto key_bit = [&](size_t bit) -> uint32_t {
        const size_t byte = bit / 8;
        if (byte >= key.size())
            return 0;
        return (key[byte] >> (7 - bit % 8)) & 1u;
    };
    uint32_t window = 0;
    for (size_t b = 0; b < 32; ++b)
        window = (window << 1) | key_bit(b);

    uint32_t hash = 0;
    size_t next = 32; // next key bit to shift into the window
    for (uint8_t byte : data) {
        for (int b = 7; b >= 0; --b) {
            if ((byte >> b) & 1u)
                hash ^= window;
            window = (window << 1) | key_bit(next++);
        }
    }
    return hash;
}

bool is_symmetric_key(std::span<const uint8_t> key) noexcept
{
    if (key.empty() || key.size() % 2 != 0)
        return false;
    for (size_t i = 2; i < key.size(); ++i)
        if (key[i] != key[i % 2])
            return false;
    return true;
}

std::vector<uint8_t> symmetric_key(size_t size)
{
    std::vector<uint8_t> k(size);
    for (size_t i = 0; i < size; ++i)
        k[i] = (i % 2 == 0) ? 0x6d : 0x5a;
    return k;
}

} // namespace weir::nics
