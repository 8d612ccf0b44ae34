// weirctl nic IFACE [--json] [--setup] [--queues N] [--workers N]
//
// Shows what matters for capturing on an interface (driver, queues, RSS
// symmetry, offloads that merge or split packets, XDP attachment and
// zero-copy support) and the warnings weir::nics::warnings() derives from
// it. --setup first applies, in this order (changing channels can reset a
// driver's RSS key): channels (with --queues), the symmetric RSS key and
// hash fields, capture offloads off, promiscuous mode on. Each step is
// reported as done, partial, not supported by the driver (a warning) or
// failed; the exit code is 0 only when no step failed.
#include "commands.hpp"

#include <weir/nics/nic.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

using weir::nics::NicInfo;
using weir::nics::Support;

struct NicArgs {
    std::string ifname;
    bool json = false;
    bool setup = false;
    uint32_t queues = 0;
    uint32_t workers = 0;
};

struct Step {
    std::string name;
    std::string status; ///< "done", "partial", "not supported by driver", "failed"
    std::string detail;
};

/// Offloads shown by default: the ones that change what a capture sees.
const char* const kShownOffloads[] = {
    "rx-gro", "rx-gro-hw", "rx-gro-list", "rx-lro", "tx-generic-segmentation", "tx-tcp-segmentation",
    "tx-tcp6-segmentation", "tx-udp-segmentation", "rx-vlan-hw-parse", "rx-checksum",
};

std::string join(const std::vector<std::string>& v, const char* sep)
{
    std::string out;
    for (const auto& s : v) {
        if (!out.empty())
            out += sep;
        out += s;
    }
    return out;
}

std::string hex(const std::vector<uint8_t>& bytes)
{
    std::string out;
    for (uint8_t b : bytes)
        out += fmt::format("{:02x}", b);
    return out;
}

Step failed_or_unsupported(const std::string& name, const weir::Error& e)
{
    if (weir::nics::not_supported(e))
        return {name, "not supported by driver", e.message()};
    return {name, "failed", e.message()};
}

std::vector<Step> run_setup(const NicArgs& a)
{
    namespace nics = weir::nics;
    std::vector<Step> steps;
    if (a.queues > 0) {
        auto r = nics::set_channels(a.ifname, a.queues);
        steps.push_back(r ? Step{"channels", "done", fmt::format("{} RX queues", a.queues)}
                          : failed_or_unsupported("channels", r.error()));
    }
    if (auto r = nics::set_symmetric_rss(a.ifname); r) {
        if (r->fields_refused.empty())
            steps.push_back({"symmetric-rss", "done", "0x6d5a key; IPs and ports for " + join(r->fields_set, ", ")});
        else
            steps.push_back({"symmetric-rss", "partial",
                             "0x6d5a key set; hash fields refused: " + join(r->fields_refused, "; ")});
    } else {
        steps.push_back(failed_or_unsupported("symmetric-rss", r.error()));
    }
    if (auto r = nics::capture_offloads_off(a.ifname); r) {
        std::string detail;
        if (!r->changed.empty())
            detail = "changed: " + join(r->changed, ", ");
        if (!r->refused.empty()) {
            if (!detail.empty())
                detail += "; ";
            detail += "refused by driver: " + join(r->refused, ", ");
        }
        if (detail.empty())
            detail = "already off";
        steps.push_back({"capture-offloads-off", r->refused.empty() ? "done" : "partial", detail});
    } else {
        steps.push_back(failed_or_unsupported("capture-offloads-off", r.error()));
    }
    if (auto r = nics::set_promisc(a.ifname, true); r)
        steps.push_back({"promisc-on", "done", ""});
    else
        steps.push_back(failed_or_unsupported("promisc-on", r.error()));
    return steps;
}

