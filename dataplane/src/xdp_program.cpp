// XdpProgram: the weir_xdp skeleton's life cycle (see xdp_program.hpp).
//
// Load: open the embedded object, size the XSKMAP (rx_queues *
// sockets_per_queue) and the per-queue counter array (rx_queues), set
// .rodata, load. With verdicts, the two verdict maps are the caller's
// (bpf_map__reuse_fd, after checking type and key/value sizes so that a
// wrong descriptor is an error here rather than a verifier message) and
// the egress DEVMAP gets one slot per egress interface, filled after load;
// without verdicts the placeholders keep one entry each. Attach: refuse when any XDP program is on the interface
// (bpf_xdp_query, then XDP_FLAGS_UPDATE_IF_NOEXIST closes the race), driver
// mode first. Detach: bpf_xdp_detach with our program as the expected old
// one, so the kernel leaves a program that replaced ours in place.
#include <weir/dataplane/xdp_program.hpp>

#include "xdp_loader.hpp"

#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>
#include <weir/bpf/weir_xdp.skel.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <vector>

namespace weir::dataplane {

const char* xdp_attach_mode_name(XdpAttachMode m) noexcept
{
    switch (m) {
    case XdpAttachMode::None: return "not attached";
    case XdpAttachMode::Native: return "native XDP";
    case XdpAttachMode::Generic: return "generic XDP";
    }
    return "?";
}

struct XdpProgram::Impl {
    Config cfg;
    weir_xdp* skel = nullptr;
    uint32_t prog_id = 0;
    uint32_t ifindex = 0;
    std::string ifname;
    XdpAttachMode mode = XdpAttachMode::None;
    uint32_t ncpus = 1;

    ~Impl()
    {
        if (skel)
            weir_xdp__destroy(skel);
    }
};

XdpProgram::XdpProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

XdpProgram::~XdpProgram()
{
    detach();
}

Result<std::unique_ptr<XdpProgram>> XdpProgram::load(const Config& cfg)
{
    if (cfg.rx_queues == 0 || cfg.rx_queues > WEIR_XDP_MAX_QUEUES)
        return invalid(fmt::format("XDP program: {} RX queues (1..{} supported)", cfg.rx_queues, WEIR_XDP_MAX_QUEUES));
    if (cfg.sockets_per_queue == 0 || cfg.sockets_per_queue > WEIR_XDP_MAX_SOCKETS_PER_QUEUE)
        return invalid(fmt::format("XDP program: {} sockets per queue (1..{} supported)", cfg.sockets_per_queue,
                                   WEIR_XDP_MAX_SOCKETS_PER_QUEUE));
    auto vc = xdp_loader::check_verdict_config(cfg.verdict_map_fd, cfg.subnet_verdict_map_fd,
                                               cfg.egress_ifaces.size(), "XDP program");
    if (!vc)
        return vc.error();
    const bool verdicts = vc.value();
    auto eg = xdp_loader::egress_ifindexes(cfg.egress_ifaces, "XDP program: egress interface");
    if (!eg)
        return eg.error();
    const std::vector<uint32_t> egress = std::move(eg.value());
    if (verdicts)
        if (auto r = xdp_loader::check_verdict_maps(cfg.verdict_map_fd, cfg.subnet_verdict_map_fd, "XDP program"); !r)
            return r.error();
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0)
        return from_errno(ncpus ? ncpus : EINVAL, "XDP program: number of possible CPUs");
    impl->ncpus = uint32_t(ncpus);

    impl->skel = weir_xdp__open();
    if (!impl->skel)
        return from_errno(errno ? errno : ENOMEM, "XDP program: open weir_xdp");
    weir_xdp* s = impl->skel;
    s->rodata->weir_sockets_per_queue = cfg.sockets_per_queue;
    s->rodata->weir_verdicts_on = verdicts ? 1 : 0;
    int rc = bpf_map__set_max_entries(s->maps.weir_xsks, cfg.rx_queues * cfg.sockets_per_queue);
    if (rc == 0)
        rc = bpf_map__set_max_entries(s->maps.weir_qstats, cfg.rx_queues);
    if (rc == 0 && !egress.empty())
        rc = bpf_map__set_max_entries(s->maps.weir_egress, uint32_t(egress.size()));
    if (rc != 0)
        return from_errno(rc, "XDP program: size maps");
    if (verdicts) {
        rc = bpf_map__reuse_fd(s->maps.weir_verdicts, cfg.verdict_map_fd);
        if (rc == 0)
            rc = bpf_map__reuse_fd(s->maps.weir_subnet_verdicts, cfg.subnet_verdict_map_fd);
        if (rc != 0)
            return from_errno(rc, "XDP program: reuse the verdict maps");
    }
    rc = weir_xdp__load(s);
    if (rc != 0)
        return from_errno(rc, "XDP program: load weir_xdp (needs CAP_BPF and CAP_NET_ADMIN)");

    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    rc = bpf_obj_get_info_by_fd(bpf_program__fd(s->progs.weir_xdp), &info, &len);
    if (rc != 0)
        return from_errno(errno, "XDP program: program info");
    impl->prog_id = info.id;
    if (auto r = xdp_loader::fill_egress(s->maps.weir_egress, egress, cfg.egress_ifaces, "XDP program"); !r)
        return r.error();
    return std::unique_ptr<XdpProgram>(new XdpProgram(std::move(impl)));
}

