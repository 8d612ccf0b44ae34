// Exporter: one export format to one or more collectors. Owns one encoder
// and one transport per collector (each collector is its own stream, with
// its own sequence numbers and templates), spreads flows across collectors
// by flow hash or sends every flow to all of them, and counts everything.
//
// Runs on the export thread: export_flow(), tick() and flush() are noexcept,
// do not allocate, and count failures instead of reporting them.
//
// Time is packet time: the exporter's clock is the newest flow end (or tick
// value) seen, and sysUptime 0 is boot_ns (set_boot_ns(), the options, or
// else the first record's start minus boot_margin_ns).
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>
#include <weir/exporters/encoder.hpp>
#include <weir/exporters/transport.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weir::exporters {

struct ExporterOptions {
    EncoderOptions encoder;
    bool send_to_all = false;                   ///< every collector gets every flow
    uint64_t boot_ns = 0;                       ///< 0 = derive (see above)
    uint64_t boot_margin_ns = 3600ULL * 1000000000ULL;
    uint64_t max_delay_ns = 1000000000ULL;      ///< a partly filled datagram waits at most this (packet time)
    /// Pacing: at most this many datagrams per second to each collector
    /// (0 = unpaced). The export thread sleeps when over it, so a burst
    /// (end of a capture file, a flow table flush) does not overrun the
    /// collector's socket; backpressure reaches the pipeline's export ring.
    uint32_t max_datagrams_per_s = 0;
    TransportOptions transport;                 ///< TCP timeouts and reconnect backoff
};

struct ExporterStats {
    uint64_t flows = 0;           ///< flows given to export_flow()
    uint64_t records = 0;         ///< export records encoded (all streams)
    uint64_t skipped = 0;         ///< flows the format cannot carry (v5: IPv6) or empty
    uint64_t datagrams = 0;       ///< datagrams sent in full
    uint64_t bytes = 0;           ///< bytes sent
    uint64_t send_errors = 0;     ///< datagrams the socket refused
    uint64_t template_sends = 0;
    uint64_t packets_total = 0;   ///< packet counters encoded (all streams)
    uint64_t bytes_total = 0;     ///< byte counters encoded (all streams)
    uint64_t l7_records = 0;      ///< records with ntop L7 fields
    uint64_t options_records = 0; ///< options data records sent with the templates
    uint64_t not_sent_records = 0; ///< flow records in datagrams the transport did not send
    uint64_t disconnects = 0;     ///< TCP streams found broken
    uint64_t reconnects = 0;      ///< TCP reconnections (each a new session, templates first)
    uint64_t paced_waits = 0;     ///< times pacing made the export thread wait
    uint64_t paced_wait_ns = 0;   ///< and for how long in all
};

/// Maps "rfc5103" | "inout" | "oneway". Errors: EINVAL naming the choices.
Result<BiflowMode> parse_biflow_mode(std::string_view s);

class Exporter {
public:
    /// `collectors` as for parse_collectors() (tcp:// for IPFIX only).
    /// Errors: those of parse_collectors(), make_encoder() and open_transport().
    static Result<std::unique_ptr<Exporter>> create(ExportFormat format, std::string_view collectors,
                                                    const ExporterOptions& opts);
    ~Exporter();

    /// Sets sysUptime 0 (epoch ns), e.g. to the first packet's time. Only
    /// before the first record; later calls are ignored so times stay consistent.
    void set_boot_ns(uint64_t boot_ns) noexcept;

    /// Totals of packets (and their bytes) the metering process lost, e.g.
    /// capture drops, reported as ignoredPacketTotalCount/ignoredOctetTotalCount
    /// in the options records (options_records on).
    void set_ignored(uint64_t packets, uint64_t octets) noexcept;

    void export_flow(const FlowRecord& r) noexcept;

    /// Advances the clock; sends partly filled datagrams older than max_delay_ns.
    void tick(uint64_t now_ns) noexcept;

    /// Sends every partly filled datagram.
    void flush() noexcept;

    [[nodiscard]] ExporterStats stats() const noexcept;
    [[nodiscard]] ExportFormat format() const noexcept { return format_; }
    /// "ipfix -> udp://127.0.0.1:4739,udp://[::1]:4739 (rfc5103, by flow hash)".
    [[nodiscard]] std::string describe() const;

private:
    struct Stream;
    Exporter(ExportFormat format, const ExporterOptions& opts);
    void maybe_boot(const FlowRecord& r) noexcept;
    [[nodiscard]] ExportClock clock() const noexcept { return {now_ns_, boot_ns_}; }

    ExportFormat format_;
    ExporterOptions opts_;
    std::vector<std::unique_ptr<Stream>> streams_;
    uint64_t now_ns_ = 0;
    uint64_t boot_ns_ = 0;
    bool booted_ = false;
    uint64_t flows_ = 0;
    uint64_t oldest_pending_ns_ = 0;
    bool any_pending_ = false;
};

/// The export options of the weir command line, in one place.
struct ExportCliOptions {
    std::string v5;               ///< --v5 host:port[,host:port]
    std::string v9;               ///< --v9
    std::string ipfix;            ///< --ipfix (tcp:// allowed)
    std::string biflow = "rfc5103"; ///< --export-biflow
    bool send_to_all = false;     ///< --export-all
    uint32_t mtu = 1400;          ///< --export-mtu
    uint32_t template_packets = 20; ///< --template-refresh-packets
    uint32_t template_seconds = 60; ///< --template-refresh-seconds
    uint32_t domain_id = 0;       ///< --observation-domain (IPFIX ODID, v9 source id)
    uint8_t engine_type = 0;      ///< --engine-type (v5)
    uint8_t engine_id = 0;        ///< --engine-id (v5)
    uint32_t rate_pps = 0;        ///< --export-rate: max datagrams/s per collector (0 = unpaced)
    bool options = false;         ///< --export-options (v9/IPFIX options records; nfdump 1.7 counts them as sequence failures)
    bool l7 = true;               ///< --export-l7 / --no-export-l7 (ntop L7 fields)
    /// Packet sampling the counters went through (-S; 0/1 = none): announced
    /// to the collectors (v5 header, v9/IPFIX options). 0 with --sampling-upscale.
    uint32_t sampling_interval = 0;
    bool sampling_random = false; ///< --sampling-mode random
    // ntopng ZMQ export (zmq_exporter.hpp, make_zmq_exporter()).
    std::vector<std::string> zmq;   ///< --zmq endpoint[,endpoint] (repeatable)
    bool zmq_probe_mode = false;    ///< --zmq-probe-mode: connect instead of bind
    bool zmq_compress = false;      ///< --zmq-compress
    std::string zmq_encryption_key; ///< --zmq-encryption-key (collector's CURVE public key)
    uint32_t zmq_source_id = 0;     ///< --zmq-source-id (0 = from the host name)
    uint32_t zmq_wait_ms = 0;       ///< --zmq-wait-subscriber (ms before the run)
    // ZMQ payload format (zmq_encoder.hpp ZmqPayloadFormat).
    std::string zmq_format = "tlv"; ///< --zmq-format tlv|json
    bool zmq_json_labels = false;   ///< --zmq-json-labels: JSON keys as labels, as nProbe --json-labels
};

/// One Exporter per format given. Errors: those of Exporter::create and
/// parse_biflow_mode, with the option name in the message.
Result<std::vector<std::unique_ptr<Exporter>>> make_exporters(const ExportCliOptions& o);

} // namespace weir::exporters
