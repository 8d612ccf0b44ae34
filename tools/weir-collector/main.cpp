// weir-collector: receives ntopng-style ZMQ flow messages (from weir or
// nProbe) the way ntopng does, and NetFlow v5/v9 and IPFIX from routers and
// probes over UDP and TCP (as nfcapd or nProbe's collector mode), and
// writes one JSON line per flow with weir's JSON field names. Collected
// NetFlow/IPFIX flows can be forwarded to ntopng over ZMQ (--zmq-forward).
// Decoding lives in weir::exporters (zmq_decoder.hpp, flow_decoder.hpp,
// flow_listener.hpp); see docs/collector.md.
#include <weir/exporters/flow_decoder.hpp>
#include <weir/exporters/flow_format.hpp>
#include <weir/exporters/flow_listener.hpp>
#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_decoder.hpp>
#include <weir/exporters/zmq_exporter.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace weir::exporters;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_dump{false};
extern "C" void on_signal(int) { g_stop.store(true); }
extern "C" void on_usr1(int) { g_dump.store(true); }

uint64_t wall_ns()
{
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

// ntopng subscribes to these topics (Utils.cpp message_topics[]).
constexpr const char* kTopics[] = {"flow", "event", "counter", "template", "option",
                                   "hello", "listening-ports", "snmp-ifaces", "message"};

void append_escaped(std::string& out, std::string_view s)
{
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (c < 0x20 || c >= 0x80) {
            // Bytes from the wire are not trusted to be UTF-8.
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
            out.push_back(ch);
        }
    }
}

struct SourceStats {
    uint64_t messages = 0;
    uint64_t flow_messages = 0;
    uint64_t tlv_flow_messages = 0;  ///< flow messages by payload format
    uint64_t json_flow_messages = 0;
    uint64_t event_messages = 0;
    uint64_t other_messages = 0;
    uint64_t flows = 0;
    uint64_t msg_id_gaps = 0;  ///< messages missing by msg_id, as ntopng counts zmq_msg_drops
    uint64_t restarts = 0;     ///< msg_id went backwards
    bool seen = false;
    uint32_t last_msg_id = 0;
};

struct Errors {
    uint64_t by_kind[static_cast<int>(ZmqError::kCount)] = {};
    uint64_t tlv[8] = {};
    uint64_t framing = 0;       ///< not exactly two frames
    uint64_t unterminated = 0;  ///< trailing items without end of record
    uint64_t not_tlv_flows = 0; ///< JSON flow messages skipped (--tlv-only, as community ntopng)
    uint64_t logged = 0;
};

/// Turns TLV records into JSON lines.
class JsonFlowWriter final : public TlvRecordVisitor {
public:
    JsonFlowWriter(std::FILE* out, uint32_t source_id) : out_(out), source_id_(source_id) {}

    void on_item(const weir::exporters::tlv::Item& it) noexcept override
    {
        namespace tlv = weir::exporters::tlv;
        line_.push_back(line_.empty() ? '{' : ',');
        line_.push_back('"');
        if (it.string_key) {
            append_escaped(line_, it.key_str);
        } else if (const auto name = tlv::key_name(it.key); !name.empty()) {
            line_ += name;
        } else {
            line_ += std::to_string(it.key);
        }
        line_ += "\":";
        // weir's JSON has FIRST/LAST_SWITCHED in epoch ms; ZMQ carries seconds.
        const bool secs = !it.string_key && (it.key == tlv::key::kFirstSwitched || it.key == tlv::key::kLastSwitched);
        if (it.is_unsigned()) {
            fmt::format_to(std::back_inserter(line_), "{}", secs ? it.u * 1000 : it.u);
        } else if (it.is_signed()) {
            fmt::format_to(std::back_inserter(line_), "{}", secs ? it.i * 1000 : it.i);
        } else if (it.type == tlv::Type::Float) {
            if (std::isfinite(it.f))
                fmt::format_to(std::back_inserter(line_), "{}", it.f);
            else
                line_ += "null";
        } else {
            line_.push_back('"');
            append_escaped(line_, it.s);
            line_.push_back('"');
        }
    }