Result<void> XdpProgram::attach(uint32_t ifindex, const std::string& ifname, LiveOptions::XdpMode mode)
{
    Impl& d = *impl_;
    if (d.mode != XdpAttachMode::None)
        return Error{std::make_error_code(std::errc::file_exists),
                     fmt::format("xdp:{}: program already attached to {}", ifname, d.ifname)};
    // Someone else's program, in any mode, is theirs: report it by id.
    uint32_t other = 0;
    if (bpf_xdp_query_id(int(ifindex), 0, &other) == 0 && other != 0)
        return Error{std::make_error_code(std::errc::device_or_resource_busy),
                     fmt::format("xdp:{}: another XDP program (id {}) is already attached; weir leaves it in place "
                                 "(detach it with 'ip link set dev {} xdp off' if it is not needed)",
                                 ifname, other, ifname)};

    const int prog = bpf_program__fd(d.skel->progs.weir_xdp);
    auto try_attach = [&](uint32_t mode_flag) {
        return bpf_xdp_attach(int(ifindex), prog, XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag, nullptr);
    };
    int rc = 0;
    if (mode != LiveOptions::XdpMode::Generic) {
        rc = try_attach(XDP_FLAGS_DRV_MODE);
        if (rc == 0) {
            d.mode = XdpAttachMode::Native;
        } else if (rc == -EBUSY || rc == -EEXIST) {
            return from_errno(EBUSY, fmt::format("xdp:{}: another XDP program was attached meanwhile; left in place", ifname));
        } else if (mode == LiveOptions::XdpMode::Native) {
            return from_errno(rc, fmt::format("xdp:{}: attach in native (driver) mode", ifname));
        } else {
            std::fprintf(stderr, "weir: xdp:%s: native XDP unavailable (%s), using generic (SKB) mode\n",
                         ifname.c_str(), std::error_code(-rc, std::generic_category()).message().c_str());
        }
    }
    if (d.mode == XdpAttachMode::None) {
        rc = try_attach(XDP_FLAGS_SKB_MODE);
        if (rc == -EBUSY || rc == -EEXIST)
            return from_errno(EBUSY, fmt::format("xdp:{}: another XDP program was attached meanwhile; left in place", ifname));
        if (rc != 0)
            return from_errno(rc, fmt::format("xdp:{}: attach in generic (SKB) mode", ifname));
        d.mode = XdpAttachMode::Generic;
    }
    d.ifindex = ifindex;
    d.ifname = ifname;
    return {};
}

void XdpProgram::detach() noexcept
{
    Impl& d = *impl_;
    if (d.mode == XdpAttachMode::None)
        return;
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof(opts);
    opts.old_prog_fd = bpf_program__fd(d.skel->progs.weir_xdp);
    const uint32_t flags = d.mode == XdpAttachMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    const int rc = bpf_xdp_detach(int(d.ifindex), flags, &opts);
    // ENODEV: the interface is gone, and the program with it. EEXIST: ours
    // was replaced by someone else's, which stays.
    if (rc != 0 && rc != -ENODEV && rc != -EEXIST)
        std::fprintf(stderr, "weir: xdp:%s: detach XDP program %u: %s\n", d.ifname.c_str(), d.prog_id,
                     std::error_code(-rc, std::generic_category()).message().c_str());
    d.mode = XdpAttachMode::None;
}

Result<void> XdpProgram::set_socket(uint32_t index, int xsk_fd)
{
    const Impl& d = *impl_;
    if (index >= d.cfg.rx_queues * d.cfg.sockets_per_queue)
        return invalid(fmt::format("XDP program: socket slot {} beyond the map ({} slots)", index,
                                   d.cfg.rx_queues * d.cfg.sockets_per_queue));
    const int rc = bpf_map__update_elem(d.skel->maps.weir_xsks, &index, sizeof(index), &xsk_fd, sizeof(xsk_fd), BPF_ANY);
    if (rc != 0)
        return from_errno(rc, fmt::format("XDP program: put socket into XSKMAP slot {}", index));
    return {};
}

XdpQueueCounters XdpProgram::counters(uint32_t queue) const noexcept
{
    const Impl& d = *impl_;
    XdpQueueCounters c;
    if (queue >= d.cfg.rx_queues)
        return c;
    // Small and bounded (one entry per possible CPU); counters are read
    // from the control plane, not the packet path.
    std::vector<weir_xdp_queue_stats> v(d.ncpus);
    if (bpf_map__lookup_elem(d.skel->maps.weir_qstats, &queue, sizeof(queue), v.data(),
                             v.size() * sizeof(weir_xdp_queue_stats), 0) != 0)
        return c;
    for (const auto& x : v) {
        c.packets += x.packets;
        c.bytes += x.bytes;
        c.redirected += x.redirected;
        c.passed += x.passed;
        c.redirect_failed += x.redirect_failed;
        c.unparsed += x.unparsed;
        c.verdict_miss += x.verdict_miss;
        c.verdict_forward += x.verdict_forward;
        c.verdict_drop += x.verdict_drop;
        c.verdict_shunt += x.verdict_shunt;
        c.verdict_divert += x.verdict_divert;
        c.divert_failed += x.divert_failed;
    }
    return c;
}

bool XdpProgram::verdicts_on() const noexcept
{
    return impl_->cfg.verdict_map_fd >= 0;
}

int XdpProgram::prog_fd() const noexcept
{
    return bpf_program__fd(impl_->skel->progs.weir_xdp);
}

uint32_t XdpProgram::prog_id() const noexcept
{
    return impl_->prog_id;
}

XdpAttachMode XdpProgram::mode() const noexcept
{
    return impl_->mode;
}

const XdpProgram::Config& XdpProgram::config() const noexcept
{
    return impl_->cfg;
}

} // namespace weir::dataplane
