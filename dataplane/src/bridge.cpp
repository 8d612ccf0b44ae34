// Bridge: the weir_bridge skeleton's life cycle (see bridge.hpp).
//
// Load: resolve both ports, set .rodata (port ifindexes, fail mode,
// watchdog, verdicts on), reuse the verdict maps by fd (checked first, so a
// wrong descriptor is an error here rather than a verifier message), load,
// then fill the port DEVMAP and the egress DEVMAP. Attach: netlink
// (bpf_xdp_attach) so that the attachment outlives the process; a weir
// bridge program already on a port is replaced with XDP_FLAGS_REPLACE
// naming it, so a program someone else attached meanwhile is never
// overwritten. Programs are recognised by their kernel names (bridge.h).
#include <weir/dataplane/bridge.hpp>

#include "xdp_loader.hpp"

#include <weir/abi/bridge.h>
#include <weir/abi/verdict.h>
#include <weir/abi/xdp.h>
#include <weir/bpf/weir_bridge.skel.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

namespace weir::dataplane {

namespace {

uint64_t monotonic_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

Result<uint32_t> ifindex_of(const std::string& name)
{
    return xdp_loader::ifindex_of(name, "bridge: interface");
}

std::string ifname_of(uint32_t ix)
{
    char buf[IF_NAMESIZE] = {};
    return if_indextoname(ix, buf) ? std::string(buf) : fmt::format("ifindex {}", ix);
}

bool is_weir_bridge_prog(const std::string& name)
{
    return name == WEIR_BRIDGE_PROG_NAME || name == WEIR_BRIDGE_DROP_PROG_NAME || name == WEIR_BRIDGE_PASS_PROG_NAME;
}

// The XDP program on an interface: id, kernel name and the attach flag of its mode.
struct OnPort {
    uint32_t id = 0;
    uint32_t mode_flag = 0;  // XDP_FLAGS_DRV_MODE / XDP_FLAGS_SKB_MODE / XDP_FLAGS_HW_MODE
    std::string name;
    int fd = -1;             // open descriptor of the program (closed by the destructor)

    OnPort() = default;
    OnPort(const OnPort&) = delete;
    OnPort& operator=(const OnPort&) = delete;
    ~OnPort()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

Result<void> query_port(uint32_t ifindex, OnPort& out)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (int rc = bpf_xdp_query(int(ifindex), 0, &q); rc != 0)
        return from_errno(rc, fmt::format("bridge: query XDP on {}", ifname_of(ifindex)));
    switch (q.attach_mode) {
    case XDP_ATTACHED_NONE: return {};
    case XDP_ATTACHED_DRV: out.id = q.drv_prog_id; out.mode_flag = XDP_FLAGS_DRV_MODE; break;
    case XDP_ATTACHED_SKB: out.id = q.skb_prog_id; out.mode_flag = XDP_FLAGS_SKB_MODE; break;
    case XDP_ATTACHED_HW: out.id = q.hw_prog_id; out.mode_flag = XDP_FLAGS_HW_MODE; break;
    default: // several at once: only ever someone else's set-up
        out.id = q.prog_id ? q.prog_id : (q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id);
        out.name = "(several XDP programs)";
        return {};
    }
    out.fd = bpf_prog_get_fd_by_id(out.id);
    if (out.fd < 0)
        return from_errno(errno, fmt::format("bridge: XDP program {} on {}", out.id, ifname_of(ifindex)));
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(out.fd, &info, &len) != 0)
        return from_errno(errno, fmt::format("bridge: XDP program {} info", out.id));
    out.name = info.name;
    return {};
}

// The interface's driver name ("veth", ...), empty when unknown.
std::string driver_of(const std::string& ifname)
{
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return {};
    ethtool_drvinfo di{};
    di.cmd = ETHTOOL_GDRVINFO;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = reinterpret_cast<char*>(&di);
    const int rc = ::ioctl(s, SIOCETHTOOL, &ifr);
    ::close(s);
    return rc == 0 ? std::string(di.driver) : std::string();
}

uint32_t iflink_of(const std::string& ifname)
{
    std::ifstream f("/sys/class/net/" + ifname + "/iflink");
    uint32_t v = 0;
    f >> v;
    return v;
}

Result<void> detach_weir(uint32_t ifindex, bool* found)
{
    OnPort on;
    if (auto r = query_port(ifindex, on); !r)
        return r;
    if (on.id == 0)
        return {};
    if (!is_weir_bridge_prog(on.name))
        return Error{std::make_error_code(std::errc::device_or_resource_busy),
                     fmt::format("bridge: {} has XDP program {} ('{}'), not weir's bridge: left in place",
                                 ifname_of(ifindex), on.id, on.name)};
    LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = on.fd);
    const int rc = bpf_xdp_detach(int(ifindex), on.mode_flag, &o);
    if (rc != 0 && rc != -EEXIST) // EEXIST: replaced meanwhile by someone else's
        return from_errno(rc, fmt::format("bridge: detach XDP program {} from {}", on.id, ifname_of(ifindex)));
    if (found)
        *found = true;
    return {};
}