nlohmann::json to_json(const NicInfo& n, const std::vector<Step>& steps, const std::vector<std::string>& warns,
                       bool did_setup)
{
    using nlohmann::json;
    json j;
    j["interface"] = n.name;
    j["ifindex"] = n.ifindex;
    j["driver"] = {{"support", weir::nics::support_name(n.drvinfo_support)},
                   {"name", n.driver},
                   {"version", n.version},
                   {"firmware", n.firmware},
                   {"bus", n.bus}};
    j["link"] = {{"admin_up", n.admin_up}, {"lower_up", n.lower_up}, {"operstate", n.operstate},
                 {"mtu", n.mtu},           {"mac", n.mac},           {"promisc", n.promisc}};
    j["queues"] = {{"rx", n.rx_queues}, {"tx", n.tx_queues}};
    const auto& c = n.channels;
    j["channels"] = {{"support", weir::nics::support_name(c.support)}};
    if (c.support == Support::Supported) {
        j["channels"]["current"] = {{"rx", c.rx}, {"tx", c.tx}, {"other", c.other}, {"combined", c.combined}};
        j["channels"]["max"] = {{"rx", c.max_rx}, {"tx", c.max_tx}, {"other", c.max_other}, {"combined", c.max_combined}};
    } else {
        j["channels"]["note"] = c.note;
    }
    const auto& r = n.rss;
    j["rss"] = {{"support", weir::nics::support_name(r.support)}};
    if (r.support == Support::Supported) {
        j["rss"]["hash_function"] = r.hash_function;
        j["rss"]["key"] = hex(r.key);
        j["rss"]["key_size"] = r.key.size();
        j["rss"]["key_symmetric"] = r.key_symmetric;
        j["rss"]["input_xfrm"] = r.input_xfrm;
        j["rss"]["symmetric"] = r.symmetric();
        j["rss"]["indir_size"] = r.indir_size;
        j["rss"]["table_queues"] = r.table_queues();
    } else {
        j["rss"]["note"] = r.note;
    }
    json fields = json::object();
    for (const auto& h : r.hash_fields)
        fields[h.flow] = h.support == Support::Supported ? json(weir::nics::hash_fields_name(h.fields))
                                                         : json(nullptr);
    j["rss"]["hash_fields"] = fields;
    json off = json::object();
    if (n.offloads.support == Support::Supported) {
        for (const char* name : kShownOffloads)
            if (const auto* f = n.offloads.find(name))
                off[name] = {{"active", f->active}, {"fixed", f->fixed}};
    }
    j["offloads"] = off;
    const auto& x = n.xdp;
    j["xdp"] = {{"attached", weir::nics::xdp_attach_name(x.attached)},
                {"prog_id", x.prog_id},
                {"features_support", weir::nics::support_name(x.features_support)}};
    if (x.features_support == Support::Supported) {
        j["xdp"]["features"] = weir::nics::xdp_feature_names(x.features);
        j["xdp"]["zero_copy"] = x.zero_copy();
        j["xdp"]["zc_max_segs"] = x.zc_max_segs;
    } else {
        j["xdp"]["zero_copy"] = nullptr;
        j["xdp"]["note"] = x.note;
    }
    if (did_setup) {
        json s = json::array();
        for (const auto& st : steps)
            s.push_back({{"step", st.name}, {"status", st.status}, {"detail", st.detail}});
        j["setup"] = s;
    }
    j["warnings"] = warns;
    return j;
}

