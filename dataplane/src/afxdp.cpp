// AF_XDP capture back-end (see weir/dataplane/afxdp.hpp).
//
// Layout: one UMEM per captured RX queue, shared by the sockets of that
// queue (sockets_per_queue > 1: xsk_socket__create_shared, fanned out by
// the XDP program's flow hash; they also share the queue's fill ring). The
// sockets are created with libxdp's xsk API but with program loading
// inhibited: their fds go into weir_xdp's own XSKMAP (xdp_program.hpp),
// which is attached only once every socket is in place, so no error path
// ever leaves a program on the interface. The UMEM and the EBUSY retry are
// xsk_umem.hpp's, shared with AF_XDP transmit (xsk_tx.cpp).
//
// Bind mode: zero-copy first (real NICs), and on EOPNOTSUPP (veth, generic
// XDP) everything is rebuilt in copy mode, with a line on stderr. EBUSY on
// bind is retried for up to a second: the kernel frees a queue's buffer
// pool after its socket closed, so a quick restart would otherwise fail.
//
// rx_burst() hands out RX descriptors as pointers into the UMEM. They stay
// on the RX ring until the next call, which releases them and gives their
// frames back to the fill ring first; frames the fill ring cannot take wait
// on a spare list, so the fill ring is kept as full as the UMEM allows.
// The spare and held lists are reserved for every frame up front, so the
// packet path never allocates.
//
// Idle: the RX rings are watched for xdp_spin_us, then poll() on every
// socket for at most poll_timeout_ms (with busy polling: a non-blocking
// recvfrom() per socket first). A link that goes
// down is reported once on stderr and capture goes on when it comes back;
// sockets in error (interface gone) are reported once and never spun on.
#include <weir/dataplane/afxdp.hpp>
#include <weir/dataplane/xdp_program.hpp>
#include <weir/dataplane/xdp_sizing.hpp>

#include "xsk_umem.hpp"

#include <weir/abi/xdp.h>

#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

namespace weir::dataplane {

Result<uint32_t> rx_queue_count(const std::string& ifname)
{
    const std::filesystem::path dir = "/sys/class/net/" + ifname + "/queues";
    std::error_code ec;
    if (ifname.empty() || ifname.find('/') != std::string::npos || !std::filesystem::exists("/sys/class/net/" + ifname, ec))
        return Error{std::make_error_code(std::errc::no_such_device), fmt::format("interface '{}' does not exist", ifname)};
    uint32_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind("rx-", 0) == 0)
            ++n;
    return n ? n : 1u;  // an interface without a queues directory has one
}

namespace {

constexpr uint32_t kCompRingSize = 64;  // no TX: the completion ring stays empty
constexpr uint32_t kBusyPollUsecs = 20;
constexpr uint64_t kLinkCheckNs = 1'000'000'000;

// A captured queue's UMEM, with the frames in neither its fill ring nor
// a burst.
struct Umem : detail::XskUmem {
    int wake_fd = -1;             // first socket of the queue: kicks the driver
    std::vector<uint64_t> spare;  // frames in neither the fill ring nor a burst
    std::vector<uint64_t> held;   // frames of the last burst

    // Gives back the last burst's frames and tops the fill ring up.
    void refill() noexcept
    {
        spare.insert(spare.end(), held.begin(), held.end());  // capacity reserved: no allocation
        held.clear();
        if (spare.empty())
            return;
        const uint32_t want = xsk_prod_nb_free(&fill, uint32_t(spare.size()));
        const uint32_t n = std::min<uint32_t>(want, uint32_t(spare.size()));
        uint32_t idx = 0;
        if (n == 0 || xsk_ring_prod__reserve(&fill, n, &idx) != n)
            return;
        for (uint32_t i = 0; i < n; ++i) {
            *xsk_ring_prod__fill_addr(&fill, idx + i) = spare.back();
            spare.pop_back();
        }
        xsk_ring_prod__submit(&fill, n);
    }
};

struct Socket {
    xsk_socket* xsk = nullptr;
    xsk_ring_cons rx{};
    Umem* umem = nullptr;
    uint32_t queue = 0;
    uint32_t slot = 0;  // fan-out slot within the queue
    int fd = -1;
    uint32_t held = 0;  // descriptors of the last burst still on the RX ring
    std::string name;
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> bytes{0};

