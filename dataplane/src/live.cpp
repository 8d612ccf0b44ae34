// The -i syntax, the back-end dispatcher and the round-robin merger of live
// sources. Back-ends that were not built answer ENOTSUP with what to install.
#include <weir/dataplane/live.hpp>
#include <weir/dataplane/packet_source.hpp>

#if WEIR_HAVE_AFXDP
#include <weir/dataplane/afxdp.hpp>
#endif
#if WEIR_HAVE_AFPACKET
#include <weir/dataplane/afpacket.hpp>
#endif
#if WEIR_HAVE_PCAP_LIVE
#include <weir/dataplane/pcap_live.hpp>
#endif
#if WEIR_HAVE_DPDK
#include <weir/dataplane/dpdk.hpp>
#endif

#include "bpf_filter.hpp"

#include <fmt/format.h>

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>

namespace weir::dataplane {

const char* backend_name(Backend b) noexcept
{
    switch (b) {
    case Backend::Auto: return "auto";
    case Backend::AfXdp: return "xdp";
    case Backend::AfPacket: return "afpacket";
    case Backend::Pcap: return "pcap";
    case Backend::Dpdk: return "dpdk";
    case Backend::File: return "file";
    }
    return "?";
}

uint64_t wall_clock_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

namespace {

bool parse_u32(std::string_view s, uint32_t& v)
{
    if (s.empty())
        return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size();
}

bool looks_like_file(const std::string& s)
{
    struct stat st{};
    if (::stat(s.c_str(), &st) == 0)
        return !S_ISCHR(st.st_mode); // a path that exists (files, fifos; directories fail later with EISDIR)
    for (const char* ext : {".pcap", ".pcapng", ".cap", ".pcap.gz"})
        if (s.size() > std::strlen(ext) && s.compare(s.size() - std::strlen(ext), std::string::npos, ext) == 0)
            return true;
    return s.find('/') != std::string::npos;
}

/// "0-3", "0,2" is not allowed inside one element (commas split the list):
/// "@0-3" or "@2".
Result<std::vector<uint32_t>> parse_queues(std::string_view q, const std::string& elem)
{
    std::vector<uint32_t> out;
    const auto dash = q.find('-');
    uint32_t lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
        if (!parse_u32(q, lo))
            return invalid(fmt::format("bad queue in '{}': expected @N or @N-M", elem));
        hi = lo;
    } else if (!parse_u32(q.substr(0, dash), lo) || !parse_u32(q.substr(dash + 1), hi) || hi < lo) {
        return invalid(fmt::format("bad queue range in '{}': expected @N-M with N <= M", elem));
    }
    if (hi - lo >= 1024)
        return invalid(fmt::format("queue range too large in '{}'", elem));
    for (uint32_t i = lo; i <= hi; ++i)
        out.push_back(i);
    return out;
}

} // namespace

Result<std::vector<InterfaceSpec>> parse_interface_list(const std::string& text)
{
    std::vector<InterfaceSpec> out;
    if (text.empty())
        return invalid("empty interface list");
    // dpdk:ARGS takes the rest of the element list verbatim up to the next
    // element that starts with a known prefix, since device args hold commas.
    std::vector<std::string> elems;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string e = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (!elems.empty() && elems.back().rfind("dpdk:", 0) == 0 && e.find('=') != std::string::npos &&
            e.find(':') == std::string::npos)
            elems.back() += "," + e; // a device argument, not a new element
        else
            elems.push_back(e);
        if (comma == std::string::npos)
            break;
        pos = comma + 1;
    }
    for (const std::string& e : elems) {
        if (e.empty())
            return invalid(fmt::format("empty element in interface list '{}'", text));
        InterfaceSpec s;
        std::string rest = e;
        const auto colon = e.find(':');
        if (colon != std::string::npos) {
            const std::string pfx = e.substr(0, colon);
            if (pfx == "xdp" || pfx == "afxdp")
                s.backend = Backend::AfXdp;
            else if (pfx == "afpacket" || pfx == "af_packet")
                s.backend = Backend::AfPacket;
            else if (pfx == "pcap")
                s.backend = Backend::Pcap;
            else if (pfx == "dpdk")
                s.backend = Backend::Dpdk;
            else if (pfx == "file")
                s.backend = Backend::File;
            else if (!looks_like_file(e))
                return invalid(fmt::format("unknown capture type '{}:' in '{}' (xdp, afpacket, pcap, dpdk, file)", pfx, e));
            if (s.backend != Backend::Auto)
                rest = e.substr(colon + 1);
        }
        if (s.backend == Backend::Auto && looks_like_file(rest))
            s.backend = Backend::File;
        if (s.backend == Backend::File || s.backend == Backend::Dpdk) {
            s.name = rest;
        } else {
            const auto at = rest.find('@');
            s.name = rest.substr(0, at);
            if (at != std::string::npos) {
                auto q = parse_queues(std::string_view(rest).substr(at + 1), e);
                if (!q)
                    return q.error();
                s.queues = std::move(q.value());
            }
            if (s.name.empty() || s.name.size() >= IFNAMSIZ)
                return invalid(fmt::format("bad interface name in '{}'", e));
        }
        if (s.name.empty())
            return invalid(fmt::format("nothing after the prefix in '{}'", e));
        out.push_back(std::move(s));
    }
    return out;
}