// The veth peer of ifname when it lives in this namespace, else 0.
uint32_t local_veth_peer(const std::string& ifname, uint32_t ifindex)
{
    if (driver_of(ifname) != "veth")
        return 0;
    const uint32_t peer = iflink_of(ifname);
    if (peer == 0 || peer == ifindex)
        return 0;
    char buf[IF_NAMESIZE] = {};
    if (!if_indextoname(peer, buf))
        return 0;
    // The same ifindex may name an unrelated device here when the real peer
    // is in another namespace: a local peer points back at us.
    if (driver_of(buf) != "veth" || iflink_of(buf) != ifindex)
        return 0;
    return peer;
}

BridgeCounters sum(const std::vector<weir_bridge_port_stats>& v)
{
    BridgeCounters c;
    for (const auto& x : v) {
        c.packets += x.packets;
        c.bytes += x.bytes;
        c.forwarded += x.forwarded;
        c.diverted += x.diverted;
        c.divert_failed += x.divert_failed;
        c.dropped += x.dropped;
        c.redirect_errors += x.redirect_errors;
        c.unparsed += x.unparsed;
        c.verdict_drop += x.verdict_drop;
        c.verdict_shunt += x.verdict_shunt;
        c.watchdog_drop += x.watchdog_drop;
    }
    return c;
}

uint32_t possible_cpus()
{
    const int n = libbpf_num_possible_cpus();
    return n > 0 ? uint32_t(n) : 1;
}

} // namespace

namespace {

template <typename F>
void each_field(const BridgeCounters& c, F&& f)
{
    f("packets", c.packets);
    f("bytes", c.bytes);
    f("forwarded", c.forwarded);
    f("diverted", c.diverted);
    f("divert_failed", c.divert_failed);
    f("dropped", c.dropped);
    f("redirect_errors", c.redirect_errors);
    f("unparsed", c.unparsed);
    f("verdict_drop", c.verdict_drop);
    f("verdict_shunt", c.verdict_shunt);
    f("watchdog_drop", c.watchdog_drop);
}

} // namespace

std::string bridge_counters_text(const BridgeCounters& c)
{
    std::string out;
    each_field(c, [&out](const char* k, uint64_t v) {
        out += fmt::format("{}{} {}", out.empty() ? "" : " ", k, v);
    });
    return out;
}

std::string bridge_counters_json(const BridgeCounters& c)
{
    std::string out = "{";
    each_field(c, [&out](const char* k, uint64_t v) {
        out += fmt::format("{}\"{}\":{}", out.size() > 1 ? "," : "", k, v);
    });
    return out + "}";
}

Result<std::array<std::string, 2>> parse_bridge_ports(const std::string& spec)
{
    const auto colon = spec.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size() ||
        spec.find(':', colon + 1) != std::string::npos)
        return invalid(fmt::format("bridge: '{}' is not IFACE_A:IFACE_B", spec));
    std::array<std::string, 2> out{spec.substr(0, colon), spec.substr(colon + 1)};
    if (out[0] == out[1])
        return invalid(fmt::format("bridge: '{}' names the same interface twice", spec));
    return out;
}

