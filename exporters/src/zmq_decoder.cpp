// Header parsing, bounded decompression and TLV record walk (see zmq_decoder.hpp).
#include <weir/exporters/zmq_decoder.hpp>

#include <zlib.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace weir::exporters {

std::string_view zmq_error_name(ZmqError e) noexcept
{
    switch (e) {
    case ZmqError::None: return "none";
    case ZmqError::BadHeaderLength: return "bad header length";
    case ZmqError::BadVersion: return "unsupported header version";
    case ZmqError::PayloadTooBig: return "payload above 131072 bytes";
    case ZmqError::Inflate: return "bad zlib stream";
    case ZmqError::InflateTooBig: return "decompressed payload above the limit";
    case ZmqError::Tlv: return "bad TLV";
    case ZmqError::kCount: break;
    }
    return "unknown";
}

namespace {

uint32_t le32(const uint8_t* p) noexcept
{
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
}

uint32_t be32(const uint8_t* p) noexcept
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return ntohl(v);
}

// ntopng's guess for the decompression buffer when the size field is 0.
constexpr std::size_t kNtopngDefaultInflate = 131072 / 3;

} // namespace

ZmqError parse_zmq_header(std::span<const uint8_t> f, ZmqParsedHeader& out) noexcept
{
    out = ZmqParsedHeader{};
    out.length = f.size();
    const uint8_t* p = f.data();
    if (f.size() == 40) {
        // Legacy v0: 32-byte topic, host-order u32 version.
        std::memcpy(out.h.topic.data(), p, 15);
        const uint32_t ver = le32(p + 32);
        out.h.version = static_cast<uint8_t>(ver > 255 ? 255 : ver);
        out.h.msg_id = 0;
        out.tlv = ver == 3;
        out.compat_zero_prefix = !out.tlv;
        return ZmqError::None;
    }
    if (f.size() != 24 && f.size() != 28 && f.size() != kZmqHeaderSize)
        return ZmqError::BadHeaderLength;
    std::memcpy(out.h.topic.data(), p, 15); // keep a terminating NUL
    out.h.version = p[16];
    if (out.h.version > kZmqMsgVersion)
        return ZmqError::BadVersion;
    if (out.h.version == 1) {
        out.h.msg_id = le32(p + 20); // v1 sends it in host order
    } else if (f.size() == 24) {
        out.h.source_id = p[17];
        out.h.msg_id = be32(p + 20);
    } else if (f.size() == 28) {
        out.h.source_id = le32(p + 24);
        out.h.msg_id = be32(p + 20);
    } else if (out.h.version == kZmqMsgVersion) {
        out.h.flags = p[17];
        out.h.uncompressed_size = le32(p + 20);
        out.h.size_field = le32(p + 24);
        out.h.msg_id = be32(p + 28);
        out.h.source_id = le32(p + 32);
        out.tlv = (out.h.flags & kZmqFlagTlv) != 0;
        out.compressed = (out.h.flags & kZmqFlagCompressed) != 0;
        return ZmqError::None;
    }
    // Compatibility mode: TLV by version, zlib by a leading zero byte.
    out.tlv = out.h.version == 3;
    out.compat_zero_prefix = !out.tlv;
    return ZmqError::None;
}

struct ZmqPayloadDecoder::Zlib {
    z_stream s{};
    bool ok = false;
    ~Zlib()
    {
        if (ok)
            inflateEnd(&s);
    }
};

ZmqPayloadDecoder::ZmqPayloadDecoder(std::size_t max) : buf_(max, 0) {}
ZmqPayloadDecoder::~ZmqPayloadDecoder() = default;

Result<std::unique_ptr<ZmqPayloadDecoder>> ZmqPayloadDecoder::create(std::size_t max_decompressed)
{
    if (max_decompressed == 0)
        return invalid("decompression limit must be above 0");
    std::unique_ptr<ZmqPayloadDecoder> d(new ZmqPayloadDecoder(max_decompressed));
    d->z_ = std::make_unique<Zlib>();
    if (inflateInit(&d->z_->s) != Z_OK)
        return Error{std::make_error_code(std::errc::not_enough_memory), "zlib inflateInit"};
    d->z_->ok = true;
    return d;
}

ZmqError ZmqPayloadDecoder::payload(const ZmqParsedHeader& h, std::span<const uint8_t> frame,
                                    std::span<const uint8_t>& out) noexcept
{
    out = frame;
    if (frame.size() > kZmqMaxPayload)
        return ZmqError::PayloadTooBig;
    std::span<const uint8_t> z;
    std::size_t limit = buf_.size();
    if (h.compressed) {
        z = frame;
        const std::size_t ntop = h.h.size_field ? std::size_t{h.h.size_field} + 16 : kNtopngDefaultInflate;
        limit = std::min(limit, ntop);
    } else if (h.compat_zero_prefix && !frame.empty() && frame[0] == 0) {
        z = frame.subspan(1);
    } else {
        return ZmqError::None;
    }
    z_stream& s = z_->s;
    inflateReset(&s);
    s.next_in = const_cast<Bytef*>(z.data());
    s.avail_in = static_cast<uInt>(z.size());
    s.next_out = buf_.data();
    s.avail_out = static_cast<uInt>(limit);
    const int rc = inflate(&s, Z_FINISH);
    if (rc == Z_STREAM_END) {
        out = {buf_.data(), static_cast<std::size_t>(s.total_out)};
        return ZmqError::None;
    }
    // Output full while the stream still had input: a bomb or a too small size field.
    if ((rc == Z_BUF_ERROR || rc == Z_OK) && s.avail_out == 0)
        return ZmqError::InflateTooBig;
    return ZmqError::Inflate;
}

TlvWalkResult walk_tlv_records(std::span<const uint8_t> payload, TlvRecordVisitor& v) noexcept
{
    TlvWalkResult res;
    tlv::Reader rd(payload);
    if (!rd.preamble()) {
        res.error = rd.error();
        return res;
    }
    tlv::Item item;
    bool open = false;
    for (;;) {
        switch (rd.next(item)) {
        case tlv::Reader::Next::Item:
            v.on_item(item);
            open = true;
            break;
        case tlv::Reader::Next::EndOfRecord:
            if (open) {
                v.on_record_end();
                ++res.records;
            }
            open = false;
            break;
        case tlv::Reader::Next::End:
            res.unterminated = open;
            return res;
        case tlv::Reader::Next::Error:
            res.error = rd.error();
            return res;
        }
    }
}

} // namespace weir::exporters
