// weir's per-queue mode and start-up NIC warnings (see per_queue.hpp).
#include "per_queue.hpp"

#include <weir/nics/nic.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace weir::tools {

Result<std::unique_ptr<PacketSource>> open_per_queue(const std::string& input, const dataplane::LiveOptions& opt,
                                                     std::vector<PacketSource*>& queues)
{
    auto in = dataplane::open_input_queues(input, opt);
    if (!in)
        return in.error();
    queues.insert(queues.end(), in.value().queues.begin(), in.value().queues.end());
    return std::move(in.value().all);
}

namespace {

/// The interface a DPDK device string captures from, when it names one
/// (net_af_xdp0,iface=eth1 / net_af_packet0,iface=eth1); empty otherwise.
std::string dpdk_iface(const std::string& devargs)
{
    size_t pos = 0;
    while (pos < devargs.size()) {
        size_t comma = devargs.find(',', pos);
        if (comma == std::string::npos)
            comma = devargs.size();
        const std::string kv = devargs.substr(pos, comma - pos);
        if (kv.rfind("iface=", 0) == 0)
            return kv.substr(6);
        pos = comma + 1;
    }
    return {};
}

} // namespace

std::vector<std::string> capture_warnings(const std::string& input, const dataplane::LiveOptions& opt)
{
    std::vector<std::string> out;
    auto specs = dataplane::parse_interface_list(input);
    if (!specs)
        return out; // opening the input reports it
    std::vector<std::string> done;
    for (const auto& s : specs.value()) {
        if (s.backend == dataplane::Backend::File)
            continue;
        std::string ifname = s.backend == dataplane::Backend::Dpdk ? dpdk_iface(s.name) : s.name;
        if (ifname.empty() || std::find(done.begin(), done.end(), ifname) != done.end())
            continue;
        done.push_back(ifname);
        auto info = nics::query(ifname);
        if (!info) {
            if (info.error().code.value() != ENODEV) // a missing interface fails the open with its own error
                out.push_back(fmt::format("{}: NIC settings not checked: {}", ifname, info.error().message()));
            continue;
        }
        nics::NicInfo nic = std::move(info.value());
        // weir holds promiscuous mode itself (AF_XDP, AF_PACKET, libpcap;
        // a DPDK port is promiscuous through the PMD).
        if (opt.promisc)
            nic.promisc = true;
        nics::CapturePlan plan;
        // weir spreads packets over its workers by a symmetric hash in
        // software: the RX queue count does not bound them.
        plan.workers = 0;
        plan.af_xdp = s.backend == dataplane::Backend::AfXdp || s.backend == dataplane::Backend::Auto;
        for (auto& w : nics::warnings(nic, plan))
            out.push_back(std::move(w));
    }
    return out;
}

std::string json_string_array(const std::vector<std::string>& v)
{
    return nlohmann::json(v).dump();
}

std::string print_per_queue_summary(std::FILE* out, const std::vector<engine::PipelineStats>& per_queue,
                                    const std::vector<PacketSource*>& sources, const std::vector<int>& cpus)
{
    nlohmann::json arr = nlohmann::json::array();
    fmt::print(out, "  per-queue threads: {}\n", per_queue.size());
    for (size_t i = 0; i < per_queue.size(); ++i) {
        const auto& s = per_queue[i];
        uint64_t drops = 0;
        for (size_t r = 1; r < kDropReasonCount; ++r)
            drops += s.drops.n[r];
        std::string name;
        uint64_t capture_drops = 0;
        if (i < sources.size()) {
            for (const auto& q : sources[i]->queue_stats())
                name += (name.empty() ? "" : "+") + q.name;
            capture_drops = sources[i]->stats().drops;
        }
        const int cpu = i < cpus.size() ? cpus[i] : -1;
        fmt::print(out, "    {} {:<14} {:>10} packets {:>8} flows {:>8} exported {:>6} capture drops {:>6} not accounted{}\n",
                   i, name, s.packets, s.flows_created, s.flows_exported, capture_drops, drops,
                   cpu >= 0 ? fmt::format(" (cpu {})", cpu) : "");
        nlohmann::json q = {{"thread", i},           {"queue", name},           {"cpu", cpu},
                            {"packets", s.packets},  {"bytes", s.bytes},        {"decoded", s.decoded},
                            {"flows", s.flows_created}, {"exported", s.flows_exported},
                            {"capture_drops", capture_drops}, {"not_accounted", drops}};
        arr.push_back(std::move(q));
    }
    return ",\"per_queue\":" + arr.dump();
}

} // namespace weir::tools