struct Bridge::Impl {
    Config cfg;
    weir_bridge* skel = nullptr;
    std::array<uint32_t, 2> ifindex{};
    std::array<bool, 2> attached{};
    std::vector<uint32_t> pass_peers;  // veth peers given weir_br_pass
    uint32_t ncpus = 1;

    ~Impl()
    {
        if (skel)
            weir_bridge__destroy(skel);
    }
};

Bridge::Bridge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Bridge::~Bridge() = default;

Result<std::unique_ptr<Bridge>> Bridge::load(const Config& cfg)
{
    if (cfg.if_a == cfg.if_b)
        return invalid(fmt::format("bridge: '{}' named twice", cfg.if_a));
    auto vc = xdp_loader::check_verdict_config(cfg.verdict_map_fd, cfg.subnet_verdict_map_fd,
                                               cfg.egress_ifaces.size(), "bridge");
    if (!vc)
        return vc.error();
    const bool verdicts = vc.value();
    if (cfg.watchdog_ns == 0)
        return invalid("bridge: watchdog 0");
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    impl->ncpus = possible_cpus();
    for (int p = 0; p < 2; ++p) {
        auto ix = ifindex_of(p == 0 ? cfg.if_a : cfg.if_b);
        if (!ix)
            return ix.error();
        impl->ifindex[p] = ix.value();
    }
    auto eg = xdp_loader::egress_ifindexes(cfg.egress_ifaces, "bridge: interface");
    if (!eg)
        return eg.error();
    const std::vector<uint32_t> egress = std::move(eg.value());
    if (verdicts)
        if (auto r = xdp_loader::check_verdict_maps(cfg.verdict_map_fd, cfg.subnet_verdict_map_fd, "bridge"); !r)
            return r.error();

    impl->skel = weir_bridge__open();
    if (!impl->skel)
        return from_errno(errno ? errno : ENOMEM, "bridge: open weir_bridge");
    weir_bridge* s = impl->skel;
    s->rodata->weir_br_ifindex[0] = impl->ifindex[0];
    s->rodata->weir_br_ifindex[1] = impl->ifindex[1];
    s->rodata->weir_br_fail_closed = cfg.fail == BridgeFail::Closed ? 1 : 0;
    s->rodata->weir_br_watchdog_ns = cfg.watchdog_ns;
    s->rodata->weir_verdicts_on = verdicts ? 1 : 0;
    s->rodata->weir_br_flows_on = cfg.max_flows > 0 ? 1 : 0;
    int rc = 0;
    if (!egress.empty())
        rc = bpf_map__set_max_entries(s->maps.weir_egress, uint32_t(egress.size()));
    if (rc == 0 && cfg.max_flows > 0)
        rc = bpf_map__set_max_entries(s->maps.weir_br_flows, cfg.max_flows);
    if (rc == 0 && verdicts) {
        rc = bpf_map__reuse_fd(s->maps.weir_verdicts, cfg.verdict_map_fd);
        if (rc == 0)
            rc = bpf_map__reuse_fd(s->maps.weir_subnet_verdicts, cfg.subnet_verdict_map_fd);
    }
    if (rc != 0)
        return from_errno(rc, "bridge: prepare maps");
    rc = weir_bridge__load(s);
    if (rc != 0)
        return from_errno(rc, "bridge: load weir_bridge (needs CAP_BPF and CAP_NET_ADMIN)");
    for (uint32_t p = 0; p < 2; ++p) {
        rc = bpf_map__update_elem(s->maps.weir_br_ports, &p, sizeof(p), &impl->ifindex[p], sizeof(uint32_t), BPF_ANY);
        if (rc != 0)
            return from_errno(rc, fmt::format("bridge: port {} into the DEVMAP", p));
    }
    if (auto r = xdp_loader::fill_egress(s->maps.weir_egress, egress, cfg.egress_ifaces, "bridge"); !r)
        return r.error();
    auto b = std::unique_ptr<Bridge>(new Bridge(std::move(impl)));
    b->heartbeat();
    return b;
}

