// AF_XDP mode: one TX-only socket on IFACE's queue --queue, zero-copy tried
// first, copy mode otherwise (veth, most virtual devices). The UMEM holds
// kFrames copies of the template; a frame taken from the free list gets the
// next flow written into it (ports and checksums only) and goes on the TX
// ring; completions return it to the free list. No XDP program is loaded:
// TX needs none.
//
// Counting: a completion means the kernel is done with the frame, not that
// the device took it. In copy mode a frame the device dropped makes sendto()
// fail with EBUSY (one frame each time), which is counted as failed; sent =
// completions - failed. Pacing is the same token bucket as live mode.
#include "gen.hpp"

#include <xdp/xsk.h>

#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace weir::gen {

namespace {

constexpr uint32_t kFrames = 4096;
constexpr uint32_t kFrameSize = 2048;
constexpr uint32_t kRing = 2048;
constexpr double kStallSeconds = 2.0;

class Socket {
public:
    ~Socket()
    {
        if (xsk_)
            xsk_socket__delete(xsk_);
        if (umem_)
            xsk_umem__delete(umem_);
        if (area_ != MAP_FAILED)
            munmap(area_, size_);
    }

    Result<void> open(const std::string& ifname, unsigned queue, bool zerocopy)
    {
        area_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area_ == MAP_FAILED)
            return from_errno(errno, "map UMEM");
        xsk_umem_config ucfg{};
        ucfg.fill_size = kRing;
        ucfg.comp_size = kRing;
        ucfg.frame_size = kFrameSize;
        if (int rc = xsk_umem__create(&umem_, area_, size_, &fill_, &comp_, &ucfg); rc != 0)
            return from_errno(rc, "create UMEM");
        xsk_socket_config cfg{};
        cfg.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
        cfg.tx_size = kRing;
        cfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
        cfg.bind_flags = static_cast<uint16_t>((zerocopy ? XDP_ZEROCOPY : XDP_COPY) | XDP_USE_NEED_WAKEUP);
        if (int rc = xsk_socket__create(&xsk_, ifname.c_str(), queue, umem_, nullptr, &tx_, &cfg); rc != 0) {
            xsk_ = nullptr;
            return from_errno(rc, std::string("AF_XDP socket on ") + ifname + " queue " +
                                      std::to_string(queue) + (zerocopy ? " (zero-copy)" : " (copy mode)"));
        }
        return {};
    }

    uint8_t* frame(uint64_t addr) const noexcept { return static_cast<uint8_t*>(area_) + addr; }

    void* area_ = MAP_FAILED;
    size_t size_ = static_cast<size_t>(kFrames) * kFrameSize;
    xsk_umem* umem_ = nullptr;
    xsk_socket* xsk_ = nullptr;
    xsk_ring_prod fill_{};
    xsk_ring_cons comp_{};
    xsk_ring_prod tx_{};
};

} // namespace

