// Exporter: encoders and transports put together, balanced by flow hash.
//
// Each stream's sink paces datagrams (a GCRA with a burst of 1/50 s worth
// of datagrams), counts the records of every datagram the transport did
// not send (notSent* in the options records), and starts a new encoder
// session after a TCP reconnect.
#include <weir/exporters/exporter.hpp>

#include <time.h>

#include <cerrno>

namespace weir::exporters {

namespace {

uint64_t mono_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

/// At most `rate` datagrams per second, bursts of up to rate/50.
class Pacer {
public:
    explicit Pacer(uint32_t rate = 0)
        : interval_ns_(rate ? 1000000000ULL / rate : 0), burst_(rate / 50 > 1 ? rate / 50 : 1)
    {
    }

    /// Sleeps until the next datagram may leave. Returns the ns waited.
    uint64_t wait() noexcept
    {
        if (interval_ns_ == 0)
            return 0;
        uint64_t now = mono_ns();
        if (tat_ns_ < now)
            tat_ns_ = now;
        const uint64_t window = (burst_ - 1) * interval_ns_;
        uint64_t waited = 0;
        if (tat_ns_ > now + window) {
            const uint64_t until = tat_ns_ - window;
            timespec ts{static_cast<time_t>(until / 1000000000ULL), static_cast<long>(until % 1000000000ULL)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
            }
            waited = until - now;
        }
        tat_ns_ += interval_ns_;
        return waited;
    }

private:
    uint64_t interval_ns_;
    uint64_t burst_;
    uint64_t tat_ns_ = 0; ///< theoretical arrival time of the next datagram
};

} // namespace

struct Exporter::Stream final : DatagramSink {
    std::unique_ptr<Encoder> enc;
    std::unique_ptr<Transport> tr;
    Pacer pacer;
    ProcessCounters pc;
    uint64_t seen_records = 0; ///< encoder totals at the previous datagram
    uint64_t seen_packets = 0;
    uint64_t seen_bytes = 0;
    uint64_t not_sent_records = 0;
    uint64_t paced_waits = 0;
    uint64_t paced_wait_ns = 0;