namespace {

[[maybe_unused]] Error not_built(const InterfaceSpec& s, const char* what)
{
    return Error{std::make_error_code(std::errc::not_supported),
                 fmt::format("{}:{}: this weir was built without {}", backend_name(s.backend), s.name, what)};
}

/// What AF_XDP and DPDK do not do themselves: the -B filter (run in user
/// space with libpcap's interpreter, on the frame as it was on the wire) and,
/// for AF_XDP, promiscuous mode (held by an AF_PACKET socket that receives
/// nothing, so it ends with weir). Delivered counts are after the filter.
class LiveWrap final : public PacketSource {
public:
    LiveWrap(std::unique_ptr<PacketSource> inner, std::optional<BpfProgram> filter, int promisc_fd)
        : inner_(std::move(inner)), filter_(std::move(filter)), promisc_fd_(promisc_fd)
    {
    }
    ~LiveWrap() override
    {
        inner_.reset();
        if (promisc_fd_ >= 0)
            ::close(promisc_fd_);
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        const uint32_t got = inner_->rx_burst(out, n);
        uint32_t kept = got;
        if (filter_) {
            kept = 0;
            for (uint32_t i = 0; i < got; ++i)
                if (matches(*filter_, out[i]))
                    out[kept++] = out[i];
            filtered_.fetch_add(got - kept, std::memory_order_relaxed);
        }
        uint64_t b = 0;
        for (uint32_t i = 0; i < kept; ++i)
            b += out[i].wire_len;
        packets_.fetch_add(kept, std::memory_order_relaxed);
        bytes_.fetch_add(b, std::memory_order_relaxed);
        return kept;
    }
    [[nodiscard]] bool finished() const noexcept override { return inner_->finished(); }
    [[nodiscard]] std::optional<Error> error() const override { return inner_->error(); }
    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats s = inner_->stats();
        s.packets = packets_.load(std::memory_order_relaxed);
        s.bytes = bytes_.load(std::memory_order_relaxed);
        return s;
    }
    [[nodiscard]] bool live() const noexcept override { return inner_->live(); }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return inner_->now_ns(); }
    [[nodiscard]] std::vector<QueueStats> queue_stats() const override { return inner_->queue_stats(); }
    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return inner_->linktypes(); }
    [[nodiscard]] std::string describe() const override
    {
        std::string d = inner_->describe();
        if (filter_)
            d += fmt::format(", filter '{}' in user space ({} frames filtered out)", filter_->expression,
                             filtered_.load(std::memory_order_relaxed));
        if (promisc_fd_ >= 0)
            d += ", promiscuous";
        return d;
    }

private:
    std::unique_ptr<PacketSource> inner_;
    std::optional<BpfProgram> filter_;
    int promisc_fd_ = -1;
    std::atomic<uint64_t> packets_{0}, bytes_{0}, filtered_{0};
};

/// An AF_PACKET socket bound to no protocol that only holds the interface
/// in promiscuous mode for as long as it is open.
Result<int> hold_promisc(const std::string& ifname)
{
    const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return from_errno(errno, fmt::format("{}: socket for promiscuous mode", ifname));
    packet_mreq mr{};
    mr.mr_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0) {
        const int e = errno;
        ::close(fd);
        return from_errno(e, fmt::format("{}: promiscuous mode", ifname));
    }
    return fd;
}

