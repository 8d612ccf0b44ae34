// Header parsing, bounded decompression and TLV record walk (see zmq_decoder.hpp).
#include <weir/exporters/zmq_decoder.hpp>

#include <zlib.h>

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
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
    case ZmqError::Json: return "bad JSON";
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

// ---- JSON flows ------------------------------------------------------------

namespace {

/// One pass over a JSON flow payload; see JsonFlowReader.
class JsonWalk {
public:
    JsonWalk(std::span<const uint8_t> in, char* scratch, TlvRecordVisitor& v) noexcept
        : p_(in.data()), end_(in.data() + in.size()), begin_(in.data()), out_(scratch), v_(v)
    {
    }

    JsonWalkResult run() noexcept
    {
        ws();
        if (peek() == '[') {
            ++p_;
            ws();
            if (peek() == ']') {
                ++p_;
            } else {
                for (;;) {
                    if (!object())
                        return res_;
                    ws();
                    if (peek() == ',') {
                        ++p_;
                        ws();
                        continue;
                    }
                    if (peek() != ']')
                        return fail("expected ',' or ']' after an object");
                    ++p_;
                    break;
                }
            }
        } else if (peek() == '{') {
            if (!object())
                return res_;
        } else {
            return fail("expected an array or an object");
        }
        ws();
        if (p_ != end_)
            return fail("data after the payload");
        return res_;
    }

private:
    int peek() const noexcept { return p_ < end_ ? *p_ : -1; }
    void ws() noexcept
    {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r'))
            ++p_;
    }
    JsonWalkResult fail(std::string_view why) noexcept
    {
        if (res_.error.empty()) {
            res_.error = why;
            res_.offset = static_cast<std::size_t>(p_ - begin_);
        }
        return res_;
    }
    bool failed(std::string_view why) noexcept
    {
        fail(why);
        return false;
    }

    static int hex(uint8_t c) noexcept
    {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    bool hex4(uint32_t& v) noexcept
    {
        if (end_ - p_ < 4)
            return false;
        v = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hex(p_[k]);
            if (h < 0)
                return false;
            v = v << 4 | static_cast<uint32_t>(h);
        }
        p_ += 4;
        return true;
    }
    void utf8(uint32_t cp) noexcept
    {
        if (cp < 0x800) {
            *out_++ = static_cast<char>(0xc0 | cp >> 6);
        } else if (cp < 0x10000) {
            *out_++ = static_cast<char>(0xe0 | cp >> 12);
            *out_++ = static_cast<char>(0x80 | (cp >> 6 & 0x3f));
        } else {
            *out_++ = static_cast<char>(0xf0 | cp >> 18);
            *out_++ = static_cast<char>(0x80 | (cp >> 12 & 0x3f));
            *out_++ = static_cast<char>(0x80 | (cp >> 6 & 0x3f));
        }
        *out_++ = static_cast<char>(0x80 | (cp & 0x3f));
    }