    void on_record_end() noexcept override
    {
        fmt::format_to(std::back_inserter(line_), ",\"ZMQ_SOURCE_ID\":{}}}\n", source_id_);
        std::fwrite(line_.data(), 1, line_.size(), out_);
        line_.clear();
    }

    void discard() noexcept { line_.clear(); }

private:
    std::FILE* out_;
    uint32_t source_id_;
    std::string line_;
};

/// NetFlow/IPFIX flows: JSON or text lines, and the ZMQ forwarder.
class CollectedFlows final : public FlowRecordSink {
public:
    CollectedFlows(std::FILE* json, std::FILE* text, ZmqExporter* fwd, uint64_t limit, const uint64_t& others)
        : json_(json), text_(text), fwd_(fwd), limit_(limit), others_(others)
    {
    }

    void on_flow(const weir::FlowRecord& r, const FlowOrigin&) noexcept override
    {
        if (limit_ && flows_ + others_ >= limit_) {
            ++over_limit_;
            return;
        }
        ++flows_;
        packets_ += r.dir[0].packets + r.dir[1].packets;
        bytes_ += r.dir[0].bytes + r.dir[1].bytes;
        try {
            if (json_) {
                line_.clear();
                append_json(r, line_);
                line_.push_back('\n');
                std::fwrite(line_.data(), 1, line_.size(), json_);
            }
            if (text_) {
                line_.clear();
                append_text(r, line_);
                line_.push_back('\n');
                std::fwrite(line_.data(), 1, line_.size(), text_);
            }
        } catch (const std::bad_alloc&) {
            ++format_errors_;
        }
        if (fwd_)
            fwd_->export_flow(r);
    }

    [[nodiscard]] uint64_t flows() const noexcept { return flows_; }
    [[nodiscard]] uint64_t packets() const noexcept { return packets_; }
    [[nodiscard]] uint64_t bytes() const noexcept { return bytes_; }
    [[nodiscard]] uint64_t over_limit() const noexcept { return over_limit_; }

private:
    std::FILE* json_;
    std::FILE* text_;
    ZmqExporter* fwd_;
    uint64_t limit_;
    const uint64_t& others_;
    std::string line_;
    uint64_t flows_ = 0;
    uint64_t packets_ = 0;
    uint64_t bytes_ = 0;
    uint64_t over_limit_ = 0;
    uint64_t format_errors_ = 0;
};

