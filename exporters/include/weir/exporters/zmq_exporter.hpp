// ZmqExporter: flows to ntopng (or weir-collector) over ZMQ, as nProbe does
// (docs/zmq.md). One PUB-side socket and one ZmqFlowEncoder per endpoint;
// flows are spread over endpoints by flow hash; an "event" JSON message with
// probe statistics goes to every endpoint about once a second of packet time.
//
// A quiet link exports no flow and may advance no clock, yet ntopng expects
// the event every second and a partly filled message should not wait for
// the next flow. So a timer thread (ZmqOptions::timer, on by default) wakes
// every 100 ms of wall time: when no event went out for event_interval_ns of
// wall time it sends one, and it sends a flow message that waited
// max_delay_ns of wall time. The export thread and the timer share the
// sockets and encoders under one mutex (a ZMQ socket is not thread-safe;
// the lock is uncontended except for one send per second).
//
// Modes: by default weir binds ("tcp://*:5556", ntopng runs
// `-i tcp://<weir>:5556`); with probe_mode weir connects
// ("tcp://collector:5556", ntopng runs `-i tcp://*:5556c`).
//
// The sockets are XPUB with XPUB_NODROP, so weir sees what a PUB socket
// hides: a message that reaches no "flow" subscriber and a message refused
// at the high-water mark are both counted, never silently lost.
//
// export_flow(), tick() and flush() run on the export thread: noexcept,
// no allocation, failures counted. set_counters()'s function is called from
// either thread, under the mutex.
#pragma once

#include <weir/core/flow_record.hpp>
#include <weir/core/result.hpp>
#include <weir/exporters/exporter.hpp>
#include <weir/exporters/zmq_encoder.hpp>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace weir::exporters {

/// Probe-wide counters for the event message, read on the export thread.
struct ZmqProbeCounters {
    uint64_t packets = 0;      ///< packets seen by the probe so far
    uint64_t bytes = 0;
    uint64_t packet_drops = 0; ///< packets not accounted (all drop reasons)
    uint64_t collected_flows = 0; ///< NetFlow/IPFIX flows collected (flow_collection.nf_ipfix_flows)
};

struct ZmqOptions {
    std::vector<std::string> endpoints; ///< "tcp://*:5556", "tcp://host:5556", "ipc://..."
    bool probe_mode = false;            ///< connect instead of bind
    ZmqEncoderOptions encoder;          ///< source_id 0 = derive from the host name
    std::string server_key;             ///< CURVE: the collector's public key (40-char Z85), "" = plain
    int sndhwm = 1000;                  ///< messages queued per subscriber
    int linger_ms = 3000;               ///< how long close() keeps sending what is queued
    uint64_t max_delay_ns = 1000000000ULL;      ///< a partly filled message waits at most this (packet time)
    uint64_t event_interval_ns = 1000000000ULL; ///< 0 = no event messages
    /// Wall-clock timer thread for events and old partly filled messages
    /// on a quiet link (see above).
    bool timer = true;
    /// Event "time" and rates from the wall clock instead of packet time:
    /// for live capture, where both agree and a quiet link has no packets.
    /// Otherwise an event the timer sends carries the packet-time clock
    /// advanced by the wall time since it last moved.
    bool wall_clock = false;
    // Event message contents that do not change during a run.
    std::string iface;        ///< capture source
    std::string version = "weir";
    std::string mode = "packet_collection"; ///< "flow_collection" when relaying NetFlow/IPFIX
    uint32_t idle_timeout_s = 0;
    uint32_t active_timeout_s = 0;
};

struct ZmqExporterStats {
    uint64_t flows = 0;            ///< flows given to export_flow()
    uint64_t records = 0;          ///< TLV records encoded
    uint64_t messages = 0;         ///< messages handed to ZMQ (all topics)
    uint64_t flow_messages = 0;
    uint64_t event_messages = 0;
    uint64_t bytes = 0;            ///< header + payload bytes handed to ZMQ
    uint64_t raw_payload_bytes = 0; ///< before compression
    uint64_t hwm_drops = 0;        ///< messages refused at the high-water mark
    uint64_t hwm_dropped_flows = 0;
    uint64_t no_subscriber = 0;    ///< messages sent while no one had subscribed to them
    uint64_t no_subscriber_flows = 0;
    uint64_t send_errors = 0;      ///< other zmq_send failures
    uint64_t timer_events = 0;     ///< event messages the timer sent (quiet link)
    uint64_t timer_flushes = 0;    ///< flow messages the timer sent after max_delay_ns
    uint64_t packets_total = 0;
    uint64_t bytes_total = 0;
};

