// nDPI serializer "tlv" format, as ntopng reads flow records from ZMQ
// (docs/zmq.md, shared notes ntopng-zmq.md §3): a 2-byte preamble (version 1,
// format 1), then items of one type byte (key type << 4 | value type), the
// key, the value; a record ends with a single end-of-record byte.
//
// Writer: integer keys and unsigned values are written in the smallest
// big-endian width that holds them, as nDPI's ndpi_serialize_* do, so the
// bytes match nDPI's own output. Reader: a bounds-checked pull parser that
// never reads outside its buffer and rejects the types ntopng rejects in
// flows (blocks, lists). Neither allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace weir::exporters::tlv {

enum class Type : uint8_t {
    Unknown = 0, ///< also "end of buffer"
    EndOfRecord = 1,
    U8 = 2,
    U16 = 3,
    U32 = 4,
    U64 = 5,
    I8 = 6,
    I16 = 7,
    I32 = 8,
    I64 = 9,
    Float = 10,
    String = 11,
    StartBlock = 12,
    EndBlock = 13,
    StartList = 14,
    EndList = 15,
};

inline constexpr uint8_t kSerializerVersion = 1;
inline constexpr uint8_t kFormatTlv = 1;

/// Flow keys weir sends: NetFlow v9 / IPFIX element ids (PEN 0), ntop fields
/// as 57472 + n. The only place these numbers are written down in code.
namespace key {
inline constexpr uint32_t kInBytes = 1;
inline constexpr uint32_t kInPkts = 2;
inline constexpr uint32_t kProtocol = 4;
inline constexpr uint32_t kSrcTos = 5;
inline constexpr uint32_t kTcpFlags = 6;
inline constexpr uint32_t kL4SrcPort = 7;
inline constexpr uint32_t kIpv4SrcAddr = 8;
inline constexpr uint32_t kL4DstPort = 11;
inline constexpr uint32_t kIpv4DstAddr = 12;
inline constexpr uint32_t kLastSwitched = 21;
inline constexpr uint32_t kFirstSwitched = 22;
inline constexpr uint32_t kOutBytes = 23;
inline constexpr uint32_t kOutPkts = 24;
inline constexpr uint32_t kIpv6SrcAddr = 27;
inline constexpr uint32_t kIpv6DstAddr = 28;
inline constexpr uint32_t kDstTos = 55;
inline constexpr uint32_t kInSrcMac = 56;
inline constexpr uint32_t kSrcVlan = 58;
inline constexpr uint32_t kIpProtocolVersion = 60;
inline constexpr uint32_t kOutDstMac = 57;
inline constexpr uint32_t kClientTcpFlags = 57550;
inline constexpr uint32_t kServerTcpFlags = 57551;
inline constexpr uint32_t kL7Proto = 57590;
inline constexpr uint32_t kL7ProtoName = 57591;
inline constexpr uint32_t kClientNwLatencyMs = 57595; ///< float ms
inline constexpr uint32_t kServerNwLatencyMs = 57596; ///< float ms
inline constexpr uint32_t kApplLatencyMs = 57597;     ///< float ms
inline constexpr uint32_t kHttpUrl = 57652;
inline constexpr uint32_t kHttpRetCode = 57653;
inline constexpr uint32_t kHttpMethod = 57832;
inline constexpr uint32_t kHttpUserAgent = 57655;
inline constexpr uint32_t kTlsServerName = 57660;
inline constexpr uint32_t kDnsQuery = 57677;
inline constexpr uint32_t kDnsQueryType = 57679;
inline constexpr uint32_t kDnsRetCode = 57680;
inline constexpr uint32_t kHttpSite = 57833;
inline constexpr uint32_t kL7ProtoCategory = 57973;  ///< string, nDPI category name
inline constexpr uint32_t kL7ProtoRisk = 57981;      ///< u64 ndpi_risk bitmap
inline constexpr uint32_t kL7ProtoRiskName = 57982;  ///< string, comma-separated risk names
inline constexpr uint32_t kL7RiskScore = 57999;
inline constexpr uint32_t kL7Confidence = 58032;     ///< ndpi_confidence_t
inline constexpr uint32_t kJa4cHash = 58048;
} // namespace key