/// NetFlow/IPFIX statistics as a JSON object, and as text on stderr.
std::string netflow_stats_json(FlowListener& l, const CollectedFlows& c, bool text)
{
    const ListenerStats& ls = l.stats();
    const DecoderTotals& t = l.decoder().totals();
    std::string js = fmt::format(
        R"({{"flows":{},"packets":{},"bytes":{},"flows_over_limit":{},)"
        R"("listener":{{"datagrams":{},"datagram_bytes":{},"truncated":{},"recv_errors":{},"tcp_accepted":{},)"
        R"("tcp_refused":{},"tcp_closed":{},"tcp_abandoned":{},"tcp_bad_length":{},"tcp_messages":{},"tcp_bytes":{},"decode_refused":{}}},)"
        R"("decoder":{{"messages":{},"bytes":{},"flows":{},"too_short":{},"bad_version":{},"bad_length":{},)"
        R"("sources_refused":{},"sessions_ended":{}}},"exporters":[)",
        c.flows(), c.packets(), c.bytes(), c.over_limit(), ls.datagrams, ls.datagram_bytes, ls.truncated,
        ls.recv_errors, ls.tcp_accepted, ls.tcp_refused, ls.tcp_closed, ls.tcp_abandoned, ls.tcp_bad_length, ls.tcp_messages,
        ls.tcp_bytes, ls.decode_refused, t.messages, t.bytes, t.flows, t.too_short, t.bad_version, t.bad_length,
        t.sources_refused, t.sessions_ended);
    if (text)
        fmt::print(stderr,
                   "weir-collector: netflow/ipfix: {} datagrams, {} TCP messages, {} flows ({} packets, {} bytes); "
                   "refused: {} too short, {} bad version, {} bad length, {} over the source limit\n",
                   ls.datagrams, ls.tcp_messages, c.flows(), c.packets(), c.bytes(), t.too_short, t.bad_version,
                   t.bad_length, t.sources_refused);
    bool first = true;
    l.decoder().for_each_source([&](const FlowSourceInfo& e) {
        const FlowSourceStats& s = e.stats;
        const std::string addr = format_exporter(e.address);
        js += fmt::format(
            R"({}{{"exporter":"{}","session":{},"version":{},"domain":{},"messages":{},"bytes":{},"flows":{},)"
            R"("data_records":{},"options_records":{},"sequence_gaps":{},"sequence_lost":{},"sequence_resets":{},)"
            R"("last_sequence":{},"unknown_template":{},"malformed":{},"templates":{},"options_templates":{},)"
            R"("template_withdrawals":{},"templates_expired":{},"templates_refused":{},"live_templates":{}}})",
            first ? "" : ",", addr, e.address.session, e.version, e.domain, s.messages, s.bytes, s.flows,
            s.data_records, s.options_records, s.sequence_gaps, s.sequence_lost, s.sequence_resets, s.last_sequence,
            s.unknown_template, s.malformed, s.templates, s.options_templates, s.template_withdrawals,
            s.templates_expired, s.templates_refused, e.live_templates);
        first = false;
        if (text)
            fmt::print(stderr,
                       "  {} {} domain {}{}: {} messages, {} bytes, {} flows, {} sequence gaps ({} lost, {} resets), "
                       "{} unknown template, {} malformed\n",
                       e.version == 10 ? "ipfix" : e.version == 9 ? "v9" : "v5", addr, e.domain,
                       e.address.session ? fmt::format(" (tcp session {})", e.address.session) : std::string(),
                       s.messages, s.bytes, s.flows, s.sequence_gaps, s.sequence_lost, s.sequence_resets,
                       s.unknown_template, s.malformed);
    });
    js += "]}";
    return js;
}

