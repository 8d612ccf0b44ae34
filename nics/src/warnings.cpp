// Capture warnings: what query() found, judged against what a flow probe
// needs (see nic.hpp). Pure: no system calls, testable on a made-up NicInfo.
#include <weir/nics/nic.hpp>

#include <fmt/format.h>

namespace weir::nics {

std::vector<std::string> warnings(const NicInfo& nic, const CapturePlan& plan)
{
    std::vector<std::string> w;
    const std::string& n = nic.name;

    if (!nic.admin_up)
        w.push_back(fmt::format("{}: link is administratively down", n));
    else if (!nic.lower_up)
        w.push_back(fmt::format("{}: link is down (no carrier, operstate {})", n,
                                nic.operstate.empty() ? "unknown" : nic.operstate));

    if (!nic.promisc)
        w.push_back(fmt::format("{}: promiscuous mode is off: frames for other MAC addresses are "
                                "dropped before capture (AF_XDP does not turn it on)",
                                n));

    const uint32_t queues = nic.rx_queues;
    if (plan.workers > 0 && queues < plan.workers)
        w.push_back(fmt::format("{}: {} RX queue{} for {} workers: some workers will get no traffic "
                                "(weirctl nic {} --setup --queues {})",
                                n, queues, queues == 1 ? "" : "s", plan.workers, n, plan.workers));

    if (nic.rss.support == Support::Supported && !nic.rss.symmetric()) {
        w.push_back(fmt::format("{}: RSS is not symmetric ({}, key {}): the two directions of a "
                                "connection can reach different queues and workers",
                                n, nic.rss.hash_function, nic.rss.key_symmetric ? "symmetric" : "asymmetric"));
    }
    if (nic.rss.support == Support::Supported) {
        const uint32_t spread = nic.rss.table_queues();
        if (plan.workers > 0 && spread > 0 && spread < plan.workers && queues >= plan.workers)
            w.push_back(fmt::format("{}: the RSS indirection table spreads flows over {} queue{} only, "
                                    "for {} workers",
                                    n, spread, spread == 1 ? "" : "s", plan.workers));
        for (const auto& h : nic.rss.hash_fields)
            if (h.support == Support::Supported && !h.four_tuple())
                w.push_back(fmt::format("{}: RSS for {} hashes on {}, not IPs and ports", n, h.flow,
                                        hash_fields_name(h.fields)));
    }

    if (nic.offloads.support == Support::Supported) {
        static const std::pair<const char*, const char*> kBad[] = {
            {"rx-gro", "GRO merges received packets: flows see fewer, larger packets"},
            {"rx-gro-hw", "hardware GRO merges received packets"},
            {"rx-lro", "LRO merges received packets"},
            {"tx-generic-segmentation", "GSO: transmitted packets are captured before segmentation"},
            {"tx-tcp-segmentation", "TSO: transmitted TCP is captured before segmentation"},
        };
        for (const auto& [name, why] : kBad) {
            const Offload* f = nic.offloads.find(name);
            if (f && f->active)
                w.push_back(fmt::format("{}: {} is on{}: {}", n, name, f->fixed ? " (fixed)" : "", why));
        }
    }

    if (plan.af_xdp) {
        if (nic.xdp.attached != XdpAttach::None)
            w.push_back(fmt::format("{}: an XDP program is already attached ({} mode, id {}): AF_XDP "
                                    "capture needs its own program",
                                    n, xdp_attach_name(nic.xdp.attached), nic.xdp.prog_id));
        const bool native = nic.xdp.features & kXdpActBasic;
        if (nic.xdp.features_support == Support::Supported && !native)
            w.push_back(fmt::format("{}: the driver offers no native XDP{}: AF_XDP falls back to generic "
                                    "(copy) mode",
                                    n,
                                    nic.driver == "veth" ? " now (veth needs as many RX queues as its peer "
                                                           "has TX queues)"
                                                         : ""));
        else if (nic.xdp.features_support == Support::Supported && !nic.xdp.zero_copy())
            w.push_back(fmt::format("{}: no AF_XDP zero-copy support: AF_XDP runs in copy mode", n));
        else if (nic.xdp.features_support != Support::Supported)
            w.push_back(fmt::format("{}: XDP features unknown (kernel before 6.3?): AF_XDP zero-copy "
                                    "is tried and may fall back to copy mode",
                                    n));
    }
    return w;
}

} // namespace weir::nics
