// weirctl bridge: the inline bridge of `weir --bridge ifA:ifB` as the
// kernel holds it, whether or not the weir that attached it still runs.
//
//   weirctl bridge stats IFA:IFB [--json]   per-direction counters, read
//                                           through the attached program's maps
//   weirctl bridge detach IFA:IFB           remove weir's bridge programs (the
//                                           forwarding one or the fail-closed
//                                           drop one) from both ports
// Exit 0 on success, 1 on an error (no weir bridge there, another program
// attached), 2 on bad arguments.
#include "commands.hpp"

#if WEIR_HAVE_BRIDGE
#include <weir/dataplane/bridge.hpp>
#endif

#include <fmt/format.h>

#include <net/if.h>

#include <cstdio>
#include <memory>
#include <string>

namespace {

struct BridgeArgs {
    std::string ports;
    bool json = false;
};

#if WEIR_HAVE_BRIDGE
std::string name_of(uint32_t ix)
{
    char buf[IF_NAMESIZE] = {};
    return if_indextoname(ix, buf) ? std::string(buf) : fmt::format("ifindex {}", ix);
}

int run_stats(const BridgeArgs& a)
{
    auto p = weir::dataplane::parse_bridge_ports(a.ports);
    if (!p) {
        std::fprintf(stderr, "weirctl %s\n", p.error().message().c_str());
        return 2;
    }
    auto at = weir::dataplane::Bridge::attached(p.value()[0]);
    if (!at) {
        std::fprintf(stderr, "weirctl %s\n", at.error().message().c_str());
        return 1;
    }
    const auto& s = at.value();
    const std::string n0 = name_of(s.ifindex[0]), n1 = name_of(s.ifindex[1]);
    if (a.json) {
        fmt::print("{{\"ports\":[\"{}\",\"{}\"],\"directions\":[{{\"from\":\"{}\",\"to\":\"{}\",\"counters\":{}}},"
                   "{{\"from\":\"{}\",\"to\":\"{}\",\"counters\":{}}}]}}\n",
                   n0, n1, n0, n1, weir::dataplane::bridge_counters_json(s.counters[0]), n1, n0,
                   weir::dataplane::bridge_counters_json(s.counters[1]));
    } else {
        fmt::print("{} -> {}: {}\n", n0, n1, weir::dataplane::bridge_counters_text(s.counters[0]));
        fmt::print("{} -> {}: {}\n", n1, n0, weir::dataplane::bridge_counters_text(s.counters[1]));
    }
    return 0;
}

int run_detach(const BridgeArgs& a)
{
    auto p = weir::dataplane::parse_bridge_ports(a.ports);
    if (!p) {
        std::fprintf(stderr, "weirctl %s\n", p.error().message().c_str());
        return 2;
    }
    if (auto r = weir::dataplane::Bridge::detach_ports(p.value()[0], p.value()[1]); !r) {
        std::fprintf(stderr, "weirctl %s\n", r.error().message().c_str());
        return 1;
    }
    fmt::print("detached the weir bridge from {} and {}\n", p.value()[0], p.value()[1]);
    return 0;
}
#endif

weirctl::Runner setup(CLI::App& app)
{
    auto args = std::make_shared<BridgeArgs>();
    auto* cmd = app.add_subcommand("bridge", "inspect or remove the inline bridge of weir --bridge");
    cmd->require_subcommand(1);
    auto* stats = cmd->add_subcommand("stats", "per-direction counters of the attached bridge program");
    stats->add_option("PORTS", args->ports, "IFACE_A:IFACE_B")->required();
    stats->add_flag("--json", args->json, "Print one JSON object");
    auto* detach = cmd->add_subcommand("detach", "remove weir's bridge programs from both ports");
    detach->add_option("PORTS", args->ports, "IFACE_A:IFACE_B")->required();
    return [args, stats]() -> int {
#if WEIR_HAVE_BRIDGE
        return stats->parsed() ? run_stats(*args) : run_detach(*args);
#else
        (void)stats;
        std::fprintf(stderr, "weirctl bridge: built without the BPF toolchain (no inline bridge)\n");
        return 1;
#endif
    };
}

const weirctl::Registrar reg(&setup);

} // namespace
