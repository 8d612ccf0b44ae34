// FlowDecoder: the receiving side of NetFlow v5, NetFlow v9 (RFC 3954) and
// IPFIX (RFC 7011, RFC 5103 biflow), as a collector such as nfcapd or
// nProbe in collector mode runs it. One datagram (UDP) or one IPFIX message
// (TCP stream, framed by the caller) in, FlowRecords out through a
// FlowRecordSink, with statistics per exporter.
//
// An exporter ("source") is (address, transport session, version, source
// id / observation domain id): v9 and IPFIX templates are scoped by it, and
// so are sequence-number checks. v5 uses engine_type << 8 | engine_id as
// its domain. UDP datagrams share session 0; each TCP connection has its
// own session, whose templates end with it (end_session()).
//
// Everything here takes untrusted bytes: no input makes it read out of
// bounds, loop without progress, or hold more than max_sources sources of
// max_templates templates (each at most kMaxTemplateFields fields).
// Memory is allocated only when a source or template is first seen.
//
// Field ids are those of the encoders (netflow.hpp, ipfix.hpp); the mapping
// onto FlowRecord is in docs/collector.md. ntop's L7 elements (PEN 35632, or
// v9 type 57472 + n: L7_PROTO, L7_PROTO_NAME, DNS_QUERY/_TYPE, DNS_RET_CODE,
// TLS_SERVER_NAME, HTTP_HOST, HTTP_SITE, HTTP_URL, HTTP_USER_AGENT, JA3C,
// JA3S, JA4C) fill FlowRecord::l7; the server name comes from whichever of
// DNS_QUERY, TLS_SERVER_NAME, HTTP_HOST, HTTP_SITE is set. Options records
// (statistics, RFC 5610 types) are counted, not decoded.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace weir::exporters {

/// Where a message came from. addr holds IPv4 in its first 4 bytes.
struct ExporterAddress {
    std::array<uint8_t, 16> addr{};
    uint8_t family = 4;    ///< 4 or 6
    uint16_t port = 0;     ///< for display only: not part of the source key
    uint32_t session = 0;  ///< 0 = UDP; TCP: one id per connection
};

/// "192.0.2.1:2055" / "[2001:db8::1]:4739".
std::string format_exporter(const ExporterAddress& a);

/// One exporter's counters.
struct FlowSourceStats {
    uint64_t messages = 0;          ///< datagrams / messages decoded (even partly)
    uint64_t bytes = 0;             ///< their bytes
    uint64_t flows = 0;             ///< FlowRecords delivered
    uint64_t data_records = 0;      ///< data records read (flow and options)
    uint64_t options_records = 0;   ///< options data records (read, not flows)
    uint64_t templates = 0;         ///< template records received (refreshes included)
    uint64_t options_templates = 0;
    uint64_t template_withdrawals = 0; ///< IPFIX withdrawals (one per template removed)
    uint64_t templates_expired = 0; ///< not refreshed within the timeout
    uint64_t templates_refused = 0; ///< over max_templates, or unusable (zero record length)
    uint64_t unknown_template = 0;  ///< data sets dropped: no (live) template for their id
    uint64_t malformed = 0;         ///< messages, sets or records cut short or inconsistent
    uint64_t sequence_gaps = 0;     ///< times the sequence number jumped forward
    uint64_t sequence_lost = 0;     ///< units missing by sequence (v5 flows, v9 packets, IPFIX records)
    uint64_t sequence_resets = 0;   ///< went backwards (exporter restart, reordering)
    uint64_t last_sequence = 0;
    uint64_t first_seen_ns = 0;     ///< wall clock of the first and last message
    uint64_t last_seen_ns = 0;
};

struct FlowSourceInfo {
    ExporterAddress address;
    uint8_t version = 0;   ///< 5, 9 or 10
    uint32_t domain = 0;   ///< v9 source id, IPFIX observation domain id, v5 engine type/id
    FlowSourceStats stats;
    uint32_t live_templates = 0;
};

/// Decoder-wide counters: messages that never reached a source.
struct DecoderTotals {
    uint64_t messages = 0;
    uint64_t bytes = 0;
    uint64_t flows = 0;
    uint64_t too_short = 0;        ///< shorter than any header
    uint64_t bad_version = 0;      ///< version not 5, 9 or 10
    uint64_t bad_length = 0;       ///< IPFIX length field not the message length; v5 count vs size
    uint64_t sources_refused = 0;  ///< messages from new sources over max_sources
    uint64_t sessions_ended = 0;
};

/// Extra facts about a decoded flow that a FlowRecord has no field for.
struct FlowOrigin {
    const ExporterAddress* exporter;
    uint8_t version;
    uint32_t domain;
    uint16_t template_id; ///< 0 for v5
};

class FlowRecordSink {
public:
    virtual ~FlowRecordSink() = default;
    virtual void on_flow(const FlowRecord& r, const FlowOrigin& origin) noexcept = 0;
};

struct DecoderOptions {
    uint32_t max_sources = 4096;
    uint32_t max_templates = 256;            ///< per source, options templates included
    uint64_t template_timeout_ns = 1800ULL * 1000000000ULL; ///< UDP only; 0 = never expire
};

inline constexpr uint32_t kMaxTemplateFields = 256;

/// Why a whole message was refused (partial problems are only counted).
enum class DecodeStatus : uint8_t {
    Ok = 0,
    TooShort,
    BadVersion,
    BadLength,
    SourceRefused,
    Malformed, ///< decoded in part; the rest was cut or inconsistent
};

std::string_view decode_status_name(DecodeStatus s) noexcept;

class FlowDecoder {
public:
    /// Errors: EINVAL for max_sources or max_templates of 0.
    static Result<std::unique_ptr<FlowDecoder>> create(const DecoderOptions& opts);
    ~FlowDecoder();
    FlowDecoder(const FlowDecoder&) = delete;
    FlowDecoder& operator=(const FlowDecoder&) = delete;

    /// Decodes one v5/v9 datagram or IPFIX message received at now_ns
    /// (wall clock, for template expiry and statistics).
    DecodeStatus decode(const ExporterAddress& from, std::span<const uint8_t> msg, uint64_t now_ns,
                        FlowRecordSink& sink) noexcept;

    /// A TCP connection closed: its sources and their templates go.
    void end_session(const ExporterAddress& from);

    /// Calls fn for every source (statistics), in no particular order.
    void for_each_source(const std::function<void(const FlowSourceInfo&)>& fn) const;
    [[nodiscard]] const DecoderTotals& totals() const noexcept;
    [[nodiscard]] std::size_t source_count() const noexcept;

private:
    struct Impl;
    explicit FlowDecoder(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace weir::exporters