struct Socket {
    std::string spec;     ///< as given
    std::string endpoint; ///< without the trailing 'c'
    bool bind = false;
    void* sock = nullptr;
};

} // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> endpoints;
    std::string json = "-";
    std::string events_path;
    std::string stats_path;
    uint64_t count = 0;
    double timeout_s = 0;
    double idle_s = 0;
    double close_wait_s = 2;
    std::size_t max_decompressed = 16u << 20;
    std::string priv_key;
    bool keypair = false;
    bool verbose = false;
    bool tlv_only = false;
    std::vector<std::string> netflow_in;
    std::vector<std::string> ipfix_tcp_in;
    std::string text_path;
    std::vector<std::string> forward;
    bool forward_probe_mode = false;
    bool forward_compress = false;
    uint32_t forward_source_id = 0;
    uint32_t forward_wait_ms = 0;
    double template_timeout_s = 1800;
    int rcvbuf = 32 << 20;
    uint32_t max_sources = 4096;
    uint32_t max_templates = 256;

    CLI::App app{"weir-collector: receives ntopng-style ZMQ flow exports, NetFlow v5/v9 and IPFIX, "
                 "writes JSON lines and forwards to ntopng over ZMQ"};
    app.add_option("-i,--zmq", endpoints,
                   "Endpoints as ntopng's -i: tcp://probe:5556 connects to a probe that binds; "
                   "tcp://*:5556c binds (the probe runs --zmq-probe-mode). Comma separated or repeated");
    app.add_option("--netflow,--ipfix", netflow_in,
                   "Receive NetFlow v5/v9 and IPFIX on udp://ADDR:PORT (udp://[::1]:2055, udp://*:2055) "
                   "or IPFIX on tcp://ADDR:PORT; repeatable");
    app.add_option("--ipfix-tcp", ipfix_tcp_in, "Receive IPFIX over TCP on tcp://ADDR:PORT; repeatable");
    app.add_option("--json", json, "Flow JSON lines to FILE ('-' = stdout)")->capture_default_str();
    app.add_option("--text", text_path, "NetFlow/IPFIX flows as text lines to FILE ('-' = stdout)");
    app.add_option("--zmq-forward", forward,
                   "Re-export NetFlow/IPFIX flows to ntopng over ZMQ: tcp://*:5556 binds (ntopng -i tcp://HOST:5556); "
                   "with --zmq-forward-probe-mode, tcp://ntopng:5556 connects (ntopng -i tcp://*:5556c). Repeatable");
    app.add_flag("--zmq-forward-probe-mode", forward_probe_mode, "Connect to the --zmq-forward endpoints");
    app.add_flag("--zmq-forward-compress", forward_compress, "zlib-compress the forwarded messages");
    app.add_option("--zmq-forward-source-id", forward_source_id, "ZMQ source_id (0 = from the host name)");
    app.add_option("--zmq-forward-wait", forward_wait_ms,
                   "Wait up to MS for a subscriber on every --zmq-forward endpoint before receiving");
    app.add_option("--template-timeout", template_timeout_s,
                   "Forget UDP templates not refreshed for S seconds (0 = never)")->capture_default_str()
        ->check(CLI::Range(0.0, 1e9));
    app.add_option("--rcvbuf", rcvbuf, "UDP receive buffer in bytes")->capture_default_str()
        ->check(CLI::Range(4096, 1 << 30));
    app.add_option("--max-exporters", max_sources, "Most exporters (address, domain) kept")->capture_default_str()
        ->check(CLI::Range(1u, 1u << 20));
    app.add_option("--max-templates", max_templates, "Most templates per exporter")->capture_default_str()
        ->check(CLI::Range(1u, 65535u));
    app.add_option("--events", events_path, "Write each event message's JSON to FILE, one per line");
    app.add_option("--stats,--stats-json", stats_path,
                   "Write the statistics as JSON to FILE at exit and on SIGUSR1 ('-' = stdout)");
    app.add_option("--count,--max-flows", count, "Exit after N flows (0 = no limit)");
    app.add_option("--timeout,--duration", timeout_s, "Exit after S seconds (0 = no limit)");
    app.add_option("--idle", idle_s, "Exit S seconds after the last message, once one came (0 = never)");
    app.add_option("--tcp-close-wait", close_wait_s,
                   "On exit, send FIN on each IPFIX/TCP stream and read on for up to S seconds until the exporter "
                   "closes its half, so nothing it wrote is dropped unread")
        ->check(CLI::Range(0.0, 60.0));
    app.add_option("--max-decompressed", max_decompressed, "Largest decompressed payload in bytes")
        ->check(CLI::Range(1024, 1 << 30))->capture_default_str();
    app.add_option("--zmq-encryption-key-priv", priv_key, "CURVE server secret key (40-char Z85), as ntopng --zmq-encryption");
    app.add_flag("--curve-keypair", keypair, "Print a new CURVE key pair (public secret) and exit");
    app.add_flag("--tlv-only", tlv_only, "Skip JSON flow messages, as community ntopng does (counted as json_flows)");
    app.add_flag("-v,--verbose", verbose, "Log every bad message (default: the first 20)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (keypair) {
        char pub[41], sec[41];
        if (zmq_curve_keypair(pub, sec) != 0) {
            fmt::print(stderr, "weir-collector: zmq_curve_keypair: {}\n", zmq_strerror(zmq_errno()));
            return 1;
        }
        fmt::print("{} {}\n", pub, sec);
        return 0;
    }
    const auto specs = split_endpoints(endpoints);
    ListenerOptions lopts;
    for (const std::string& u : netflow_in) {
        auto l = parse_listen_spec(u);
        if (!l) {
            fmt::print(stderr, "weir-collector: --netflow {}\n", l.error().message());
            return 2;
        }
        lopts.listen.push_back(l.value());
    }
    for (const std::string& u : ipfix_tcp_in) {
        auto l = parse_listen_spec(u.starts_with("tcp://") ? u : "tcp://" + u);
        if (!l) {
            fmt::print(stderr, "weir-collector: --ipfix-tcp {}\n", l.error().message());
            return 2;
        }
        lopts.listen.push_back(l.value());
    }
    if (specs.empty() && lopts.listen.empty()) {
        fmt::print(stderr, "weir-collector: give at least one input: -i (ZMQ), --netflow or --ipfix-tcp\n");
        return 2;
    }
    if (!forward.empty() && lopts.listen.empty()) {
        fmt::print(stderr, "weir-collector: --zmq-forward re-exports NetFlow/IPFIX flows: give --netflow or --ipfix-tcp\n");
        return 2;
    }

    // --json '' writes no flow lines (ZMQ lines go to /dev/null).
    std::FILE* out = json == "-" ? stdout : std::fopen(json.empty() ? "/dev/null" : json.c_str(), "w");
    if (!out) {
        fmt::print(stderr, "weir-collector: cannot write {}: {}\n", json, std::strerror(errno));
        return 1;
    }
    std::FILE* ev = nullptr;
    if (!events_path.empty() && !(ev = std::fopen(events_path.c_str(), "w"))) {
        fmt::print(stderr, "weir-collector: cannot write {}: {}\n", events_path, std::strerror(errno));
        return 1;
    }

    std::FILE* text = nullptr;
    if (!text_path.empty()) {
        text = text_path == "-" ? stdout : std::fopen(text_path.c_str(), "w");
        if (!text) {
            fmt::print(stderr, "weir-collector: cannot write {}: {}\n", text_path, std::strerror(errno));
            return 1;
        }
    }

    // NetFlow/IPFIX sockets and the ZMQ forwarder.
    std::unique_ptr<FlowListener> listener;
    if (!lopts.listen.empty()) {
        lopts.rcvbuf = rcvbuf;
        lopts.decoder.max_sources = max_sources;
        lopts.decoder.max_templates = max_templates;
        lopts.decoder.template_timeout_ns = static_cast<uint64_t>(template_timeout_s * 1e9);
        auto l = FlowListener::create(lopts);
        if (!l) {
            fmt::print(stderr, "weir-collector: {}\n", l.error().message());
            return 1;
        }
        listener = std::move(l.value());
        for (const std::string& d : listener->describe())
            fmt::print(stderr, "weir-collector: listening on {}\n", d);
    }
    std::unique_ptr<ZmqExporter> fwd;
    if (!forward.empty()) {
        ZmqOptions zo;
        zo.endpoints = split_endpoints(forward);
        zo.probe_mode = forward_probe_mode;
        zo.encoder.compress = forward_compress;
        zo.encoder.source_id = forward_source_id;
        zo.iface = "netflow";
        zo.version = "weir-collector";
        auto z = ZmqExporter::create(zo);
        if (!z) {
            fmt::print(stderr, "weir-collector: --zmq-forward: {}\n", z.error().message());
            return 1;
        }
        fwd = std::move(z.value());
        fmt::print(stderr, "weir-collector: forwarding {}\n", fwd->describe());
        if (forward_wait_ms) {
            if (auto w = fwd->wait_for_subscribers(static_cast<int>(forward_wait_ms)); !w)
                fmt::print(stderr, "weir-collector: --zmq-forward: {}\n", w.error().message());
        }
    }
    uint64_t zmq_flows = 0; // flows received over ZMQ, for --count
    CollectedFlows collected(json.empty() ? nullptr : out, text, fwd.get(), count, zmq_flows);
    if (fwd) {
        fwd->set_counters([&collected] {
            return ZmqProbeCounters{collected.packets(), collected.bytes(), 0};
        });
    }

    void* ctx = zmq_ctx_new();
    std::vector<Socket> socks;
    bool collector_mode = false;
    for (std::string spec : specs) {
        Socket s;
        s.spec = spec;
        if (spec.starts_with("zmq://"))
            spec = "tcp://" + spec.substr(6);
        // As in ntopng, a trailing 'c' means "bind", and stays on for the
        // endpoints after it.
        if (spec.size() > 1 && spec.back() == 'c') {
            spec.pop_back();
            collector_mode = true;
        }
        s.bind = collector_mode;
        s.endpoint = spec;
        s.sock = zmq_socket(ctx, ZMQ_SUB);
        const int rcvbuf = 8 << 20;
        zmq_setsockopt(s.sock, ZMQ_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        if (!priv_key.empty()) {
            const int one = 1;
            if (priv_key.size() != 40 || zmq_setsockopt(s.sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
                zmq_setsockopt(s.sock, ZMQ_CURVE_SECRETKEY, priv_key.c_str(), 40) != 0) {
                fmt::print(stderr, "weir-collector: bad CURVE secret key (expected 40 Z85 characters)\n");
                return 2;
            }
        }
        for (const char* t : kTopics)
            zmq_setsockopt(s.sock, ZMQ_SUBSCRIBE, t, std::strlen(t));
        const int rc = s.bind ? zmq_bind(s.sock, spec.c_str()) : zmq_connect(s.sock, spec.c_str());
        if (rc != 0) {
            fmt::print(stderr, "weir-collector: {} {}: {}\n", s.bind ? "bind" : "connect", spec, zmq_strerror(zmq_errno()));
            return 1;
        }
        fmt::print(stderr, "weir-collector: {} {}\n", s.bind ? "bound to" : "connected to", spec);
        socks.push_back(s);
    }
    if (!priv_key.empty()) {
        char pub[41];
        if (zmq_curve_public(pub, priv_key.c_str()) == 0)
            fmt::print(stderr, "weir-collector: CURVE public key {}\n", pub);
    }

    auto dec_r = ZmqPayloadDecoder::create(max_decompressed);
    if (!dec_r) {
        fmt::print(stderr, "weir-collector: {}\n", dec_r.error().message());
        return 1;
    }
    ZmqPayloadDecoder& dec = *dec_r.value();
    JsonFlowReader json_reader(max_decompressed);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGUSR1, on_usr1);

    std::map<uint32_t, SourceStats> sources;
    Errors errs;
    uint64_t total_flows = 0;
    uint64_t total_messages = 0;
    auto log_bad = [&](const Socket& s, std::string_view what) {
        if (verbose || errs.logged < 20)
            fmt::print(stderr, "weir-collector: {}: dropped a message: {}\n", s.endpoint, what);
        ++errs.logged;
    };

    // Statistics: on stderr, and as JSON to --stats (at exit and on SIGUSR1).
    auto write_stats = [&](bool) -> bool {
        uint64_t bad = errs.framing + errs.unterminated + errs.not_tlv_flows;
        for (uint64_t v : errs.by_kind)
            bad += v;
        std::string js = fmt::format(R"({{"messages":{},"flows":{},"bad_messages":{},"errors":{{)", total_messages,
                                     total_flows, bad);
        js += fmt::format(R"("framing":{},"unterminated_record":{},"json_flows":{})", errs.framing, errs.unterminated,
                          errs.not_tlv_flows);
        for (int k = 1; k < static_cast<int>(ZmqError::kCount); ++k)
            js += fmt::format(R"(,"{}":{})", zmq_error_name(static_cast<ZmqError>(k)), errs.by_kind[k]);
        uint64_t tlv_msgs = 0, json_msgs = 0;
        for (const auto& [id, st] : sources) {
            tlv_msgs += st.tlv_flow_messages;
            json_msgs += st.json_flow_messages;
        }
        js += fmt::format(R"(}},"flow_formats":{{"tlv":{},"json":{}}})", tlv_msgs, json_msgs);
        js += R"(,"sources":[)";
        bool first = true;
        if (!socks.empty())
            fmt::print(stderr, "weir-collector: zmq: {} messages, {} flows, {} bad messages\n", total_messages,
                       total_flows, bad);
        for (const auto& [id, st] : sources) {
            fmt::print(stderr, "  source_id {}: {} messages ({} flow: {} tlv, {} json; {} event, {} other), {} flows, "
                               "{} msg_id gaps, {} restarts\n",
                       id, st.messages, st.flow_messages, st.tlv_flow_messages, st.json_flow_messages,
                       st.event_messages, st.other_messages, st.flows, st.msg_id_gaps, st.restarts);
            js += fmt::format(R"({}{{"source_id":{},"messages":{},"flow_messages":{},"tlv_flow_messages":{},)"
                              R"("json_flow_messages":{},"event_messages":{},)"
                              R"("other_messages":{},"flows":{},"msg_id_gaps":{},"restarts":{},"last_msg_id":{}}})",
                              first ? "" : ",", id, st.messages, st.flow_messages, st.tlv_flow_messages,
                              st.json_flow_messages, st.event_messages, st.other_messages, st.flows, st.msg_id_gaps,
                              st.restarts, st.last_msg_id);
            first = false;
        }
        js += "]";
        if (listener)
            js += ",\"netflow\":" + netflow_stats_json(*listener, collected, true);
        if (fwd) {
            const ZmqExporterStats z = fwd->stats();
            js += fmt::format(R"(,"forward":{{"flows":{},"records":{},"messages":{},"flow_messages":{},"bytes":{},)"
                              R"("hwm_drops":{},"hwm_dropped_flows":{},"no_subscriber":{},"no_subscriber_flows":{},)"
                              R"("send_errors":{}}})",
                              z.flows, z.records, z.messages, z.flow_messages, z.bytes, z.hwm_drops,
                              z.hwm_dropped_flows, z.no_subscriber, z.no_subscriber_flows, z.send_errors);
            fmt::print(stderr, "weir-collector: forwarded {} flows in {} messages ({} refused at the high-water mark, "
                               "{} flows sent with no subscriber)\n",
                       z.flows, z.flow_messages, z.hwm_dropped_flows, z.no_subscriber_flows);
        }
        js += "}\n";
        if (!stats_path.empty()) {
            std::FILE* f = stats_path == "-" ? stdout : std::fopen(stats_path.c_str(), "w");
            if (!f) {
                fmt::print(stderr, "weir-collector: cannot write {}: {}\n", stats_path, std::strerror(errno));
                return false;
            }
            std::fputs(js.c_str(), f);
            if (f != stdout)
                std::fclose(f);
        }
        return true;
    };

    std::vector<zmq_pollitem_t> items;
    for (const Socket& s : socks)
        items.push_back({s.sock, 0, ZMQ_POLLIN, 0});
    const std::size_t n_zmq = items.size();
    if (listener)
        items.push_back({nullptr, listener->fd(), ZMQ_POLLIN, 0});
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto last_msg = t0;
    bool got_any = false;
    std::vector<std::vector<uint8_t>> frames;

    while (!g_stop.load()) {
        const auto now = clock::now();
        if (timeout_s > 0 && std::chrono::duration<double>(now - t0).count() >= timeout_s)
            break;
        if (idle_s > 0 && got_any && std::chrono::duration<double>(now - last_msg).count() >= idle_s)
            break;
        zmq_flows = total_flows;
        if (count && total_flows + collected.flows() >= count)
            break;
        if (g_dump.exchange(false))
            write_stats(false);
        if (fwd)
            fwd->tick(wall_ns());
        const int n = zmq_poll(items.data(), static_cast<int>(items.size()), 100);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fmt::print(stderr, "weir-collector: zmq_poll: {}\n", zmq_strerror(zmq_errno()));
            break;
        }
        if (listener && (items[n_zmq].revents & ZMQ_POLLIN)) {
            if (listener->poll(0, collected) != 0 || listener->stats().datagrams != 0) {
                got_any = true;
                last_msg = clock::now();
            }
        }
        for (std::size_t k = 0; k < n_zmq; ++k) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            const Socket& s = socks[k];
            // Drain every message that is ready on this socket.
            for (;;) {
                frames.clear();
                bool more = true;
                bool none = false;
                while (more) {
                    zmq_msg_t m;
                    zmq_msg_init(&m);
                    if (zmq_msg_recv(&m, s.sock, ZMQ_DONTWAIT) < 0) {
                        zmq_msg_close(&m);
                        none = frames.empty();
                        break;
                    }
                    const auto* d = static_cast<const uint8_t*>(zmq_msg_data(&m));
                    frames.emplace_back(d, d + zmq_msg_size(&m));
                    more = zmq_msg_more(&m) != 0;
                    zmq_msg_close(&m);
                }
                if (none)
                    break;
                got_any = true;
                last_msg = clock::now();
                ++total_messages;
                if (frames.size() != 2) {
                    ++errs.framing;
                    log_bad(s, fmt::format("{} frames instead of 2 (header, payload)", frames.size()));
                    continue;
                }
                ZmqParsedHeader h;
                if (const ZmqError e = parse_zmq_header(frames[0], h); e != ZmqError::None) {
                    ++errs.by_kind[static_cast<int>(e)];
                    log_bad(s, fmt::format("{} ({} byte header)", zmq_error_name(e), frames[0].size()));
                    continue;
                }
                SourceStats& src = sources[h.h.source_id];
                ++src.messages;
                // msg_id accounting as ntopng's: gaps count as drops, going
                // back as a restart, the first message only sets the state.
                if (src.seen && h.h.msg_id > src.last_msg_id + 1)
                    src.msg_id_gaps += h.h.msg_id - src.last_msg_id - 1;
                else if (src.seen && h.h.msg_id < src.last_msg_id)
                    ++src.restarts;
                src.seen = true;
                src.last_msg_id = h.h.msg_id;
                std::span<const uint8_t> plain;
                if (const ZmqError e = dec.payload(h, frames[1], plain); e != ZmqError::None) {
                    ++errs.by_kind[static_cast<int>(e)];
                    log_bad(s, std::string(zmq_error_name(e)));
                    continue;
                }
                const std::string_view topic = h.h.topic_view();
                if (topic.starts_with("f")) {
                    ++src.flow_messages;
                    JsonFlowWriter w(out, h.h.source_id);
                    if (!h.tlv) {
                        if (tlv_only) {
                            ++errs.not_tlv_flows;
                            log_bad(s, "JSON flow message (--tlv-only)");
                            continue;
                        }
                        ++src.json_flow_messages;
                        const JsonWalkResult r = json_reader.walk(plain, w);
                        src.flows += r.records;
                        total_flows += r.records;
                        if (!r.error.empty()) {
                            w.discard();
                            ++errs.by_kind[static_cast<int>(ZmqError::Json)];
                            log_bad(s, fmt::format("JSON flows: {} at byte {} after {} records", r.error, r.offset,
                                                   r.records));
                        }
                        continue;
                    }
                    ++src.tlv_flow_messages;
                    const TlvWalkResult r = walk_tlv_records(plain, w);
                    src.flows += r.records;
                    total_flows += r.records;
                    if (r.error != weir::exporters::tlv::ReadError::None) {
                        w.discard();
                        ++errs.tlv[static_cast<int>(r.error)];
                        ++errs.by_kind[static_cast<int>(ZmqError::Tlv)];
                        log_bad(s, fmt::format("TLV {} after {} records",
                                               weir::exporters::tlv::read_error_name(r.error), r.records));
                    } else if (r.unterminated) {
                        w.discard();
                        ++errs.unterminated;
                        log_bad(s, "last TLV record has no end-of-record");
                    }
                } else if (topic.starts_with("e")) {
                    ++src.event_messages;
                    if (ev) {
                        std::string line(plain.begin(), plain.end());
                        for (char& c : line)
                            if (c == '\n')
                                c = ' ';
                        fmt::print(ev, "{}\n", line);
                    }
                } else {
                    ++src.other_messages;
                }
            }
        }
    }

    // Whatever the sockets still hold (TCP streams end gracefully), then the
    // forwarder's partly filled messages.
    if (listener) {
        listener->close_tcp(static_cast<int>(close_wait_s * 1000), collected);
        for (int i = 0; i < 64 && listener->poll(0, collected) != 0; ++i) {
        }
    }
    if (fwd)
        fwd->flush();
    std::fflush(out);
    if (out != stdout)
        std::fclose(out);
    if (text) {
        std::fflush(text);
        if (text != stdout)
            std::fclose(text);
    }
    if (ev)
        std::fclose(ev);
    for (Socket& s : socks) {
        const int zero = 0;
        zmq_setsockopt(s.sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(s.sock);
    }
    zmq_ctx_term(ctx);
    const bool stats_ok = write_stats(true);
    fwd.reset(); // sends what is queued (linger)
    return stats_ok ? 0 : 1;

    return 0;
}