void print_text(const NicInfo& n, const std::vector<Step>& steps, const std::vector<std::string>& warns,
                bool did_setup)
{
    fmt::print("{} (ifindex {})\n", n.name, n.ifindex);
    if (n.drvinfo_support == Support::Supported)
        fmt::print("  driver:    {} {}{}{}\n", n.driver, n.version,
                   n.firmware.empty() ? "" : ", firmware " + n.firmware, n.bus.empty() ? "" : ", bus " + n.bus);
    else
        fmt::print("  driver:    {}\n", weir::nics::support_name(n.drvinfo_support));
    fmt::print("  link:      {} (operstate {}), mtu {}, mac {}, promiscuous {}\n",
               n.admin_up ? (n.lower_up ? "up" : "up, no carrier") : "down", n.operstate, n.mtu,
               n.mac.empty() ? "-" : n.mac, n.promisc ? "on" : "off");
    fmt::print("  queues:    {} rx, {} tx\n", n.rx_queues, n.tx_queues);
    const auto& c = n.channels;
    if (c.support == Support::Supported)
        fmt::print("  channels:  rx {}/{}, tx {}/{}, other {}/{}, combined {}/{} (current/max)\n", c.rx, c.max_rx,
                   c.tx, c.max_tx, c.other, c.max_other, c.combined, c.max_combined);
    else
        fmt::print("  channels:  {}\n", weir::nics::support_name(c.support));
    const auto& r = n.rss;
    if (r.support == Support::Supported)
        fmt::print("  rss:       {}, {}-byte key {}, key symmetric {}, symmetric {}, {} indirection entries "
                   "over {} queues\n",
                   r.hash_function, r.key.size(), hex(r.key), r.key_symmetric ? "yes" : "no",
                   r.symmetric() ? "yes" : "no", r.indir_size, r.table_queues());
    else
        fmt::print("  rss:       {}\n", weir::nics::support_name(r.support));
    std::vector<std::string> fields;
    for (const auto& h : r.hash_fields)
        fields.push_back(h.flow + " " +
                         (h.support == Support::Supported ? weir::nics::hash_fields_name(h.fields)
                                                          : std::string(weir::nics::support_name(h.support))));
    fmt::print("  hashing:   {}\n", join(fields, "; "));
    if (n.offloads.support == Support::Supported) {
        std::vector<std::string> off;
        for (const char* name : kShownOffloads)
            if (const auto* f = n.offloads.find(name))
                off.push_back(fmt::format("{} {}{}", name, f->active ? "on" : "off", f->fixed ? " [fixed]" : ""));
        fmt::print("  offloads:  {}\n", join(off, ", "));
    } else {
        fmt::print("  offloads:  {}\n", weir::nics::support_name(n.offloads.support));
    }
    const auto& x = n.xdp;
    if (x.attached == weir::nics::XdpAttach::None)
        fmt::print("  xdp:       no program attached\n");
    else
        fmt::print("  xdp:       {} mode, program id {}\n", weir::nics::xdp_attach_name(x.attached), x.prog_id);
    if (x.features_support == Support::Supported)
        fmt::print("  xdp feat:  {}; zero-copy {}\n",
                   x.features ? join(weir::nics::xdp_feature_names(x.features), " ") : std::string("none"),
                   x.zero_copy() ? fmt::format("yes (max segs {})", x.zc_max_segs) : std::string("no"));
    else
        fmt::print("  xdp feat:  unknown\n");
    if (did_setup) {
        fmt::print("setup:\n");
        for (const auto& s : steps)
            fmt::print("  {:<22} {}{}\n", s.name, s.status, s.detail.empty() ? "" : ": " + s.detail);
    }
    if (warns.empty()) {
        fmt::print("warnings:  none\n");
    } else {
        fmt::print("warnings:\n");
        for (const auto& w : warns)
            fmt::print("  - {}\n", w);
    }
}

int run(const NicArgs& a)
{
    // Check the interface before changing anything.
    if (auto pre = weir::nics::query(a.ifname); !pre) {
        std::fprintf(stderr, "weirctl nic: %s\n", pre.error().message().c_str());
        return 1;
    }
    std::vector<Step> steps;
    if (a.setup)
        steps = run_setup(a);
    auto info = weir::nics::query(a.ifname);
    if (!info) {
        std::fprintf(stderr, "weirctl nic: %s\n", info.error().message().c_str());
        return 1;
    }
    weir::nics::CapturePlan plan;
    plan.workers = a.workers ? a.workers : a.queues;
    const auto warns = weir::nics::warnings(*info, plan);
    if (a.json)
        fmt::print("{}\n", to_json(*info, steps, warns, a.setup).dump(2));
    else
        print_text(*info, steps, warns, a.setup);
    for (const auto& s : steps)
        if (s.status == "failed")
            return 1;
    return 0;
}

weirctl::Runner setup_nic(CLI::App& app)
{
    auto args = std::make_shared<NicArgs>();
    CLI::App* sub = app.add_subcommand("nic", "Show (and with --setup, prepare) a NIC for capture");
    sub->add_option("IFACE", args->ifname, "Network interface")->required();
    sub->add_flag("--json", args->json, "Print one JSON object");
    sub->add_flag("--setup", args->setup,
                  "Apply: channels (--queues), symmetric RSS, capture offloads off, promiscuous on");
    sub->add_option("--queues", args->queues, "RX queues to configure with --setup")->check(CLI::Range(1u, 4096u));
    sub->add_option("--workers", args->workers, "Workers planned: warn when there are fewer RX queues")
        ->check(CLI::Range(1u, 4096u));
    return [args] { return run(*args); };
}

const weirctl::Registrar kRegisterNic{setup_nic};

} // namespace
