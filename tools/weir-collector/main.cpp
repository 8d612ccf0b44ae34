// weir-collector: receives ntopng-style ZMQ flow messages (from weir or
// nProbe) the way ntopng does and writes one JSON line per flow with weir's
// JSON field names. Decoding lives in weir::exporters (zmq_decoder.hpp).
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
extern "C" void on_signal(int) { g_stop.store(true); }

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
    uint64_t not_tlv_flows = 0; ///< JSON flow messages (ntopng community ignores them too)
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
    std::size_t max_decompressed = 16u << 20;
    std::string priv_key;
    bool keypair = false;
    bool verbose = false;

    CLI::App app{"weir-collector: receives ntopng-style ZMQ flow exports and writes JSON lines"};
    app.add_option("-i,--zmq", endpoints,
                   "Endpoints as ntopng's -i: tcp://probe:5556 connects to a probe that binds; "
                   "tcp://*:5556c binds (the probe runs --zmq-probe-mode). Comma separated or repeated");
    app.add_option("--json", json, "Flow JSON lines to FILE ('-' = stdout)")->capture_default_str();
    app.add_option("--events", events_path, "Write each event message's JSON to FILE, one per line");
    app.add_option("--stats", stats_path, "Write the statistics as JSON to FILE at exit ('-' = stdout)");
    app.add_option("--count", count, "Exit after N flows (0 = no limit)");
    app.add_option("--timeout", timeout_s, "Exit after S seconds (0 = no limit)");
    app.add_option("--idle", idle_s, "Exit S seconds after the last message, once one came (0 = never)");
    app.add_option("--max-decompressed", max_decompressed, "Largest decompressed payload in bytes")
        ->check(CLI::Range(1024, 1 << 30))->capture_default_str();
    app.add_option("--zmq-encryption-key-priv", priv_key, "CURVE server secret key (40-char Z85), as ntopng --zmq-encryption");
    app.add_flag("--curve-keypair", keypair, "Print a new CURVE key pair (public secret) and exit");
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
    if (specs.empty()) {
        fmt::print(stderr, "weir-collector: give at least one endpoint with -i\n");
        return 2;
    }

    std::FILE* out = json == "-" ? stdout : std::fopen(json.c_str(), "w");
    if (!out) {
        fmt::print(stderr, "weir-collector: cannot write {}: {}\n", json, std::strerror(errno));
        return 1;
    }
    std::FILE* ev = nullptr;
    if (!events_path.empty() && !(ev = std::fopen(events_path.c_str(), "w"))) {
        fmt::print(stderr, "weir-collector: cannot write {}: {}\n", events_path, std::strerror(errno));
        return 1;
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
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    std::map<uint32_t, SourceStats> sources;
    Errors errs;
    uint64_t total_flows = 0;
    uint64_t total_messages = 0;
    auto log_bad = [&](const Socket& s, std::string_view what) {
        if (verbose || errs.logged < 20)
            fmt::print(stderr, "weir-collector: {}: dropped a message: {}\n", s.endpoint, what);
        ++errs.logged;
    };

    std::vector<zmq_pollitem_t> items;
    for (const Socket& s : socks)
        items.push_back({s.sock, 0, ZMQ_POLLIN, 0});
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
        if (count && total_flows >= count)
            break;
        const int n = zmq_poll(items.data(), static_cast<int>(items.size()), 100);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fmt::print(stderr, "weir-collector: zmq_poll: {}\n", zmq_strerror(zmq_errno()));
            break;
        }
        for (std::size_t k = 0; k < items.size(); ++k) {
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
                    if (!h.tlv) {
                        ++errs.not_tlv_flows;
                        log_bad(s, "JSON flow message (only TLV flows are decoded, as community ntopng)");
                        continue;
                    }
                    JsonFlowWriter w(out, h.h.source_id);
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

    std::fflush(out);
    if (out != stdout)
        std::fclose(out);
    if (ev)
        std::fclose(ev);
    for (Socket& s : socks) {
        const int zero = 0;
        zmq_setsockopt(s.sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(s.sock);
    }
    zmq_ctx_term(ctx);

    uint64_t bad = errs.framing + errs.unterminated + errs.not_tlv_flows;
    for (uint64_t v : errs.by_kind)
        bad += v;
    std::string js = fmt::format(R"({{"messages":{},"flows":{},"bad_messages":{},"errors":{{)", total_messages,
                                 total_flows, bad);
    js += fmt::format(R"("framing":{},"unterminated_record":{},"json_flows":{})", errs.framing, errs.unterminated,
                      errs.not_tlv_flows);
    for (int k = 1; k < static_cast<int>(ZmqError::kCount); ++k)
        js += fmt::format(R"(,"{}":{})", zmq_error_name(static_cast<ZmqError>(k)), errs.by_kind[k]);
    js += R"(},"sources":[)";
    bool first = true;
    fmt::print(stderr, "weir-collector: {} messages, {} flows, {} bad messages\n", total_messages, total_flows, bad);
    for (const auto& [id, st] : sources) {
        fmt::print(stderr, "  source_id {}: {} messages ({} flow, {} event, {} other), {} flows, {} msg_id gaps, {} restarts\n",
                   id, st.messages, st.flow_messages, st.event_messages, st.other_messages, st.flows, st.msg_id_gaps,
                   st.restarts);
        js += fmt::format(R"({}{{"source_id":{},"messages":{},"flow_messages":{},"event_messages":{},)"
                          R"("other_messages":{},"flows":{},"msg_id_gaps":{},"restarts":{},"last_msg_id":{}}})",
                          first ? "" : ",", id, st.messages, st.flow_messages, st.event_messages, st.other_messages,
                          st.flows, st.msg_id_gaps, st.restarts, st.last_msg_id);
        first = false;
    }
    js += "]}\n";
    if (!stats_path.empty()) {
        std::FILE* f = stats_path == "-" ? stdout : std::fopen(stats_path.c_str(), "w");
        if (!f) {
            fmt::print(stderr, "weir-collector: cannot write {}: {}\n", stats_path, std::strerror(errno));
            return 1;
        }
        std::fputs(js.c_str(), f);
        if (f != stdout)
            std::fclose(f);
    }
    return 0;
}