/// Adds the filter (and for AF_XDP promiscuous mode) around a back-end
/// that has neither.
[[maybe_unused]] Result<std::unique_ptr<PacketSource>> wrap_live(Result<std::unique_ptr<PacketSource>> r,
                                                                 const std::string& ifname, bool promisc,
                                                                 const LiveOptions& opt)
{
    if (!r)
        return r;
    std::optional<BpfProgram> filter;
    if (!opt.bpf_filter.empty()) {
        auto f = compile_filter(opt.bpf_filter, 1, opt.snaplen);
        if (!f)
            return f.error();
        filter = std::move(f.value());
    }
    int fd = -1;
    if (promisc) {
        auto h = hold_promisc(ifname);
        if (!h)
            return h.error();
        fd = h.value();
    }
    if (!filter && fd < 0)
        return r;
    return std::unique_ptr<PacketSource>(std::make_unique<LiveWrap>(std::move(r.value()), std::move(filter), fd));
}

Result<void> check_interface(const InterfaceSpec& s)
{
    if (if_nametoindex(s.name.c_str()) == 0)
        return Error{std::make_error_code(std::errc::no_such_device),
                     fmt::format("interface '{}' does not exist", s.name)};
    return {};
}

} // namespace

Result<std::unique_ptr<PacketSource>> open_source(const InterfaceSpec& spec, const LiveOptions& opt)
{
    [[maybe_unused]] const LiveOptions& o = opt;
    switch (spec.backend) {
    case Backend::File:
        return open_capture_files(spec.name);
    case Backend::Dpdk:
#if WEIR_HAVE_DPDK
        return wrap_live(open_dpdk(spec.name, spec.queues, o), spec.name, false, o);
#else
        return not_built(spec, "DPDK (install dpdk-dev and rebuild)");
#endif
    default:
        break;
    }
    if (auto c = check_interface(spec); !c)
        return c.error();
    switch (spec.backend) {
    case Backend::AfXdp:
#if WEIR_HAVE_AFXDP
        return wrap_live(open_afxdp(spec.name, spec.queues, o), spec.name, o.promisc, o);
#else
        return not_built(spec, "AF_XDP (install libxdp-dev, libbpf-dev, bpftool, clang and rebuild)");
#endif
    case Backend::AfPacket:
#if WEIR_HAVE_AFPACKET
        return open_afpacket(spec.name, o);
#else
        return not_built(spec, "AF_PACKET");
#endif
    case Backend::Pcap:
#if WEIR_HAVE_PCAP_LIVE
        return open_pcap_live(spec.name, o);
#else
        return not_built(spec, "libpcap live capture");
#endif
    case Backend::Auto: {
        std::string why;
#if WEIR_HAVE_AFXDP
        auto x = wrap_live(open_afxdp(spec.name, spec.queues, o), spec.name, o.promisc, o);
        if (x)
            return x;
        why = x.error().message();
#endif
#if WEIR_HAVE_AFPACKET
        if (!spec.queues.empty())
            return invalid(fmt::format("{}: AF_XDP unavailable ({}); queues (@) need xdp: or dpdk:", spec.name, why));
        if (!why.empty())
            std::fprintf(stderr, "weir: %s: AF_XDP unavailable (%s), using AF_PACKET\n", spec.name.c_str(), why.c_str());
        return open_afpacket(spec.name, o);
#elif WEIR_HAVE_PCAP_LIVE
        return open_pcap_live(spec.name, o);
#else
        return not_built(spec, "any live capture back-end");
#endif
    }
    default:
        break;
    }
    return invalid("unknown back-end");
}

namespace {

/// Live sources polled in turn: each one's frames stay valid until its next
/// rx_burst(), which comes only in the next call here.
class LiveMerge final : public PacketSource {
public:
    explicit LiveMerge(std::vector<std::unique_ptr<PacketSource>> s) : srcs_(std::move(s)) {}

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        uint32_t got = 0;
        const size_t k = srcs_.size();
        for (size_t j = 0; j < k && got < n; ++j) {
            PacketSource& s = *srcs_[(next_ + j) % k];
            if (!s.finished())
                got += s.rx_burst(out + got, n - got);
        }
        next_ = (next_ + 1) % k;
        return got;
    }
    [[nodiscard]] bool finished() const noexcept override
    {
        return std::all_of(srcs_.begin(), srcs_.end(), [](const auto& s) { return s->finished(); });
    }
    [[nodiscard]] std::optional<Error> error() const override
    {
        for (const auto& s : srcs_)
            if (auto e = s->error())
                return e;
        return std::nullopt;
    }
    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats t;
        for (const auto& s : srcs_) {
            const SourceStats x = s->stats();
            t.packets += x.packets;
            t.bytes += x.bytes;
            t.drops += x.drops;
        }
        return t;
    }
    [[nodiscard]] bool live() const noexcept override { return true; }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return wall_clock_ns(); }
    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        std::vector<QueueStats> q;
        for (const auto& s : srcs_) {
            auto x = s->queue_stats();
            q.insert(q.end(), x.begin(), x.end());
        }
        return q;
    }
    [[nodiscard]] std::vector<uint32_t> linktypes() const override
    {
        std::vector<uint32_t> l;
        for (const auto& s : srcs_)
            for (uint32_t t : s->linktypes())
                if (std::find(l.begin(), l.end(), t) == l.end())
                    l.push_back(t);
        return l;
    }
    [[nodiscard]] std::string describe() const override
    {
        std::string d;
        for (const auto& s : srcs_)
            d += (d.empty() ? "" : " + ") + s->describe();
        return d;
    }

