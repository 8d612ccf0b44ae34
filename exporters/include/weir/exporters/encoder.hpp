// Flow export encoders: FlowRecords in, NetFlow v5 / v9 / IPFIX datagrams
// out. Pure: no I/O, no clock of their own, no allocation after create().
// Every time value comes from the ExportClock the caller passes, so the same
// records and clock values always give the same bytes.
//
// An encoder fills one datagram at a time; when a record does not fit (MTU,
// or 30 records for v5) the datagram is finished and handed to the
// DatagramSink, and the record starts the next one. flush() hands over a
// partly filled datagram. Header times (sysUptime, unix_secs, export time)
// are those of the clock at the moment the datagram is finished.
//
// One encoder is one export stream: it owns the sequence numbers and the
// template refresh state for one collector.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace weir::exporters {

enum class ExportFormat : uint8_t { NetflowV5 = 5, NetflowV9 = 9, Ipfix = 10 };

constexpr std::string_view export_format_name(ExportFormat f) noexcept
{
    switch (f) {
    case ExportFormat::NetflowV5: return "netflow-v5";
    case ExportFormat::NetflowV9: return "netflow-v9";
    case ExportFormat::Ipfix: return "ipfix";
    }
    return "unknown";
}

/// How a bidirectional FlowRecord becomes export records (v9 and IPFIX;
/// NetFlow v5 is always one record per direction).
enum class BiflowMode : uint8_t {
    /// RFC 5103: one record, server->client counters in reverse elements
    /// (enterprise bit, PEN 29305). IPFIX only: v9 has no enterprise
    /// numbers, so a v9 encoder given this mode uses InOut.
    Rfc5103 = 0,
    /// nProbe style: one record, client->server in octet/packetDeltaCount
    /// (1/2, v9 IN_BYTES/IN_PKTS), server->client in 23/24 (v9
    /// OUT_BYTES/OUT_PKTS, IPFIX postOctet/postPacketDeltaCount).
    InOut = 1,
    /// Two one-way records per flow (one per direction that saw packets),
    /// as routers export.
    OneWay = 2,
};

constexpr std::string_view biflow_mode_name(BiflowMode m) noexcept
{
    switch (m) {
    case BiflowMode::Rfc5103: return "rfc5103";
    case BiflowMode::InOut: return "inout";
    case BiflowMode::OneWay: return "oneway";
    }
    return "unknown";
}

/// Packet-time clock. boot_ns is the exporter's start (sysUptime 0).
struct ExportClock {
    uint64_t now_ns = 0;  ///< epoch ns
    uint64_t boot_ns = 0; ///< epoch ns, <= now_ns
};

struct EncoderOptions {
    /// Largest datagram (UDP payload) in bytes; no datagram is ever larger.
    uint32_t mtu = 1400;
    /// Resend the templates every N datagrams (0 = never by count) ...
    uint32_t template_refresh_packets = 20;
    /// ... and when T seconds of export time have passed (0 = never by time).
    uint32_t template_refresh_s = 60;
    /// IPFIX observation domain id / v9 source id.
    uint32_t domain_id = 0;
    uint8_t engine_type = 0; ///< v5 header
    uint8_t engine_id = 0;   ///< v5 header
    BiflowMode biflow = BiflowMode::Rfc5103;
    /// Ask for a given template id base (v9/IPFIX; 0 = by mode: 256, 258 or
    /// 260 for Rfc5103, InOut, OneWay; IPv4 uses base, IPv6 base+1). A
    /// changed template must come under a new id, so every mode has its own.
    uint16_t template_id_base = 0;
    /// Options templates and records with the templates (v9/IPFIX):
    /// exporting process statistics and reliability counters (RFC 7011
    /// s.4.1-4.3), and in IPFIX the RFC 5610 type of every ntop enterprise
    /// element exported. Off by default so the data layout stays minimal;
    /// the weir command line turns it on.
    bool options_records = false;
    /// ntop enterprise L7 fields (PEN 35632; v9 ids 57472 + n) for flows
    /// with L7 data, under templates of their own (L7 ids = base + 16/17).
    bool l7_fields = true;
    /// Packet sampling in front of the flow table: 1 in N packets (0 and 1
    /// = none). The counters stay those of the sampled packets; the interval
    /// goes out so that collectors scale them: v5 in the header's
    /// sampling_interval field, v9/IPFIX in an options template and record
    /// sent with every template announcement (docs/export.md, Sampling).
    uint32_t sampling_interval = 0;
    /// Random 1-out-of-N selection instead of systematic count-based.
    bool sampling_random = false;
};