    /// A string at p_ (the opening quote), unescaped into the scratch buffer.
    /// The output never outgrows the input: every escape is at least as
    /// long as what it stands for.
    bool string(std::string_view& s) noexcept
    {
        ++p_;
        char* const start = out_;
        for (;;) {
            if (p_ >= end_)
                return failed("unterminated string");
            const uint8_t c = *p_++;
            if (c == '"')
                break;
            if (c < 0x20)
                return failed("control character in a string");
            if (c != '\\') {
                *out_++ = static_cast<char>(c);
                continue;
            }
            if (p_ >= end_)
                return failed("unterminated string");
            const uint8_t e = *p_++;
            switch (e) {
            case '"': *out_++ = '"'; break;
            case '\\': *out_++ = '\\'; break;
            case '/': *out_++ = '/'; break;
            case 'b': *out_++ = '\b'; break;
            case 'f': *out_++ = '\f'; break;
            case 'n': *out_++ = '\n'; break;
            case 'r': *out_++ = '\r'; break;
            case 't': *out_++ = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(cp))
                    return failed("bad \\u escape");
                if (cp < 0x100) {
                    *out_++ = static_cast<char>(cp); // a raw byte, as weir escapes them
                } else if (cp >= 0xd800 && cp < 0xdc00) {
                    uint32_t lo;
                    if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u')
                        return failed("unpaired surrogate");
                    p_ += 2;
                    if (!hex4(lo) || lo < 0xdc00 || lo > 0xdfff)
                        return failed("unpaired surrogate");
                    utf8(0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00));
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    return failed("unpaired surrogate");
                } else {
                    utf8(cp);
                }
                break;
            }
            default:
                return failed("bad escape");
            }
        }
        s = {start, static_cast<std::size_t>(out_ - start)};
        return true;
    }

    static bool all_digits(std::string_view s) noexcept
    {
        if (s.empty())
            return false;
        for (char c : s)
            if (c < '0' || c > '9')
                return false;
        return true;
    }
    static bool parse_u32(std::string_view s, uint32_t& v) noexcept
    {
        if (!all_digits(s) || s.size() > 10)
            return false;
        uint64_t x = 0;
        for (char c : s)
            x = x * 10 + static_cast<uint64_t>(c - '0');
        if (x > 0xffffffffULL)
            return false;
        v = static_cast<uint32_t>(x);
        return true;
    }

    /// Maps a key to what the same field has in a TLV record.
    static void key(std::string_view k, tlv::Item& it) noexcept
    {
        uint32_t id;
        if (parse_u32(k, id)) {
            it.key = id;
            return;
        }
        // "PEN.FIELD": ntop's PEN 35632 is what TLV carries as 57472 + N.
        if (const auto dot = k.find('.'); dot != std::string_view::npos) {
            uint32_t pen, field;
            if (parse_u32(k.substr(0, dot), pen) && parse_u32(k.substr(dot + 1), field)) {
                if (pen == 0) {
                    it.key = field;
                    return;
                }
                if (pen == 35632) {
                    it.key = field < 57472 ? field + 57472 : field;
                    return;
                }
            }
        }
        if (const uint32_t known = tlv::key_id(k)) {
            it.key = known;
            return;
        }
        it.string_key = true;
        it.key_str = k;
    }

    bool number(tlv::Item& it) noexcept
    {
        const uint8_t* start = p_;
        const bool neg = peek() == '-';
        if (neg)
            ++p_;
        const uint8_t* digits = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
            ++p_;
        if (p_ == digits)
            return failed("bad number");
        bool integer = true;
        if (peek() == '.') {
            integer = false;
            ++p_;
            const uint8_t* frac = p_;
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
                ++p_;
            if (p_ == frac)
                return failed("bad number");
        }
        if (peek() == 'e' || peek() == 'E') {
            integer = false;
            ++p_;
            if (peek() == '+' || peek() == '-')
                ++p_;
            const uint8_t* ex = p_;
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
                ++p_;
            if (p_ == ex)
                return failed("bad number");
        }
        const char* b = reinterpret_cast<const char*>(start);
        const char* e = reinterpret_cast<const char*>(p_);
        if (integer && !neg) {
            uint64_t v;
            const auto r = std::from_chars(b, e, v);
            if (r.ec != std::errc{} || r.ptr != e)
                return failed("integer out of range");
            it.type = tlv::Type::U64;
            it.u = v;
            return true;
        }
        if (integer) {
            int64_t v;
            const auto r = std::from_chars(b, e, v);
            if (r.ec != std::errc{} || r.ptr != e)
                return failed("integer out of range");
            it.type = tlv::Type::I64;
            it.i = v;
            return true;
        }
        float f;
        const auto r = std::from_chars(b, e, f);
        if (r.ptr != e || (r.ec != std::errc{} && r.ec != std::errc::result_out_of_range))
            return failed("bad number");
        it.type = tlv::Type::Float;
        it.f = f;
        return true;
    }

    bool literal(std::string_view word) noexcept
    {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::memcmp(p_, word.data(), word.size()) != 0)
            return failed("bad value");
        p_ += word.size();
        return true;
    }

    /// One flat object at p_; delivers its items, then its end.
    bool object() noexcept
    {
        if (peek() != '{')
            return failed("expected an object");
        ++p_;
        ws();
        if (peek() == '}') { // an empty object is no record
            ++p_;
            return true;
        }
        for (;;) {
            if (peek() != '"')
                return failed("expected a key");
            tlv::Item it;
            std::string_view k;
            if (!string(k))
                return false;
            key(k, it);
            ws();
            if (peek() != ':')
                return failed("expected ':'");
            ++p_;
            ws();
            bool deliver = true;
            const int c = peek();
            if (c == '"') {
                if (!string(it.s))
                    return false;
                it.type = tlv::Type::String;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if (!number(it))
                    return false;
            } else if (c == 't' || c == 'f') {
                if (!literal(c == 't' ? "true" : "false"))
                    return false;
                it.type = tlv::Type::U8;
                it.u = c == 't' ? 1 : 0;
            } else if (c == 'n') {
                if (!literal("null"))
                    return false;
                deliver = false;
            } else if (c == '{' || c == '[') {
                return failed("nested value (flow fields are flat)");
            } else {
                return failed("bad value");
            }
            if (deliver)
                v_.on_item(it);
            ws();
            if (peek() == ',') {
                ++p_;
                ws();
                continue;
            }
            if (peek() != '}')
                return failed("expected ',' or '}'");
            ++p_;
            v_.on_record_end();
            ++res_.records;
            return true;
        }
    }

    const uint8_t* p_;
    const uint8_t* end_;
    const uint8_t* begin_;
    char* out_;
    TlvRecordVisitor& v_;
    JsonWalkResult res_;
};

} // namespace

JsonWalkResult JsonFlowReader::walk(std::span<const uint8_t> payload, TlvRecordVisitor& v) noexcept
{
    if (payload.size() > scratch_.size()) {
        JsonWalkResult r;
        r.error = "payload above the reader's limit";
        return r;
    }
    return JsonWalk(payload, scratch_.data(), v).run();
}

} // namespace weir::exporters