private:
    std::vector<std::unique_ptr<PacketSource>> srcs_;
    size_t next_ = 0;
};

} // namespace

std::unique_ptr<PacketSource> merge_live(std::vector<std::unique_ptr<PacketSource>> sources)
{
    return std::make_unique<LiveMerge>(std::move(sources));
}

Result<std::unique_ptr<PacketSource>> open_input(const std::string& text, const LiveOptions& opt)
{
    auto specs = parse_interface_list(text);
    if (!specs)
        return specs.error();
    const auto& v = specs.value();
    const size_t files = size_t(std::count_if(v.begin(), v.end(), [](const InterfaceSpec& s) { return s.backend == Backend::File; }));
    if (files == v.size()) {
        std::string list;
        for (const auto& s : v)
            list += (list.empty() ? "" : ",") + s.name;
        auto f = open_capture_files(list);
        if (!f || opt.bpf_filter.empty())
            return f;
        // Files are filtered in user space, as tcpdump -r does.
        const auto lts = f.value()->linktypes();
        if (lts.size() != 1)
            return invalid(fmt::format("-B: '{}' holds several link types; filter each file on its own", text));
        auto prog = compile_filter(opt.bpf_filter, lts.front(), opt.snaplen);
        if (!prog)
            return prog.error();
        return std::unique_ptr<PacketSource>(std::make_unique<LiveWrap>(std::move(f.value()), std::move(prog.value()), -1));
    }
    if (files != 0)
        return invalid(fmt::format("'{}' mixes capture files and interfaces", text));
    std::vector<std::unique_ptr<PacketSource>> srcs;
    for (const auto& s : v) {
        auto r = open_source(s, opt);
        if (!r)
            return r.error();
        srcs.push_back(std::move(r.value()));
    }
    if (srcs.size() == 1)
        return std::move(srcs.front());
    return merge_live(std::move(srcs));
}

namespace {

/// One fanout socket of a per-queue AF_PACKET capture, renamed "IF#i" in
/// the per-queue statistics (each source alone would call itself IF#0).
class RenamedQueue final : public PacketSource {
public:
    RenamedQueue(std::unique_ptr<PacketSource> inner, std::string name) : inner_(std::move(inner)), name_(std::move(name)) {}
    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override { return inner_->rx_burst(out, n); }
    [[nodiscard]] bool finished() const noexcept override { return inner_->finished(); }
    [[nodiscard]] std::optional<Error> error() const override { return inner_->error(); }
    [[nodiscard]] SourceStats stats() const noexcept override { return inner_->stats(); }
    [[nodiscard]] bool live() const noexcept override { return inner_->live(); }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return inner_->now_ns(); }
    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        auto q = inner_->queue_stats();
        for (auto& x : q)
            x.name = name_;
        return q;
    }
    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return inner_->linktypes(); }
    [[nodiscard]] std::string describe() const override { return inner_->describe(); }

private:
    std::unique_ptr<PacketSource> inner_;
    std::string name_;
};