Result<void> Bridge::attach(std::vector<std::string>* notes)
{
    Impl& d = *impl_;
    const int prog = bpf_program__fd(d.skel->progs.weir_bridge);
    for (int p = 0; p < 2; ++p) {
        if (d.attached[p])
            continue;
        const uint32_t ix = d.ifindex[p];
        const std::string& name = p == 0 ? d.cfg.if_a : d.cfg.if_b;
        OnPort on;
        if (auto r = query_port(ix, on); !r)
            return r;
        uint32_t mode_flag = 0;
        if (on.id != 0) {
            if (!is_weir_bridge_prog(on.name))
                return Error{std::make_error_code(std::errc::device_or_resource_busy),
                             fmt::format("bridge: {} has XDP program {} ('{}'); weir leaves it in place (remove it "
                                         "with 'ip link set dev {} xdp off' if it is not needed)",
                                         name, on.id, on.name, name)};
            // A left-over weir bridge: replace it in place, in its mode,
            // so that forwarding (or dropping) never stops in between.
            LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = on.fd);
            const int rc = bpf_xdp_attach(int(ix), prog, XDP_FLAGS_REPLACE | on.mode_flag, &o);
            if (rc != 0)
                return from_errno(rc, fmt::format("bridge: replace the left-over weir program {} ('{}') on {}",
                                                  on.id, on.name, name));
            mode_flag = on.mode_flag;
            if (notes)
                notes->push_back(fmt::format("{}: replaced the left-over {} program (id {})", name, on.name, on.id));
        } else {
            int rc = -EOPNOTSUPP;
            if (d.cfg.mode != LiveOptions::XdpMode::Generic) {
                rc = bpf_xdp_attach(int(ix), prog, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE, nullptr);
                if (rc == 0)
                    mode_flag = XDP_FLAGS_DRV_MODE;
                else if (rc == -EBUSY || rc == -EEXIST)
                    return from_errno(EBUSY, fmt::format("bridge: {}: another XDP program was attached meanwhile", name));
                else if (d.cfg.mode == LiveOptions::XdpMode::Native)
                    return from_errno(rc, fmt::format("bridge: {}: attach in native (driver) mode", name));
            }
            if (mode_flag == 0) {
                rc = bpf_xdp_attach(int(ix), prog, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE, nullptr);
                if (rc != 0)
                    return from_errno(rc, fmt::format("bridge: {}: attach in generic (SKB) mode", name));
                mode_flag = XDP_FLAGS_SKB_MODE;
            }
        }
        d.attached[p] = true;
        if (notes)
            notes->push_back(fmt::format("{}: {} XDP", name, mode_flag == XDP_FLAGS_DRV_MODE ? "native" : "generic"));

        // Native redirects into a veth are delivered by the peer's NAPI,
        // which only runs with an XDP program (or GRO) on the peer.
        if (mode_flag != XDP_FLAGS_DRV_MODE || driver_of(name) != "veth")
            continue;
        const uint32_t peer = local_veth_peer(name, ix);
        if (peer == 0) {
            if (notes)
                notes->push_back(fmt::format(
                    "{}: veth whose peer is in another namespace: frames bridged to it arrive only when the peer has "
                    "an XDP program or GRO on ('ip netns exec NS ethtool -K PEER gro on'); a local stack sending "
                    "through it needs TX checksum offload off there ('ethtool -K PEER tx off')",
                    name));
            continue;
        }
        OnPort pon;
        if (auto r = query_port(peer, pon); !r)
            return r;
        if (pon.id != 0)
            continue; // the peer has a program: redirected frames are received
        const int rc = bpf_xdp_attach(int(peer), bpf_program__fd(d.skel->progs.weir_br_pass),
                                      XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE, nullptr);
        if (rc == 0) {
            d.pass_peers.push_back(peer);
            if (notes)
                notes->push_back(fmt::format("{}: XDP_PASS program on its veth peer {} so that it receives bridged frames",
                                             name, ifname_of(peer)));
        } else if (notes) {
            notes->push_back(fmt::format("{}: cannot attach XDP to its veth peer {} ({}): bridged frames may be lost",
                                         name, ifname_of(peer), std::strerror(-rc)));
        }
    }
    return {};
}