    Socket() = default;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket()
    {
        if (xsk)
            xsk_socket__delete(xsk);
    }

    [[nodiscard]] xdp_statistics kernel_stats() const noexcept
    {
        xdp_statistics st{};
        socklen_t len = sizeof(st);
        if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &len) != 0)
            st = xdp_statistics{};
        return st;
    }
};

std::string queue_list(const std::vector<uint32_t>& q)
{
    // Consecutive queues as a range (the -i syntax), others comma separated.
    bool consecutive = true;
    for (size_t i = 1; i < q.size(); ++i)
        consecutive = consecutive && q[i] == q[i - 1] + 1;
    if (q.size() == 1)
        return std::to_string(q[0]);
    if (consecutive)
        return fmt::format("{}-{}", q.front(), q.back());
    std::string s;
    for (uint32_t x : q) {
        if (!s.empty())
            s += ',';
        s += std::to_string(x);
    }
    return s;
}

class AfXdpSource final : public PacketSource {
public:
    AfXdpSource(std::string ifname, uint32_t ifindex, std::vector<uint32_t> queues, const LiveOptions& opt,
                std::shared_ptr<XdpProgram> prog)
        : ifname_(std::move(ifname)), ifindex_(ifindex), queues_(std::move(queues)), opt_(opt), prog_(std::move(prog))
    {
    }

    ~AfXdpSource() override
    {
        // Stop redirecting before the sockets go: detach, then the sockets,
        // then the UMEMs they share, then (members) the program itself.
        // Per-queue sources share one program: the first one destroyed
        // detaches it (detach() is idempotent).
        if (prog_)
            prog_->detach();
        socks_.clear();
        umems_.clear();
        if (ctl_fd_ >= 0)
            ::close(ctl_fd_);
    }

    /// attach = false: sockets in the XSKMAP, program not attached (the
    /// caller attaches it once every per-queue source is set up).
    Result<void> setup(bool attach = true)
    {
        ctl_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        uint16_t bind = XDP_USE_NEED_WAKEUP;
        switch (opt_.xdp_zero_copy) {
        case LiveOptions::ZeroCopy::Off: bind |= XDP_COPY; break;
        case LiveOptions::ZeroCopy::On:
        case LiveOptions::ZeroCopy::Auto: bind |= XDP_ZEROCOPY; break;
        }
        auto r = build_sockets_retrying(bind);
        if (!r && opt_.xdp_zero_copy == LiveOptions::ZeroCopy::Auto && r.error().code.value() == EOPNOTSUPP) {
            std::fprintf(stderr, "weir: xdp:%s: zero-copy unavailable (%s), using copy mode\n", ifname_.c_str(),
                         r.error().code.message().c_str());
            r = build_sockets_retrying(uint16_t(XDP_USE_NEED_WAKEUP | XDP_COPY));
        }
        if (!r)
            return r;
        zero_copy_ = (bind_flags_ & XDP_ZEROCOPY) != 0;
        const uint32_t spq = opt_.xdp_sockets_per_queue;
        for (const auto& s : socks_)
            if (auto m = prog_->set_socket(s->queue * spq + s->slot, s->fd); !m)
                return Error{m.error().code, fmt::format("xdp:{}: {}", ifname_, m.error().context)};
        if (!attach)
            return {};
        return prog_->attach(ifindex_, ifname_, opt_.xdp_mode);
    }

