// Test driver for the flow exporters: reads captures with weir's engine and
// exports every flow with NetFlow v5/v9/IPFIX to real collectors, wired the
// way the weir binary wires them (make_exporters, a pipeline sink on the
// export thread). Writes what it sent, one line per export record, so a test
// can compare it with what the collector decoded:
//   format|proto|src|sport|dst|dport|pkts|bytes|out_pkts|out_bytes
// (ICMP: sport 0, dport = type*256+code). Prints the exporter counters as
// "key=value" lines on stdout.
#include <weir/dataplane/packet_source.hpp>
#include <weir/engine/pipeline.hpp>
#include <weir/exporters/exporter.hpp>
#include <weir/exporters/flow_format.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {

using namespace weir;
using namespace weir::exporters;

bool is_icmp(const FlowKey& k) { return k.proto == 1 || k.proto == 58; }

uint16_t icmp_reply(uint16_t req, uint8_t proto)
{
    const uint8_t t = static_cast<uint8_t>(req >> 8);
    if (proto == 1)
        return t == 8 ? 0 : t == 13 ? 14 << 8 : t == 15 ? 16 << 8 : t == 17 ? 18 << 8 : 0;
    return t == 128 ? 129 << 8 : 0;
}

void write_expect(std::FILE* f, ExportFormat fmt_, BiflowMode mode, const FlowRecord& r)
{
    if (fmt_ == ExportFormat::NetflowV5 && r.key.ip_version != 4)
        return;
    const bool icmp = is_icmp(r.key);
    const uint16_t req = r.client_port() ? r.client_port() : r.server_port();
    const std::string c = format_ip(r.client_addr(), r.key.ip_version);
    const std::string s = format_ip(r.server_addr(), r.key.ip_version);
    const char* name = fmt_ == ExportFormat::NetflowV5 ? "v5" : fmt_ == ExportFormat::NetflowV9 ? "v9" : "ipfix";
    if (fmt_ == ExportFormat::NetflowV9 && mode == BiflowMode::Rfc5103)
        mode = BiflowMode::InOut;
    if (fmt_ == ExportFormat::NetflowV5 || mode == BiflowMode::OneWay) {
        for (int d = 0; d < 2; ++d) {
            const DirCounters& x = r.dir[d];
            if (x.packets == 0)
                continue;
            const uint16_t sp = icmp ? 0 : (d == 0 ? r.client_port() : r.server_port());
            const uint16_t dp = icmp ? (d == 0 ? req : icmp_reply(req, r.key.proto))
                                     : (d == 0 ? r.server_port() : r.client_port());
            fmt::print(f, "{}|{}|{}|{}|{}|{}|{}|{}|0|0\n", name, r.key.proto, d == 0 ? c : s, sp, d == 0 ? s : c,
                       dp, x.packets, x.bytes);
        }
        return;
    }
    if (r.dir[0].packets == 0 && r.dir[1].packets == 0)
        return;
    fmt::print(f, "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n", name, r.key.proto, c, icmp ? 0 : r.client_port(), s,
               icmp ? req : r.server_port(), r.dir[0].packets, r.dir[0].bytes, r.dir[1].packets, r.dir[1].bytes);
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"weir_export_driver: captures -> engine -> NetFlow/IPFIX exporters"};
    std::string input;
    std::string expect;
    ExportCliOptions eo;
    app.add_option("-i,--input", input, "Capture file(s), comma separated")->required();
    app.add_option("--v5", eo.v5, "NetFlow v5 collectors host:port[,host:port]");
    app.add_option("--v9", eo.v9, "NetFlow v9 collectors");
    app.add_option("--ipfix", eo.ipfix, "IPFIX collectors (tcp:// allowed)");
    app.add_option("--export-biflow", eo.biflow, "rfc5103 | inout | oneway");
    app.add_flag("--export-all", eo.send_to_all, "Send every flow to every collector");
    app.add_option("--export-mtu", eo.mtu, "Largest datagram");
    app.add_option("--template-refresh-packets", eo.template_packets, "Templates every N datagrams");
    app.add_option("--template-refresh-seconds", eo.template_seconds, "Templates every T seconds");
    app.add_option("--observation-domain", eo.domain_id, "IPFIX ODID / v9 source id");
    app.add_option("--expect", expect, "Write what was sent, one line per export record");
    app.add_option("--export-rate", eo.rate_pps, "At most N datagrams per second per collector (0 = unpaced)");
    app.add_flag("--export-options", eo.options, "v9/IPFIX options records");
    app.add_flag("--export-l7,!--no-export-l7", eo.l7, "ntop L7 fields for flows with DPI data");
    uint32_t dpi_level = 0;
    app.add_option("-D,--dpi-level", dpi_level, "0 port guess, 1 weir's DPI, 2 nDPI");
    uint32_t flow_delay_us = 0;
    app.add_option("--flow-delay-us", flow_delay_us,
                   "Sleep this long after each exported flow (a slow source: collectors started late, reconnects)");
    uint32_t flow_tick_ms = 0;
    app.add_option("--flow-tick-ms", flow_tick_ms,
                   "Advance the export clock by this much per flow (with --flow-delay-us: timed template refresh)");
    CLI11_PARSE(app, argc, argv);

    auto exps = make_exporters(eo);
    if (!exps) {
        fmt::print(stderr, "weir_export_driver: {}\n", exps.error().message());
        return 1;
    }
    auto mode = parse_biflow_mode(eo.biflow);
    std::FILE* ef = nullptr;
    if (!expect.empty() && (ef = std::fopen(expect.c_str(), "w")) == nullptr) {
        fmt::print(stderr, "weir_export_driver: cannot write {}\n", expect);
        return 1;
    }
    auto src = dataplane::open_capture_files(input);
    if (!src) {
        fmt::print(stderr, "weir_export_driver: {}\n", src.error().message());
        return 1;
    }
    engine::PipelineConfig cfg;
    cfg.workers = 0;
    cfg.table.capacity = 1 << 16;
    cfg.dpi.level = static_cast<uint8_t>(dpi_level);
    engine::Pipeline* pipe_ptr = nullptr;
    bool booted = false;
    auto pipe = engine::Pipeline::create(cfg, [&](const FlowRecord& r) {
        if (!booted) {
            // sysUptime 0 = the first packet, so every flow time is after it.
            const uint64_t first = pipe_ptr->snapshot().first_ts_ns;
            for (auto& e : exps.value())
                e->set_boot_ns(first);
            booted = true;
        }
        static uint64_t tick_ns = 0;
        for (auto& e : exps.value()) {
            e->export_flow(r);
            if (flow_tick_ms) {
                // A capture replays in no time: move export time on with the
                // flows so time-based template refreshes happen.
                tick_ns = std::max(tick_ns, r.last_ns()) + uint64_t{flow_tick_ms} * 1000000ULL;
                e->tick(tick_ns);
                e->flush();
            }
            if (ef)
                write_expect(ef, e->format(), mode.value(), r);
        }
        if (flow_delay_us)
            std::this_thread::sleep_for(std::chrono::microseconds(flow_delay_us));
    });
    if (!pipe) {
        fmt::print(stderr, "weir_export_driver: {}\n", pipe.error().message());
        return 1;
    }
    pipe_ptr = pipe.value().get();
    const auto st = pipe.value()->run(*src.value());
    for (auto& e : exps.value()) {
        e->flush();
        const ExporterStats s = e->stats();
        const std::string n(export_format_name(e->format()));
        fmt::print("{}.describe={}\n", n, e->describe());
        fmt::print("{}.flows={}\n{}.records={}\n{}.skipped={}\n{}.datagrams={}\n{}.bytes={}\n{}.send_errors={}\n"
                   "{}.template_sends={}\n{}.packets_total={}\n{}.bytes_total={}\n",
                   n, s.flows, n, s.records, n, s.skipped, n, s.datagrams, n, s.bytes, n, s.send_errors, n,
                   s.template_sends, n, s.packets_total, n, s.bytes_total);
        fmt::print("{}.l7_records={}\n{}.options_records={}\n{}.not_sent_records={}\n{}.disconnects={}\n"
                   "{}.reconnects={}\n{}.paced_waits={}\n{}.paced_wait_ms={}\n",
                   n, s.l7_records, n, s.options_records, n, s.not_sent_records, n, s.disconnects, n, s.reconnects, n,
                   s.paced_waits, n, s.paced_wait_ns / 1000000);
    }
    fmt::print("pipeline.packets={}\npipeline.flows={}\n", st.packets, st.flows_exported);
    if (ef)
        std::fclose(ef);
    return 0;
}
