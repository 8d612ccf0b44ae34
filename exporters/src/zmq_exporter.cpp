// ZMQ transport for the flow encoder: XPUB sockets, subscriber tracking,
// balancing, the periodic "event" message and the wall-clock timer that
// keeps events (and old partly filled messages) going on a quiet link
// (see zmq_exporter.hpp).
#include <weir/exporters/zmq_exporter.hpp>

#include <fmt/format.h>
#include <zmq.h>

#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace weir::exporters {

namespace {

uint64_t steady_ns() noexcept
{
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

uint64_t epoch_ns() noexcept
{
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

Error zmq_error(std::string context)
{
    return from_errno(zmq_errno(), std::move(context));
}

/// JSON string body (no quotes) with the characters JSON requires escaped.
std::string json_escape(std::string_view s)
{
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (c < 0x20) {
            out += fmt::format("\\u{:04x}", c);
        } else {
            out.push_back(ch);
        }
    }
    return out;
}

/// ntopng shows its public key as the hex of the 40-char Z85 text; take both.
Result<std::string> z85_key(std::string_view key)
{
    auto hexval = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (key.size() == 80) {
        std::string out;
        for (std::size_t k = 0; k < 80; k += 2) {
            const int hi = hexval(key[k]);
            const int lo = hexval(key[k + 1]);
            if (hi < 0 || lo < 0)
                return invalid("--zmq-encryption-key: 80 characters but not hex");
            out.push_back(static_cast<char>(hi << 4 | lo));
        }
        key = out;
        uint8_t bin[32];
        if (!zmq_z85_decode(bin, out.c_str()))
            return invalid("--zmq-encryption-key: not a Z85 key");
        return out;
    }
    if (key.size() != 40)
        return invalid("--zmq-encryption-key: expected the collector's 40-character Z85 public key, got " +
                       std::to_string(key.size()) + " characters");
    const std::string k(key);
    uint8_t bin[32];
    if (!zmq_z85_decode(bin, k.c_str()))
        return invalid("--zmq-encryption-key: not a Z85 key");
    return k;
}

} // namespace

struct ZmqExporter::Stream final : ZmqMessageSink {
    std::string endpoint;
    void* sock = nullptr;
    std::unique_ptr<ZmqFlowEncoder> enc;
    // Distinct subscribed prefixes that match each topic (XPUB forwards a
    // prefix once, and its unsubscription when its last subscriber leaves).
    int flow_subs = 0;
    int event_subs = 0;
    ZmqExporterStats st;

    ~Stream() override
    {
        if (sock)
            zmq_close(sock);
    }

    void drain_subscriptions() noexcept
    {
        uint8_t buf[64];
        for (;;) {
            const int n = zmq_recv(sock, buf, sizeof(buf), ZMQ_DONTWAIT);
            if (n < 1)
                return;
            const int delta = buf[0] == 1 ? 1 : buf[0] == 0 ? -1 : 0;
            const auto len = static_cast<std::size_t>(std::min<int>(n, sizeof(buf)) - 1);
            const std::string_view prefix(reinterpret_cast<const char*>(buf + 1), len);
            if (std::string_view("flow").starts_with(prefix))
                flow_subs += delta;
            if (std::string_view("event").starts_with(prefix))
                event_subs += delta;
        }
    }