    uint32_t rx_burst(RawPacket* out, uint32_t n) noexcept override
    {
        release();
        if (n == 0 || socks_.empty())
            return 0;
        uint32_t got = collect(out, n);
        if (got)
            return got;
        if (opt_.xdp_busy_poll) {
            for (const auto& s : socks_)
                ::recvfrom(s->fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
            if ((got = collect(out, n)))
                return got;
        }
        if (opt_.xdp_spin_us && (got = spin(out, n)))
            return got;
        if (wait())
            got = collect(out, n);
        return got;
    }

    [[nodiscard]] bool finished() const noexcept override { return false; }
    [[nodiscard]] std::optional<Error> error() const override { return std::nullopt; }

    [[nodiscard]] SourceStats stats() const noexcept override
    {
        SourceStats t;
        for (const auto& s : socks_) {
            t.packets += s->packets.load(std::memory_order_relaxed);
            t.bytes += s->bytes.load(std::memory_order_relaxed);
            const xdp_statistics k = s->kernel_stats();
            t.drops += k.rx_dropped + k.rx_ring_full;
        }
        return t;
    }

    [[nodiscard]] bool live() const noexcept override { return true; }
    [[nodiscard]] uint64_t now_ns() const noexcept override { return wall_clock_ns(); }

    [[nodiscard]] std::vector<QueueStats> queue_stats() const override
    {
        std::vector<QueueStats> v;
        for (const auto& s : socks_) {
            QueueStats q;
            q.name = s->name;
            q.packets = s->packets.load(std::memory_order_relaxed);
            q.bytes = s->bytes.load(std::memory_order_relaxed);
            const xdp_statistics k = s->kernel_stats();
            q.drops = k.rx_dropped + k.rx_ring_full;
            q.rx_ring_full = k.rx_ring_full;
            q.fill_ring_empty = k.rx_fill_ring_empty_descs;
            q.invalid_descs = k.rx_invalid_descs + k.tx_invalid_descs;
            // The program counts per queue: reported on the queue's first
            // socket only, so that sums over sockets stay right.
            if (s->slot == 0) {
                const XdpQueueCounters c = prog_->counters(s->queue);
                q.xdp_packets = c.packets;
                q.xdp_bytes = c.bytes;
            }
            v.push_back(std::move(q));
        }
        return v;
    }

    [[nodiscard]] std::vector<uint32_t> linktypes() const override { return {1}; }

    [[nodiscard]] std::string describe() const override
    {
        const size_t egress = opt_.egress_ifaces.size();
        const std::string verdicts =
            !prog_->verdicts_on() ? std::string()
            : egress             ? fmt::format(", verdicts on, {} egress", egress)
                                 : std::string(", verdicts on");
        return fmt::format("xdp:{}@{} (AF_XDP {} mode, {}, {} socket{}{})", ifname_, queue_list(queues_),
                           zero_copy_ ? "zero-copy" : "copy", xdp_attach_mode_name(prog_->mode()), socks_.size(),
                           socks_.size() == 1 ? "" : "s", verdicts);
    }

private:
    // A queue whose previous AF_XDP socket was just closed stays busy for
    // a moment (a quick restart): see detail::retry_while_busy.
    Result<void> build_sockets_retrying(uint16_t bind_flags)
    {
        return detail::retry_while_busy([&] { return build_sockets(bind_flags); });
    }

    Result<void> build_sockets(uint16_t bind_flags)
    {
        socks_.clear();
        umems_.clear();
        bind_flags_ = bind_flags;
        const uint32_t spq = opt_.xdp_sockets_per_queue;
        for (uint32_t q : queues_) {
            auto u = std::make_unique<Umem>();
            detail::XskUmemConfig uc;
            uc.frames = opt_.xdp_umem_frames;
            uc.frame_size = opt_.xdp_frame_size;
            uc.fill_size = opt_.xdp_ring_size;
            uc.comp_size = kCompRingSize;
            uc.huge_pages = true;
            if (auto r = u->create(uc, fmt::format("xdp:{}@{}", ifname_, q)); !r)
                return r;
            u->spare.reserve(opt_.xdp_umem_frames);
            u->held.reserve(opt_.xdp_umem_frames);
            for (uint32_t f = opt_.xdp_umem_frames; f-- > 0;)
                u->spare.push_back(uint64_t(f) * opt_.xdp_frame_size);
            u->refill();

            for (uint32_t j = 0; j < spq; ++j) {
                auto s = std::make_unique<Socket>();
                s->umem = u.get();
                s->queue = q;
                s->slot = j;
                s->name = spq > 1 ? fmt::format("{}@{}/{}", ifname_, q, j) : fmt::format("{}@{}", ifname_, q);
                xsk_socket_config sc{};
                sc.rx_size = opt_.xdp_ring_size;
                sc.tx_size = 0;
                sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
                sc.xdp_flags = 0;
                sc.bind_flags = bind_flags;
                const int rc = xsk_socket__create_shared(&s->xsk, ifname_.c_str(), q, u->umem, &s->rx, nullptr,
                                                         &u->fill, &u->comp, &sc);
                if (rc != 0) {
                    s->xsk = nullptr;
                    return from_errno(rc, fmt::format("xdp:{}: AF_XDP socket on queue {} ({} mode)", ifname_, q,
                                                      (bind_flags & XDP_ZEROCOPY) ? "zero-copy" : "copy"));
                }
                s->fd = xsk_socket__fd(s->xsk);
                if (j == 0)
                    u->wake_fd = s->fd;
                if (opt_.xdp_busy_poll) {
                    const int one = 1, usecs = int(kBusyPollUsecs), budget = int(opt_.burst);
                    if (setsockopt(s->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) != 0 ||
                        setsockopt(s->fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof(usecs)) != 0 ||
                        setsockopt(s->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)) != 0)
                        return from_errno(errno, fmt::format("xdp:{}@{}: busy polling options", ifname_, q));
                }
                socks_.push_back(std::move(s));
            }
            umems_.push_back(std::move(u));
        }
        pfds_.assign(socks_.size(), pollfd{});
        for (size_t i = 0; i < socks_.size(); ++i)
            pfds_[i] = pollfd{socks_[i]->fd, POLLIN, 0};
        return {};
    }

