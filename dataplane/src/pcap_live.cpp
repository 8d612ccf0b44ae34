// libpcap live capture as a PacketSource.
//
// The handle is opened non-blocking in immediate mode; rx_burst() asks
// pcap_dispatch() for up to n frames and, when none is ready, polls the
// handle's selectable descriptor for at most the poll timeout and asks once
// more. libpcap's frame pointer is valid only until its next call, so each
// frame is copied into a per-source arena (reused from burst to burst) and
// the RawPackets point there until the next rx_burst().
//
// Filters: libpcap compiles expressions for a live Linux handle so that they
// match VLAN-tagged frames as if the tag were not there ("udp" lets tagged
// UDP through, unlike tcpdump -r on the same frames), because the kernel has
// moved the tag out before socket filters run. We compile for the bytes on
// the wire instead (bpf_filter.hpp) and install kernel_program(): tagged
// frames reach user space unfiltered, with the tag back in place, and are
// checked here. Frames are the same as AF_PACKET and a file would give.
//
// stats() may come from another thread: every libpcap call on the handle
// (dispatch, stats) runs under one mutex; poll() runs outside it. pcap_stats
// counters are 32 bits wide: their deltas are added to 64-bit totals.
//
// Link down: depending on its version libpcap reports it as an error of
// pcap_dispatch ("The interface went down") or swallows the socket's
// ENETDOWN, so an idle source also looks at the interface flags every
// 100 ms. The handle stays usable: we say so once and keep polling until
// frames come again. An interface that was deleted ends the source.
#include <weir/dataplane/pcap_live.hpp>

#include "bpf_filter.hpp"

#include <fmt/format.h>

#include <pcap/pcap.h>

#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <vector>

namespace weir::dataplane {

namespace {

constexpr uint32_t kMaxSnaplen = 262144;
constexpr uint64_t kLinkCheckNs = 100'000'000; ///< idle link state checks, at most this often

struct PcapCloser {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

/// True when the interface exists and is administratively up with carrier.
bool link_running(const std::string& ifname) noexcept
{
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname.c_str(), std::min(ifname.size(), size_t(IFNAMSIZ - 1)));
    const bool up = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
    ::close(fd);
    return up;
}

class PcapLiveSource final : public PacketSource {
public:
    PcapLiveSource(std::string ifname, PcapHandle p, const LiveOptions& opt, bool nano,
                   std::optional<BpfProgram> recheck)
        : ifname_(std::move(ifname)), p_(std::move(p)), fd_(pcap_get_selectable_fd(p_.get())),
          linktype_(linktype_from_dlt(pcap_datalink(p_.get()))),
          poll_timeout_ms_(static_cast<int>(std::min<uint32_t>(opt.poll_timeout_ms, 60000))), nano_(nano),
          filter_(opt.bpf_filter), recheck_(std::move(recheck))
    {
        const uint32_t burst = std::max<uint32_t>(opt.burst, 1);
        arena_.reserve(size_t(burst) * std::min<uint32_t>(opt.snaplen, 2048));
        pending_.reserve(burst);
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        arena_.clear();
        pending_.clear();
        if (n == 0 || finished_.load(std::memory_order_relaxed))
            return 0;
        if (dispatch(n) == 0 && !finished_.load(std::memory_order_relaxed)) {
            pollfd pfd{fd_, POLLIN, 0};
            const int rc = ::poll(&pfd, 1, poll_timeout_ms_);
            if ((rc > 0 && (pfd.revents & (POLLERR | POLLHUP)) != 0) || (rc == 0 && link_check_due()))
                check_link("");
            dispatch(n);
        }
        uint64_t bytes = 0;
        for (size_t i = 0; i < pending_.size(); ++i) {
            const Pending& q = pending_[i];
            out[i] = RawPacket{arena_.data() + q.offset, q.caplen, q.wire_len, q.ts_ns, linktype_};
            bytes += q.wire_len;
        }
        const auto got = static_cast<uint32_t>(pending_.size());
        if (got != 0) {
            packets_.fetch_add(got, std::memory_order_relaxed);
            bytes_.fetch_add(bytes, std::memory_order_relaxed);
            if (link_down_) {
                link_down_ = false;
                std::fprintf(stderr, "weir: %s: link up, capturing again\n", ifname_.c_str());
            }
        }
        return got;
    }

    [[nodiscard]] bool finished() const noexcept override { return finished_.load(std::memory_order_acquire); }

    [[nodiscard]] std::optional<Error> error() const override
    {
        if (!finished_.load(std::memory_order_acquire))
            return std::nullopt;
        return err_;
    }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats s;
        s.packets = packets_.load(std::memory_order_relaxed);
        s.bytes = bytes_.load(std::memory_order_relaxed);
        s.drops = read_drops();
        return s;
    }