class ZmqExporter {
public:
    /// Errors: EINVAL for no endpoint, a bad endpoint ("*" with probe_mode,
    /// no "://"), a server key that is not 40 Z85 characters, CURVE without
    /// libzmq support, and those of ZmqFlowEncoder::create; zmq_bind /
    /// zmq_connect errors with the endpoint.
    static Result<std::unique_ptr<ZmqExporter>> create(const ZmqOptions& opts);
    ~ZmqExporter();

    /// Where the event's packet/byte/drop totals come from (optional).
    /// Called under the exporter's mutex, from the export thread or the
    /// timer: it must not wait for the export thread (Pipeline::snapshot()
    /// only reads atomics).
    void set_counters(std::function<ZmqProbeCounters()> fn)
    {
        std::lock_guard lk(mu_);
        counters_ = std::move(fn);
    }

    /// Waits until every endpoint has a "flow" subscriber or `timeout_ms`
    /// passes (control plane, before the run). Errors: ETIMEDOUT naming the
    /// endpoints still without one.
    Result<void> wait_for_subscribers(int timeout_ms);

    void export_flow(const FlowRecord& r) noexcept;
    /// Advances the packet-time clock: sends partly filled messages older
    /// than max_delay_ns and the periodic event.
    void tick(uint64_t now_ns) noexcept;
    /// Sends every partly filled message, then one last event.
    void flush() noexcept;

    [[nodiscard]] ZmqExporterStats stats() const noexcept;
    [[nodiscard]] uint32_t source_id() const noexcept { return opts_.encoder.source_id; }
    /// "zmq -> tcp://*:5556 (bind, tlv+zlib, source_id 1234)"; json or json-labels for JSON.
    [[nodiscard]] std::string describe() const;

private:
    struct Stream;
    explicit ZmqExporter(const ZmqOptions& opts);
    void flush_pending() noexcept;
    void maybe_event() noexcept;
    void send_event(uint64_t time_ns) noexcept;
    [[nodiscard]] uint64_t event_time_ns() const noexcept;
    [[nodiscard]] ZmqExporterStats stats_locked() const noexcept;
    void timer_loop() noexcept;

    ZmqOptions opts_;
    void* ctx_ = nullptr;
    std::vector<std::unique_ptr<Stream>> streams_;
    std::function<ZmqProbeCounters()> counters_;
    uint64_t flows_ = 0;
    uint64_t now_ns_ = 0;
    uint64_t oldest_pending_ns_ = 0;
    bool any_pending_ = false;
    uint64_t last_event_ns_ = 0;
    ZmqProbeCounters last_counters_;
    uint64_t last_counters_ns_ = 0;
    std::string event_buf_;
    std::string iface_json_;   ///< escaped once at create()
    std::string version_json_;
    std::string mode_json_;
    std::string osname_;

    // Shared with the timer thread; steady-clock ns for the wall-time checks.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread timer_;
    uint64_t last_event_wall_ = 0;   ///< steady ns of the last event sent
    uint64_t pending_since_wall_ = 0; ///< steady ns the oldest partly filled message started
    uint64_t clock_moved_wall_ = 0;  ///< steady ns now_ns_ last advanced
    uint64_t timer_events_ = 0;
    uint64_t timer_flushes_ = 0;
};

/// The ZmqExporter of weir's --zmq options, or nullptr when none is given.
/// `base` carries what the command line does not (iface, timeouts,
/// version). Errors: those of ZmqExporter::create, prefixed "--zmq".
Result<std::unique_ptr<ZmqExporter>> make_zmq_exporter(const ExportCliOptions& o, ZmqOptions base);

/// Splits "a,b" lists and repeated options into one endpoint list.
std::vector<std::string> split_endpoints(const std::vector<std::string>& lists);

/// A stable source_id for this host (hash of the host name, never 0).
uint32_t default_zmq_source_id();

} // namespace weir::exporters