[[maybe_unused]] Result<void> afpacket_queues(const InterfaceSpec& s, const LiveOptions& opt,
                                              std::vector<std::unique_ptr<PacketSource>>& out)
{
#if WEIR_HAVE_AFPACKET
    if (!s.queues.empty())
        return invalid(fmt::format("afpacket:{}: AF_PACKET cannot pick RX queues (@); per-queue AF_PACKET uses one "
                                   "fanout socket per RX queue, or --afpacket-sockets N",
                                   s.name));
    uint32_t n = opt.afp_sockets;
    if (n <= 1) {
        // As many sockets as the interface has RX queues.
        n = 0;
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator("/sys/class/net/" + s.name + "/queues", ec))
            n += e.path().filename().string().rfind("rx-", 0) == 0;
        n = std::max(n, 1u);
    }
    // One group for the interface: each single-socket source joins it.
    static std::atomic<uint32_t> seq{0};
    LiveOptions o = opt;
    o.afp_sockets = 1;
    if (o.afp_fanout_group == 0)
        o.afp_fanout_group = (uint32_t(::getpid()) * 7u + 0x5a5au + 977u * seq.fetch_add(1)) & 0xffffu;
    if (o.afp_fanout_group == 0)
        o.afp_fanout_group = 1;
    for (uint32_t i = 0; i < n; ++i) {
        auto r = open_afpacket(s.name, o);
        if (!r)
            return r.error();
        out.push_back(std::make_unique<RenamedQueue>(std::move(r.value()), fmt::format("{}#{}", s.name, i)));
    }
    return {};
#else
    (void)opt;
    (void)out;
    return not_built(s, "AF_PACKET");
#endif
}

[[maybe_unused]] Result<void> afxdp_queues(const InterfaceSpec& s, const LiveOptions& opt,
                                           std::vector<std::unique_ptr<PacketSource>>& out)
{
#if WEIR_HAVE_AFXDP
    auto qs = open_afxdp_queues(s.name, s.queues, opt);
    if (!qs)
        return qs.error();
    bool first = true;
    for (auto& q : qs.value()) {
        // Promiscuous mode is held once per interface, the filter runs per queue.
        auto w = wrap_live(std::move(q), s.name, opt.promisc && first, opt);
        if (!w)
            return w.error();
        out.push_back(std::move(w.value()));
        first = false;
    }
    return {};
#else
    (void)opt;
    (void)out;
    return not_built(s, "AF_XDP (install libxdp-dev, libbpf-dev, bpftool, clang and rebuild)");
#endif
}

[[maybe_unused]] Result<void> dpdk_queues(const InterfaceSpec& s, const LiveOptions& opt,
                                          std::vector<std::unique_ptr<PacketSource>>& out)
{
#if WEIR_HAVE_DPDK
    auto qs = open_dpdk_queues(s.name, s.queues, opt);
    if (!qs)
        return qs.error();
    for (auto& q : qs.value()) {
        auto w = wrap_live(std::move(q), s.name, false, opt); // the -B filter, per queue
        if (!w)
            return w.error();
        out.push_back(std::move(w.value()));
    }
    return {};
#else
    (void)opt;
    (void)out;
    return not_built(s, "DPDK (install dpdk-dev and rebuild)");
#endif
}

} // namespace

Result<QueueInput> open_input_queues(const std::string& text, const LiveOptions& opt)
{
    auto specs = parse_interface_list(text);
    if (!specs)
        return specs.error();
    std::vector<std::unique_ptr<PacketSource>> srcs;
    for (const auto& s : specs.value()) {
        switch (s.backend) {
        case Backend::File:
            return invalid(fmt::format("--per-queue needs live interfaces; '{}' is a capture file (read files with -w N)",
                                       s.name));
        case Backend::Pcap:
            return invalid(fmt::format("--per-queue: pcap:{} cannot be split by RX queue; use xdp:{} or afpacket:{}",
                                       s.name, s.name, s.name));
        default:
            break;
        }
        std::vector<std::unique_ptr<PacketSource>> mine;
        Result<void> r{};
        if (s.backend == Backend::Dpdk) {
            r = dpdk_queues(s, opt, mine); // --dpdk-queues N: N threads
        } else if (auto c = check_interface(s); !c) {
            return c.error();
        } else if (s.backend == Backend::AfXdp) {
            r = afxdp_queues(s, opt, mine);
        } else if (s.backend == Backend::AfPacket) {
            r = afpacket_queues(s, opt, mine);
        } else {
            r = afxdp_queues(s, opt, mine);
            if (!r && s.queues.empty()) {
                std::fprintf(stderr, "weir: %s: AF_XDP unavailable (%s), using AF_PACKET\n", s.name.c_str(),
                             r.error().message().c_str());
                mine.clear();
                r = afpacket_queues(s, opt, mine);
            }
        }
        if (!r)
            return r.error();
        for (auto& m : mine)
            srcs.push_back(std::move(m));
    }
    QueueInput in;
    for (const auto& s : srcs)
        in.queues.push_back(s.get());
    in.all = merge_live(std::move(srcs));
    return in;
}

} // namespace weir::dataplane