    [[nodiscard]] bool live() const noexcept override { return true; }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return wall_clock_ns(); }

    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        QueueStats q;
        q.name = ifname_;
        q.packets = packets_.load(std::memory_order_relaxed);
        q.bytes = bytes_.load(std::memory_order_relaxed);
        q.drops = read_drops();
        return {q};
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {linktype_}; }

    [[nodiscard]] std::string describe() const override
    {
        std::string d = fmt::format("pcap:{} ({}, {} stamps", ifname_, pcap_lib_version(),
                                    nano_ ? "ns" : "us");
        if (!filter_.empty())
            d += fmt::format(", filter '{}'", filter_);
        return d + ")";
    }

private:
    struct Pending {
        size_t offset;
        uint32_t caplen;
        uint32_t wire_len;
        uint64_t ts_ns;
    };

    static void on_frame(u_char* user, const pcap_pkthdr* h, const u_char* bytes)
    {
        auto* self = reinterpret_cast<PcapLiveSource*>(user);
        if (self->recheck_ && starts_with_vlan_tag(bytes, h->caplen) &&
            !matches(*self->recheck_, bytes, h->caplen, h->len))
            return; // passed the kernel only because its tag was stripped there
        const size_t off = self->arena_.size();
        self->arena_.insert(self->arena_.end(), bytes, bytes + h->caplen);
        const uint64_t frac = self->nano_ ? uint64_t(h->ts.tv_usec) : uint64_t(h->ts.tv_usec) * 1000;
        self->pending_.push_back(Pending{off, h->caplen, h->len, uint64_t(h->ts.tv_sec) * 1000000000ULL + frac});
    }

    /// Frames now in pending_; handles libpcap errors.
    int dispatch(uint32_t n) noexcept
    {
        std::string msg;
        {
            std::lock_guard<std::mutex> lock(mu_);
            const int rc = pcap_dispatch(p_.get(), static_cast<int>(n - pending_.size()), &on_frame,
                                         reinterpret_cast<u_char*>(this));
            if (rc >= 0)
                return rc;
            msg = pcap_geterr(p_.get());
        }
        if (check_link(msg))
            return 0;
        err_ = Error{std::make_error_code(std::errc::io_error), fmt::format("pcap:{}: {}", ifname_, msg)};
        finished_.store(true, std::memory_order_release);
        return 0;
    }

    /// While idle, the link state is looked at every kLinkCheckNs: libpcap
    /// versions differ in whether a link going down surfaces as an error.
    bool link_check_due() noexcept
    {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        const uint64_t now = uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
        if (now - last_link_check_ns_ < kLinkCheckNs)
            return false;
        last_link_check_ns_ = now;
        return true;
    }

    /// After a socket error or a libpcap error: the interface deleted ends
    /// the source; a link that is down is reported once and waited for.
    /// False when neither explains it.
    bool check_link(const std::string& msg) noexcept
    {
        if (if_nametoindex(ifname_.c_str()) == 0) {
            err_ = Error{std::make_error_code(std::errc::no_such_device),
                         fmt::format("pcap:{}: the interface went away ({})", ifname_, msg)};
            finished_.store(true, std::memory_order_release);
            return true;
        }
        if (link_running(ifname_) && msg.find("went down") == std::string::npos)
            return msg.empty(); // a stray poll error with the link fine: keep going
        if (!link_down_)
            std::fprintf(stderr, "weir: %s: link down, waiting\n", ifname_.c_str());
        link_down_ = true;
        if (!msg.empty()) {
            pollfd pfd{fd_, POLLIN, 0};
            ::poll(&pfd, 1, poll_timeout_ms_); // libpcap errors repeat at once: no spinning
        }
        return true;
    }

    uint64_t read_drops() const noexcept
    {
        std::lock_guard<std::mutex> lock(mu_);
        pcap_stat ps{};
        if (pcap_stats(p_.get(), &ps) == 0) {
            // 32-bit counters that only grow: add the (wrapping) deltas.
            drops_total_ += uint32_t(ps.ps_drop - last_drop_) + uint64_t(uint32_t(ps.ps_ifdrop - last_ifdrop_));
            last_drop_ = ps.ps_drop;
            last_ifdrop_ = ps.ps_ifdrop;
        }
        return drops_total_;
    }

    std::string ifname_;
    PcapHandle p_;
    int fd_;
    uint32_t linktype_;
    int poll_timeout_ms_;
    bool nano_;
    std::string filter_;
    std::optional<BpfProgram> recheck_;  ///< the expression on the wire bytes, for re-tagged frames
    std::vector<uint8_t> arena_;
    std::vector<Pending> pending_;
    bool link_down_ = false;
    uint64_t last_link_check_ns_ = 0;
    std::atomic<bool> finished_{false};
    std::optional<Error> err_;
    std::atomic<uint64_t> packets_{0};
    std::atomic<uint64_t> bytes_{0};
    mutable std::mutex mu_;               ///< every libpcap call on p_
    mutable uint64_t drops_total_ = 0;    ///< under mu_
    mutable u_int last_drop_ = 0;
    mutable u_int last_ifdrop_ = 0;
};