/// Counters the encoder cannot see itself, reported in the options records:
/// packets the metering process lost (capture drops), and records the
/// transport could not send (collector down, buffer full).
struct ProcessCounters {
    uint64_t ignored_packets = 0;
    uint64_t ignored_octets = 0;
    uint64_t not_sent_flows = 0;
    uint64_t not_sent_packets = 0;
    uint64_t not_sent_octets = 0;
};

struct EncoderStats {
    uint64_t flows_in = 0;        ///< FlowRecords given to add()
    uint64_t records = 0;         ///< export data records written (v5: records)
    uint64_t skipped_ipv6 = 0;    ///< flows v5 cannot carry
    uint64_t skipped_empty = 0;   ///< flows without any packet
    uint64_t split_records = 0;   ///< extra v5 records from counters >= 2^32
    uint64_t clamped_times = 0;   ///< v5/v9 times before boot_ns, sent as 0
    uint64_t datagrams = 0;
    uint64_t bytes = 0;
    uint64_t template_sends = 0;  ///< datagrams that carried the templates
    uint64_t packets_total = 0;   ///< sum of the packet counters encoded
    uint64_t bytes_total = 0;     ///< sum of the byte counters encoded
    uint64_t l7_records = 0;      ///< records with the ntop L7 fields
    uint64_t l7_dropped = 0;      ///< records sent without their L7 fields (would not fit the MTU)
    uint64_t options_records = 0; ///< options data records (statistics, type information)
    uint64_t session_restarts = 0; ///< restart_session() calls (TCP reconnects)
};

/// Receives each finished datagram. The bytes are valid during the call only.
class DatagramSink {
public:
    virtual ~DatagramSink() = default;
    virtual void on_datagram(std::span<const uint8_t> datagram) noexcept = 0;
};

class Encoder {
public:
    virtual ~Encoder() = default;

    /// Encodes one flow (possibly as several records), finishing datagrams
    /// into `out` as they fill up.
    virtual void add(const FlowRecord& r, const ExportClock& clock, DatagramSink& out) noexcept = 0;

    /// Finishes the current datagram, if it holds anything.
    virtual void flush(const ExportClock& clock, DatagramSink& out) noexcept = 0;

    /// True when a datagram is partly filled.
    [[nodiscard]] virtual bool pending() const noexcept = 0;

    [[nodiscard]] virtual ExportFormat format() const noexcept = 0;
    [[nodiscard]] const EncoderStats& stats() const noexcept { return stats_; }

    /// The values the next options records report (v9/IPFIX).
    void set_process_counters(const ProcessCounters& c) noexcept { process_ = c; }

    /// A new transport session (TCP reconnect): the next datagram starts
    /// with the templates, and IPFIX sequence numbers start again at 0
    /// (they are per session, RFC 7011 s.3.1). Safe to call from the sink.
    virtual void restart_session() noexcept {}

protected:
    EncoderStats stats_;
    ProcessCounters process_;
};

/// Errors (all three): EINVAL when the MTU cannot hold a header, the
/// templates and one record (v5: 72 bytes; v9/IPFIX: see docs/export.md),
/// or above 65535.
Result<std::unique_ptr<Encoder>> make_encoder(ExportFormat format, const EncoderOptions& opts);

} // namespace weir::exporters
