// weir-gen: packets-per-second traffic generator and counting sink for the
// probe's benchmarks and live tests.
//
//   weir-gen -i IFACE [--mode live|afxdp] [--flows N] [--size BYTES] ...
//   weir-gen --sink -i IFACE [--duration S] [--count-flows] [--sample-pcap F]
//
// Every run is bounded: it stops at --count or --duration, whichever comes
// first, and without --count the duration defaults to 5 s. The option
// parsing, validation and reporting live here; the modes are live.cpp
// (BPF_PROG_RUN live frames), afxdp.cpp (AF_XDP TX) and sink.cpp.
#include "gen.hpp"

#include <weir/abi/gen.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>

namespace weir::gen {

std::atomic<bool> g_stop{false};

double now_s() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace weir::gen

namespace {

using namespace weir::gen;

void on_signal(int) { g_stop.store(true); }

weir::Result<std::array<uint8_t, 6>> parse_mac(const std::string& s)
{
    std::array<unsigned, 6> v{};
    char tail = 0;
    if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
        return weir::invalid("MAC address '" + s + "' (expected aa:bb:cc:dd:ee:ff)");
    std::array<uint8_t, 6> mac{};
    for (size_t i = 0; i < 6; ++i) {
        if (v[i] > 0xff)
            return weir::invalid("MAC address '" + s + "' (byte out of range)");
        mac[i] = static_cast<uint8_t>(v[i]);
    }
    return mac;
}

weir::Result<uint32_t> parse_ipv4(const std::string& s)
{
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1)
        return weir::invalid("IPv4 address '" + s + "'");
    return ntohl(a.s_addr);
}

int fail(const weir::Error& e)
{
    std::fprintf(stderr, "weir-gen: %s\n", e.message().c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"weir-gen: packets-per-second traffic generator (BPF live frames or AF_XDP) and counting XDP sink"};
    GenOptions g;
    SinkOptions sk;
    std::string mode = "live", proto = "udp", src_ip, dst_ip;
    std::string src_mac = "02:00:00:00:00:01", dst_mac = "02:00:00:00:00:02";
    bool sink = false, json = false, dry_run = false, ipv6 = false;
    int vlan = -1;
    double duration = 0;
    unsigned sport = 1024, dport = 9;

    app.add_option("-i,--interface", g.iface, "interface to send on (sink: to count on)")->required();
    app.add_flag("--sink", sink, "attach the counting XDP sink instead of generating");
    app.add_option("--mode", mode, "live (BPF_PROG_RUN live frames) or afxdp")
        ->check(CLI::IsMember({"live", "afxdp"}));
    app.add_option("--flows", g.frame.flows, "distinct flows (source port, then last byte of the source address)")
        ->check(CLI::Range(1u, WEIR_GEN_MAX_FLOWS));
    app.add_option("--size", g.frame.size, "frame size without FCS, 60..1514");
    app.add_option("--proto", proto, "udp or tcp")->check(CLI::IsMember({"udp", "tcp"}));
    app.add_flag("--ipv6", ipv6, "IPv6 instead of IPv4");
    app.add_option("--src-ip", src_ip, "source address of flow 0 (default 10.0.0.1, fd00::1)");
    app.add_option("--dst-ip", dst_ip, "destination address (default 10.0.0.2, fd00::2)");
    app.add_option("--src-mac", src_mac, "source MAC");
    app.add_option("--dst-mac", dst_mac, "destination MAC");
    app.add_option("--sport", sport, "source port of flow 0")->check(CLI::Range(1u, 65535u));
    app.add_option("--dport", dport, "destination port")->check(CLI::Range(0u, 65535u));
    app.add_option("--vlan", vlan, "802.1Q VLAN id")->check(CLI::Range(0, 4094));
    app.add_option("--rate", g.rate, "packets per second (0 = as fast as possible)");
    app.add_option("--count", g.count, "packets to send");
    app.add_option("--duration", duration, "seconds (default 5 without --count)")
        ->check(CLI::Range(0.0, 86400.0));
    app.add_option("--threads", g.threads, "live mode: generator threads, one per CPU the process may run on (taskset)")
        ->check(CLI::Range(1u, 256u));
    app.add_option("--batch", g.batch, "frames per kernel batch (live, max 256) or per TX ring burst (afxdp)")
        ->check(CLI::Range(1u, 1024u));
    app.add_option("--queue", g.queue, "afxdp: TX queue id");
    app.add_flag("--dry-run", dry_run, "check the options, the interface and the template, send nothing");
    app.add_flag("--json", json, "print the result as one JSON object");
    app.add_flag("--count-flows", sk.count_flows, "sink: count packets per distinct IPv4/IPv6 5-tuple");
    app.add_option("--max-flows", sk.max_flows, "sink: size of the distinct-flow table")
        ->check(CLI::Range(1u, 1u << 24));
    app.add_option("--sample-pcap", sk.sample_pcap, "sink: write the sampled frames (16 per CPU) to this pcap");
    app.add_option("--sample-every", sk.sample_every, "sink: sample frames 0, N, 2N... of each CPU")
        ->check(CLI::Range(1u, 1u << 30));
    app.add_option("--ready-file", sk.ready_file, "sink: create this file once the program is attached");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    if (if_nametoindex(g.iface.c_str()) == 0)
        return fail(weir::from_errno(errno, "no such interface '" + g.iface + "'"));

    if (sink) {
        if (geteuid() != 0)
            return fail(weir::invalid("the sink needs root (CAP_BPF, CAP_NET_ADMIN) to attach XDP"));
        if (dry_run)
            return 0;
        sk.iface = g.iface;
        sk.duration = duration;
        auto r = run_sink(sk);
        if (!r)
            return fail(r.error());
        const double pps = r->seconds > 0 ? static_cast<double>(r->packets) / r->seconds : 0;
        if (json) {
            nlohmann::json j{{"mode", "sink"},         {"packets", r->packets},   {"bytes", r->bytes},
                             {"seconds", r->seconds},  {"pps", pps},              {"unparsed", r->unparsed},
                             {"samples", r->samples}};
            if (r->flows) {
                j["flows"] = *r->flows;
                j["flow_min_packets"] = r->flow_min_packets;
                j["flow_max_packets"] = r->flow_max_packets;
                j["flow_table_full"] = r->flow_table_full;
            }
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%s", fmt::format("received {} packets, {} bytes in {:.3f} s ({:.0f} pps)", r->packets,
                                          r->bytes, r->seconds, pps)
                                  .c_str());
            if (r->flows)
                std::printf("%s", fmt::format(", {} flows ({}..{} packets each)", *r->flows, r->flow_min_packets,
                                              r->flow_max_packets)
                                      .c_str());
            std::printf("\n");
        }
        return 0;
    }

    g.mode = mode == "afxdp" ? Mode::AfXdp : Mode::Live;
    g.frame.proto = proto == "tcp" ? 6 : 17;
    g.frame.vlan = vlan;
    g.frame.sport_base = static_cast<uint16_t>(sport);
    g.frame.dport = static_cast<uint16_t>(dport);
    g.frame.ipv6 = ipv6;
    if (ipv6) {
        if (!src_ip.empty() && inet_pton(AF_INET6, src_ip.c_str(), g.frame.src_ip6.data()) != 1)
            return fail(weir::invalid("IPv6 address '" + src_ip + "'"));
        if (!dst_ip.empty() && inet_pton(AF_INET6, dst_ip.c_str(), g.frame.dst_ip6.data()) != 1)
            return fail(weir::invalid("IPv6 address '" + dst_ip + "'"));
    } else {
        if (!src_ip.empty()) {
            auto a = parse_ipv4(src_ip);
            if (!a)
                return fail(a.error());
            g.frame.src_ip = *a;
        }
        if (!dst_ip.empty()) {
            auto a = parse_ipv4(dst_ip);
            if (!a)
                return fail(a.error());
            g.frame.dst_ip = *a;
        }
    }
    auto smac = parse_mac(src_mac);
    auto dmac = parse_mac(dst_mac);
    for (const weir::Error* e : {smac ? nullptr : &smac.error(), dmac ? nullptr : &dmac.error()})
        if (e)
            return fail(*e);
    g.frame.src_mac = *smac;
    g.frame.dst_mac = *dmac;
    if (g.mode == Mode::Live && g.batch > 256)
        return fail(weir::invalid("--batch in live mode must be 1..256"));
    // Never unbounded: without a count the run lasts --duration (5 s default).
    g.duration = duration > 0 ? duration : (g.count ? 0 : 5.0);

    auto t = build_template(g.frame);
    if (!t)
        return fail(t.error());
    if (geteuid() != 0)
        return fail(weir::invalid("needs root (CAP_BPF, CAP_NET_ADMIN) to send"));
    if (dry_run) {
        std::printf("%s\n", fmt::format("would send {} B {} frames, {} flows, on {} ({} mode)", g.frame.size, proto,
                                        g.frame.flows, g.iface, mode)
                                .c_str());
        return 0;
    }

    auto r = g.mode == Mode::Live ? run_live(g, *t) : run_afxdp(g, *t);
    if (!r)
        return fail(r.error());
    // A veth drops XDP-redirected frames unless its peer has an XDP program
    // (or GRO) on: say so instead of reporting a silent zero.
    if (r->failed && r->sent == 0)
        return fail(weir::Error{std::make_error_code(std::errc::io_error),
                                fmt::format("{} refused all {} frames (down, or its veth peer has neither an XDP "
                                            "program nor GRO on)",
                                            g.iface, r->failed)});
    if (r->failed)
        std::fprintf(stderr, "weir-gen: warning: %s refused %llu frames\n", g.iface.c_str(),
                     static_cast<unsigned long long>(r->failed));
    const double pps = r->seconds > 0 ? static_cast<double>(r->sent) / r->seconds : 0;
    const double bps = pps * g.frame.size * 8;
    if (json) {
        nlohmann::json j{{"sent", r->sent},       {"seconds", r->seconds}, {"pps", pps},
                         {"bps", bps},            {"mode", r->mode},       {"size", g.frame.size},
                         {"flows", g.frame.flows}};
        if (r->failed_known)
            j["failed"] = r->failed;
        else
            j["failed"] = nullptr;
        if (g.mode == Mode::Live)
            j["redirected"] = r->redirected;
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s\n", fmt::format("sent {} packets in {:.3f} s: {:.0f} pps, {:.3f} Gbit/s ({} mode{})", r->sent,
                                        r->seconds, pps, bps / 1e9, r->mode,
                                        r->failed_known ? fmt::format(", {} failed", r->failed)
                                                        : std::string(", failed unknown"))
                                .c_str());
    }
    return 0;
}