    // The last burst's descriptors off the RX rings, their frames back to
    // the fill rings.
    void release() noexcept
    {
        for (const auto& s : socks_) {
            if (s->held) {
                xsk_ring_cons__release(&s->rx, s->held);
                s->held = 0;
            }
        }
        for (const auto& u : umems_) {
            u->refill();
            // Zero-copy drivers that ran out of fill buffers wait for a
            // kick (XDP_USE_NEED_WAKEUP); copy mode never sets the flag.
            if (xsk_ring_prod__needs_wakeup(&u->fill))
                ::recvfrom(u->wake_fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
        }
    }

    uint32_t collect(RawPacket* out, uint32_t n) noexcept
    {
        const size_t k = socks_.size();
        const uint64_t ts = wall_clock_ns();
        uint32_t got = 0;
        for (size_t j = 0; j < k && got < n; ++j) {
            Socket& s = *socks_[(next_ + j) % k];
            uint32_t idx = 0;
            const uint32_t r = xsk_ring_cons__peek(&s.rx, n - got, &idx);
            if (r == 0)
                continue;
            Umem& u = *s.umem;
            uint64_t bytes = 0;
            for (uint32_t i = 0; i < r; ++i) {
                const xdp_desc* d = xsk_ring_cons__rx_desc(&s.rx, idx + i);
                RawPacket& p = out[got + i];
                p.data = static_cast<const uint8_t*>(xsk_umem__get_data(u.area, d->addr));
                // The frame was just written by another CPU (the driver's,
                // or the sender's on veth): the decoder's first read of it
                // is a cache miss. Start every header fetch of the burst
                // now so that the misses overlap instead of queueing one
                // per frame (docs/performance.md, "Live capture").
                __builtin_prefetch(p.data);
                if (d->len > 64)
                    __builtin_prefetch(p.data + 64);
                p.wire_len = d->len;
                p.caplen = std::min(d->len, opt_.snaplen);
                p.ts_ns = ts;
                p.linktype = 1;
                bytes += d->len;
                u.held.push_back(d->addr - d->addr % u.frame_size);
            }
            s.held = r;
            got += r;
            s.packets.store(s.packets.load(std::memory_order_relaxed) + r, std::memory_order_relaxed);
            s.bytes.store(s.bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
        }
        next_ = (next_ + 1) % k;
        return got;
    }

    // Watches the RX rings for up to xdp_spin_us before the caller sleeps in
    // poll(): a sleeping reader is woken for each frame, and that wake-up is
    // paid on the CPU that delivers it (on a veth, the sender's).
    uint32_t spin(RawPacket* out, uint32_t n) noexcept
    {
        const uint64_t until = mono_ns() + uint64_t{opt_.xdp_spin_us} * 1000;
        for (;;) {
            for (int i = 0; i < 32; ++i) {
                for (const auto& s : socks_)
                    if (xsk_cons_nb_avail(&s->rx, 1))
                        return collect(out, n);
                __builtin_ia32_pause();
            }
            if (mono_ns() >= until)
                return 0;
        }
    }

    static uint64_t mono_ns() noexcept
    {
        timespec t{};
        clock_gettime(CLOCK_MONOTONIC, &t);
        return uint64_t(t.tv_sec) * 1000000000ULL + uint64_t(t.tv_nsec);
    }

    // Waits for frames; true when some socket became readable.
    bool wait() noexcept
    {
        const int rc = ::poll(pfds_.data(), nfds_t(pfds_.size()), int(opt_.poll_timeout_ms));
        bool readable = false, failed = false;
        if (rc > 0) {
            for (const pollfd& p : pfds_) {
                readable = readable || (p.revents & POLLIN);
                failed = failed || (p.revents & (POLLERR | POLLHUP | POLLNVAL));
            }
        }
        if (failed && !readable) {
            if (!sock_error_reported_) {
                std::fprintf(stderr, "weir: xdp:%s: AF_XDP socket error (interface gone?); capture stalls\n",
                             ifname_.c_str());
                sock_error_reported_ = true;
            }
            // Never spin on a socket that stays in error.
            const timespec ts{time_t(opt_.poll_timeout_ms / 1000), long(opt_.poll_timeout_ms % 1000) * 1000000L};
            nanosleep(&ts, nullptr);
        }
        if (!readable)
            check_link();
        return readable;
    }

    // While idle, at most once a second: report the link going down and
    // coming back (the sockets and the program stay in place meanwhile).
    void check_link() noexcept
    {
        const uint64_t now = wall_clock_ns();
        if (ctl_fd_ < 0 || now - last_link_check_ns_ < kLinkCheckNs)
            return;
        last_link_check_ns_ = now;
        ifreq ifr{};
        std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname_.c_str());
        if (ioctl(ctl_fd_, SIOCGIFFLAGS, &ifr) != 0)
            return;
        const bool up = (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
        if (!up && !link_down_) {
            std::fprintf(stderr, "weir: xdp:%s: link down, waiting for it to come back\n", ifname_.c_str());
            link_down_ = true;
        } else if (up && link_down_) {
            std::fprintf(stderr, "weir: xdp:%s: link up again, capture resumes\n", ifname_.c_str());
            link_down_ = false;
        }
    }

    std::string ifname_;
    uint32_t ifindex_;
    std::vector<uint32_t> queues_;
    LiveOptions opt_;
    // Destroyed in reverse order: the program (detached in the destructor
    // body already), then the sockets, then the UMEMs.
    std::vector<std::unique_ptr<Umem>> umems_;
    std::vector<std::unique_ptr<Socket>> socks_;
    std::shared_ptr<XdpProgram> prog_;
    std::vector<pollfd> pfds_;
    uint16_t bind_flags_ = 0;
    bool zero_copy_ = false;
    size_t next_ = 0;
    int ctl_fd_ = -1;
    uint64_t last_link_check_ns_ = 0;
    bool link_down_ = false;
    bool sock_error_reported_ = false;
};

Result<void> check_options(const std::string& ifname, const LiveOptions& o)
{
    if (o.xdp_sockets_per_queue == 0 || o.xdp_sockets_per_queue > WEIR_XDP_MAX_SOCKETS_PER_QUEUE)
        return invalid(fmt::format("xdp:{}: {} sockets per queue (1..{})", ifname, o.xdp_sockets_per_queue,
                                   WEIR_XDP_MAX_SOCKETS_PER_QUEUE));
    if (o.snaplen == 0)
        return invalid(fmt::format("xdp:{}: snap length 0", ifname));
    return {};
}

} // namespace

namespace {

/// What open_afxdp() and open_afxdp_queues() share: checks, the queue
/// list (every queue when empty) and the loaded, not yet attached program.
struct Prepared {
    uint32_t ifindex = 0;
    std::vector<uint32_t> queues;
    std::shared_ptr<XdpProgram> prog;
    LiveOptions opt;  // ring and UMEM sizes filled in
};

Result<Prepared> prepare(const std::string& ifname, const std::vector<uint32_t>& queues, const LiveOptions& opt)
{
    const uint32_t ifindex = ifname.empty() || ifname.size() >= IFNAMSIZ ? 0 : if_nametoindex(ifname.c_str());
    if (ifindex == 0)
        return Error{std::make_error_code(std::errc::no_such_device), fmt::format("xdp:{}: no such interface", ifname)};
    auto count = rx_queue_count(ifname);
    if (!count)
        return count.error();
    const uint32_t nq = count.value();
    std::vector<uint32_t> qs = queues;
    if (qs.empty())
        for (uint32_t q = 0; q < nq; ++q)
            qs.push_back(q);
    std::set<uint32_t> seen;
    for (uint32_t q : qs) {
        if (q >= nq)
            return invalid(fmt::format("xdp:{}: RX queue {} out of range: {} has {} RX queue{} (0-{})", ifname, q,
                                       ifname, nq, nq == 1 ? "" : "s", nq - 1));
        if (!seen.insert(q).second)
            return invalid(fmt::format("xdp:{}: RX queue {} listed twice", ifname, q));
    }
    if (auto c = check_options(ifname, opt); !c)
        return c.error();
    auto sizing = xdp_sizing(ifname, opt, uint32_t(qs.size()), physical_ram_bytes());
    if (!sizing)
        return sizing.error();
    const XdpSizing& sz = sizing.value();
    LiveOptions sized = opt;
    sized.xdp_ring_size = sz.ring_size;
    sized.xdp_umem_frames = sz.umem_frames;

    // Someone else's XDP program: say so before any socket is made
    // (XdpProgram::attach checks again, atomically).
    uint32_t other = 0;
    if (bpf_xdp_query_id(int(ifindex), 0, &other) == 0 && other != 0)
        return Error{std::make_error_code(std::errc::device_or_resource_busy),
                     fmt::format("xdp:{}: another XDP program (id {}) is already attached; weir leaves it in place "
                                 "(detach it with 'ip link set dev {} xdp off' if it is not needed)",
                                 ifname, other, ifname)};

    XdpProgram::Config pc;
    pc.rx_queues = nq;
    pc.sockets_per_queue = opt.xdp_sockets_per_queue;
    pc.verdict_map_fd = opt.verdict_map_fd;
    pc.subnet_verdict_map_fd = opt.subnet_verdict_map_fd;
    pc.egress_ifaces = opt.egress_ifaces;
    auto prog = XdpProgram::load(pc);
    if (!prog)
        return Error{prog.error().code, fmt::format("xdp:{}: {}", ifname, prog.error().context)};
    // Sizes weir chose are said once, with how to change them.
    if (sz.ring_default || sz.umem_default)
        std::fprintf(stderr, "weir: xdp:%s: %s (%s; set %s to override)\n", ifname.c_str(), sz.describe().c_str(),
                     sz.ring_default && sz.umem_default ? "default sizes for this queue count"
                     : sz.ring_default                   ? "default ring size for this queue count"
                                                         : "default UMEM for this ring size",
                     sz.ring_default && sz.umem_default ? "--xdp-ring-size and --xdp-umem-frames"
                     : sz.ring_default                   ? "--xdp-ring-size"
                                                         : "--xdp-umem-frames");
    return Prepared{ifindex, std::move(qs), std::shared_ptr<XdpProgram>(std::move(prog.value())), std::move(sized)};
}

} // namespace

Result<std::unique_ptr<PacketSource>> open_afxdp(const std::string& ifname, const std::vector<uint32_t>& queues,
                                                 const LiveOptions& opt)
{
    auto p = prepare(ifname, queues, opt);
    if (!p)
        return p.error();
    auto src = std::make_unique<AfXdpSource>(ifname, p.value().ifindex, std::move(p.value().queues), p.value().opt,
                                             std::move(p.value().prog));
    if (auto r = src->setup(); !r)
        return r.error();  // src's destructor detaches and closes whatever was set up
    return std::unique_ptr<PacketSource>(std::move(src));
}

Result<std::vector<std::unique_ptr<PacketSource>>> open_afxdp_queues(const std::string& ifname,
                                                                     const std::vector<uint32_t>& queues,
                                                                     const LiveOptions& opt)
{
    auto p = prepare(ifname, queues, opt);
    if (!p)
        return p.error();
    Prepared& pr = p.value();
    // One source per queue, all in the one program's XSKMAP; the program is
    // attached only once every socket is in place (as open_afxdp() does).
    std::vector<std::unique_ptr<PacketSource>> out;
    for (uint32_t q : pr.queues) {
        auto src = std::make_unique<AfXdpSource>(ifname, pr.ifindex, std::vector<uint32_t>{q}, pr.opt, pr.prog);
        if (auto r = src->setup(false); !r)
            return r.error();
        out.push_back(std::move(src));
    }
    if (auto r = pr.prog->attach(pr.ifindex, ifname, opt.xdp_mode); !r)
        return r.error();
    return out;
}

} // namespace weir::dataplane