void Bridge::heartbeat() noexcept
{
    const uint32_t zero = 0;
    const weir_bridge_ctl c{monotonic_ns()};
    bpf_map__update_elem(impl_->skel->maps.weir_br_ctl, &zero, sizeof(zero), &c, sizeof(c), BPF_ANY);
}

Result<void> Bridge::stop()
{
    Impl& d = *impl_;
    if (d.cfg.fail == BridgeFail::Open)
        return {}; // the attachment is the interface's: it keeps forwarding
    const int drop = bpf_program__fd(d.skel->progs.weir_br_drop);
    const int fwd = bpf_program__fd(d.skel->progs.weir_bridge);
    Result<void> out;
    for (int p = 0; p < 2; ++p) {
        if (!d.attached[p])
            continue;
        OnPort on;
        if (auto r = query_port(d.ifindex[p], on); !r) {
            out = r;
            continue;
        }
        LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fwd);
        const int rc = bpf_xdp_attach(int(d.ifindex[p]), drop, XDP_FLAGS_REPLACE | on.mode_flag, &o);
        if (rc != 0)
            out = from_errno(rc, fmt::format("bridge: replace the bridge by the drop program on {}",
                                             ifname_of(d.ifindex[p])));
        d.attached[p] = false;
    }
    return out;
}

Result<void> Bridge::detach()
{
    Impl& d = *impl_;
    Result<void> out;
    for (int p = 0; p < 2; ++p) {
        if (auto r = detach_weir(d.ifindex[p], nullptr); !r)
            out = r;
        d.attached[p] = false;
    }
    for (uint32_t peer : d.pass_peers)
        if (auto r = detach_weir(peer, nullptr); !r)
            out = r;
    d.pass_peers.clear();
    return out;
}

Result<size_t> Bridge::collect_flows(uint64_t idle_ns, uint64_t active_ns, bool all, std::vector<FlowRecord>& out)
{
    Impl& d = *impl_;
    if (d.cfg.max_flows == 0)
        return 0;
    const int fd = bpf_map__fd(d.skel->maps.weir_br_flows);
    timespec rt{}, mono{};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    const uint64_t now = uint64_t(mono.tv_sec) * 1'000'000'000ULL + uint64_t(mono.tv_nsec);
    const int64_t to_real = int64_t(uint64_t(rt.tv_sec) * 1'000'000'000ULL + uint64_t(rt.tv_nsec)) - int64_t(now);
    auto real = [to_real](uint64_t t) { return t ? uint64_t(int64_t(t) + to_real) : 0; };

    // Keys first: deleting while walking with get_next_key restarts the walk.
    static_assert(sizeof(FlowKey) == sizeof(weir_flow_key), "FlowKey is the kernel key");
    std::vector<FlowKey> keys;
    FlowKey k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        keys.push_back(next);
        k = next;
        prev = &k;
    }
    size_t n = 0;
    for (const FlowKey& key : keys) {
        weir_bridge_flow f{};
        if (bpf_map_lookup_elem(fd, &key, &f) != 0)
            continue; // evicted meanwhile
        const uint64_t first = f.first_ns[0] && f.first_ns[1] ? std::min(f.first_ns[0], f.first_ns[1])
                                                              : std::max(f.first_ns[0], f.first_ns[1]);
        const uint64_t last = std::max(f.last_ns[0], f.last_ns[1]);
        EndReason why;
        if (all)
            why = EndReason::ForcedEnd;
        else if (now >= last + idle_ns)
            why = EndReason::IdleTimeout;
        else if (now >= first + active_ns)
            why = EndReason::ActiveTimeout;
        else
            continue;
        bpf_map_delete_elem(fd, &key);
        FlowRecord r{};
        r.key = key;
        r.client_is_a = f.client_is_a;
        r.end_reason = why;
        // dir[0] is client -> server; the map's index 0 is side A's packets.
        for (int side = 0; side < 2; ++side) {
            DirCounters& dc = r.dir[(side == 0) == (f.client_is_a != 0) ? 0 : 1];
            dc.packets = f.packets[side];
            dc.bytes = f.bytes[side];
            dc.first_ns = real(f.first_ns[side]);
            dc.last_ns = real(f.last_ns[side]);
            dc.tcp_flags = f.tcp_flags[side];
        }
        out.push_back(r);
        ++n;
    }
    return n;
}

