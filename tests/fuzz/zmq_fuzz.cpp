// libFuzzer target for the ZMQ receiving side: header frame parsing, bounded
// zlib decompression and the TLV and JSON flow walks, as weir-collector runs
// them (JSON for payloads whose header has no TLV flag).
// Input: 1 byte header length, the header frame, then the payload frame.
// Checks, besides the sanitizers: every decoded TLV string lies inside the
// buffer it came from, nothing decompresses past the limit, re-walking the
// same payload gives the same result, and a JSON walk delivers no more
// records than the payload has '}' and reports an offset inside it.
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

/// JSON strings live in the reader's scratch buffer, not in the payload.
struct JsonCheck final : TlvRecordVisitor {
    uint64_t items = 0;
    uint64_t ends = 0;
    void on_item(const tlv::Item& it) noexcept override
    {
        ++items;
        if (it.string_key && it.key_str.size() > kJsonLimit)
            std::abort();
    }
    void on_record_end() noexcept override { ++ends; }
    static constexpr std::size_t kJsonLimit = 256 * 1024;
};

void walk_json(std::span<const uint8_t> p)
{
    static JsonFlowReader rd(JsonCheck::kJsonLimit);
    JsonCheck a, b;
    const JsonWalkResult r1 = rd.walk(p, a);
    const JsonWalkResult r2 = rd.walk(p, b);
    std::size_t closes = 0;
    for (uint8_t c : p)
        closes += c == '}';
    if (r1.records != a.ends || r1.records > closes || r1.offset > p.size() || r1.records != r2.records ||
        r1.error != r2.error || r1.offset != r2.offset || a.items != b.items)
        std::abort();
}

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
        walk_json(frame);
        return 0;
    }
    std::span<const uint8_t> plain;
    if (dec.value()->payload(h, frame, plain) != ZmqError::None)
        return 0;
    if (plain.size() > kLimit)
        std::abort();
    if (!h.tlv) {
        walk_json(plain);
        return 0;
    }
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
