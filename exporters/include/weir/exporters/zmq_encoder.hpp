// ntopng-compatible ZMQ messages (docs/zmq.md): the 36-byte "v3" header
// (version 4) and the flow encoder that batches FlowRecords into one
// payload, optionally zlib-compressed: nDPI TLV records (what community
// ntopng reads), or nProbe's JSON form, an array of flat objects keyed by
// element id ("8") or by label ("IPV4_SRC_ADDR", nProbe --json-labels),
// which ntopng Pro and scripts read.
//
// Pure, as the NetFlow/IPFIX encoders: records in, (header, payload) pairs
// out through a ZmqMessageSink; no I/O, no clock of its own, no allocation
// after create(). One encoder is one message stream (one ZMQ endpoint): it
// owns the msg_id sequence, which every topic (flows and events) shares,
// because ntopng counts gaps per source_id over all topics.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace weir::exporters {

inline constexpr std::size_t kZmqHeaderSize = 36;
inline constexpr uint8_t kZmqMsgVersion = 4;
inline constexpr uint8_t kZmqFlagTlv = 0x02;
inline constexpr uint8_t kZmqFlagCompressed = 0x04;
/// ntopng's receive buffer: a larger payload frame is dropped as truncated.
inline constexpr std::size_t kZmqMaxPayload = 131072;

/// The 36-byte header, field by field (offsets in docs/zmq.md).
struct ZmqHeader {
    std::array<char, 16> topic{}; ///< NUL-padded
    uint8_t version = kZmqMsgVersion;
    uint8_t flags = 0;
    uint32_t uncompressed_size = 0; ///< offset 20, little-endian
    /// Offset 24, little-endian. ntopng sizes its decompression buffer with
    /// it, so weir writes the UNCOMPRESSED length here too.
    uint32_t size_field = 0;
    uint32_t msg_id = 0;    ///< offset 28, big-endian
    uint32_t source_id = 0; ///< offset 32, little-endian (ntopng reads it as-is)

    [[nodiscard]] std::string_view topic_view() const noexcept;
};

/// Writes `h` as 36 bytes.
void write_zmq_header(const ZmqHeader& h, std::span<uint8_t, kZmqHeaderSize> out) noexcept;

/// Flow payload encoding.
enum class ZmqPayloadFormat : uint8_t {
    Tlv,        ///< nDPI serializer TLV, header flag 0x02
    Json,       ///< JSON array, numeric string keys ("8", "57590")
    JsonLabels, ///< JSON array, label keys ("IPV4_SRC_ADDR", "L7_PROTO")
};

std::string_view zmq_payload_format_name(ZmqPayloadFormat f) noexcept;

struct ZmqEncoderOptions {
    /// Largest uncompressed payload of one flow message (<= 131072). A
    /// compressed payload is never larger than compressBound(this).
    uint32_t max_payload = 65536;
    /// Most flows per message (0 = only the byte limit).
    uint32_t max_flows = 0;
    ZmqPayloadFormat format = ZmqPayloadFormat::Tlv;
    bool compress = false;      ///< flow messages (events stay plain)
    int zlib_level = 1; ///< 1 = fastest: the payload is mostly addresses and small integers
    uint32_t source_id = 0;
};

struct ZmqEncoderStats {
    uint64_t flows_in = 0;
    uint64_t records = 0;
    uint64_t skipped_empty = 0;
    uint64_t messages = 0;       ///< all topics
    uint64_t flow_messages = 0;
    uint64_t event_messages = 0;
    uint64_t payload_bytes = 0;  ///< as sent (compressed when compressed)
    uint64_t raw_bytes = 0;      ///< before compression
    uint64_t compress_errors = 0; ///< sent uncompressed instead
    uint64_t too_big = 0;        ///< records larger than an empty message (not sent)
    uint64_t packets_total = 0;
    uint64_t bytes_total = 0;
};

/// Receives each finished message; spans are valid during the call only.
class ZmqMessageSink {
public:
    virtual ~ZmqMessageSink() = default;
    virtual void on_message(std::span<const uint8_t> header, std::span<const uint8_t> payload,
                            uint32_t flows) noexcept = 0;
};

class ZmqFlowEncoder {
public:
    /// Errors: EINVAL for max_payload below 1 KiB or above 131072, a zlib
    /// level outside 0..9; ENOMEM when zlib cannot be set up.
    static Result<std::unique_ptr<ZmqFlowEncoder>> create(const ZmqEncoderOptions& opts);
    ~ZmqFlowEncoder();

    /// Adds one flow as one record (TLV or JSON object), finishing the message first when the
    /// record would not fit. Flows without packets are skipped and counted.
    void add(const FlowRecord& r, ZmqMessageSink& out) noexcept;
    /// Finishes the current flow message, if it holds a record.
    void flush(ZmqMessageSink& out) noexcept;
    /// Sends `json` as one "event" message (never compressed, TLV flag off).
    void send_event(std::string_view json, ZmqMessageSink& out) noexcept;

    [[nodiscard]] bool pending() const noexcept { return pending_flows_ != 0; }
    [[nodiscard]] uint32_t next_msg_id() const noexcept { return msg_id_; }
    [[nodiscard]] const ZmqEncoderStats& stats() const noexcept { return stats_; }

    /// Writes the TLV record of `r` (no preamble) to buf and returns its
    /// length, 0 when it did not fit. Exposed for tests and benchmarks.
    static std::size_t encode_record(const FlowRecord& r, uint8_t* buf, std::size_t cap) noexcept;
    /// Upper bound of encode_record()'s output.
    /// About 250 bytes of counters and addresses, and up to about 700 of DPI
    /// text (L7Info's bounded strings); fits the smallest payload (1 KiB).
    static constexpr std::size_t kMaxRecord = 1016;

    /// The JSON object of `r` (no separator), keys numeric or labels;
    /// returns its length, 0 when it did not fit. Strings are escaped and
    /// invalid UTF-8 becomes U+FFFD, so the payload is always valid JSON.
    static std::size_t encode_json_record(const FlowRecord& r, bool labels, uint8_t* buf, std::size_t cap) noexcept;

private:
    explicit ZmqFlowEncoder(const ZmqEncoderOptions& opts);
    void finish(std::string_view topic, uint8_t flags, bool compress, std::span<const uint8_t> payload,
                uint32_t flows, ZmqMessageSink& out) noexcept;
    [[nodiscard]] bool json() const noexcept { return opts_.format != ZmqPayloadFormat::Tlv; }

    ZmqEncoderOptions opts_;
    std::vector<uint8_t> payload_;  ///< preamble + records
    std::vector<uint8_t> zbuf_;     ///< compressed payload
    std::size_t used_ = 0;
    std::size_t preamble_ = 0;      ///< TLV: version + format bytes; JSON: '['
    uint32_t pending_flows_ = 0;
    uint32_t msg_id_ = 1;
    struct Zlib;
    std::unique_ptr<Zlib> z_;
    ZmqEncoderStats stats_;
};

} // namespace weir::exporters