Result<GenReport> run_afxdp(const GenOptions& opt, const Template& t)
{
    if (if_nametoindex(opt.iface.c_str()) == 0)
        return from_errno(errno, "interface '" + opt.iface + "'");

    auto sock = std::make_unique<Socket>();
    bool zerocopy = true;
    if (auto r = sock->open(opt.iface, opt.queue, true); !r) {
        sock = std::make_unique<Socket>();
        zerocopy = false;
        if (auto r2 = sock->open(opt.iface, opt.queue, false); !r2)
            return r2.error();
    }
    Socket& s = *sock;

    std::vector<uint64_t> free_frames;
    free_frames.reserve(kFrames);
    for (uint32_t i = 0; i < kFrames; ++i) {
        const uint64_t addr = static_cast<uint64_t>(kFrames - 1 - i) * kFrameSize;
        std::memcpy(s.frame(addr), t.bytes.data(), t.bytes.size());
        free_frames.push_back(addr);
    }

    const int fd = xsk_socket__fd(s.xsk_);
    const uint32_t len = static_cast<uint32_t>(t.bytes.size());
    const uint32_t batch = std::clamp(opt.batch, 1u, kRing / 2);
    const double rate = static_cast<double>(opt.rate);
    const double start = now_s();
    const double deadline = opt.duration > 0 ? start + opt.duration : 1e300;
    uint64_t submitted = 0, completed = 0, failed = 0;
    uint32_t flow = 0;
    double last_progress = start;

    auto reap = [&]() {
        uint32_t idx = 0;
        const uint32_t n = xsk_ring_cons__peek(&s.comp_, kRing, &idx);
        for (uint32_t i = 0; i < n; ++i)
            free_frames.push_back(*xsk_ring_cons__comp_addr(&s.comp_, idx + i));
        if (n) {
            xsk_ring_cons__release(&s.comp_, n);
            completed += n;
        }
        return n;
    };
    // Copy mode transmits inside sendto(); zero-copy only needs a wakeup
    // when the driver asks for one.
    auto kick = [&]() -> Result<void> {
        if (zerocopy && !xsk_ring_prod__needs_wakeup(&s.tx_))
            return {};
        if (sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0)
            return {};
        switch (errno) {
        case EBUSY: // the device dropped one frame (it is completed anyway)
            ++failed;
            return {};
        case EAGAIN:
        case ENOBUFS:
        case EINTR:
            return {};
        default:
            return from_errno(errno, "AF_XDP transmit on " + opt.iface);
        }
    };

    while (!g_stop.load(std::memory_order_relaxed)) {
        const double now = now_s();
        if (now >= deadline)
            break;
        if (reap())
            last_progress = now;
        if (opt.count && submitted >= opt.count)
            break;
        uint64_t want = std::min<uint64_t>(batch, free_frames.size());
        if (opt.count)
            want = std::min(want, opt.count - submitted);
        if (rate > 0) {
            const auto earned = static_cast<uint64_t>(std::floor((now - start) * rate)) + 1;
            const uint64_t allowed = earned > submitted ? earned - submitted : 0;
            want = std::min(want, allowed);
            if (want == 0 && submitted == completed) {
                const double due = start + static_cast<double>(submitted) / rate;
                std::this_thread::sleep_for(std::chrono::duration<double>(std::clamp(due - now, 0.0, 0.001)));
                continue;
            }
        }
        uint32_t idx = 0;
        const uint32_t got = want ? xsk_ring_prod__reserve(&s.tx_, static_cast<uint32_t>(want), &idx) : 0;
        for (uint32_t i = 0; i < got; ++i) {
            const uint64_t addr = free_frames.back();
            free_frames.pop_back();
            apply_flow(s.frame(addr), t, opt.frame, flow);
            flow = flow + 1 >= opt.frame.flows ? 0 : flow + 1;
            xdp_desc* d = xsk_ring_prod__tx_desc(&s.tx_, idx + i);
            d->addr = addr;
            d->len = len;
            d->options = 0;
        }
        if (got) {
            xsk_ring_prod__submit(&s.tx_, got);
            submitted += got;
        }
        if (submitted != completed) {
            if (auto r = kick(); !r)
                return r.error();
            if (now - last_progress > kStallSeconds)
                return Error{std::make_error_code(std::errc::timed_out),
                             "AF_XDP transmit on " + opt.iface + " stalled: no completion for 2 s"};
        }
    }
    // Let what is on the ring go out and complete (bounded).
    const double drain_until = now_s() + 1.0;
    while (completed < submitted && now_s() < drain_until) {
        if (auto r = kick(); !r)
            return r.error();
        if (!reap())
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    const double seconds = now_s() - start;

    GenReport rep;
    rep.mode = zerocopy ? "afxdp-zerocopy" : "afxdp-copy";
    rep.seconds = seconds;
    rep.failed = failed;
    rep.sent = completed >= failed ? completed - failed : 0;
    if (completed < submitted)
        std::fprintf(stderr, "weir-gen: warning: %llu frames still on the TX ring at exit\n",
                     static_cast<unsigned long long>(submitted - completed));
    return rep;
}

} // namespace weir::gen