std::errc errc_for_activate(int rc)
{
    switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE: return std::errc::no_such_device;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED: return std::errc::operation_not_permitted;
    case PCAP_ERROR_IFACE_NOT_UP: return std::errc::network_down;
    case PCAP_ERROR_RFMON_NOTSUP: return std::errc::not_supported;
    default: return std::errc::io_error;
    }
}

} // namespace

Result<std::unique_ptr<PacketSource>> open_pcap_live(const std::string& ifname, const LiveOptions& opt)
{
    if (ifname.empty())
        return invalid("pcap: empty interface name");
    if (opt.snaplen == 0 || opt.snaplen > kMaxSnaplen)
        return invalid(fmt::format("pcap:{}: bad snaplen {} (1..{})", ifname, opt.snaplen, kMaxSnaplen));
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    PcapHandle p(pcap_create(ifname.c_str(), errbuf));
    if (!p)
        return Error{std::make_error_code(std::errc::io_error), fmt::format("pcap:{}: {}", ifname, errbuf)};
    pcap_set_snaplen(p.get(), static_cast<int>(opt.snaplen));
    pcap_set_promisc(p.get(), opt.promisc ? 1 : 0);
    pcap_set_timeout(p.get(), static_cast<int>(std::max<uint32_t>(opt.poll_timeout_ms, 1)));
    pcap_set_immediate_mode(p.get(), 1);
    if (opt.pcap_buffer_bytes != 0)
        pcap_set_buffer_size(p.get(), static_cast<int>(std::min<uint32_t>(opt.pcap_buffer_bytes, 1u << 30)));
    // Nanosecond stamps where the platform has them; microseconds otherwise.
    pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO);

    const int rc = pcap_activate(p.get());
    if (rc < 0) {
        std::string why = pcap_statustostr(rc);
        if (rc == PCAP_ERROR || rc == PCAP_ERROR_NO_SUCH_DEVICE || rc == PCAP_ERROR_PERM_DENIED ||
            rc == PCAP_ERROR_PROMISC_PERM_DENIED) {
            const char* detail = pcap_geterr(p.get());
            if (detail && *detail)
                why += std::string(" (") + detail + ")";
        }
        return Error{std::make_error_code(errc_for_activate(rc)), fmt::format("pcap:{}: {}", ifname, why)};
    }
    if (rc > 0) {
        std::string why = pcap_statustostr(rc);
        if (rc == PCAP_WARNING || rc == PCAP_WARNING_PROMISC_NOTSUP)
            why += std::string(" (") + pcap_geterr(p.get()) + ")";
        std::fprintf(stderr, "weir: pcap:%s: warning: %s\n", ifname.c_str(), why.c_str());
    }
    const bool nano = pcap_get_tstamp_precision(p.get()) == PCAP_TSTAMP_PRECISION_NANO;

    std::optional<BpfProgram> recheck;
    if (!opt.bpf_filter.empty()) {
        const uint32_t linktype = linktype_from_dlt(pcap_datalink(p.get()));
        auto f = compile_filter(opt.bpf_filter, linktype, opt.snaplen);
        if (!f)
            return Error{f.error().code, fmt::format("pcap:{}: {}", ifname, f.error().context)};
        const bool ether = linktype == 1;
        if (auto r = set_pcap_program(p.get(), ether ? kernel_program(f.value()) : f.value(), "pcap:" + ifname); !r)
            return r.error();
        if (ether)
            recheck = std::move(f.value());
    }
    if (pcap_setnonblock(p.get(), 1, errbuf) != 0)
        return Error{std::make_error_code(std::errc::io_error),
                     fmt::format("pcap:{}: cannot make the handle non-blocking: {}", ifname, errbuf)};
    if (pcap_get_selectable_fd(p.get()) < 0)
        return Error{std::make_error_code(std::errc::not_supported),
                     fmt::format("pcap:{}: libpcap has no selectable descriptor for this device", ifname)};
    return std::unique_ptr<PacketSource>(std::make_unique<PcapLiveSource>(ifname, std::move(p), opt, nano, std::move(recheck)));
}

} // namespace weir::dataplane