    void on_datagram(std::span<const uint8_t> d) noexcept override
    {
        if (const uint64_t w = pacer.wait()) {
            ++paced_waits;
            paced_wait_ns += w;
        }
        const uint64_t errors = tr->stats().send_errors;
        tr->send(d);
        // The records of this datagram: the encoder counts a record when
        // written, and finishes a datagram before writing the next one.
        const EncoderStats& e = enc->stats();
        if (tr->stats().send_errors != errors) {
            pc.not_sent_flows += e.records - seen_records;
            pc.not_sent_packets += e.packets_total - seen_packets;
            pc.not_sent_octets += e.bytes_total - seen_bytes;
            not_sent_records += e.records - seen_records;
            enc->set_process_counters(pc);
        }
        seen_records = e.records;
        seen_packets = e.packets_total;
        seen_bytes = e.bytes_total;
        if (tr->take_new_session())
            enc->restart_session();
    }
};

Result<BiflowMode> parse_biflow_mode(std::string_view s)
{
    if (s == "rfc5103") return BiflowMode::Rfc5103;
    if (s == "inout") return BiflowMode::InOut;
    if (s == "oneway") return BiflowMode::OneWay;
    return invalid("bad biflow mode '" + std::string(s) + "' (expected rfc5103, inout or oneway)");
}

Exporter::Exporter(ExportFormat format, const ExporterOptions& opts)
    : format_(format), opts_(opts), boot_ns_(opts.boot_ns), booted_(opts.boot_ns != 0)
{
}

Exporter::~Exporter() = default;

Result<std::unique_ptr<Exporter>> Exporter::create(ExportFormat format, std::string_view collectors,
                                                   const ExporterOptions& opts)
{
    auto eps = parse_collectors(collectors, format == ExportFormat::Ipfix);
    if (!eps)
        return eps.error();
    std::unique_ptr<Exporter> ex(new Exporter(format, opts));
    for (const Endpoint& ep : eps.value()) {
        auto enc = make_encoder(format, opts.encoder);
        if (!enc)
            return enc.error();
        auto tr = open_transport(ep, opts.transport);
        if (!tr)
            return tr.error();
        auto s = std::make_unique<Stream>();
        s->pacer = Pacer(opts.max_datagrams_per_s);
        s->enc = std::move(enc.value());
        s->tr = std::move(tr.value());
        ex->streams_.push_back(std::move(s));
    }
    return ex;
}

void Exporter::set_boot_ns(uint64_t boot_ns) noexcept
{
    if (flows_ != 0 || boot_ns == 0)
        return;
    boot_ns_ = boot_ns;
    booted_ = true;
}

void Exporter::set_ignored(uint64_t packets, uint64_t octets) noexcept
{
    for (auto& s : streams_) {
        s->pc.ignored_packets = packets;
        s->pc.ignored_octets = octets;
        s->enc->set_process_counters(s->pc);
    }
}

void Exporter::maybe_boot(const FlowRecord& r) noexcept
{
    if (booted_)
        return;
    const uint64_t first = r.first_ns();
    boot_ns_ = first > opts_.boot_margin_ns ? first - opts_.boot_margin_ns : 0;
    booted_ = true;
}

void Exporter::export_flow(const FlowRecord& r) noexcept
{
    maybe_boot(r);
    ++flows_;
    if (r.last_ns() > now_ns_)
        now_ns_ = r.last_ns();
    if (now_ns_ < boot_ns_)
        now_ns_ = boot_ns_;
    // Datagrams that waited too long leave before this record joins one.
    if (any_pending_ && now_ns_ - oldest_pending_ns_ >= opts_.max_delay_ns)
        flush();
    const ExportClock clk = clock();
    if (opts_.send_to_all || streams_.size() == 1) {
        for (auto& s : streams_)
            s->enc->add(r, clk, *s);
    } else {
        Stream& s = *streams_[flow_hash(r.key) % streams_.size()];
        s.enc->add(r, clk, s);
    }
    if (!any_pending_) {
        for (auto& s : streams_) {
            if (s->enc->pending()) {
                any_pending_ = true;
                oldest_pending_ns_ = now_ns_;
                break;
            }
        }
    }
}

void Exporter::tick(uint64_t now_ns) noexcept
{
    if (now_ns > now_ns_)
        now_ns_ = now_ns;
    if (any_pending_ && now_ns_ - oldest_pending_ns_ >= opts_.max_delay_ns)
        flush();
}

void Exporter::flush() noexcept
{
    const ExportClock clk = clock();
    for (auto& s : streams_)
        s->enc->flush(clk, *s);
    any_pending_ = false;
}

ExporterStats Exporter::stats() const noexcept
{
    ExporterStats st;
    st.flows = flows_;
    for (const auto& s : streams_) {
        const EncoderStats& e = s->enc->stats();
        const TransportStats& t = s->tr->stats();
        st.records += e.records;
        st.skipped += e.skipped_ipv6 + e.skipped_empty;
        st.template_sends += e.template_sends;
        st.packets_total += e.packets_total;
        st.bytes_total += e.bytes_total;
        st.datagrams += t.datagrams;
        st.bytes += t.bytes;
        st.send_errors += t.send_errors;
        st.l7_records += e.l7_records;
        st.options_records += e.options_records;
        st.not_sent_records += s->not_sent_records;
        st.disconnects += t.disconnects;
        st.reconnects += t.reconnects;
        st.paced_waits += s->paced_waits;
        st.paced_wait_ns += s->paced_wait_ns;
    }
    return st;
}

std::string Exporter::describe() const
{
    std::string s(export_format_name(format_));
    s += " ->";
    for (std::size_t i = 0; i < streams_.size(); ++i) {
        s.push_back(i ? ',' : ' ');
        s.append(streams_[i]->tr->endpoint().to_string());
    }
    if (format_ != ExportFormat::NetflowV5) {
        // v9 has no enterprise elements: RFC 5103 is carried as IN/OUT pairs.
        BiflowMode m = opts_.encoder.biflow;
        if (format_ == ExportFormat::NetflowV9 && m == BiflowMode::Rfc5103)
            m = BiflowMode::InOut;
        s += " (" + std::string(biflow_mode_name(m)) + ")";
    }
    if (streams_.size() > 1)
        s += opts_.send_to_all ? " (to all)" : " (by flow hash)";
    if (opts_.max_datagrams_per_s)
        s += " (at most " + std::to_string(opts_.max_datagrams_per_s) + " datagrams/s each)";
    if (opts_.encoder.options_records && format_ != ExportFormat::NetflowV5)
        s += " (options records)";
    if (opts_.encoder.sampling_interval > 1)
        s += " (sampled 1:" + std::to_string(opts_.encoder.sampling_interval)
             + (opts_.encoder.sampling_random ? " random)" : ")");
    return s;
}

Result<std::vector<std::unique_ptr<Exporter>>> make_exporters(const ExportCliOptions& o)
{
    std::vector<std::unique_ptr<Exporter>> out;
    auto mode = parse_biflow_mode(o.biflow);
    if (!mode)
        return Error{mode.error().code, "--export-biflow: " + mode.error().context};
    ExporterOptions eo;
    eo.encoder.mtu = o.mtu;
    eo.encoder.template_refresh_packets = o.template_packets;
    eo.encoder.template_refresh_s = o.template_seconds;
    eo.encoder.domain_id = o.domain_id;
    eo.encoder.engine_type = o.engine_type;
    eo.encoder.engine_id = o.engine_id;
    eo.encoder.biflow = mode.value();
    eo.encoder.options_records = o.options;
    eo.encoder.l7_fields = o.l7;
    eo.encoder.sampling_interval = o.sampling_interval;
    eo.encoder.sampling_random = o.sampling_random;
    eo.send_to_all = o.send_to_all;
    eo.max_datagrams_per_s = o.rate_pps;
    const struct {
        const std::string& list;
        ExportFormat f;
        const char* opt;
    } wanted[] = {{o.v5, ExportFormat::NetflowV5, "--v5"},
                  {o.v9, ExportFormat::NetflowV9, "--v9"},
                  {o.ipfix, ExportFormat::Ipfix, "--ipfix"}};
    for (const auto& w : wanted) {
        if (w.list.empty())
            continue;
        auto ex = Exporter::create(w.f, w.list, eo);
        if (!ex)
            return Error{ex.error().code, std::string(w.opt) + ": " + ex.error().context};
        out.push_back(std::move(ex.value()));
    }
    return out;
}

} // namespace weir::exporters
