// Receiving side of the ntopng ZMQ format (docs/zmq.md): header frames of
// every layout ntopng accepts, bounded zlib decompression and walks over
// TLV flow records and over nProbe JSON flow payloads (one flat object or
// an array of them). Used by weir-collector and the fuzz target.
//
// Everything here takes untrusted bytes: no input makes it read out of
// bounds, allocate after create(), or decompress past its limit.
#pragma once

#include <weir/core/result.hpp>
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace weir::exporters {

enum class ZmqError : uint8_t {
    None = 0,
    BadHeaderLength,  ///< not 24, 28, 36 or 40 bytes
    BadVersion,       ///< version byte above 4
    PayloadTooBig,    ///< frame above 131072 bytes (ntopng drops it)
    Inflate,          ///< not a valid zlib stream
    InflateTooBig,    ///< decompresses past the limit
    Tlv,              ///< bad TLV preamble or item
    Json,             ///< bad JSON flow payload
    kCount
};

std::string_view zmq_error_name(ZmqError e) noexcept;

/// A header frame as ntopng interprets it.
struct ZmqParsedHeader {
    ZmqHeader h;               ///< fields of the layout found (zeros where absent)
    std::size_t length = 0;    ///< 24, 28, 36 or 40
    bool tlv = false;
    bool compressed = false;   ///< payload is zlib (v4 flag)
    bool compat_zero_prefix = false; ///< pre-v4: check payload byte 0 == 0 for zlib
};

/// Parses a header frame following ntopng's collect_flows() rules.
ZmqError parse_zmq_header(std::span<const uint8_t> frame, ZmqParsedHeader& out) noexcept;

class ZmqPayloadDecoder {
public:
    /// `max_decompressed` bounds every decompressed payload (zlib bombs).
    /// Errors: EINVAL for 0; ENOMEM when zlib cannot be set up.
    static Result<std::unique_ptr<ZmqPayloadDecoder>> create(std::size_t max_decompressed);
    ~ZmqPayloadDecoder();

    /// The plain payload of `frame` (decompressed when the header says so,
    /// into a buffer owned here, valid until the next call).
    /// Errors: PayloadTooBig, Inflate, InflateTooBig. With a v4 header the
    /// limit is also ntopng's: the size field at offset 24 plus 16, or 43690
    /// when that field is 0, so a sender that puts the compressed length
    /// there fails here as it fails in ntopng.
    ZmqError payload(const ZmqParsedHeader& h, std::span<const uint8_t> frame,
                     std::span<const uint8_t>& out) noexcept;

private:
    explicit ZmqPayloadDecoder(std::size_t max);
    std::vector<uint8_t> buf_;
    struct Zlib;
    std::unique_ptr<Zlib> z_;
};

/// Receives the items of each TLV record, then its end. A record cut by an
/// error never gets on_record_end().
class TlvRecordVisitor {
public:
    virtual ~TlvRecordVisitor() = default;
    virtual void on_item(const tlv::Item& item) noexcept = 0;
    virtual void on_record_end() noexcept = 0;
};

struct TlvWalkResult {
    uint64_t records = 0;      ///< complete records delivered
    bool unterminated = false; ///< items after the last end-of-record (dropped)
    tlv::ReadError error = tlv::ReadError::None;
};

/// Walks a TLV payload (preamble first). Stops at the first error.
TlvWalkResult walk_tlv_records(std::span<const uint8_t> payload, TlvRecordVisitor& v) noexcept;

struct JsonWalkResult {
    uint64_t records = 0;     ///< complete objects delivered
    std::string_view error;   ///< empty when the whole payload was valid
    std::size_t offset = 0;   ///< where the error was found
};

/// nProbe JSON flows: one object, or an array of objects, whose values are
/// strings, numbers, true/false or null (skipped); a nested value is an
/// error, so the walk needs no recursion. Keys are mapped back to what a TLV
/// record would carry: numeric strings ("8") and ntop's "35632.N" become
/// integer keys (57472 + N), weir's labels ("IPV4_SRC_ADDR") their id, any
/// other string stays a string key. Integers become U64 (I64 when negative),
/// other numbers Float, true/false U8. Strings are unescaped (\uXXXX below
/// 0x100 as that byte, as weir escapes raw bytes; others as UTF-8) into a
/// buffer owned here, valid until the next walk. Stops at the first error;
/// the objects before it have been delivered, the one it cut has not.
class JsonFlowReader {
public:
    /// `max_payload` bounds the payloads walk() takes (larger ones fail).
    explicit JsonFlowReader(std::size_t max_payload) : scratch_(max_payload) {}
    JsonWalkResult walk(std::span<const uint8_t> payload, TlvRecordVisitor& v) noexcept;

private:
    std::vector<char> scratch_;
};

} // namespace weir::exporters