/// weir's JSON field name for a numeric key ("IPV4_SRC_ADDR"), or "" when
/// the key is not one of the table above.
std::string_view key_name(uint32_t id) noexcept;

/// The id of one of those names ("IPV4_SRC_ADDR" -> 8), 0 when unknown.
uint32_t key_id(std::string_view name) noexcept;

/// Writes items into a caller-owned buffer. Every put returns false, and
/// writes nothing, when the item does not fit. Inline: a flow record is
/// about twenty puts, and the encoder's rate depends on them.
class Writer {
public:
    Writer(uint8_t* buf, std::size_t capacity) noexcept : buf_(buf), cap_(capacity) {}

    /// Version and format bytes; call once at the start of a payload.
    bool preamble() noexcept
    {
        if (cap_ - pos_ < 2)
            return false;
        buf_[pos_++] = kSerializerVersion;
        buf_[pos_++] = kFormatTlv;
        return true;
    }

    bool put_uint(uint32_t key, uint64_t v) noexcept
    {
        const Width k = key_width(key);
        const Width w = uint_width(v);
        if (cap_ - pos_ < 1 + k.len + w.len)
            return false;
        buf_[pos_++] = type_byte(k.type, w.type);
        be(key, k.len);
        be(v, w.len);
        return true;
    }

    bool put_int(uint32_t key, int64_t v) noexcept
    {
        const Width k = key_width(key);
        const Width w = int_width(v);
        if (cap_ - pos_ < 1 + k.len + w.len)
            return false;
        buf_[pos_++] = type_byte(k.type, w.type);
        be(key, k.len);
        be(static_cast<uint64_t>(v), w.len);
        return true;
    }

    bool put_float(uint32_t key, float v) noexcept
    {
        const Width k = key_width(key);
        if (cap_ - pos_ < 1 + k.len + 4)
            return false;
        buf_[pos_++] = type_byte(k.type, Type::Float);
        be(key, k.len);
        // nDPI copies the float in host order (not portable, but that is the format).
        std::memcpy(buf_ + pos_, &v, 4);
        pos_ += 4;
        return true;
    }

    bool put_string(uint32_t key, std::string_view v) noexcept
    {
        const Width k = key_width(key);
        if (v.size() > 0xffff || cap_ - pos_ < 1 + k.len + 2 + v.size())
            return false;
        buf_[pos_++] = type_byte(k.type, Type::String);
        be(key, k.len);
        be(v.size(), 2);
        std::memcpy(buf_ + pos_, v.data(), v.size());
        pos_ += v.size();
        return true;
    }

    bool put_uint(std::string_view key, uint64_t v) noexcept
    {
        const Width w = uint_width(v);
        if (key.size() > 0xffff || cap_ - pos_ < 1 + 2 + key.size() + w.len)
            return false;
        buf_[pos_++] = type_byte(Type::String, w.type);
        raw_string(key);
        be(v, w.len);
        return true;
    }

    bool put_string(std::string_view key, std::string_view v) noexcept
    {
        if (key.size() > 0xffff || v.size() > 0xffff || cap_ - pos_ < 1 + 2 + key.size() + 2 + v.size())
            return false;
        buf_[pos_++] = type_byte(Type::String, Type::String);
        raw_string(key);
        raw_string(v);
        return true;
    }

    bool end_record() noexcept
    {
        if (cap_ - pos_ < 1)
            return false;
        buf_[pos_++] = static_cast<uint8_t>(Type::EndOfRecord);
        return true;
    }

    [[nodiscard]] std::size_t size() const noexcept { return pos_; }
    void rewind(std::size_t pos) noexcept { pos_ = pos; }

private:
    struct Width {
        Type type;
        std::size_t len;
    };

