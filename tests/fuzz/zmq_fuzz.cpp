// libFuzzer target for the ZMQ receiving side: header frame parsing, bounded
// zlib decompression and the TLV record walk, as weir-collector runs them.
// Input: 1 byte header length, the header frame, then the payload frame.
// Checks, besides the sanitizers: every decoded string lies inside the
// buffer it came from, nothing decompresses past the limit, and re-walking
// the same payload gives the same result.
#include <weir/exporters/zmq_decoder.hpp>

#include <cstdint>
#include <cstdlib>
#include <span>

using namespace weir::exporters;

namespace {

struct Check final : TlvRecordVisitor {
    std::span<const uint8_t> buf;
    uint64_t items = 0;
    uint64_t ends = 0;
    void inside(std::string_view s) const
    {
        if (s.empty())
            return;
        const auto* p = reinterpret_cast<const uint8_t*>(s.data());
        if (p < buf.data() || p + s.size() > buf.data() + buf.size())
            std::abort();
    }
    void on_item(const tlv::Item& it) noexcept override
    {
        ++items;
        inside(it.key_str);
        inside(it.s);
        if (it.string_key && it.key != 0)
            std::abort();
    }
    void on_record_end() noexcept override { ++ends; }
};

constexpr std::size_t kLimit = 256 * 1024;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    static auto dec = ZmqPayloadDecoder::create(kLimit);
    if (size < 1)
        return 0;
    const std::size_t hlen = data[0];
    if (size < 1 + hlen)
        return 0;
    const std::span<const uint8_t> hdr(data + 1, hlen);
    const std::span<const uint8_t> frame(data + 1 + hlen, size - 1 - hlen);
    ZmqParsedHeader h;
    if (parse_zmq_header(hdr, h) != ZmqError::None) {
        // Still walk the bytes as TLV: the reader must hold on any input.
        Check c;
        c.buf = frame;
        walk_tlv_records(frame, c);
        return 0;
    }
    std::span<const uint8_t> plain;
    if (dec.value()->payload(h, frame, plain) != ZmqError::None)
        return 0;
    if (plain.size() > kLimit)
        std::abort();
    Check a;
    a.buf = plain;
    const TlvWalkResult r1 = walk_tlv_records(plain, a);
    Check b;
    b.buf = plain;
    const TlvWalkResult r2 = walk_tlv_records(plain, b);
    if (r1.records != a.ends || r1.records != r2.records || r1.error != r2.error || a.items != b.items)
        std::abort();
    return 0;
}