BridgeCounters Bridge::counters(uint32_t port) const noexcept
{
    const Impl& d = *impl_;
    if (port > 1)
        return {};
    std::vector<weir_bridge_port_stats> v(d.ncpus);
    if (bpf_map__lookup_elem(d.skel->maps.weir_br_stats, &port, sizeof(port), v.data(),
                             v.size() * sizeof(weir_bridge_port_stats), 0) != 0)
        return {};
    return sum(v);
}

int Bridge::prog_fd() const noexcept
{
    return bpf_program__fd(impl_->skel->progs.weir_bridge);
}

uint32_t Bridge::ifindex(uint32_t port) const noexcept
{
    return port < 2 ? impl_->ifindex[port] : 0;
}

const Bridge::Config& Bridge::config() const noexcept
{
    return impl_->cfg;
}

Result<void> Bridge::detach_ports(const std::string& if_a, const std::string& if_b)
{
    bool found = false;
    for (const std::string* name : {&if_a, &if_b}) {
        auto ix = ifindex_of(*name);
        if (!ix)
            return ix.error();
        if (auto r = detach_weir(ix.value(), &found); !r)
            return r;
        if (const uint32_t peer = local_veth_peer(*name, ix.value()); peer != 0) {
            OnPort on;
            if (query_port(peer, on) && on.name == WEIR_BRIDGE_PASS_PROG_NAME)
                (void)detach_weir(peer, nullptr);
        }
    }
    if (!found)
        return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                     fmt::format("bridge: no weir bridge program on {} or {}", if_a, if_b)};
    return {};
}

Result<Bridge::Attached> Bridge::attached(const std::string& ifname)
{
    auto ix = ifindex_of(ifname);
    if (!ix)
        return ix.error();
    OnPort on;
    if (auto r = query_port(ix.value(), on); !r)
        return r.error();
    if (on.name != WEIR_BRIDGE_PROG_NAME)
        return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                     on.id == 0 ? fmt::format("bridge: no XDP program on {}", ifname)
                     : on.name == WEIR_BRIDGE_DROP_PROG_NAME
                         ? fmt::format("bridge: {} has the fail-closed drop program (weir stopped): nothing crosses", ifname)
                         : fmt::format("bridge: {} has XDP program {} ('{}'), not weir's bridge", ifname, on.id, on.name)};
    std::array<uint32_t, 16> ids{};
    bpf_prog_info info{};
    info.nr_map_ids = uint32_t(ids.size());
    info.map_ids = reinterpret_cast<uint64_t>(ids.data());
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(on.fd, &info, &len) != 0)
        return from_errno(errno, "bridge: program maps");
    Attached out;
    bool have_stats = false, have_ports = false;
    const uint32_t ncpus = possible_cpus();
    for (uint32_t i = 0; i < info.nr_map_ids && i < ids.size(); ++i) {
        const int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            continue;
        bpf_map_info mi{};
        uint32_t mlen = sizeof(mi);
        if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0) {
            const std::string mname = mi.name;
            if (mname == WEIR_BRIDGE_STATS_MAP_NAME && mi.value_size == sizeof(weir_bridge_port_stats)) {
                std::vector<weir_bridge_port_stats> v(ncpus);
                have_stats = true;
                for (uint32_t p = 0; p < 2; ++p)
                    if (bpf_map_lookup_elem(fd, &p, v.data()) == 0)
                        out.counters[p] = sum(v);
                    else
                        have_stats = false;
            } else if (mname == "weir_br_ports" && mi.type == BPF_MAP_TYPE_DEVMAP) {
                have_ports = true;
                for (uint32_t p = 0; p < 2; ++p)
                    if (bpf_map_lookup_elem(fd, &p, &out.ifindex[p]) != 0)
                        have_ports = false;
            }
        }
        ::close(fd);
    }
    if (!have_stats || !have_ports)
        return Error{std::make_error_code(std::errc::no_such_file_or_directory),
                     fmt::format("bridge: program {} on {} has no readable counters (another weir version?)", on.id,
                                 ifname)};
    return out;
}

} // namespace weir::dataplane