    void on_message(std::span<const uint8_t> header, std::span<const uint8_t> payload,
                    uint32_t flows) noexcept override
    {
        drain_subscriptions();
        const bool is_flow = flows != 0;
        if ((is_flow ? flow_subs : event_subs) <= 0) {
            // A PUB socket would discard it silently; the msg_id is spent,
            // so a subscriber joining later sees the gap as drops too.
            ++st.no_subscriber;
            st.no_subscriber_flows += flows;
            return;
        }
        if (zmq_send(sock, header.data(), header.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            if (zmq_errno() == EAGAIN) {
                ++st.hwm_drops;
                st.hwm_dropped_flows += flows;
            } else {
                ++st.send_errors;
            }
            return;
        }
        // XPUB checks the high-water mark on the first frame only, so the
        // second one is queued whenever the first one was.
        if (zmq_send(sock, payload.data(), payload.size(), ZMQ_DONTWAIT) < 0) {
            ++st.send_errors;
            return;
        }
        ++st.messages;
        st.bytes += header.size() + payload.size();
    }
};

std::vector<std::string> split_endpoints(const std::vector<std::string>& lists)
{
    std::vector<std::string> out;
    for (const std::string& l : lists) {
        std::string_view v(l);
        while (!v.empty()) {
            const auto comma = v.find(',');
            const std::string_view e = v.substr(0, comma);
            if (!e.empty())
                out.emplace_back(e);
            if (comma == std::string_view::npos)
                break;
            v.remove_prefix(comma + 1);
        }
    }
    return out;
}

Result<std::unique_ptr<ZmqExporter>> make_zmq_exporter(const ExportCliOptions& o, ZmqOptions base)
{
    if (o.zmq.empty())
        return std::unique_ptr<ZmqExporter>{};
    base.endpoints = split_endpoints(o.zmq);
    base.probe_mode = o.zmq_probe_mode;
    base.encoder.compress = o.zmq_compress;
    if (o.zmq_format == "tlv") {
        if (o.zmq_json_labels)
            return invalid("--zmq-json-labels: needs --zmq-format json");
        base.encoder.format = ZmqPayloadFormat::Tlv;
    } else if (o.zmq_format == "json") {
        base.encoder.format = o.zmq_json_labels ? ZmqPayloadFormat::JsonLabels : ZmqPayloadFormat::Json;
    } else {
        return invalid("--zmq-format: expected tlv or json, got '" + o.zmq_format + "'");
    }
    base.encoder.source_id = o.zmq_source_id;
    base.server_key = o.zmq_encryption_key;
    auto ex = ZmqExporter::create(base);
    if (!ex) {
        const std::string& c = ex.error().context;
        return Error{ex.error().code, c.starts_with("--zmq") ? c : "--zmq: " + c};
    }
    return ex;
}

uint32_t default_zmq_source_id()
{
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    uint32_t h = 2166136261u; // FNV-1a: stable across runs and builds
    for (const char* p = host; *p; ++p) {
        h ^= static_cast<uint8_t>(*p);
        h *= 16777619u;
    }
    return h ? h : 1;
}

ZmqExporter::ZmqExporter(const ZmqOptions& opts) : opts_(opts) {}

ZmqExporter::~ZmqExporter()
{
    if (timer_.joinable()) {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        timer_.join();
    }
    streams_.clear(); // close every socket before the context waits for them
    if (ctx_)
        zmq_ctx_term(ctx_);
}

Result<std::unique_ptr<ZmqExporter>> ZmqExporter::create(const ZmqOptions& opts_in)
{
    ZmqOptions opts = opts_in;
    if (opts.endpoints.empty())
        return invalid("--zmq: no endpoint");
    if (opts.encoder.source_id == 0)
        opts.encoder.source_id = default_zmq_source_id();
    std::string server_key;
    if (!opts.server_key.empty()) {
        if (!zmq_has("curve"))
            return invalid("--zmq-encryption-key: this libzmq has no CURVE support");
        auto k = z85_key(opts.server_key);
        if (!k)
            return k.error();
        server_key = k.value();
    }
    std::unique_ptr<ZmqExporter> ex(new ZmqExporter(opts));
    ex->ctx_ = zmq_ctx_new();
    if (!ex->ctx_)
        return zmq_error("zmq_ctx_new");
    for (std::string ep : opts.endpoints) {
        if (ep.starts_with("zmq://"))
            ep = "tcp://" + ep.substr(6); // ntopng's spelling
        const auto scheme = ep.find("://");
        if (scheme == std::string::npos || scheme + 3 >= ep.size())
            return invalid("--zmq '" + ep + "': expected tcp://host:port (or ipc://path)");
        if (opts.probe_mode && ep.find("://*") != std::string::npos)
            return invalid("--zmq '" + ep + "': --zmq-probe-mode connects, so it needs the collector's address, not *");
        auto s = std::make_unique<Stream>();
        s->endpoint = ep;
        auto enc = ZmqFlowEncoder::create(opts.encoder);
        if (!enc)
            return enc.error();
        s->enc = std::move(enc.value());
        s->sock = zmq_socket(ex->ctx_, ZMQ_XPUB);
        if (!s->sock)
            return zmq_error("zmq_socket");
        const int one = 1;
        // The same keepalive ntopng sets on its side of the connection.
        const int ka_idle = 30, ka_cnt = 3, ka_intvl = 3;
        zmq_setsockopt(s->sock, ZMQ_XPUB_NODROP, &one, sizeof(one));
        zmq_setsockopt(s->sock, ZMQ_SNDHWM, &opts.sndhwm, sizeof(opts.sndhwm));
        zmq_setsockopt(s->sock, ZMQ_LINGER, &opts.linger_ms, sizeof(opts.linger_ms));
        zmq_setsockopt(s->sock, ZMQ_TCP_KEEPALIVE, &one, sizeof(one));
        zmq_setsockopt(s->sock, ZMQ_TCP_KEEPALIVE_IDLE, &ka_idle, sizeof(ka_idle));
        zmq_setsockopt(s->sock, ZMQ_TCP_KEEPALIVE_CNT, &ka_cnt, sizeof(ka_cnt));
        zmq_setsockopt(s->sock, ZMQ_TCP_KEEPALIVE_INTVL, &ka_intvl, sizeof(ka_intvl));
        if (!server_key.empty()) {
            // ntopng is always the CURVE server; weir is a client with an
            // ephemeral key pair.
            char pub[41], sec[41];
            if (zmq_curve_keypair(pub, sec) != 0)
                return zmq_error("zmq_curve_keypair");
            if (zmq_setsockopt(s->sock, ZMQ_CURVE_SERVERKEY, server_key.c_str(), 40) != 0 ||
                zmq_setsockopt(s->sock, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
                zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, sec, 40) != 0)
                return zmq_error("CURVE keys for " + ep);
        }
        const int rc = opts.probe_mode ? zmq_connect(s->sock, ep.c_str()) : zmq_bind(s->sock, ep.c_str());
        if (rc != 0)
            return zmq_error(std::string(opts.probe_mode ? "zmq_connect " : "zmq_bind ") + ep);
        ex->streams_.push_back(std::move(s));
    }
    ex->iface_json_ = json_escape(opts.iface);
    ex->version_json_ = json_escape(opts.version);
    utsname u{};
    ex->osname_ = uname(&u) == 0 ? json_escape(u.sysname) : "";
    ex->mode_json_ = json_escape(opts.mode);
    ex->event_buf_.reserve(4096 + ex->iface_json_.size() + ex->version_json_.size() + ex->mode_json_.size());
    ex->last_event_wall_ = ex->clock_moved_wall_ = steady_ns();
    if (opts.timer && (opts.event_interval_ns || opts.max_delay_ns)) {
        ZmqExporter* p = ex.get();
        try {
            ex->timer_ = std::thread([p] { p->timer_loop(); });
        } catch (const std::system_error& e) {
            return Error{e.code(), "ZMQ export timer thread"};
        }
    }
    return ex;
}

Result<void> ZmqExporter::wait_for_subscribers(int timeout_ms)
{
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        std::string missing;
        {
            std::lock_guard lk(mu_);
            for (auto& s : streams_) {
                s->drain_subscriptions();
                if (s->flow_subs <= 0)
                    missing += (missing.empty() ? "" : ", ") + s->endpoint;
            }
        }
        if (missing.empty())
            return {};
        if (std::chrono::steady_clock::now() >= deadline)
            return from_errno(ETIMEDOUT, "no flow subscriber on " + missing);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void ZmqExporter::export_flow(const FlowRecord& r) noexcept
{
    std::lock_guard lk(mu_);
    ++flows_;
    if (r.last_ns() > now_ns_)
        now_ns_ = r.last_ns();
    if (any_pending_ && now_ns_ - oldest_pending_ns_ >= opts_.max_delay_ns)
        flush_pending();
    Stream& s = *streams_[streams_.size() == 1 ? 0 : flow_hash(r.key) % streams_.size()];
    s.enc->add(r, s);
    if (!any_pending_ && s.enc->pending()) {
        any_pending_ = true;
        oldest_pending_ns_ = now_ns_;
        pending_since_wall_ = steady_ns();
    }
    maybe_event();
}

void ZmqExporter::tick(uint64_t now_ns) noexcept
{
    std::lock_guard lk(mu_);
    if (now_ns > now_ns_)
        now_ns_ = now_ns;
    if (any_pending_ && now_ns_ - oldest_pending_ns_ >= opts_.max_delay_ns)
        flush_pending();
    maybe_event();
}

void ZmqExporter::flush_pending() noexcept
{
    for (auto& s : streams_)
        s->enc->flush(*s);
    any_pending_ = false;
}

void ZmqExporter::flush() noexcept
{
    std::lock_guard lk(mu_);
    flush_pending();
    if (opts_.event_interval_ns)
        send_event(opts_.wall_clock ? epoch_ns() : now_ns_);
}

void ZmqExporter::maybe_event() noexcept
{
    if (opts_.event_interval_ns && (last_event_ns_ == 0 || now_ns_ - last_event_ns_ >= opts_.event_interval_ns))
        send_event(opts_.wall_clock ? epoch_ns() : now_ns_);
}

uint64_t ZmqExporter::event_time_ns() const noexcept
{
    // The timer's event: nothing moved the packet clock for a while, so
    // carry it forward by the wall time since it last moved.
    if (opts_.wall_clock || now_ns_ == 0)
        return epoch_ns();
    const uint64_t t = steady_ns();
    return now_ns_ + (t > clock_moved_wall_ ? t - clock_moved_wall_ : 0);
}

void ZmqExporter::timer_loop() noexcept
{
    std::unique_lock lk(mu_);
    uint64_t seen_clock = now_ns_;
    while (!stop_) {
        cv_.wait_for(lk, std::chrono::milliseconds(100));
        if (stop_)
            break;
        const uint64_t t = steady_ns();
        if (now_ns_ != seen_clock) {
            seen_clock = now_ns_;
            clock_moved_wall_ = t;
        }
        if (any_pending_ && opts_.max_delay_ns && t - pending_since_wall_ >= opts_.max_delay_ns) {
            flush_pending();
            ++timer_flushes_;
        }
        if (opts_.event_interval_ns && t - last_event_wall_ >= opts_.event_interval_ns) {
            send_event(event_time_ns());
            ++timer_events_;
        }
    }
}

void ZmqExporter::send_event(uint64_t time_ns) noexcept
{
    last_event_ns_ = now_ns_ ? now_ns_ : 1;
    last_event_wall_ = steady_ns();
    const ZmqProbeCounters c = counters_ ? counters_() : ZmqProbeCounters{};
    // Rates over the event clock since the previous event.
    uint64_t pps = 0, bps = 0;
    if (last_counters_ns_ && time_ns > last_counters_ns_ && c.packets >= last_counters_.packets &&
        c.bytes >= last_counters_.bytes) {
        const double dt = static_cast<double>(time_ns - last_counters_ns_) / 1e9;
        pps = static_cast<uint64_t>(static_cast<double>(c.packets - last_counters_.packets) / dt);
        bps = static_cast<uint64_t>(static_cast<double>(c.bytes - last_counters_.bytes) * 8 / dt);
    }
    last_counters_ = c;
    last_counters_ns_ = time_ns;
    const ZmqExporterStats st = stats_locked();
    event_buf_.clear();
    // The capacity reserved in create() holds the whole object, so this does
    // not allocate. Fields weir cannot fill yet are honest zeros or empty
    // strings: ntopng shows garbage for a missing "probe" sub-key.
    fmt::format_to(std::back_inserter(event_buf_),
        R"({{"time":{},"bytes":{},"packets":{},"packet_drops":{},)"
        R"("iface":{{"name":"{}","speed":0,"ip":""}},"mode":"{}",)"
        R"("probe":{{"ip":"","public_ip":"","uuid":"","unique_source_id":{},"version":"{}",)"
        R"("osname":"{}","license":"","edition":"","maintenance":""}},)"
        R"("avg":{{"bps":{},"pps":{}}},)"
        R"("timeout":{{"lifetime":{},"idle":{},"collected_lifetime":{}}},)"
        R"("drops":{{"export_queue_full":{},"too_many_flows":0,"elk_flow_drops":0,)"
        R"("sflow_pkt_sample_drops":0,"flow_collection_drops":0,"flow_collection_udp_socket_drops":0}},)"
        R"("flow_collection":{{"nf_ipfix_flows":{},"collection_port":0,"sflow_samples":0,"exporters":{{}}}},)"
        R"("zmq":{{"num_flow_exports":{},"num_zmq_exporters":{}}}}})",
        time_ns / 1000000000ULL, c.bytes, c.packets, c.packet_drops, iface_json_, mode_json_, source_id(),
        version_json_, osname_, bps, pps, opts_.active_timeout_s, opts_.idle_timeout_s, opts_.active_timeout_s,
        st.hwm_dropped_flows + st.no_subscriber_flows, c.collected_flows, st.records, streams_.size());
    for (auto& s : streams_)
        s->enc->send_event(event_buf_, *s);
}

ZmqExporterStats ZmqExporter::stats() const noexcept
{
    std::lock_guard lk(mu_);
    return stats_locked();
}

ZmqExporterStats ZmqExporter::stats_locked() const noexcept
{
    ZmqExporterStats st;
    st.flows = flows_;
    st.timer_events = timer_events_;
    st.timer_flushes = timer_flushes_;
    for (const auto& s : streams_) {
        const ZmqEncoderStats& e = s->enc->stats();
        st.records += e.records;
        st.flow_messages += e.flow_messages;
        st.event_messages += e.event_messages;
        st.raw_payload_bytes += e.raw_bytes;
        st.packets_total += e.packets_total;
        st.bytes_total += e.bytes_total;
        st.messages += s->st.messages;
        st.bytes += s->st.bytes;
        st.hwm_drops += s->st.hwm_drops;
        st.hwm_dropped_flows += s->st.hwm_dropped_flows;
        st.no_subscriber += s->st.no_subscriber;
        st.no_subscriber_flows += s->st.no_subscriber_flows;
        st.send_errors += s->st.send_errors;
    }
    return st;
}

std::string ZmqExporter::describe() const
{
    std::string s = "zmq ->";
    for (std::size_t i = 0; i < streams_.size(); ++i) {
        s.push_back(i ? ',' : ' ');
        s += streams_[i]->endpoint;
    }
    s += fmt::format(" ({}, {}{}{}, source_id {}{})", opts_.probe_mode ? "connect" : "bind",
                     zmq_payload_format_name(opts_.encoder.format), opts_.encoder.compress ? "+zlib" : "", opts_.server_key.empty() ? "" : ", curve",
                     opts_.encoder.source_id, streams_.size() > 1 ? ", by flow hash" : "");
    return s;
}

} // namespace weir::exporters