    // The smallest width that holds the value, as ndpi_serialize_* choose.
    static Width key_width(uint32_t key) noexcept
    {
        if (key <= 0xff) return {Type::U8, 1};
        if (key <= 0xffff) return {Type::U16, 2};
        return {Type::U32, 4};
    }
    static Width uint_width(uint64_t v) noexcept
    {
        if (v <= 0xff) return {Type::U8, 1};
        if (v <= 0xffff) return {Type::U16, 2};
        if (v <= 0xffffffffULL) return {Type::U32, 4};
        return {Type::U64, 8};
    }
    static Width int_width(int64_t v) noexcept
    {
        if (v >= INT8_MIN && v <= INT8_MAX) return {Type::I8, 1};
        if (v >= INT16_MIN && v <= INT16_MAX) return {Type::I16, 2};
        if (v >= INT32_MIN && v <= INT32_MAX) return {Type::I32, 4};
        return {Type::I64, 8};
    }
    static uint8_t type_byte(Type k, Type v) noexcept
    {
        return static_cast<uint8_t>(static_cast<uint8_t>(k) << 4 | static_cast<uint8_t>(v));
    }

    /// Big-endian store of the low n bytes (1, 2, 4 or 8) of v.
    void be(uint64_t v, std::size_t n) noexcept
    {
        if (n == 1) {
            buf_[pos_] = static_cast<uint8_t>(v);
        } else if (n == 2) {
            const uint16_t x = __builtin_bswap16(static_cast<uint16_t>(v));
            std::memcpy(buf_ + pos_, &x, 2);
        } else if (n == 4) {
            const uint32_t x = __builtin_bswap32(static_cast<uint32_t>(v));
            std::memcpy(buf_ + pos_, &x, 4);
        } else {
            const uint64_t x = __builtin_bswap64(v);
            std::memcpy(buf_ + pos_, &x, 8);
        }
        pos_ += n;
    }

    void raw_string(std::string_view s) noexcept
    {
        be(s.size(), 2);
        std::memcpy(buf_ + pos_, s.data(), s.size());
        pos_ += s.size();
    }

    uint8_t* buf_;
    std::size_t cap_;
    std::size_t pos_ = 0;
};

/// One decoded item. Integer values of any width land in u (unsigned types)
/// or i (signed types); strings point into the reader's buffer.
struct Item {
    bool string_key = false;
    uint32_t key = 0;           ///< integer key
    std::string_view key_str;   ///< string key
    Type type = Type::Unknown;  ///< value type as sent
    uint64_t u = 0;
    int64_t i = 0;
    float f = 0;
    std::string_view s;

    [[nodiscard]] bool is_unsigned() const noexcept { return type >= Type::U8 && type <= Type::U64; }
    [[nodiscard]] bool is_signed() const noexcept { return type >= Type::I8 && type <= Type::I64; }
};

enum class ReadError : uint8_t {
    None = 0,
    BadPreamble,   ///< not 0x01 0x01
    Truncated,     ///< an item runs past the end of the buffer
    BadKeyType,    ///< key type not an integer or a string
    BadValueType,  ///< blocks, lists or an unknown code
};

std::string_view read_error_name(ReadError e) noexcept;

class Reader {
public:
    enum class Next : uint8_t { Item, EndOfRecord, End, Error };

    explicit Reader(std::span<const uint8_t> buf) noexcept : buf_(buf) {}

    /// Checks and skips the preamble. False (error() set) when it is wrong.
    bool preamble() noexcept;
    /// The next item, an end of record, the end of the buffer (or a type
    /// byte 0, which ntopng also takes as the end) or an error.
    Next next(Item& out) noexcept;

    [[nodiscard]] ReadError error() const noexcept { return err_; }
    [[nodiscard]] std::size_t offset() const noexcept { return pos_; }

private:
    bool read_be(std::size_t n, uint64_t& v) noexcept;
    Next fail(ReadError e) noexcept
    {
        err_ = e;
        return Next::Error;
    }

    std::span<const uint8_t> buf_;
    std::size_t pos_ = 0;
    ReadError err_ = ReadError::None;
};

} // namespace weir::exporters::tlv
